"""
`relocator copy SRC DST`: one image, registry to registry, as `crane copy` does.

No YAML, no lock files: the source (by tag or digest) is resolved to its digest and
handed to the same engine path `relocate` takes (`commands._transfer`), so the copy
keeps every digest, skips what the destination has and mounts within one registry.
stdout gets the digest copied, and nothing else, so a script can capture it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from relocator.engine.resolve import Resolution, resolve_all
from relocator.errors import InputError
from relocator.oci import Reference, Repository

from .commands import _client, _transfer, registry_store
from .inputs import InputImage, parse_reference
from .output import Output
from .targets import Target, parse_platforms, select_platforms


async def copy(args: argparse.Namespace) -> int:
    """`relocator copy`: copy one image to a repository (and tag), print its digest."""
    out = Output(args, "copy")
    source = parse_reference(args.source, "SRC")
    destination, tag = destination_of(args.destination, source)
    platforms = parse_platforms(args.platform)
    async with _client(args, out) as client:
        store = registry_store(client, args)
        request = Resolution(reference=source)
        resolved = (await resolve_all([request], store))[request]
        target = Target(
            image=InputImage(reference=resolved, names=(args.source,), written=source),
            destination=destination,
            sources=(resolved,),
            primary=resolved,
        )
        if platforms:
            [target] = await select_platforms([target], store, platforms, out)
        # Only the tag asked for: unlike relocate, no digest tag of relocator's own.
        jobs = [
            dataclasses.replace(job, tags=(tag,) if tag and job.source == target.primary else ())
            for job in target.jobs()
        ]
        out.line(f"copying {source} -> {_landing(destination, tag)}")
        report = await _transfer(
            args, out, jobs, store, store, client, verb="copied",
            referrers_of=jobs if args.include_referrers else (),
        )
    if report is not None:
        sys.stdout.write(f"{target.primary.digest}\n")
    return 0


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
