"""
imgpkg bundle documents: the `BundleLock` a user gives, the `.imgpkg/images.yml`
(an `ImagesLock`) inside a bundle, and the `ImageLocations` record imgpkg leaves next
to a copied bundle so that `imgpkg pull -b` finds the bundle's images where they now are.
"""

from __future__ import annotations

from dataclasses import dataclass

from relocator.config.emit import dump_plain
from relocator.config.inputs import Inputs
from relocator.config.kbld import IMAGES_LOCK_KIND, IMGPKG_API_VERSION, _images_lock_overrides
from relocator.config.yamltree import Map, ParseProblem, Scalar, parse_yaml_stream
from relocator.errors import ConfigError

BUNDLE_LOCK_KIND = "BundleLock"
IMAGE_LOCATIONS_KIND = "ImageLocations"


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleLock:
    """A `BundleLock` document: the bundle image (a digest reference) and its tag."""

    image: str
    tag: str | None
    where: str


def bundle_locks(inputs: Inputs) -> tuple[BundleLock, ...]:
    """
    The `BundleLock` documents among the inputs (their `bundle.image` is also a found
    image; this adds the tag imgpkg keeps beside it).

    Raises:
        ConfigError: A BundleLock has no `bundle.image`, or a field is not a string.
    """
    locks = []
    for doc in inputs.documents:
        api_version, kind = doc.root.get("apiVersion"), doc.root.get("kind")
        if not (isinstance(kind, Scalar) and kind.value == BUNDLE_LOCK_KIND):
            continue
        where = f"{doc.source}:{doc.root.line}"
        if not (isinstance(api_version, Scalar) and api_version.value == IMGPKG_API_VERSION):
            raise ConfigError(f"{where}: BundleLock apiVersion must be {IMGPKG_API_VERSION}")
        bundle = doc.root.get("bundle")
        image = bundle.get("image") if isinstance(bundle, Map) else None
        tag = bundle.get("tag") if isinstance(bundle, Map) else None
        if not (isinstance(image, Scalar) and isinstance(image.value, str) and image.value):
            raise ConfigError(f"{where}: BundleLock needs bundle.image")
        if tag is not None and not (isinstance(tag, Scalar) and isinstance(tag.value, str)):
            raise ConfigError(f"{where}: BundleLock bundle.tag must be a string")
        locks.append(
            BundleLock(
                image=image.value,
                tag=str(tag.value) if isinstance(tag, Scalar) and tag.value else None,
                where=where,
            )
        )
    return tuple(locks)


def bundle_images(data: bytes, source: str) -> tuple[str, ...]:
    """
    The images a bundle's `.imgpkg/images.yml` names, as digest references, checked as
    imgpkg checks them (one `ImagesLock` document, strict fields, digest form).

    Args:
        data: The file's bytes, as read from the bundle's layer (already size-capped).
        source: How to name the file in errors (the bundle and the file name).

    Raises:
        ConfigError: It is not YAML, not one ImagesLock, or an image is not a digest.
    """
    try:
        docs = [d for d in parse_yaml_stream(data) if d is not None]
    except ParseProblem as problem:
        raise problem.to_config_error(source) from None
    if len(docs) != 1 or not isinstance(docs[0], Map):
        raise ConfigError(f"{source}: expected one ImagesLock document")
    root = docs[0]
    api_version, kind = root.get("apiVersion"), root.get("kind")
    if not (
        isinstance(api_version, Scalar)
        and api_version.value == IMGPKG_API_VERSION
        and isinstance(kind, Scalar)
        and kind.value == IMAGES_LOCK_KIND
    ):
        raise ConfigError(f"{source}: expected an ImagesLock ({IMGPKG_API_VERSION})")
    return tuple(dict.fromkeys(o.new_image for o in _images_lock_overrides(root, source)))


def image_locations_text(images: dict[str, bool]) -> str:
    """
    imgpkg's `image-locations.yml`: each image of a bundle (as its images.yml names it)
    and whether it is a bundle itself, sorted by image as imgpkg sorts them.
    """
    doc = {
        "apiVersion": IMGPKG_API_VERSION,
        "kind": IMAGE_LOCATIONS_KIND,
        "images": [{"image": i, "isBundle": b} for i, b in sorted(images.items())],
    }
    return "---\n" + dump_plain(doc)
