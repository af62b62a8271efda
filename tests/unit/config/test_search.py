"""kbld search rules: every matcher and strategy, rule order, and one rewrite per value."""

from __future__ import annotations

import pytest

from relocator.config import (
    ALL_INDEXES,
    DEFAULT_SEARCH_RULE,
    KeyMatcher,
    SearchRule,
    Strategy,
    ValueMatcher,
    image_repo_of,
    load_inputs,
)
from relocator.errors import ConfigError

CONFIG = "---\napiVersion: kbld.k14s.io/v1alpha1\nkind: Config\n"


def run(document: str, config: str = "") -> tuple[list[str], str]:
    """The values found in `document` under `config`, and the document with each
    found value v rendered as `new/v`."""
    inputs = load_inputs(["-"], stdin_text=document + (CONFIG + config if config else ""))
    found = [f.value for f in inputs.found_images()]
    return found, inputs.render({v: f"new/{v}" for v in found})


CASES = [
    pytest.param(
        "",
        "kind: Pod\nspec:\n  containers:\n  - name: a\n    image: nginx\n  - image: redis:7\n",
        ["nginx", "redis:7"],
        "kind: Pod\nspec:\n  containers:\n  - name: a\n    image: new/nginx\n"
        "  - image: new/redis:7\n",
        id="default-image-key-at-any-depth",
    ),
    pytest.param(
        "keys: [sidecarImage]\n",
        "sidecarImage: envoy\nimage: nginx\nother: envoy2\n",
        ["envoy", "nginx"],
        "sidecarImage: new/envoy\nimage: new/nginx\nother: envoy2\n",
        id="legacy-keys",
    ),
    pytest.param(
        "searchRules:\n- keyMatcher: {name: sidecarImage}\n",
        "a:\n  sidecarImage: envoy\nb: [{sidecarImage: envoy}]\n",
        ["envoy"],
        "a:\n  sidecarImage: new/envoy\nb:\n- sidecarImage: new/envoy\n",
        id="key-name",
    ),
    pytest.param(
        "searchRules:\n- keyMatcher: {path: [data, img]}\n",
        "data: {img: a}\nother: {data: {img: b}}\n",
        ["a"],
        "data:\n  img: new/a\nother:\n  data:\n    img: b\n",
        id="key-path-exact-from-root",
    ),
    pytest.param(
        "searchRules:\n- keyMatcher: {path: [args, {index: 1}]}\n",
        "args: [x, y, z]\n",
        ["y"],
        "args:\n- x\n- new/y\n- z\n",
        id="key-path-index",
    ),
    pytest.param(
        "searchRules:\n- keyMatcher:\n    path: [spec, {allIndexes: true}, ref]\n",
        "spec:\n- ref: a\n- ref: b\n- other: c\n",
        ["a", "b"],
        "spec:\n- ref: new/a\n- ref: new/b\n- other: c\n",
        id="key-path-all-indexes",
    ),
    pytest.param(
        "searchRules:\n- valueMatcher: {image: busybox}\n",
        "cmd: busybox\nother: busybox:1\nlist: [busybox, x]\n",
        ["busybox"],
        "cmd: new/busybox\nother: busybox:1\nlist:\n- new/busybox\n- x\n",
        id="value-image-exact-anywhere",
    ),
    pytest.param(
        "searchRules:\n- valueMatcher: {imageRepo: gcr.io/app}\n",
        "a: gcr.io/app:1.0\n"
        "b: gcr.io/app@sha256:aaaa\n"
        "c: gcr.io/app/sub:1\n"
        "d: gcr.io/ap\n"
        "e: docker.io/gcr.io/app\n",
        ["gcr.io/app:1.0", "gcr.io/app@sha256:aaaa"],
        "a: new/gcr.io/app:1.0\nb: new/gcr.io/app@sha256:aaaa\nc: gcr.io/app/sub:1\n"
        "d: gcr.io/ap\ne: docker.io/gcr.io/app\n",
        id="value-image-repo",
    ),
    pytest.param(
        "searchRules:\n- keyMatcher: {name: ref}\n  valueMatcher: {imageRepo: r}\n",
        "ref: r:1\nref2: r:2\ny: {ref: q:1}\n",
        ["r:1"],
        "ref: new/r:1\nref2: r:2\ny:\n  ref: q:1\n",
        id="key-and-value-together",
    ),
    pytest.param(
        "searchRules:\n- keyMatcher: {name: image}\n  updateStrategy: {none: {}}\n",
        "image: nginx\nnested: {image: redis}\n",
        [],
        "image: nginx\nnested:\n  image: redis\n",
        id="none-claims-before-default",
    ),
    pytest.param(
        "searchRules:\n- keyMatcher: {name: spec}\n  updateStrategy: {none: }\n",
        "spec:\n  image: nginx\n",
        ["nginx"],
        "spec:\n  image: new/nginx\n",
        id="none-on-mapping-still-walks-into-it",
    ),
    pytest.param(
        "searchRules:\n- keyMatcher: {name: ref}\n  updateStrategy: {entireValue: {}}\n",
        "ref: nginx\n",
        ["nginx"],
        "ref: new/nginx\n",
        id="entire-value-explicit",
    ),
    pytest.param(
        "searchRules:\n"
        "- keyMatcher: {name: config.json}\n"
        "  updateStrategy:\n"
        "    json:\n"
        "      searchRules:\n"
        "      - keyMatcher: {name: img}\n",
        'config.json: \'{"img": "nginx", "n": 1, "image": "x"}\'\n',
        ["nginx"],
        'config.json: \'{"img":"new/nginx","n":1,"image":"x"}\'\n',
        id="json-nested-rules-only",
    ),
    pytest.param(
        "searchRules:\n"
        "- keyMatcher: {name: values.yaml}\n"
        "  updateStrategy:\n"
        "    yaml:\n"
        "      searchRules:\n"
        "      - keyMatcher: {name: img}\n",
        "data:\n  values.yaml: |\n    img: nginx\n    count: 0755\n    ---\n    img: redis\n",
        ["nginx", "redis"],
        "data:\n  values.yaml: |\n    ---\n    img: new/nginx\n    count: 0755\n"
        "    ---\n    img: new/redis\n",
        id="yaml-nested-multi-document",
    ),
    pytest.param(
        "searchRules:\n"
        "- keyMatcher: {name: v}\n"
        "  updateStrategy: {yaml: {searchRules: [{keyMatcher: {name: img}}]}}\n",
        'v: \'{"img": "nginx"}\'\n',
        ["nginx"],
        'v: \'{"img":"new/nginx"}\'\n',
        id="yaml-tries-json-first",
    ),
    pytest.param(
        "searchRules:\n"
        "- keyMatcher: {name: v}\n"
        "  updateStrategy: {yaml: {searchRules: [{keyMatcher: {name: img}}]}}\n",
        "v: |\n  other: 1\n  # comment\n",
        [],
        "v: |\n  other: 1\n  # comment\n",
        id="embedded-without-references-keeps-its-text",
    ),
    pytest.param(
        "",
        "image: {repository: nginx, image: redis}\n",
        ["redis"],
        "image:\n  repository: nginx\n  image: new/redis\n",
        id="mapping-under-image-is-walked",
    ),
    pytest.param(
        "",
        "image: null\nx: {image: }\ny: {image: '1.10'}\n",
        ["1.10"],
        "image: null\nx:\n  image:\ny:\n  image: 'new/1.10'\n",
        id="null-skipped-quoted-number-is-a-string",
    ),
]


