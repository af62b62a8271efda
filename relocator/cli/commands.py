"""
The commands: where config (what the user named) meets the engine (moving bytes).

Each command reads its inputs, builds stores, runs the engine and prints the rewritten
YAML on stdout; log lines go to stderr with kbld's prefixes (`resolve |`, `relocate |`,
`package |`, `unpackage |`). Lock files are written last, only after success.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from relocator import config
from relocator.engine import (
    CopyOptions,
    Job,
    Plan,
    Report,
    Shard,
    execute_plan,
    image_tag,
    plan_images,
)
from relocator.engine.events import Notice
from relocator.engine.fallback_index import ReferrersIndex
from relocator.engine.limits import Limits
from relocator.engine.referrers import (
    describe,
    find_referrers,
    with_attachments,
)
from relocator.engine.report import ImageFailure
from relocator.engine.resolve import Resolution, resolve_each
from relocator.errors import InputError, PartialFailure
from relocator.oci import Digest, Manifest, Platform, Reference, Repository, mediatypes, shown
from relocator.store import RangePolicy, RegistryStore, Store
from relocator.store.base import attached_to
from relocator.store.tarball.images import TarballImage
from relocator.transport import HttpClient, Keychain, TransportSettings

if TYPE_CHECKING:
    from relocator.store.tarball import TarballReader, TarballWriter

from . import bundles
from .carvel import keychain as carvel_keychain
from .carvel import (
    password_notice,
    unresolved_inspect,
    with_image_map,
    with_imgpkg_limits,
)
from .inputs import (
    InputImage,
    images_of,
    limit_of,
    load,
    parse_reference,
    require_images,
    write_locks,
)
from .output import Output
from .plain import megabytes
from .targets import (
    Destinations,
    parse_platforms,
    relocated_names,
    select_platforms,
    targets_of,
)


async def resolve(args: argparse.Namespace) -> int:
    """`relocator resolve`: resolve every found reference to a digest and print the YAML."""
    out = Output(args, "resolve")
    inputs = load(args, out)
    if args.image_map_file:
        inputs = with_image_map(inputs, args.image_map_file)
    if args.unresolved_inspect:
        sys.stdout.write(unresolved_inspect(inputs))
        return 0
    platform = Platform.parse(args.platform) if args.platform else None
    final: dict[str, str] = {}
    # What kbld records of each image: the lock, tag or index it came from.
    origins: dict[str, tuple[config.Origin, ...]] = {}
    pending: dict[str, Resolution] = {}
    selections: dict[str, tuple[Reference, config.TagSelection]] = {}
    for found in inputs.found_images():
        override = found.override
        if override is not None and override.preresolved:
            final[found.value] = override.new_image
            origins[found.value] = (*override.origins, config.preresolved(override.new_image))
            continue
        target = override.new_image if override is not None else found.value
        wanted = override.platform if override is not None and override.platform else platform
        reference = parse_reference(target, found.where)
        if override is not None and override.tag_selection is not None:
            selections[found.value] = (reference, override.tag_selection)
        if reference.digest is None:
            origins[found.value] = (config.resolved(target, reference.tag),)
        pending[found.value] = Resolution(reference=reference, platform=wanted)
    if pending:
        async with _client(args, out) as client:
            store = RegistryStore(client)
            for value, (reference, selection) in selections.items():
                chosen = await _select_tag(store, reference, selection, out)
                out.line(f"selected: {value} -> {chosen}")
                pending[value] = Resolution(reference=chosen, platform=pending[value].platform)
                origins[value] = (config.resolved(str(chosen), chosen.tag),)
            results = await resolve_each(list(pending.values()), store)
        for value, request in pending.items():
            result = results[request]
            final[value] = str(result.reference)
            if result.index is not None and request.platform is not None:
                picked = config.platform_selected(str(result.index), request.platform)
                origins[value] = (*origins.get(value, ()), picked)
    for value in sorted(final):
        out.line(f"final: {value} -> {final[value]}")
    kept = origins if args.origins_annotation else {}
    write_locks(args, [(value, final[value]) for value in final], inputs, origins=kept)
    sys.stdout.write(inputs.render(final, origins=origins if args.images_annotation else None))
    return 0


async def _select_tag(
    store: RegistryStore, reference: Reference, selection: config.TagSelection, out: Output
) -> Reference:
    """
    The tag of `reference`'s repository an override's `tagSelection` chooses; listed
    names that are not tags are skipped with a warning.
    """
    listing = await store.tags(reference.repo)
    for refused in listing.refused:
        out.emit(Notice(f"skipped {shown(refused)} listed by {reference.repo}: not a valid tag"))
    tag = selection.pick(listing.tags)
    if tag is None:
        raise InputError(
            f"no tag of {reference.repo} matches tagSelection semver "
            f"'{selection.constraints or '*'}'"
            + (" (prereleases allowed)" if selection.prereleases else ""),
        )
    return Reference.from_repo(reference.repo, tag=tag)


async def relocate(args: argparse.Namespace) -> int:
    """`relocator relocate`: copy every image to its destination, registry to registry."""
    out = Output(args, "relocate")
    if notice := password_notice(args):
        out.emit(Notice(notice))
    inputs = load(args, out)
    # The flags are checked before the inputs: a bad template is the likelier mistake.
    destinations = Destinations.from_args(args)
    images = require_images(images_of(inputs), args.file)
    platforms = parse_platforms(args.platform)
    async with _client(args, out) as client:
        store = registry_store(client, args)
        found = await _bundles_of(args, store, images, inputs, out, destinations, platforms)
        targets = [
            dataclasses.replace(
                t, tags=tuple(dict.fromkeys((*t.tags, *found.tags_of(t.image.digest))))
            )
            for t in targets_of([*images, *bundles.added_images(found)], destinations,
                                preserve_tags=args.preserve_tags,
                                tag_scheme=args.destination_tags)
        ]
        if platforms:
            targets = await select_platforms(targets, store, platforms, out)
        jobs = [job for target in targets for job in target.jobs()]
        _will_export(out, [str(job.source) for job in jobs])

        def importing(planned: Sequence[Job]) -> None:
            # kbld's lines between reading the sources and writing the destination.
            out.line(f"exported {len(jobs)} images")
            out.line(f"importing {len(planned)} images...")
            for job in planned:
                out.line(f"importing {job.source} -> {job.target}...")

        report = await _transfer(
            args, out, jobs, store, store, client, verb="imported",
            referrers_of=jobs if args.include_referrers else (),
            fetched=found.found.manifests, before_copy=importing,
            after_copy=lambda report: out.line(f"imported {len(report.images)} images"),
        )
        if report is not None and found:
            await bundles.note_copies(store, found, bundles.one_repository(found, destinations),
                                      out)
    if report is not None:
        _finish(args, inputs, relocated_names(targets))
    return 0


async def _bundles_of(
    args: argparse.Namespace,
    store: Store,
    images: Sequence[InputImage],
    inputs: config.Inputs,
    out: Output,
    destinations: Destinations | None,
    platforms: Sequence[Platform] = (),
) -> bundles.Bundles:
    """
    The imgpkg bundles among `images`; refused where a bundle would be copied thin
    (`--platform` choosing among its images) or where imgpkg would not find its images.
    """
    try:
        found = await bundles.find(
            store, [i.reference for i in images], out,
            locks=config.bundle_locks(inputs), named_tags={i.digest: i.tags for i in images},
            keep_going=args.keep_going,
        )
    except Exception as exc:
        # A source that fails here fails the run: its report says so, as for a failure
        # while planning.
        out.report_failure(exc)
        raise
    if found and platforms:
        raise InputError(
            "--platform cannot be used with imgpkg bundles: a bundle's images are copied "
            "whole, as its images.yml names them",
        )
    if found and destinations is not None:
        bundles.one_repository(found, destinations)
    return found


def _will_export(out: Output, sources: Sequence[str]) -> None:
    """kbld's first lines: the count (always "images"), then each source, sorted."""
    out.line(f"exporting {len(sources)} images...")
    for source in sorted(sources):
        out.line(f"will export {source}")


