"""Keep webhook requests out of the server's own network (reliability.md §3 row 15).

Webhook URLs are chosen by whoever manages an app. Unless the operator allows it, a URL whose host is, or
resolves to, an address that is not publicly routable is refused. The check happens inside the resolver the
HTTP client connects with, so the addresses checked are the addresses connected to: a DNS answer that
changes between a check and the connection (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from ipaddress import IPv4Address, IPv6Address
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Cloud instance-metadata endpoints (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba): named for clear logs; all
# of them are also caught by the generic rules below.
_METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")}


class AddressRefused(OSError):
    """A webhook URL's host is (or resolves to) an address webhooks may not reach."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"{host} is {reason} ({address}); set webhook_allow_private to allow it"
                         if host != address else f"{address} is {reason}; set webhook_allow_private to allow it")
        self.host = host
        self.address = address
        self.reason = reason


class UrlRefused(ValueError):
    """The URL itself is not allowed (scheme, missing host)."""


def refusal(address: str) -> str | None:
    """Why webhooks may not reach ``address`` (an IP literal), or None when it is publicly routable."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id (fe80::1%eth0)
    if isinstance(ip, IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = refusal(str(embedded))
            return f"{inner} (IPv4 {embedded} inside IPv6)" if inner else None
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "loopback"
    if ip in _METADATA:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "link-local"
    if isinstance(ip, IPv4Address) and ip in _CGNAT:
        return "carrier-grade NAT (shared) space"
    if ip.is_private:
        return "private"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved or not ip.is_global:
        return "not publicly routable"
    return None


def _embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: IPv4-mapped (::ffff:a.b.c.d), 6to4, NAT64 well-known prefix."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_url(url: str, *, allow_private: bool, require_https: bool) -> None:
    """Refuse by the URL alone: a wrong scheme, no host, or a literal IP that is not allowed.

    Host names are checked when they are resolved (``GuardedResolver``); HTTP clients skip the resolver for
    literal IPs, so those are checked here.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused(f"not an http(s) URL with a host: {safe_url(url)}")
    if require_https and parts.scheme != "https":
        raise UrlRefused(f"webhook_require_https is on and {safe_url(url)} is not https")
    if allow_private:
        return
    try:
        ipaddress.ip_address(parts.hostname.split("%", 1)[0])
    except ValueError:
        return  # a name (or an odd numeric form such as 127.1): the resolver decides
    reason = refusal(parts.hostname)
    if reason is not None:
        raise AddressRefused(parts.hostname, parts.hostname, reason)


def safe_url(url: str) -> str:
    """The URL for logs: scheme, host, port and path only (user info and query may hold secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that returns only allowed addresses, so the connection goes to what was checked.

    A name with any refused address is refused as a whole: a mix of public and private answers is what a
    rebinding attempt looks like.
    """

    def __init__(self, allow_private: bool = False) -> None:
        self.allow_private = allow_private

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        results: list[ResolveResult] = []
        for fam, _, proto, _, sockaddr in infos:
            address = str(sockaddr[0])
            if not self.allow_private:
                reason = refusal(address)
                if reason is not None:
                    raise AddressRefused(host, address, reason)
            results.append(ResolveResult(hostname=host, host=address, port=int(sockaddr[1]), family=fam,
                                         proto=proto, flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV))
        if not results:
            raise OSError(f"no address for {host}")
        return results

    async def close(self) -> None:
        return None
