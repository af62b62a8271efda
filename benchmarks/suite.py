"""
The benchmark sections: what runs in which order against what, and how it is checked.

Each section pits contenders (relocator, skopeo, the ceiling) against each other on the
same registries. Runs are interleaved (relocator, skopeo, ceiling, relocator, ...) so
that drift on the machine hits every tool alike; before each run the destination is
wiped (and skopeo's blob cache cleared), after it the output is verified. Only the
tool's own processes are inside the timing.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from relocator.oci import Digest
from tests.support import Registry, VerificationError, start_registry

from . import tools
from .ceiling import write_blob_list
from .corpus import (
    Corpus,
    Entry,
    build,
    large_image,
    push_all,
    scale_images,
    write_images_file,
)
from .measure import (
    Launcher,
    Runner,
    Sample,
    ToolFailed,
    measure,
    registry_pid,
    wait_for_idle,
)
from .report import Row
from .verify import verify_registry, verify_tar
from .wanproxy import running_proxy

#: Sections in the order they run; `--only` picks some.
SECTIONS = ("relocate", "noop", "pkg", "unpkg", "wan", "large", "scale", "scaleout")
# Once a wait for an idle machine ran out, later runs wait at most 10 s.
_BUSY_RECHECK = 10.0
# Every tool writes into this repository of the destination registry.
_DESTINATION_REPOSITORY = "bench/relocated"
# relocator's exit code for bad input, such as an input naming no image (docs/cli.md).
_NO_IMAGES_EXIT = 3
#: The fixed per-host limit relocator had before its limits adapted; the relocate section
#: runs it pinned there too, to show adapting costs nothing on a local link.
PINNED_CONCURRENCY = 8
#: Workers of the scale-out section (`--shard i/4`).
_SHARDS = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What the command line asked for."""

    scale: float
    runs: int
    sections: tuple[str, ...]
    profile: bool
    concurrency: int | None
    streams: int
    scale_counts: tuple[int, ...]
    #: Image counts whose plan alone is timed (no copy).
    scale_plan_counts: tuple[int, ...]
    #: A checkout of an earlier relocator revision, run beside this one on the many
    #: small images (an A/B on the same registries in one run); None: no A/B.
    baseline: Path | None = None
    #: Seconds to wait, at most, for the machine to go idle before each run.
    idle_wait: float
    workdir: Path
    cache: Path
    results: Path
    stamp: str


def _nothing() -> None:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Contender:
    """One tool in one section: how to reset for a run, run it, and check its output."""

    tool: str
    #: Runs the tool; the path, when given, is where to save a profile session.
    run: Callable[[Runner, Path | None], None]
    prepare: Callable[[], None] = _nothing
    #: Checks the output after run number N; returns a summary.
    verify: Callable[[int], str] | None = None
    #: Runs once more under pyinstrument with `--profile`.
    profiled: bool = False
    unavailable: str | None = None
    note: str = ""


