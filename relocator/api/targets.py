"""
Where each image goes, and what exactly is copied: the destination repository (one
repository, or a template keeping each image's path), the platforms of an index and
the tags (preserved or not).
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Sequence
from dataclasses import dataclass

from relocator.engine import Job, image_tag
from relocator.engine.events import Notice
from relocator.engine.resolve import platform_children
from relocator.errors import InputError
from relocator.oci import TEMPLATE_FIELDS, Platform, Reference, Repository, expand_template
from relocator.store import Store

from .inputs import InputImage
from .session import Session


@dataclass(frozen=True, slots=True)
class Destinations:
    """
    Maps a source reference to its destination repository: a template whose fields
    (`{registry}`, `{repository}`, `{name}`) come from the source, or one repository
    for every image (a template without fields).
    """

    template: str

    @classmethod
    def of_request(cls, repository: str | None, template: str | None) -> Destinations:
        """
        From one repository or a template (exactly one is given).

        Raises:
            InputError: Neither or both are given, or either does not parse.
        """
        if (repository is None) == (template is None):
            raise InputError("name one destination: a repository or a repository template")
        if not template:
            return cls(Repository.parse(str(repository)).name)
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        if fields - set(TEMPLATE_FIELDS) or not fields:
            raise InputError(
                f"--repository-template '{template}' must use "
                f"{', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)} and nothing else",
                hint="e.g. registry.internal/mirror/{repository}",
            )
        return cls(template)

    @property
    def single(self) -> Repository | None:
        """The one repository every image goes to, if the template has no fields."""
        if any(f is not None for _, f, _, _ in string.Formatter().parse(self.template)):
            return None
        return Repository.parse(self.template)

    def of(self, source: Reference) -> Repository:
        """The destination repository of `source`."""
        text = expand_template(self.template, source.repo)
        try:
            return Repository.parse(text)
        except InputError as exc:
            raise InputError(f"--repository-template gives '{text}' for {source}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Target:
    """One input image and how it is copied."""

    image: InputImage
    destination: Repository
    #: What is copied: the image itself, or the chosen children of an index.
    sources: tuple[Reference, ...]
    #: The digest references are rewritten to (the image, or the first chosen child).
    primary: Reference
    #: Tags to apply at the destination besides relocator's own digest tag.
    tags: tuple[str, ...] = ()
    #: Copy what is attached to the copied images too (`--include-referrers`).
    include_referrers: bool = False
    #: The scheme of the digest tag each copied image lands under (`image_tag`).
    tag_scheme: str = "relocator"

    def jobs(self) -> list[Job]:
        """One job per copied source; the user's tags go with the primary one."""
        jobs = []
        for source in self.sources:
            digest = source.digest
            if digest is None:  # pragma: no cover - targets only hold digest references
                raise InputError(f"{source} has no digest")
            extra = self.tags if source == self.primary else ()
            jobs.append(
                Job(source=source, destination=self.destination,
                    tags=(image_tag(digest, self.tag_scheme), *extra))
            )
        return jobs

    @property
    def relocated(self) -> str:
        """The reference the inputs' names are rewritten to."""
        digest = self.primary.digest
        if digest is None:  # pragma: no cover - as above
            raise InputError(f"{self.primary} has no digest")
        return str(Reference.from_repo(self.destination, digest=digest))


def targets_of(
    images: Sequence[InputImage],
    destinations: Destinations,
    *,
    preserve_tags: bool,
    tag_scheme: str = "relocator",
) -> list[Target]:
    """Each image copied whole to its destination."""
    return [
        Target(
            image=image,
            destination=destinations.of(image.reference),
            sources=(image.reference,),
            tags=image.tags if preserve_tags else (),
            primary=image.reference,
            tag_scheme=tag_scheme,
        )
        for image in images
    ]


async def select_platforms(
    targets: Sequence[Target], store: Store, platforms: Sequence[Platform], session: Session
) -> list[Target]:
    """
    Replace each index by its children for `platforms`, as kbld's platform selection
    does. The index itself is left out (dropping children would change its digest);
    references are rewritten to the child of the first platform listed.

    Raises:
        InputError: An index has no child for any of `platforms`.
    """
    chosen: list[Target] = []
    for target in targets:
        reference = target.image.reference
        manifest = await store.manifest_get(reference)
        if not manifest.is_index:
            chosen.append(target)
            continue
        children = [
            reference.with_digest(digest)
            for digest in platform_children(reference, manifest, platforms)
        ]
        session.emit(
            Notice(
                f"index {reference} left out (copying only some of its "
                f"children would change its digest): copying {len(children)} of its "
                f"{len(manifest.manifests)} images instead"
            )
        )
        chosen.append(dataclasses.replace(target, sources=tuple(children), primary=children[0]))
    return chosen


def parse_platforms(texts: Sequence[str]) -> list[Platform]:
    """The platforms named (`linux/amd64`, `linux/arm64/v8`...), in order."""
    return [Platform.parse(text.strip()) for text in texts if text.strip()]


def relocated_names(targets: Sequence[Target]) -> dict[str, str]:
    """Every name of every input image -> its relocated reference."""
    mapping: dict[str, str] = {}
    for target in targets:
        for name in target.image.names:
            mapping[name] = target.relocated
    return mapping
