"""
Safe YAML (and embedded JSON) reading; `emit` writes the trees back.

We never construct Python objects from a YAML stream with PyYAML's loaders. Instead we
read the *events* of `yaml.SafeLoader`'s parser (libyaml's when PyYAML has it) and build
our own small frozen tree, which lets us:

- refuse every tag outside YAML's core schema (`!!python/...`, `!Ref`, `!!set`, ...);
- expand aliases (`*name`) as kbld does, by sharing the anchored node, with the number
  of nodes aliases add to a stream capped (`MAX_ALIASED_NODES`): an alias bomb (nine
  aliases nine levels deep are 387 million leaves to a walker) is refused as soon as
  its expansion passes the cap, long before anything walks it;
- refuse duplicate mapping keys, complex keys and merge keys (`<<`), which mean different
  things to different parsers;
- remember the line of every node, so a scalar that YAML 1.1 turned into something
  other than a string (`image: 1.10` is the float 1.1) can be reported with FILE:LINE;
- keep the source text and quoting style of every scalar, so rendering a document back
  changes only the values we replace (`mode: 0755` stays `0755`, not `493`).

The tree is built (and `emit` writes it) without recursion, so nesting depth is bounded
by `MAX_DEPTH` and not by the interpreter's stack.
"""

from __future__ import annotations

import binascii
import datetime
import functools
import json
from dataclasses import dataclass, field
from typing import TypeAlias

import yaml
from yaml.constructor import SafeConstructor

from relocator.errors import ConfigError

try:  # libyaml's parser is much faster; behaviour is the same.
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

_CORE = "tag:yaml.org,2002:"
STR = _CORE + "str"
NULL = _CORE + "null"
BOOL = _CORE + "bool"
INT = _CORE + "int"
FLOAT = _CORE + "float"
TIMESTAMP = _CORE + "timestamp"
BINARY = _CORE + "binary"
MAP = _CORE + "map"
SEQ = _CORE + "seq"
# The resolver gives a plain `=` the tag `value` and a plain `<<` the tag `merge`; as
# values both are just strings (PyYAML's own safe_load cannot read `a: =` at all).
_VALUE = _CORE + "value"
_MERGE = _CORE + "merge"
_SCALAR_TAGS = frozenset({STR, NULL, BOOL, INT, FLOAT, TIMESTAMP, BINARY, _VALUE, _MERGE})

#: How many nodes aliases may add to one stream, counting every node of an aliased
#: subtree each time it is aliased. Real manifests reuse a few blocks (resources,
#: labels) a handful of times; 100 000 is far beyond that and keeps a walk of the
#: expanded stream, and the YAML written back, within a few tens of MB.
MAX_ALIASED_NODES = 100_000
# How deep mappings and lists may nest. Kubernetes documents rarely pass 20 levels; the
# cap keeps the recursive parts (emitters, json, our walkers) far from the stack limit.
MAX_DEPTH = 200

ScalarValue: TypeAlias = str | int | float | bool | datetime.date | datetime.datetime | bytes | None


@dataclass(frozen=True, slots=True)
class Scalar:
    """A scalar as written: its source text, resolved tag, typed value, line and style."""

    text: str
    tag: str
    value: ScalarValue
    line: int
    #: None for plain scalars, else one of `'`, `"`, `|`, `>`.
    style: str | None = None

    @property
    def is_str(self) -> bool:
        """Whether YAML reads this scalar as a string."""
        return isinstance(self.value, str)

    def with_text(self, text: str) -> Scalar:
        """This scalar holding the string `text` instead (same line and style)."""
        return Scalar(text, STR, text, self.line, self.style)


@dataclass(frozen=True, slots=True)
class Map:
    """A mapping; keys are scalars, in the order written, without duplicates."""

    items: tuple[tuple[Scalar, Node], ...]
    line: int

    def get(self, key: str) -> Node | None:
        """The value under `key` (compared with the key's text), or None."""
        for k, v in self.items:
            if k.text == key:
                return v
        return None


@dataclass(frozen=True, slots=True)
class Seq:
    """A list."""

    items: tuple[Node, ...]
    line: int


Node: TypeAlias = Scalar | Map | Seq


