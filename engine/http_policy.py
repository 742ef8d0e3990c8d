"""Where ``http.json`` may connect: allow-listed host and port, checked after DNS resolution.

A workflow is data that users and experiments edit, so its URLs are untrusted. Three holes
are closed here:

- **Ports.** An entry names a host *and* a port: ``api.example.com:443``, ``localhost:8080``,
  ``[::1]:8080``. A bare host (``api.example.com``) allows only the default port of the URL's
  scheme (443 for https, 80 for http), so allowing a host never opens its database port;
  ``host:*`` allows every port of that host, and has to be written out.
- **Addresses.** A name is resolved, and every address it resolves to must be public: private
  (10/8, 172.16/12, 192.168/16, fc00::/7), loopback, link-local (169.254/16, the cloud metadata
  service among them), unspecified, multicast and reserved addresses are refused, unless they
  fall in an explicitly allowed network (``http_allow_networks``, e.g. ``127.0.0.0/8``).
  An entry that *is* an address (``127.0.0.1:8080``) allows that address: naming it is explicit.
- **Rebinding.** The connection goes to the address that was checked, not to the name again
  (a second lookup could answer differently): the URL's host is replaced by the address and
  the request carries the name in its ``Host`` header and, for https, as the TLS server name
  (SNI, also what the certificate is verified against).

Redirects are never followed (the kind refuses them), since a redirect leads to a place that
was not checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit, urlunsplit

from engine.errors import NodeError

__all__ = [
    "DEFAULT_PORTS",
    "HttpAdvice",
    "HttpPolicy",
    "Target",
    "parse_entry",
    "parse_network",
    "refused_reason",
]

DEFAULT_PORTS: Final = {"http": 80, "https": 443}
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_ANY_PORT: Final = -1


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request may go: ``addresses``, every one checked, tried in the resolver's
    order; ``host`` is the name for the ``Host`` header and ``sni`` the TLS server name
    (``None`` for plain http or an address)."""

    addresses: tuple[str, ...]
    host: str
    sni: str | None
    parts: SplitResult

    def url(self, address: str) -> str:
        """The URL with its host replaced by ``address`` (one of ``addresses``)."""
        netloc = f"[{address}]" if ":" in address else address
        if self.parts.port is not None:
            netloc += f":{self.parts.port}"
        return urlunsplit(
            SplitResult(self.parts.scheme, netloc, self.parts.path, self.parts.query, "")
        )


def _ip(text: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def parse_entry(entry: str) -> tuple[str, int | None]:
    """``host[:port|:*]`` → (lower-case host, port; ``None`` for the scheme's default)."""
    text = entry.strip().lower()
    if not text or "/" in text or "@" in text or (text.startswith("[") and "]" not in text):
        raise ValueError(f"http allow-list entry {entry!r} is not host, host:port or host:*")
    host, port = text, None
    if text.startswith("["):  # [v6] or [v6]:port
        end = text.find("]")
        host, rest = text[1:end], text[end + 1 :]
        port = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif text.count(":") > 1 and _ip(text) is not None:
        host = text  # a bare IPv6 address
    if port is None:
        return host, None
    if port == "*":
        return host, _ANY_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"http allow-list entry {entry!r} has a bad port {port!r}")
    return host, int(port)


def parse_network(text: str) -> IpNetwork:
    """``10.0.0.0/8``, ``::1/128`` or a single address; ``ValueError`` naming the entry."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"http allowed network {text!r} is not an address or CIDR") from None


def refused_reason(address: IpAddress) -> str | None:
    """Why an address is not public, or ``None`` when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for reason, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),  # shared (100.64/10), documentation, ...
    ):
        if flag:
            return reason
    return None


@dataclass(frozen=True, slots=True)
class HttpAdvice:
    """How the host application widens the allow-list, quoted by a refusal: an engine embedded
    in a script says ``Engine(...)``, ``rollgraph exec`` its flags, the server its settings."""

    hosts: str = "Engine(http_allow_hosts=[...])"
    networks: str = "Engine(http_allow_networks=[...])"


class HttpPolicy:
    """The allow-list of one engine (see the module's docstring)."""

    def __init__(
        self,
        hosts: Iterable[str] = (),
        networks: Iterable[str] = (),
        advice: HttpAdvice | None = None,
    ) -> None:
        self._entries: set[tuple[str, int | None]] = {parse_entry(h) for h in hosts}
        self._networks: tuple[IpNetwork, ...] = tuple(parse_network(n) for n in networks)
        self.advice = advice or HttpAdvice()

    @property
    def entries(self) -> frozenset[tuple[str, int | None]]:
        return frozenset(self._entries)

    def listed(self, host: str, port: int, scheme: str) -> bool:
        """Whether ``host:port`` is on the list (a bare entry: the scheme's default port)."""
        host = host.lower()
        return (
            (host, port) in self._entries
            or (host, _ANY_PORT) in self._entries
            or (port == DEFAULT_PORTS.get(scheme) and (host, None) in self._entries)
        )

    def address_allowed(self, address: IpAddress, named: bool) -> str | None:
        """Why ``address`` may not be reached, or ``None``. ``named``: the allow-list entry is
        this very address, which allows it."""
        if named or any(address in net for net in self._networks):
            return None
        return refused_reason(address)

    async def target(self, url: str, timeout_s: float) -> Target:
        """The checked destination of ``url``; ``NodeError`` (``host_not_allowed``) when the
        host, the port or any address the name resolves to is not allowed."""
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        if scheme not in DEFAULT_PORTS or not host:
            raise NodeError(f"http.json needs an http(s) URL, got {url!r}", code="bad_input")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise NodeError(f"http.json URL {url!r} has a bad port", code="bad_input") from None
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if not self.listed(host, port, scheme):
            raise NodeError(
                f"{shown} is not on the http allow-list (entries are host:port; a bare host "
                f"allows only its scheme's default port); allow it with {self.advice.hosts}",
                code="host_not_allowed",
            )
        literal = _ip(host)
        addresses = [literal] if literal is not None else await _resolve(host, port, timeout_s)
        for checked in addresses:
            reason = self.address_allowed(checked, named=literal is not None)
            if reason is not None:
                raise NodeError(
                    f"{shown} resolves to {checked}, a {reason} address, which http.json may "
                    f"not reach unless its network is allowed ({self.advice.networks}) or the "
                    "address itself is on the allow-list",
                    code="host_not_allowed",
                )
        header = host if ":" not in host else f"[{host}]"
        if parts.port is not None:
            header += f":{parts.port}"
        sni = host if scheme == "https" and literal is None else None
        return Target(tuple(str(a) for a in addresses), header, sni, parts)


async def _resolve(host: str, port: int, timeout_s: float) -> list[IpAddress]:
    """Every address ``host`` resolves to (once: the connection uses one of these)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_s):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise NodeError(
            f"{host}: no DNS answer within {timeout_s:g} s", retryable=True, code="timeout"
        ) from None
    except OSError as exc:
        raise NodeError(
            f"{host}: cannot resolve: {exc}", retryable=True, code="connection_error"
        ) from None
    found: list[IpAddress] = []
    for info in infos:
        address = _ip(str(info[4][0]).split("%")[0])  # drop an IPv6 zone (fe80::1%eth0)
        if address is not None and address not in found:
            found.append(address)
    if not found:
        raise NodeError(f"{host}: resolves to no address", code="connection_error")
    return found
