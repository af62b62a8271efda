"""The top-level images a tarball holds, as readers report them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from relocator.errors import InvalidReference, TarError
from relocator.oci import Digest, Reference, is_tag, shown


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
    writes) is a name, not a reference: it gives None rather than a Docker Hub guess, as
    does any other text that is not a reference.

    Raises:
        TarError: The reference carries another digest than the image's, or a tag that
            is not a valid tag (`app:../../x`): the tarball is refused rather than the
            tag silently lost.
    """
    if not text or not any(mark in text for mark in "/:@"):
        return None
    try:
        parsed = Reference.parse(text)
    except InvalidReference:
        name = text.split("@", 1)[0]
        tag = name[name.rfind(":") + 1 :] if name.rfind(":") > name.rfind("/") else None
        if tag is not None and not is_tag(tag):
            raise TarError(
                f"{where}: {shown(text)} records the tag {shown(tag)}, which is not a valid tag"
            ) from None
        return None
    if parsed.digest is not None and parsed.digest != digest:
        raise TarError(f"{where}: '{text[:200]}' names {parsed.digest} but the entry is {digest}")
    return Reference(parsed.registry, parsed.repository, parsed.tag, digest)


def recorded_tags(items: list[str], *, where: str) -> tuple[str, ...]:
    """
    The tags a tarball records for an image (`unique` of `items`), each checked: a tag
    goes into a registry URL when it is re-applied.

    Raises:
        TarError: One of them is not a valid tag; the message names it.
    """
    tags = unique(items)
    for tag in tags:
        if not is_tag(tag):
            raise TarError(f"{where}: {shown(tag)} is recorded as a tag but is not a valid tag")
    return tags


def unique(items: list[str]) -> tuple[str, ...]:
    """`items` without repeats, first occurrence kept, empty strings dropped."""
    return tuple(dict.fromkeys(item for item in items if item))
