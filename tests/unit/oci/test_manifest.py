"""Manifests and indexes: strict parsing of untrusted documents whose bytes are the truth."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relocator.errors import DigestMismatch, ManifestError, UnsupportedManifest
from relocator.oci import Descriptor, Digest, Manifest, Platform, mediatypes

CONFIG = Digest.of(b"config")
LAYER_1 = Digest.of(b"layer 1")
LAYER_2 = Digest.of(b"layer 2")
CHILD_AMD64 = Digest.of(b"child amd64")
CHILD_ARM64 = Digest.of(b"child arm64")
SUBJECT = Digest.of(b"subject image")
EMPTY = Digest.of(b"{}")
SCHEMA1_MESSAGE = "only Docker v2 and OCI images and indexes are supported"


def descriptor(media_type: str, digest: Digest, size: int = 10, **extra: Any) -> dict[str, Any]:
    """A descriptor object as manifests spell it."""
    return {"mediaType": media_type, "digest": str(digest), "size": size, **extra}


def image_doc(media_type: str | None = mediatypes.OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    """An image manifest with a config and two layers; `mediaType` left out when None."""
    layer_type = (
        mediatypes.DOCKER_LAYER if media_type == mediatypes.DOCKER_MANIFEST
        else mediatypes.OCI_LAYER_GZIP
    )
    config_type = (
        mediatypes.DOCKER_CONFIG if media_type == mediatypes.DOCKER_MANIFEST
        else mediatypes.OCI_CONFIG
    )
    doc: dict[str, Any] = {"schemaVersion": 2}
    if media_type is not None:
        doc["mediaType"] = media_type
    doc["config"] = descriptor(config_type, CONFIG, 7)
    doc["layers"] = [descriptor(layer_type, LAYER_1, 100), descriptor(layer_type, LAYER_2, 200)]
    doc.update(extra)
    return doc


def index_doc(media_type: str | None = mediatypes.OCI_INDEX, **extra: Any) -> dict[str, Any]:
    """An index of two platform images; `mediaType` left out when None."""
    child_type = (
        mediatypes.DOCKER_MANIFEST if media_type == mediatypes.DOCKER_MANIFEST_LIST
        else mediatypes.OCI_MANIFEST
    )
    doc: dict[str, Any] = {"schemaVersion": 2}
    if media_type is not None:
        doc["mediaType"] = media_type
    doc["manifests"] = [
        descriptor(child_type, CHILD_AMD64, 500, platform={"os": "linux", "architecture": "amd64"}),
        descriptor(
            child_type, CHILD_ARM64, 501,
            platform={"os": "linux", "architecture": "arm64", "variant": "v8"},
        ),
    ]
    doc.update(extra)
    return doc


def encode(doc: Any) -> bytes:
    """Bytes as a registry might serve them (indented, to show bytes are kept as they are)."""
    return json.dumps(doc, indent=3).encode()


@pytest.mark.parametrize(
    ("media_type", "content_type"),
    [
        (mediatypes.DOCKER_MANIFEST, mediatypes.DOCKER_MANIFEST),
        (mediatypes.OCI_MANIFEST, mediatypes.OCI_MANIFEST),
        (mediatypes.OCI_MANIFEST, None),
    ],
)
def test_image_manifest(media_type: str, content_type: str | None) -> None:
    """
    A Docker v2 or OCI image manifest keeps its exact bytes, is named by their digest,
    and lists its config first, then its layers in order.
    """
    raw = encode(image_doc(media_type))

    manifest = Manifest.parse(raw, content_type=content_type)

    assert raw is manifest.raw
    assert Digest.of(raw) == manifest.digest
    assert media_type == manifest.media_type
    assert not manifest.is_index
    assert [CONFIG, LAYER_1, LAYER_2] == [d.digest for d in manifest.blobs]
    assert [7, 100, 200] == [d.size for d in manifest.blobs]
    assert () == manifest.manifests


@pytest.mark.parametrize(
    ("media_type", "content_type", "expected"),
    [
        (None, None, mediatypes.OCI_MANIFEST),
        (None, mediatypes.OCI_MANIFEST, mediatypes.OCI_MANIFEST),
        (None, mediatypes.DOCKER_MANIFEST, mediatypes.DOCKER_MANIFEST),
        (None, "application/json; charset=utf-8", mediatypes.OCI_MANIFEST),
        (mediatypes.OCI_MANIFEST, "application/json; charset=utf-8", mediatypes.OCI_MANIFEST),
        (mediatypes.OCI_MANIFEST, f"{mediatypes.OCI_MANIFEST}; charset=utf-8",
         mediatypes.OCI_MANIFEST),
        (mediatypes.DOCKER_MANIFEST, "text/plain", mediatypes.DOCKER_MANIFEST),
    ],
)
def test_image_media_type_comes_from_body_header_or_shape(
    media_type: str | None, content_type: str | None, expected: str
) -> None:
    """
    An OCI manifest may omit `mediaType`: a manifest Content-Type then names it, and
    otherwise the shape (a config) makes it an OCI image manifest. Generic JSON content
    types, with or without parameters, neither name nor contradict it.
    """
    raw = encode(image_doc(media_type))

    manifest = Manifest.parse(raw, content_type=content_type)

    assert expected == manifest.media_type


@pytest.mark.parametrize(
    ("media_type", "content_type", "expected"),
    [
        (mediatypes.DOCKER_MANIFEST_LIST, mediatypes.DOCKER_MANIFEST_LIST,
         mediatypes.DOCKER_MANIFEST_LIST),
        (mediatypes.OCI_INDEX, None, mediatypes.OCI_INDEX),
        (None, None, mediatypes.OCI_INDEX),
        (None, mediatypes.OCI_INDEX, mediatypes.OCI_INDEX),
    ],
)
def test_index(media_type: str | None, content_type: str | None, expected: str) -> None:
    """A manifest list or OCI index (with or without mediaType) lists its children."""
    raw = encode(index_doc(media_type))

    manifest = Manifest.parse(raw, content_type=content_type)

    assert expected == manifest.media_type
    assert manifest.is_index
    assert () == manifest.blobs
    assert [CHILD_AMD64, CHILD_ARM64] == [d.digest for d in manifest.manifests]
    assert [
        Platform(os="linux", architecture="amd64"),
        Platform(os="linux", architecture="arm64", variant="v8"),
    ] == [d.platform for d in manifest.manifests]


def test_artifact_with_subject_and_empty_config() -> None:
    """An OCI 1.1 artifact keeps its artifactType, subject, annotations and empty config."""
    doc = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1+json",
        "config": descriptor(mediatypes.OCI_EMPTY, EMPTY, 2, data="e30="),
        "layers": [descriptor("application/spdx+json", LAYER_1, 100)],
        "subject": descriptor(mediatypes.OCI_MANIFEST, SUBJECT, 700),
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }

    manifest = Manifest.parse(encode(doc))

    assert "application/vnd.example.sbom.v1+json" == manifest.artifact_type
    assert Descriptor(media_type=mediatypes.OCI_EMPTY, digest=EMPTY, size=2) == manifest.config
    assert Descriptor(media_type=mediatypes.OCI_MANIFEST, digest=SUBJECT, size=700) == (
        manifest.subject
    )
    assert {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"} == manifest.annotations
    assert [EMPTY, LAYER_1] == [d.digest for d in manifest.blobs]


def test_descriptor_names_the_manifest() -> None:
    """A manifest's descriptor has its media type, digest, raw size and artifact type."""
    raw = encode(image_doc(artifactType="application/vnd.example"))

    manifest = Manifest.parse(raw)

    assert Descriptor(
        media_type=mediatypes.OCI_MANIFEST,
        digest=Digest.of(raw),
        size=len(raw),
        artifact_type="application/vnd.example",
    ) == manifest.descriptor()


