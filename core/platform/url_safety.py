"""Refuse outbound URLs (agents, webhooks, callbacks) that point where AINS must never send requests.

Always refused: link-local (169.254/16, fe80::/10, which hold the cloud metadata services), known
metadata addresses and host names, unspecified (0.0.0.0, ::), multicast and reserved ranges.
Loopback only when ``Settings.loopback_urls_allowed`` (default outside production); private ranges
(10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) only when ``Settings.allow_private_urls``.

Host names are resolved and every address is checked, at registration and again before each webhook
delivery (so a DNS change cannot turn an accepted URL into a metadata request). A name that does not
resolve is accepted at registration (it may be created later) and fails at delivery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from ains.core.platform.errors import InvalidInput
from ains.core.platform.settings import Settings

DNS_TIMEOUT_SECONDS = 2.0
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(InvalidInput):
    code = "unsafe_url"


@dataclass(frozen=True)
class UrlPolicy:
    allow_loopback: bool = True
    allow_private: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        return cls(allow_loopback=settings.loopback_urls_allowed, allow_private=settings.allow_private_urls)


def address_problem(address: IPAddress, policy: UrlPolicy) -> str | None:
    """Why ``address`` is refused under ``policy``, or None when it is fine."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_problem(address.ipv4_mapped, policy)
    if address in METADATA_ADDRESSES:
        return "is a cloud metadata address"
    if address.is_link_local:
        return "is link-local (where cloud metadata services live)"
    if address.is_unspecified or address.is_multicast:
        return "is not a unicast address"
    if address.is_loopback:
        return None if policy.allow_loopback else "is loopback, which AINS_ALLOW_LOOPBACK_URLS does not allow"
    if address.is_private or (isinstance(address, ipaddress.IPv4Address) and address in CGNAT):
        return None if policy.allow_private else "is in a private range, which AINS_ALLOW_PRIVATE_URLS does not allow"
    if address.is_reserved:
        return "is in a reserved range"
    return None


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise UnsafeUrl(f"URL {url!r} must use http or https")
    if not parts.hostname:
        raise UnsafeUrl(f"URL {url!r} has no host")
    return parts.hostname.rstrip(".").lower()


async def _resolve(host: str) -> list[IPAddress] | None:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(DNS_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def check_url(url: str, policy: UrlPolicy, *, require_resolution: bool = False) -> None:
    """Raise ``UnsafeUrl`` (a 422 through the API) when ``url`` may not be called."""
    host = _host_of(url)
    if host in METADATA_HOSTS:
        raise UnsafeUrl(f"URL {url!r} points at a cloud metadata service")
    try:
        addresses: list[IPAddress] | None = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = await _resolve(host)
    if addresses is None:
        if require_resolution:
            raise UnsafeUrl(f"host {host!r} of URL {url!r} does not resolve")
        return
    for address in addresses:
        problem = address_problem(address, policy)
        if problem is not None:
            raise UnsafeUrl(f"URL {url!r} is refused: {host} ({address}) {problem}")
