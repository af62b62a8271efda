"""
Walking a document with search rules: every image reference they find is passed to a
visitor, and the tree is rebuilt with what it returns (strings holding JSON or YAML
documents are walked into with their rule's nested rules).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from relocator.config.emit import emit_json, emit_yaml
from relocator.config.search import SearchRule, Strategy, UpdateStrategy
from relocator.config.yamltree import (
    Map,
    Node,
    ParseProblem,
    Scalar,
    Seq,
    describe,
    parse_json,
    parse_yaml_stream,
)
from relocator.errors import ConfigError

#: Called with each reference found (a string) and its line; returns the replacement,
#: or None to leave the value as it is.
Visitor = Callable[[str, int], str | None]


class Walker:
    """
    Applies search rules to a tree: calls `visit` for every reference and rebuilds the
    tree with the values it returns. Untouched subtrees are returned as the same objects.
    """

    def __init__(self, source: str, visit: Visitor, warnings: list[str] | None = None) -> None:
        self.source = source
        self.visit = visit
        #: Where to report values that a json/yaml rule matched but that do not parse;
        #: None to stay quiet (when rendering what was already loaded once).
        self.warnings = warnings

    def walk(
        self,
        node: Node,
        rules: Sequence[SearchRule],
        at: tuple[str | int, ...] = (),
        outer_line: int | None = None,
    ) -> Node:
        """The tree `node` with every reference the rules find passed through `visit`."""
        if isinstance(node, Map):
            items = tuple(
                (key, self._child(value, rules, (*at, key.text), outer_line))
                for key, value in node.items
            )
            if all(new is old for (_, new), (_, old) in zip(items, node.items, strict=True)):
                return node
            return Map(items, node.line)
        if isinstance(node, Seq):
            seq_items = tuple(
                self._child(value, rules, (*at, i), outer_line)
                for i, value in enumerate(node.items)
            )
            if all(new is old for new, old in zip(seq_items, node.items, strict=True)):
                return node
            return Seq(seq_items, node.line)
        return node

    def _child(
        self,
        node: Node,
        rules: Sequence[SearchRule],
        at: tuple[str | int, ...],
        outer_line: int | None,
    ) -> Node:
        strategy = next((r.strategy for r in rules if r.matches(at, node)), None)
        if strategy is None or strategy.kind is Strategy.NONE or not isinstance(node, Scalar):
            return self.walk(node, rules, at, outer_line)
        line = outer_line or node.line
        if not isinstance(node.value, str):
            if strategy.kind is Strategy.ENTIRE_VALUE and node.value is not None:
                raise ConfigError(
                    f"{self.source}:{line}: expected image reference to be a string, "
                    f"got {describe(node)} (quote it)"
                )
            return node
        if strategy.kind is Strategy.ENTIRE_VALUE:
            new = self.visit(node.value, line)
            return node if new is None or new == node.value else node.with_text(new)
        return self._embedded(node, strategy, line)

    def _embedded(self, node: Scalar, strategy: UpdateStrategy, line: int) -> Node:
        text = str(node.value)
        if not text.strip():
            return node
        try:
            docs: list[Node] = [parse_json(text, line)]
            as_json = True
        except ParseProblem as json_problem:
            if strategy.kind is Strategy.JSON:
                return self._unusable(node, strategy, json_problem, line)
            try:
                docs = [root for root in parse_yaml_stream(text) if root is not None]
            except ParseProblem as yaml_problem:
                return self._unusable(node, strategy, yaml_problem, line)
            as_json = False
        # Nested values report the line of the string that holds them.
        new_docs = [self.walk(doc, strategy.search_rules, (), line) for doc in docs]
        if all(new is old for new, old in zip(new_docs, docs, strict=True)):
            # Unlike kbld, a value with nothing to replace keeps its exact text.
            return node
        if as_json:
            return node.with_text(emit_json(new_docs[0]))
        return node.with_text("".join("---\n" + emit_yaml(doc) for doc in new_docs))

    def _unusable(
        self, node: Scalar, strategy: UpdateStrategy, problem: ParseProblem, line: int
    ) -> Node:
        # kbld leaves such a value as it is, silently; we leave it too but say so, since
        # an image reference inside it will not be found.
        if self.warnings is not None:
            inner = f" (line {problem.line} of the value)" if problem.line else ""
            self.warnings.append(
                f"{self.source}:{line}: value matched by a {strategy.kind.value} search rule "
                f"is not {strategy.kind.value.upper()}{inner}: {problem.message}; left unchanged"
            )
        return node
