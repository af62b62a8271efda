"""
Typed, located access to the fields of a mapping in a config document: every wrong type
or unknown key is a `ConfigError` of one line naming FILE:LINE.
"""

from __future__ import annotations

from collections.abc import Iterable

from relocator.config.yamltree import Map, Node, Scalar, Seq, describe
from relocator.errors import ConfigError


class Fields:
    """Typed, located access to the fields of a mapping in a config document."""

    def __init__(self, node: Node, source: str, what: str) -> None:
        if not isinstance(node, Map):
            raise ConfigError(
                f"{source}:{node.line}: expected {what} to be a mapping, got {describe(node)}"
            )
        self.node = node
        self.source = source
        self.what = what

    def error(self, message: str, node: Node | None = None) -> ConfigError:
        """A ConfigError located at `node` (default: this mapping)."""
        return ConfigError(f"{self.source}:{(node or self.node).line}: {message}")

    def unknown(self, known: Iterable[str]) -> list[Scalar]:
        """The keys of this mapping that are not in `known`."""
        known = set(known)
        return [k for k, _ in self.node.items if k.text not in known]

    def refuse_unknown(self, known: Iterable[str]) -> None:
        """Raise ConfigError naming the first key not in `known`."""
        for key in self.unknown(known):
            raise self.error(f"unknown field '{key.text}' in {self.what}", key)

    def get(self, key: str) -> Node | None:
        """The value under `key`; None if absent or null."""
        node = self.node.get(key)
        if isinstance(node, Scalar) and node.value is None:
            return None
        return node

    def get_str(self, key: str) -> str | None:
        """A string field (None if absent or null)."""
        node = self.get(key)
        if node is None:
            return None
        if not (isinstance(node, Scalar) and isinstance(node.value, str)):
            raise self._type_error(key, node, "a string")
        return node.value

    def get_bool(self, key: str) -> bool | None:
        """A boolean field (None if absent or null)."""
        node = self.get(key)
        if node is None:
            return None
        if not (isinstance(node, Scalar) and isinstance(node.value, bool)):
            raise self._type_error(key, node, "true or false")
        return node.value

    def get_map(self, key: str) -> Map | None:
        """A mapping field (None if absent or null)."""
        node = self.get(key)
        if node is not None and not isinstance(node, Map):
            raise self._type_error(key, node, "a mapping")
        return node

    def get_seq(self, key: str) -> Seq | None:
        """A list field (None if absent or null)."""
        node = self.get(key)
        if node is not None and not isinstance(node, Seq):
            raise self._type_error(key, node, "a list")
        return node

    def get_str_list(self, key: str) -> tuple[str, ...]:
        """A list of strings (empty if absent or null)."""
        node = self.get_seq(key)
        if node is None:
            return ()
        result = []
        for item in node.items:
            if not (isinstance(item, Scalar) and isinstance(item.value, str)):
                raise self._type_error(key, item, "a list of strings")
            result.append(item.value)
        return tuple(result)

    def _type_error(self, key: str, node: Node, expected: str) -> ConfigError:
        hint = " (quote it)" if isinstance(node, Scalar) and expected == "a string" else ""
        return self.error(f"expected {key} to be {expected}, got {describe(node)}{hint}", node)
