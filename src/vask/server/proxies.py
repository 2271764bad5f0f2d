"""The client's address behind reverse proxies: X-Forwarded-For is believed only from ``trusted_proxies``.

The header is read from the right: each hop appends the address it saw. Starting from the peer of the TCP
connection, every address that is a trusted proxy is skipped; the first one that is not is the client. A client
that sends its own X-Forwarded-For straight to Vask (not through a trusted proxy) changes nothing.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().removeprefix("[").partition("]")[0] if address.strip().startswith("[")
                                  else address.strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in trusted)


def client_address(peer: str, headers: list[tuple[str, str]], trusted_proxies: list[str]) -> str:
    """The client's address for logs: ``peer`` unless it is a trusted proxy that says who it forwards for."""
    if not trusted_proxies:
        return peer
    trusted = networks(tuple(trusted_proxies))
    if not is_trusted(peer, trusted):
        return peer
    hops: list[str] = []
    for name, value in headers:
        if name.lower() == "x-forwarded-for":
            hops += [hop.strip() for hop in value.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        client = hop
        if not is_trusted(hop, trusted):
            break
    return client


def peer_of(transport: object) -> str:
    get = getattr(transport, "get_extra_info", None)
    peername = get("peername") if get is not None else None
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return "unknown"
