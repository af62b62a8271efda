"""The top-level images a tarball holds, as readers report them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from relocator.errors import InvalidReference, TarError
from relocator.oci import Digest, Reference


@dataclass(frozen=True, slots=True, kw_only=True)
class TarballImage:
    """
    A top-level image of a tarball (an entry of `index.json`, or of kbld's
    `manifest.json`): what an import brings over.
    """

    digest: Digest
    media_type: str
    #: Length of the manifest or index.
    size: int
    #: The reference it was packaged from, carrying `digest`, when the tarball records
    #: a full one; None otherwise (look it up by digest in any repository).
    reference: Reference | None = None
    #: The name exactly as recorded (`org.opencontainers.image.ref.name`, kbld `Refs[0]`,
    #: imgpkg `OrigRef`), if any.
    name: str | None = None
    #: Tags recorded for it (relocator's tag annotation, the reference's tag, imgpkg's
    #: `Tag`), to re-apply at the destination.
    tags: tuple[str, ...] = ()
    #: The entry's annotations (OCI) or labels (imgpkg).
    annotations: Mapping[str, str] = field(default_factory=dict)


def reference_for(text: str | None, digest: Digest, *, where: str) -> Reference | None:
    """
    The reference `text` records for the image `digest`, if it is a full reference.

    A bare word such as `latest` or `myimage` (what `skopeo copy ... oci-archive:F:NAME`
    writes) is a name, not a reference: it gives None rather than a Docker Hub guess.

    Raises:
        TarError: The reference carries another digest than the image's.
    """
    if not text or not any(mark in text for mark in "/:@"):
        return None
    try:
        parsed = Reference.parse(text)
    except InvalidReference:
        return None
    if parsed.digest is not None and parsed.digest != digest:
        raise TarError(f"{where}: '{text[:200]}' names {parsed.digest} but the entry is {digest}")
    return Reference(parsed.registry, parsed.repository, parsed.tag, digest)


def unique(items: list[str]) -> tuple[str, ...]:
    """`items` without repeats, first occurrence kept, empty strings dropped."""
    return tuple(dict.fromkeys(item for item in items if item))