async def pkg(args: argparse.Namespace) -> int:
    """`relocator pkg`: export every referenced image into one tarball, each blob once."""
    out = Output(args, "package")
    if args.include_referrers and args.format != "oci":
        raise InputError(
            f"--include-referrers needs --format oci: the {args.format} format records no "
            "tags, so signatures and referrers indexes would arrive without theirs"
        )
    inputs = load(args, out)
    images = require_images(images_of(inputs), args.file)
    # A tarball is content-addressed: every image goes to one place, so that a blob
    # shared by images of different source repositories is planned (and written) once.
    # The tags the inputs named travel in the tarball, for `unpkg --preserve-tags`; a
    # bundle's tag travels too, and unpkg always applies it.
    inside = Repository(registry="tarball", path="images")
    from relocator.store.tarball import TarballWriter  # only pkg needs it

    def writing(_planned: Sequence[Job]) -> None:
        out.line(f"exported {len(jobs)} images")
        out.line("writing layers...")

    def written(report: Report) -> None:
        # kbld times each file it writes; relocator writes them concurrently, so a time
        # per file would mislead: each line gives the file's size instead. A run with
        # failed images keeps no tarball, so it lists none.
        if report.failures:
            return
        for name, size in writer.members():
            out.line(f"done: file '{name}' ({size} bytes)")

    writer = TarballWriter(Path(args.output), format=args.format, resume=args.resume)
    if not args.resume and not args.dry_run:
        await _refuse_unfinished(writer)
    try:
        async with _client(args, out) as client:
            store = registry_store(client, args)
            found = await _bundles_of(args, store, images, inputs, out, None)
            images = [*images, *bundles.added_images(found)]
            jobs = [
                Job(source=i.written, destination=inside,
                    tags=tuple(dict.fromkeys((*i.tags, *found.tags_of(i.digest)))))
                for i in images
            ]
            _will_export(out, [str(image.reference) for image in images])
            await _transfer(
                args, out, jobs, store, writer, client, verb="exported",
                referrers_of=jobs if args.include_referrers else (),
                fetched=found.found.manifests, before_copy=writing, after_copy=written,
            )
    finally:
        await writer.aclose()
        if writer.kept is not None:
            out.line(f"kept the unfinished tarball {writer.kept}; rerun with --resume to "
                     "reuse what it holds")
    return 0


