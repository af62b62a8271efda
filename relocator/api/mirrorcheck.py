"""
`relocator mirror -c FILE --check`: is the mirror up to date? Copies nothing.

The sources are listed and resolved as for a copy (`mirror.select_all`, `mirror.jobs_of`); then
each destination is only asked (HEAD requests, pull access) whether it has each image
by digest and what each of its tags points at. What is found:

- missing: the image is not at the destination at all;
- stale: a tag at the destination points at another digest than the source's;
- untagged: the image is there but one of its tags is not.

The command line prints a line per finding and exits 10 when something is missing or
stale (`OutOfSync`); with `--json` a final `{"type": "MirrorCheck", ...}` object lists
them. Attachments (`includeReferrers`) are not checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from relocator.engine import Job, first_error
from relocator.oci import Digest, Reference
from relocator.store import RegistryStore

from .text import count as _count


@dataclass(frozen=True, slots=True, kw_only=True)
class Stale:
    """A destination tag that points at another digest than its source's."""

    tag: Reference
    found: Digest
    expected: Digest


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """A mirror check's outcome: what it found, and the sources it could not check."""

    findings: Findings
    #: Each failed source (its reference) and why.
    failures: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True, kw_only=True)
class Findings:
    """What a check found, in job order."""

    images: int = 0
    tags: int = 0
    missing: list[Job] = field(default_factory=list)
    stale: list[Stale] = field(default_factory=list)
    untagged: list[Reference] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        """Whether the destination has every image and tag, as the source has them."""
        return not (self.missing or self.stale or self.untagged)

    def document(self, failures: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """The `MirrorCheck` JSON object."""
        return {
            "type": "MirrorCheck",
            "in_sync": self.in_sync and not failures,
            "images": self.images,
            "tags": self.tags,
            "missing": [
                {"source": str(job.source), "destination": str(job.target),
                 "tags": list(job.tags)}
                for job in self.missing
            ],
            "stale": [
                {"tag": str(s.tag), "digest": str(s.found), "expected": str(s.expected)}
                for s in self.stale
            ],
            "untagged": [str(tag) for tag in self.untagged],
            "failures": [{"source": source, "error": error} for source, error in failures],
        }

    def markdown(self, failures: Sequence[tuple[str, str]]) -> str:
        """The check's result as a section of the GitHub Actions step summary."""
        state = "in sync" if self.in_sync and not failures else "out of sync"
        lines = [
            f"### relocator mirror --check: {state}", "",
            f"{_count(self.images, 'image')} and {_count(self.tags, 'tag')} checked.", "",
        ]
        lines += _markdown_list("Missing images", [str(job.target) for job in self.missing])
        lines += _markdown_list(
            "Stale tags", [f"{s.tag}` is `{s.found}`, the source has `{s.expected}"
                           for s in self.stale]
        )
        lines += _markdown_list("Missing tags", [str(tag) for tag in self.untagged])
        lines += _markdown_list("Sources that failed",
                                [f"{source}`: `{error}" for source, error in failures])
        return "\n".join(lines) + "\n"


def _markdown_list(title: str, items: Sequence[str]) -> list[str]:
    return [f"{title}:", "", *(f"- `{item}`" for item in items), ""] if items else []


async def check_jobs(jobs: Sequence[Job], store: RegistryStore) -> Findings:
    """
    Ask each job's destination for its image by digest and for each of its tags, all
    at once (the per-host limits bound the requests). HEAD requests only.
    """
    images: list[bool] = [False] * len(jobs)
    tags: list[list[Digest | None]] = [[None] * len(job.tags) for job in jobs]

    async def image(position: int) -> None:
        images[position] = await store.manifest_exists(jobs[position].target) is not None

    async def tag(position: int, number: int) -> None:
        job = jobs[position]
        reference = Reference.from_repo(job.destination, tag=job.tags[number])
        tags[position][number] = await store.manifest_exists(reference)

    try:
        async with anyio.create_task_group() as tg:
            for position, job in enumerate(jobs):
                tg.start_soon(image, position)
                for number in range(len(job.tags)):
                    tg.start_soon(tag, position, number)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    findings = Findings(images=len(jobs), tags=sum(len(job.tags) for job in jobs))
    for job, present, found in zip(jobs, images, tags, strict=True):
        if not present:
            findings.missing.append(job)
            continue
        for name, digest in zip(job.tags, found, strict=True):
            reference = Reference.from_repo(job.destination, tag=name)
            if digest is None:
                findings.untagged.append(reference)
            elif digest != job.digest:
                findings.stale.append(Stale(tag=reference, found=digest, expected=job.digest))
    return findings
