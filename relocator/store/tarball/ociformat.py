"""
The default format: an OCI image layout inside a plain tar that kbld, imgpkg and
`docker load` read too.

    oci-layout             {"imageLayoutVersion":"1.0.0"}
    index.json             one entry per packaged image, annotated with its reference
    manifest.json          kbld's and imgpkg's descriptor list (`kbldformat.py`); the
                           entries of images docker can load (an index's: one of its
                           images) also carry Docker's `Config`, `RepoTags` and
                           `Layers`, for `docker load`
    sha256-<hex>.tar.gz    each layer's bytes, under the name kbld and imgpkg look for
    blobs/, blobs/sha256/  directories
    blobs/sha256/<hex>     manifests and indexes, then configs, by digest; then each
                           layer as a hard link to its `sha256-<hex>.tar.gz`

Every layer is stored once. Readers that extract the archive (skopeo's
`oci-archive:FILE:REF`, REF being the `org.opencontainers.image.ref.name` annotation;
`docker load`; `tar`) see the OCI layout whole; kbld's and imgpkg's readers look members
up by name and find their own. One `manifest.json` serves kbld and Docker because Go's
JSON decoder ignores keys it does not know, and the two formats share none.
Metadata comes first so that a reader streaming the file meets it before the blobs;
`manifest.json` is reserved at its largest size and written last, once the configs it
embeds are in the file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from relocator.errors import ManifestError, TarError
from relocator.oci import Digest, Manifest, Reference, mediatypes
from relocator.store.base import ImageEntry
from relocator.store.tarball import jsondoc, kbldformat
from relocator.store.tarball.contents import Package
from relocator.store.tarball.images import TarballImage, recorded_tags, reference_for, unique
from relocator.store.tarball.layout import Planned
from relocator.store.tarball.names import (
    INDEX_JSON,
    MANIFEST_JSON,
    OCI_LAYOUT,
    blob_directories,
    kbld_layer_name,
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
    Every member of the tarball in order: metadata (`manifest.json` reserved, filled at
    commit), the layers under kbld's names (filled as they arrive), directories,
    manifests (bytes known now), configs (filled as they arrive), then the layers' OCI
    names as hard links, each group by digest.
    """
    layers = [d.digest for d in kbldformat.layers(package)]
    index = index_json(package.images)
    reserved = kbldformat.reservation(package, docker_entries(package), embed=embeds(package))
    planned = [
        Planned(name=OCI_LAYOUT, size=len(LAYOUT_BYTES), data=LAYOUT_BYTES),
        Planned(name=INDEX_JSON, size=len(index), data=index),
        Planned(name=MANIFEST_JSON, size=reserved),
    ]
    planned += [
        Planned(name=kbld_layer_name(d), size=package.blobs[d].size, digest=d) for d in layers
    ]
    everything = frozenset(package.manifests) | frozenset(package.blobs)
    planned += [Planned(name=name, directory=True) for name in blob_directories(everything)]
    for digest in _by_digest(package.manifests):
        raw = package.manifests[digest].raw
        planned.append(Planned(name=oci_blob_name(digest), size=len(raw), data=raw))
    stored = set(layers) | set(package.manifests)
    for digest in _by_digest([d for d in package.blobs if d not in stored]):
        desc = package.blobs[digest]
        planned.append(Planned(name=oci_blob_name(digest), size=desc.size, digest=digest))
    planned += [
        Planned(name=oci_blob_name(d), link=kbld_layer_name(d))
        for d in layers if d not in package.manifests
    ]
    return planned


def manifest_json(package: Package, configs: Mapping[Digest, bytes], *, where: str) -> bytes:
    """
    The `manifest.json` of `package`: kbld's descriptors with Docker's keys on the
    images `docker load` can take. A package kbld's format cannot describe (a config
    too large to embed, or not UTF-8) gets Docker's entries alone.
    """
    docker = docker_entries(package)
    if embeds(package):
        try:
            return kbldformat.render(package, configs, where=where, extra=docker)
        except TarError as exc:
            log.debug("%s: manifest.json without kbld's descriptors: %s", where, exc)
    return jsondoc.dump(list(docker.values()))


def embeds(package: Package) -> bool:
    """Whether kbld's descriptors can embed every config of `package` (they almost always can)."""
    return all(
        package.blobs[d].size <= kbldformat.MAX_CONFIG_BYTES
        for d in package.configs if d in package.blobs
    )


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


def docker_entries(package: Package) -> dict[Digest, dict[str, Any]]:
    """
    Docker's `manifest.json` keys (`Config`, `RepoTags`, `Layers`) for each top-level
    image `docker load` can take (for an index, its linux/amd64 image, else its first
    loadable one), by the top-level digest. Layers are named by their kbld member, which
    holds their bytes (the OCI name is a hard link to it).
    """
    entries: dict[Digest, dict[str, Any]] = {}
    for entry in package.images:
        manifest = _loadable_image(entry.manifest, package)
        config = manifest.config if manifest is not None else None
        if manifest is None or config is None:
            continue
        item = entries.get(entry.manifest.digest)
        if item is None:
            item = entries[entry.manifest.digest] = {
                "Config": oci_blob_name(config.digest),
                "RepoTags": [],
                "Layers": [kbld_layer_name(layer.digest) for layer in manifest.layers],
            }
        for tag in _tags(entry):
            repo_tag = f"{entry.reference.name}:{tag}"
            if repo_tag not in item["RepoTags"]:
                item["RepoTags"].append(repo_tag)
    return entries


def _loadable_image(manifest: Manifest, package: Package) -> Manifest | None:
    # Docker's loader reads every manifest.json entry and fails on one without a config,
    # so an index's entry carries one of its images: linux/amd64's, else the first one.
    if not manifest.is_index:
        return manifest if _docker_loadable(manifest, package) else None
    loadable = []
    for desc in manifest.manifests:
        child = package.manifests.get(desc.digest)
        if child is None or child.is_index or not _docker_loadable(child, package):
            continue
        platform = desc.platform
        if platform is not None and (platform.os, platform.architecture) == ("linux", "amd64"):
            return child
        loadable.append(child)
    return loadable[0] if loadable else None


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
