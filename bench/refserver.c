/*
 * vask-refserver: the physical limit for the fan-out harness (performance.md section 5), not a Pusher server.
 *
 * One epoll thread that speaks just enough of the protocol for bench/loadgen: the WebSocket upgrade,
 * pusher:connection_established, pusher:subscribe -> subscription_succeeded, and POST /apps/{id}/events, whose
 * body's channel and data it copies into one pre-built frame (no signature check, no JSON parser, no escapes).
 * The HTTP reply goes first, then the fan-out:
 *   --mode write   one write() per delivery, at once (the "1 write per delivery" limit)
 *   --mode pass    frames queued per connection, one write per dirty connection after each epoll batch
 *                  (Vask's design, without Python)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CHANNELS 1024

typedef struct conn {
    int fd, ws, dead, dirty;
    char *in;
    size_t in_len, in_cap;
    char *out; /* queued bytes: unsent remainder, or frames waiting for the end of the pass */
    size_t out_len, out_cap;
} conn_t;

typedef struct {
    conn_t **subs;
    int n, cap;
} channel_t;

static channel_t channels[MAX_CHANNELS];
static int ep, pass_mode;
static conn_t **dirty;
static int n_dirty, dirty_cap;

static void append(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
    if (*len + n > *cap) {
        *cap = (*len + n) * 2 + 256;
        *buf = realloc(*buf, *cap);
    }
    memcpy(*buf + *len, p, n);
    *len += n;
}

static void drop(conn_t *c) {
    if (c->dead) return;
    c->dead = 1;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    for (int i = 0; i < MAX_CHANNELS; i++)
        for (int j = 0; j < channels[i].n; j++)
            if (channels[i].subs[j] == c) channels[i].subs[j] = channels[i].subs[--channels[i].n];
}

/* write now if nothing is queued, keep the rest for EPOLLOUT */
static void send_now(conn_t *c, const char *p, size_t n) {
    if (c->dead) return;
    if (c->out_len == 0) {
        ssize_t w = write(c->fd, p, n);
        if (w < 0 && errno != EAGAIN) { drop(c); return; }
        if (w < 0) w = 0;
        if ((size_t)w == n) return;
        p += w;
        n -= (size_t)w;
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    }
    append(&c->out, &c->out_len, &c->out_cap, p, n);
}

static void deliver(conn_t *c, const char *p, size_t n) {
    if (!pass_mode) { send_now(c, p, n); return; }
    if (!c->dirty) {
        c->dirty = 1;
        if (n_dirty == dirty_cap) {
            dirty_cap = dirty_cap * 2 + 1024;
            dirty = realloc(dirty, sizeof *dirty * (size_t)dirty_cap);
        }
        dirty[n_dirty++] = c;
    }
    append(&c->out, &c->out_len, &c->out_cap, p, n);
}

static void flush_pass(void) {
    for (int i = 0; i < n_dirty; i++) {
        conn_t *c = dirty[i];
        c->dirty = 0;
        if (c->dead || !c->out_len) continue;
        ssize_t w = write(c->fd, c->out, c->out_len);
        if (w < 0 && errno != EAGAIN) { drop(c); continue; }
        if (w < 0) w = 0;
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (size_t)w;
        if (c->out_len) {
            struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
        }
    }
    n_dirty = 0;
}

static size_t frame(char *dst, const char *payload, size_t n) {
    size_t h = 0;
    dst[h++] = (char)0x81;
    if (n < 126) {
        dst[h++] = (char)n;
    } else {
        dst[h++] = 126;
        dst[h++] = (char)(n >> 8);
        dst[h++] = (char)(n & 0xff);
    }
    memcpy(dst + h, payload, n);
    return h + n;
}

static void send_text(conn_t *c, const char *payload) {
    char f[1024];
    send_now(c, f, frame(f, payload, strlen(payload)));
}

static int field(const char *body, size_t n, const char *name, char *out, size_t cap) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":\"", name);
    const char *at = memmem(body, n, key, strlen(key));
    if (!at) return -1;
    at += strlen(key);
    const char *end = memchr(at, '"', (size_t)(body + n - at));
    if (!end || (size_t)(end - at) >= cap) return -1;
    memcpy(out, at, (size_t)(end - at));
    out[end - at] = 0;
    return (int)(end - at);
}

static int channel_index(const char *name) {
    const char *dash = strrchr(name, '-');
    int i = dash ? atoi(dash + 1) : 0;
    return i >= 0 && i < MAX_CHANNELS ? i : 0;
}

