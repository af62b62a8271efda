"""
Writing trees back: a YAML document with every scalar as it was written, compact JSON,
and plain data as block YAML. Output never contains an anchor or an alias.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import yaml

from relocator.config.yamltree import MAP, SEQ, STR, Map, Node, Scalar, Seq, plain_tag

try:  # libyaml's emitter is much faster; behaviour is the same.
    from yaml import CSafeDumper as _SafeDumper
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _SafeDumper  # type: ignore[assignment]

# Emitter line width: in effect "never wrap" (libyaml keeps it in a C int).
_WIDTH = 2**31 - 1


def emit_yaml(root: Node) -> str:
    """
    One YAML document, block style, keys in their order, scalars as they were written.

    Built from events, so the output can never contain an anchor or an alias.
    """
    events: list[yaml.Event] = [
        yaml.StreamStartEvent(),
        yaml.DocumentStartEvent(explicit=False),
        *_events(root),
        yaml.DocumentEndEvent(explicit=False),
        yaml.StreamEndEvent(),
    ]
    text: str = yaml.emit(events, Dumper=_SafeDumper, width=_WIDTH, allow_unicode=True)
    return text


def _events(root: Node) -> Iterator[yaml.Event]:
    todo: list[Node | yaml.Event] = [root]
    while todo:
        item = todo.pop()
        if isinstance(item, yaml.Event):
            yield item
        elif isinstance(item, Scalar):
            # Whether the tag may be left out when written plain, and when written quoted.
            implicit = (item.tag == plain_tag(item.text), item.tag == STR)
            yield yaml.ScalarEvent(None, item.tag, implicit, item.text, style=item.style)
        elif isinstance(item, Map):
            yield yaml.MappingStartEvent(None, MAP, True, flow_style=False)
            todo.append(yaml.MappingEndEvent())
            for key, value in reversed(item.items):
                todo.append(value)
                todo.append(key)
        else:
            yield yaml.SequenceStartEvent(None, SEQ, True, flow_style=False)
            todo.append(yaml.SequenceEndEvent())
            todo.extend(reversed(item.items))


def emit_json(root: Node) -> str:
    """Compact JSON (`{"a":1}`), keys in their order, non-ASCII kept as is."""
    return json.dumps(_plain(root), ensure_ascii=False, separators=(",", ":"), default=str)


def _plain(node: Node) -> object:
    if isinstance(node, Map):
        return {k.text: _plain(v) for k, v in node.items}
    if isinstance(node, Seq):
        return [_plain(v) for v in node.items]
    return node.value


class _NoAliasDumper(_SafeDumper):
    """A safe dumper that writes a value out again where it would have used an alias."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def dump_plain(data: object) -> str:
    """Dump plain data (dicts, lists, strings) as block YAML with sorted keys, no aliases."""
    text: str = yaml.dump(
        data,
        Dumper=_NoAliasDumper,
        sort_keys=True,
        default_flow_style=False,
        width=_WIDTH,
        allow_unicode=True,
    )
    return text
