"""
JSON read the strict way: duplicate keys and non-standard constants refused.

Python's `json` keeps the last of two duplicate keys and Go's decoder the first, so a
document with duplicates means different things to different programs; and `NaN` or
`Infinity` are not JSON at all. Every untrusted document (manifests, tarball metadata)
is read through `loads`.
"""

from __future__ import annotations

import json
from typing import Any


class DuplicateKey(ValueError):
    """An object has the same key twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key '{key[:80]}'")
        self.key = key


def loads(text: str | bytes) -> Any:
    """
    Parse JSON text.

    Raises:
        DuplicateKey: An object repeats a key.
        ValueError: Not valid JSON (`NaN`, `Infinity` included).
        RecursionError: Nested deeper than Python's recursion limit.
    """
    return json.loads(text, object_pairs_hook=_object, parse_constant=_refuse_constant)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise DuplicateKey(key)
        doc[key] = value
    return doc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
