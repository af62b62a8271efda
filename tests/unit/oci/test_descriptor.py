"""Descriptors and platforms as manifests and indexes spell them."""

from __future__ import annotations

from typing import Any

import pytest

from relocator.errors import InputError, ManifestError
from relocator.oci import Descriptor, Digest, Platform, mediatypes

LAYER = Digest.of(b"layer")


def layer_doc(**changes: Any) -> dict[str, Any]:
    """A valid layer descriptor object, with `changes` applied (None deletes a key)."""
    doc: dict[str, Any] = {"mediaType": mediatypes.OCI_LAYER_GZIP, "digest": str(LAYER), "size": 5}
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def test_from_json_reads_every_field_and_to_json_writes_it_back() -> None:
    """A descriptor with urls, annotations, platform and artifactType round-trips."""
    doc = {
        "mediaType": mediatypes.OCI_MANIFEST,
        "digest": str(LAYER),
        "size": 1234,
        "urls": ["https://cdn.example/layer"],
        "annotations": {"org.opencontainers.image.ref.name": "v1"},
        "artifactType": "application/vnd.example.sbom",
        "platform": {
            "architecture": "arm64",
            "os": "linux",
            "variant": "v8",
            "os.version": "10.0",
            "os.features": ["win32k"],
        },
    }

    descriptor = Descriptor.from_json(doc)

    assert Descriptor(
        media_type=mediatypes.OCI_MANIFEST,
        digest=LAYER,
        size=1234,
        urls=("https://cdn.example/layer",),
        annotations={"org.opencontainers.image.ref.name": "v1"},
        platform=Platform(
            os="linux", architecture="arm64", variant="v8", os_version="10.0",
            os_features=("win32k",),
        ),
        artifact_type="application/vnd.example.sbom",
    ) == descriptor
    assert doc == descriptor.to_json()


def test_minimal_descriptor_writes_only_the_required_fields() -> None:
    """Optional fields that are empty are left out of the JSON we write."""
    descriptor = Descriptor.from_json(layer_doc())

    assert layer_doc() == descriptor.to_json()


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param([], id="not-an-object"),
        pytest.param(layer_doc(mediaType=None), id="no-media-type"),
        pytest.param(layer_doc(mediaType=""), id="empty-media-type"),
        pytest.param(layer_doc(mediaType=7), id="numeric-media-type"),
        pytest.param(layer_doc(digest=None), id="no-digest"),
        pytest.param(layer_doc(digest="sha256:../../etc/passwd"), id="path-digest"),
        pytest.param(layer_doc(digest=str(LAYER).upper()), id="uppercase-digest"),
        pytest.param(layer_doc(size=None), id="no-size"),
        pytest.param(layer_doc(size=True), id="bool-size"),
        pytest.param(layer_doc(size=-1), id="negative-size"),
        pytest.param(layer_doc(size=2**63), id="size-2-to-the-63"),
        pytest.param(layer_doc(size=2**64), id="size-2-to-the-64"),
        pytest.param(layer_doc(size=10**5000), id="size-of-5000-digits"),
        pytest.param(layer_doc(size=5.0), id="float-size"),
        pytest.param(layer_doc(size="5"), id="string-size"),
        pytest.param(layer_doc(urls="https://cdn.example/x"), id="urls-not-a-list"),
        pytest.param(layer_doc(urls=[1]), id="url-not-a-string"),
        pytest.param(layer_doc(annotations=["a"]), id="annotations-not-an-object"),
        pytest.param(layer_doc(annotations={"a": 1}), id="annotation-not-a-string"),
        pytest.param(layer_doc(platform="linux/amd64"), id="platform-not-an-object"),
        pytest.param(layer_doc(platform={"os": "linux"}), id="platform-without-arch"),
        pytest.param(
            layer_doc(platform={"os": "linux", "architecture": "amd64", "os.features": 5}),
            id="os-features-not-a-list",
        ),
        pytest.param(layer_doc(Digest=str(LAYER)), id="Digest-beside-digest"),
        pytest.param(layer_doc(MediaType=mediatypes.OCI_LAYER), id="MediaType-beside-mediaType"),
        pytest.param(
            layer_doc(platform={"os": "linux", "architecture": "amd64", "OS": "windows"}),
            id="OS-beside-os-in-platform",
        ),
        pytest.param(
            layer_doc(platform={"os": "linux", "architecture": "amd64", "Variant": "v8"}),
            id="Variant-in-platform",
        ),
    ],
)
def test_from_json_refuses_malformed_descriptors(doc: Any) -> None:
    """Every field relocator relies on is checked; garbage is a ManifestError."""
    with pytest.raises(ManifestError):
        Descriptor.from_json(doc)


