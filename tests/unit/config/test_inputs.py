"""The `-f` inputs: files, directories, stdin, List expansion, document and key order."""

from __future__ import annotations

from pathlib import Path

import pytest

from relocator.config import FoundImage, Override, load_inputs
from relocator.errors import ConfigError

KBLD = "apiVersion: kbld.k14s.io/v1alpha1\n"


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_directories_are_searched_recursively_in_sorted_order(tmp_path: Path) -> None:
    """Only .yml, .yaml and .json files are read, sorted by path, subdirectories too."""
    write(tmp_path / "dir" / "b.yml", "image: b\n")
    write(tmp_path / "dir" / "a.yaml", "image: a\n")
    write(tmp_path / "dir" / "sub" / "c.json", '{"image": "c"}\n')
    write(tmp_path / "dir" / "0-notes.txt", "image: ignored\n")
    write(tmp_path / "dir" / "a.yml.bak", "image: ignored\n")

    inputs = load_inputs([str(tmp_path / "dir")])

    assert ["a", "b", "c"] == [f.value for f in inputs.found_images()]
    assert [str(tmp_path / "dir" / n) for n in ("a.yaml", "b.yml", "sub/c.json")] == [
        d.source for d in inputs.documents
    ]


def test_inputs_keep_the_order_given(tmp_path: Path) -> None:
    """Files, directories and stdin are read in the order of the -f flags."""
    second = write(tmp_path / "second.yml", "image: second\n")
    third = write(tmp_path / "d" / "x.yml", "image: third\n")

    inputs = load_inputs(["-", second, str(tmp_path / "d")], stdin_text="image: first\n")

    assert [
        FoundImage("first", "stdin:1", None),
        FoundImage("second", f"{second}:1", None),
        FoundImage("third", f"{third}:1", None),
    ] == list(inputs.found_images())


@pytest.mark.parametrize(
    ("paths", "stdin", "expected"),
    [
        pytest.param(
            ["-"], None, "'-' names standard input, but there is none to read", id="no-stdin"
        ),
        pytest.param(
            ["-", "-"], "a: 1\n", "'-' (standard input) can be given only once", id="stdin-twice"
        ),
        pytest.param(
            ["https://example.com/app.yml"],
            None,
            "https://example.com/app.yml: URLs are not supported as inputs; "
            "download the file and give its path",
            id="url",
        ),
        pytest.param(
            ["/nonexistent/app.yml"],
            None,
            "/nonexistent/app.yml: No such file or directory",
            id="missing",
        ),
    ],
)
def test_unreadable_inputs(paths: list[str], stdin: str | None, expected: str) -> None:
    """Inputs that cannot be read are refused with one line naming them."""
    with pytest.raises(ConfigError) as caught:
        load_inputs(paths, stdin_text=stdin)

    assert expected == str(caught.value)


def test_found_images_are_unique_in_document_order_with_first_location() -> None:
    """Each distinct value is reported once, where it first occurs."""
    text = "a: {image: x}\nb: {image: y}\n---\nc: {image: x}\nimage: z\n"

    inputs = load_inputs(["-"], stdin_text=text)

    assert [("x", "stdin:1"), ("y", "stdin:2"), ("z", "stdin:5")] == [
        (f.value, f.where) for f in inputs.found_images()
    ]


def test_lists_are_expanded_into_their_items() -> None:
    """`kind: List` and `...List` documents stand for their items; others stay whole."""
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {kind: Pod, image: a}\n"
        "- {}\n"
        "- " + KBLD.strip() + "\n  kind: Config\n  overrides: [{image: a, newImage: b}]\n"
        "---\n"
        "kind: ConfigMapList\nitems:\n- kind: ConfigMap\n  image: c\n"
        "---\n"
        "kind: Thing\nitems:\n- image: d\n"
        "---\n"
        "kind: List\nitems: null\nimage: e\n"
    )

    inputs = load_inputs(["-"], stdin_text=text)

    assert ["a", "c", "d", "e"] == [f.value for f in inputs.found_images()]
    assert "b" == inputs.found_images()[0].override.new_image  # type: ignore[union-attr]
    assert [1, 2, 3, 4] == [d.position for d in inputs.documents]
    assert (
        "kind: Pod\nimage: a\n"
        "---\nkind: ConfigMap\nimage: c\n"
        "---\nkind: Thing\nitems:\n- image: d\n"
        "---\nkind: List\nitems: null\nimage: e\n"
    ) == inputs.render({})


