"""
The default format: an OCI image layout inside a plain tar, plus Docker's manifest.json.

    oci-layout             {"imageLayoutVersion":"1.0.0"}
    index.json             one entry per packaged image, annotated with its reference
    manifest.json          `docker load`'s list, for single-platform images
    blobs/, blobs/sha256/  directories
    blobs/sha256/<hex>     manifests and indexes, then configs, then layers, by digest

Metadata comes first so that a reader streaming the file meets it before the blobs.
skopeo (`oci-archive:FILE:REF`, REF being the `org.opencontainers.image.ref.name`
annotation), regctl and `docker load` read the same file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from relocator.errors import ManifestError, TarError
from relocator.oci import Digest, Manifest, Reference, mediatypes
from relocator.store.base import ImageEntry
from relocator.store.tarball import jsondoc
from relocator.store.tarball.contents import Package
from relocator.store.tarball.images import TarballImage, recorded_tags, reference_for, unique
from relocator.store.tarball.layout import Planned
from relocator.store.tarball.names import (
    INDEX_JSON,
    MANIFEST_JSON,
    OCI_LAYOUT,
    blob_directories,
    oci_blob_name,
)

log = logging.getLogger(__name__)

#: The OCI annotation naming an index.json entry (skopeo's `oci-archive:FILE:REF`).
REF_NAME = "org.opencontainers.image.ref.name"
#: containerd's annotation for the full image name (what `ctr import` tags).
CONTAINERD_NAME = "io.containerd.image.name"
#: relocator's annotation listing the tags an image had, comma-separated (tags cannot
#: hold commas), so that an import can re-apply them.
TAGS = "dev.relocator.tags"

LAYOUT_BYTES = jsondoc.dump({"imageLayoutVersion": mediatypes.OCI_LAYOUT_VERSION})

# Layers `docker load` can unpack; an image with any other layer is left out of the
# Docker manifest.json (the OCI index still lists it).
_DOCKER_LOADABLE_LAYERS = frozenset({
    mediatypes.DOCKER_LAYER,
    mediatypes.OCI_LAYER,
    mediatypes.OCI_LAYER_GZIP,
    mediatypes.OCI_LAYER_ZSTD,
})
_DOCKER_LOADABLE_CONFIGS = frozenset({mediatypes.DOCKER_CONFIG, mediatypes.OCI_CONFIG})


def members(package: Package) -> list[Planned]:
    """
    Every member of the tarball in order: metadata, directories, manifests (bytes known
    now), then configs and layers (filled as they arrive), each group by digest.
    """
    planned = [
        Planned(name=OCI_LAYOUT, size=len(LAYOUT_BYTES), data=LAYOUT_BYTES),
    ]
    index = index_json(package.images)
    planned.append(Planned(name=INDEX_JSON, size=len(index), data=index))
    docker = docker_manifest(package)
    if docker is not None:
        planned.append(Planned(name=MANIFEST_JSON, size=len(docker), data=docker))
    everything = frozenset(package.manifests) | frozenset(package.blobs)
    planned += [Planned(name=name, directory=True) for name in blob_directories(everything)]
    for digest in _by_digest(package.manifests):
        raw = package.manifests[digest].raw
        planned.append(Planned(name=oci_blob_name(digest), size=len(raw), data=raw))
    blobs = [d for d in package.blobs if d not in package.manifests]
    configs = [d for d in blobs if d in package.configs]
    layers = [d for d in blobs if d not in package.configs]
    for digest in [*_by_digest(configs), *_by_digest(layers)]:
        desc = package.blobs[digest]
        planned.append(Planned(name=oci_blob_name(digest), size=desc.size, digest=digest))
    return planned


def _by_digest(digests: Sequence[Digest] | dict[Digest, Any]) -> list[Digest]:
    return sorted(digests, key=str)


def _named(entry: ImageEntry) -> Reference:
    ref = entry.reference
    return Reference(ref.registry, ref.repository, ref.tag, entry.manifest.digest)


def _tags(entry: ImageEntry) -> tuple[str, ...]:
    return unique([entry.reference.tag or "", *entry.tags])


def index_json(images: Sequence[ImageEntry]) -> bytes:
    """
    `index.json`: one entry per image (per reference, if one digest was named twice),
    each annotated with the reference it was packaged from.
    """
    entries: dict[tuple[str, Digest], dict[str, Any]] = {}
    for entry in images:
        name = str(_named(entry))
        key = (name, entry.manifest.digest)
        if key in entries:
            continue
        annotations = {CONTAINERD_NAME: name, REF_NAME: name}
        tags = _tags(entry)
        if tags:
            annotations[TAGS] = ",".join(tags)
        desc = entry.manifest.descriptor().to_json()
        desc["annotations"] = dict(sorted(annotations.items()))
        entries[key] = desc
    return jsondoc.dump(
        {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": list(entries.values())}
    )


def docker_manifest(package: Package) -> bytes | None:
    """
    Docker's `manifest.json` (`[{"Config", "RepoTags", "Layers"}]`) for the top-level
    single-platform images `docker load` can take; None if there is none.
    """
    entries: dict[Digest, dict[str, Any]] = {}
    for entry in package.images:
        manifest = entry.manifest
        config = manifest.config
        if config is None or not _docker_loadable(manifest, package):
            continue
        item = entries.get(manifest.digest)
        if item is None:
            item = entries[manifest.digest] = {
                "Config": oci_blob_name(config.digest),
                "RepoTags": [],
                "Layers": [oci_blob_name(layer.digest) for layer in manifest.layers],
            }
        for tag in _tags(entry):
            repo_tag = f"{entry.reference.name}:{tag}"
            if repo_tag not in item["RepoTags"]:
                item["RepoTags"].append(repo_tag)
    return jsondoc.dump(list(entries.values())) if entries else None


def _docker_loadable(manifest: Manifest, package: Package) -> bool:
    return (
        manifest.config is not None
        and manifest.config.media_type in _DOCKER_LOADABLE_CONFIGS
        and all(
            layer.media_type in _DOCKER_LOADABLE_LAYERS and layer.digest in package.blobs
            for layer in manifest.layers
        )
    )


# -- reading ---------------------------------------------------------------------------


def check_layout_file(raw: bytes, *, where: str) -> None:
    """
    Check `oci-layout`.

    Raises:
        TarError: It is not `{"imageLayoutVersion": "1.0.0"}` (extra keys allowed).
    """
    doc = jsondoc.load(raw, what=where)
    version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
    if version != mediatypes.OCI_LAYOUT_VERSION:
        raise TarError(
            f"{where}: imageLayoutVersion is {str(version)[:40]!r}, "
            f"expected '{mediatypes.OCI_LAYOUT_VERSION}'"
        )


def read_index(raw: bytes, *, where: str) -> list[TarballImage]:
    """
    The images `index.json` lists (entries that are not manifests or indexes skipped).

    Raises:
        TarError: It is not a valid OCI index.
    """
    try:
        index = Manifest.parse(raw, name=where)
    except ManifestError as exc:
        raise TarError(str(exc)) from None
    if not index.is_index:
        raise TarError(f"{where} is not an image index")
    images = []
    for desc in index.manifests:
        if not mediatypes.is_manifest(desc.media_type):
            log.debug("%s: skipping entry %s of type %s", where, desc.digest, desc.media_type)
            continue
        notes = desc.annotations
        name = notes.get(REF_NAME)
        reference = reference_for(notes.get(CONTAINERD_NAME), desc.digest, where=where)
        if reference is None:
            reference = reference_for(name, desc.digest, where=where)
        recorded = notes.get(TAGS, "").split(",")
        tags = recorded_tags(
            [*recorded, (reference.tag or "") if reference else ""],
            where=f"{where} entry {desc.digest}",
        )
        images.append(
            TarballImage(
                digest=desc.digest,
                media_type=desc.media_type,
                size=desc.size,
                reference=reference,
                name=name,
                tags=tags,
                annotations=dict(notes),
            )
        )
    return images