async def _refuse_unfinished(writer: TarballWriter) -> None:
    """
    Stop rather than start afresh over what an interrupted run left: without
    `--resume` its finished blobs would be discarded and fetched again.
    """
    left = await writer.unfinished()
    if left is not None:
        raise InputError(
            f"found the unfinished tarball {left.path} of an interrupted run: "
            f"--resume would reuse its {_count(left.blobs, 'finished blob')} "
            f"({megabytes(left.size)}) after checking them",
            hint=f"rerun with --resume, or delete {left.path} and {left.journal} to "
            "start afresh",
        )


async def unpkg(args: argparse.Namespace) -> int:
    """`relocator unpkg`: import every image of a tarball, with no access to its source."""
    out = Output(args, "unpackage")
    if notice := password_notice(args):
        out.emit(Notice(notice))
    inputs = load(args, out)
    images = images_of(inputs)
    destinations = Destinations.from_args(args)
    from relocator.store.tarball import TarballReader  # only unpkg needs it

    async with TarballReader(Path(args.input)) as reader:
        if not reader.images():
            raise InputError(f"no images found in {args.input}",
                             hint="it is an empty tarball; package images with relocator pkg")
        # Every image the inputs name must be in the tarball before anything is pushed.
        for image in images:
            if await reader.manifest_exists(image.reference) is None:
                raise InputError(
                    f"Expected to find image for '{image.names[0]}' in {args.input}",
                    hint="package it with relocator pkg -f FILE --output TAR",
                )
        packaged = await _packaged_indexes(args, reader, destinations)
        indexes = list(packaged.values())
        attached = {d.digest: i.subject for i in indexes for d in i.referrers}
        jobs: list[Job] = []
        for tar_image in reader.images():
            if tar_image.digest in packaged:
                continue
            source = _tarball_source(args, tar_image, destinations)
            jobs.append(_import_job(args, tar_image, source, destinations.of(source),
                                    attached.get(tar_image.digest)))
        found = await _bundles_of(
            args, reader, [InputImage(reference=j.source, names=(), written=j.source) for j in jobs],
            inputs, out, destinations,
        )
        named = {t.digest: t.tags for t in reader.images()}
        # A bundle keeps its tag (imgpkg re-applies it), with or without --preserve-tags.
        jobs = [
            dataclasses.replace(j, tags=tuple(dict.fromkeys((*j.tags, *named[j.digest]))))
            if j.digest in found.found.bundles else j
            for j in jobs
        ]
        out.line(f"importing {len(jobs)} images...")
        for job in jobs:
            out.line(f"importing {job.source} -> {job.target}...")
        for index in indexes:
            out.line(f"will merge {_count(len(index.referrers), 'referrer')} into "
                     f"{index.reference}")
        async with _client(args, out) as client:
            target = RegistryStore(client, verify_uploads=args.verify_blobs)
            report = await _transfer(
                args, out, jobs, reader, target, client, verb="imported", indexes=indexes,
                fetched=found.found.manifests,
                after_copy=lambda report: out.line(f"imported {len(report.images)} images"),
            )
            if report is not None and found:
                await bundles.note_copies(
                    target, found, bundles.one_repository(found, destinations), out
                )
    if report is not None:
        landed = {job.digest: str(job.target) for job in jobs}
        mapping = {
            name: landed.get(image.digest) or str(
                Reference.from_repo(destinations.of(image.reference), digest=image.digest)
            )
            for image in images
            for name in image.names
        }
        _finish(args, inputs, mapping)
    return 0