def test_foreign_layers_are_parsed_and_flagged() -> None:
    """A Windows image's foreign layer parses; its descriptor says it is not distributable."""
    doc = image_doc(mediatypes.DOCKER_MANIFEST)
    doc["layers"][0] = descriptor(
        mediatypes.DOCKER_FOREIGN_LAYER, LAYER_1, 100, urls=["https://mcr.example/layer"]
    )

    manifest = Manifest.parse(encode(doc))

    assert [False, True] == [layer.distributable for layer in manifest.layers]
    assert ("https://mcr.example/layer",) == manifest.layers[0].urls


SCHEMA1_DOC = {
    "schemaVersion": 1,
    "name": "library/nginx",
    "tag": "latest",
    "architecture": "amd64",
    "fsLayers": [{"blobSum": str(LAYER_1)}],
    "history": [{"v1Compatibility": "{}"}],
}


@pytest.mark.parametrize(
    ("doc", "content_type"),
    [
        pytest.param(SCHEMA1_DOC, None, id="schema-version-1"),
        pytest.param(SCHEMA1_DOC, "application/json", id="schema-version-1-json"),
        pytest.param({**SCHEMA1_DOC, "schemaVersion": 2}, None, id="fs-layers"),
        pytest.param(
            image_doc(mediatypes.DOCKER_SCHEMA1), None, id="body-media-type-v1"
        ),
        pytest.param(
            image_doc(None), mediatypes.DOCKER_SCHEMA1_SIGNED, id="content-type-prettyjws"
        ),
        pytest.param(image_doc(None), mediatypes.DOCKER_SCHEMA1, id="content-type-v1"),
        pytest.param(
            image_doc(mediatypes.DOCKER_MANIFEST), mediatypes.DOCKER_SCHEMA1_SIGNED,
            id="v2-body-v1-content-type",
        ),
    ],
)
def test_schema1_is_unsupported_with_a_clear_message(doc: Any, content_type: str | None) -> None:
    """
    Docker schema 1, recognised by schemaVersion, fsLayers, mediaType or Content-Type, is
    refused with a message saying that only Docker v2 and OCI are supported.
    """
    with pytest.raises(UnsupportedManifest, match=SCHEMA1_MESSAGE) as caught:
        Manifest.parse(encode(doc), content_type=content_type, name="nginx:1.0")

    assert "nginx:1.0" in str(caught.value)
    assert caught.value.hint is not None


