"""
Addresses: the IP a host literal names, in every spelling a resolver accepts, and
whether an address is internal (not reachable from, or not meant for, the internet).

Pure functions, no I/O: the guard (`relocator.transport.guard`) uses them on the host of
a URL before connecting and on the address actually connected to.
"""

from __future__ import annotations

import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# One part of an IPv4 literal as inet_aton reads it: hex (0x1f), octal (017), decimal.
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_OCTAL = re.compile(r"0[0-7]*")
_DECIMAL = re.compile(r"[1-9][0-9]*")
# Prefixes that embed an IPv4 address in an IPv6 one, and where it sits (bit shift):
# NAT64 (RFC 6052) reaches the IPv4 address through a translator; 6to4 (RFC 3056)
# through a relay. The IPv4-mapped and -compatible forms are handled by ipaddress.
_EMBEDDING = (
    (ipaddress.IPv6Network("64:ff9b::/96"), 0),
    (ipaddress.IPv6Network("2002::/16"), 80),
)
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def parse_ip(host: str) -> IPAddress | None:
    """
    The address `host` (a URL's host) names if it is an IP literal, else None.

    Reads what the system resolver reads as a number, not only the canonical forms:
    `0x7f000001`, `2130706433`, `0177.0.0.1` and `127.1` all name 127.0.0.1; IPv6 may
    come in brackets and with a zone (`[fe80::1%25eth0]`).
    """
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return None
    return _parse_ipv4(text)


def _parse_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """inet_aton's grammar: 1 to 4 parts; the last one fills the bytes left."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        if _HEX.fullmatch(part):
            values.append(int(part, 16))
        elif _OCTAL.fullmatch(part):
            values.append(int(part, 8))
        elif _DECIMAL.fullmatch(part):
            values.append(int(part))
        else:
            return None
    *leading, last = values
    if any(v > 0xFF for v in leading) or last >= 1 << (8 * (4 - len(leading))):
        return None
    number = last
    for index, value in enumerate(leading):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def internal_kind(address: IPAddress) -> str | None:
    """
    What makes `address` internal ("loopback", "private", "link-local", ...), or None
    for a public (globally routable unicast) address.

    An IPv6 address that carries an IPv4 one (mapped, compatible, NAT64, 6to4) is as
    internal as the IPv4 address it reaches.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return internal_kind(embedded)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("non-public", not address.is_global),
    )
    return next((kind for kind, matched in checks if matched), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    for network, shift in _EMBEDDING:
        if address in network:
            return ipaddress.IPv4Address((int(address) >> shift) & 0xFFFFFFFF)
    return None


def is_internal(address: IPAddress, port: int = 0) -> bool:
    """
    Whether `address` is loopback, private, link-local, unique-local, unspecified,
    multicast, reserved or otherwise not public. `port` is not used: it is there so
    that a test can stand a local server in for a public one (see `TransportSettings`).
    """
    del port
    return internal_kind(address) is not None


def is_local_name(host: str) -> bool:
    """`localhost` and names under it, which resolvers answer with loopback (RFC 6761)."""
    name = host.strip().lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")
