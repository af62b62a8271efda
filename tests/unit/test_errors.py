"""Error messages echo outside values capped, on one line, without library reprs."""

from __future__ import annotations

import pytest

from relocator.cli import main
from relocator.errors import (
    BadToken,
    ChunkedUploadNeeded,
    CredentialHelperFailed,
    DigestNotKept,
    InvalidReference,
    MalformedAnswer,
    RegistryError,
    RelocatorError,
    TransportError,
    shorten,
    tidy,
)


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


@pytest.mark.parametrize(
    ("error", "temporary", "exit_code"),
    [
        pytest.param(MalformedAnswer("malformed tag list", host="h"), False, 8, id="malformed"),
        pytest.param(DigestNotKept("stored as another digest", host="h"), False, 8, id="digest"),
        pytest.param(BadToken("no token", host="h"), False, 4, id="token"),
        pytest.param(CredentialHelperFailed("helper failed", host="h"), False, 4, id="helper"),
        pytest.param(ChunkedUploadNeeded("single PUT refused", host="h", status=405), True, 8,
                     id="chunked"),
    ],
)
def test_errors_without_a_telling_status_have_their_own_type(
    error: RegistryError, temporary: bool, exit_code: int
) -> None:
    """
    An answer that is wrong in content, a bad token or a failed credential helper is a
    type of its own, not a made-up status: retryable by its type, and mapped to its
    parent's exit code.
    """
    assert (temporary, exit_code) == (error.temporary, main.exit_code(error))
    assert 0 != error.status