def test_list_items_must_be_mappings() -> None:
    """A List item that is not a mapping is refused with its line."""
    with pytest.raises(ConfigError) as caught:
        load_inputs(["-"], stdin_text="kind: List\nitems:\n- a: 1\n- just text\n")

    assert "stdin:4: item 1 of the List in document 1 is str just text; expected a mapping" == (
        str(caught.value)
    )


def test_empty_documents_are_skipped() -> None:
    """Empty documents, comment-only documents and `{}` produce nothing."""
    text = "---\n# nothing\n---\n{}\n---\nimage: a\n---\n"

    inputs = load_inputs(["-"], stdin_text=text)

    assert [3] == [d.position for d in inputs.documents]
    assert "image: a\n" == inputs.render({})


def test_render_keeps_document_and_key_order_and_removes_config() -> None:
    """
    Documents come out in input order, separated by `---` lines (none before the first),
    keys in the user's order, config documents left out, unknown values untouched.
    """
    text = (
        "zeta: 1\nimage: nginx\nalpha: 2\n"
        "---\n" + KBLD + "kind: Config\nkeys: [sidecar]\n"
        "---\n"
        'kind: Pod\nsidecar: "envoy"\nspec:\n  b: x\n  a: {image: unknown}\n'
    )

    inputs = load_inputs(["-"], stdin_text=text)

    assert (
        "zeta: 1\nimage: registry.example.com/nginx@sha256:1\nalpha: 2\n"
        "---\n"
        'kind: Pod\nsidecar: "registry.example.com/envoy"\nspec:\n  b: x\n  a:\n'
        "    image: unknown\n"
    ) == inputs.render(
        {"nginx": "registry.example.com/nginx@sha256:1", "envoy": "registry.example.com/envoy"}
    )


def test_render_does_not_wrap_long_references_and_keeps_unicode() -> None:
    """A long reference stays on one line; non-ASCII text is written as is."""
    long = "registry.example.com/" + "a" * 200 + "@sha256:" + "0" * 64

    inputs = load_inputs(["-"], stdin_text="note: café\nimage: x\n")

    assert f"note: café\nimage: {long}\n" == inputs.render({"x": long})


def test_render_with_no_documents_is_empty() -> None:
    """A lock file alone renders to nothing."""
    inputs = load_inputs(["-"], stdin_text=KBLD + "kind: Config\n")

    assert "" == inputs.render({})


def test_a_lock_alone_has_no_found_images_but_preresolved_inputs() -> None:
    """`-f app.lock`: nothing to search, and the lock's entries are the images."""
    lock = (
        KBLD + "kind: Config\noverrides:\n"
        "- {image: nginx, newImage: 'index.docker.io/library/nginx@sha256:1', preresolved: true}\n"
        "- {image: redis, newImage: redis:7}\n"
    )

    inputs = load_inputs(["-"], stdin_text=lock)

    assert () == inputs.found_images()
    assert (
        Override(
            image="nginx", new_image="index.docker.io/library/nginx@sha256:1", preresolved=True
        ),
    ) == inputs.preresolved()


def test_errors_name_the_real_file(tmp_path: Path) -> None:
    """Errors and locations use the path as given."""
    path = write(tmp_path / "app.yml", "kind: Pod\nimage: 1.10\n")

    with pytest.raises(ConfigError) as caught:
        load_inputs([path])

    assert f"{path}:2: expected image reference to be a string, got float 1.1 (quote it)" == (
        str(caught.value)
    )


def test_inputs_are_frozen() -> None:
    """Inputs are values: rendering twice with different mappings is independent."""
    inputs = load_inputs(["-"], stdin_text="image: a\n")

    assert "image: b\n" == inputs.render({"a": "b"})
    assert "image: c\n" == inputs.render({"a": "c"})
    with pytest.raises(AttributeError):
        inputs.documents = ()  # type: ignore[misc]
