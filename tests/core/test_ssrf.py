"""The SSRF guard: hostile webhook URLs are refused with a clear error unless
allow-listed. Host names are resolved through a stub resolver, never the network."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from ttc_core.webhooks.ssrf import (
    SSRFPolicy,
    UnsafeWebhookURL,
    check_webhook_url,
    parse_ipv4_number,
    refusal_reason,
)

#: What the stub "DNS" knows.
ZONE: dict[str, list[str]] = {
    "hooks.example.com": ["93.184.216.34"],
    "v6.example.com": ["2606:4700::6810:85e5"],
    "internal.example.com": ["10.1.2.3"],
    "metadata.example.com": ["169.254.169.254"],
    "sneaky.example.com": ["93.184.216.34", "127.0.0.1"],  # one public, one loopback
    "mapped.example.com": ["::ffff:192.168.1.1"],
    "localhost.example.com": ["127.0.0.1"],
}


class StubResolver:
    """A resolver stub that records every lookup."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append((host, port))
        if host not in ZONE:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return ZONE[host]


STRICT = SSRFPolicy.build(allow_http=False, allow_hosts=[])
HTTP_OK = SSRFPolicy.build(allow_http=True, allow_hosts=[])

#: The issue's table, and then some: every one refused under the default policy.
HOSTILE = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.0.10/", "private"),
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://2130706433/", "loopback"),  # decimal 127.0.0.1
    ("http://0177.0.0.1/", "loopback"),  # octal
    ("http://0x7f.0.0.1/", "loopback"),  # hex
    ("http://0x7f000001/", "loopback"),  # one hex number
    ("http://127.1/", "loopback"),  # short form
    ("http://017700000001/", "loopback"),  # one octal number
    ("http://0251.0376.0251.0376/", "link-local"),  # 169.254.169.254 in octal
    ("http://127.0.0.1./", "loopback"),  # trailing dot
    ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped
    ("http://[::ffff:7f00:1]/", "loopback"),  # IPv4-mapped, hex form
    ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64 of 169.254.169.254
    ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 of 127.0.0.1
    ("http://[fc00::1]/", "unique local"),
    ("http://[fd12:3456::1]/", "unique local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[::]/", "unspecified"),
    ("http://[2001:db8::1]/", "documentation"),
    ("http://internal.example.com/", "internal.example.com -> 10.1.2.3 is private"),
    ("http://metadata.example.com/", "link-local"),
    ("http://sneaky.example.com/", "127.0.0.1 is loopback"),
    ("http://mapped.example.com/", "private"),
]


@pytest.mark.parametrize(("url", "why"), HOSTILE)
def test_hostile_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(UnsafeWebhookURL) as caught:
        check_webhook_url(url, HTTP_OK, StubResolver())
    assert why in str(caught.value)
    assert caught.value.field == "webhook.url"
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/", "must use https"),
        ("ftp://hooks.example.com/", "scheme 'ftp'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme 'gopher'"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("https:///nohost", "no host"),
        ("https://hooks.example.com:0/", "port 0"),
        ("https://hooks.example.com:99999/", "not a valid URL"),
        ("https://hooks .example.com/", "whitespace"),
        ("https://hooks.example.com\\@127.0.0.1/", "'\\'"),
        ("https://1.2.3.256/", "out of range"),
        ("https://1.2.3.4.5/", "neither a valid IPv4"),
        ("https://09.1.1.1/", "not an octal number"),
        ("https://foo.1/", "neither a valid IPv4"),
        ("https://[fe80::1%25eth0]/", "zone"),
        ("https://exa_mple..com/", "not a valid host name"),
        ("https://nowhere.example.com/", "cannot resolve"),
        ("", "1 to 2048"),
        ("https://hooks.example.com/\ud800", "not valid Unicode"),
    ],
)
def test_malformed_or_plain_http_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(UnsafeWebhookURL) as caught:
        check_webhook_url(url, STRICT, StubResolver())
    assert why in str(caught.value)


