"""
What argparse turns a flag's text into: booleans, counts, `--limit` caps, durations, and
the action of `--registry-insecure`.

The types raise `argparse.ArgumentTypeError` with one line naming the value, which
argparse prints as the usage error (exit 2).
"""

from __future__ import annotations

import argparse
import re

from relocator.errors import shorten

#: What `--limit` caps, with its default (kept equal to `relocator.engine.limits.Limits`
#: and `relocator.config.inputs.MAX_INPUT_BYTES`, which a unit test checks; the parser
#: imports neither, to keep `--help` fast).
LIMIT_DEFAULTS = {
    "index-entries": 1000,
    "layers": 1000,
    "plan-manifest-bytes": 64 * 1024 * 1024,
    "input-bytes": 32 * 1024 * 1024,
}
_SIZE_UNITS = {"": 1, "k": 1024, "kib": 1024, "m": 1024**2, "mib": 1024**2,
               "g": 1024**3, "gib": 1024**3}


def boolean(text: str) -> bool:
    """`true` or `false`, as kbld spells them (also 1/0, yes/no, on/off)."""
    lowered = text.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


class Insecure(argparse.Action):
    """
    `--registry-insecure` as kbld's boolean and as relocator's host list at once.

    Bare, or `=true|false` (any spelling `boolean` takes), it switches plain http for every
    registry (`registry_insecure_all`); any other value is one host (`registry_insecure`,
    repeatable). A boolean word is never taken for a host: no registry is named `true`.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        if values is None:
            namespace.registry_insecure_all = True
            return
        text = str(values)
        if not text:
            parser.error(f"{option_string}= needs a HOST[:PORT], or true or false")
        try:
            namespace.registry_insecure_all = boolean(text)
        except argparse.ArgumentTypeError:
            namespace.registry_insecure = [*namespace.registry_insecure, text]


def positive(text: str) -> int:
    """A whole number of at least 1, in ASCII digits."""
    # ASCII digits only: int() also reads '٣', ' 3' and '1_0'.
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 9):
        raise argparse.ArgumentTypeError(f"expected a number, got '{shorten(text)}'")
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def limit(text: str) -> tuple[str, int]:
    """`NAME=N` of `--limit`: a name of `LIMIT_DEFAULTS` and a size (K, M or G)."""
    name, sep, value = text.partition("=")
    if not sep or name not in LIMIT_DEFAULTS:
        raise argparse.ArgumentTypeError(
            f"expected NAME=N with NAME one of {', '.join(LIMIT_DEFAULTS)}, got '{text}'"
        )
    digits = value.rstrip("KkMmGgIiBb")
    unit = _SIZE_UNITS.get(value[len(digits):].lower())
    if not digits.isascii() or not digits.isdigit() or unit is None or int(digits) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive number (optionally with K, M or G) for {name}, got '{value}'"
        )
    return name, int(digits) * unit


#: Units of a `--timeout` DURATION, in seconds.
_UNITS = {"s": 1, "m": 60, "h": 3600}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)([hms]))+|\d+(?:\.\d+)?")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def parse_duration(text: str) -> float:
    """
    Seconds in `90`, `90s`, `15m`, `2h` or `1h30m`; more than zero.

    Raises:
        ValueError: Anything else, with a message naming `text`.
    """
    shown = text[:40]
    if not _DURATION.fullmatch(text):
        raise ValueError(f"expected a duration such as 90s, 15m or 1h30m, got '{shown}'")
    if text[-1] not in _UNITS:
        seconds = float(text)
    else:
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"expected a duration of more than zero, got '{shown}'")
    return seconds


def duration(text: str) -> float:
    """`parse_duration` as an argparse type."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