@pytest.mark.parametrize(("config", "document", "found", "rendered"), CASES)
def test_search_rules(config: str, document: str, found: list[str], rendered: str) -> None:
    """Each search rule form finds exactly kbld's values and rewrites only those."""
    actual_found, actual_rendered = run(document, config)

    assert found == actual_found
    assert rendered == actual_rendered


def test_value_is_rewritten_once_even_if_the_new_value_is_also_a_key() -> None:
    """
    A value matched by several rules is rewritten once, and a rewritten value is not
    looked up again (kbld uses placeholders for this).
    """
    inputs = load_inputs(
        ["-"],
        stdin_text="image: nginx\n" + CONFIG + "searchRules:\n- valueMatcher: {image: nginx}\n",
    )

    assert "image: mirror/nginx\n" == inputs.render(
        {"nginx": "mirror/nginx", "mirror/nginx": "other/thing"}
    )


def test_first_matching_rule_wins() -> None:
    """With two rules for one value, the first one's strategy applies."""
    config = (
        "searchRules:\n"
        "- valueMatcher: {image: nginx}\n"
        "  updateStrategy: {none: {}}\n"
        "- keyMatcher: {name: image}\n"
    )
    assert ([], "image: nginx\n") == run("image: nginx\n", config)


def test_default_rule_is_last_and_not_repeated() -> None:
    """The default `image` rule follows the user's rules, once, even if also given."""
    inputs = load_inputs(
        ["-"],
        stdin_text=CONFIG + "keys: [image, sidecar]\nsearchRules:\n- keyMatcher: {name: image}\n",
    )
    sidecar = SearchRule(key_matcher=KeyMatcher(name="sidecar"))

    assert (DEFAULT_SEARCH_RULE, sidecar) == inputs.config.user_search_rules
    assert (DEFAULT_SEARCH_RULE, sidecar) == inputs.config.search_rules

    other = load_inputs(["-"], stdin_text=CONFIG + "keys: [sidecar]\n")
    assert (sidecar, DEFAULT_SEARCH_RULE) == other.config.search_rules


