"""The SSRF guard for webhook URLs: parse, resolve once, refuse non-public addresses.

A webhook URL is chosen by the caller, and the worker that sends to it sits inside the
deployment's network, next to the database, Redis, the inference servers and the cloud
metadata service. So:

- the URL must be ``https`` (``http`` only with ``webhook_allow_http``), without
  credentials, with a host name or an IP address;
- a numeric host in any form ``inet_aton`` accepts (``2130706433``, ``0177.0.0.1``,
  ``0x7f.1``, ``127.1``) is read as the address it denotes, never passed to a resolver;
- a host name is resolved ONCE, through an injectable resolver, and every address it
  resolves to must be public: loopback, private, link-local, CGNAT, multicast,
  unspecified, reserved and documentation ranges are refused, and so are IPv6 addresses
  that embed one of those (IPv4-mapped, NAT64, 6to4) or tunnel to an unknown one;
- the sender then connects to the address that was checked (:class:`WebhookTarget`
  carries it), so a second resolution cannot return something else (DNS rebinding).

``webhook_allow_hosts`` (host names and CIDRs) lets local development and the tests
reach loopback on purpose. Everything here is pure apart from the default resolver.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from ttc_core.errors import InputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: ``resolver(host, port)`` → the addresses the host name resolves to, as strings.
Resolver = Callable[[str, int], Sequence[str]]

FIELD = "webhook.url"


class UnsafeWebhookURL(InputError):
    """A webhook URL the guard refuses; ``field`` is ``webhook.url``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field=FIELD)


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


