"""Media types: which documents are manifests, indexes, and copyable layers."""

from __future__ import annotations

import pytest

from relocator.oci import mediatypes


@pytest.mark.parametrize(
    ("media_type", "index", "image"),
    [
        (mediatypes.DOCKER_MANIFEST, False, True),
        (mediatypes.OCI_MANIFEST, False, True),
        (mediatypes.DOCKER_MANIFEST_LIST, True, False),
        (mediatypes.OCI_INDEX, True, False),
        (mediatypes.DOCKER_SCHEMA1, False, False),
        (mediatypes.DOCKER_SCHEMA1_SIGNED, False, False),
        (mediatypes.OCI_CONFIG, False, False),
        (mediatypes.OCI_LAYER_GZIP, False, False),
    ],
)
def test_manifest_kinds(media_type: str, index: bool, image: bool) -> None:
    """Docker v2 and OCI manifests and indexes are manifests; schema 1 and blobs are not."""
    assert (index, image, index or image) == (
        mediatypes.is_index(media_type),
        mediatypes.is_image(media_type),
        mediatypes.is_manifest(media_type),
    )


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [
        (mediatypes.DOCKER_LAYER, True),
        (mediatypes.OCI_LAYER, True),
        (mediatypes.OCI_LAYER_GZIP, True),
        (mediatypes.OCI_LAYER_ZSTD, True),
        (mediatypes.OCI_EMPTY, True),
        (mediatypes.DOCKER_FOREIGN_LAYER, False),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar", False),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", False),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", False),
    ],
)
def test_is_distributable(media_type: str, expected: bool) -> None:
    """Foreign (Windows base) and OCI non-distributable layers may not be copied freely."""
    assert expected == mediatypes.is_distributable(media_type)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        (";charset=utf-8", None),
        ("application/json", "application/json"),
        ("application/json; charset=utf-8", "application/json"),
        (f"{mediatypes.OCI_MANIFEST.upper()} ; charset=UTF-8", mediatypes.OCI_MANIFEST),
    ],
)
def test_normalize_drops_parameters_and_case(header: str | None, expected: str | None) -> None:
    """A Content-Type compares by its lowercased type, without parameters."""
    assert expected == mediatypes.normalize(header)


def test_accept_asks_for_every_copyable_type_and_not_schema1() -> None:
    """The Accept header lists Docker v2 and OCI manifest types; schema 1 is left out."""
    accepted = set(mediatypes.ACCEPT.split(", "))

    assert set(mediatypes.MANIFEST_TYPES) == accepted
