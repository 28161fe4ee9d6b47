"""Outbound URL policy: metadata and link-local always refused, loopback and private ranges by setting."""

from __future__ import annotations

import ipaddress

import pytest

from ains.core.platform.settings import Settings
from ains.core.platform.url_safety import UnsafeUrl, UrlPolicy, address_problem, check_url

DEV = UrlPolicy(allow_loopback=True, allow_private=False)
STRICT = UrlPolicy(allow_loopback=False, allow_private=False)
OPEN = UrlPolicy(allow_loopback=True, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.170.2/v2/credentials",
        "http://100.100.100.200/latest/meta-data",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://169.254.1.1:8080/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[::ffff:169.254.169.254]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "ftp://example.com/",
    ],
)
async def test_always_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        await check_url(url, OPEN)


async def test_loopback_and_private_follow_the_policy() -> None:
    for url in ("http://127.0.0.1:9000/hook", "http://localhost:9000/hook", "http://[::1]/x"):
        await check_url(url, DEV)
        with pytest.raises(UnsafeUrl, match="loopback"):
            await check_url(url, STRICT)
    for url in ("http://10.0.0.5/", "http://192.168.1.1/", "http://172.16.0.1/", "http://100.64.0.1/"):
        with pytest.raises(UnsafeUrl, match="private"):
            await check_url(url, DEV)
        await check_url(url, OPEN)
    await check_url("https://93.184.215.14/hook", STRICT)


async def test_unresolvable_hosts_pass_registration_but_not_delivery() -> None:
    await check_url("http://does-not-exist.invalid/hook", STRICT)
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        await check_url("http://does-not-exist.invalid/hook", STRICT, require_resolution=True)


def test_policy_from_settings() -> None:
    assert UrlPolicy.from_settings(Settings(environment="development")).allow_loopback
    assert not UrlPolicy.from_settings(
        Settings(environment="production", agent_signing_secret="a", callback_signing_secret="b", ui_session_secret="c")
    ).allow_loopback
    assert not UrlPolicy.from_settings(Settings(allow_loopback_urls=False)).allow_loopback
    assert UrlPolicy.from_settings(Settings(allow_private_urls=True)).allow_private
    assert address_problem(ipaddress.ip_address("8.8.8.8"), STRICT) is None
