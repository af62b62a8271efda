"""
Where relocator may connect, and where credentials may go.

Every request is made on behalf of one registry the user named (its *registry*): the
host of a reference, a destination, a mirror config. Registries hand us other URLs —
redirect targets, token realms, upload `Location`s, next pages — and a hostile one
could point them at the machine's own services or a cloud metadata endpoint (SSRF).
So the decision is made on the address actually connected to: `GuardedConnector`
checks the peer of every connection (new or pooled) before a byte of the request is
written, and `Guard.check_url` refuses an internal literal before connecting at all, in
whatever spelling it comes (`0x7f000001`, `2130706433`, `[::ffff:127.0.0.1]`).

A registry is *internal* when the user named it on an internal address: an internal
literal, `localhost`, or a name that connected to an internal address. Only an internal
registry may send us to internal addresses; a public one may send us only to public
ones.
"""

from __future__ import annotations

import contextvars
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from relocator.errors import UnsafeRedirect
from relocator.transport import urls
from relocator.transport.addresses import IPAddress, internal_kind, is_local_name, parse_ip

#: Decides whether a connected address (and port) counts as internal.
Classifier = Callable[[IPAddress, int], bool]

# The registry the current request is made for, as `host:port` (see `key`).
_registry: contextvars.ContextVar[str] = contextvars.ContextVar("relocator_registry")


def key(url: str) -> str:
    """`host:port` of `url` as the connection pool sees it (lowercase, port filled in)."""
    try:
        parsed = URL(url)
        return f"{(parsed.raw_host or '').lower()}:{parsed.port}"
    except ValueError:
        # A port out of range or not a number: aiohttp refuses the URL with its own
        # error; the key only has to be the same for the same text.
        return urls.host_of(url)


class Guard:
    """
    The run's address policy: which registries are internal, and whether a URL or a
    connected address may be used for a request made on a registry's behalf.

    Args:
        classify: Whether an address (and port) is internal; tests replace it to stand
            a local server in for a public one.
    """

    def __init__(self, classify: Classifier) -> None:
        self._classify = classify
        # Registries (`host:port`) seen connected to an internal address.
        self._internal: set[str] = set()

    @contextmanager
    def acting_for(self, registry_url: str) -> Iterator[None]:
        """Connections made inside the block are on behalf of `registry_url`'s registry."""
        token = _registry.set(key(registry_url))
        try:
            yield
        finally:
            _registry.reset(token)

    def registry_is_internal(self, registry: str) -> bool:
        """Whether the registry `host:port` was named on an internal address."""
        if registry in self._internal:
            return True
        host, _, port = registry.rpartition(":")
        return self._named_internal(host, int(port) if port.isdigit() else 0)

    def check_url(self, url: str) -> None:
        """
        Refuse `url`, handed to us by the registry the current request is made for, if
        its host is an internal literal or `localhost` and that registry is not
        internal. Names are decided when connected (`check_peer`).

        Raises:
            UnsafeRedirect: The URL names an internal address.
        """
        target = key(url)
        registry = _registry.get(target)
        if target == registry or self.registry_is_internal(registry):
            return
        host = URL(url).raw_host or ""
        port = URL(url).port or 0
        if self._named_internal(host, port):
            address = parse_ip(host)
            kind = "local name" if address is None else f"{internal_kind(address)} {address}"
            raise UnsafeRedirect(
                f"refusing to follow {_show(registry)} to an internal address "
                f"({kind}): {urls.redact(url)}"
            )

    def check_peer(self, target: str, peer: object) -> None:
        """
        Check the address a connection to `target` (`host:port`) actually reached,
        for the registry the current request is made for.

        Raises:
            UnsafeRedirect: A public registry's request reached an internal address.
        """
        registry = _registry.get(target)
        address = _peer_address(peer)
        if address is None:
            if target != registry and not self.registry_is_internal(registry):
                raise UnsafeRedirect(
                    f"refusing to follow {_show(registry)} to {_show(target)}: "
                    "cannot tell which address the connection reached"
                )
            return
        internal = self._classify(address, _peer_port(peer))
        if target == registry:
            # The user named this host: whatever it resolves to is their choice, and it
            # decides what the registry may send us to.
            if internal:
                self._internal.add(registry)
            return
        if internal and not self.registry_is_internal(registry):
            raise UnsafeRedirect(
                f"refusing to follow {_show(registry)} to an internal address "
                f"({internal_kind(address) or 'internal'} {address}): {_show(target)}"
            )

    def _named_internal(self, host: str, port: int) -> bool:
        if is_local_name(host):
            return True
        address = parse_ip(host)
        return address is not None and self._classify(address, port)


