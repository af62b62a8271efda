"""URLs: which host serves a registry's API, and what is safe to show or follow."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from relocator.errors import UnsafeRedirect

# Docker Hub's API lives on another host than the one in image names.
_API_HOSTS = {"index.docker.io": "registry-1.docker.io", "docker.io": "registry-1.docker.io"}
# Query parameters that carry no secret; every other value is replaced in messages, since
# presigned CDN URLs carry signatures and credentials in the query string.
_SAFE_PARAMS = frozenset({"scope", "service", "mount", "from", "digest", "n", "last", "_state"})


def api_host(registry: str) -> str:
    """The host that serves the registry API for the registry named in references."""
    return _API_HOSTS.get(registry, registry)


# go-containerregistry's `name.Registry.Scheme()`: names of registries it may reach over
# plain http without being told (after https fails), which kbld and imgpkg inherit.
_LOCAL_NAME = re.compile(r".*\.local(?:host)?(?::\d{1,5})?$")
_PRIVATE_NETS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)


def local_registry(host: str) -> bool:
    """
    Whether go-containerregistry would try plain http for registry `host` with no flag:
    `localhost:PORT`, a name ending in `.local` or `.localhost`, one containing
    `127.0.0.1` or `::1`, or an RFC 1918 private IPv4 address.
    """
    host = host.lower()
    if host.startswith("localhost:") or _LOCAL_NAME.match(host):
        return True
    if "127.0.0.1" in host or "::1" in host:
        return True
    try:
        address = ipaddress.ip_address(host.split(":")[0])
    except ValueError:
        return False
    return any(address in net for net in _PRIVATE_NETS)


def origin(url: str) -> tuple[str, str]:
    """(scheme, host:port) with default ports made explicit, for same-host checks."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    return parts.scheme, f"{host}:{port}"


def host_of(url: str) -> str:
    """The `host[:port]` of a URL as written (the key of per-host state)."""
    return urlsplit(url).netloc.rsplit("@", 1)[-1].lower()


def redact(url: str) -> str:
    """`url` without user info and with every non-allow-listed query value hidden."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode(
        [(k, v if k in _SAFE_PARAMS else "REDACTED") for k, v in parse_qsl(parts.query, True)]
    )
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, ""))


def follow(current: str, location: str, *, insecure_hosts: frozenset[str]) -> str:
    """
    The absolute URL a redirect or upload `Location` points to, if we may go there.

    Raises:
        UnsafeRedirect: Not http(s), or a downgrade from https to http for a host not
            configured as insecure.
    """
    target = urljoin(current, location)
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeRedirect(f"refusing to follow {redact(current)} to {redact(target)}")
    # User info would make aiohttp send it as Basic auth (or raise beside our own
    # Authorization), and a bad port would raise ValueError wherever the URL is used.
    try:
        _ = parts.port  # raises ValueError: not a number, or outside 0-65535
        bad_port = False
    except ValueError:
        bad_port = True
    if bad_port or parts.username is not None or parts.password is not None:
        raise UnsafeRedirect(f"refusing to follow {redact(current)} to {redact(target)}")
    if (
        urlsplit(current).scheme == "https"
        and parts.scheme == "http"
        and host_of(target) not in insecure_hosts
    ):
        raise UnsafeRedirect(
            f"refusing redirect from https to plain http: {redact(target)}",
            hint="a registry that downgrades to http can be read only with --registry-insecure "
            "naming the target host",
        )
    # Whether the target's address is internal is decided by `guard.Guard`, which knows
    # the registry the request is made for and the address actually connected to.
    return target


def with_query(url: str, **params: str) -> str:
    """`url` with `params` added to its existing query (upload locations carry state)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
