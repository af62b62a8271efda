"""
kbld's origins: the `kbld.k14s.io/images` annotation on resolved documents and the
`kbld.carvel.dev/origins` annotation in imgpkg locks, written and read as kbld does.
"""

from __future__ import annotations

import pytest
import yaml

from relocator.config import imgpkg_lock_text, load_inputs
from relocator.config.origins import parse_origins_text, preresolved, resolved
from relocator.errors import ConfigError

DIGEST = "sha256:" + "a" * 64
FINAL = {"nginx:1.25": f"index.docker.io/library/nginx@{DIGEST}"}
ORIGINS = {"nginx:1.25": (resolved("nginx:1.25", "1.25"),)}


@pytest.mark.parametrize(
    ("document", "expected_metadata"),
    [
        pytest.param("image: nginx:1.25\n", {}, id="no-metadata"),
        pytest.param("metadata: null\nimage: nginx:1.25\n", {}, id="null-metadata"),
        pytest.param(
            "metadata:\n  name: web\nimage: nginx:1.25\n", {"name": "web"}, id="metadata"
        ),
        pytest.param(
            "metadata:\n  annotations:\n    team: a\nimage: nginx:1.25\n",
            {"annotations": {"team": "a"}}, id="other-annotations",
        ),
    ],
)
def test_each_document_naming_images_gets_kbld_annotation(
    document: str, expected_metadata: dict[str, object]
) -> None:
    """
    A document naming an image gets `metadata.annotations["kbld.k14s.io/images"]`,
    created where missing and added beside what is there.
    """
    inputs = load_inputs(["-"], stdin_text=document)

    printed = yaml.safe_load(inputs.render(FINAL, origins=ORIGINS))

    annotations = printed["metadata"].pop("annotations")
    listed = yaml.safe_load(annotations.pop("kbld.k14s.io/images"))
    assert [{"origins": [{"resolved": {"tag": "1.25", "url": "nginx:1.25"}}],
             "url": FINAL["nginx:1.25"]}] == listed
    expected_annotations = expected_metadata.pop("annotations", {})
    assert expected_annotations == annotations
    assert expected_metadata == printed["metadata"]


def test_documents_without_images_and_digest_only_images_as_kbld_writes_them() -> None:
    """
    A document naming no image is left as it is; one naming only digests (no origins)
    gets the annotation `null`, as kbld writes it.
    """
    text = f"kind: A\nname: x\n---\nkind: B\nimage: nginx@{DIGEST}\n"
    inputs = load_inputs(["-"], stdin_text=text)

    first, second = inputs.render({}, origins={}).split("---\n")

    assert "kind: A\nname: x\n" == first
    assert "null\n" == yaml.safe_load(second)["metadata"]["annotations"]["kbld.k14s.io/images"]


def test_a_document_whose_metadata_is_not_a_mapping_is_not_annotated() -> None:
    """`metadata: 5` is not a resource kbld could annotate; it is printed unchanged."""
    inputs = load_inputs(["-"], stdin_text="metadata: 5\nimage: nginx:1.25\n")

    assert f"metadata: 5\nimage: {FINAL['nginx:1.25']}\n" == inputs.render(FINAL, origins=ORIGINS)


def test_imgpkg_lock_records_origins_and_reads_them_back() -> None:
    """An ImagesLock keeps each image's origins; read as input, they come back as written."""
    origins = (resolved("nginx:1.25", "1.25"), preresolved(FINAL["nginx:1.25"]))
    text = imgpkg_lock_text([("nginx:1.25", FINAL["nginx:1.25"])],
                            origins={"nginx:1.25": origins})

    inputs = load_inputs(["-"], stdin_text=text)

    [override] = inputs.preresolved()
    assert origins == override.origins
    notes = yaml.safe_load(text)["images"][0]["annotations"]
    assert origins == parse_origins_text(notes["kbld.carvel.dev/origins"], where="lock")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{resolved: {url: x}}", "origins must be a list"),
        ("- 5", "an origin must be a mapping with one kind"),
        ("- {resolved: {url: x}, local: {path: y}}", "an origin must be a mapping with one kind"),
        ("- {magic: {url: x}}", "unknown origin kind 'magic'"),
        ("- [", "lock: kbld.carvel.dev/origins:"),
    ],
)
def test_malformed_origins_are_refused(text: str, expected: str) -> None:
    """Origins that are not kbld's shape are refused in one line naming the lock."""
    with pytest.raises(ConfigError) as caught:
        parse_origins_text(text, where="lock")

    assert expected in str(caught.value)
