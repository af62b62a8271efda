"""Safe YAML reading and faithful writing: refused features, located errors, round trips."""

from __future__ import annotations

import pytest
import yaml

from relocator.config import emit, load_inputs, yamltree
from relocator.config.emit import emit_json, emit_yaml
from relocator.config.yamltree import Map, ParseProblem, Scalar, parse_json, parse_yaml_stream
from relocator.errors import ConfigError

# Nine aliases nine levels deep: 387 million leaves for anything that expands them.
ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


def load_error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_inputs(["-"], stdin_text=text)
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "kind: Pod\nspec: !!python/object/apply:os.system ['echo pwned']\n",
            "stdin:2: unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'",
            id="python-tag",
        ),
        pytest.param(
            "a: 1\nb: !!python/name:os.system\n",
            "stdin:2: unsupported YAML tag 'tag:yaml.org,2002:python/name:os.system'",
            id="python-name",
        ),
        pytest.param("a: !Ref x\n", "stdin:1: unsupported YAML tag '!Ref'", id="local-tag"),
        pytest.param(
            "a: !!set {x, y}\n", "stdin:1: unsupported YAML tag 'tag:yaml.org,2002:set'", id="set"
        ),
        pytest.param(
            ALIAS_BOMB,
            "stdin:6: aliases expand to more than 100000 values (at *e); write the values out",
            id="alias-bomb",
        ),
        pytest.param(
            "a: *nothing\n", "stdin:1: alias *nothing names no anchor before it",
            id="unknown-alias",
        ),
        pytest.param(
            "a: &a\n  b: *a\n", "stdin:2: alias *a names no anchor before it",
            id="recursive-alias",
        ),
        pytest.param(
            "x: &k [1]\n? *k\n: v\n",
            "stdin:2: mapping keys must be plain values, not collections",
            id="aliased-collection-key",
        ),
        pytest.param(
            "kind: Pod\nimage: a\nimage: b\n",
            "stdin:3: duplicate key 'image' (first at line 2)",
            id="duplicate-key",
        ),
        pytest.param(
            "a:\n  x: 1\n  'x': 2\n",
            "stdin:3: duplicate key 'x' (first at line 2)",
            id="dup-quoted",
        ),
        pytest.param("<<: {a: 1}\n", "stdin:1: merge keys (<<) are not supported", id="merge"),
        pytest.param(
            "? [a, b]\n: c\n",
            "stdin:1: mapping keys must be plain values, not collections",
            id="complex-key",
        ),
        pytest.param(
            "a: [1, 2\nb: 3\n",
            "stdin:2: did not find expected ',' or ']' (while parsing a flow sequence)",
            id="malformed-flow",
        ),
        pytest.param(
            "a: b\n  c: d\n",
            # libyaml says "in this context", PyYAML "here".
            "stdin:2: mapping values are not allowed",
            id="malformed-indent",
        ),
        pytest.param("a: !!int zz\n", "stdin:1: 'zz' is not a valid int", id="bad-int"),
        pytest.param(
            "a: 2001-13-45\n", "stdin:1: '2001-13-45' is not a valid timestamp", id="bad-date"
        ),
        pytest.param(
            "a: \x01\n",
            "stdin: unacceptable character #x01 at position 3: control characters are not allowed",
            id="control-character",
        ),
        pytest.param(
            "a: " + "[" * 300 + "]" * 300 + "\n",
            "stdin:1: nested more than 200 levels deep",
            id="too-deep",
        ),
        pytest.param(
            "a: 1\n---\n- x\n- y\n",
            "stdin:3: document 2 is a list; expected a mapping",
            id="list-document",
        ),
        pytest.param(
            "just a string\n",
            "stdin:1: document 1 is str just a string; expected a mapping",
            id="scalar-document",
        ),
    ],
)
def test_refused_yaml_is_one_located_line(text: str, expected: str) -> None:
    """
    Unsafe or ambiguous YAML is refused with "FILE:LINE: what" on one line: nothing is
    constructed from tags, aliases expand only up to a cap (an alias bomb fails as soon
    as it passes it), duplicate keys and merge keys are refused rather than resolved one
    way or another.
    """
    message = load_error(text)

    assert expected == message[: len(expected)]
    assert "\n" not in message


def test_undecodable_bytes_name_the_file(tmp_path: pytest.TempPathFactory) -> None:
    """A file that is not UTF-8 is refused with its name and the byte position."""
    path = tmp_path / "bad.yml"  # type: ignore[operator]
    path.write_bytes(b"image: \xff\n")

    with pytest.raises(ConfigError) as caught:
        load_inputs([str(path)])

    assert str(caught.value).startswith(f"{path}: unacceptable character #xff at position 7")


def test_aliases_expand_as_kbld_expands_them() -> None:
    """
    An alias stands for the anchored value wherever it is used: image references inside
    it are found and rewritten at each place, and the YAML written back spells every
    value out (no anchors or aliases in the output, as kbld writes it).
    """
    text = (
        "base: &b\n  image: nginx:1.25\n  pull: Always\n"
        "copy: *b\n"
        "list: [*b, {image: redis}]\n"
    )
    inputs = load_inputs(["-"], stdin_text=text)

    assert ["nginx:1.25", "redis"] == [
        f.value for f in inputs.found_images()
    ]
    rendered = inputs.render({"nginx:1.25": "nginx@sha256:" + "a" * 64})
    assert ("&", "*") == tuple(c for c in "&*" if c not in rendered)
    assert 3 == rendered.count("nginx@sha256:" + "a" * 64)


