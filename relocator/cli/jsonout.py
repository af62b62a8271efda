"""
Machine-readable output: JSON lines of events, and the final report.

With `--json`, stderr carries one JSON object per line and nothing else: every engine
event (`{"type": "BlobDone", "digest": ..., "size": ..., "how": "copied", "elapsed": 1.25}`),
log lines as `{"type": "Log", "message": ...}`, and the final `{"type": "Report", ...}`
(described by `docs/report.schema.json`). Byte progress is thinned to one event per blob
per `PROGRESS_SECONDS`, so a log of a 10 GB mirror stays small. `--report FILE` writes
the same report to a file, whatever the display.

Lines are encoded when the event arrives but written in batches (`flush`) while a
transfer runs, so the engine's hot path never waits on the stream.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

import anyio

from relocator import __version__
from relocator.api import events as ev
from relocator.api.display import (
    HostState,
    ImageFailure,
    ImageResult,
    Reference,
    Report,
    write_atomically,
)
from relocator.errors import InputError, RelocatorError, tidy
from relocator.redaction import scrub

from .plain import Clock, ProgressState

#: Seconds between two byte-progress events of one blob in the JSON lines.
PROGRESS_SECONDS = 1.0
#: Seconds between two writes of buffered lines while a transfer runs.
FLUSH_SECONDS = 0.5
#: Version of the report's layout (`docs/report.schema.json`); bumped on any change
#: that is not a new optional field.
REPORT_VERSION = 1

#: How a run ended: every image done; some failed (`--keep-going`); stopped by an
#: error; stopped by Ctrl-C or SIGTERM.
Status = Literal["succeeded", "partial", "failed", "interrupted"]

JsonObject = dict[str, Any]


def event_object(event: ev.Event, elapsed: float) -> JsonObject:
    """An event as a JSON object: `type` (the event's class), its fields, `elapsed`."""
    document: JsonObject = {"type": type(event).__name__}
    for field in dataclasses.fields(event):
        document[field.name] = getattr(event, field.name)
    document["elapsed"] = round(elapsed, 3)
    return document


def dumps(document: Mapping[str, Any]) -> str:
    """One compact JSON line (no newline), non-ASCII kept readable."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


class JsonLines:
    """
    A `ProgressSink` writing JSON lines to a stream.

    Args:
        stream: Where lines go (stderr, or a file).
        quiet: Write only warnings (`Notice`) and the report.
        clock: Monotonic seconds (for `elapsed` and thinning).
    """

    def __init__(
        self, stream: TextIO, *, quiet: bool = False, clock: Clock = time.monotonic
    ) -> None:
        self._stream = stream
        self._quiet = quiet
        self._clock = clock
        self._origin = clock()
        self._pending: list[str] = []
        #: Last time a progress (or start) event of each blob was written.
        self._last: dict[str, float] = {}
        #: While True, lines wait for `flush` (a transfer is running).
        self.buffering = False
        self.state = ProgressState(clock=clock)

    def emit(self, event: ev.Event) -> None:
        """Record an event and queue its line (byte progress thinned)."""
        self.state.update(event)
        if self._quiet and not isinstance(event, ev.Notice):
            return
        now = self._clock()
        if isinstance(event, ev.BlobProgress):
            if now - self._last.get(event.digest, -PROGRESS_SECONDS) < PROGRESS_SECONDS:
                return
            self._last[event.digest] = now
        elif isinstance(event, ev.BlobStarted):
            self._last[event.digest] = now
        elif isinstance(event, ev.BlobDone):
            self._last.pop(event.digest, None)
        self._queue(event_object(event, now - self._origin))

    def line(self, message: str) -> None:
        """A log line as `{"type": "Log", "message": ...}`."""
        if not self._quiet:
            self._queue({"type": "Log", "message": message,
                         "elapsed": round(self._clock() - self._origin, 3)})

    def report(self, document: Mapping[str, Any]) -> None:
        """Write the final report line now (even when quiet)."""
        self._pending.append(dumps(document))
        self.flush()

    def _queue(self, document: JsonObject) -> None:
        self._pending.append(dumps(document))
        if not self.buffering:
            self.flush()

    def flush(self) -> None:
        """Write every queued line."""
        if self._pending:
            lines, self._pending = self._pending, []
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()


def report_document(
    command: str,
    report: Report,
    hosts: Sequence[HostState] = (),
    *,
    status: Status | None = None,
    error: str | None = None,
) -> JsonObject:
    """
    The final report as a JSON object (see `docs/report.schema.json`).

    Args:
        command: The command (`relocate`, `package`...).
        report: What the run did.
        hosts: Per-registry counters.
        status: How the run ended; by default `succeeded`, or `partial` with failures.
        error: Why the run stopped (status `failed` or `interrupted`).
    """
    if status is None:
        status = "partial" if report.failures else "succeeded"
    copied = sum(1 for image in report.images if image.how == "copied")
    return {
        "type": "Report",
        "version": REPORT_VERSION,
        "relocator": __version__,
        "command": command,
        "status": status,
        "error": error,
        "duration_seconds": round(report.seconds, 3),
        "images": [_image(image) for image in report.images],
        "failures": [
            {"source": str(failure.source), "error": failure.error}
            for failure in report.failures
        ],
        "totals": {
            "images": len(report.images) + len(report.failures),
            "images_copied": copied,
            "images_present": len(report.images) - copied,
            "images_failed": len(report.failures),
            "manifests_pushed": report.manifests_pushed,
            "manifests_present": report.manifests_present,
            "manifests_waiting": report.manifests_waiting,
            "blobs_copied": report.blobs_copied,
            "blobs_mounted": report.blobs_mounted,
            "blobs_present": report.blobs_present,
            "blobs_excluded": report.blobs_excluded,
            "bytes_copied": report.bytes_copied,
            "bytes_mounted": report.bytes_mounted,
            "bytes_present": report.bytes_present,
            # Request retries as counted per registry below, so the two always agree.
            "retries": sum(host.retries for host in hosts),
            "transfers_restarted": report.retries,
        },
        "registries": [_registry(host) for host in hosts],
    }


def _registry(host: HostState) -> JsonObject:
    document: JsonObject = {
        "host": host.host,
        "requests": host.requests,
        "retries": host.retries,
        "throttled": host.throttled,
        "concurrency": host.limiter.initial,
        "lowest_concurrency": host.limiter.lowest,
        "peak_concurrency": host.concurrency.peak,
        "final_concurrency": host.concurrency.final,
        "concurrency_bounds": [host.concurrency.minimum, host.concurrency.maximum],
        "adaptive_concurrency": host.concurrency.adaptive,
    }
    if host.pulls is not None:
        document["pulls"] = {
            "limit": host.pulls.limit,
            "remaining": host.pulls.remaining,
            "window_seconds": host.pulls.window,
        }
    return document


def _image(image: ImageResult) -> JsonObject:
    return {
        "source": str(image.source),
        "source_digest": str(image.source.digest) if image.source.digest else None,
        "destination": str(image.destination),
        "destination_digest": (
            str(image.destination.digest) if image.destination.digest else None
        ),
        "how": image.how,
    }


def report_from_state(state: ProgressState) -> Report:
    """
    A `Report` rebuilt from the events seen, for a run that stopped before the engine
    could return its own (the counters are those of the work that finished).
    """
    report = Report(
        manifests_pushed=state.manifests_pushed,
        blobs_copied=state.copied,
        blobs_mounted=state.mounted,
        blobs_present=state.present,
        blobs_excluded=state.excluded,
        bytes_copied=state.bytes_copied,
        bytes_mounted=state.bytes_mounted,
        bytes_present=state.bytes_present,
        retries=state.retried,
        seconds=state.elapsed if state.planned else 0.0,
    )
    for line in sorted(state.images.values(), key=lambda i: i.finished):
        if not line.finished:
            continue
        try:
            source = Reference.parse(line.source)
            if line.status == "failed":
                report.failures.append(ImageFailure(source=source, error=line.error))
            else:
                report.images.append(ImageResult(
                    source=source, destination=Reference.parse(line.destination),
                    how="present" if line.status == "present" else "copied",
                ))
        except RelocatorError:  # pragma: no cover - the engine's own references parse
            continue
    return report


def error_text(exc: BaseException) -> str:
    """One line naming what stopped the run."""
    if isinstance(exc, RelocatorError):
        return str(exc).replace("\n", " ")
    if isinstance(exc, KeyboardInterrupt | anyio.get_cancelled_exc_class()):
        # A cancellation is the consequence of Ctrl-C or SIGTERM; its text is noise.
        return "interrupted"
    text = str(exc)
    return tidy(f"{type(exc).__name__}: {text}") if text else type(exc).__name__


def write_report(path: str | os.PathLike[str], document: Mapping[str, Any]) -> None:
    """
    Write the report to `path` (indented JSON), atomically: a new file of a random name
    beside it, then a rename, so a CI job never reads half a report and nothing planted
    at a guessable name is written through.

    Raises:
        InputError: The file cannot be written, or something other than a regular file
            is at `path` (left as it is).
    """
    target = Path(path)
    # Failure messages may quote what a registry said, secrets included.
    text = scrub(json.dumps(document, indent=2, ensure_ascii=False)) + "\n"
    try:
        # 0644, the default of a new file: a report names images and hosts, never a
        # credential, and CI jobs of other users may read it.
        write_atomically(target, text.encode("utf-8"), mode=0o644)
    except OSError as exc:
        raise InputError(f"cannot write report {target}: {exc.strerror or exc}") from None