@pytest.mark.parametrize(
    ("doc", "content_type"),
    [
        pytest.param(image_doc("application/vnd.example.manifest+json"), None, id="body"),
        pytest.param({"schemaVersion": 2}, "application/vnd.example.manifest+json", id="header"),
        pytest.param({"schemaVersion": 2}, None, id="no-type-no-shape"),
    ],
)
def test_unknown_media_types_are_unsupported(doc: Any, content_type: str | None) -> None:
    """A document of a type relocator does not copy is refused as unsupported."""
    with pytest.raises(UnsupportedManifest, match=SCHEMA1_MESSAGE):
        Manifest.parse(encode(doc), content_type=content_type)


@pytest.mark.parametrize(
    ("doc", "content_type", "message"),
    [
        pytest.param(
            {**index_doc(None), "layers": []}, None, "both manifests and layers",
            id="manifests-and-layers",
        ),
        pytest.param(
            {**index_doc(None), "config": descriptor(mediatypes.OCI_CONFIG, CONFIG)},
            mediatypes.OCI_INDEX, "both manifests and layers", id="manifests-and-config",
        ),
        pytest.param(
            {**image_doc(None), "manifests": []}, mediatypes.OCI_MANIFEST,
            "both manifests and layers", id="image-and-manifests",
        ),
        pytest.param(
            image_doc(mediatypes.OCI_MANIFEST), mediatypes.DOCKER_MANIFEST,
            "mediaType .* but Content-Type", id="oci-body-docker-header",
        ),
        pytest.param(
            index_doc(mediatypes.OCI_INDEX), mediatypes.OCI_MANIFEST,
            "mediaType .* but Content-Type", id="index-body-image-header",
        ),
        pytest.param(
            image_doc(mediatypes.DOCKER_MANIFEST), mediatypes.DOCKER_MANIFEST_LIST,
            "mediaType .* but Content-Type", id="image-body-list-header",
        ),
        pytest.param(
            image_doc(None), mediatypes.OCI_INDEX, "index with config or layers",
            id="image-shape-index-header",
        ),
        pytest.param(
            {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "manifests": []}, None,
            "image manifest with manifests", id="image-type-index-shape",
        ),
    ],
)
def test_ambiguous_documents_are_refused(doc: Any, content_type: str | None, message: str) -> None:
    """
    A document that one reader could take for an index and another for an image
    (CVE-2021-41190) is refused, whatever its Content-Type says.
    """
    with pytest.raises(ManifestError, match=message):
        Manifest.parse(encode(doc), content_type=content_type)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b'{"schemaVersion": 2, "schemaVersion": 2, "config": {}, "layers": []}',
            id="top-level",
        ),
        pytest.param(
            json.dumps(image_doc())
            .replace('"size": 100', f'"size": 100, "digest": "{LAYER_2}"')
            .encode(),
            id="in-a-layer",
        ),
    ],
)
def test_duplicate_keys_are_refused(raw: bytes) -> None:
    """
    A key given twice is read as its first value by some parsers and its last by
    others (Python's json takes the last); relocator refuses the document.
    """
    with pytest.raises(ManifestError, match="duplicate key"):
        Manifest.parse(raw)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            encode({**image_doc(), "Layers": [descriptor(mediatypes.OCI_LAYER, LAYER_2)]}),
            id="Layers-beside-layers",
        ),
        pytest.param(
            encode({
                key.capitalize() if key == "layers" else key: value
                for key, value in image_doc().items()
            }),
            id="Layers-alone",
        ),
        pytest.param(
            encode({**image_doc(None), "MediaType": mediatypes.DOCKER_MANIFEST_LIST}),
            id="MediaType",
        ),
        pytest.param(encode({**index_doc(), "MANIFESTS": []}), id="MANIFESTS"),
        pytest.param(
            encode({**image_doc(), "layer\u017f": [descriptor(mediatypes.OCI_LAYER, LAYER_2)]}),
            id="layers-with-long-s",
        ),
        pytest.param(
            json.dumps(image_doc())
            .replace('"size": 100', f'"size": 100, "Digest": "{LAYER_2}"')
            .encode(),
            id="Digest-beside-digest-in-a-layer",
        ),
        pytest.param(
            json.dumps(image_doc())
            .replace('"size": 7', '"size": 7, "URLs": ["https://elsewhere.example/x"]')
            .encode(),
            id="URLs-in-the-config",
        ),
        pytest.param(
            json.dumps(image_doc())
            .replace('"size": 7', '"size": 7, "\u017fize": 8')
            .encode(),
            id="size-with-long-s-in-the-config",
        ),
        pytest.param(
            json.dumps(index_doc())
            .replace('"size": 500', '"size": 500, "Platform": {"os": "linux", '
                     '"architecture": "s390x"}')
            .encode(),
            id="Platform-in-an-index-entry",
        ),
    ],
)
def test_keys_differing_only_in_case_are_refused(raw: bytes) -> None:
    """
    Go's JSON decoder matches keys case-insensitively and Python's does not, so a key
    such as `Layers` or `Digest` would mean different things to relocator and to the
    registries and runtimes that read the copy; relocator refuses such documents.
    """
    with pytest.raises(ManifestError, match="ambiguous"):
        Manifest.parse(raw)


