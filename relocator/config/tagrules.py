"""
Tag rules of the `relocator mirror` config: which tags of a repository to mirror.

A rule is an exact tag (`"1.25.3"`), a regular expression (`{regex: ...}`) or a semver
range (`{semver: ...}`); a `TagFilter` selects the tags any `tags` rule matches and no
`exclude` rule does, on a list of tags the caller fetched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from relocator.config.fields import Fields
from relocator.config.semver import Range, parse_version
from relocator.config.yamltree import Node, Scalar, describe
from relocator.errors import InputError
from relocator.oci import is_tag, shown


@dataclass(frozen=True, slots=True, kw_only=True)
class ExactTag:
    """A tag named exactly: `"1.25.3"`."""

    tag: str
    #: "FILE:LINE" of the rule, for messages.
    where: str = ""

    def matches(self, tag: str) -> bool:
        """Whether `tag` is this tag."""
        return tag == self.tag

    def __str__(self) -> str:
        return self.tag


@dataclass(frozen=True, slots=True, kw_only=True)
class TagPattern:
    """Tags matching a regular expression as a whole: `regex: '^1\\.26\\.[0-9]+$'`."""

    pattern: re.Pattern[str]
    where: str = ""

    def matches(self, tag: str) -> bool:
        """Whether the whole of `tag` matches (the pattern is anchored at both ends)."""
        return self.pattern.fullmatch(tag) is not None

    def __str__(self) -> str:
        return f"regex {self.pattern.pattern}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SemverTags:
    """
    Tags that are semantic versions within a range: `semver: ">=1.24.0 <1.26.0"`.

    A tag must be a full version (`1.25.3`, `v1.25.3`); moving tags such as `1.25` or
    `latest` never match. Prereleases (`1.26.0-rc.1`) match only with `prereleases`.
    """

    range: Range
    prereleases: bool = False
    where: str = ""

    def matches(self, tag: str) -> bool:
        """Whether `tag` is a version in the range."""
        version = parse_version(tag)
        return version is not None and self.range.contains(
            version, allow_prereleases=self.prereleases
        )

    def __str__(self) -> str:
        return f"semver {self.range}" + (" (prereleases too)" if self.prereleases else "")


TagRule = ExactTag | TagPattern | SemverTags


@dataclass(frozen=True, slots=True, kw_only=True)
class TagFilter:
    """
    Which tags of a repository to mirror: those any `include` rule matches and no
    `exclude` rule does.
    """

    include: tuple[TagRule, ...]
    exclude: tuple[TagRule, ...] = ()

    def matches(self, tag: str) -> bool:
        """Whether `tag` is selected."""
        return any(r.matches(tag) for r in self.include) and not any(
            r.matches(tag) for r in self.exclude
        )

    def select(self, tags: Iterable[str]) -> list[str]:
        """The selected tags among `tags`, each once, in the order given."""
        return [tag for tag in dict.fromkeys(tags) if self.matches(tag)]

    def absent(self, tags: Iterable[str]) -> list[ExactTag]:
        """The exact tags the filter names that are not among `tags` (likely typos)."""
        present = set(tags)
        return [r for r in self.include if isinstance(r, ExactTag) and r.tag not in present]


def tag_rules(fields: Fields, key: str) -> tuple[TagRule, ...]:
    """
    The tag rules listed under `key` (`tags`, `exclude`) of a source; none when absent.

    Raises:
        ConfigError: A rule is malformed (one line naming FILE:LINE).
    """
    node = fields.get_seq(key)
    if node is None:
        return ()
    return tuple(_rule(item, fields) for item in node.items)


def _rule(node: Node, parent: Fields) -> TagRule:
    where = f"{parent.source}:{node.line}"
    if isinstance(node, Scalar):
        if not isinstance(node.value, str):
            raise parent.error(
                f"expected a tag to be a string, got {describe(node)} (quote it)", node
            )
        if not is_tag(node.value):
            raise parent.error(f"{shown(node.value)} is not a valid tag", node)
        return ExactTag(tag=node.value, where=where)
    fields = Fields(node, parent.source, "tag rule")
    fields.refuse_unknown({"regex", "semver", "prereleases"})
    regex, semver = fields.get_str("regex"), fields.get_str("semver")
    if (regex is None) == (semver is None):
        raise fields.error(
            'a tag rule is an exact tag, {regex: "..."} or {semver: "..."} (one of them)'
        )
    prereleases = fields.get_bool("prereleases")
    if regex is not None:
        if prereleases is not None:
            raise fields.error("prereleases goes with semver", fields.get("prereleases"))
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            raise fields.error(f"bad regex '{regex}': {exc}", fields.get("regex")) from None
        return TagPattern(pattern=pattern, where=where)
    try:
        semver_range = Range.parse(semver or "")
    except InputError as exc:
        raise fields.error(f"bad {exc}", fields.get("semver")) from None
    return SemverTags(range=semver_range, prereleases=bool(prereleases), where=where)
