"""
imgpkg bundles: finding them among the images to copy, reading the images each one
names, and writing the `image-locations` record `imgpkg copy` leaves beside a copied
bundle.

A bundle is an image whose config has the label `dev.carvel.imgpkg.bundle`; its single
layer holds `.imgpkg/images.yml`, an ImagesLock of the images it needs (bundles among
them are read in turn, as imgpkg copies nested bundles). Copying a bundle without those
images would leave it unusable, so they always travel with it.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import tarfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from relocator.engine.groups import first_error
from relocator.errors import InputError, LimitExceeded, RelocatorError
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository, mediatypes
from relocator.oci.layertar import LayerFileFinder, LayerLimits
from relocator.store import Store

#: The config label that makes an image a bundle (imgpkg `bundle.BundleConfigLabel`).
BUNDLE_LABEL = "dev.carvel.imgpkg.bundle"
#: Where a bundle's layer keeps its ImagesLock.
IMAGES_FILE = ".imgpkg/images.yml"
#: The largest image config read to look for the label (configs are a few KB).
MAX_CONFIG_BYTES = 4 * 1024 * 1024
#: How deep bundles may nest, and how many one copy may hold: bounds a hostile cycle
#: of ever-new bundles.
MAX_NESTING = 16
MAX_BUNDLES = 1000
# Config lookups in flight at once.
_LOOKUPS = 8
_LAYER_TYPES = frozenset({mediatypes.DOCKER_LAYER, mediatypes.OCI_LAYER_GZIP})
_CONFIG_TYPES = frozenset({mediatypes.DOCKER_CONFIG, mediatypes.OCI_CONFIG})

#: Turns images.yml bytes into digest references (`relocator.config.bundle_images`).
ReadImages = Callable[[bytes, str], Sequence[str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    """One bundle and the images its `.imgpkg/images.yml` names."""

    reference: Reference
    #: Each image as images.yml names it (digest reference) -> whether it is a bundle.
    images: dict[str, bool] = field(default_factory=dict)

    @property
    def digest(self) -> Digest:
        """The bundle's digest."""
        digest = self.reference.digest
        if digest is None:  # pragma: no cover - only digest references are looked at
            raise InputError(f"{self.reference} has no digest")
        return digest


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleSet:
    """The bundles found among some images, and the images they add."""

    #: By bundle digest, in the order found.
    bundles: dict[Digest, Bundle]
    #: Images bundles name that were not among those given, in the order found.
    added: tuple[Reference, ...]
    #: Every manifest fetched on the way, by digest: the plan need not fetch them again.
    manifests: dict[Digest, Manifest] = field(default_factory=dict)


async def find_bundles(
    store: Store,
    references: Sequence[Reference],
    read_images: ReadImages,
    *,
    limits: LayerLimits | None = None,
    keep_going: bool = False,
) -> BundleSet:
    """
    Look at each image (digest references) for the bundle label; read each bundle's
    images and look at them too, down to nested bundles. With `keep_going`, a given
    image that cannot be fetched is left to the copy to report (as one failed image).

    Raises:
        InputError: A bundle is malformed or names an image that is not a digest.
        LimitExceeded: A bundle's layer passes a cap, or bundles nest too deep.
        NotFound: An image is missing from `store`.
    """
    seen: set[Reference] = set(references)
    bundles: dict[Digest, Bundle] = {}
    added: list[Reference] = []
    manifests: dict[Digest, Manifest] = {}
    gate = asyncio.Semaphore(_LOOKUPS)
    level = list(dict.fromkeys(references))
    depth = 0
    while level:
        # A task group, not gather: one failure cancels the other lookups and waits for
        # them, so no request is left running when the error is reported.
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(_bundle_of(store, r, read_images, gate, limits, manifests,
                                                 top=depth == 0, keep_going=keep_going))
                    for r in level
                ]
        except BaseExceptionGroup as failed:
            raise first_error(failed) from None
        found = [task.result() for task in tasks]
        next_level: list[Reference] = []
        for bundle in found:
            if bundle is None or bundle.digest in bundles:
                continue
            bundles[bundle.digest] = bundle
            if len(bundles) > MAX_BUNDLES:
                raise LimitExceeded(f"more than {MAX_BUNDLES} bundles to copy")
            for image in bundle.images:
                ref = Reference.parse(image)
                if ref not in seen:
                    seen.add(ref)
                    added.append(ref)
                    next_level.append(ref)
        depth += 1
        if next_level and depth > MAX_NESTING:
            raise LimitExceeded(f"bundles nest more than {MAX_NESTING} deep")
        level = next_level
    return BundleSet(bundles=bundles, added=tuple(added), manifests=manifests)


async def _bundle_of(
    store: Store,
    ref: Reference,
    read_images: ReadImages,
    gate: asyncio.Semaphore,
    limits: LayerLimits | None,
    manifests: dict[Digest, Manifest],
    *,
    top: bool,
    keep_going: bool,
) -> Bundle | None:
    async with gate:
        try:
            manifest = await store.manifest_get(ref)
        except RelocatorError:
            if not (top and keep_going):
                raise
            # The plan fetches it again and reports the failure as one image's, beside
            # the images that did copy; it is not copied, so not copied thin.
            return None
        manifests[manifest.digest] = manifest
        if not _bundle_shaped(manifest) or manifest.config is None:
            return None
        if not await _has_label(store, ref, manifest.config):
            return None
        what = f"bundle {ref}"
        layer = manifest.layers[0]
        data = await _read_layer_file(store, ref.repo, layer, what, limits)
        images = read_images(data, f"{what} {IMAGES_FILE}")
        # Nested bundles are told apart once their own configs are looked at.
        return Bundle(reference=ref, images=dict.fromkeys(images, False))


