"""Flood bounds of one server process: sockets per source address, and the half-open sockets it holds.

A half-open socket is one still in its HTTP phase: nothing received yet, a request in progress, or an idle
keep-alive connection. Each lives at most ``http_request_timeout`` / ``http_idle_timeout``; on top of that at
most ``max_half_open`` are held, and a new one pushes out the one whose last request is oldest, so an attacker
opening sockets and never finishing them can neither exhaust file descriptors nor lock out normal clients.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from vask.config import Settings
from vask.server.proxies import is_trusted, networks

P = TypeVar("P")  # an HTTP connection (vask.server.node.HttpPeer)


class Guard(Generic[P]):
    def __init__(self, settings: Settings) -> None:
        self.per_ip = settings.max_connections_per_ip
        self.trusted = networks(tuple(settings.trusted_proxies))
        self.max_half_open = settings.max_half_open
        self.by_ip: dict[str, int] = {}
        self.half_open: dict[P, None] = {}  # insertion order: oldest first
        self.refused = 0  # sockets answered 429 for the per-address cap
        self.evicted = 0  # half-open sockets dropped to make room

    def admit(self, ip: str) -> bool:
        """Count a new socket from ``ip``; False (and not counted) when the address is over its cap."""
        if not self.per_ip or (self.trusted and is_trusted(ip, self.trusted)):
            return True
        count = self.by_ip.get(ip, 0)
        if count >= self.per_ip:
            self.refused += 1
            return False
        self.by_ip[ip] = count + 1
        return True

    def release(self, ip: str) -> None:
        count = self.by_ip.get(ip)
        if count is None:
            return
        if count <= 1:
            del self.by_ip[ip]
        else:
            self.by_ip[ip] = count - 1

    def enter(self, proto: P) -> P | None:
        """``proto`` is (again) waiting for a request; returns the oldest half-open socket to drop, if any."""
        self.half_open.pop(proto, None)
        self.half_open[proto] = None
        if len(self.half_open) > self.max_half_open:
            oldest = next(iter(self.half_open))
            del self.half_open[oldest]
            self.evicted += 1
            return oldest
        return None

    def leave(self, proto: P) -> None:
        self.half_open.pop(proto, None)
