"""Egress rules for every outbound connection a provider makes on a tenant's behalf.

A tenant chooses a provider's ``base_url`` or SMTP host, so without rules any client with
``integrations:write`` could make the host send the tenant's credentials to ``127.0.0.1``,
RFC 1918 space or a cloud metadata address (SSRF). :class:`EgressPolicy` decides:

* the host name is resolved once; **every** address it resolves to must be public
  (:attr:`ipaddress.IPv4Address.is_global`; IPv4-mapped IPv6 is judged by its IPv4
  address; unspecified ``0.0.0.0``/``::`` and multicast are refused), and the connection
  is made to one of those checked addresses (pinned), never by resolving the name again,
  so DNS rebinding between check and connect cannot redirect it;
* the connection must be encrypted (``https``, SMTP with TLS or STARTTLS);
* the operator's allow-list (``CARTERA_EGRESS_ALLOW``: comma-separated host names, IP
  addresses or CIDR networks, each optionally ``:port``) names the exceptions: an allowed
  destination may be non-public and may be reached without TLS.

:meth:`EgressPolicy.transport` is the httpx transport the host hands plugins (TLS still
checks the certificate against the host *name*: only the TCP connect is pinned);
:meth:`EgressPolicy.connect` gives a connected socket for other protocols (SMTP).
A refusal raises :class:`EgressRefused` before anything is sent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import httpcore
import httpx

__all__ = ["ALLOW_ENV", "AllowRule", "EgressPolicy", "EgressRefused", "address_refusal"]

ALLOW_ENV = "CARTERA_EGRESS_ALLOW"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressRefused(Exception):
    """The host refused an outbound connection; ``reason`` says why (no data was sent)."""

    code = "egress_refused"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _ip(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached without an allow-list entry ("not a public
    address"...), or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class AllowRule:
    """One allow-list entry: a host name or an IP network, optionally one port only."""

    name: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> AllowRule:
        """``host``, ``host:port``, ``10.0.0.0/8``, ``10.0.0.0/8:25``, ``[::1]:8080``."""
        entry, port = text.strip(), None
        if entry.startswith("["):
            inner, _, rest = entry[1:].partition("]")
            entry, port = inner, int(rest[1:]) if rest.startswith(":") else None
        elif entry.count(":") == 1:
            entry, _, port_text = entry.partition(":")
            port = int(port_text)
        try:
            return cls(network=ipaddress.ip_network(entry, strict=False), port=port)
        except ValueError:
            if not entry:
                raise ValueError(f"empty egress allow-list entry {text!r}") from None
            return cls(name=entry.lower().rstrip("."), port=port)

    def matches_name(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.name is not None:
            return self.name == host.lower().rstrip(".")
        address = _ip(host)
        return address is not None and self._contains(address)

    def matches_address(self, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        return self.network is not None and self._contains(address)

    def _contains(self, address: IPAddress) -> bool:
        assert self.network is not None
        return address.version == self.network.version and address in self.network


@dataclass(frozen=True)
class EgressPolicy:
    """Which destinations outbound connections may reach (see the module docstring).

    The default policy allows no exception: public addresses over TLS only.
    """

    allow: tuple[AllowRule, ...] = ()
    connect_timeout: float = 10.0
    _backend: httpcore.AsyncNetworkBackend = field(
        default_factory=httpcore.AnyIOBackend, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str | None, **kwargs: typing.Any) -> EgressPolicy:
        """A policy from an allow-list string like ``"127.0.0.1:8123,localhost"``."""
        rules = tuple(AllowRule.parse(item) for item in (text or "").split(",") if item.strip())
        return cls(allow=rules, **kwargs)

    def allowed_name(self, host: str, port: int) -> bool:
        """Is ``host`` (as written in the URL) an allow-listed destination?"""
        return any(rule.matches_name(host, port) for rule in self.allow)

    def check_plaintext(self, host: str, port: int, what: str = "http") -> None:
        """Refuse an unencrypted connection unless the destination is allow-listed."""
        if not self.allowed_name(host, port):
            raise EgressRefused(f"{what} to {host}:{port} is not encrypted; use TLS (https)")

    async def resolve(self, host: str, port: int) -> list[str]:
        """The checked addresses of ``host`` (resolved once), in resolver order.

        Raises :class:`EgressRefused`, or ``OSError`` when the name does not resolve."""
        host = host.strip("[]")
        literal = _ip(host)
        if literal is not None:
            addresses = [literal]
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM)
            resolved = (_ip(str(info[4][0])) for info in infos)
            addresses = list(dict.fromkeys(a for a in resolved if a is not None))
            if not addresses:
                raise OSError(f"{host} has no address")
        if self.allowed_name(host, port):
            return [str(a) for a in addresses]
        for address in addresses:
            if any(rule.matches_address(address, port) for rule in self.allow):
                continue
            refusal = address_refusal(address)
            if refusal is not None:
                named = f"{host} resolves to {address}" if literal is None else str(address)
                raise EgressRefused(f"{named}, which is {refusal} (not in {ALLOW_ENV})")
        return [str(a) for a in addresses]

    async def connect(self, host: str, port: int, *, connect_timeout: float | None = None,
                      encrypted: bool = True, what: str = "connection") -> socket.socket:
        """A connected (non-blocking) TCP socket to a checked address of ``host``.

        ``encrypted=False`` (the caller will not use TLS) needs an allow-list entry."""
        if not encrypted:
            self.check_plaintext(host, port, what)
        addresses = await self.resolve(host, port)
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (address, port)),
                                       connect_timeout or self.connect_timeout)
            except (OSError, TimeoutError) as exc:
                sock.close()
                last = exc if isinstance(exc, OSError) else TimeoutError(str(exc))
                continue
            return sock
        assert last is not None
        raise last

    def transport(self, *, verify: ssl.SSLContext | bool = True,
                  limits: httpx.Limits | None = None) -> httpx.AsyncBaseTransport:
        """An httpx transport that enforces this policy on every request."""
        return EgressTransport(self, verify=verify, limits=limits or httpx.Limits())

    def with_backend(self, backend: httpcore.AsyncNetworkBackend) -> EgressPolicy:
        """The same rules over another network backend (tests: record connects)."""
        return EgressPolicy(allow=self.allow, connect_timeout=self.connect_timeout,
                            _backend=backend)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks at connect time, then connects to a checked address."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = policy._backend

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Iterable[Sequence[typing.Any]] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._policy.resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options)  # type: ignore[arg-type]
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[Sequence[typing.Any]] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("unix sockets are not an egress destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class EgressTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with a pinned, policy-checked connection pool.

    The pool is keyed by host name (so TLS verifies the certificate for the name and
    connections are never shared between names); only the TCP connect is redirected to
    the checked address."""

    def __init__(self, policy: EgressPolicy, *, verify: ssl.SSLContext | bool = True,
                 limits: httpx.Limits) -> None:
        context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=context, limits=limits, trust_env=False)
        self._policy = policy
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(policy))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "https":
            self._policy.check_plaintext(url.host, url.port or 80, url.scheme)
        return await super().handle_async_request(request)
