"""What the data plane's handlers pass around: a parsed HTTP request and the response to write."""

from __future__ import annotations

from dataclasses import dataclass

Headers = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class HttpRequest:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool
    upgrade: bool
    version: str = "1.1"
    started: float = 0.0  # perf_counter at the end of the request, for the latency histogram


# Not frozen: a frozen dataclass's __init__ costs ~5x (object.__setattr__ per field) and one is built per request.
@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def error(status: int, message: str) -> Response:
        return Response(status, message.encode(), "text/plain; charset=utf-8")


OK = Response(200, b"OK", "text/plain; charset=utf-8")