def test_rules_are_read_into_their_parts() -> None:
    """Rules become typed values: matchers, path parts and nested strategies."""
    config = (
        "searchRules:\n"
        "- keyMatcher: {path: [a, {index: 0}, {allIndexes: true}]}\n"
        "  valueMatcher: {imageRepo: r}\n"
        "  updateStrategy: {json: {searchRules: [{valueMatcher: {image: x}}]}}\n"
    )
    (rule,) = load_inputs(["-"], stdin_text=CONFIG + config).config.user_search_rules

    assert KeyMatcher(path=("a", 0, ALL_INDEXES)) == rule.key_matcher
    assert ValueMatcher(image_repo="r") == rule.value_matcher
    assert Strategy.JSON is rule.strategy.kind
    assert (SearchRule(value_matcher=ValueMatcher(image="x")),) == rule.strategy.search_rules


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            "searchRules:\n- {}\n",
            "stdin:5: search rule needs a keyMatcher or a valueMatcher",
            id="empty-rule",
        ),
        pytest.param(
            "searchRules:\n- keyMatcher: {}\n",
            "stdin:5: keyMatcher needs a non-empty name or path",
            id="empty-key",
        ),
        pytest.param(
            "searchRules:\n- keyMatcher: {name: a, path: [b]}\n",
            "stdin:5: keyMatcher needs name or path, not both",
            id="key-both",
        ),
        pytest.param(
            "searchRules:\n- valueMatcher: {}\n",
            "stdin:5: valueMatcher needs a non-empty image or imageRepo",
            id="empty-value",
        ),
        pytest.param(
            "searchRules:\n- valueMatcher: {image: a, imageRepo: b}\n",
            "stdin:5: valueMatcher needs image or imageRepo, not both",
            id="value-both",
        ),
        pytest.param(
            "searchRules:\n- keyMatcher: {name: a}\n  updateStrategy: {}\n",
            "stdin:6: updateStrategy needs exactly one of none, entireValue, json, yaml",
            id="strategy-empty",
        ),
        pytest.param(
            "searchRules:\n- keyMatcher: {name: a}\n  updateStrategy: {none: {}, json: {}}\n",
            "stdin:6: updateStrategy needs exactly one of none, entireValue, json, yaml",
            id="strategy-two",
        ),
        pytest.param(
            "searchRules:\n- keyMatcher: {name: a}\n  updateStrategy: {replace: {}}\n",
            "stdin:6: unknown field 'replace' in updateStrategy",
            id="strategy-unknown",
        ),
        pytest.param(
            "searchRules:\n- keyMatcher: {path: [a, 0]}\n",
            "stdin:5: path parts are map keys (strings), {index: N} or "
            "{allIndexes: true}; got int 0",
            id="path-int",
        ),
        pytest.param(
            "searchRules:\n- keyMatcher: {path: [a, {allIndexes: false}]}\n",
            "stdin:5: path parts are map keys",
            id="path-all-false",
        ),
        pytest.param(
            "searchRules:\n- keyMatcher: {path: [a, {index: 1, allIndexes: true}]}\n",
            "stdin:5: path part needs index or allIndexes, not both",
            id="path-both",
        ),
        pytest.param(
            "searchRules:\n- keymatcher: {name: a}\n",
            "stdin:5: unknown field 'keymatcher' in search rule",
            id="typo",
        ),
        pytest.param(
            "searchRules: {keyMatcher: {name: a}}\n",
            "stdin:4: expected searchRules to be a list, got a mapping",
            id="not-list",
        ),
        pytest.param(
            "searchRules:\n- keyMatcher: {name: 5}\n",
            "stdin:5: expected name to be a string, got int 5 (quote it)",
            id="name-int",
        ),
        pytest.param(
            "keys: ['']\n", "stdin:4: keys must not contain an empty string", id="empty-key-name"
        ),
    ],
)
def test_invalid_rules_are_located(config: str, expected: str) -> None:
    """A malformed rule is refused with the file and line of the offending part."""
    with pytest.raises(ConfigError) as caught:
        load_inputs(["-"], stdin_text=CONFIG + config)

    assert expected == str(caught.value)[: len(expected)]


