"""
`copy`: one image, registry to registry, as `crane copy` does.

No YAML, no lock files: the source (by tag or digest) is resolved to its digest and
handed to the same transfer `relocate` uses, so the copy keeps every digest, skips what
the destination has and mounts within one registry.
"""

from __future__ import annotations

import dataclasses

from relocator.engine.resolve import Resolution, resolve_all
from relocator.errors import InputError
from relocator.oci import Reference, Repository

from .inputs import InputImage, parse_reference
from .registries import registry_store, transport_settings
from .requests import CopyRequest
from .result import Result
from .session import Session
from .targets import Target, parse_platforms, select_platforms
from .transfer import transfer


async def copy(request: CopyRequest, session: Session) -> Result:
    """Copy one image to a repository (and tag); `Result.copied` is what was copied."""
    source = parse_reference(request.source, "SRC")
    destination, tag = destination_of(request.destination, source)
    platforms = parse_platforms(request.platforms)
    settings = transport_settings(request.registries)
    async with session.client(request.registries, settings, destination=None) as client:
        store = registry_store(client, request.registries)
        wanted = Resolution(reference=source)
        resolved = (await resolve_all([wanted], store))[wanted]
        target = Target(
            image=InputImage(reference=resolved, names=(request.source,), written=source),
            destination=destination,
            sources=(resolved,),
            primary=resolved,
        )
        if platforms:
            [target] = await select_platforms([target], store, platforms, session)
        # Only the tag asked for: unlike relocate, no digest tag of relocator's own.
        jobs = [
            dataclasses.replace(job, tags=(tag,) if tag and job.source == target.primary else ())
            for job in target.jobs()
        ]
        session.log(f"copying {source} -> {_landing(destination, tag)}")
        moved = await transfer(
            session, request.transfer, request.registries, jobs, store, store, client,
            verb="copied", referrers_of=jobs if request.transfer.include_referrers else (),
        )
    if moved.report is None:
        return Result(plan=moved.plan, hosts=session.hosts())
    return Result(report=moved.report, copied=target.primary, hosts=session.hosts())


def destination_of(text: str, source: Reference) -> tuple[Repository, str | None]:
    """
    The repository DST names and the tag the copy gets there: DST's own tag, else the
    source's (none when the source is named by digest alone: pushed by digest).

    Raises:
        InputError: DST is not a reference, or carries a digest (the digest is the
            source's; a copy never changes it).
    """
    try:
        return Repository.parse(text), source.tag
    except InputError:
        pass
    reference = parse_reference(text, "DST")
    if reference.digest is not None:
        raise InputError(
            f"DST {text} names a digest; name a repository or repository:tag",
            hint="the copy keeps the source's digest: relocator copy SRC registry/repo:tag",
        )
    return reference.repo, reference.tag


def _landing(destination: Repository, tag: str | None) -> str:
    return f"{destination}:{tag}" if tag else f"{destination} (by digest)"
