"""Which URLs a webhook may be sent to: the guard against server-side request forgery (SSRF).

A URL is allowed when

- its scheme is ``https``, or ``http`` for a host the operator listed by its exact name (a CMS on
  the station's LAN without TLS; a ``*.domain`` pattern never allows plain http);
- it carries no user name or password and no fragment, and is at most 2,000 characters;
- its host is on the operator's list (``STORYMEDIA_WEBHOOK_HOSTS``): the exact name, or
  ``*.domain`` for any name below ``domain`` (not ``domain`` itself);
- EVERY address the host resolves to is public. Never loopback, link-local (169.254.0.0/16 and
  fe80::/10: the cloud metadata service), unspecified, multicast, reserved or otherwise special;
  private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) only with ``allow_private``
  (``STORYMEDIA_WEBHOOK_ALLOW_PRIVATE``). IPv4 addresses inside IPv6 (``::ffff:a.b.c.d``,
  ``64:ff9b::a.b.c.d``) are judged as the IPv4 address they carry.

The check runs when an endpoint is registered and again before every delivery attempt, and the
attempt connects to the very address that was checked (:meth:`Target.pinned_url`, with the name in
the ``Host`` header and as TLS server name), so a name that resolves elsewhere a second later (DNS
rebinding) gains nothing. Loopback is refused unless a :class:`Policy` is built in code with
``allow_loopback`` (the tests' receivers on 127.0.0.1); no setting or variable turns it on.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL = 2000
RESOLVE_SECONDS = 5.0

PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(ValueError):
    """A webhook URL that may not be called, and why (a sentence for the operator; no secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Policy:
    """The operator's rules: allowed host names, and whether private addresses are allowed."""

    hosts: tuple[str, ...] = ()
    """Exact names (``cms.baothanhhoa.vn``, ``10.1.2.3``) or ``*.domain`` patterns."""
    allow_private: bool = False
    allow_loopback: bool = False
    """Tests only (a receiver on 127.0.0.1): set in code, never from configuration."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "hosts", tuple(_normal_host(h) for h in self.hosts if h.strip()))

    def listed(self, host: str) -> str:
        """How ``host`` is allowed: ``exact`` or ``pattern``; TargetRefused when it is not."""
        for entry in self.hosts:
            if entry == host:
                return "exact"
        for entry in self.hosts:
            if entry.startswith("*.") and host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return "pattern"
        if not self.hosts:
            raise TargetRefused("no webhook host is allowed on this service: an operator lists them in"
                                " STORYMEDIA_WEBHOOK_HOSTS")
        raise TargetRefused(f"the host {host} is not on the list of allowed webhook hosts"
                            " (STORYMEDIA_WEBHOOK_HOSTS)")


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses its host resolved to (every one of them allowed)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"

    def pinned_url(self, address: IPAddress) -> str:
        """The URL with its host replaced by ``address`` (connect there, and nowhere else)."""
        parts = urlsplit(self.url)
        literal = f"[{address.compressed}]" if address.version == 6 else address.compressed
        return urlunsplit((parts.scheme, f"{literal}:{self.port}", parts.path or "/", parts.query, ""))


Resolver = Callable[[str, int], list[IPAddress]]

_lookups = ThreadPoolExecutor(max_workers=4, thread_name_prefix="storymedia-dns")


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address of ``host`` (at most ``RESOLVE_SECONDS`` of waiting for DNS)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    lookup = _lookups.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    try:
        infos = lookup.result(timeout=RESOLVE_SECONDS)
    except FutureTimeout:
        raise TargetRefused(f"the host {host} did not resolve within {RESOLVE_SECONDS:.0f} s") from None
    except (OSError, UnicodeError):
        raise TargetRefused(f"the host {host} does not resolve") from None
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        try:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        except ValueError:
            raise TargetRefused(f"the host {host} resolves to an address that is not IP") from None
        if address not in found:
            found.append(address)
    if not found:
        raise TargetRefused(f"the host {host} does not resolve")
    return found


def address_problem(address: IPAddress, policy: Policy) -> str | None:
    """Why ``address`` may not be called under ``policy`` (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
                                        if address in _NAT64 else None)
        if inner is not None:
            return address_problem(inner, policy)
    if address.is_loopback:
        return None if policy.allow_loopback else "a loopback address"
    if address.is_link_local:
        return "a link-local address (where the cloud metadata service answers)"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if any(address in network for network in PRIVATE_NETWORKS):
        return None if policy.allow_private else ("a private address (allowed only with"
                                                  " STORYMEDIA_WEBHOOK_ALLOW_PRIVATE=1)")
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "an address that is not public"
    return None


def check_url(url: str, policy: Policy, resolver: Resolver = resolve) -> Target:
    """The target of ``url`` when ``policy`` allows it (every address checked); TargetRefused with
    the reason otherwise."""
    if not isinstance(url, str) or not url:
        raise TargetRefused("the URL is empty")
    if len(url) > MAX_URL:
        raise TargetRefused(f"the URL is longer than {MAX_URL} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise TargetRefused("the URL holds spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("the URL cannot be read (its host or port is malformed)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise TargetRefused("the URL must start with https:// (or http:// for a host listed by name)")
    if "@" in parts.netloc:
        raise TargetRefused("the URL may not carry a user name or password")
    if parts.fragment or url.endswith("#"):
        raise TargetRefused("the URL may not have a fragment (#...)")
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    host = _normal_host(parts.hostname)
    how = policy.listed(host)
    if scheme == "http" and how != "exact":
        raise TargetRefused(f"plain http is allowed only to a host listed by its exact name; use https"
                            f" for {host}")
    port = port or (443 if scheme == "https" else 80)
    addresses = tuple(resolver(host, port))
    for address in addresses:
        problem = address_problem(address, policy)
        if problem is not None:
            shown = address.compressed
            what = f"is {problem}" if shown == host else f"resolves to {shown}, {problem}"
            raise TargetRefused(f"the host {host} {what}; webhooks are never sent there")
    return Target(url=url, scheme=scheme, host=host, port=port, addresses=addresses)


def _normal_host(host: str) -> str:
    """Lower case, no trailing dot, international names in their ASCII (IDNA) form."""
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name.startswith("*."):
        return "*." + _normal_host(name[2:])
    try:
        return name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        raise TargetRefused(f"the host {host!r} is not a valid name") from None
