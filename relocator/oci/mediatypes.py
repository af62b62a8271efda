"""Media types of Docker schema 2 and OCI manifests, indexes and layers."""

from __future__ import annotations

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
#: The OCI 1.1 empty descriptor's type: `{}` used as config or layer of artifacts.
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYOUT_VERSION = "1.0.0"

_NONDISTRIBUTABLE_PREFIX = "application/vnd.oci.image.layer.nondistributable.v1.tar"

INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
IMAGE_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
MANIFEST_TYPES = INDEX_TYPES | IMAGE_TYPES

#: What we ask registries for: every type we copy and nothing else. Schema 1 is left out
#: on purpose so that registries able to convert serve schema 2 instead.
ACCEPT = ", ".join(sorted(MANIFEST_TYPES))


def is_index(media_type: str) -> bool:
    """Whether `media_type` is an image index or Docker manifest list."""
    return media_type in INDEX_TYPES


def is_image(media_type: str) -> bool:
    """Whether `media_type` is a single image (or artifact) manifest."""
    return media_type in IMAGE_TYPES


def is_manifest(media_type: str) -> bool:
    """Whether `media_type` names a manifest or index (as opposed to a blob)."""
    return media_type in MANIFEST_TYPES


def is_distributable(media_type: str) -> bool:
    """
    Whether a layer of this type may be copied to other registries.

    Foreign (Windows base) and OCI non-distributable layers are fetched by clients from
    their `urls`; registries may refuse to store them.
    """
    return media_type != DOCKER_FOREIGN_LAYER and not media_type.startswith(
        _NONDISTRIBUTABLE_PREFIX
    )


def normalize(content_type: str | None) -> str | None:
    """A `Content-Type` header without parameters (`; charset=utf-8`), lowercased."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None
