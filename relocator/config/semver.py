"""
Semantic versions and version ranges, for choosing tags to mirror.

A small, dependency-free implementation of the parts of semver 2.0.0 that tag filters
need:

- `Version.parse("v1.25.3-rc.1")`: `MAJOR.MINOR.PATCH`, an optional leading `v`, an
  optional prerelease and build metadata. Anything else (`1.25`, `latest`,
  `1.25.3-alpine` is fine, `01.2.3` is not) is not a version, and `parse_version`
  answers None instead of raising, because most tags of a repository are not versions.
- Ordering as semver 2.0.0 §11 defines it: numeric identifiers compare as numbers,
  alphanumeric ones as ASCII text, a numeric identifier sorts before an alphanumeric
  one, a longer prerelease sorts after its own prefix, and a prerelease sorts before
  its release (`1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-beta < 1.0.0-rc.1 < 1.0.0`). Build
  metadata is ignored.
- `Range.parse(">=1.24.0 <1.26.0 || ^2.1")`: comparators `=`, `!=`, `>`, `>=`, `<`,
  `<=`, `~` (same minor), `^` (same leftmost non-zero part); comparators separated by
  spaces or commas must all hold, `||` separates alternatives. A version in a range may
  be partial (`1`, `1.2`, `1.2.x`, `*`) and then stands for every version it prefixes,
  prereleases included: `=1.2` is `>=1.2.0-0 <1.3.0-0`, `>1.2` is `>=1.3.0-0`.
- Prereleases match a range only when the caller allows them (`allow_prereleases`):
  `1.26.0-rc.1` is usually not something a mirror of "1.x releases" should pick up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from relocator.errors import InputError

# Semver 2.0.0's grammar: numbers without leading zeros; identifiers of [0-9A-Za-z-].
_NUMBER = r"0|[1-9][0-9]*"
_IDENT = r"[0-9A-Za-z-]+"
_VERSION = re.compile(
    rf"v?(?P<major>{_NUMBER})\.(?P<minor>{_NUMBER})\.(?P<patch>{_NUMBER})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?"
    rf"(?:\+(?P<build>{_IDENT}(?:\.{_IDENT})*))?"
)
_WILDCARD = r"[xX*]"
# A version inside a range: parts may be left out or wildcards; a prerelease needs all
# three parts.
_PARTIAL = re.compile(
    rf"v?(?P<major>{_NUMBER}|{_WILDCARD})"
    rf"(?:\.(?P<minor>{_NUMBER}|{_WILDCARD})"
    rf"(?:\.(?P<patch>{_NUMBER}|{_WILDCARD})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?"
    rf"(?:\+(?P<build>{_IDENT}(?:\.{_IDENT})*))?)?)?"
)
# One comparator: an operator (none means `=`), optional spaces, a version.
_COMPARATOR = re.compile(r"(?P<op>!=|>=|<=|>|<|=|~|\^)?\s*(?P<version>[^\s,|]+)")
# Text that must not follow an operator directly: another operator or the end.
_OPERATORS = ("!=", ">=", "<=", ">", "<", "=", "~", "^")
# Range texts are typed by people; anything this long is a mistake, not a range.
MAX_RANGE_LENGTH = 1024


def _prerelease_key(identifiers: tuple[str, ...]) -> tuple[tuple[int, int | str], ...]:
    # Numeric identifiers sort before alphanumeric ones (semver 2.0.0 §11.4.3).
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in identifiers)


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    """A semantic version; compares by semver 2.0.0 precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        """
        Parse `1.2.3`, `v1.2.3`, `1.2.3-rc.1`, `1.2.3+build.5`.

        Raises:
            InputError: `text` is not a full semantic version.
        """
        version = parse_version(text)
        if version is None:
            raise InputError(f"'{text}' is not a semantic version (e.g. 1.2.3 or v1.2.3-rc.1)")
        return version

    @property
    def is_prerelease(self) -> bool:
        """Whether this is a prerelease (`1.2.3-rc.1`)."""
        return bool(self.prerelease)

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        # A release sorts after every prerelease of the same MAJOR.MINOR.PATCH (§11.3).
        released = 0 if self.prerelease else 1
        return self.major, self.minor, self.patch, released, _prerelease_key(self.prerelease)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


def parse_version(text: str) -> Version | None:
    """`text` as a full semantic version, or None if it is not one (most tags are not)."""
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    pre, build = match.group("pre"), match.group("build")
    prerelease = tuple(pre.split(".")) if pre else ()
    # Numeric prerelease identifiers must not have leading zeros (§9).
    if any(p.isdigit() and len(p) > 1 and p.startswith("0") for p in prerelease):
        return None
    return Version(
        int(match.group("major")),
        int(match.group("minor")),
        int(match.group("patch")),
        prerelease,
        tuple(build.split(".")) if build else (),
    )


def _floor(major: int, minor: int = 0, patch: int = 0) -> Version:
    """The lowest version of `MAJOR.MINOR.PATCH`: its lowest possible prerelease, `-0`."""
    return Version(major, minor, patch, ("0",))


@dataclass(frozen=True, slots=True)
class Interval:
    """
    Versions between `low` and `high` (None: unbounded), or outside them (`negated`).

    Every comparator reduces to one interval: `>=1.2.0` is `[1.2.0, ∞)`, `~1.2.3` is
    `[1.2.3, 1.3.0-0)`, `!=1.2` is everything outside `[1.2.0-0, 1.3.0-0)`.
    """

    low: Version | None = None
    low_inclusive: bool = True
    high: Version | None = None
    high_inclusive: bool = False
    negated: bool = False

    def contains(self, version: Version) -> bool:
        """Whether `version` satisfies this comparator."""
        inside = True
        if self.low is not None:
            inside = version >= self.low if self.low_inclusive else version > self.low
        if inside and self.high is not None:
            inside = version <= self.high if self.high_inclusive else version < self.high
        return inside != self.negated