def test_the_digest_is_checked_against_the_exact_bytes() -> None:
    """
    Bytes fetched by digest must hash to it; the check comes before parsing, so even
    garbage is reported as a mismatch.
    """
    raw = encode(image_doc())

    with pytest.raises(DigestMismatch):
        Manifest.parse(raw + b"\n", digest=Digest.of(raw))
    with pytest.raises(DigestMismatch):
        Manifest.parse(b"not json", digest=Digest.of(raw))


def test_a_matching_digest_is_kept() -> None:
    """When fetched by a sha512 digest, the manifest is named by that digest."""
    raw = encode(image_doc())
    digest = Digest.of(raw, "sha512")

    manifest = Manifest.parse(raw, digest=digest)

    assert digest == manifest.digest


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="text"),
        pytest.param(b'{"schemaVersion": 2', id="truncated"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deeply-nested"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"manifest"', id="string"),
        pytest.param(b"null", id="null"),
    ],
)
def test_non_json_and_non_objects_are_refused(raw: bytes) -> None:
    """Anything but a JSON object is a ManifestError, never a crash."""
    with pytest.raises(ManifestError, match=r"not valid JSON|not a JSON object"):
        Manifest.parse(raw)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"schemaVersion": 3}, "schemaVersion must be 2", id="schema-3"),
        pytest.param({"schemaVersion": "2"}, "schemaVersion must be 2", id="schema-string"),
        pytest.param({"mediaType": 2}, "mediaType must be a string", id="media-type-number"),
        pytest.param({"config": None}, "config", id="config-null"),
        pytest.param({"layers": {}}, "layers must be a list", id="layers-object"),
        pytest.param(
            {"annotations": ["a"]}, "annotations must be an object", id="annotations-list"
        ),
        pytest.param({"artifactType": 1}, "artifactType must be a string", id="artifact-type"),
        pytest.param({"subject": "sha256:x"}, "subject must be an object", id="subject-string"),
    ],
)
def test_malformed_fields_are_refused(changes: dict[str, Any], message: str) -> None:
    """Fields of the wrong type are ManifestErrors naming the field."""
    with pytest.raises(ManifestError, match=message):
        Manifest.parse(encode({**image_doc(), **changes}))