def test_public_urls_pass_and_carry_the_checked_address() -> None:
    resolver = StubResolver()
    target = check_webhook_url("https://Hooks.Example.com/ttc?x=1#frag", STRICT, resolver)
    assert resolver.calls == [("hooks.example.com", 443)]  # resolved once, lower-cased
    assert str(target.address) == "93.184.216.34"
    assert target.url.host == "hooks.example.com"
    assert target.url.target == "/ttc?x=1"
    assert target.url.host_header == "hooks.example.com"

    v6 = check_webhook_url("https://v6.example.com:8443/", STRICT, resolver)
    assert str(v6.address) == "2606:4700::6810:85e5"
    assert v6.url.host_header == "v6.example.com:8443"

    literal = check_webhook_url("https://93.184.216.34/", STRICT, resolver)
    assert str(literal.address) == "93.184.216.34"
    assert len(resolver.calls) == 2  # an IP literal is never resolved


def test_numeric_hosts_are_read_with_inet_aton_rules() -> None:
    assert parse_ipv4_number("2130706433") == ipaddress.IPv4Address("127.0.0.1")
    assert parse_ipv4_number("0177.0.0.1") == ipaddress.IPv4Address("127.0.0.1")
    assert parse_ipv4_number("0x7f.1") == ipaddress.IPv4Address("127.0.0.1")
    assert parse_ipv4_number("10.1") == ipaddress.IPv4Address("10.0.0.1")
    assert parse_ipv4_number("192.168.257") == ipaddress.IPv4Address("192.168.1.1")
    assert parse_ipv4_number("8.8.8.8") == ipaddress.IPv4Address("8.8.8.8")
    assert parse_ipv4_number("example.com") is None
    assert parse_ipv4_number("deadbeef") is None  # a name, not hex without 0x


def test_allow_list_permits_loopback_by_address_or_name_only() -> None:
    by_cidr = SSRFPolicy.build(allow_http=True, allow_hosts=["127.0.0.1", "10.1.0.0/16"])
    assert str(check_webhook_url("http://127.0.0.1:8080/", by_cidr, StubResolver()).address) == (
        "127.0.0.1"
    )
    # Every spelling of an allowed address is the same address.
    assert str(check_webhook_url("http://2130706433/", by_cidr, StubResolver()).address) == (
        "127.0.0.1"
    )
    assert check_webhook_url("http://internal.example.com/", by_cidr, StubResolver())
    # Loopback other than the allowed /32, and other private ranges, stay refused.
    with pytest.raises(UnsafeWebhookURL):
        check_webhook_url("http://127.0.0.2/", by_cidr, StubResolver())
    with pytest.raises(UnsafeWebhookURL):
        check_webhook_url("http://[::1]/", by_cidr, StubResolver())
    with pytest.raises(UnsafeWebhookURL):
        check_webhook_url("http://169.254.169.254/", by_cidr, StubResolver())

    by_name = SSRFPolicy.build(allow_http=True, allow_hosts=["localhost.example.com"])
    target = check_webhook_url("http://localhost.example.com:9000/", by_name, StubResolver())
    assert str(target.address) == "127.0.0.1"
    with pytest.raises(UnsafeWebhookURL):
        check_webhook_url("http://127.0.0.1:9000/", by_name, StubResolver())


def test_allow_hosts_setting_parses_a_comma_list() -> None:
    from ttc_core.settings import Settings

    settings = Settings(webhook_allow_hosts="127.0.0.1, hooks.internal ,10.0.0.0/8")  # type: ignore[arg-type]
    assert settings.webhook_allow_hosts == ["127.0.0.1", "hooks.internal", "10.0.0.0/8"]
    policy = SSRFPolicy.build(allow_http=False, allow_hosts=settings.webhook_allow_hosts)
    assert policy.allow_names == frozenset({"hooks.internal"})
    assert len(policy.allow_networks) == 2


def test_refusal_reasons_cover_ipv6_tunnels_and_public_addresses() -> None:
    assert refusal_reason(ipaddress.ip_address("8.8.8.8")) is None
    assert refusal_reason(ipaddress.ip_address("2606:4700::1")) is None
    assert refusal_reason(ipaddress.ip_address("::ffff:8.8.8.8")) is None  # mapped public
    assert refusal_reason(ipaddress.ip_address("64:ff9b::808:808")) is None  # NAT64 public
    assert "Teredo" in (refusal_reason(ipaddress.ip_address("2001:0:4136:e378::1")) or "")
    assert "NAT64" in (refusal_reason(ipaddress.ip_address("64:ff9b:1::a00:1")) or "")
