/*
 * vask-loadgen: one epoll thread holding N Pusher subscribers plus a signed HTTP-API publisher.
 *
 * Modes:
 *   fanout  N subscribers on C channels (--private: private-bench-N, each subscription signed as an app's auth
 *           endpoint signs it); publish ~100-byte events through POST /apps/{id}/events, closed loop
 *           (K requests in flight) or at a fixed rate; count deliveries, end-to-end latency from the
 *           monotonic timestamp embedded in `data`, time to the last subscriber, gaps and duplicates.
 *           --batch B: each request is POST /apps/{id}/batch_events with B events to B consecutive channels;
 *           --multi M: each request is one POST /apps/{id}/events to M consecutive channels ("channels": [...]).
 *   idle    N subscribers, then hold them until stdin closes (the driver reads the server's RSS meanwhile).
 *   churn   connect, subscribe, close, M times with P cycles in parallel.
 *   presence  N connections join presence-bench one after another (signed channel_data, user u<i>), then leave
 *           (pusher:unsubscribe) one after another, at --join-rate operations/s, for --duration; time from each
 *           subscribe until every member already in has member_added, from each unsubscribe until every member
 *           still in has member_removed; what never came is counted.
 *
 * With --sync it prints "ready" once everyone is subscribed and waits for a line on stdin before the measured
 * phase, and prints "phase-end" when it is over, so the driver can read the server's CPU time around it.
 * The result is one JSON object on the last line of stdout.
 *
 * Publisher and subscribers share one clock (CLOCK_MONOTONIC) because they are one process.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/hmac.h>
#include <openssl/md5.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_US 4000000 /* 1 us buckets up to 4 s; later samples go to the last one */
#define READ_BUF (256 * 1024)
#define MAX_PUB_CONNS 64

enum { ST_CONNECTING, ST_HANDSHAKE, ST_ESTAB, ST_SUBSCRIBING, ST_READY, ST_CLOSING, ST_DEAD };
enum { K_SUB, K_PUB };

typedef struct conn {
    int fd;
    uint8_t state, kind;
    int ch;
    char *buf; /* unparsed bytes carried to the next read */
    uint32_t len, cap;
    int64_t last_seq;
    /* publisher connections */
    int busy;
    uint64_t sent_ns;
    uint32_t pub_id, pub_n; /* the request in flight: events pub_id .. pub_id + pub_n - 1 */
    char sid[32];
    /* presence members (c->ch is the member's index, its user id u<ch>) */
    uint8_t pstate;
    uint32_t join_op;
    int64_t *want_add, *want_rm; /* per other member: op id + 1 awaited, -(op id + 1) received, 0 none */
    int p_pending; /* how many of those are awaited, plus its own subscription_succeeded while joining */
} conn_t;

static void hex(const unsigned char *d, int n, char *out);

static struct {
    const char *host, *key, *app_id, *secret, *path, *mode, *publish;
    int port, pub_port, subs, channels, conc, data_size, pub_conns, cycles, sync, progress, private_ch;
    double duration, rate, drain;
    int closed_k, batch, multi;
    double join_rate;
} o = {"127.0.0.1", "app-key", "app-id", "app-secret", NULL, "fanout", "closed:2",
       6001, 0, 1000, 1, 200, 100, 4, 10000, 0, 10000, 0, 10.0, 0, 3.0, 2, 1, 1, 200.0};

static int ep;
static struct sockaddr_in addr, pub_addr; /* pub_addr: --pub-port, another node of a cluster */
static char rbuf[READ_BUF];
static int *ch_subs; /* subscribers per channel */
static int started, ready, pending, dead, errors;
static uint64_t t0_ns;

/* per publish */
static uint64_t *p_sent, *p_last;
static uint32_t *p_recv, *p_expect;
static uint32_t n_pub, n_req, n_acked, n_events_acked, n_http_err, max_pub = 4000000; /* n_pub: events */
static uint32_t *ch_seq;
static uint32_t *hist;
static uint64_t delivered, dups, gaps, reorders, expected; /* gaps: deliveries missing at the end */
static uint32_t *http_us, n_http;
static uint64_t first_pub_ns, last_deliv_ns, phase_start_ns, last_pub_ns;
static uint64_t backlog, late, pub_reconnects; /* backlog: publishes that found every connection busy */
static conn_t *pubs[MAX_PUB_CONNS];
static uint64_t churn_done, churn_err;
static int presence; /* --mode presence */
static conn_t **members; /* presence: by index */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void die(const char *m) {
    fprintf(stderr, "loadgen: %s: %s\n", m, strerror(errno));
    exit(2);
}

static void ep_add(conn_t *c, uint32_t ev) {
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e) < 0) die("epoll_ctl add");
}

static void ep_mod(conn_t *c, uint32_t ev) {
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) < 0) die("epoll_ctl mod");
}

static int open_socket_to(const struct sockaddr_in *to) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)to, sizeof *to) < 0 && errno != EINPROGRESS) die("connect");
    return fd;
}

static int open_socket(void) { return open_socket_to(&addr); }

