"""
JSON members: read strictly, written compactly.

Members of a tarball are untrusted documents. Duplicate keys are refused (Python keeps
the last, Go the first, so two tools would read two documents), as are `NaN` and
`Infinity` (not JSON) and anything that is not UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

from relocator.errors import TarError
from relocator.oci import strictjson


def load(raw: bytes, *, what: str) -> Any:
    """
    Parse a JSON member.

    Args:
        raw: The member's bytes.
        what: How to name it in errors (`file.tar:index.json`).

    Raises:
        TarError: Not UTF-8, not JSON, duplicate keys or non-finite numbers.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TarError(f"{what} is not UTF-8 text") from None
    try:
        return strictjson.loads(text)
    except strictjson.DuplicateKey as exc:
        raise TarError(f"{what} is ambiguous: {exc}") from None
    except (ValueError, RecursionError):
        raise TarError(f"{what} is not valid JSON") from None


def dump(doc: Any) -> bytes:
    """`doc` as compact UTF-8 JSON, keys in insertion order (deterministic)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# Go's encoding/json escapes these inside strings (HTML safety, JavaScript line
# separators); kbld's manifest.json is written by Go, so ours is written the same way.
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def dump_like_go(doc: Any) -> bytes:
    """
    `doc` as Go's `json.Marshal` writes it: compact, keys in the order given, `<`, `>`,
    `&`, U+2028 and U+2029 escaped (they can only occur inside strings).
    """
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    for char, escape in _GO_ESCAPES.items():
        text = text.replace(char, escape)
    return text.encode("utf-8")