def test_an_alias_expansion_just_under_the_cap_is_read() -> None:
    """The cap counts expanded nodes: reuse up to it is read, one node more is refused."""
    block = "b: &b [" + ", ".join(["x"] * 999) + "]\n"  # 1000 nodes with the list itself
    fits = block + "c: [" + ", ".join(["*b"] * 100) + "]\n"
    over = block + "c: [" + ", ".join(["*b"] * 100) + ", *b]\n"

    assert [] == list(load_inputs(["-"], stdin_text=fits).found_images())
    assert "aliases expand to more than 100000 values" in load_error(over)


def test_anchors_without_aliases_are_accepted() -> None:
    """An anchor alone expands nothing, so it is accepted (and not written back)."""
    inputs = load_inputs(["-"], stdin_text="spec: &s\n  image: nginx\n")

    assert ["nginx"] == [f.value for f in inputs.found_images()]
    assert "spec:\n  image: nginx\n" == inputs.render({})


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "kind: Deployment\n"
            "metadata:\n"
            "  name: app\n"
            "  annotations:\n"
            "    zeta: 'first'\n"
            '    alpha: "second"\n'
            "spec:\n"
            "  mode: 0755\n"
            "  version: 1.10\n"
            "  enabled: yes\n"
            "  empty:\n"
            "  nothing: null\n"
            "  tilde: ~\n"
            "  date: 2001-12-14\n"
            "  forced: !!str 0755\n"
            "  equals: =\n"
            "  script: |\n"
            "    echo one\n"
            "    echo two\n"
            "  list:\n"
            "  - a\n"
            "  - b: c\n"
            "    d: {e: f}\n"
            "  flow: []\n"
            "  flowmap: {}\n"
            "  unicode: été ☃\n"
            "  long: " + "x" * 300 + "\n",
            id="everything",
        ),
    ],
)
def test_emit_keeps_order_text_and_style(text: str) -> None:
    """
    Writing a tree back keeps key order, scalar text (`0755` stays `0755`, `1.10` stays
    `1.10`, `yes` stays `yes`), quoting, block scalars and unicode, and never wraps.
    """
    (root,) = parse_yaml_stream(text)
    assert root is not None

    # Collections come out in block style; an explicit !!str becomes quotes.
    expected = text.replace("forced: !!str 0755", "forced: '0755'").replace(
        "    d: {e: f}\n", "    d:\n      e: f\n"
    )
    assert expected == emit_yaml(root)


def test_libyaml_and_pure_python_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pure-Python parser and emitter give the same trees and text as libyaml's."""
    text = "a: 'q'\nb: 0755\nc: |\n  x\nd:\n- 1\n- e: f\ng: \"é\"\nh: " + "y" * 200 + "\n"
    fast = parse_yaml_stream(text)
    fast_text = emit_yaml(fast[0])  # type: ignore[arg-type]
    monkeypatch.setattr(yamltree, "_SafeLoader", yaml.SafeLoader)
    monkeypatch.setattr(emit, "_SafeDumper", yaml.SafeDumper)
    slow = parse_yaml_stream(text)

    assert fast == slow
    assert fast_text == emit_yaml(slow[0])  # type: ignore[arg-type]
    assert text == fast_text


def test_empty_documents_parse_as_none() -> None:
    """Comment-only and bare `---` documents are reported as empty (None)."""
    assert [None, None] == parse_yaml_stream("---\n---\n# only a comment\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"img":"nginx","n":1,"f":2.5,"t":true,"z":null}',
            '{"img":"nginx","n":1,"f":2.5,"t":true,"z":null}',
        ),
        ('{ "b" : [ 1, "é" ], "a" : {} }', '{"b":[1,"é"],"a":{}}'),
    ],
)
def test_json_round_trip_is_compact_and_ordered(text: str, expected: str) -> None:
    """Embedded JSON is written back compact, with its key order and non-ASCII text."""
    assert expected == emit_json(parse_json(text, 7))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"a":1,"a":2}', id="duplicate-key"),
        pytest.param('{"a":NaN}', id="nan"),
        pytest.param("[" * 300 + "]" * 300, id="too-deep"),
        pytest.param("[" * 100_000, id="recursion"),
        pytest.param("not json", id="text"),
    ],
)
def test_json_refusals(text: str) -> None:
    """Duplicate keys, NaN and deep nesting are not JSON we read."""
    with pytest.raises(ParseProblem):
        parse_json(text, 1)


def test_nodes_know_their_lines() -> None:
    """Every node records the line it starts on, counting from 1."""
    (root,) = parse_yaml_stream("a:\n  b: x\n  c:\n  - y\n")
    assert isinstance(root, Map)
    b = root.get("a")
    assert isinstance(b, Map)
    value = b.get("b")

    assert isinstance(value, Scalar)
    assert (1, 2, 2) == (root.line, b.line, value.line)