static int send_all(conn_t *c, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(c->fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { /* tiny client messages: the socket buffer is never full in practice */
                struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
                poll(&pf, 1, 1000);
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A masked client text/close frame; the zero mask leaves the payload as it is (servers only unmask). */
static int send_frame(conn_t *c, int opcode, const char *payload, size_t n) {
    char f[1024];
    size_t h = 0;
    f[h++] = (char)(0x80 | opcode);
    if (n < 126) {
        f[h++] = (char)(0x80 | n);
    } else {
        f[h++] = (char)(0x80 | 126);
        f[h++] = (char)(n >> 8);
        f[h++] = (char)(n & 0xff);
    }
    memset(f + h, 0, 4);
    h += 4;
    if (h + n > sizeof f) return -1;
    memcpy(f + h, payload, n);
    return send_all(c, f, h + n);
}

static void start_sub(int ch) {
    conn_t *c = calloc(1, sizeof *c);
    c->kind = K_SUB;
    c->ch = ch;
    c->last_seq = -1;
    c->fd = open_socket();
    c->state = ST_CONNECTING;
    if (presence) {
        c->want_add = calloc((size_t)o.subs, sizeof *c->want_add);
        c->want_rm = calloc((size_t)o.subs, sizeof *c->want_rm);
        members[ch] = c;
    }
    ep_add(c, EPOLLOUT | EPOLLIN);
    started++;
    pending++;
}

static void kill_conn(conn_t *c) {
    if (c->state == ST_DEAD) return;
    if (c->state != ST_READY && c->kind == K_SUB) pending--;
    if (c->state == ST_READY && c->kind == K_SUB) ready--;
    c->state = ST_DEAD;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    dead++;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

static void on_ready(conn_t *c);
static int publish(conn_t *c);
static int publishing_open(uint64_t t);

/* The socket id in pusher:connection_established ("data":"{\"socket_id\":\"123.456\",...}"). */
static void socket_id(const char *p, size_t n, char *sid, size_t cap) {
    const char *at = memmem(p, n, "socket_id", 9);
    size_t i = 0;
    if (at) {
        at += 9;
        while (at < p + n && (*at == '\\' || *at == '"' || *at == ':')) at++;
        while (at < p + n && i < cap - 1 && (isdigit((unsigned char)*at) || *at == '.')) sid[i++] = *at++;
    }
    sid[i] = 0;
}

/* HMAC-SHA256(secret, s) in hex, as an app's auth endpoint signs a subscription */
static void sign(const char *s, int n, char *sighex) {
    unsigned char sig[32];
    unsigned int sl = 32;
    HMAC(EVP_sha256(), o.secret, (int)strlen(o.secret), (const unsigned char *)s, (size_t)n, sig, &sl);
    hex(sig, 32, sighex);
}

static void on_presence_message(conn_t *c, const char *p, size_t n, uint64_t t);

static void on_message(conn_t *c, const char *p, size_t n, uint64_t t) {
    if (c->state == ST_READY && presence) {
        on_presence_message(c, p, n, t);
        return;
    }
    if (c->state == ST_READY) {
        const char *at = memmem(p, n, "@@", 2);
        if (at) {
            char *e;
            uint64_t sent = strtoull(at + 2, &e, 10);
            uint32_t id = (uint32_t)strtoul(e, &e, 10);
            (void)strtoul(e, &e, 10); /* channel */
            int64_t seq = strtoll(e, &e, 10);
            delivered++;
            uint64_t lat = t > sent ? (t - sent) / 1000 : 0;
            hist[lat < HIST_US ? lat : HIST_US - 1]++;
            if (id < max_pub) {
                p_recv[id]++;
                if (t > p_last[id]) p_last[id] = t;
            }
            /* Publishes in flight together may be applied in either order, so order is only counted here;
               losses and duplicates are counted per publish at the end. */
            if (seq < c->last_seq) reorders++;
            else if (seq == c->last_seq) dups++;
            else c->last_seq = seq;
            last_deliv_ns = t;
            return;
        }
        if (memmem(p, n, "pusher:ping", 11)) {
            static const char pong[] = "{\"event\":\"pusher:pong\",\"data\":{}}";
            send_frame(c, 1, pong, sizeof pong - 1);
        }
        return;
    }
    if (c->state == ST_ESTAB) {
        if (memmem(p, n, "pusher:connection_established", 29)) {
            socket_id(p, n, c->sid, sizeof c->sid);
            if (presence) { /* members join later, in the measured phase */
                c->state = ST_READY;
                pending--;
                ready++;
                return;
            }
            char m[512];
            int k;
            if (o.private_ch) {
                /* private-bench-N: sign "socket_id:channel" as an app's auth endpoint would */
                char sts[128], sighex[65];
                int sn = snprintf(sts, sizeof sts, "%s:private-bench-%d", c->sid, c->ch);
                sign(sts, sn, sighex);
                k = snprintf(m, sizeof m, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"private-bench-%d\","
                             "\"auth\":\"%s:%s\"}}", c->ch, o.key, sighex);
            } else {
                k = snprintf(m, sizeof m, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"bench-%d\"}}", c->ch);
            }
            if (send_frame(c, 1, m, (size_t)k) < 0) { errors++; kill_conn(c); return; }
            c->state = ST_SUBSCRIBING;
        } else if (memmem(p, n, "pusher:error", 12)) {
            fprintf(stderr, "loadgen: refused: %.*s\n", (int)n, p);
            errors++;
            kill_conn(c);
        }
        return;
    }
    if (c->state == ST_SUBSCRIBING) {
        if (memmem(p, n, "subscription_succeeded", 22)) {
            c->state = ST_READY;
            pending--;
            ready++;
            on_ready(c);
        } else if (memmem(p, n, "pusher:error", 12)) {
            fprintf(stderr, "loadgen: subscribe failed: %.*s\n", (int)n, p);
            errors++;
            kill_conn(c);
        }
    }
}

/* Parse WebSocket frames from p[0..n); returns how many bytes were consumed. */
static size_t parse_frames(conn_t *c, const char *p, size_t n, uint64_t t) {
    size_t off = 0;
    while (n - off >= 2) {
        const uint8_t *h = (const uint8_t *)p + off;
        int opcode = h[0] & 0x0f;
        uint64_t len = h[1] & 0x7f;
        size_t hl = 2;
        if (h[1] & 0x80) hl += 4; /* servers do not mask, but be lenient */
        if (len == 126) {
            if (n - off < 4) break;
            len = ((uint64_t)h[2] << 8) | h[3];
            hl += 2;
        } else if (len == 127) {
            if (n - off < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | h[2 + i];
            hl += 8;
        }
        if (n - off < hl + len) break;
        const char *payload = p + off + hl;
        if (opcode == 1 || opcode == 0) {
            on_message(c, payload, (size_t)len, t);
        } else if (opcode == 9) {
            send_frame(c, 10, payload, (size_t)len);
        } else if (opcode == 8) {
            if (c->state != ST_CLOSING) {
                if (c->state != ST_READY) fprintf(stderr, "loadgen: closed by server: %.*s\n",
                                                  (int)(len > 2 ? len - 2 : 0), payload + 2);
                errors++;
                kill_conn(c);
                return n;
            }
        }
        if (c->state == ST_DEAD) return n;
        off += hl + (size_t)len;
    }
    return off;
}

static void keep(conn_t *c, const char *p, size_t n) {
    if (n == 0) return;
    if (c->cap < n) {
        c->cap = (uint32_t)(n < 4096 ? 4096 : n);
        c->buf = realloc(c->buf, c->cap);
    }
    memmove(c->buf, p, n);
    c->len = (uint32_t)n;
}

static void on_handshake_data(conn_t *c, const char *p, size_t n, uint64_t t) {
    /* The 101 response is small; collect it in c->buf until the blank line. */
    if (c->len + n > c->cap) {
        c->cap = c->len + (uint32_t)n + 4096;
        c->buf = realloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, p, n);
    c->len += (uint32_t)n;
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) return;
    if (c->len < 12 || memcmp(c->buf + 9, "101", 3) != 0) {
        fprintf(stderr, "loadgen: handshake refused: %.*s\n", (int)(end - c->buf), c->buf);
        errors++;
        kill_conn(c);
        return;
    }
    c->state = ST_ESTAB;
    size_t rest = c->len - (size_t)(end + 4 - c->buf);
    char tmp[8192];
    if (rest > sizeof tmp) rest = sizeof tmp;
    memcpy(tmp, end + 4, rest);
    c->len = 0;
    size_t used = parse_frames(c, tmp, rest, t);
    if (c->state != ST_DEAD) keep(c, tmp + used, rest - used);
}

static void on_readable(conn_t *c, uint64_t t) {
    for (;;) {
        ssize_t r;
        if (c->state == ST_HANDSHAKE || c->len == 0) {
            r = read(c->fd, rbuf, sizeof rbuf);
        } else {
            /* continue a partial frame: append to what is left */
            if (c->cap - c->len < 65536) {
                c->cap = c->len + 65536;
                c->buf = realloc(c->buf, c->cap);
            }
            r = read(c->fd, c->buf + c->len, c->cap - c->len);
        }
        if (r < 0) {
            if (errno == EAGAIN) return;
            if (errno == EINTR) continue;
            if (c->state == ST_CLOSING) { churn_done++; kill_conn(c); return; }
            errors++;
            kill_conn(c);
            return;
        }
        if (r == 0) {
            if (c->state == ST_CLOSING) churn_done++; else errors++;
            kill_conn(c);
            return;
        }
        if (c->state == ST_HANDSHAKE) {
            on_handshake_data(c, rbuf, (size_t)r, t);
        } else if (c->len == 0) {
            size_t used = parse_frames(c, rbuf, (size_t)r, t);
            if (c->state != ST_DEAD) keep(c, rbuf + used, (size_t)r - used);
        } else {
            c->len += (uint32_t)r;
            size_t used = parse_frames(c, c->buf, c->len, t);
            if (c->state != ST_DEAD) {
                memmove(c->buf, c->buf + used, c->len - used);
                c->len -= (uint32_t)used;
            }
        }
        if (c->state == ST_DEAD) return;
        if ((size_t)r < sizeof rbuf && c->state == ST_READY) return; /* drained (level-triggered anyway) */
    }
}

static void on_writable(conn_t *c) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
        errno = err;
        fprintf(stderr, "loadgen: connect failed: %s\n", strerror(err));
        errors++;
        kill_conn(c);
        return;
    }
    if (c->kind == K_PUB) {
        c->state = ST_READY;
        ep_mod(c, EPOLLIN);
        if (o.closed_k && phase_start_ns && publishing_open(now_ns())) publish(c);
        return;
    }
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     o.path, o.host, o.port);
    if (send_all(c, req, (size_t)n) < 0) { errors++; kill_conn(c); return; }
    c->state = ST_HANDSHAKE;
    ep_mod(c, EPOLLIN);
}

/* ---- publisher ---------------------------------------------------------------------------------- */

static void hex(const unsigned char *d, int n, char *out) {
    static const char x[] = "0123456789abcdef";
    for (int i = 0; i < n; i++) {
        out[2 * i] = x[d[i] >> 4];
        out[2 * i + 1] = x[d[i] & 15];
    }
    out[2 * n] = 0;
}

/* The data of one event: "@@<sent ns> <event id> <channel> <sequence> " padded with 'x' to --data-size. */
static int event_data(char *out, size_t cap, uint64_t t, uint32_t id, int ch, uint32_t seq) {
    int dn = snprintf(out, cap, "@@%llu %u %d %u ", (unsigned long long)t, id, ch, seq);
    while (dn < o.data_size && dn < (int)cap - 1) out[dn++] = 'x';
    out[dn] = 0;
    return dn;
}

static int put(char *buf, size_t cap, int at, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int put(char *buf, size_t cap, int at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + at, cap - (size_t)at, fmt, ap);
    va_end(ap);
    return at + k;
}

/* One signed request. Each event has its own id (the unit of loss accounting):
 *   plain    POST /events, one channel: channels in round robin, sequence per channel;
 *   --batch  POST /batch_events with B events to B consecutive channels of the round robin;
 *   --multi  POST /events with "channels": M consecutive channels; the data is the same for all of them, so its
 *            sequence is the event id, which rises on every channel. */
static int publish(conn_t *c) {
    static char *body, *req, data[16384];
    static size_t body_cap, req_cap;
    if (!body) {
        body_cap = (size_t)o.batch * ((size_t)o.data_size + 160) + (size_t)o.multi * 40 + 256;
        req_cap = body_cap + 1024;
        body = malloc(body_cap);
        req = malloc(req_cap);
    }
    uint32_t events = (uint32_t)o.batch;
    if (n_pub + events > max_pub) return -1;
    uint32_t first = n_pub;
    n_pub += events;
    n_req++;
    uint64_t t = now_ns();
    const char *prefix = o.private_ch ? "private-" : "";
    int bn = 0;
    if (o.batch > 1) {
        bn = put(body, body_cap, bn, "{\"batch\":[");
        for (uint32_t j = 0; j < events; j++) {
            uint32_t id = first + j;
            int ch = (int)(id % (uint32_t)o.channels);
            event_data(data, sizeof data, t, id, ch, ch_seq[ch]++);
            bn = put(body, body_cap, bn, "%s{\"name\":\"bench\",\"channel\":\"%sbench-%d\",\"data\":\"%s\"}",
                     j ? "," : "", prefix, ch, data);
            p_sent[id] = t;
            p_expect[id] = (uint32_t)ch_subs[ch];
        }
        bn = put(body, body_cap, bn, "]}");
    } else if (o.multi > 1) {
        int ch0 = (int)(((uint64_t)first * (uint64_t)o.multi) % (uint64_t)o.channels);
        event_data(data, sizeof data, t, first, ch0, first);
        bn = put(body, body_cap, bn, "{\"name\":\"bench\",\"channels\":[");
        uint32_t want = 0;
        for (int j = 0; j < o.multi; j++) {
            int ch = (ch0 + j) % o.channels;
            bn = put(body, body_cap, bn, "%s\"%sbench-%d\"", j ? "," : "", prefix, ch);
            want += (uint32_t)ch_subs[ch];
        }
        bn = put(body, body_cap, bn, "],\"data\":\"%s\"}", data);
        p_sent[first] = t;
        p_expect[first] = want;
    } else {
        int ch = (int)(first % (uint32_t)o.channels);
        event_data(data, sizeof data, t, first, ch, ch_seq[ch]++);
        bn = put(body, body_cap, bn, "{\"name\":\"bench\",\"channel\":\"%sbench-%d\",\"data\":\"%s\"}", prefix, ch,
                 data);
        p_sent[first] = t;
        p_expect[first] = (uint32_t)ch_subs[ch];
    }
    const char *endpoint = o.batch > 1 ? "batch_events" : "events";
    unsigned char md[16];
    char md5hex[33], query[512], sts[700];
    EVP_Digest(body, (size_t)bn, md, NULL, EVP_md5(), NULL);
    hex(md, 16, md5hex);
    time_t ts = time(NULL);
    snprintf(query, sizeof query, "auth_key=%s&auth_timestamp=%ld&auth_version=1.0&body_md5=%s", o.key, (long)ts,
             md5hex);
    int sn = snprintf(sts, sizeof sts, "POST\n/apps/%s/%s\n%s", o.app_id, endpoint, query);
    unsigned char sig[32];
    unsigned int sl = 32;
    HMAC(EVP_sha256(), o.secret, (int)strlen(o.secret), (unsigned char *)sts, (size_t)sn, sig, &sl);
    char sighex[65];
    hex(sig, 32, sighex);
    int rn = snprintf(req, req_cap,
                      "POST /apps/%s/%s?%s&auth_signature=%s HTTP/1.1\r\nHost: %s:%d\r\n"
                      "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                      o.app_id, endpoint, query, sighex, o.host, o.port, bn, body);
    if (!first_pub_ns) first_pub_ns = t;
    last_pub_ns = t;
    c->busy = 1;
    c->sent_ns = t;
    c->pub_id = first;
    c->pub_n = events;
    if (send_all(c, req, (size_t)rn) < 0) die("publish write");
    return 0;
}

static void reopen_pub(conn_t *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->len = 0;
    c->fd = open_socket();
    c->state = ST_CONNECTING;
    ep_add(c, EPOLLOUT);
    pub_reconnects++;
}

static int publishing_open(uint64_t t) { return t < phase_start_ns + (uint64_t)(o.duration * 1e9); }

static void on_pub_readable(conn_t *c, uint64_t t) {
    ssize_t r = read(c->fd, rbuf, sizeof rbuf);
    if (r <= 0) {
        if (r < 0 && errno == EAGAIN) return;
        fprintf(stderr, "loadgen: publisher connection closed (%zd, pending %.*s)\n", r, (int)c->len, c->buf ? c->buf : "");
        exit(3);
    }
    if (c->len + (size_t)r > c->cap) {
        c->cap = c->len + (uint32_t)r + 4096;
        c->buf = realloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, rbuf, (size_t)r);
    c->len += (uint32_t)r;
    for (;;) { /* complete responses (Content-Length bodies) */
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end) return;
        char *cl = memmem(c->buf, (size_t)(end - c->buf), "Content-Length:", 15);
        if (!cl) cl = memmem(c->buf, (size_t)(end - c->buf), "content-length:", 15);
        size_t blen = cl ? strtoul(cl + 15, NULL, 10) : 0;
        size_t total = (size_t)(end + 4 - c->buf) + blen;
        if (c->len < total) return;
        int status = atoi(c->buf + 9);
        if (status != 200) {
            n_http_err++;
            if (n_http_err <= 5) fprintf(stderr, "loadgen: publish got %.*s\n", (int)c->len, c->buf);
            for (uint32_t j = 0; j < c->pub_n; j++) p_expect[c->pub_id + j] = 0;
        } else {
            n_acked++;
            n_events_acked += c->pub_n;
            for (uint32_t j = 0; j < c->pub_n; j++) expected += p_expect[c->pub_id + j];
        }
        if (c->busy) {
            http_us[n_http++] = (uint32_t)((t - c->sent_ns) / 1000);
            c->busy = 0;
        }
        int closing = memmem(c->buf, (size_t)(end - c->buf), "onnection: close", 16) != NULL;
        memmove(c->buf, c->buf + total, c->len - total);
        c->len -= (uint32_t)total;
        if (closing) { /* Soketi answers every API call with Connection: close: reconnect, publish once open */
            reopen_pub(c);
            return;
        }
        if (o.closed_k && publishing_open(t)) publish(c);
    }
}

/* ---- presence ----------------------------------------------------------------------------------- */

/* Members join presence-bench one after another, then leave one after another, at --join-rate operations/s.
 * A join (an op) awaits member_added at every member that had its subscription_succeeded, and had not left, when
 * the subscribe was sent; a leave awaits member_removed at every member in at that moment. A member leaves only
 * once everything it awaits has come (its own subscription_succeeded too), or LEAVE_WAIT after its turn, when
 * what has not come counts as missing; so no event is left in doubt by its watcher's unsubscribe, and a late
 * leave shifts the schedule (counted as delayed). */
#define LEAVE_WAIT_NS 1000000000ull

enum { P_OUT, P_JOINING, P_IN };

typedef struct {
    uint64_t sent, last, ok; /* ok: the joiner's own subscription_succeeded */
    uint32_t expect, got;
    int member, leave;
} op_t;

static op_t *ops;
static uint32_t n_ops, max_ops;
static uint64_t p_outstanding, added_dups, removed_dups, sub_errors, delayed_leaves;

static int user_index(const char *p, size_t n) {
    const char *at = memmem(p, n, "user_id", 7);
    if (!at) return -1;
    at += 7;
    while (at < p + n && (*at == '\\' || *at == '"' || *at == ':' || *at == ' ')) at++;
    if (at >= p + n || *at != 'u') return -1;
    int k = atoi(at + 1);
    return k >= 0 && k < o.subs ? k : -1;
}

static void on_member_event(conn_t *c, int64_t *want, uint64_t *dup, uint64_t t) {
    if (*want > 0) {
        op_t *op = &ops[*want - 1];
        op->got++;
        op->last = t;
        p_outstanding--;
        c->p_pending--;
        *want = -*want;
    } else if (*want < 0) {
        (*dup)++;
    }
}

static void on_presence_message(conn_t *c, const char *p, size_t n, uint64_t t) {
    last_deliv_ns = t;
    if (memmem(p, n, "member_added", 12)) {
        int k = user_index(p, n);
        if (c->pstate == P_IN && k >= 0 && k != c->ch) on_member_event(c, &c->want_add[k], &added_dups, t);
    } else if (memmem(p, n, "member_removed", 14)) {
        int k = user_index(p, n);
        if (c->pstate == P_IN && k >= 0 && k != c->ch) on_member_event(c, &c->want_rm[k], &removed_dups, t);
    } else if (memmem(p, n, "subscription_succeeded", 22)) {
        if (c->pstate != P_JOINING) return;
        c->pstate = P_IN;
        ops[c->join_op].ok = t;
        p_outstanding--;
        c->p_pending--;
    } else if (memmem(p, n, "pusher:ping", 11)) {
        static const char pong[] = "{\"event\":\"pusher:pong\",\"data\":{}}";
        send_frame(c, 1, pong, sizeof pong - 1);
    } else if (memmem(p, n, "error", 5)) {
        if (++sub_errors <= 5) fprintf(stderr, "loadgen: presence: %.*s\n", (int)n, p);
    }
}

static op_t *new_op(int member, int leave, uint64_t t) {
    op_t *op = &ops[n_ops++];
    op->member = member;
    op->leave = leave;
    op->sent = t;
    return op;
}

/* Everyone in (not the member itself) now awaits member_added or member_removed for it. */
static void await_at_members(conn_t *self, op_t *op, int leave) {
    int64_t tag = (int64_t)(op - ops) + 1;
    for (int w = 0; w < o.subs; w++) {
        conn_t *m = members[w];
        if (m == self || m->pstate != P_IN) continue;
        int64_t *want = leave ? &m->want_rm[self->ch] : &m->want_add[self->ch];
        if (*want > 0) { /* the previous event for this member never came: it stays missing on its op */
            p_outstanding--;
            m->p_pending--;
        }
        *want = tag;
        op->expect++;
        p_outstanding++;
        m->p_pending++;
    }
}

static void presence_join(conn_t *c, uint64_t t) {
    op_t *op = new_op(c->ch, 0, t);
    await_at_members(c, op, 0);
    char cd[96], sts[200], sighex[65], m[512];
    snprintf(cd, sizeof cd, "{\"user_id\":\"u%d\",\"user_info\":{}}", c->ch);
    int sn = snprintf(sts, sizeof sts, "%s:presence-bench:%s", c->sid, cd);
    sign(sts, sn, sighex);
    int k = snprintf(m, sizeof m, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"presence-bench\","
                     "\"auth\":\"%s:%s\",\"channel_data\":\"{\\\"user_id\\\":\\\"u%d\\\",\\\"user_info\\\":{}}\"}}",
                     o.key, sighex, c->ch);
    c->pstate = P_JOINING;
    c->join_op = (uint32_t)(op - ops);
    p_outstanding++; /* its own subscription_succeeded */
    c->p_pending++;
    if (send_frame(c, 1, m, (size_t)k) < 0) { errors++; kill_conn(c); }
}

/* What the member still awaits is missing from here on (it stays short on its op). */
static void give_up_waiting(conn_t *c) {
    for (int k = 0; k < o.subs; k++) {
        if (c->want_add[k] > 0) p_outstanding--;
        if (c->want_rm[k] > 0) p_outstanding--;
        c->want_add[k] = c->want_rm[k] = 0;
    }
    if (c->pstate == P_JOINING) p_outstanding--; /* its subscription_succeeded never came: counted at the end */
    c->p_pending = 0;
}

static void presence_leave(conn_t *c, uint64_t t) {
    give_up_waiting(c);
    c->pstate = P_OUT;
    op_t *op = new_op(c->ch, 1, t);
    await_at_members(c, op, 1);
    static const char m[] = "{\"event\":\"pusher:unsubscribe\",\"data\":{\"channel\":\"presence-bench\"}}";
    if (send_frame(c, 1, m, sizeof m - 1) < 0) { errors++; kill_conn(c); }
}

/* The op due at slot n of the cycle (members 0..N-1 join, then 0..N-1 leave); 0 while a leave waits. */
static int presence_step(uint64_t n, uint64_t due, uint64_t t) {
    int pos = (int)(n % (uint64_t)(2 * o.subs));
    conn_t *c = members[pos % o.subs];
    if (c->state != ST_READY) return 1;
    if (pos < o.subs) {
        if (c->pstate == P_OUT) presence_join(c, t);
        return 1;
    }
    if (c->pstate == P_OUT) return 1;
    static int waited;
    if (c->p_pending > 0 && t - due < LEAVE_WAIT_NS) {
        waited = 1;
        return 0;
    }
    delayed_leaves += (uint64_t)waited;
    waited = 0;
    presence_leave(c, t);
    return 1;
}

/* ---- statistics ---------------------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double hist_pct(double q) {
    uint64_t total = 0;
    for (int i = 0; i < HIST_US; i++) total += hist[i];
    if (!total) return 0;
    uint64_t want = (uint64_t)(q * (double)total);
    if (want >= total) want = total - 1;
    uint64_t acc = 0;
    for (int i = 0; i < HIST_US; i++) {
        acc += hist[i];
        if (acc > want) return i / 1000.0;
    }
    return 0;
}

static double hist_max(void) {
    for (int i = HIST_US - 1; i >= 0; i--)
        if (hist[i]) return i / 1000.0;
    return 0;
}

static double arr_pct(uint32_t *a, uint32_t n, double q) {
    if (!n) return 0;
    size_t i = (size_t)(q * n);
    if (i >= n) i = n - 1;
    return a[i] / 1000.0;
}

static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ---- main loop ----------------------------------------------------------------------------------- */

static int wait_line(void) {
    char line[64];
    return fgets(line, sizeof line, stdin) != NULL;
}

static void pump(int timeout_ms) {
    static struct epoll_event evs[1024];
    int n = epoll_wait(ep, evs, 1024, timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return;
        die("epoll_wait");
    }
    uint64_t t = now_ns();
    for (int i = 0; i < n; i++) {
        conn_t *c = evs[i].data.ptr;
        if (c->state == ST_DEAD) continue;
        if (c->state == ST_CONNECTING) {
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_writable(c);
            continue;
        }
        if (c->kind == K_PUB) on_pub_readable(c, t);
        else on_readable(c, t);
    }
}

static void connect_subs(void) {
    uint64_t deadline = now_ns() + 180ull * 1000000000ull;
    int next = 0;
    while (ready < o.subs) {
        while (next < o.subs && pending < o.conc) start_sub(next++ % o.channels);
        pump(100);
        if (errors > 0 && ready + pending < o.subs && next >= o.subs) {
            fprintf(stderr, "loadgen: %d connections failed\n", errors);
            exit(4);
        }
        if (now_ns() > deadline) {
            fprintf(stderr, "loadgen: only %d of %d subscribed\n", ready, o.subs);
            exit(4);
        }
    }
}

static void print_ms(const char *name, uint32_t *a, uint32_t n) {
    qsort(a, n, sizeof *a, cmp_u32);
    printf("\"%s\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},", name, arr_pct(a, n, 0.5), arr_pct(a, n, 0.99),
           arr_pct(a, n, 1.0));
}

/* Totals over the ops of one kind; us[]: completion times of the ops that some member awaited and that reached
   all of them. */
static void op_totals(int leave, uint32_t *us, uint32_t *n_us, uint64_t *count, uint64_t *lost, uint64_t *want,
                      uint64_t *missing) {
    for (uint32_t i = 0; i < n_ops; i++) {
        op_t *op = &ops[i];
        if (op->leave != leave) continue;
        (*count)++;
        *want += op->expect;
        *missing += op->expect - op->got;
        if (op->got < op->expect) (*lost)++;
        else if (op->expect) us[(*n_us)++] = (uint32_t)((op->last - op->sent) / 1000);
    }
}

static void run_presence(double setup_s) {
    max_ops = (uint32_t)(o.duration * o.join_rate) + 16;
    ops = calloc(max_ops, sizeof *ops);
    if (o.sync) {
        printf("ready %d %.3f\n", ready, setup_s);
        fflush(stdout);
        if (!wait_line()) exit(1);
    }
    double cpu0 = cpu_self();
    phase_start_ns = now_ns();
    uint64_t next_due = phase_start_ns, interval = (uint64_t)(1e9 / o.join_rate), n_sched = 0;
    for (;;) {
        uint64_t t = now_ns();
        int timeout = 100, waiting = 0;
        if (publishing_open(t)) {
            while (next_due <= t && publishing_open(next_due) && n_ops < max_ops) {
                if (!presence_step(n_sched, next_due, t)) {
                    waiting = 1;
                    break;
                }
                n_sched++;
                /* after a leave that waited, the schedule goes on from now (no burst to catch up) */
                next_due = t - next_due > interval ? t + interval : next_due + interval;
            }
            int64_t wait = (int64_t)(next_due - now_ns());
            timeout = waiting ? 1 : wait <= 0 ? 0 : (int)(wait / 1000000);
        } else {
            uint64_t quiet_from = last_deliv_ns > phase_start_ns + (uint64_t)(o.duration * 1e9)
                                      ? last_deliv_ns : phase_start_ns + (uint64_t)(o.duration * 1e9);
            if (p_outstanding == 0 || t - quiet_from > (uint64_t)(o.drain * 1e9)) break;
        }
        pump(timeout);
    }
    uint64_t phase_end = now_ns();
    if (o.sync) {
        printf("phase-end\n");
        fflush(stdout);
    }
    double client_cpu = cpu_self() - cpu0;
    uint32_t *join_us = calloc(n_ops + 1, sizeof *join_us), *leave_us = calloc(n_ops + 1, sizeof *leave_us);
    uint32_t *sub_us = calloc(n_ops + 1, sizeof *sub_us), n_join_us = 0, n_leave_us = 0, n_sub_us = 0;
    uint64_t joins = 0, joins_lost = 0, added_want = 0, added_missing = 0;
    uint64_t leaves = 0, leaves_lost = 0, removed_want = 0, removed_missing = 0, sub_missing = 0;
    op_totals(0, join_us, &n_join_us, &joins, &joins_lost, &added_want, &added_missing);
    op_totals(1, leave_us, &n_leave_us, &leaves, &leaves_lost, &removed_want, &removed_missing);
    for (uint32_t i = 0; i < n_ops; i++) {
        if (ops[i].leave) continue;
        if (ops[i].ok) sub_us[n_sub_us++] = (uint32_t)((ops[i].ok - ops[i].sent) / 1000);
        else sub_missing++;
    }
    printf("{\"mode\":\"presence\",\"members\":%d,\"join_rate\":%.1f,\"joins\":%llu,\"leaves\":%llu,"
           "\"watched_joins\":%u,\"joins_lost\":%llu,\"added_expected\":%llu,\"added_missing\":%llu,"
           "\"added_dups\":%llu,\"watched_leaves\":%u,\"leaves_lost\":%llu,\"removed_expected\":%llu,"
           "\"removed_missing\":%llu,\"removed_dups\":%llu,\"subscribe_missing\":%llu,\"subscribe_errors\":%llu,"
           "\"delayed_leaves\":%llu,",
           o.subs, o.join_rate, (unsigned long long)joins, (unsigned long long)leaves, n_join_us,
           (unsigned long long)joins_lost, (unsigned long long)added_want, (unsigned long long)added_missing,
           (unsigned long long)added_dups, n_leave_us, (unsigned long long)leaves_lost,
           (unsigned long long)removed_want, (unsigned long long)removed_missing, (unsigned long long)removed_dups,
           (unsigned long long)sub_missing, (unsigned long long)sub_errors,
           (unsigned long long)delayed_leaves);
    print_ms("join_ms", join_us, n_join_us);
    print_ms("leave_ms", leave_us, n_leave_us);
    print_ms("subscribed_ms", sub_us, n_sub_us);
    printf("\"window_s\":%.3f,\"errors\":%d,\"client_cpu_s\":%.3f,\"setup_s\":%.3f}\n",
           (phase_end - phase_start_ns) / 1e9, errors, client_cpu, setup_s);
}

static void run_churn(void) {
    uint64_t t_start = now_ns();
    int next = 0;
    uint64_t launched = 0;
    uint64_t reported = 0;
    /* Each cycle: connect, subscribe; once subscribed, send a close frame and wait for the server's EOF. */
    while (churn_done + churn_err < (uint64_t)o.cycles) {
        while (launched < (uint64_t)o.cycles && pending < o.conc) {
            start_sub(next++ % o.channels);
            launched++;
        }
        int e0 = errors;
        pump(100);
        churn_err += (uint64_t)(errors - e0);
        if (o.progress && churn_done >= reported + (uint64_t)o.progress) {
            reported = churn_done - churn_done % (uint64_t)o.progress;
            printf("progress %llu %.3f\n", (unsigned long long)churn_done, (now_ns() - t_start) / 1e9);
            fflush(stdout);
        }
        if (churn_err > 1000) {
            fprintf(stderr, "loadgen: too many churn errors\n");
            break;
        }
    }
    double secs = (now_ns() - t_start) / 1e9;
    printf("{\"mode\":\"churn\",\"cycles\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"cycles_per_s\":%.1f,"
           "\"client_cpu_s\":%.3f}\n",
           (unsigned long long)churn_done, (unsigned long long)churn_err, secs, churn_done / secs, cpu_self());
}

/* In churn mode a subscriber that got subscription_succeeded closes at once. */
static void on_ready(conn_t *c) {
    if (strcmp(o.mode, "churn") != 0) return;
    static const char bye[] = "\x03\xe8";
    if (send_frame(c, 8, bye, 2) < 0) { churn_err++; kill_conn(c); return; }
    ready--;
    pending++; /* counts against the parallelism until the server has closed */
    c->state = ST_CLOSING;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen [--mode fanout|idle|churn|presence] [--host H] [--port P] [--key K] [--app-id ID] [--secret S]\n"
            "  [--path /app/KEY?protocol=7] [--subs N] [--channels C] [--concurrency N]\n"
            "  [--publish closed:K|rate:R] [--duration S] [--pub-conns N] [--data-size B] [--drain S]\n"
            "  [--cycles M] [--progress N] [--sync] [--pub-port P] [--private] [--batch B] [--multi M]\n"
            "  [--join-rate R]   (--mode presence: --subs members, R joins or leaves per second)\n");
    exit(1);
}

