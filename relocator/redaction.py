"""
The secrets of this run: every credential the transport used, so output can hide them.

A registry may echo what it was sent (a bearer token in an error body, a password in a
message), and a message may travel far from the request before it is printed. Rather
than trust every place that builds a message, the transport records each secret the
moment it uses one (`remember`), and whatever writes output (the CLI's streams and
report files) passes its text through `scrub`. The registry is per process, as the
output streams are. It sits beside `relocator.errors` at the bottom of the layers and
imports nothing of relocator's, so the transport can fill it and the CLI's entry point
can read it without loading aiohttp.
"""

from __future__ import annotations

import base64
import json
import threading

#: What a secret is replaced with in output.
REDACTED = "REDACTED"
# Shorter values would also match ordinary words in output; such a password is not worth
# mangling every line for (and is guessed faster than read off a terminal).
MIN_LENGTH = 4

_lock = threading.Lock()
_secrets: set[str] = set()
# Longest first, so that a secret containing another is replaced whole.
_ordered: tuple[str, ...] = ()


def remember(*values: str | None) -> None:
    """
    Record secrets that output must never show: passwords, tokens, header values.

    Each is also recorded as JSON would escape it, since output may be JSON lines.
    """
    global _ordered
    forms = set()
    for value in values:
        if value and len(value) >= MIN_LENGTH:
            forms.add(value)
            forms.add(json.dumps(value)[1:-1])
            forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        _ordered = tuple(sorted(_secrets, key=len, reverse=True))


def remember_basic(username: str, password: str | None) -> str:
    """The value of a Basic `Authorization` header, its parts recorded as secrets."""
    pair = f"{username}:{password or ''}"
    value = base64.b64encode(pair.encode()).decode()
    remember(password, value)
    return value


def scrub(text: str) -> str:
    """`text` with every recorded secret replaced by `REDACTED`."""
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def forget_all() -> None:
    """Forget every secret (tests that need a clean registry)."""
    global _ordered
    with _lock:
        _secrets.clear()
        _ordered = ()