#: Refused IPv4 ranges, each with the reason given in the error.
_V4_REFUSED: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = (
    ("unspecified / 'this network'", _nets("0.0.0.0/8")),
    ("loopback", _nets("127.0.0.0/8")),
    ("private", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("link-local (cloud metadata)", _nets("169.254.0.0/16")),
    ("carrier-grade NAT", _nets("100.64.0.0/10")),
    ("multicast", _nets("224.0.0.0/4")),
    ("broadcast", _nets("255.255.255.255/32")),
    ("reserved", _nets("240.0.0.0/4", "192.0.0.0/24", "192.88.99.0/24", "198.18.0.0/15")),
    ("documentation", _nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")),
)

#: Refused IPv6 ranges (embedded IPv4 forms are unwrapped before these are checked).
_V6_REFUSED: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = (
    ("unspecified", _nets("::/128")),
    ("loopback", _nets("::1/128")),
    ("IPv4-compatible (deprecated)", _nets("::/96")),
    ("unique local (private)", _nets("fc00::/7")),
    ("link-local", _nets("fe80::/10")),
    ("site-local (deprecated)", _nets("fec0::/10")),
    ("multicast", _nets("ff00::/8")),
    ("local-use NAT64", _nets("64:ff9b:1::/48")),
    ("Teredo tunnel", _nets("2001::/32")),
    ("discard-only", _nets("100::/64")),
    ("documentation", _nets("2001:db8::/32")),
)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped (``::ffff:a.b.c.d``),
    NAT64 (``64:ff9b::a.b.c.d``) or 6to4 (``2002:AABB:CCDD::``)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def refusal_reason(ip: IPAddress) -> str | None:
    """Why an address may not be reached, or None for a public address."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        reason = refusal_reason(inner)
        return f"{reason} (embedded in {ip})" if reason else None
    for reason, networks in _V4_REFUSED if ip.version == 4 else _V6_REFUSED:
        if any(ip in net for net in networks):
            return reason
    if not ip.is_global:
        return "not a public address"
    return None


# ---------------------------------------------------------------- numeric hosts

_NUMERIC_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")


def parse_ipv4_number(host: str) -> ipaddress.IPv4Address | None:
    """Read a host in any form ``inet_aton`` accepts: 1 to 4 parts, each decimal, octal
    (leading 0) or hex (0x); the last part fills the remaining bytes (``127.1``,
    ``2130706433``, ``0177.0.0.1``, ``0x7f000001``).

    Returns None when the host is not numeric (a name); raises
    :class:`UnsafeWebhookURL` when it looks numeric but denotes no address, so that it
    never reaches a resolver that might read it some other way.
    """
    labels = host.split(".")
    if not _NUMERIC_PART.match(labels[-1]):
        return None  # WHATWG URL: a host is an IPv4 address iff its last label is numeric
    if len(labels) > 4 or not all(_NUMERIC_PART.match(label) for label in labels):
        raise UnsafeWebhookURL(f"host {host!r} is neither a valid IPv4 address nor a name")
    values = []
    for label in labels:
        if label[:2].lower() == "0x":
            values.append(int(label[2:] or "0", 16))
        elif len(label) > 1 and label.startswith("0"):
            if not set(label) <= set("01234567"):
                raise UnsafeWebhookURL(f"host {host!r}: {label!r} is not an octal number")
            values.append(int(label, 8))
        else:
            values.append(int(label))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        raise UnsafeWebhookURL(f"host {host!r} is out of range for an IPv4 address")
    number = last
    for i, value in enumerate(head):
        number |= value << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


# ---------------------------------------------------------------- policy and parsing


@dataclass(frozen=True)
class SSRFPolicy:
    """What the guard lets through beyond public https URLs."""

    allow_http: bool = False
    #: Host names (lowercase) whose addresses are allowed whatever they are.
    allow_names: frozenset[str] = frozenset()
    #: Networks whose addresses are allowed although not public.
    allow_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def build(cls, *, allow_http: bool, allow_hosts: Iterable[str]) -> SSRFPolicy:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip() for e in allow_hosts):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.add(entry.lower().rstrip("."))
        return cls(allow_http, frozenset(names), tuple(networks))

    def address_allowed(self, ip: IPAddress) -> bool:
        inner = embedded_ipv4(ip)
        candidates = [ip] if inner is None else [ip, inner]
        return any(c in net for c in candidates for net in self.allow_networks)


@dataclass(frozen=True)
class ParsedWebhookURL:
    """A URL split into what the sender needs; ``ip`` is set for an IP-literal host."""

    scheme: str
    host: str
    port: int
    #: Path and query as sent (``/`` at least); the fragment is dropped.
    target: str
    ip: IPAddress | None = None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class WebhookTarget:
    """A checked URL and the one address to connect to."""

    url: ParsedWebhookURL
    address: IPAddress
    #: Everything the host resolved to (all of it passed the guard).
    resolved: tuple[str, ...] = field(default=())


def parse_webhook_url(url: str, policy: SSRFPolicy) -> ParsedWebhookURL:
    """Check the URL's form (scheme, credentials, host syntax); no resolution."""
    if not url or len(url) > 2048:
        raise UnsafeWebhookURL("the webhook URL must be 1 to 2048 characters")
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeWebhookURL("the webhook URL is not valid Unicode") from None
    if any(ch.isspace() or ord(ch) < 0x20 or ch == "\\" for ch in url):
        raise UnsafeWebhookURL("the webhook URL contains whitespace, control characters or '\\'")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeWebhookURL(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UnsafeWebhookURL(f"scheme {parts.scheme!r} is not allowed; use https")
    if scheme == "http" and not policy.allow_http:
        raise UnsafeWebhookURL("webhook URLs must use https (this server does not allow http)")
    if parts.username is not None or parts.password is not None:
        raise UnsafeWebhookURL("credentials in webhook URLs are not allowed")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeWebhookURL("the webhook URL has no host")
    if port == 0:
        raise UnsafeWebhookURL("port 0 is not allowed")
    port = port or (443 if scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    target = quote(target, safe="!$%&'()*+,/:;=?@~-._")  # non-ASCII → percent-encoded
    ip: IPAddress | None
    if "[" in parts.netloc:
        if "%" in host:
            raise UnsafeWebhookURL("scoped IPv6 addresses (with a zone) are not allowed")
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeWebhookURL(f"{host!r} is not a valid IPv6 address") from None
    else:
        ip = parse_ipv4_number(host)
        if ip is None:
            host = _ascii_hostname(host)
    return ParsedWebhookURL(scheme, str(ip) if ip is not None else host, port, target, ip)


_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def _ascii_hostname(host: str) -> str:
    """The host name as sent on the wire (IDNA), or a refusal if it is not one."""
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        ascii_host = ""
    if not ascii_host or len(ascii_host) > 253:
        raise UnsafeWebhookURL(f"{host!r} is not a valid host name")
    if not all(_LABEL.match(label) for label in ascii_host.split(".")):
        raise UnsafeWebhookURL(f"{host!r} is not a valid host name")
    return ascii_host


def check_webhook_url(url: str, policy: SSRFPolicy, resolver: Resolver) -> WebhookTarget:
    """Parse, resolve once and check; the returned target carries the address to use."""
    parsed = parse_webhook_url(url, policy)
    if parsed.ip is not None:
        addresses: list[IPAddress] = [parsed.ip]
    else:
        try:
            found = list(dict.fromkeys(resolver(parsed.host, parsed.port)))
        except (OSError, TimeoutError, concurrent.futures.TimeoutError) as exc:
            raise UnsafeWebhookURL(f"cannot resolve {parsed.host!r}: {exc}") from None
        if not found:
            raise UnsafeWebhookURL(f"{parsed.host!r} resolves to no address")
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
    name_allowed = parsed.ip is None and parsed.host.lower() in policy.allow_names
    if not name_allowed:
        # Every address must pass: a resolver answering several may be cycled through.
        for ip in addresses:
            reason = refusal_reason(ip)
            if reason and not policy.address_allowed(ip):
                shown = parsed.host if parsed.ip is not None else f"{parsed.host} -> {ip}"
                raise UnsafeWebhookURL(
                    f"webhook URL refused: {shown} is {reason}; only public addresses can "
                    "receive webhooks (see TTC_WEBHOOK_ALLOW_HOSTS)"
                )
    return WebhookTarget(parsed, addresses[0], tuple(str(a) for a in addresses))


# ---------------------------------------------------------------- the default resolver

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _resolver_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="ttc-resolve")
        return _pool


def system_resolver(timeout_s: float) -> Resolver:
    """``getaddrinfo`` in a worker thread, with a timeout (getaddrinfo has none)."""

    def resolve(host: str, port: int) -> list[str]:
        future = _resolver_pool().submit(
            socket.getaddrinfo, host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        try:
            infos = future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"no answer within {timeout_s:g}s") from None
        return [str(info[4][0]) for info in infos]

    return resolve
