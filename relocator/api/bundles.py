"""
imgpkg bundles in relocate, pkg and unpkg: a bundle brings the images its
`.imgpkg/images.yml` names, keeps its tag, and leaves imgpkg's `image-locations`
record beside it at the destination, as `imgpkg copy -b` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from relocator import config
from relocator.engine.bundles import (
    BundleSet,
    find_bundles,
    locations_image,
    mark_nested,
    push_locations,
)
from relocator.errors import InputError
from relocator.oci import Digest, Platform, Reference, Repository, check_tag
from relocator.store import Store

from .inputs import InputImage
from .session import Session
from .targets import Destinations


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundles:
    """The bundles among a command's images, what they add, and the tags they keep."""

    found: BundleSet
    #: The tag each bundle keeps (its BundleLock's, or the tag it was named by).
    tags: dict[Digest, tuple[str, ...]]

    def __bool__(self) -> bool:
        return bool(self.found.bundles)

    def tags_of(self, digest: Digest | None) -> tuple[str, ...]:
        """The tags the image `digest` keeps if it is a bundle (else none)."""
        return self.tags.get(digest, ()) if digest is not None else ()


async def find(
    store: Store,
    references: Sequence[Reference],
    session: Session,
    *,
    locks: Iterable[config.BundleLock] = (),
    named_tags: dict[Digest, tuple[str, ...]] | None = None,
    keep_going: bool = False,
) -> Bundles:
    """
    The bundles among `references` (and nested in them), with the tags they keep: a
    BundleLock's `bundle.tag`, and any tag the inputs or a tarball named them by.
    """
    found = mark_nested(
        await find_bundles(store, references, config.bundle_images, keep_going=keep_going)
    )
    tags: dict[Digest, tuple[str, ...]] = {}
    lock_tags: dict[Digest, list[str]] = {}
    for lock in locks:
        digest = Reference.parse(lock.image).digest
        if digest is not None and lock.tag:
            lock_tags.setdefault(digest, []).append(check_tag(lock.tag, where=lock.where))
    for digest, bundle in found.bundles.items():
        named = (named_tags or {}).get(digest, ())
        tags[digest] = tuple(dict.fromkeys((*lock_tags.get(digest, ()), *named)))
        session.log(f"bundle {bundle.reference}: {len(bundle.images)} images"
                 + (f", tag {', '.join(tags[digest])}" if tags[digest] else ""))
    return Bundles(found=found, tags=tags)


def one_repository(bundles: Bundles, destinations: Destinations) -> Repository:
    """
    The one destination repository bundles need: `imgpkg pull -b` looks for a bundle's
    images in the bundle's own repository.

    Raises:
        InputError: The destination is a template with fields.
    """
    single = destinations.single
    if single is None:
        first = next(iter(bundles.found.bundles.values()))
        raise InputError(
            f"{first.reference} is an imgpkg bundle: its images must go to its own "
            "repository, which --repository-template does not allow",
            hint="copy bundles with --repository REPO",
        )
    return single


def added_images(bundles: Bundles) -> list[InputImage]:
    """The images bundles name that the inputs did not: copied, not rewritten."""
    return [InputImage(reference=r, names=(), written=r) for r in bundles.found.added]


async def note_copies(store: Store, bundles: Bundles, repo: Repository, session: Session) -> None:
    """Write each bundle's image-locations record to `repo`, as `imgpkg copy` does."""
    for digest, bundle in bundles.found.bundles.items():
        image = locations_image(digest, config.image_locations_text(bundle.images))
        await push_locations(store, repo, image)
        session.log(f"wrote {repo}:{image.tag}")


async def bundles_of(
    store: Store,
    images: Sequence[InputImage],
    inputs: config.Inputs,
    session: Session,
    destinations: Destinations | None,
    *,
    keep_going: bool,
    platforms: Sequence[Platform] = (),
) -> Bundles:
    """
    The imgpkg bundles among `images`; refused where a bundle would be copied thin
    (platforms chosen among its images) or where imgpkg would not find its images.
    """
    try:
        found = await find(
            store, [i.reference for i in images], session,
            locks=config.bundle_locks(inputs), named_tags={i.digest: i.tags for i in images},
            keep_going=keep_going,
        )
    except Exception as exc:
        # A source that fails here fails the run: its report says so, as for a failure
        # while planning.
        session.failed(exc)
        raise
    if found and platforms:
        raise InputError(
            "--platform cannot be used with imgpkg bundles: a bundle's images are copied "
            "whole, as its images.yml names them",
        )
    if found and destinations is not None:
        one_repository(found, destinations)
    return found
