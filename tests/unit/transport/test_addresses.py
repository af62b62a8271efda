"""Addresses: IP literals in every spelling a resolver reads, and which ones are internal."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from relocator.transport.addresses import (
    internal_kind,
    is_internal,
    is_local_name,
    parse_ip,
)

# The unspecified address is a value under test here; nothing binds to it.
ANY = "0.0.0.0"  # noqa: S104


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("0x0a000001", "10.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("00000000000000177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("0", ANY),
        (ANY, ANY),
        ("4294967295", "255.255.255.255"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("[::ffff:7f00:1]", "::ffff:7f00:1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("[::]", "::"),
        ("[2606:4700::1111]", "2606:4700::1111"),
    ],
)
def test_parse_ip_reads_every_numeric_spelling(host: str, expected: str) -> None:
    """
    Hex, decimal, octal and short IPv4 forms name the address the system resolver
    would connect to; IPv6 comes with or without brackets and zone.
    """
    assert ipaddress.ip_address(expected) == parse_ip(host)


@pytest.mark.parametrize(
    "host",
    ["0x7f000001", "2130706433", "0177.0.0.1", "127.1", "0x7f.1", "0xa9fea9fe", "0",
     "4294967295", "1.16777215"],
)
def test_parse_ip_agrees_with_the_system_resolver(host: str) -> None:
    """Every legacy IPv4 form we read is read the same way by inet_aton."""
    assert ipaddress.ip_address(socket.inet_ntoa(socket.inet_aton(host))) == parse_ip(host)


@pytest.mark.parametrize(
    "host",
    ["registry.example", "localhost", "0x", "08.0.0.1", "1.2.3.4.5", "256.1.1.1",
     "4294967296", "1.16777216", "0x100000000", "127.0.0.1.", "127..1", "", "1e3",
     "[::g]", "12:34", "-1"],
)
def test_parse_ip_leaves_names_and_impossible_numbers_alone(host: str) -> None:
    """Names, out-of-range numbers and malformed literals are not addresses."""
    assert None is parse_ip(host)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "site-local"),
        (ANY, "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("100.64.0.1", "non-public"),
        ("100.100.100.200", "non-public"),
        ("192.0.2.1", "private"),
        ("198.18.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("::127.0.0.1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
        ("64:ff9b::7f00:1", "loopback"),
        ("2002:7f00:1::", "loopback"),
        ("2002:a00:1::5", "private"),
        ("2001:db8::1", "private"),
    ],
)
def test_internal_addresses_and_why(address: str, kind: str) -> None:
    """
    Loopback, private, link-local, unique-local, unspecified, multicast, reserved and
    shared addresses are internal, also when an IPv6 address carries an IPv4 one.
    """
    parsed = ipaddress.ip_address(address)

    assert kind == internal_kind(parsed)
    assert is_internal(parsed)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "93.184.216.34", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8",
     "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_addresses(address: str) -> None:
    """Globally routable unicast addresses, however they are written, are public."""
    parsed = ipaddress.ip_address(address)

    assert None is internal_kind(parsed)
    assert not is_internal(parsed)


@pytest.mark.parametrize(
    ("host", "expected"),
    [("localhost", True), ("LOCALHOST", True), ("localhost.", True), ("a.b.localhost", True),
     ("localhost.example", False), ("mylocalhost", False), ("127.0.0.1", False)],
)
def test_local_names(host: str, expected: bool) -> None:
    """`localhost` and the names under it (RFC 6761) are local, whatever their case."""
    assert expected == is_local_name(host)