def _tarball_source(
    args: argparse.Namespace, tar_image: TarballImage, destinations: Destinations
) -> Reference:
    """The reference a tarball recorded for an image, or its digest in `--repository`."""
    if tar_image.reference is not None:
        return tar_image.reference
    single = destinations.single
    if single is None:
        raise InputError(
            f"{args.input} records no full reference for image "
            f"{tar_image.name or tar_image.digest}; --repository-template needs one",
            hint="import it with --repository instead",
        )
    return Reference.from_repo(single, digest=tar_image.digest)


def _import_job(
    args: argparse.Namespace,
    tar_image: TarballImage,
    source: Reference,
    destination: Repository,
    subject: Digest | None,
) -> Job:
    """
    How unpkg lands one image of a tarball: under relocator's digest tag (and, with
    `--preserve-tags`, the tags recorded for it). What is attached to another image
    (listed in a packaged referrers index, or under a cosign tag, which is always
    applied: it belongs to the content) lands without relocator's tag, after its subject.
    """
    cosign: list[str] = []
    for tag in tar_image.tags:
        found = attached_to(tag)
        if found is not None and found[1] is not None:
            cosign.append(tag)
            subject = subject or found[0]
    own = (image_tag(tar_image.digest, args.destination_tags),) if subject is None else ()
    chosen = tar_image.tags if args.preserve_tags else ()
    tags = tuple(dict.fromkeys((*own, *cosign, *chosen)))
    return Job(source=source, destination=destination, tags=tags, subject=subject)