def test_schema_version_is_required() -> None:
    """A document without schemaVersion is not a Docker v2 or OCI manifest."""
    doc = image_doc()
    del doc["schemaVersion"]

    with pytest.raises(ManifestError, match="schemaVersion must be 2"):
        Manifest.parse(encode(doc))


def test_image_manifest_needs_a_config() -> None:
    """An image manifest (by mediaType) without a config is refused."""
    doc = image_doc()
    del doc["config"]

    with pytest.raises(ManifestError, match="has no config"):
        Manifest.parse(encode(doc))


def test_index_needs_a_manifests_list() -> None:
    """An index (by mediaType) without a manifests list is refused."""
    doc = index_doc()
    del doc["manifests"]

    with pytest.raises(ManifestError, match="manifests must be a list"):
        Manifest.parse(encode(doc))


@pytest.mark.parametrize(
    ("size", "message"), [(True, "no valid size"), (-1, "no valid size"), (1.5, "no valid size")]
)
def test_bad_layer_sizes_are_refused(size: object, message: str) -> None:
    """A layer size of `true`, a negative number or a fraction is refused, naming the layer."""
    doc = image_doc()
    doc["layers"][1]["size"] = size

    with pytest.raises(ManifestError, match=rf"app:1 layers\[1\] has {message}"):
        Manifest.parse(encode(doc), name="app:1")


def test_bad_child_digest_is_refused() -> None:
    """An index entry whose digest is not a valid digest is refused before any use."""
    doc = index_doc()
    doc["manifests"][0]["digest"] = "sha256:../../../etc/passwd"

    with pytest.raises(ManifestError, match=r"manifests\[0\]"):
        Manifest.parse(encode(doc))


def test_layerless_image_is_accepted() -> None:
    """An image manifest without `layers` has only its config to copy."""
    doc = image_doc()
    del doc["layers"]

    manifest = Manifest.parse(encode(doc))

    assert [CONFIG] == [d.digest for d in manifest.blobs]
