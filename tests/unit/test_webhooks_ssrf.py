"""The address classifier, URL checks and the pinning resolver that keep webhooks out of private networks."""

from __future__ import annotations

import asyncio

import pytest

from vask.webhooks.ssrf import AddressRefused, GuardedResolver, UrlRefused, check_url, refusal, safe_url


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.169.254", "a cloud metadata address"),
    ("fd00:ec2::254", "a cloud metadata address"),
    ("100.100.100.200", "a cloud metadata address"),
    ("169.254.10.20", "link-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("100.64.0.1", "carrier-grade NAT (shared) space"),
    ("100.127.255.254", "carrier-grade NAT (shared) space"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "private"),  # reserved 240/4 is in Python's private list
    ("192.0.2.1", "private"),  # documentation range
])
def test_refused_addresses(address: str, reason: str) -> None:
    assert refusal(address) == reason


@pytest.mark.parametrize(("address", "inner"), [
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "a cloud metadata address"),
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),  # NAT64 of 169.254.169.254
])
def test_ipv4_inside_ipv6_is_judged_by_the_ipv4_address(address: str, inner: str) -> None:
    reason = refusal(address)
    assert reason is not None and reason.startswith(inner) and "inside IPv6" in reason


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "100.128.0.1", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(address) is None


def test_check_url() -> None:
    check_url("https://hooks.example.com/x", allow_private=False, require_https=True)
    check_url("http://8.8.8.8/x", allow_private=False, require_https=False)
    check_url("http://localhost/x", allow_private=False, require_https=False)  # names: the resolver decides
    check_url("http://127.0.0.1:8000/x", allow_private=True, require_https=False)
    with pytest.raises(AddressRefused, match="loopback"):
        check_url("http://127.0.0.1:8000/x", allow_private=False, require_https=False)
    with pytest.raises(AddressRefused, match="loopback"):
        check_url("http://[::ffff:7f00:1]/x", allow_private=False, require_https=False)
    with pytest.raises(UrlRefused, match="https"):
        check_url("http://hooks.example.com/x", allow_private=False, require_https=True)
    with pytest.raises(UrlRefused):
        check_url("file:///etc/passwd", allow_private=True, require_https=False)


def test_safe_url_drops_credentials_and_query() -> None:
    assert safe_url("https://user:pw@hooks.test:8443/p/h?token=abc") == "https://hooks.test:8443/p/h"
    assert safe_url("http://[::1]/h") == "http://[::1]/h"


def test_resolver_refuses_names_of_private_addresses_and_pins_allowed_ones() -> None:
    async def resolve(allow: bool, host: str) -> list[str]:
        resolver = GuardedResolver(allow_private=allow)
        try:
            return [r["host"] for r in await resolver.resolve(host, 80, family=0)]  # type: ignore[arg-type]
        finally:
            await resolver.close()

    with pytest.raises(AddressRefused, match="localhost is loopback"):
        asyncio.run(resolve(False, "localhost"))
    with pytest.raises(AddressRefused):
        asyncio.run(resolve(False, "127.1"))  # a legacy numeric form resolves to 127.0.0.1
    addresses = asyncio.run(resolve(True, "localhost"))
    assert addresses and all(refusal(a) == "loopback" for a in addresses)