class ParseProblem(Exception):
    """Text is not usable YAML/JSON; `line` is 1-based within that text (0 if unknown)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message

    def to_config_error(self, source: str) -> ConfigError:
        """The problem as the one-line error the user sees."""
        where = f"{source}:{self.line}" if self.line else source
        return ConfigError(f"{where}: {self.message}")


def describe(node: Node | None) -> str:
    """`float 1.1`, `bool False`, `a mapping`...: what a node is, for error messages."""
    if node is None:
        return "nothing"
    if isinstance(node, Map):
        return "a mapping"
    if isinstance(node, Seq):
        return "a list"
    if node.value is None:
        return "null"
    return f"{type(node.value).__name__} {node.value!s}"


# ---------------------------------------------------------------------------------------
# Reading


@dataclass(slots=True)
class _Frame:
    is_map: bool
    line: int
    items: list[object] = field(default_factory=list)
    key: Scalar | None = None
    #: Key text -> line, to refuse duplicate keys (maps only).
    seen: dict[str, int] = field(default_factory=dict)
    #: The anchor this collection is named by (`&name`), if any.
    anchor: str | None = None
    #: Nodes in this collection, expanded (itself included).
    weight: int = 1


def parse_yaml_stream(data: str | bytes) -> list[Node | None]:
    """
    Parse a (multi-document) YAML stream into the root node of each document.

    The root is None for an empty document (nothing but comments, or `---` alone).

    Raises:
        ParseProblem: Malformed YAML, or something we refuse (see the module docstring).
    """
    loader = _SafeLoader(data)
    try:
        docs = _compose(loader)
    except yaml.YAMLError as exc:
        raise _problem_from_yaml(exc) from None
    finally:
        loader.dispose()
    # A document with nothing in it parses as a null scalar.
    return [None if isinstance(root, Scalar) and root.value is None else root for root in docs]


def _compose(loader: _SafeLoader) -> list[Node | None]:
    docs: list[Node | None] = []
    stack: list[_Frame] = []
    root: Node | None = None
    # Anchored nodes and their expanded weights; an alias shares the node it names.
    anchors: dict[str, tuple[Node, int]] = {}
    aliased = 0

    def attach(node: Node, weight: int = 1, anchor: str | None = None) -> None:
        nonlocal root
        if anchor is not None:
            anchors[anchor] = (node, weight)
        if not stack:
            root = node
            return
        frame = stack[-1]
        frame.weight += weight
        if not frame.is_map:
            frame.items.append(node)
        elif frame.key is None:
            if not isinstance(node, Scalar):  # pragma: no cover - refused at its start event
                raise ParseProblem(node.line, "mapping keys must be plain values")
            if node.tag == _MERGE:
                raise ParseProblem(node.line, "merge keys (<<) are not supported")
            first = frame.seen.get(node.text)
            if first is not None:
                raise ParseProblem(
                    node.line, f"duplicate key '{node.text}' (first at line {first})"
                )
            frame.seen[node.text] = node.line
            frame.key = node
        else:
            frame.items.append((frame.key, node))
            frame.key = None

    while (event := loader.get_event()) is not None:
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, yaml.DocumentStartEvent):
            root = None
        elif isinstance(event, yaml.DocumentEndEvent):
            docs.append(root)
        elif isinstance(event, yaml.AliasEvent):
            # An anchor still open (an alias inside what it names) is not in `anchors`
            # yet: recursive aliases are refused here too.
            found = anchors.get(event.anchor or "")
            if found is None:
                raise ParseProblem(line, f"alias *{event.anchor} names no anchor before it")
            node, weight = found
            aliased += weight
            if aliased > MAX_ALIASED_NODES:
                raise ParseProblem(
                    line,
                    f"aliases expand to more than {MAX_ALIASED_NODES} values "
                    f"(at *{event.anchor}); write the values out",
                )
            if stack and stack[-1].is_map and stack[-1].key is None and not isinstance(
                node, Scalar
            ):
                raise ParseProblem(line, "mapping keys must be plain values, not collections")
            attach(node, weight)
        elif isinstance(event, yaml.ScalarEvent):
            attach(_scalar(event, line), anchor=event.anchor)
        elif isinstance(event, yaml.CollectionStartEvent):
            is_map = isinstance(event, yaml.MappingStartEvent)
            if stack and stack[-1].is_map and stack[-1].key is None:
                raise ParseProblem(line, "mapping keys must be plain values, not collections")
            if len(stack) >= MAX_DEPTH:
                raise ParseProblem(line, f"nested more than {MAX_DEPTH} levels deep")
            # Untagged collections are maps and lists (there are no path resolvers).
            tag = event.tag if event.tag not in (None, "!") else (MAP if is_map else SEQ)
            if tag != (MAP if is_map else SEQ):
                raise ParseProblem(line, f"unsupported YAML tag '{tag}'")
            stack.append(_Frame(is_map, line, anchor=event.anchor))
        elif isinstance(event, yaml.CollectionEndEvent):
            frame = stack.pop()
            if frame.is_map:
                built: Node = Map(tuple(frame.items), frame.line)  # type: ignore[arg-type]
            else:
                built = Seq(tuple(frame.items), frame.line)  # type: ignore[arg-type]
            attach(built, frame.weight, frame.anchor)
    return docs


_RESOLVER = yaml.resolver.Resolver()


@functools.lru_cache(maxsize=4096)  # keys, booleans and small numbers repeat endlessly
def plain_tag(text: str) -> str:
    """The tag YAML's core schema gives `text` written as a plain (unquoted) scalar."""
    implicit = (True, False)
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, text, implicit)  # type: ignore[no-untyped-call]
    return tag


