"""Raw HTTP clients for pusher-js' HTTP transports (xhr_streaming / xhr / xhr_send), as pusher-js 8 speaks them.

pusher-js builds ``{httpPath}/app/{key}/{server}/{session}/{kind}`` (server: a number below 1000, session: 8
base-32 characters) and adds ``t=<ms>&n=<counter>`` to every request; client frames are posted as a JSON array
of strings. These helpers do the same with http.client, so a test can also send what pusher-js never would.
"""

from __future__ import annotations

import http.client
import itertools
import json
import secrets
from typing import Any

_counter = itertools.count(1)


def new_session_path(key: str, prefix: str = "/pusher") -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuv"
    session = "".join(secrets.choice(alphabet) for _ in range(8))
    return f"{prefix}/app/{key}/{secrets.randbelow(1000)}/{session}"


def post(server: Any, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
         timeout: float = 10.0, method: str = "POST", number: int | None = None,
         host: str | None = None, port: int | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, headers with lower-case names, body)."""
    conn = http.client.HTTPConnection(host or server.host, port or server.port, timeout=timeout)
    try:
        n = next(_counter) if number is None else number
        sep = "&" if "?" in path else "?"
        conn.request(method, f"{path}{sep}t=1&n={n}", body=body,
                     headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def lines(body: bytes) -> list[str]:
    return [line for line in body.decode().split("\n") if line]


def messages(line: str) -> list[dict[str, Any]]:
    """The Pusher messages of one ``a[...]`` line."""
    assert line.startswith("a["), line
    return [json.loads(item) for item in json.loads(line[1:])]


def send(server: Any, path: str, *frames: dict[str, Any], number: int | None = None,
         **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps([json.dumps(frame) for frame in frames]).encode()
    return post(server, f"{path}/xhr_send", body, number=number, **kwargs)


class Poller:
    """A polling session: the first poll opens it, each later poll returns what arrived since."""

    def __init__(self, server: Any, key: str | None = None, prefix: str = "/pusher", **kwargs: Any) -> None:
        self.server = server
        self.kwargs = kwargs
        self.path = new_session_path(key or server.app.key, prefix)
        status, _, body = self.poll_raw()
        assert (status, body) == (200, b"o\n"), (status, body)
        established = self.poll()
        assert established[0]["event"] == "pusher:connection_established", established
        self.socket_id = json.loads(established[0]["data"])["socket_id"]

    def poll_raw(self, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        return post(self.server, f"{self.path}/xhr?protocol=7&client=js&version=8.6.0", timeout=timeout,
                    **self.kwargs)

    def poll(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        status, _, body = self.poll_raw(timeout)
        assert status == 200, (status, body)
        found: list[dict[str, Any]] = []
        for line in lines(body):
            if line.startswith("a"):
                found += messages(line)
        return found

    def send(self, *frames: dict[str, Any], number: int | None = None) -> tuple[int, dict[str, str], bytes]:
        return send(self.server, self.path, *frames, number=number, **self.kwargs)

    def subscribe(self, channel: str) -> None:
        status, _, body = self.send({"event": "pusher:subscribe", "data": {"channel": channel}})
        assert status == 204, (status, body)
        got = self.poll()
        assert got[0]["event"] == "pusher_internal:subscription_succeeded", got
