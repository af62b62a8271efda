"""
`plan` and `relocate --plan`: walk the sources once, write the whole plan to a file,
and let any number of workers run it without a manifest request to the source.

A plan records what it was made from (`made_from`): a digest of each input file's
bytes and every option that shapes the plan. A run given other inputs or options is
refused, naming the plan file.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relocator.engine.planfile import plan_from_file, read_plan, write_plan
from relocator.engine.referrers import describe, find_referrers, with_attachments
from relocator.engine.sweep import plan_whole

from .inputs import images_of, load, require_images, write_locks
from .jobs import relocation_jobs
from .registries import registry_store, transport_settings
from .requests import PlanRequest, RelocateRequest
from .result import Result
from .session import Session
from .targets import Destinations, relocated_names, targets_of
from .text import count, megabytes
from .transfer import transfer

# What `-f DIR` reads, as `relocator.config` does.
_SUFFIXES = (".yml", ".yaml", ".json")


async def make_plan_file(request: PlanRequest, session: Session) -> Result:
    """Plan the relocation `request` describes from the sources alone; write the file."""
    stdin = _stdin(request.files, request.stdin, request.max_input_bytes)
    inputs = load(request.files, session, max_bytes=request.max_input_bytes, stdin=stdin)
    destinations = Destinations.of_request(request.repository, request.repository_template)
    images = require_images(images_of(inputs), request.files)
    options = request.transfer
    async with session.client(
        request.registries, transport_settings(request.registries),
        destination=request.repository,
    ) as client:
        store = registry_store(client, request.registries)
        _, jobs, found = await relocation_jobs(
            store, images, inputs, session, destinations, preserve_tags=request.preserve_tags,
            tag_scheme=request.tag_scheme, keep_going=options.keep_going, platforms=(),
        )
        known = dict(found.found.manifests)
        indexes = []
        if options.include_referrers:
            session.log(f"looking up what is attached to {count(len(jobs), 'image')}...")
            attached = await find_referrers(
                jobs, store, package=False, keep_going=options.keep_going,
                sink=session.sink, limits=options.limits, known=known,
            )
            for job in attached.jobs:
                session.log(f"will also copy {job.source} ({describe(job)})")
            jobs = with_attachments(jobs, attached.jobs, session.sink)
            known.update(attached.manifests)
            indexes = list(attached.indexes)
        plan = await plan_whole(
            jobs, source=store, destination=store, sink=session.sink,
            include_nondistributable=options.include_nondistributable,
            keep_going=options.keep_going, known=known, limits=options.limits,
        )
    write_plan(request.output, plan, made_from=made_from(request, stdin),
               include_nondistributable=options.include_nondistributable, referrers=indexes)
    session.log(
        f"wrote {request.output}: {count(len(plan.jobs), 'image')}, "
        f"{count(len(plan.manifests), 'manifest')}, {count(len(plan.blobs), 'blob')} "
        f"({megabytes(sum(b.desc.size for b in plan.blobs.values()))})"
    )
    return Result(hosts=session.hosts())


async def relocate_planned(request: RelocateRequest, session: Session) -> Result:
    """`relocate --plan`: the plan file's share (or whole), then the rewritten YAML."""
    if request.plan is None:  # pragma: no cover - relocate calls this with a plan only
        raise ValueError("no plan file")
    stdin = _stdin(request.files, request.stdin, request.max_input_bytes)
    inputs = load(request.files, session, max_bytes=request.max_input_bytes, stdin=stdin)
    destinations = Destinations.of_request(request.repository, request.repository_template)
    images = require_images(images_of(inputs), request.files)
    options = request.transfer
    planfile = read_plan(request.plan, made_from=made_from(request, stdin),
                         limits=options.limits)
    async with session.client(
        request.registries, transport_settings(request.registries),
        destination=request.repository,
    ) as client:
        store = registry_store(client, request.registries)
        plan = await plan_from_file(planfile, destination=store, limits=options.limits)
        moved = await transfer(
            session, options, request.registries, list(planfile.jobs), store, store, client,
            verb="imported", indexes=planfile.referrers, planned=plan,
        )
    if moved.report is None:
        return Result(plan=moved.plan, hosts=session.hosts())
    # The input images keep their digests (no --platform with a plan): their new names
    # follow from the inputs alone, with no request to the source.
    mapping = relocated_names(targets_of(images, destinations,
                                         preserve_tags=request.preserve_tags,
                                         tag_scheme=request.tag_scheme))
    write_locks(request.locks, list(mapping.items()), inputs)
    return Result(report=moved.report, yaml=inputs.render(mapping), hosts=session.hosts())


def made_from(request: PlanRequest | RelocateRequest, stdin: str | None) -> dict[str, Any]:
    """What a plan is made from: each input's bytes (by digest) and the shaping options."""
    platforms = request.platforms if isinstance(request, RelocateRequest) else ()
    return {
        "inputs": [_digest(name, stdin) for name in request.files],
        "repository": request.repository,
        "repositoryTemplate": request.repository_template,
        "preserveTags": request.preserve_tags,
        "destinationTags": request.tag_scheme,
        "platforms": list(platforms),
        "includeReferrers": request.transfer.include_referrers,
        "includeNonDistributable": request.transfer.include_nondistributable,
    }


def _digest(name: str, stdin: str | None) -> str:
    """sha256 of one input: a file's bytes, a directory's files in order, or stdin."""
    digest = hashlib.sha256()
    if name == "-":
        digest.update((stdin or "").encode())
        return f"sha256:{digest.hexdigest()}"
    path = Path(name)
    files = [path] if not path.is_dir() else sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix in _SUFFIXES
    )
    for file in files:
        # The name too: moving a file within a directory changes what is read first.
        digest.update(str(file.relative_to(path) if file != path else "").encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return f"sha256:{digest.hexdigest()}"


def _stdin(files: Sequence[str], stdin: str | None, max_bytes: int) -> str | None:
    """What `-` reads, read once here so that it is both loaded and fingerprinted."""
    if "-" in files and stdin is None:
        return sys.stdin.read(max_bytes + 1)
    return stdin
