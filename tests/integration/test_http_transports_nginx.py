"""pusher-js' xhr_streaming through the real nginx (Debian's /usr/sbin/nginx) in front of Vask.

The nginx configuration is the recipe of docs/http-fallback.md (proxy_buffering off, HTTP/1.1 to the upstream,
long read timeouts), written into the test's directory; nginx listens on a free port as an unprivileged,
single-process server. Skips with the reason when nginx is not installed.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from js_helpers import JsHarness, js_fixture, node_env_fixture, wait_subscription_count  # noqa: F401

pytestmark = pytest.mark.node

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

# The location block is the one docs/http-fallback.md recommends (WebSocket upgrade and HTTP fallback share it).
CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    upstream vask {{ server {upstream}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://vask;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def nginx(server: Any, tmp_path: Path) -> Iterator[int]:
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light): the proxy test needs the real one")
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(CONFIG.format(dir=tmp_path, upstream=f"{server.host}:{server.port}", port=port))
    process = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                raise RuntimeError(f"nginx did not start: {output}\n{(tmp_path / 'error.log').read_text()}") from None
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(timeout=10)


def test_xhr_streaming_through_nginx(server: Any, nginx: int, js: JsHarness) -> None:
    client = js.client(server, connect=False)
    client.connect(httpHost="127.0.0.1", httpPort=nginx, enabledTransports=["xhr_streaming"])
    assert client.state()["transport"] == "xhr_streaming"
    client.subscribe("private-proxied")
    client.subscribe("news")
    wait_subscription_count(server, "news", 1)
    api = server.pusher()
    for n in range(3):
        sent = time.monotonic()
        api.trigger("news", "story", {"n": n})
        client.wait_for(lambda e, n=n: e["data"] == {"n": n}, type="event", channel="news", event="story")
        # not held in a proxy buffer: each message arrives on its own, at once
        assert time.monotonic() - sent < 1.0


def test_stream_lines_are_not_buffered_by_nginx(server: Any, nginx: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", nginx, timeout=5)
    conn.request("POST", f"/pusher/app/{server.app.key}/7/abcdefgh/xhr_streaming?protocol=7&t=1&n=1")
    response = conn.getresponse()
    assert response.status == 200
    assert response.readline() == b"o\n"  # the stream is open: the first lines pass before the response ends
    assert b"pusher:connection_established" in response.readline()
    conn.close()