static void on_http(conn_t *c) {
    for (;;) {
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!end) return;
        size_t head = (size_t)(end + 4 - c->in);
        if (strncmp(c->in, "GET ", 4) == 0) {
            char *k = memmem(c->in, head, "Sec-WebSocket-Key: ", 19);
            if (!k) { drop(c); return; }
            k += 19;
            char *ke = memchr(k, '\r', head);
            char src[128];
            int kn = snprintf(src, sizeof src, "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", (int)(ke - k), k);
            unsigned char sha[20];
            SHA1((unsigned char *)src, (size_t)kn, sha);
            char acc[64];
            EVP_EncodeBlock((unsigned char *)acc, sha, 20);
            char resp[256];
            int rn = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc);
            send_now(c, resp, (size_t)rn);
            send_text(c, "{\"event\":\"pusher:connection_established\",\"data\":\"{\\\"socket_id\\\":\\\"1.1\\\","
                         "\\\"activity_timeout\\\":120}\"}");
            c->ws = 1;
            memmove(c->in, c->in + head, c->in_len - head);
            c->in_len -= head;
            return;
        }
        char *cl = memmem(c->in, head, "Content-Length: ", 16);
        size_t blen = cl ? strtoul(cl + 16, NULL, 10) : 0;
        if (c->in_len < head + blen) return;
        char ch[256], data[16384], payload[17000], f[17100];
        if (field(c->in + head, blen, "channel", ch, sizeof ch) > 0 && field(c->in + head, blen, "data", data, sizeof data) >= 0) {
            static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
            send_now(c, ok, sizeof ok - 1);
            int pn = snprintf(payload, sizeof payload, "{\"event\":\"bench\",\"data\":\"%s\",\"channel\":\"%s\"}", data, ch);
            size_t fn = frame(f, payload, (size_t)pn);
            channel_t *chan = &channels[channel_index(ch)];
            for (int i = 0; i < chan->n; i++) deliver(chan->subs[i], f, fn);
        } else {
            static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
            send_now(c, bad, sizeof bad - 1);
        }
        memmove(c->in, c->in + head + blen, c->in_len - head - blen);
        c->in_len -= head + blen;
    }
}

static void on_ws(conn_t *c) {
    size_t off = 0;
    while (c->in_len - off >= 6) {
        unsigned char *h = (unsigned char *)c->in + off;
        int opcode = h[0] & 15;
        size_t len = h[1] & 127, hl = 2;
        if (len == 126) {
            if (c->in_len - off < 8) break;
            len = ((size_t)h[2] << 8) | h[3];
            hl = 4;
        } else if (len == 127) {
            drop(c);
            return;
        }
        hl += 4; /* client frames are masked */
        if (c->in_len - off < hl + len) break;
        char *p = c->in + off + hl;
        for (size_t i = 0; i < len; i++) p[i] ^= (char)h[hl - 4 + (i & 3)];
        if (opcode == 8) {
            char f[8];
            send_now(c, f, frame(f, "\x03\xe8", 2));
            drop(c);
            return;
        }
        if (opcode == 1 && memmem(p, len, "pusher:subscribe", 16)) {
            char name[256], msg[512];
            if (field(p, len, "channel", name, sizeof name) > 0) {
                channel_t *chan = &channels[channel_index(name)];
                if (chan->n == chan->cap) {
                    chan->cap = chan->cap * 2 + 64;
                    chan->subs = realloc(chan->subs, sizeof *chan->subs * (size_t)chan->cap);
                }
                chan->subs[chan->n++] = c;
                snprintf(msg, sizeof msg, "{\"event\":\"pusher_internal:subscription_succeeded\",\"data\":\"{}\","
                                          "\"channel\":\"%s\"}", name);
                send_text(c, msg);
            }
        } else if (opcode == 1 && memmem(p, len, "pusher:ping", 11)) {
            send_text(c, "{\"event\":\"pusher:pong\",\"data\":\"{}\"}");
        }
        off += hl + len;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
}

int main(int argc, char **argv) {
    int port = 6001;
    static struct option opts[] = {{"port", 1, 0, 'p'}, {"mode", 1, 0, 'm'}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'p') port = atoi(optarg);
        else if (o == 'm') pass_mode = strcmp(optarg, "pass") == 0;
        else { fprintf(stderr, "usage: refserver [--port P] [--mode write|pass]\n"); return 1; }
    }
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) { perror("listen"); return 1; }
    ep = epoll_create1(0);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &le);
    static struct epoll_event evs[1024];
    static char buf[65536];
    for (;;) {
        int n = epoll_wait(ep, evs, 1024, -1);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            if (c->dead) continue;
            if ((evs[i].events & EPOLLOUT) && c->out_len && !c->dirty) {
                ssize_t w = write(c->fd, c->out, c->out_len);
                if (w > 0) {
                    memmove(c->out, c->out + w, c->out_len - (size_t)w);
                    c->out_len -= (size_t)w;
                }
                if (!c->out_len) {
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
                }
            }
            if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
            ssize_t r = read(c->fd, buf, sizeof buf);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                drop(c);
                continue;
            }
            append(&c->in, &c->in_len, &c->in_cap, buf, (size_t)r);
            if (c->ws) on_ws(c); else on_http(c);
        }
        if (pass_mode) flush_pass();
    }
}
