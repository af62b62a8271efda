"""
The commands: where config (what the user named) meets the engine (moving bytes).

Each command reads its inputs, builds stores, runs the engine and prints the rewritten
YAML on stdout; log lines go to stderr with kbld's prefixes (`resolve |`, `relocate |`,
`package |`, `unpackage |`). Lock files are written last, only after success.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from relocator import config
from relocator.engine import (
    CopyOptions,
    Job,
    Plan,
    Report,
    execute_plan,
    image_tag,
    plan_images,
)
from relocator.engine.events import Notice
from relocator.engine.resolve import Resolution, resolve_all
from relocator.errors import InputError, PartialFailure
from relocator.oci import Digest, Platform, Reference, Repository
from relocator.store import RegistryStore, Store
from relocator.store.tarball import TarballReader, TarballWriter
from relocator.transport import HttpClient, Keychain, TransportSettings

from .output import Output
from .plain import megabytes


@dataclass(frozen=True, slots=True)
class InputImage:
    """An image the inputs name, in digest form, with the keys lock files use for it."""

    reference: Reference
    #: Strings that name it in the inputs (the found value, an override's image and
    #: newImage): each becomes an entry of a relocated lock.
    names: tuple[str, ...]
    #: The reference as first written, with its tag if it had one (`app:1.0@sha256:...`):
    #: the name a tarball records for it.
    written: Reference


async def resolve(args: argparse.Namespace) -> int:
    """`relocator resolve`: resolve every found reference to a digest and print the YAML."""
    out = Output(args, "resolve")
    inputs = _load(args, out)
    platform = Platform.parse(args.platform) if args.platform else None
    final: dict[str, str] = {}
    pending: dict[str, Resolution] = {}
    for found in inputs.found_images():
        override = found.override
        if override is not None and override.preresolved:
            final[found.value] = override.new_image
            continue
        target = override.new_image if override is not None else found.value
        wanted = override.platform if override is not None and override.platform else platform
        pending[found.value] = Resolution(reference=_parse(target, found.where), platform=wanted)
    if pending:
        async with _client(args) as client:
            results = await resolve_all(list(pending.values()), RegistryStore(client))
        for value, request in pending.items():
            final[value] = str(results[request])
    for value in sorted(final):
        out.line(f"final: {value} -> {final[value]}")
    _write_locks(args, [(value, final[value]) for value in final], inputs)
    sys.stdout.write(inputs.render(final))
    return 0


async def relocate(args: argparse.Namespace) -> int:
    """`relocator relocate`: copy every image into one repository, registry to registry."""
    out = Output(args, "relocate")
    inputs = _load(args, out)
    images = _images(inputs)
    repository = Repository.parse(args.repository)
    jobs = [
        Job(source=image.reference, destination=repository, tags=(image_tag(_digest(image)),))
        for image in images
    ]
    out.line(f"exporting {_count(len(jobs), 'image')}...")
    for image in images:
        out.line(f"will export {image.reference}")
    async with _client(args) as client:
        store = RegistryStore(client)
        report = await _transfer(args, out, jobs, store, store, client, verb="imported")
    if report is not None:
        _finish_relocated(args, inputs, images, repository)
    return 0


async def pkg(args: argparse.Namespace) -> int:
    """`relocator pkg`: export every referenced image into one tarball, each blob once."""
    out = Output(args, "package")
    inputs = _load(args, out)
    images = _images(inputs)
    # A tarball is content-addressed: every image goes to one place, so that a blob
    # shared by images of different source repositories is planned (and written) once.
    inside = Repository(registry="tarball", path="images")
    jobs = [Job(source=image.written, destination=inside) for image in images]
    out.line(f"exporting {_count(len(jobs), 'image')}...")
    for image in images:
        out.line(f"will export {image.reference}")
    writer = TarballWriter(Path(args.output), format=args.format, resume=args.resume)
    try:
        async with _client(args) as client:
            report = await _transfer(
                args, out, jobs, RegistryStore(client), writer, client, verb="exported"
            )
    finally:
        await writer.aclose()
        if writer.kept is not None:
            out.line(f"kept the unfinished tarball {writer.kept}; rerun with --resume to "
                     "reuse what it holds")
    if report is not None:
        out.line(f"exported {_count(len(report.images), 'image')}")
    return 0


async def unpkg(args: argparse.Namespace) -> int:
    """`relocator unpkg`: import every image of a tarball into one repository."""
    out = Output(args, "unpackage")
    inputs = _load(args, out)
    images = _images(inputs)
    repository = Repository.parse(args.repository)
    async with TarballReader(Path(args.input)) as reader:
        # Every image the inputs name must be in the tarball before anything is pushed.
        for image in images:
            if await reader.manifest_exists(image.reference) is None:
                raise InputError(
                    f"Expected to find image for '{image.names[0]}' in {args.input}",
                    hint="package it with relocator pkg -f FILE --output TAR",
                )
        jobs = [
            Job(
                source=tar_image.reference
                or Reference.from_repo(repository, digest=tar_image.digest),
                destination=repository,
                tags=(image_tag(tar_image.digest),),
            )
            for tar_image in reader.images()
        ]
        out.line(f"importing {_count(len(jobs), 'image')}...")
        for job in jobs:
            out.line(f"importing {job.source} -> {job.target}...")
        async with _client(args) as client:
            report = await _transfer(
                args, out, jobs, reader, RegistryStore(client), client, verb="imported"
            )
    if report is not None:
        out.line(f"imported {_count(len(report.images), 'image')}")
        _finish_relocated(args, inputs, images, repository)
    return 0


async def _transfer(
    args: argparse.Namespace,
    out: Output,
    jobs: Sequence[Job],
    source: Store,
    destination: Store,
    client: HttpClient,
    *,
    verb: str,
) -> Report | None:
    """
    Plan and (unless `--dry-run`) execute; None for a dry run.

    Raises:
        PartialFailure: With `--keep-going`, after the others finished, if any failed.
    """
    async with out.running():
        plan = await plan_images(
            jobs,
            source=source,
            destination=destination,
            sink=out.sink,
            include_nondistributable=args.include_non_distributable_layers,
            keep_going=args.keep_going,
        )
        for image, layer in plan.excluded:
            out.emit(
                Notice(
                    f"left out non-distributable layer {layer.digest} of {image} "
                    "(pass --include-non-distributable-layers to copy it)"
                )
            )
        if args.dry_run:
            sys.stdout.write(describe_plan(plan))
            return None
        options = CopyOptions(
            hold=client.hosts.hold,
            max_blobs_in_flight=2 * args.concurrency,
            keep_going=args.keep_going,
        )
        report = await execute_plan(
            plan, source=source, destination=destination, options=options, sink=out.sink
        )
    if report.failures and out.display != "json":
        for failure in report.failures:
            out.line(f"failed: {failure.source}: {failure.error}")
    out.summary(verb, report, client.hosts.states())
    if report.failures:
        total = len(report.failures) + len(report.images)
        raise PartialFailure(
            f"{len(report.failures)} of {_count(total, 'image')} failed; "
            "the others were finished",
            hint="see the failed images above; run again to retry only what is missing",
        )
    return report


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


def _finish_relocated(
    args: argparse.Namespace,
    inputs: config.Inputs,
    images: Sequence[InputImage],
    repository: Repository,
) -> None:
    mapping: dict[str, str] = {}
    for image in images:
        destination = str(Reference.from_repo(repository, digest=_digest(image)))
        for name in image.names:
            mapping[name] = destination
    _write_locks(args, list(mapping.items()), inputs)
    sys.stdout.write(inputs.render(mapping))


def _write_locks(
    args: argparse.Namespace, entries: list[tuple[str, str]], inputs: config.Inputs
) -> None:
    try:
        if getattr(args, "lock_output", None):
            config.write_kbld_lock(
                args.lock_output, entries, search_rules=inputs.config.user_search_rules
            )
        if getattr(args, "imgpkg_lock_output", None):
            config.write_imgpkg_lock(args.imgpkg_lock_output, entries)
    except OSError as exc:
        raise InputError(f"cannot write lock file: {exc}") from None


def _load(args: argparse.Namespace, out: Output) -> config.Inputs:
    stdin_text = sys.stdin.read() if "-" in args.file else None
    inputs = config.load_inputs(args.file, stdin_text=stdin_text)
    for warning in inputs.warnings:
        out.emit(Notice(warning))
    return inputs


def _images(inputs: config.Inputs) -> list[InputImage]:
    """Every image the inputs name, which must be in digest form, once each."""
    by_digest: dict[Reference, tuple[Reference, list[str]]] = {}

    def add(value: str, target: str, where: str, names: list[str]) -> None:
        written = _parse(target, where)
        if written.digest is None:
            raise InputError(
                f"Expected image '{value}' to be in digest form (i.e. image@digest)",
                hint="resolve tags first: relocator resolve -f FILE --lock-output LOCK, "
                "then pass -f LOCK",
            )
        # The tag, if any, is only a label; the digest names the content.
        ref = written.with_digest(written.digest)
        by_digest.setdefault(ref, (written, []))[1].extend(names)

    for found in inputs.found_images():
        override = found.override
        target = override.new_image if override is not None else found.value
        add(found.value, target, found.where, [found.value, target])
    for override in inputs.preresolved():
        names = [override.new_image] + ([override.image] if override.image else [])
        add(override.new_image, override.new_image, override.where, names)
    return [
        InputImage(ref, tuple(dict.fromkeys(names)), written)
        for ref, (written, names) in by_digest.items()
    ]


def _parse(text: str, where: str) -> Reference:
    try:
        return Reference.parse(text)
    except InputError as exc:
        raise InputError(f"{where}: {exc}" if where else str(exc)) from None


def _digest(image: InputImage) -> Digest:
    digest = image.reference.digest
    if digest is None:  # pragma: no cover - _images only yields digest references
        raise InputError(f"{image.reference} has no digest")
    return digest


def transport_settings(args: argparse.Namespace) -> TransportSettings:
    """The transport settings the registry flags describe."""
    paths = tuple(Path(p) for p in args.registry_ca_cert_path)
    for path in paths:
        if not path.is_file():
            raise InputError(f"--registry-ca-cert-path {path}: no such file")
    return TransportSettings(
        ca_cert_paths=paths,
        verify_certs=args.registry_verify_certs,
        insecure_hosts=frozenset(h.lower() for h in args.registry_insecure),
        concurrency=args.concurrency,
    )


@asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[HttpClient]:
    async with HttpClient(transport_settings(args), Keychain()) as client:
        yield client

