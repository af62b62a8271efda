"""Error messages echo outside values capped, on one line, without library reprs."""

from __future__ import annotations

import pytest

from relocator.errors import InvalidReference, RelocatorError, TransportError, shorten, tidy


def test_shorten_keeps_short_values_and_caps_long_ones_with_their_length() -> None:
    """A value of 200 characters is shown whole; a longer one cut, with its length."""
    assert "t" * 200 == shorten("t" * 200)
    assert "t" * 200 + "… (40000 characters)" == shorten("t" * 40_000)


def test_an_error_echoing_a_huge_value_stays_short() -> None:
    """A 20 MB tag in a message is shown as its first 200 characters and its length."""
    tag = "a" * 20_000_000

    error = InvalidReference(f"Invalid image reference 'nginx:{tag}': bad tag '{tag}'")

    assert len(str(error)) < 600
    assert 2 == str(error).count(" characters)")
    assert str(error).startswith("Invalid image reference 'nginx:aaa")


def test_values_up_to_a_long_reference_are_not_cut() -> None:
    """Runs under 512 characters (any real reference, path or URL) are kept whole."""
    reference = "registry.example.com/" + "a/" * 200 + "app@sha256:" + "0" * 64

    assert f"cannot copy {reference}" == str(RelocatorError(f"cannot copy {reference}"))


@pytest.mark.parametrize(
    "text",
    [
        "Cannot connect to host h:1 ssl:<ssl.SSLContext object at 0x7f3a2b1c> [refused]",
        "cannot use <aiohttp.client_reqrep.ClientResponse object at 0xDEADBEEF>",
    ],
)
def test_object_reprs_are_dropped(text: str) -> None:
    """`<... object at 0x...>` says nothing to a user and is removed."""
    assert "0x" not in tidy(text)
    assert "object at" not in tidy(text)


def test_messages_and_hints_are_one_line() -> None:
    """A newline in a message or hint (from a server's text) becomes a space."""
    error = TransportError("first\nsecond", host="h", temporary=False, hint="a\r\nb")

    assert ("first second", "a b") == (str(error), error.hint)