def _bundle_shaped(manifest: Manifest) -> bool:
    """
    Whether `manifest` can be a bundle imgpkg reads: an image of one gzip layer with an
    image config. Only those have their config fetched: every other image is copied
    with no extra request (imgpkg itself refuses a labelled image of another shape).
    """
    return (
        not manifest.is_index
        and manifest.config is not None
        and manifest.config.media_type in _CONFIG_TYPES
        and len(manifest.layers) == 1
        and manifest.layers[0].media_type in _LAYER_TYPES
    )


async def _has_label(store: Store, ref: Reference, config: Descriptor) -> bool:
    if config.size > MAX_CONFIG_BYTES:
        raise LimitExceeded(
            f"image {ref}: config is {config.size} bytes (at most {MAX_CONFIG_BYTES})"
        )
    raw = bytearray()
    async with store.blob_open(ref.repo, config) as chunks:
        try:
            async for chunk in chunks:
                raw += chunk
                if len(raw) > config.size:
                    break  # more than it should be: the digest check below refuses it
        finally:
            await _close(chunks)
    config.digest.verify(bytes(raw))
    try:
        doc = json.loads(raw)
    except ValueError:
        return False  # not a JSON config (an artifact): not a bundle
    inner = doc.get("config") if isinstance(doc, dict) else None
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    return isinstance(labels, dict) and BUNDLE_LABEL in labels


async def _read_layer_file(
    store: Store, repo: Repository, layer: Descriptor, what: str, limits: LayerLimits | None
) -> bytes:
    finder = LayerFileFinder(IMAGES_FILE, what=what, limits=limits)
    async with store.blob_open(repo, layer) as chunks:
        try:
            async for chunk in chunks:
                found = finder.feed(chunk)
                if found is not None:
                    return found
        finally:
            await _close(chunks)
    return finder.finish()


async def _close(chunks: AsyncIterator[bytes]) -> None:
    """Close a stream left early here, in this task, rather than when it is collected."""
    closing = getattr(chunks, "aclose", None)
    if closing is not None:
        await closing()


def mark_nested(found: BundleSet) -> BundleSet:
    """`found` with each bundle's nested bundles marked as such (for image-locations)."""
    digests = set(found.bundles)
    for bundle in found.bundles.values():
        for image in bundle.images:
            digest = Reference.parse(image).digest
            bundle.images[image] = digest in digests
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class LocationsImage:
    """The image `imgpkg copy` writes beside a copied bundle, ready to push."""

    tag: str
    manifest: Manifest
    blobs: tuple[tuple[Descriptor, bytes], ...]


def locations_tag(bundle: Digest) -> str:
    """`sha256-<hex>.image-locations.imgpkg`, where `imgpkg pull` looks for the record."""
    return f"{bundle.tag}.image-locations.imgpkg"


def locations_image(bundle: Digest, text: str) -> LocationsImage:
    """
    imgpkg's locations image for `bundle`: one gzip layer holding `image-locations.yml`
    (`text`), Docker media types and a config as imgpkg writes it; built byte for byte
    the same every time, so a second copy pushes nothing new.
    """
    data = text.encode()
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.GNU_FORMAT) as tar:
        top = tarfile.TarInfo(".")
        top.type, top.mode = tarfile.DIRTYPE, 0o700
        tar.addfile(top)
        member = tarfile.TarInfo("image-locations.yml")
        member.size, member.mode = len(data), 0o600
        tar.addfile(member, io.BytesIO(data))
    uncompressed = tar_bytes.getvalue()
    layer = gzip.compress(uncompressed, mtime=0)
    config = json.dumps(
        {
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"author": "imgpkg", "created": "0001-01-01T00:00:00Z",
                         "created_by": "imgpkg"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [str(Digest.of(uncompressed))]},
            "config": {},
        },
        separators=(",", ":"),
    ).encode()
    config_desc = Descriptor(
        media_type=mediatypes.DOCKER_CONFIG, digest=Digest.of(config), size=len(config)
    )
    layer_desc = Descriptor(
        media_type=mediatypes.DOCKER_LAYER, digest=Digest.of(layer), size=len(layer)
    )
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mediatypes.DOCKER_MANIFEST,
            "config": _json(config_desc),
            "layers": [_json(layer_desc)],
        },
        separators=(",", ":"),
    ).encode()
    manifest = Manifest.parse(raw, content_type=mediatypes.DOCKER_MANIFEST, name="locations")
    return LocationsImage(
        tag=locations_tag(bundle),
        manifest=manifest,
        blobs=((config_desc, config), (layer_desc, layer)),
    )


def _json(desc: Descriptor) -> dict[str, object]:
    return {"mediaType": desc.media_type, "size": desc.size, "digest": str(desc.digest)}


async def push_locations(store: Store, repo: Repository, image: LocationsImage) -> None:
    """Push the locations image to `repo` under its tag (blobs first, then the manifest)."""
    for desc, data in image.blobs:
        if not await store.blob_exists(repo, desc):
            await store.blob_put(repo, desc, _once(data))
    await store.manifest_put(Reference.from_repo(repo, tag=image.tag), image.manifest)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