def token_realm(
    registry_url: str, realm: str, *, insecure_hosts: frozenset[str], guard: Guard
) -> str:
    """
    The absolute URL of a registry's token realm, if its credentials may go there (the
    rules are listed in docs/reliability.md): http(s) with a host and no user info;
    https when the registry is https; plain http only when the registry is plain http
    too and the realm is on the registry's own host name (any port) or on a host
    named with `--registry-insecure`; never an internal address named by a public
    registry (`Guard.check_url`, and `Guard.check_peer` when connecting).

    Raises:
        UnsafeRedirect: The realm is not a place for credentials.
    """
    host = urls.host_of(registry_url)
    target = urls.follow(registry_url, realm, insecure_hosts=insecure_hosts)
    with guard.acting_for(registry_url):
        guard.check_url(target)
    if not target.startswith("http://"):
        return target
    if not registry_url.startswith("http://"):
        raise UnsafeRedirect(f"{host} asks for tokens over plain http: {urls.redact(target)}")
    same_host = URL(target).raw_host == URL(registry_url).raw_host
    if not same_host and urls.host_of(target) not in insecure_hosts:
        raise UnsafeRedirect(
            f"{host} asks for tokens over plain http on another host: {urls.redact(target)}",
            hint=f"name {urls.host_of(target)} with --registry-insecure if it is meant to be "
            "reached over plain http",
        )
    return target


class GuardedConnector(aiohttp.TCPConnector):
    """A `TCPConnector` that hands out a connection only if the `Guard` accepts its peer."""

    def __init__(self, guard: Guard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard = guard

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Any],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - the signature aiohttp calls
    ) -> aiohttp.connector.Connection:
        """A pooled or new connection for `req`, its peer checked before use."""
        conn = await super().connect(req, traces, timeout)
        # Through an HTTP proxy the peer is the proxy, which resolves the name itself:
        # only the literal check before connecting applies.
        if req.proxy is None:
            transport = conn.transport
            peer = transport.get_extra_info("peername") if transport is not None else None
            try:
                self._guard.check_peer(f"{(req.url.raw_host or '').lower()}:{req.port}", peer)
            except UnsafeRedirect:
                conn.close()
                raise
        return conn


class StaticResolver(AbstractResolver):
    """Answers the names in `table` with fixed addresses (like /etc/hosts), others by DNS."""

    def __init__(self, table: Mapping[str, str]) -> None:
        self._table = {name.lower(): address for name, address in table.items()}
        self._dns = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The pinned address of `host`, or what DNS answers."""
        address = self._table.get(host.lower())
        if address is None:
            return await self._dns.resolve(host, port, family)
        pinned = parse_ip(address)
        inet = socket.AF_INET6 if pinned is not None and pinned.version == 6 else socket.AF_INET
        return [
            {"hostname": host, "host": address, "port": port, "family": inet, "proto": 0,
             "flags": socket.AI_NUMERICHOST}
        ]

    async def close(self) -> None:
        """Close the DNS resolver."""
        await self._dns.close()


def _peer_address(peer: object) -> IPAddress | None:
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return None
    return parse_ip(peer[0])


def _peer_port(peer: object) -> int:
    return peer[1] if isinstance(peer, tuple) and len(peer) > 1 and isinstance(peer[1], int) else 0


def _show(registry: str) -> str:
    """`host:port` as the user wrote it for default ports: `reg.example`, not `:443`."""
    host, _, port = registry.rpartition(":")
    if not port.isdigit():
        return registry
    host = f"[{host}]" if ":" in host else host
    return host if port in ("80", "443") else f"{host}:{port}"