def test_the_largest_int64_size_is_accepted() -> None:
    """Sizes are int64 in the spec: 2^63-1 is the largest a descriptor may claim."""
    assert 2**63 - 1 == Descriptor.from_json(layer_doc(size=2**63 - 1)).size


def test_from_json_names_where_the_descriptor_was() -> None:
    """Errors say which descriptor was bad, as the caller names it."""
    with pytest.raises(ManifestError, match=r"app:v1 layers\[2\] has no valid size"):
        Descriptor.from_json(layer_doc(size=-1), where="app:v1 layers[2]")


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [
        (mediatypes.OCI_LAYER_GZIP, True),
        (mediatypes.DOCKER_LAYER, True),
        (mediatypes.DOCKER_FOREIGN_LAYER, False),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar", False),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", False),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", False),
    ],
)
def test_distributable(media_type: str, expected: bool) -> None:
    """Foreign and non-distributable layers are flagged; other layers are copied."""
    descriptor = Descriptor.from_json(layer_doc(mediaType=media_type))

    assert expected == descriptor.distributable


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform(os="linux", architecture="amd64")),
        ("linux/arm64/v8", Platform(os="linux", architecture="arm64", variant="v8")),
        (
            "windows/amd64:10.0.17763.1234",
            Platform(os="windows", architecture="amd64", os_version="10.0.17763.1234"),
        ),
        ("linux/amd64:", Platform(os="linux", architecture="amd64")),
    ],
)
def test_platform_parse(text: str, expected: Platform) -> None:
    """`os/arch[/variant][:osversion]`, as docker's and kbld's `--platform` take it."""
    actual = Platform.parse(text)

    assert expected == actual


@pytest.mark.parametrize(
    "text", ["", "linux", "linux/", "/amd64", "linux//v7", "linux/arm/v7/extra", ":10.0"]
)
def test_platform_parse_rejects_other_shapes(text: str) -> None:
    """Anything but two or three non-empty components is an InputError with a hint."""
    with pytest.raises(InputError) as caught:
        Platform.parse(text)

    assert caught.value.hint is not None


@pytest.mark.parametrize(
    "text", ["linux/amd64", "linux/arm64/v8", "windows/amd64:10.0.17763.1234"]
)
def test_platform_str_round_trips(text: str) -> None:
    """`str(platform)` is the `--platform` spelling it was parsed from."""
    assert text == str(Platform.parse(text))


@pytest.mark.parametrize(
    ("have", "wanted", "expected"),
    [
        ("linux/arm64/v8", "linux/arm64", True),
        ("linux/arm64/v8", "linux/arm64/v8", True),
        ("linux/arm64", "linux/arm64/v8", False),
        ("linux/arm/v7", "linux/arm/v6", False),
        ("linux/amd64", "windows/amd64", False),
        ("windows/amd64:10.0.1", "windows/amd64", True),
        ("windows/amd64:10.0.1", "windows/amd64:10.0.2", False),
    ],
)
def test_platform_matches_where_wanted_is_specific(have: str, wanted: str, expected: bool) -> None:
    """os and architecture must be equal; variant and os version only where asked for."""
    actual = Platform.parse(have).matches(Platform.parse(wanted))

    assert expected == actual


def test_platform_from_json_ignores_fields_of_the_wrong_type() -> None:
    """Optional platform fields that are not strings are dropped, not trusted."""
    platform = Platform.from_json(
        {"os": "linux", "architecture": "amd64", "variant": 8, "os.features": ["a", 1]}
    )

    assert Platform(os="linux", architecture="amd64", os_features=("a",)) == platform