_CONSTRUCTOR = SafeConstructor()
_CONSTRUCTORS = {
    NULL: _CONSTRUCTOR.construct_yaml_null,
    BOOL: _CONSTRUCTOR.construct_yaml_bool,
    INT: _CONSTRUCTOR.construct_yaml_int,
    FLOAT: _CONSTRUCTOR.construct_yaml_float,
    TIMESTAMP: _CONSTRUCTOR.construct_yaml_timestamp,
    BINARY: _CONSTRUCTOR.construct_yaml_binary,
}


def _scalar(event: yaml.ScalarEvent, line: int) -> Scalar:
    text = event.value
    tag = event.tag
    if tag is None or tag == "!":
        # Only plain scalars are resolved by their text; quoted ones are strings.
        tag = plain_tag(text) if event.implicit[0] else STR
    if tag not in _SCALAR_TAGS:
        raise ParseProblem(line, f"unsupported YAML tag '{tag}'")
    construct = _CONSTRUCTORS.get(tag)
    value: ScalarValue = text
    if construct is not None:
        try:
            value = construct(yaml.ScalarNode(tag, text))
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise ParseProblem(line, f"'{text}' is not a valid {tag[len(_CORE) :]}") from None
    # libyaml reports plain scalars with style '' and PyYAML with None.
    return Scalar(text, tag, value, line, event.style or None)


def _problem_from_yaml(exc: yaml.YAMLError) -> ParseProblem:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        message = exc.problem or "malformed YAML"
        if exc.context:
            message += f" ({exc.context})"
        return ParseProblem(exc.problem_mark.line + 1, " ".join(message.split()))
    if isinstance(exc, yaml.reader.ReaderError):
        # PyYAML gives the offending character as bytes (undecodable) or str; libyaml as
        # an int, and calls a bad UTF-8 byte an "unacceptable character" as well.
        char = exc.character
        code = char[0] if isinstance(char, bytes) else ord(char) if isinstance(char, str) else char
        return ParseProblem(
            0, f"unacceptable character #x{code:02x} at position {exc.position}: {exc.reason}"
        )
    return ParseProblem(0, " ".join(str(exc).split()))  # pragma: no cover - no such errors known


def parse_json(text: str, line: int) -> Node:
    """
    Parse JSON text into a tree whose nodes all carry `line`.

    Raises:
        ParseProblem: Not JSON, a duplicate key, NaN/Infinity, or nested deeper than
            `MAX_DEPTH`.
    """

    def refuse_constant(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        result: dict[str, object] = {}
        for key, value in items:
            if key in result:
                raise ValueError(f"duplicate key '{key}'")
            result[key] = value
        return result

    try:
        obj = json.loads(text, object_pairs_hook=pairs, parse_constant=refuse_constant)
        return _json_node(obj, line, 0)
    except (ValueError, RecursionError) as exc:
        raise ParseProblem(0, " ".join(str(exc).split()) or "too deeply nested") from None


def _json_node(obj: object, line: int, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(obj, dict):
        return Map(
            tuple(
                (Scalar(k, STR, k, line), _json_node(v, line, depth + 1)) for k, v in obj.items()
            ),
            line,
        )
    if isinstance(obj, list):
        return Seq(tuple(_json_node(v, line, depth + 1) for v in obj), line)
    if isinstance(obj, str):
        return Scalar(obj, STR, obj, line)
    if obj is None:
        return Scalar("null", NULL, None, line)
    if isinstance(obj, bool):
        return Scalar("true" if obj else "false", BOOL, obj, line)
    if isinstance(obj, int):
        return Scalar(str(obj), INT, obj, line)
    if isinstance(obj, float):
        return Scalar(repr(obj), FLOAT, obj, line)
    raise ValueError(f"unexpected JSON value {obj!r}")  # pragma: no cover - json gives none