@pytest.mark.parametrize(
    ("document", "config", "expected"),
    [
        pytest.param(
            "a: 1\nimage: 1.10\n",
            "",
            "stdin:2: expected image reference to be a string, got float 1.1 (quote it)",
            id="float",
        ),
        pytest.param(
            "image: no\n",
            "",
            "stdin:1: expected image reference to be a string, got bool False (quote it)",
            id="bool",
        ),
        pytest.param(
            "image: 0755\n",
            "",
            "stdin:1: expected image reference to be a string, got int 493 (quote it)",
            id="octal",
        ),
        pytest.param(
            "x:\n  image: 2001-12-14\n",
            "",
            "stdin:2: expected image reference to be a string, got date 2001-12-14 (quote it)",
            id="date",
        ),
        pytest.param(
            "sidecar: 12\n",
            "keys: [sidecar]\n",
            "stdin:1: expected image reference to be a string, got int 12 (quote it)",
            id="user-key",
        ),
        pytest.param(
            "v: |\n  img: 1.5\n",
            "searchRules:\n- keyMatcher: {name: v}\n"
            "  updateStrategy: {yaml: {searchRules: [{keyMatcher: {name: img}}]}}\n",
            "stdin:1: expected image reference to be a string, got float 1.5 (quote it)",
            id="embedded",
        ),
    ],
)
def test_non_string_references_are_refused(document: str, config: str, expected: str) -> None:
    """
    YAML 1.1 turns unquoted `1.10`, `no`, `0755` and dates into other types; where a
    rule expects a reference that is reported with its line instead of being coerced.
    """
    with pytest.raises(ConfigError) as caught:
        load_inputs(["-"], stdin_text=document + (CONFIG + config if config else ""))

    assert expected == str(caught.value)


def test_non_strings_are_fine_where_no_reference_is_expected() -> None:
    """`none` rules and value matchers never ask for a string, so numbers pass there."""
    config = (
        "searchRules:\n"
        "- keyMatcher: {name: image}\n  updateStrategy: {none: {}}\n"
        "- valueMatcher: {image: nginx}\n"
    )
    assert ([], "image: 1.10\ncount: 5\n") == run("image: 1.10\ncount: 5\n", config)


@pytest.mark.parametrize(
    ("strategy", "value"),
    [
        pytest.param("json", "not json", id="json"),
        pytest.param("yaml", "'{a: [", id="yaml"),
        pytest.param("yaml", "a: *alias", id="yaml-alias"),
    ],
)
def test_unparseable_embedded_values_are_left_with_a_warning(strategy: str, value: str) -> None:
    """
    kbld silently leaves a value it cannot parse; so do we, but with a warning, since a
    reference inside it is not relocated.
    """
    config = (
        f"searchRules:\n- keyMatcher: {{name: v}}\n"
        f"  updateStrategy: {{{strategy}: {{searchRules: [{{keyMatcher: {{name: img}}}}]}}}}\n"
    )
    inputs = load_inputs(["-"], stdin_text="x: 1\nv: |\n  " + value + "\n" + CONFIG + config)

    assert () == inputs.found_images()
    (warning,) = inputs.warnings
    assert warning.startswith(f"stdin:2: value matched by a {strategy} search rule is not")
    assert warning.endswith("; left unchanged")
    assert "x: 1\nv: |\n  " + value + "\n" == inputs.render({})


@pytest.mark.parametrize(
    ("value", "repo"),
    [
        ("nginx", "nginx"),
        ("nginx:1.2", "nginx"),
        ("nginx@sha256:abc", "nginx"),
        ("nginx:1.2@sha256:abc", "nginx"),
        ("localhost:5000/app:v1", "localhost:5000/app"),
        ("localhost:5000/app", "localhost:5000/app"),
        ("nginx:latest:bad", "nginx:latest"),
        ("docker.io/library/nginx", "docker.io/library/nginx"),
    ],
)
def test_image_repo_is_kbld_approximation(value: str, repo: str) -> None:
    """
    kbld's `imageRepo` is a regex, not a reference parser: nothing is normalised, and
    only the last `:tag` and `@digest` are taken off.
    """
    assert repo == image_repo_of(value)