async def _packaged_indexes(
    args: argparse.Namespace, reader: TarballReader, destinations: Destinations
) -> dict[Digest, ReferrersIndex]:
    """
    The referrers indexes `pkg --include-referrers` packaged (indexes recorded under
    their subject's `sha256-<hex>` tag), by their digest: they are merged into the
    destination's index, not pushed over it.
    """
    indexes: dict[Digest, ReferrersIndex] = {}
    for tar_image in reader.images():
        if not mediatypes.is_index(tar_image.media_type):
            continue
        subjects = [found[0] for tag in tar_image.tags
                    if (found := attached_to(tag)) is not None and found[1] is None]
        if not subjects:
            continue
        source = _tarball_source(args, tar_image, destinations)
        index = await reader.manifest_get(source)
        indexes[tar_image.digest] = ReferrersIndex(
            repository=destinations.of(source), subject=subjects[0], referrers=index.manifests
        )
    return indexes


async def _transfer(
    args: argparse.Namespace,
    out: Output,
    jobs: Sequence[Job],
    source: Store,
    destination: Store,
    client: HttpClient,
    *,
    verb: str,
    referrers_of: Sequence[Job] = (),
    indexes: Sequence[ReferrersIndex] = (),
    fetched: dict[Digest, Manifest] | None = None,
    before_copy: Callable[[Sequence[Job]], None] | None = None,
    after_copy: Callable[[Report], None] | None = None,
) -> Report | None:
    """
    Plan and (unless `--dry-run`) execute; None for a dry run. With `referrers_of`, what
    is attached to those jobs' images is found first and copied too; `indexes` are
    referrers indexes to merge at the destination afterwards (unpkg); `fetched` are
    manifests already fetched from `source` (by digest), not fetched again. `before_copy`
    gets the planned jobs once planning is done, before anything is copied, and
    `after_copy` the report before the summary (kbld's lines, which JSON mode keeps
    before the report).

    Raises:
        PartialFailure: With `--keep-going`, after the others finished, if any failed.
    """
    shard = _shard(args)
    failures: list[ImageFailure] = []
    async with out.running():
        known: dict[Digest, Manifest] = dict(fetched or {})
        if referrers_of:
            out.line(f"looking up what is attached to {_count(len(referrers_of), 'image')}...")
            found = await find_referrers(
                referrers_of, source, package=not isinstance(destination, RegistryStore),
                keep_going=args.keep_going, sink=out.sink, limits=limits_of(args),
                known=known,
            )
            out.line(f"found {_count(len(found.jobs), 'attached image')}")
            for job in found.jobs:
                out.line(f"will also copy {job.source} ({describe(job)})")
            jobs = with_attachments(jobs, found.jobs, out.sink)
            known = {**known, **found.manifests}
            indexes = [*indexes, *found.indexes]
            failures = found.failures
        plan = await plan_images(
            jobs,
            source=source,
            destination=destination,
            sink=out.sink,
            include_nondistributable=args.include_non_distributable_layers,
            keep_going=args.keep_going,
            shard=shard,
            known=known,
            limits=limits_of(args),
        )
        if shard is not None:
            out.line(f"shard {shard}: {_count(len(plan.jobs), 'image')} of {len(jobs)}")
        for image, layer in plan.excluded:
            out.emit(
                Notice(
                    f"left out non-distributable layer {layer.digest} of {image} "
                    "(pass --include-non-distributable-layers to copy it)"
                )
            )
        if args.dry_run:
            # On stderr like every other line for people: stdout carries only YAML.
            for text in describe_plan(plan).splitlines():
                out.line(text)
            return None
        if before_copy is not None:
            before_copy(plan.jobs)
        options = CopyOptions(keep_going=args.keep_going)
        report = await execute_plan(
            plan, source=source, destination=destination, options=options, sink=out.sink,
            referrers=indexes,
        )
    report.failures.extend(failures)
    if report.failures and out.display != "json":
        for failure in report.failures:
            out.line(f"failed: {failure.source}: {failure.error}")
    if after_copy is not None:
        after_copy(report)
    out.summary(verb, report, client.hosts.states())
    if report.failures:
        total = len(report.failures) + len(report.images)
        raise PartialFailure(
            f"{len(report.failures)} of {_count(total, 'image')} failed; "
            "the others were finished",
            hint="see the failed images above; run again to retry only what is missing",
        )
    return report


