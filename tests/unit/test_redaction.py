"""The run's secrets registry: what the transport sent is hidden from any output."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from relocator import redaction


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    """Each test starts and ends with no secret recorded."""
    redaction.forget_all()
    yield
    redaction.forget_all()


def test_recorded_secrets_are_replaced_wherever_they_appear() -> None:
    """A token echoed anywhere in a text becomes REDACTED."""
    redaction.remember("tok-3f9a8b7c6d")

    assert "denied: REDACTED (REDACTED)" == redaction.scrub("denied: tok-3f9a8b7c6d (tok-3f9a8b7c6d)")


def test_basic_credentials_are_recorded_whole_and_by_password() -> None:
    """The Basic header value and the password both count as secrets; the user does not."""
    value = redaction.remember_basic("alice", "pa55word")

    assert base64.b64encode(b"alice:pa55word").decode() == value
    assert "alice REDACTED REDACTED" == redaction.scrub(f"alice pa55word {value}")


def test_json_escaped_forms_are_hidden_too() -> None:
    """A password with a quote or a backslash is hidden in JSON output as well."""
    password = 'pa"ss\\wörd'
    redaction.remember(password)

    assert '{"m": "REDACTED"}' == redaction.scrub(json.dumps({"m": password}))
    assert '{"m": "REDACTED"}' == redaction.scrub(json.dumps({"m": password}, ensure_ascii=False))


def test_a_longer_secret_containing_another_is_replaced_whole() -> None:
    """Longest first: no fragment of the longer secret is left behind."""
    redaction.remember("abcd", "abcdefgh")

    assert "REDACTED" == redaction.scrub("abcdefgh")


def test_values_too_short_to_be_secrets_are_ignored() -> None:
    """A three-character password would mangle ordinary words; it is not recorded."""
    redaction.remember("abc", "", None)

    assert "abc" == redaction.scrub("abc")
