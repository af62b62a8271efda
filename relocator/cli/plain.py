"""
Progress as plain lines: for CI logs and anything that is not a terminal.

One line per image finished, one progress line every few seconds, no escape codes, so
a log of a 500-image mirror stays readable and a 10 GB layer still shows it is alive.
"""

from __future__ import annotations

import time
from typing import TextIO

import anyio

from relocator.engine import events as ev

#: Seconds between two progress lines in a log.
TICK_SECONDS = 5.0


def megabytes(n: int) -> str:
    """`n` bytes as decimal megabytes, the unit of our progress lines."""
    return f"{n / 1_000_000:.0f} MB" if n >= 10_000_000 else f"{n / 1_000_000:.1f} MB"


class ProgressState:
    """Counters kept from engine events; shared by every progress display."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.images_total = 0
        self.images_done = 0
        self.bytes_total = 0
        self.blob_done: dict[str, int] = {}
        self.copied = 0
        self.mounted = 0
        self.present = 0
        self.retried = 0
        self.planned = False

    def update(self, event: ev.Event) -> None:
        """Account for one event."""
        if isinstance(event, ev.BlobProgress):
            self.blob_done[event.digest] = event.done
        elif isinstance(event, ev.Planned):
            self.planned = True
            self.images_total = event.images
            self.bytes_total = event.bytes_to_move
        elif isinstance(event, ev.BlobDone):
            if event.how == "copied":
                self.copied += 1
                self.blob_done[event.digest] = event.size
            elif event.how == "mounted":
                self.mounted += 1
            elif event.how == "present":
                self.present += 1
        elif isinstance(event, ev.ImageDone):
            self.images_done += 1
        elif isinstance(event, ev.Retrying):
            self.retried += 1

    @property
    def bytes_done(self) -> int:
        """Bytes transferred so far (restarted transfers count from zero again)."""
        return sum(self.blob_done.values())

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started


class PlainProgress:
    """
    A `ProgressSink` writing plain lines to a stream.

    Args:
        stream: Where lines go (stderr).
        prefix: The command's prefix, as kbld prints it (`relocate`, `package`...).
        quiet: Print nothing but warnings.
    """

    def __init__(self, stream: TextIO, prefix: str, *, quiet: bool = False) -> None:
        self._stream = stream
        self._prefix = prefix
        self._quiet = quiet
        self.state = ProgressState()

    def line(self, text: str) -> None:
        """Write one line with the command prefix."""
        if not self._quiet:
            self._stream.write(f"{self._prefix} | {text}\n")
            self._stream.flush()

    def emit(self, event: ev.Event) -> None:
        """Record an event; print the ones worth a line."""
        self.state.update(event)
        if isinstance(event, ev.Planned):
            self.line(
                f"planned {event.images} images ({event.images_present} already present), "
                f"{event.blobs} blobs ({event.blobs_present} present), "
                f"{megabytes(event.bytes_to_move)} to move"
            )
        elif isinstance(event, ev.ImageDone):
            verb = "present" if event.how == "present" else "done"
            self.line(f"{verb}: {event.source} -> {event.destination}")
        elif isinstance(event, ev.Retrying):
            self.line(f"retrying {event.what} (attempt {event.attempt}): {event.error}")
        elif isinstance(event, ev.Notice):
            self._stream.write(f"{self._prefix} | warning: {event.message}\n")

    def status(self) -> str:
        """The periodic progress line."""
        s = self.state
        text = f"{megabytes(s.bytes_done)}/{megabytes(s.bytes_total)}"
        if s.bytes_total:
            text += f" ({100 * s.bytes_done // s.bytes_total}%)"
        text += f" {s.images_done}/{s.images_total} images"
        if s.elapsed > 0:
            text += f" {megabytes(int(s.bytes_done / s.elapsed))}/s"
        return text

    async def tick(self) -> None:
        """Print a progress line every `TICK_SECONDS` until cancelled."""
        while True:
            await anyio.sleep(TICK_SECONDS)
            if self.state.planned:
                self.line(self.status())