def limits_of(args: argparse.Namespace) -> Limits:
    """The caps on source data, `--limit` applied over the defaults."""
    default = Limits()
    return Limits(
        index_entries=limit_of(args, "index-entries", default.index_entries),
        layers=limit_of(args, "layers", default.layers),
        plan_manifest_bytes=limit_of(args, "plan-manifest-bytes", default.plan_manifest_bytes),
    )


def _shard(args: argparse.Namespace) -> Shard | None:
    """`--shard` (default `$RELOCATOR_SHARD`); the index may come from Kubernetes."""
    text = getattr(args, "shard", None) or os.environ.get("RELOCATOR_SHARD")
    if not text:
        return None
    return Shard.parse(text, env_index=os.environ.get("JOB_COMPLETION_INDEX"))


def describe_plan(plan: Plan) -> str:
    """The plan as text for `--dry-run`: totals, then one line per image."""
    blobs = list(plan.unique_blobs())
    present = [b for b in blobs if not b.missing]
    lines = [
        (f"plan: {_count(len(plan.jobs), 'image')} ({len(plan.present)} already at the "
        f"destination), {_count(len(plan.manifests), 'manifest')} to push, "
        f"{_count(len(blobs), 'unique blob')}: {len(blobs) - len(present)} to move "
        f"({megabytes(plan.bytes_to_move)}), {len(present)} present "
        f"({megabytes(plan.bytes_present)})")
    ]
    for job in plan.jobs:
        if job in plan.failed:
            lines.append(f"failed  {job.source}: {plan.failed[job]}")
        else:
            state = "present" if job in plan.present else "copy   "
            lines.append(f"{state} {job.source} -> {job.target}")
    for image, layer in plan.excluded:
        lines.append(f"skip    non-distributable layer {layer.digest} of {image}")
    return "\n".join(lines) + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _finish(args: argparse.Namespace, inputs: config.Inputs, mapping: dict[str, str]) -> None:
    """Write the lock files, then print the inputs with every name relocated."""
    write_locks(args, list(mapping.items()), inputs)
    sys.stdout.write(inputs.render(mapping))


def registry_store(client: HttpClient, args: argparse.Namespace) -> RegistryStore:
    """The source (or source and destination) store of a copy, as the flags describe."""
    return RegistryStore(
        client,
        verify_uploads=args.verify_blobs,
        ranges=RangePolicy(streams=args.range_streams),
    )


def transport_settings(args: argparse.Namespace) -> TransportSettings:
    """The transport settings the registry flags describe."""
    paths = tuple(Path(p) for p in args.registry_ca_cert_path)
    for path in paths:
        if not path.is_file():
            raise InputError(f"--registry-ca-cert-path {path}: no such file")
    settings = TransportSettings(
        ca_cert_paths=paths,
        verify_certs=args.registry_verify_certs,
        insecure_hosts=frozenset(h.lower() for h in args.registry_insecure),
        insecure_all=args.registry_insecure_all,
        concurrency=args.concurrency,
    )
    return with_imgpkg_limits(settings, args)


def keychain(args: argparse.Namespace, out: Output) -> Keychain:
    """
    The credentials of the environment and of imgpkg's credential flags (see
    `carvel.keychain`); what is set up by halves is warned about.
    """
    found = carvel_keychain(args)
    for warning in found.warnings:
        out.emit(Notice(warning))
    return found


@asynccontextmanager
async def _client(args: argparse.Namespace, out: Output) -> AsyncIterator[HttpClient]:
    async with HttpClient(transport_settings(args), keychain(args, out)) as client:
        out.watch(client.hosts)
        yield client