@dataclass(slots=True)
class Bench:
    """Registries, corpus and outputs shared by the sections."""

    settings: Settings
    source: Registry
    destination: Registry
    corpus: Corpus
    images_file: Path
    blob_list: Path
    log: Path
    launcher: Launcher
    rows: list[Row] = field(default_factory=list)
    scale_rows: list[Row] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    #: Whether the machine was idle at the last check (see `settle`).
    idle: bool = True
    _probes: dict[str, str | None] = field(default_factory=dict)

    # -- helpers -----------------------------------------------------------------------

    def say(self, message: str) -> None:
        """A progress line on stderr."""
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:7.1f} s] {message}", file=sys.stderr, flush=True)

    @property
    def out(self) -> Path:
        """Directory of tarballs and layouts."""
        path = self.settings.workdir / "out"
        path.mkdir(exist_ok=True)
        return path

    def settle(self) -> None:
        """
        Hold the next run back while something else keeps the machine busy.

        After a wait ran out, the machine is busy for a while (a runaway process, a long
        test suite): the following waits are short until it has been idle once.
        """
        # The last run's writes (a gigabyte of tarball or registry blobs) are written
        # out now, not by the kernel's writeback during the next run: one run's pages
        # charged to the next made the same ceiling run take 1.2 to 3.3 s.
        os.sync()
        limit = (
            self.settings.idle_wait if self.idle else min(self.settings.idle_wait, _BUSY_RECHECK)
        )
        if limit <= 0:
            return
        waited, self.idle = wait_for_idle(limit=limit)
        if waited > 1:
            outcome = "" if self.idle else ", running anyway"
            self.say(f"  waited {waited:.0f} s for the machine to go idle{outcome}")

    def runner(self) -> Runner:
        """A runner for unmeasured steps (making inputs, filling the destination)."""
        return Runner(self.launcher, self.log)

    def wipe(self) -> None:
        """Empty the destination registry."""
        self.destination.wipe()

    def servers(self, **extra: int) -> dict[str, int]:
        """Pids of the registries (and `extra` servers) to charge CPU to."""
        return {
            "source": registry_pid(self.source),
            "destination": registry_pid(self.destination),
            **extra,
        }

    def probe(self, command: str) -> str | None:
        """Why `relocator COMMAND` is unavailable (cached), None when it works."""
        if command not in self._probes:
            reason = tools.relocator_unavailable(command, self.settings.workdir)
            self._probes[command] = None if reason is None else f"not available: {reason}"
        return self._probes[command]

    def relocator(
        self,
        command: str,
        *args: str,
        insecure: Sequence[str],
        profile: Path | None = None,
        concurrency: int | None = None,
    ) -> list[str]:
        """The relocator command line with the benchmark's concurrency (or `concurrency`)."""
        return tools.relocator_argv(
            command,
            *args,
            insecure=insecure,
            concurrency=concurrency or self.settings.concurrency,
            profile=profile,
        )

    def sampled(self, label: str, run: int, entries: Sequence[Entry]) -> Entry:
        """The entry whose blobs get hashed after run `run` (seeded, so repeatable)."""
        candidates = [e for e in entries if not e.docker] or list(entries)
        return random.Random(f"{label}/{run}").choice(candidates)

    def verify_destination(
        self, entries: Sequence[Entry], label: str, roots: Mapping[str, Digest] | None = None
    ) -> Callable[[int], str]:
        """A verifier of `entries` at the destination (by `roots[name]` when given)."""

        def check(run: int) -> str:
            digests = [roots[e.name] if roots else e.image.digest for e in entries]
            hashed = self.sampled(label, run, entries)
            root = roots[hashed.name] if roots else hashed.image.digest
            return verify_registry(self.destination, _DESTINATION_REPOSITORY, digests, hashed=root)

        return check

    # -- running contenders -----------------------------------------------------------

    def compare(
        self,
        section: str,
        contenders: Sequence[Contender],
        *,
        unique_bytes: int,
        images: int,
        interleave: bool = True,
        warm_up: bool = False,
        servers: Callable[[], dict[str, int]] | None = None,
        into: list[Row] | None = None,
    ) -> None:
        """
        Run every contender `runs` times and add one row each; with `warm_up`, each
        runs once unmeasured first.
        """
        runs = self.settings.runs
        servers = servers or self.servers
        samples: dict[str, list[Sample]] = {c.tool: [] for c in contenders}
        verified: dict[str, str] = {}
        problems: dict[str, str | None] = {c.tool: c.unavailable for c in contenders}
        # A section's first runs were up to 2.5 s slower for every tool, whatever ran
        # before (the cause was not found); interleaved, the first contender alone paid
        # it, and a median of three kept it as that contender's middle run.
        for contender in contenders if warm_up else ():
            if problems[contender.tool]:
                continue
            self.say(f"{section}: {contender.tool} warm-up run (not measured)")
            try:
                contender.prepare()
                contender.run(self.runner(), None)
            except ToolFailed as exc:
                problems[contender.tool] = f"failed: {_one_line(exc)}"
                self.say(f"  {problems[contender.tool]}")
        order = (
            [(run, c) for run in range(runs) for c in contenders]
            if interleave
            else [(run, c) for c in contenders for run in range(runs)]
        )
        for run, contender in order:
            if problems[contender.tool]:
                continue
            self.say(f"{section}: {contender.tool} run {run + 1} of {runs}")
            try:
                contender.prepare()
                self.settle()
                sample = measure(
                    _unprofiled(contender),
                    launcher=self.launcher,
                    log=self.log,
                    servers=servers(),
                    registries={"source": self.source, "destination": self.destination},
                )
            except ToolFailed as exc:
                problems[contender.tool] = f"failed: {_one_line(exc)}"
                self.say(f"  {problems[contender.tool]}")
                continue
            samples[contender.tool].append(sample)
            self.say(
                f"  {sample.wall_s:.2f} s wall, {sample.cpu_s:.2f} s CPU, "
                f"{sample.peak_rss / 1e6:.0f} MB peak RSS, "
                f"{sample.other_cpu_s:.1f} s CPU of other processes"
            )
            if contender.verify is not None:
                try:
                    verified[contender.tool] = contender.verify(run)
                except (VerificationError, ToolFailed) as exc:
                    verified[contender.tool] = f"**FAILED**: {_one_line(exc)}"
                    self.say(f"  verification {verified[contender.tool]}")
        for contender in contenders:
            (self.rows if into is None else into).append(
                Row(
                    section=section,
                    tool=contender.tool,
                    samples=tuple(samples[contender.tool]),
                    unique_bytes=unique_bytes,
                    images=images,
                    problem=problems[contender.tool],
                    verified=verified.get(contender.tool, "-" if contender.verify is None else ""),
                    note=contender.note,
                )
            )
            if self.settings.profile and contender.profiled and not problems[contender.tool]:
                self.profile(section, contender)

    def profile(self, section: str, contender: Contender) -> None:
        """Run `contender` once more under pyinstrument; save the session and renderings."""
        session = self.settings.results / f"{self.settings.stamp}-profile-{section}.pyisession"
        session.parent.mkdir(parents=True, exist_ok=True)
        self.say(f"{section}: {contender.tool} under pyinstrument")
        try:
            contender.prepare()
            measure(
                lambda runner: contender.run(runner, session),
                launcher=self.launcher,
                log=self.log,
                servers=self.servers(),
            )
        except ToolFailed as exc:
            self.say(f"  profile failed: {_one_line(exc)}")
            return
        stem = session.with_suffix("")
        renderings = {
            # The call tree, library frames folded; the same, interactive; and every
            # function by its own time, library frames folded into their callers.
            ".txt": ["-r", "text"],
            ".html": ["-r", "html"],
            "-flat.txt": ["-r", "text", "-p", "flat=true"],
        }
        for suffix, options in renderings.items():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pyinstrument",
                    "--load",
                    str(session),
                    *options,
                    "-o",
                    f"{stem}{suffix}",
                ],
                check=True,
                capture_output=True,
            )
        self.profiles.append(f"{stem.name}.txt")

    # -- sections ----------------------------------------------------------------------

    def relocate_contenders(
        self,
        source_host: str,
        images_file: Path,
        *,
        entries: Sequence[Entry] | None = None,
        blob_list: Path | None = None,
    ) -> list[Contender]:
        """
        relocator, skopeo and the ceiling copying registry to registry: the corpus, or
        `entries` (whose blobs `blob_list` lists) instead.
        """
        entries = self.corpus.entries if entries is None else tuple(entries)
        blob_list = blob_list or self.blob_list
        skopeo_entries = [e for e in entries if not e.nested]
        insecure = [source_host, self.destination.host]
        destination = f"{self.destination.host}/{_DESTINATION_REPOSITORY}"

        def relocator(runner: Runner, profile: Path | None) -> None:
            runner(
                self.relocator(
                    "relocate",
                    "-f",
                    str(images_file),
                    "-r",
                    destination,
                    insecure=insecure,
                    profile=profile,
                )
            )

        def skopeo(runner: Runner, _: Path | None) -> None:
            env = tools.fresh_skopeo_env(self.settings.workdir / "skopeo-data")
            for entry in skopeo_entries:
                runner(
                    tools.skopeo_copy_argv(
                        f"docker://{entry.reference(source_host)}",
                        f"docker://{destination}:{entry.name}",
                    ),
                    env=env,
                )

        def ceiling(runner: Runner, _: Path | None) -> None:
            runner(
                tools.ceiling_argv(
                    "copy",
                    "--blobs",
                    str(blob_list),
                    "--source",
                    f"http://{source_host}",
                    "--destination",
                    self.destination.url,
                    "--repository",
                    _DESTINATION_REPOSITORY,
                    streams=self.settings.streams,
                )
            )

        return [
            Contender(
                tool="relocator",
                run=relocator,
                prepare=self.wipe,
                profiled=True,
                verify=self.verify_destination(entries, "relocator"),
            ),
            Contender(
                tool="skopeo",
                run=skopeo,
                prepare=self.wipe,
                verify=self.verify_destination(skopeo_entries, "skopeo"),
                note=_skopeo_note(self.corpus) if entries == self.corpus.entries else "",
            ),
            Contender(tool="ceiling", run=ceiling, prepare=self.wipe),
        ]

    def section_relocate(self) -> None:
        """
        Registry to registry, destination wiped before every run; with relocator's own
        (adaptive) limits, also pinned at the fixed 8 per host they replaced.
        """
        contenders = self.relocate_contenders(self.source.host, self.images_file)
        if self.settings.concurrency is None:
            insecure = [self.source.host, self.destination.host]
            destination = f"{self.destination.host}/{_DESTINATION_REPOSITORY}"

            def pinned(runner: Runner, profile: Path | None) -> None:
                runner(self.relocator(
                    "relocate", "-f", str(self.images_file), "-r", destination,
                    insecure=insecure, profile=profile, concurrency=PINNED_CONCURRENCY,
                ))

            contenders.insert(1, replace(
                contenders[0], tool=f"relocator --concurrency {PINNED_CONCURRENCY}",
                run=pinned, profiled=False,
            ))
        self.compare(
            "relocate",
            contenders,
            unique_bytes=self.corpus.unique_bytes,
            images=len(self.corpus.entries),
            warm_up=True,
        )

    def section_scaleout(self) -> None:
        """
        `--shard i/4`: four workers one after another (a Job with parallelism 1), each
        moving its share of the blobs; the verified column gives each worker's share of
        the bytes, and the destination is checked whole after the last one.
        """
        insecure = [self.source.host, self.destination.host]
        destination = f"{self.destination.host}/{_DESTINATION_REPOSITORY}"
        reports = [self.settings.workdir / f"shard-{i}.json" for i in range(_SHARDS)]
        whole = self.verify_destination(self.corpus.entries, "scaleout")

        def shards(runner: Runner, profile: Path | None) -> None:
            for index, report in enumerate(reports):
                runner(self.relocator(
                    "relocate", "-f", str(self.images_file), "-r", destination,
                    "--shard", f"{index}/{_SHARDS}", "--report", str(report),
                    insecure=insecure, profile=profile,
                ))

        def shares(run: int) -> str:
            moved = [_bytes_copied(report) for report in reports]
            total = max(sum(moved), 1)
            share = " / ".join(f"{m / total:.2f}" for m in moved)
            return f"bytes per shard {share}; {whole(run)}"

        self.compare(
            "scaleout",
            [
                Contender(tool=f"relocator, {_SHARDS} shards in turn", run=shards,
                          prepare=self.wipe, verify=shares),
                *self.relocate_contenders(self.source.host, self.images_file)[:1],
            ],
            unique_bytes=self.corpus.unique_bytes,
            images=len(self.corpus.entries),
        )

    def section_noop(self) -> None:
        """Everything already at the destination: each tool fills it once, then re-runs."""
        contenders = []
        # The tool whose run filled the destination last: the profile run after all the
        # measured ones must refill it, or it re-runs over another tool's copy.
        filled_by: list[str] = []
        for contender in self.relocate_contenders(self.source.host, self.images_file)[:2]:

            def fill(c: Contender = contender) -> None:
                if filled_by != [c.tool]:
                    self.wipe()
                    c.run(self.runner(), None)
                    filled_by[:] = [c.tool]

            contenders.append(
                Contender(
                    tool=contender.tool,
                    run=contender.run,
                    prepare=fill,
                    verify=contender.verify,
                    profiled=contender.profiled,
                )
            )
        # Not interleaved: each tool re-runs over what it put there itself.
        self.compare(
            "noop",
            contenders,
            unique_bytes=self.corpus.unique_bytes,
            images=len(self.corpus.entries),
            interleave=False,
        )

    def section_pkg(self) -> None:
        """Registry to one tarball."""
        entries = self.corpus.entries
        skopeo_entries = self.corpus.select(skopeo=True)
        blobs = {d: b.size for d, b in self.corpus.blobs().items()}
        manifests = {d: m.size for d, m in self.corpus.manifests().items()}

        def relocator(runner: Runner, profile: Path | None) -> None:
            runner(
                self.relocator(
                    "pkg",
                    "-f",
                    str(self.images_file),
                    "-o",
                    str(self.relocator_tar),
                    insecure=[self.source.host],
                    profile=profile,
                )
            )

        def verify_relocator(run: int) -> str:
            hashed = self.sampled("pkg/relocator", run, entries)
            return verify_tar(
                self.relocator_tar,
                blobs,
                manifests,
                hashed=[b.digest for b in hashed.image.all_blobs()],
            )

        def verify_skopeo(run: int) -> str:
            # Converting a Docker image to OCI rewrites its config and manifests; only
            # its layers keep their digests.
            kept = [e for e in skopeo_entries if not e.docker]
            skopeo_blobs = {b.digest: b.size for e in kept for b in e.image.all_blobs()}
            skopeo_blobs |= {
                b.digest: b.size
                for e in skopeo_entries
                if e.docker
                for n in e.image.walk()
                for b in n.layers
            }
            skopeo_manifests = {n.digest: n.size for e in kept for n in e.image.walk()}
            hashed = self.sampled("pkg/skopeo", run, skopeo_entries)
            return verify_tar(
                self.skopeo_tar,
                skopeo_blobs,
                skopeo_manifests,
                hashed=[b.digest for b in hashed.image.all_blobs()],
            )

        def ceiling(runner: Runner, _: Path | None) -> None:
            runner(self.ceiling_pull_argv())

        unavailable = self.probe("pkg")
        self.compare(
            "pkg",
            [
                Contender(
                    tool="relocator",
                    run=relocator,
                    prepare=self.remove_relocator_tar,
                    verify=verify_relocator,
                    profiled=True,
                    unavailable=unavailable,
                ),
                Contender(
                    tool="skopeo",
                    run=self.skopeo_pkg,
                    prepare=self.remove_skopeo_output,
                    verify=verify_skopeo,
                    note=_skopeo_note(self.corpus, layout=True),
                ),
                Contender(tool="ceiling", run=ceiling, prepare=self.remove_ceiling_file),
            ],
            unique_bytes=self.corpus.unique_bytes,
            images=len(entries),
            warm_up=True,
        )

    def section_unpkg(self) -> None:
        """One tarball to the registry (skopeo reads the OCI layout directory)."""
        entries = self.corpus.entries
        skopeo_entries = self.corpus.select(skopeo=True)
        destination = f"{self.destination.host}/{_DESTINATION_REPOSITORY}"
        unavailable = self.probe("unpkg")
        if unavailable is None and (pkg := self.probe("pkg")) is not None:
            unavailable = f"needs relocator pkg to make its input ({pkg})"
        if unavailable is None and not self.relocator_tar.is_file():
            self.say("unpkg: making relocator's tarball (not measured)")
            self.remove_relocator_tar()
            self.runner()(
                self.relocator(
                    "pkg",
                    "-f",
                    str(self.images_file),
                    "-o",
                    str(self.relocator_tar),
                    insecure=[self.source.host],
                )
            )
        if not (self.skopeo_layout / "index.json").is_file():
            self.say("unpkg: making skopeo's OCI layout (not measured)")
            self.remove_skopeo_output()
            self.skopeo_pkg(self.runner(), None)
        if not self.ceiling_file.is_file():
            self.say("unpkg: making the ceiling's blob file (not measured)")
            self.runner()(self.ceiling_pull_argv())
        skopeo_roots = self.layout_digests()

        def relocator(runner: Runner, profile: Path | None) -> None:
            runner(
                self.relocator(
                    "unpkg",
                    "-f",
                    str(self.images_file),
                    "-i",
                    str(self.relocator_tar),
                    "-r",
                    destination,
                    insecure=[self.destination.host],
                    profile=profile,
                )
            )

        def skopeo(runner: Runner, _: Path | None) -> None:
            env = tools.fresh_skopeo_env(self.settings.workdir / "skopeo-data")
            for entry in skopeo_entries:
                runner(
                    tools.skopeo_copy_argv(
                        f"oci:{self.skopeo_layout}:{entry.name}",
                        f"docker://{destination}:{entry.name}",
                    ),
                    env=env,
                )

        def ceiling(runner: Runner, _: Path | None) -> None:
            runner(
                tools.ceiling_argv(
                    "push",
                    "--blobs",
                    str(self.blob_list),
                    "--input",
                    str(self.ceiling_file),
                    "--destination",
                    self.destination.url,
                    "--repository",
                    _DESTINATION_REPOSITORY,
                    streams=self.settings.streams,
                )
            )

        self.compare(
            "unpkg",
            [
                Contender(
                    tool="relocator",
                    run=relocator,
                    prepare=self.wipe,
                    profiled=True,
                    verify=self.verify_destination(entries, "unpkg/relocator"),
                    unavailable=unavailable,
                ),
                Contender(
                    tool="skopeo",
                    run=skopeo,
                    prepare=self.wipe,
                    verify=self.verify_destination(skopeo_entries, "unpkg/skopeo", skopeo_roots),
                    note=_skopeo_note(self.corpus, layout=True),
                ),
                Contender(tool="ceiling", run=ceiling, prepare=self.wipe),
            ],
            unique_bytes=self.corpus.unique_bytes,
            images=len(entries),
            warm_up=True,
        )

    def section_wan(self) -> None:
        """The source behind a 40 ms round trip, each connection paced to 25 MB/s."""
        with running_proxy(self.source.host) as proxy:
            self.say(f"wan: proxy {proxy.host} in front of the source")
            images_file = write_images_file(
                self.settings.workdir / "images-wan.yml", proxy.host, self.corpus.entries
            )
            self.compare(
                "wan",
                self.relocate_contenders(proxy.host, images_file),
                unique_bytes=self.corpus.unique_bytes,
                images=len(self.corpus.entries),
                servers=lambda: self.servers(proxy=proxy.pid),
                warm_up=True,
            )

    def section_large(self) -> None:
        """
        One large layer behind the WAN proxy: where a single connection's pace decides,
        relocator's parallel ranges against itself with one stream, skopeo and the
        ceiling (which moves each blob as one stream).
        """
        entry = large_image(self.settings.scale, self.settings.cache)
        self.say(f"large: pushing one {entry.image.layers[0].size / 1e6:.0f} MB layer")
        push_all(self.source, [entry])
        os.sync()
        blobs = [(entry.repository, str(b.digest), b.size) for b in entry.image.all_blobs()]
        blob_list = write_blob_list(self.settings.workdir / "blobs-large.json", blobs)
        with running_proxy(self.source.host) as proxy:
            self.say(f"large: proxy {proxy.host} in front of the source")
            images_file = write_images_file(
                self.settings.workdir / "images-large.yml", proxy.host, [entry]
            )
            ranged, skopeo, ceiling = self.relocate_contenders(
                proxy.host, images_file, entries=[entry], blob_list=blob_list
            )
            destination = f"{self.destination.host}/{_DESTINATION_REPOSITORY}"

            def one_stream(runner: Runner, _: Path | None) -> None:
                runner(
                    self.relocator(
                        "relocate", "-f", str(images_file), "-r", destination,
                        "--range-streams", "1",
                        insecure=[proxy.host, self.destination.host],
                    )
                )

            single = replace(
                ranged, tool="relocator --range-streams 1", run=one_stream, profiled=False
            )
            self.compare(
                "large",
                [ranged, single, skopeo, ceiling],
                unique_bytes=sum(size for *_, size in blobs),
                images=1,
                servers=lambda: self.servers(proxy=proxy.pid),
            )

    def section_scale(self) -> None:
        """Many small images: plan (dry run) and relocate time per image."""
        copied = set(self.settings.scale_counts)
        counts = sorted(copied | set(self.settings.scale_plan_counts))
        entries = scale_images(max(counts))
        self.say(f"scale: pushing {len(entries)} small images")
        push_all(self.source, entries)
        insecure = [self.source.host, self.destination.host]
        destination = f"{self.destination.host}/{_DESTINATION_REPOSITORY}"
        for count in [0, *counts]:
            chosen = entries[:count]
            images_file = write_images_file(
                self.settings.workdir / f"images-scale-{count}.yml", self.source.host, chosen
            )
            unique = sum(b.size for b in Corpus(entries=chosen).blobs().values())
            # Zero images is start-up alone: relocator refuses an input naming no image
            # with its bad-input exit code, after start-up and reading the input.
            exit_code = 0 if count else _NO_IMAGES_EXIT

            def plan(
                runner: Runner, profile: Path | None, f: Path = images_file, code: int = exit_code
            ) -> None:
                runner(
                    self.relocator(
                        "relocate",
                        "-f",
                        str(f),
                        "-r",
                        destination,
                        "--dry-run",
                        insecure=insecure,
                        profile=profile,
                    ),
                    expect=code,
                )

            def run(
                runner: Runner,
                profile: Path | None,
                f: Path = images_file,
                code: int = exit_code,
                env: Mapping[str, str] | None = None,
                cwd: Path | None = None,
            ) -> None:
                runner(
                    self.relocator(
                        "relocate",
                        "-f",
                        str(f),
                        "-r",
                        destination,
                        insecure=insecure,
                        profile=profile,
                    ),
                    expect=code,
                    env=env,
                    cwd=cwd,
                )

            self.compare(
                "scale-plan",
                [Contender(tool="relocator", run=plan, prepare=self.wipe)],
                unique_bytes=unique,
                images=count,
                into=self.scale_rows,
            )
            if count and count not in copied:
                continue
            biggest = count == max(copied)
            verify = self.verify_destination(chosen, f"scale/{count}") if count else None
            self.compare(
                "scale",
                [
                    Contender(
                        tool="relocator",
                        run=run,
                        prepare=self.wipe,
                        verify=verify,
                        profiled=biggest,
                    )
                ],
                unique_bytes=unique,
                images=count,
                into=self.scale_rows,
            )
            if biggest and self.settings.baseline is not None:
                self.compare_with_baseline(run, verify, unique_bytes=unique, images=count)

    def compare_with_baseline(
        self,
        run: Callable[..., None],
        verify: Callable[[int], str] | None,
        *,
        unique_bytes: int,
        images: int,
    ) -> None:
        """
        The many small images copied by this relocator and by the `--baseline` checkout,
        interleaved on the same registries (the `small-images` rows of the main table).
        `run(runner, profile, env=...)` runs relocator once.
        """
        baseline = self.settings.baseline
        if baseline is None:
            return
        # Run from the checkout with it first on the path (`python -m` puts the working
        # directory first), so `python -m relocator` runs its code.
        env = {**os.environ, "PYTHONPATH": str(baseline)}
        self.compare(
            "small-images",
            [
                Contender(tool="relocator", run=run, prepare=self.wipe, verify=verify),
                Contender(tool="baseline", run=partial(run, env=env, cwd=baseline), prepare=self.wipe,
                          verify=verify,
                          note=f"baseline: relocator {tools.relocator_revision(baseline)}"),
            ],
            unique_bytes=unique_bytes,
            images=images,
            warm_up=True,
        )

    # -- outputs shared by pkg and unpkg -------------------------------------------------

    @property
    def relocator_tar(self) -> Path:
        """relocator's tarball."""
        return self.out / "relocator.tar"

    @property
    def skopeo_layout(self) -> Path:
        """skopeo's OCI layout directory."""
        return self.out / "skopeo-layout"

    @property
    def skopeo_tar(self) -> Path:
        """skopeo's layout, tarred."""
        return self.out / "skopeo.tar"

    @property
    def ceiling_file(self) -> Path:
        """The ceiling's file of all blobs."""
        return self.out / "ceiling.blobs"

    def remove_relocator_tar(self) -> None:
        """Delete relocator's tarball (and anything it left beside it)."""
        for path in self.out.glob("relocator.tar*"):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def remove_skopeo_output(self) -> None:
        """Delete skopeo's layout and tarball."""
        shutil.rmtree(self.skopeo_layout, ignore_errors=True)
        self.skopeo_tar.unlink(missing_ok=True)

    def remove_ceiling_file(self) -> None:
        """Delete the ceiling's blob file."""
        self.ceiling_file.unlink(missing_ok=True)

    def skopeo_pkg(self, runner: Runner, _: Path | None) -> None:
        """skopeo into one OCI layout, image by image, then `tar`."""
        env = tools.fresh_skopeo_env(self.settings.workdir / "skopeo-data")
        for entry in self.corpus.select(skopeo=True):
            runner(
                tools.skopeo_copy_argv(
                    f"docker://{entry.reference(self.source.host)}",
                    f"oci:{self.skopeo_layout}:{entry.name}",
                    preserve_digests=not entry.docker,
                ),
                env=env,
            )
        runner(["tar", "-cf", str(self.skopeo_tar), "-C", str(self.skopeo_layout), "."])

    def ceiling_pull_argv(self) -> list[str]:
        """The ceiling pulling every blob into its file."""
        return tools.ceiling_argv(
            "pull",
            "--blobs",
            str(self.blob_list),
            "--source",
            self.source.url,
            "--output",
            str(self.ceiling_file),
            streams=self.settings.streams,
        )

    def layout_digests(self) -> dict[str, Digest]:
        """Name -> digest of every image in skopeo's layout (converted ones differ)."""
        index = json.loads((self.skopeo_layout / "index.json").read_text())
        found: dict[str, Digest] = {}
        for item in index.get("manifests", []):
            name = item.get("annotations", {}).get("org.opencontainers.image.ref.name")
            if name:
                found[name] = Digest.parse(item["digest"])
        return found


