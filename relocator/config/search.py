"""
kbld search rules: which values in a document are image references.

A rule has a `keyMatcher` (a map key `name` anywhere, or an exact `path` from the
document root), a `valueMatcher` (an exact `image`, or an `imageRepo`), or both (then
both must match), and an `updateStrategy`: `none` (the value is not a reference),
`entireValue` (the default: the whole string is one reference), or `json` / `yaml` (the
string is a JSON or YAML document with references inside, found by nested rules).

Every value is tested against the rules in order and the first rule that matches decides
(kbld's semantics); the default rule `keyMatcher: {name: image}` is always last. A value
that is not rewritten is searched further (a mapping under `image:` is walked into).
`walker.Walker` applies the rules to a document.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from relocator.config.fields import Fields
from relocator.config.yamltree import (
    Map,
    Node,
    Scalar,
    describe,
)
from relocator.errors import ConfigError

# kbld's approximate reference regex (pkg/kbld/image/matcher.go). It is deliberately not
# a reference parser: `imageRepo: nginx` matches `nginx:1.2` but not
# `docker.io/library/nginx`, exactly as kbld users expect.
_APPROXIMATE_REF = re.compile(r"\A(.+?)(:[A-Za-z0-9_\-\.]+)?(@.+:.+)?\Z")


def image_repo_of(value: str) -> str:
    """The repository part of `value` as kbld sees it: `nginx:1.2@sha256:..` -> `nginx`."""
    match = _APPROXIMATE_REF.match(value)
    return match.group(1) if match else value


class AllIndexes(enum.Enum):
    """The `{allIndexes: true}` part of a key path: any position in a list."""

    ALL = "allIndexes"


ALL_INDEXES = AllIndexes.ALL
#: A key path part in a rule: a map key, a list position, or any list position.
PathPart = str | int | AllIndexes


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyMatcher:
    """`keyMatcher`: the value sits under map key `name`, or at exactly `path`."""

    name: str | None = None
    path: tuple[PathPart, ...] = ()

    def matches(self, at: tuple[str | int, ...]) -> bool:
        """Whether a value at key path `at` (map keys and list indexes) matches."""
        if self.name is not None:
            return bool(at) and at[-1] == self.name
        if len(at) != len(self.path):
            return False
        for want, got in zip(self.path, at, strict=True):
            if want is ALL_INDEXES:
                if not isinstance(got, int):
                    return False
            elif type(want) is not type(got) or want != got:
                return False
        return True

    def to_json(self) -> dict[str, Any]:
        """The matcher as kbld writes it."""
        if self.name is not None:
            return {"name": self.name}
        return {"path": [_path_part_json(p) for p in self.path]}


def _path_part_json(part: PathPart) -> object:
    if part is ALL_INDEXES:
        return {"allIndexes": True}
    if isinstance(part, int):
        return {"index": part}
    return part


@dataclass(frozen=True, slots=True, kw_only=True)
class ValueMatcher:
    """`valueMatcher`: the string equals `image`, or its repository equals `image_repo`."""

    image: str | None = None
    image_repo: str | None = None

    def matches(self, value: str) -> bool:
        """Whether the string `value` matches."""
        if self.image is not None:
            return value == self.image
        return image_repo_of(value) == self.image_repo

    def to_json(self) -> dict[str, Any]:
        """The matcher as kbld writes it."""
        if self.image is not None:
            return {"image": self.image}
        return {"imageRepo": self.image_repo}


class Strategy(enum.Enum):
    """The kinds of `updateStrategy`, named as in kbld's YAML."""

    NONE = "none"
    ENTIRE_VALUE = "entireValue"
    JSON = "json"
    YAML = "yaml"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateStrategy:
    """`updateStrategy`; `search_rules` are the nested rules of `json` and `yaml`."""

    kind: Strategy
    search_rules: tuple[SearchRule, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The strategy as kbld writes it."""
        if self.kind in (Strategy.JSON, Strategy.YAML) and self.search_rules:
            return {self.kind.value: {"searchRules": [r.to_json() for r in self.search_rules]}}
        return {self.kind.value: {}}


_ENTIRE_VALUE = UpdateStrategy(kind=Strategy.ENTIRE_VALUE)


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchRule:
    """One kbld search rule. Build rules from YAML with `SearchRule.from_node`."""

    key_matcher: KeyMatcher | None = None
    value_matcher: ValueMatcher | None = None
    #: None when the rule does not say; it then means `entireValue`.
    update_strategy: UpdateStrategy | None = None

    @property
    def strategy(self) -> UpdateStrategy:
        """The update strategy in effect."""
        return self.update_strategy or _ENTIRE_VALUE

    def matches(self, at: tuple[str | int, ...], node: Node) -> bool:
        """Whether the value `node` at key path `at` matches both matchers present."""
        if self.key_matcher is not None and not self.key_matcher.matches(at):
            return False
        if self.value_matcher is not None:
            return (
                isinstance(node, Scalar)
                and isinstance(node.value, str)
                and self.value_matcher.matches(node.value)
            )
        return True

    def to_json(self) -> dict[str, Any]:
        """The rule as kbld writes it (for lock files)."""
        doc: dict[str, Any] = {}
        if self.key_matcher is not None:
            doc["keyMatcher"] = self.key_matcher.to_json()
        if self.value_matcher is not None:
            doc["valueMatcher"] = self.value_matcher.to_json()
        if self.update_strategy is not None:
            doc["updateStrategy"] = self.update_strategy.to_json()
        return doc

    @classmethod
    def from_node(cls, node: Node, source: str) -> SearchRule:
        """
        Read one rule of a `searchRules` list.

        Stricter than kbld where kbld would silently prefer one of two settings: a
        matcher with both `name` and `path`, or both `image` and `imageRepo`, and a
        strategy naming two kinds are refused.

        Raises:
            ConfigError: The rule is malformed ("FILE:LINE: ...").
        """
        fields = Fields(node, source, "search rule")
        fields.refuse_unknown({"keyMatcher", "valueMatcher", "updateStrategy"})
        key = fields.get_map("keyMatcher")
        value = fields.get_map("valueMatcher")
        strategy = fields.get_map("updateStrategy")
        if key is None and value is None:
            raise fields.error("search rule needs a keyMatcher or a valueMatcher")
        return cls(
            key_matcher=_key_matcher(key, source) if key is not None else None,
            value_matcher=_value_matcher(value, source) if value is not None else None,
            update_strategy=_strategy(strategy, source) if strategy is not None else None,
        )


DEFAULT_SEARCH_RULE = SearchRule(key_matcher=KeyMatcher(name="image"))


def with_default_rule(rules: Iterable[SearchRule]) -> tuple[SearchRule, ...]:
    """`rules` then the default `image` key rule, without repeats (kbld's order)."""
    return unique_rules((*rules, DEFAULT_SEARCH_RULE))


def unique_rules(rules: Iterable[SearchRule]) -> tuple[SearchRule, ...]:
    """`rules` in order, each only the first time it appears."""
    return tuple(dict.fromkeys(rules))


def _key_matcher(node: Map, source: str) -> KeyMatcher:
    fields = Fields(node, source, "keyMatcher")
    fields.refuse_unknown({"name", "path"})
    name = fields.get_str("name")
    path_node = fields.get_seq("path")
    if name and path_node is not None and path_node.items:
        raise fields.error("keyMatcher needs name or path, not both")
    if name:
        return KeyMatcher(name=name)
    if path_node is None or not path_node.items:
        raise fields.error("keyMatcher needs a non-empty name or path")
    return KeyMatcher(path=tuple(_path_part(p, source) for p in path_node.items))


def _path_part(node: Node, source: str) -> PathPart:
    if isinstance(node, Scalar) and isinstance(node.value, str):
        return node.value
    if isinstance(node, Map):
        fields = Fields(node, source, "path part")
        fields.refuse_unknown({"index", "allIndexes"})
        index = fields.get("index")
        every = fields.get_bool("allIndexes")
        if index is not None and every is not None:
            raise fields.error("path part needs index or allIndexes, not both")
        if every is True:
            return ALL_INDEXES
        if (
            isinstance(index, Scalar)
            and isinstance(index.value, int)
            and not isinstance(index.value, bool)
            and index.value >= 0
        ):
            return index.value
    raise ConfigError(
        f"{source}:{node.line}: path parts are map keys (strings), "
        f"{{index: N}} or {{allIndexes: true}}; got {describe(node)}"
    )


def _value_matcher(node: Map, source: str) -> ValueMatcher:
    fields = Fields(node, source, "valueMatcher")
    fields.refuse_unknown({"image", "imageRepo"})
    image = fields.get_str("image")
    repo = fields.get_str("imageRepo")
    if image and repo:
        raise fields.error("valueMatcher needs image or imageRepo, not both")
    if image:
        return ValueMatcher(image=image)
    if repo:
        return ValueMatcher(image_repo=repo)
    raise fields.error("valueMatcher needs a non-empty image or imageRepo")


def _strategy(node: Map, source: str) -> UpdateStrategy:
    fields = Fields(node, source, "updateStrategy")
    fields.refuse_unknown({s.value for s in Strategy})
    # `none:` with nothing after it counts as `none: {}`.
    kinds = [s for s in Strategy if node.get(s.value) is not None]
    if len(kinds) != 1:
        raise fields.error("updateStrategy needs exactly one of none, entireValue, json, yaml")
    kind = kinds[0]
    body = fields.get_map(kind.value)
    rules: tuple[SearchRule, ...] = ()
    if body is not None and kind in (Strategy.JSON, Strategy.YAML):
        nested = Fields(body, source, kind.value)
        nested.refuse_unknown({"searchRules"})
        rules_node = nested.get_seq("searchRules")
        if rules_node is not None:
            rules = tuple(SearchRule.from_node(r, source) for r in rules_node.items)
    return UpdateStrategy(kind=kind, search_rules=rules)
