"""
Progress as plain lines: for CI logs and anything that is not a terminal.

One line per image finished, one progress line every few seconds, no escape codes, so
a log of a 500-image mirror stays readable and a 10 GB layer still shows it is alive.

`ProgressState` (the counters every display reads) lives here too: the live display
(`progress.py`) and the JSON lines (`jsonout.py`) aggregate events the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, TextIO

import anyio

from relocator.api import events as ev
from relocator.api.display import HostState, Report, megabytes, window_text

#: Seconds between two progress lines in a log.
TICK_SECONDS = 5.0

#: What a display says about one image.
ImageStatus = Literal["planning", "copying", "done", "present", "failed"]

Clock = Callable[[], float]


def fraction(done: int, total: int) -> str:
    """`done` of `total` bytes in the unit and precision of `total`: `612/1024 MB`."""
    if total >= 10_000_000:
        return f"{done / 1_000_000:.0f}/{total / 1_000_000:.0f} MB"
    return f"{done / 1_000_000:.1f}/{total / 1_000_000:.1f} MB"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageLine:
    """One top-level image as the displays show it."""

    source: str
    destination: str
    status: ImageStatus
    #: Why it failed (status "failed" only).
    error: str = ""
    #: 1 for the first image to finish, 2 for the next...; 0 while unfinished.
    finished: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobLine:
    """One blob transfer in flight."""

    digest: str
    size: int
    done: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """A consistent copy of a `ProgressState`, for a renderer on another thread."""

    planned: bool
    images_total: int
    images_done: int
    images_failed: int
    bytes_total: int
    bytes_done: int
    bytes_settled: int
    bytes_wire: int
    copied: int
    mounted: int
    present: int
    retried: int
    elapsed: float
    images: tuple[ImageLine, ...]
    blobs: tuple[BlobLine, ...]


class ProgressState:
    """
    Counters kept from engine events; shared by every progress display.

    `update` runs on the event loop for every event (the hot path: one call per 256 KiB
    of a blob), so it only does arithmetic. A renderer on another thread reads a
    `snapshot`; a lock held for a few dictionary updates keeps the two consistent.

    Args:
        clock: Monotonic seconds (injectable so tests and captures are repeatable).
    """

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        #: When the transfer started (the plan was known); creation time until then.
        self.started = clock()
        self.planned = False
        self.images_total = 0
        self.images_done = 0
        self.images_present = 0
        self.images_failed = 0
        self.bytes_total = 0
        self.copied = 0
        self.mounted = 0
        self.present = 0
        self.excluded = 0
        self.retried = 0
        self.manifests_pushed = 0
        #: Bytes of the blobs whose copy finished.
        self.bytes_copied = 0
        self.bytes_mounted = 0
        self.bytes_present = 0
        #: Bytes that crossed the wire, restarts included: never goes backwards (speed).
        self.bytes_wire = 0
        #: Top-level images by source, in the order they were started.
        self.images: dict[str, ImageLine] = {}
        #: Blob transfers in flight by digest: (bytes done, size).
        self.inflight: dict[str, tuple[int, int]] = {}

    def update(self, event: ev.Event) -> None:
        """Account for one event."""
        with self._lock:
            if isinstance(event, ev.BlobProgress):
                before = self.inflight.get(event.digest, (0, event.size))[0]
                self.inflight[event.digest] = (event.done, event.size)
                self.bytes_wire += max(0, event.done - before)
            elif isinstance(event, ev.BlobStarted):
                # A restart (after `Retrying`) begins again from zero.
                self.inflight[event.digest] = (0, event.size)
            elif isinstance(event, ev.BlobDone):
                self._blob_done(event)
            elif isinstance(event, ev.ManifestPushed):
                self.manifests_pushed += 1
            elif isinstance(event, ev.ImageStarted):
                status: ImageStatus = "copying" if self.planned else "planning"
                self.images[event.source] = ImageLine(
                    source=event.source, destination=event.destination, status=status
                )
            elif isinstance(event, ev.Planned):
                self._planned(event)
            elif isinstance(event, ev.ImageDone):
                self.images_done += 1
                self.images_present += event.how == "present"
                self._finish(event.source, event.destination,
                             "present" if event.how == "present" else "done")
            elif isinstance(event, ev.ImageFailed):
                self.images_failed += 1
                self._finish(event.source, "", "failed", error=event.error)
            elif isinstance(event, ev.Retrying):
                self.retried += 1

    def _blob_done(self, event: ev.BlobDone) -> None:
        if event.how == "copied":
            done = self.inflight.pop(event.digest, (0, event.size))[0]
            self.bytes_wire += max(0, event.size - done)
            self.copied += 1
            self.bytes_copied += event.size
        elif event.how == "mounted":
            self.inflight.pop(event.digest, None)
            self.mounted += 1
            self.bytes_mounted += event.size
        elif event.how == "present":
            self.present += 1
            self.bytes_present += event.size
        else:
            self.excluded += 1

    def _planned(self, event: ev.Planned) -> None:
        self.planned = True
        self.started = self._clock()
        self.images_total = event.images
        self.bytes_total = event.bytes_to_move
        for source, line in self.images.items():
            if line.status == "planning":
                self.images[source] = replace(line, status="copying")

    def _finish(self, source: str, destination: str, status: ImageStatus, *,
                error: str = "") -> None:
        line = self.images.get(source)
        finished = self.images_done + self.images_failed
        if line is None:
            line = ImageLine(source=source, destination=destination, status=status)
        self.images[source] = replace(
            line, destination=destination or line.destination, status=status, error=error,
            finished=finished,
        )

    @property
    def bytes_done(self) -> int:
        """Bytes transferred so far (a restarted transfer counts from zero again)."""
        return self.bytes_copied + sum(done for done, _ in self.inflight.values())

    @property
    def bytes_settled(self) -> int:
        """Bytes of the plan taken care of: transferred or mounted (at most the total)."""
        return min(self.bytes_total, self.bytes_done + self.bytes_mounted)

    @property
    def elapsed(self) -> float:
        """Seconds since the transfer started (since creation until the plan is known)."""
        return max(0.0, self._clock() - self.started)

    @property
    def speed(self) -> float:
        """Average bytes per second over the wire since the transfer started."""
        elapsed = self.elapsed
        return self.bytes_wire / elapsed if elapsed > 0 else 0.0

    def snapshot(self) -> Snapshot:
        """A consistent copy of everything a display shows (safe from any thread)."""
        with self._lock:
            return Snapshot(
                planned=self.planned,
                images_total=self.images_total,
                images_done=self.images_done,
                images_failed=self.images_failed,
                bytes_total=self.bytes_total,
                bytes_done=self.bytes_done,
                bytes_settled=self.bytes_settled,
                bytes_wire=self.bytes_wire,
                copied=self.copied,
                mounted=self.mounted,
                present=self.present,
                retried=self.retried,
                elapsed=self.elapsed,
                images=tuple(self.images.values()),
                blobs=tuple(
                    BlobLine(digest=digest, done=done, size=size)
                    for digest, (done, size) in self.inflight.items()
                ),
            )


class PlainProgress:
    """
    A `ProgressSink` writing plain lines to a stream.

    Args:
        stream: Where lines go (stderr).
        prefix: The command's prefix, as kbld prints it (`relocate`, `package`...).
        quiet: Print nothing but warnings.
        clock: Monotonic seconds (for the speed in progress lines).
    """

    def __init__(
        self, stream: TextIO, prefix: str, *, quiet: bool = False, clock: Clock = time.monotonic
    ) -> None:
        self._stream = stream
        self._prefix = prefix
        self._quiet = quiet
        self.state = ProgressState(clock=clock)

    def line(self, text: str) -> None:
        """Write one line with the command prefix."""
        if not self._quiet:
            self._write(text)

    def _write(self, text: str) -> None:
        self._stream.write(f"{self._prefix} | {text}\n")
        self._stream.flush()

    def emit(self, event: ev.Event) -> None:
        """Record an event; print the ones worth a line."""
        self.state.update(event)
        if isinstance(event, ev.Planned):
            self.line(describe_planned(event))
        elif isinstance(event, ev.ImageDone):
            verb = "present" if event.how == "present" else "done"
            if self._prefix == "package":
                # A tarball keeps the name: "X -> X" would only repeat it.
                self.line(f"{verb}: {event.source}")
            else:
                self.line(f"{verb}: {event.source} -> {event.destination}")
        elif isinstance(event, ev.Retrying):
            self.line(f"retrying {event.what} (attempt {event.attempt}): {event.error}")
        elif isinstance(event, ev.PullsLow):
            self._write(f"warning: {describe_registry(event)}")
        elif isinstance(event, ev.RegistryRetrying | ev.RegistryRecovered):
            self.line(describe_registry(event))
        elif isinstance(event, ev.Notice):
            self._write(f"warning: {event.message}")

    def status(self) -> str:
        """The periodic progress line: `612/1024 MB (60%) 14/24 images 203 MB/s`."""
        s = self.state
        text = fraction(s.bytes_settled, s.bytes_total)
        if s.bytes_total:
            text += f" ({100 * s.bytes_settled // s.bytes_total}%)"
        text += f" {s.images_done}/{s.images_total} images"
        if s.images_failed:
            text += f" ({s.images_failed} failed)"
        if s.elapsed > 0:
            text += f" {megabytes(int(s.speed))}/s"
        return text

    async def tick(self) -> None:
        """Print a progress line every `TICK_SECONDS` until cancelled."""
        while True:
            await anyio.sleep(TICK_SECONDS)
            if self.state.planned:
                self.line(self.status())


def describe_registry(event: ev.RegistryRetrying | ev.RegistryRecovered | ev.PullsLow) -> str:
    """The line telling what happened to a registry host (every display prints it)."""
    if isinstance(event, ev.RegistryRetrying):
        return f"registry {event.host}: requests failing, retrying: {event.error}"
    if isinstance(event, ev.RegistryRecovered):
        return (f"registry {event.host}: recovered after {event.retries} "
                f"{'retry' if event.retries == 1 else 'retries'} in {event.seconds:.1f}s")
    window = f" (window {window_text(event.window)})" if event.window else ""
    return (f"registry {event.host}: only {event.remaining} of {event.limit} pulls left"
            f"{window}; one request at a time from now on")


def registry_costs(host: HostState, *, pulls: bool = True) -> str:
    """
    What a registry cost the run, naming only what happened: `40 requests, 3 retries,
    2 rate-limited, concurrency down to 4 of 8, 76 of 100 pulls left (window 6 h)`; an
    adaptive limit that moved says `concurrency 8 to 20 (peak 24, adaptive 1-16)`.
    """
    parts = [f"{host.requests} requests", f"{host.retries} retries"]
    if host.throttled:
        parts.append(f"{host.throttled} rate-limited")
    limiter, figures = host.limiter, host.concurrency
    if figures.adaptive and figures.peak > figures.initial:
        parts.append(
            f"concurrency {figures.initial} to {figures.final} (peak {figures.peak}, "
            f"adaptive {figures.minimum}-{figures.maximum})"
        )
    elif limiter.lowest < limiter.initial:
        parts.append(f"concurrency down to {limiter.lowest} of {limiter.initial}")
    if pulls and host.pulls is not None:
        parts.append(host.pulls.describe())
    return ", ".join(parts)


def nothing_done(report: Report, state: ProgressState) -> bool:
    """
    Whether a finished run changed nothing: every image was already present, with its
    tags (a tag pushed counts as a change), and nothing failed.
    """
    return (
        bool(report.images)
        and not report.failures
        and all(image.how == "present" for image in report.images)
        and not (report.blobs_copied or report.blobs_mounted or report.manifests_pushed)
        and not state.manifests_pushed
    )


def describe_planned(event: ev.Planned) -> str:
    """The log line of a finished plan (every display prints it)."""
    if event.images and event.images == event.images_present and not event.bytes_to_move:
        return f"all {event.images} images already present; checking their tags"
    return (
        f"planned {event.images} images ({event.images_present} already present), "
        f"{event.blobs} blobs ({event.blobs_present} present), "
        f"{megabytes(event.bytes_to_move)} to move"
    )