@dataclass(frozen=True, slots=True)
class Range:
    """
    A version range: alternatives (`||`), each a set of comparators that must all hold.

    Build with `Range.parse`; `text` is the range as written, for messages.
    """

    text: str
    alternatives: tuple[tuple[Interval, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Range:
        """
        Parse a range such as `>=1.24.0 <1.26.0`, `~1.25`, `^2 || ^3`, `1.25.x`.

        Raises:
            InputError: The text is not a range; the message names the offending part.
        """
        if len(text) > MAX_RANGE_LENGTH:
            raise InputError(f"semver range longer than {MAX_RANGE_LENGTH} characters")
        alternatives = []
        for alternative in text.split("||"):
            if not alternative.strip():
                raise InputError(f"semver range '{text}' has an empty alternative around '||'")
            alternatives.append(_parse_conjunction(alternative, text))
        return cls(text, tuple(alternatives))

    def contains(self, version: Version, *, allow_prereleases: bool = False) -> bool:
        """
        Whether `version` is in the range. A prerelease never is, unless
        `allow_prereleases`.
        """
        if version.is_prerelease and not allow_prereleases:
            return False
        return any(all(c.contains(version) for c in conj) for conj in self.alternatives)

    def __str__(self) -> str:
        return self.text


def _parse_conjunction(text: str, whole: str) -> tuple[Interval, ...]:
    comparators: list[Interval] = []
    position = 0
    while True:
        # Separators between comparators: spaces and commas.
        while position < len(text) and (text[position].isspace() or text[position] == ","):
            position += 1
        if position == len(text):
            break
        match = _COMPARATOR.match(text, position)
        if match is None or match.group("version").startswith(_OPERATORS):
            raise InputError(f"semver range '{whole}': expected a version at '{text[position:]}'")
        comparators.append(_comparator(match.group("op") or "=", match.group("version"), whole))
        position = match.end()
    return tuple(comparators)


def _comparator(op: str, text: str, whole: str) -> Interval:
    match = _PARTIAL.fullmatch(text)
    if match is None:
        raise InputError(
            f"semver range '{whole}': '{text}' is not a version (e.g. 1.2.3, 1.2, 1.x)"
        )
    parts: list[int] = []
    for name in ("major", "minor", "patch"):
        value = match.group(name)
        if value is None or value in ("x", "X", "*"):
            break
        parts.append(int(value))
    given = [match.group(n) for n in ("major", "minor", "patch") if match.group(n) is not None]
    if len(given) > len(parts) and any(p not in ("x", "X", "*") for p in given[len(parts):]):
        # `1.x.3`: a wildcard followed by a number means nothing.
        raise InputError(f"semver range '{whole}': '{text}' has a number after a wildcard")
    pre = match.group("pre")
    if len(parts) == 3:
        prerelease = tuple(pre.split(".")) if pre else ()
        return _exact_comparator(op, Version(parts[0], parts[1], parts[2], prerelease))
    if pre:
        raise InputError(f"semver range '{whole}': '{text}' has a prerelease but no patch")
    return _partial_comparator(op, tuple(parts), whole, text)


def _exact_comparator(op: str, version: Version) -> Interval:
    major, minor, patch = version.major, version.minor, version.patch
    if op == "=":
        return Interval(low=version, high=version, high_inclusive=True)
    if op == "!=":
        return Interval(low=version, high=version, high_inclusive=True, negated=True)
    if op == ">":
        return Interval(low=version, low_inclusive=False)
    if op == ">=":
        return Interval(low=version)
    if op == "<":
        return Interval(high=version)
    if op == "<=":
        return Interval(high=version, high_inclusive=True)
    if op == "~":
        return Interval(low=version, high=_floor(major, minor + 1))
    # `^`: the leftmost non-zero part may not change (^0.2.3 stays below 0.3.0).
    if major:
        return Interval(low=version, high=_floor(major + 1))
    if minor:
        return Interval(low=version, high=_floor(0, minor + 1))
    return Interval(low=version, high=_floor(0, 0, patch + 1))


def _partial_comparator(op: str, parts: tuple[int, ...], whole: str, text: str) -> Interval:
    if not parts:
        # `*`, `x`: any version; with another operator it means nothing useful.
        if op not in ("=", "~", "^", ">="):
            raise InputError(f"semver range '{whole}': '{op}{text}' matches no version")
        return Interval()
    low = _floor(*parts)
    # The first version past everything `parts` prefixes: 1 -> 2.0.0-0, 1.2 -> 1.3.0-0.
    after = _floor(parts[0] + 1) if len(parts) == 1 else _floor(parts[0], parts[1] + 1)
    if op in ("=", "~"):
        return Interval(low=low, high=after)
    if op == "!=":
        return Interval(low=low, high=after, negated=True)
    if op == ">":
        return Interval(low=after)
    if op == ">=":
        return Interval(low=low)
    if op == "<":
        return Interval(high=low)
    if op == "<=":
        return Interval(high=after)
    # `^1`, `^1.2`: same major; `^0.2`: same minor; `^0`: below 1.0.0; `^0.0`: below 0.1.0.
    major = parts[0]
    if major or len(parts) == 1:
        return Interval(low=low, high=_floor(major + 1))
    minor = parts[1]
    return Interval(low=low, high=_floor(0, minor + 1))