def _unprofiled(contender: Contender) -> Callable[[Runner], None]:
    def work(runner: Runner) -> None:
        contender.run(runner, None)

    return work


def _skopeo_note(corpus: Corpus, *, layout: bool = False) -> str:
    left_out = [e.name for e in corpus.entries if e.nested]
    parts = ["runs image by image, sequentially"]
    if left_out:
        parts.append(
            f"leaves out {', '.join(left_out)} (skopeo 1.9.3 cannot copy an index of an index)"
        )
    converted = [e.name for e in corpus.select(skopeo=True) if e.docker]
    if layout and converted:
        parts.append(
            f"converts {', '.join(converted)} to OCI (new digests): an OCI layout "
            "cannot hold Docker manifests"
        )
    return "; ".join(parts)


def _bytes_copied(report: Path) -> int:
    """The bytes a relocator run copied, from its `--report` file."""
    document = json.loads(report.read_text())
    return int(document["totals"]["bytes_copied"])


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    # The tool's own error is usually the last line of the quoted output.
    return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"


@contextmanager
def bench(settings: Settings) -> Iterator[Bench]:
    """Start both registries, build and push the corpus, and stop everything afterwards."""
    workdir = settings.workdir
    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    say(f"corpus: generating layers at scale {settings.scale}")
    corpus = build(settings.scale, settings.cache)
    with ExitStack() as stack:
        source = start_registry(workdir / "source")
        stack.callback(source.stop)
        destination = start_registry(workdir / "destination")
        stack.callback(destination.stop)
        launcher = Launcher()
        stack.callback(launcher.close)
        say(
            f"corpus: pushing {len(corpus.entries)} images "
            f"({corpus.unique_bytes / 1e6:.0f} MB unique) to the source registry"
        )
        push_all(source, corpus.entries)
        # Write the pushed gigabyte out now, so that the kernel's writeback does not
        # overlap the first measured run. (The first relocate run is still 1.5-2.5 s
        # slower than the next two for a reason not found yet; medians hide it.)
        os.sync()
        blobs: dict[Digest, tuple[str, str, int]] = {}
        for entry in corpus.entries:
            for blob in entry.image.all_blobs():
                blobs.setdefault(blob.digest, (entry.repository, str(blob.digest), blob.size))
        yield Bench(
            settings=settings,
            source=source,
            destination=destination,
            corpus=corpus,
            images_file=write_images_file(workdir / "images.yml", source.host, corpus.entries),
            blob_list=write_blob_list(workdir / "blobs.json", list(blobs.values())),
            log=workdir / "tools.log",
            launcher=launcher,
            started=started,
        )