int main(int argc, char **argv) {
    static struct option opts[] = {
        {"mode", 1, 0, 'm'}, {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"key", 1, 0, 'k'},
        {"app-id", 1, 0, 'a'}, {"secret", 1, 0, 's'}, {"path", 1, 0, 'P'}, {"subs", 1, 0, 'n'},
        {"channels", 1, 0, 'c'}, {"concurrency", 1, 0, 'C'}, {"publish", 1, 0, 'u'}, {"duration", 1, 0, 'd'},
        {"pub-conns", 1, 0, 'q'}, {"data-size", 1, 0, 'z'}, {"drain", 1, 0, 'D'}, {"cycles", 1, 0, 'y'},
        {"progress", 1, 0, 'g'}, {"sync", 0, 0, 'S'}, {"pub-port", 1, 0, 'Q'}, {"private", 0, 0, 'X'},
        {"batch", 1, 0, 'B'}, {"multi", 1, 0, 'M'}, {"join-rate", 1, 0, 'J'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': o.mode = optarg; break;
        case 'h': o.host = optarg; break;
        case 'p': o.port = atoi(optarg); break;
        case 'k': o.key = optarg; break;
        case 'a': o.app_id = optarg; break;
        case 's': o.secret = optarg; break;
        case 'P': o.path = optarg; break;
        case 'n': o.subs = atoi(optarg); break;
        case 'c': o.channels = atoi(optarg); break;
        case 'C': o.conc = atoi(optarg); break;
        case 'u': o.publish = optarg; break;
        case 'd': o.duration = atof(optarg); break;
        case 'q': o.pub_conns = atoi(optarg); break;
        case 'z': o.data_size = atoi(optarg); break;
        case 'D': o.drain = atof(optarg); break;
        case 'y': o.cycles = atoi(optarg); break;
        case 'g': o.progress = atoi(optarg); break;
        case 'S': o.sync = 1; break;
        case 'Q': o.pub_port = atoi(optarg); break;
        case 'X': o.private_ch = 1; break;
        case 'B': o.batch = atoi(optarg); break;
        case 'M': o.multi = atoi(optarg); break;
        case 'J': o.join_rate = atof(optarg); break;
        default: usage();
        }
    }
    presence = strcmp(o.mode, "presence") == 0;
    if (presence) o.channels = o.subs; /* a member's index is its "channel" */
    if (o.channels < 1 || o.pub_conns < 1 || o.pub_conns > MAX_PUB_CONNS) usage();
    if (o.batch < 1 || o.batch > 100 || o.data_size > 16000 || o.multi < 1 || o.multi > o.channels) usage();
    if ((o.batch > 1 && o.multi > 1) || o.join_rate <= 0) usage();
    static char pathbuf[512];
    if (!o.path) {
        snprintf(pathbuf, sizeof pathbuf, "/app/%s?protocol=7&client=vask-loadgen&version=1.0", o.key);
        o.path = pathbuf;
    }
    if (strncmp(o.publish, "closed:", 7) == 0) {
        o.closed_k = atoi(o.publish + 7);
        if (o.closed_k > o.pub_conns) o.pub_conns = o.closed_k;
    } else if (strncmp(o.publish, "rate:", 5) == 0) {
        o.closed_k = 0;
        o.rate = atof(o.publish + 5);
    } else {
        usage();
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o.port);
    inet_pton(AF_INET, o.host, &addr.sin_addr);
    pub_addr = addr;
    if (o.pub_port) pub_addr.sin_port = htons((uint16_t)o.pub_port);
    ep = epoll_create1(EPOLL_CLOEXEC);
    ch_subs = calloc((size_t)o.channels, sizeof *ch_subs);
    if (presence) members = calloc((size_t)o.subs, sizeof *members);
    ch_seq = calloc((size_t)o.channels, sizeof *ch_seq);
    for (int i = 0; i < o.subs; i++) ch_subs[i % o.channels]++;
    t0_ns = now_ns();

    if (strcmp(o.mode, "churn") == 0) {
        run_churn();
        return 0;
    }
    connect_subs();
    double setup_s = (now_ns() - t0_ns) / 1e9;
    if (presence) {
        run_presence(setup_s);
        return 0;
    }
    if (strcmp(o.mode, "idle") == 0) {
        printf("ready %d %.3f\n", ready, setup_s);
        fflush(stdout);
        /* hold the connections (answering pings) until stdin closes */
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
        int in = dup(0);
        fcntl(in, F_SETFL, O_NONBLOCK);
        conn_t stdin_conn = {.fd = in, .state = ST_DEAD};
        e.data.ptr = &stdin_conn;
        epoll_ctl(ep, EPOLL_CTL_ADD, in, &e);
        for (;;) {
            pump(1000);
            char b[64];
            ssize_t r = read(in, b, sizeof b);
            if (r == 0 || (r > 0 && memchr(b, 'q', (size_t)r))) break;
        }
        printf("{\"mode\":\"idle\",\"subs\":%d,\"alive\":%d,\"errors\":%d,\"setup_s\":%.3f}\n", o.subs, ready,
               errors, setup_s);
        return 0;
    }

    p_sent = calloc(max_pub, sizeof *p_sent);
    p_last = calloc(max_pub, sizeof *p_last);
    p_recv = calloc(max_pub, sizeof *p_recv);
    p_expect = calloc(max_pub, sizeof *p_expect);
    hist = calloc(HIST_US, sizeof *hist);
    http_us = calloc(max_pub, sizeof *http_us);
    for (int i = 0; i < o.pub_conns; i++) {
        conn_t *c = calloc(1, sizeof *c);
        c->kind = K_PUB;
        c->fd = open_socket_to(&pub_addr);
        c->state = ST_CONNECTING;
        ep_add(c, EPOLLOUT);
        pubs[i] = c;
    }
    for (int done = 0; !done;) {
        pump(100);
        done = 1;
        for (int i = 0; i < o.pub_conns; i++) done &= pubs[i]->state == ST_READY;
    }
    if (o.sync) {
        printf("ready %d %.3f\n", ready, setup_s);
        fflush(stdout);
        if (!wait_line()) return 1;
    }
    double cpu0 = cpu_self();
    phase_start_ns = now_ns();
    if (o.closed_k) {
        for (int i = 0; i < o.closed_k; i++) publish(pubs[i]);
    }
    uint64_t next_due = phase_start_ns, blocked_due = 0;
    uint64_t interval = o.rate > 0 ? (uint64_t)(1e9 / o.rate) : 0;
    for (;;) {
        uint64_t t = now_ns();
        int timeout = 100;
        if (!o.closed_k && publishing_open(t)) {
            while (next_due <= t && publishing_open(next_due)) {
                conn_t *free_c = NULL;
                for (int i = 0; i < o.pub_conns && !free_c; i++)
                    if (!pubs[i]->busy && pubs[i]->state == ST_READY) free_c = pubs[i];
                if (!free_c) { /* all publisher connections busy: this one goes late (counted once) */
                    if (blocked_due != next_due) backlog++;
                    blocked_due = next_due;
                    break;
                }
                if (t - next_due > 1000000) late++;
                publish(free_c);
                next_due += interval;
            }
            int64_t wait = (int64_t)(next_due - now_ns());
            timeout = wait <= 0 ? 0 : (int)(wait / 1000000);
        }
        if (!publishing_open(t)) {
            int busy = 0;
            for (int i = 0; i < o.pub_conns; i++) busy |= pubs[i]->busy;
            uint64_t quiet_from = last_deliv_ns > last_pub_ns ? last_deliv_ns : last_pub_ns;
            if (!busy && (delivered >= expected || t - quiet_from > (uint64_t)(o.drain * 1e9))) break;
        }
        pump(timeout);
    }
    uint64_t phase_end = now_ns();
    if (o.sync) {
        printf("phase-end\n");
        fflush(stdout);
    }
    double client_cpu = cpu_self() - cpu0;
    /* time to last subscriber, for every publish that reached all of its subscribers */
    uint32_t *last = calloc(n_pub + 1, sizeof *last);
    uint32_t n_last = 0, incomplete = 0;
    for (uint32_t i = 0; i < n_pub; i++) {
        if (!p_expect[i]) continue;
        if (p_recv[i] < p_expect[i]) gaps += p_expect[i] - p_recv[i];
        if (p_recv[i] >= p_expect[i]) last[n_last++] = (uint32_t)((p_last[i] - p_sent[i]) / 1000);
        else incomplete++;
    }
    qsort(last, n_last, sizeof *last, cmp_u32);
    qsort(http_us, n_http, sizeof *http_us, cmp_u32);
    uint64_t end = last_deliv_ns > first_pub_ns ? last_deliv_ns : phase_end;
    double window = (end - first_pub_ns) / 1e9;
    printf("{\"mode\":\"fanout\",\"subs\":%d,\"channels\":%d,\"publish\":\"%s\",\"publishes\":%u,\"acked\":%u,"
           "\"http_errors\":%u,\"expected\":%llu,\"delivered\":%llu,\"lost\":%lld,\"dups\":%llu,\"gaps\":%llu,"
           "\"reorders\":%llu,\"incomplete\":%u,\"window_s\":%.3f,\"deliveries_per_s\":%.1f,"
           "\"publishes_per_s\":%.1f,\"batch\":%d,\"multi\":%d,\"requests\":%u,\"events_acked\":%u,"
           "\"events_per_s\":%.1f,"
           "\"e2e_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
           "\"last_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
           "\"http_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
           "\"backlog\":%llu,\"late\":%llu,\"pub_reconnects\":%llu,\"errors\":%d,\"client_cpu_s\":%.3f,\"setup_s\":%.3f}\n",
           o.subs, o.channels, o.publish, n_pub, n_acked, n_http_err, (unsigned long long)expected,
           (unsigned long long)delivered, (long long)expected - (long long)delivered, (unsigned long long)dups,
           (unsigned long long)gaps, (unsigned long long)reorders, incomplete, window, delivered / window,
           n_acked / window, o.batch, o.multi, n_req, n_events_acked, n_events_acked / window, hist_pct(0.5), hist_pct(0.9), hist_pct(0.99), hist_max(), arr_pct(last, n_last, 0.5),
           arr_pct(last, n_last, 0.99), arr_pct(last, n_last, 1.0), arr_pct(http_us, n_http, 0.5),
           arr_pct(http_us, n_http, 0.99), arr_pct(http_us, n_http, 1.0), (unsigned long long)backlog,
           (unsigned long long)late, (unsigned long long)pub_reconnects, errors, client_cpu, setup_s);
    return 0;
}
