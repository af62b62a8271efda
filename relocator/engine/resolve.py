"""
Resolving tags to digests, the `resolve` command's network half.

A tag is resolved with a HEAD (free of Docker Hub's pull quota) and a GET only when the
registry leaves out the digest header. References already in digest form are kept as
they are without contacting anyone. An image index keeps its own digest unless a
platform is asked for, in which case the matching child's digest is used, as kbld does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from relocator.errors import InputError, NotFound
from relocator.oci import Digest, Manifest, Platform, Reference
from relocator.store import Store

from .groups import first_error


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolution:
    """One reference to resolve, and the platform to pick from an index if any."""

    reference: Reference
    platform: Platform | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved:
    """What a reference resolved to."""

    #: `registry/repository@digest`.
    reference: Reference
    #: The index the platform's image was picked from, by digest (None: no pick).
    index: Reference | None = None


async def resolve_all(
    requests: Sequence[Resolution], store: Store
) -> dict[Resolution, Reference]:
    """
    Resolve every request concurrently (the store's per-host limits bound the requests).

    Returns:
        Each request's result as `registry/repository@digest`.

    Raises:
        NotFound: A tag or image does not exist (the first such error).
        InputError: No image of the asked platform in an index.
    """
    return {r: found.reference for r, found in (await resolve_each(requests, store)).items()}


async def resolve_each(
    requests: Sequence[Resolution], store: Store
) -> dict[Resolution, Resolved]:
    """As `resolve_all`, also saying for each request which index a platform was picked from."""
    results: dict[Resolution, Resolved] = {}

    async def one(request: Resolution) -> None:
        results[request] = await resolve_one(request, store)

    try:
        async with anyio.create_task_group() as tg:
            for request in dict.fromkeys(requests):
                tg.start_soon(one, request)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return results


async def resolve_one(request: Resolution, store: Store) -> Resolved:
    """Resolve one reference to a digest reference (see module docstring)."""
    ref = request.reference
    digest = ref.digest
    if digest is None:
        digest = await store.manifest_exists(ref)
        if digest is None:
            raise NotFound(
                f"image {ref} not found", host=ref.registry, status=404,
                hint="check the name and tag, and that the credentials can read it",
            )
        # The tag's digest comes from a header, a claim: check the registry serves that
        # digest (a HEAD, free of pull quotas) before pinning it, else hash the bytes.
        if await store.manifest_exists(ref.with_digest(digest)) is None:
            digest = (await store.manifest_get(ref)).digest
    if request.platform is not None:
        index = ref.with_digest(digest)
        picked = await _select_platform(index, request.platform, store)
        if picked is not None:
            return Resolved(reference=ref.with_digest(picked), index=index)
    return Resolved(reference=ref.with_digest(digest))


async def _select_platform(ref: Reference, platform: Platform, store: Store) -> Digest | None:
    """The digest of `platform`'s image in the index `ref`; None if `ref` is an image."""
    manifest = await store.manifest_get(ref)
    if not manifest.is_index:
        # A single image has no platforms to choose from; it is its own answer.
        return None
    return platform_children(ref, manifest, [platform])[0]


def platform_children(
    ref: Reference, index: Manifest, platforms: Sequence[Platform]
) -> list[Digest]:
    """
    The digest of the first child of `index` (named `ref`) matching each of
    `platforms`, in the order asked, each once.

    Raises:
        InputError: No child matches any of `platforms`.
    """
    children: list[Digest] = []
    for wanted in platforms:
        for child in index.manifests:
            if child.platform is not None and child.platform.matches(wanted):
                if child.digest not in children:
                    children.append(child.digest)
                break
    if not children:
        offered = ", ".join(str(c.platform) for c in index.manifests if c.platform) or "none"
        raise InputError(
            f"image {ref} has no image for platform {', '.join(map(str, platforms))} "
            f"(it has: {offered})"
        )
    return children
