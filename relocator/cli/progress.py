"""
Progress as a live display on a terminal (rich).

The engine's events only update counters (`ProgressState`); rich's refresh thread
redraws from a snapshot of them a few times a second. No rich call happens per chunk,
so however many blobs are in flight the bars cost the copy nothing measurable.

What is drawn, top to bottom: one overall bar (bytes of the plan taken care of, speed,
time left), a line of counters, a bounded window of image lines (the running ones and
the latest finished, then a count of the rest) and the largest blobs in flight with
their own bars. After the run, `closingtable.summary_table` renders the closing table.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from relocator.api import events as ev
from relocator.api.display import HostState, Report, megabytes

from .closingtable import summary_table
from .plain import (
    Clock,
    ImageLine,
    ImageStatus,
    ProgressState,
    Snapshot,
    describe_planned,
    describe_registry,
    fraction,
)

# Redraws per second: rich's own default is 10; 5 (one every 200 ms) keeps the byte
# counters visibly moving and the terminal writes few.
REFRESH_PER_SECOND = 5.0
#: Blob bars shown at most (the largest in flight); the rest are counted.
MAX_BLOBS = 5
#: Image lines shown at most; the rest are counted.
MAX_IMAGES = 8
#: Lines of the display that are not image lines (bars, counters, blob lines, footers):
#: on a short terminal the image window shrinks so the whole display stays visible.
_OTHER_LINES = MAX_BLOBS + 6
# Seconds of history behind the speed shown: long enough to smooth out blobs starting
# and finishing, short enough to follow a registry that slows down.
SPEED_WINDOW = 5.0
#: Width of every bar, in cells.
BAR_WIDTH = 40
#: Below this many columns the display folds: shorter counters, image names cut from
#: the left (their repository and digest stay readable), registries listed one per line
#: instead of in a table whose columns would be cut to a few letters.
NARROW = 80

_STYLES: dict[ImageStatus, str] = {
    "planning": "dim",
    "copying": "yellow",
    "done": "green",
    "present": "cyan",
    "failed": "bold red",
}
_SYMBOLS: dict[ImageStatus, str] = {
    "planning": "…",
    "copying": "→",
    "done": "✓",
    "present": "=",
    "failed": "✗",
}


def short_digest(digest: str) -> str:
    """`sha256:` and the first 12 hex digits: enough to tell blobs apart on screen."""
    algorithm, _, hexa = digest.partition(":")
    return f"{algorithm}:{hexa[:12]}" if hexa else digest[:19]


def short_reference(reference: str) -> str:
    """A reference with its digest shortened (`repo@sha256:0123456789ab`)."""
    name, at, digest = reference.partition("@")
    return f"{name}@{short_digest(digest)}" if at else reference


def duration(seconds: float) -> str:
    """`0:42`, `12:03` or `1:02:03`."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


class SpeedMeter:
    """
    Bytes per second over the last `SPEED_WINDOW` seconds, from samples of a
    never-decreasing byte counter. Only `render` uses it, which rich runs under the
    display's lock (on its refresh thread, or when the display starts and stops).
    """

    def __init__(self, window: float = SPEED_WINDOW) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, now: float, total: int) -> float:
        """Record `total` bytes at `now`; return the recent speed (0 until two samples)."""
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
            self._samples.popleft()
        first_time, first_total = self._samples[0]
        span = now - first_time
        return (total - first_total) / span if span > 0 else 0.0


class RichProgress:
    """
    A `ProgressSink` drawing a live display on a terminal.

    Args:
        console: The stderr console.
        prefix: The command's prefix (`relocate`, `package`...).
        clock: Monotonic seconds (injectable so captures are repeatable).
        max_images: Image lines shown at most.
        max_blobs: Blob bars shown at most.
    """

    def __init__(
        self,
        console: Console,
        prefix: str,
        *,
        clock: Clock = time.monotonic,
        max_images: int = MAX_IMAGES,
        max_blobs: int = MAX_BLOBS,
    ) -> None:
        self.console = console
        self.prefix = prefix
        self.state = ProgressState(clock=clock)
        self._clock = clock
        self._max_images = max_images
        self._max_blobs = max_blobs
        self._speed = SpeedMeter()
        self._live: Live | None = None

    # -- the sink (event loop, hot path) ------------------------------------------------

    def emit(self, event: ev.Event) -> None:
        """Record an event; the rare ones worth a permanent line are printed above."""
        self.state.update(event)
        if isinstance(event, ev.Planned):
            self.line(describe_planned(event))
        elif isinstance(event, ev.Retrying):
            self.line(f"retrying {event.what} (attempt {event.attempt}): {event.error}",
                      style="yellow")
        elif isinstance(event, ev.PullsLow):
            self.line(f"warning: {describe_registry(event)}", style="yellow")
        elif isinstance(event, ev.RegistryRetrying):
            self.line(describe_registry(event), style="yellow")
        elif isinstance(event, ev.RegistryRecovered):
            self.line(describe_registry(event), style="green")
        elif isinstance(event, ev.Notice):
            self.line(f"warning: {event.message}", style="yellow")

    def line(self, text: str, *, style: str = "") -> None:
        """One permanent line, `<prefix> | <text>`, printed above the live display."""
        self.console.print(
            Text.assemble((f"{self.prefix} | ", "dim"), (text, style)),
            soft_wrap=True, highlight=False, markup=False,
        )

    # -- the live display ---------------------------------------------------------------

    def start(self) -> None:
        """Start redrawing (rich's refresh thread, `REFRESH_PER_SECOND`)."""
        if self._live is not None:
            return
        self._live = Live(
            console=self.console,
            get_renderable=self.render,
            refresh_per_second=REFRESH_PER_SECOND,
            # stdout carries the YAML: never captured into the display.
            redirect_stdout=False,
            redirect_stderr=True,
            transient=False,
        )
        self._live.start()

    def stop(self) -> None:
        """Draw the final state once more and stop redrawing."""
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def render(self) -> RenderableType:
        """The whole display from a snapshot of the counters (the refresh thread)."""
        snap = self.state.snapshot()
        speed = self._speed.sample(self._clock(), snap.bytes_wire)
        if snap.planned and snap.bytes_settled >= snap.bytes_total and not snap.blobs:
            # Finished: the average of the run, as the summary reports it.
            speed = snap.bytes_done / snap.elapsed if snap.elapsed > 0 else 0.0
        parts: list[RenderableType] = [self._overall(snap, speed), self._counters(snap)]
        images = self._images(snap)
        if images is not None:
            parts.append(images)
        blobs = self._blobs(snap)
        if blobs is not None:
            parts.append(blobs)
        return Group(*parts)

    def _overall(self, snap: Snapshot, speed: float) -> Table:
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            Text(self.prefix, style="bold"),
            ProgressBar(
                total=snap.bytes_total if snap.planned else None,
                completed=snap.bytes_settled,
                width=BAR_WIDTH,
                pulse=not snap.planned,
            ),
            Text(self._percent(snap.bytes_settled, snap.bytes_total, snap.planned),
                 style="bold"),
            Text(fraction(snap.bytes_settled, snap.bytes_total)),
            Text(f"{megabytes(int(speed))}/s", style="green"),
            Text(self._eta(snap, speed), style="cyan"),
        )
        return grid

    @staticmethod
    def _percent(done: int, total: int, planned: bool) -> str:
        if not planned:
            return "planning"
        return f"{100 * done // total:3d}%" if total else "100%"

    @staticmethod
    def _eta(snap: Snapshot, speed: float) -> str:
        if not snap.planned:
            return ""
        remaining = snap.bytes_total - snap.bytes_settled
        if remaining <= 0:
            return f"in {duration(snap.elapsed)}"
        if speed <= 0:
            return "ETA -:--"
        return f"ETA {duration(remaining / speed)}"

    def _counters(self, snap: Snapshot) -> Text:
        text = Text("  ")
        text.append(f"{snap.images_done}/{snap.images_total} images", style="bold")
        if snap.images_failed:
            text.append(f" ({snap.images_failed} failed)", style="bold red")
        narrow = self.console.width < NARROW
        text.append(f" · {snap.present} {'present' if narrow else 'skipped (present)'}")
        text.append(f" · {snap.mounted} mounted")
        text.append(f" · {snap.copied} copied")
        text.append(f" · {snap.retried} retried", style="yellow" if snap.retried else "")
        return text

    def _image_limit(self) -> int:
        return max(1, min(self._max_images, self.console.size.height - _OTHER_LINES))

    def _images(self, snap: Snapshot) -> Table | None:
        shown, hidden_running, hidden_finished = window(snap.images, self._image_limit())
        if not shown:
            return None
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(width=1)
        grid.add_column(width=1)
        grid.add_column(width=8, no_wrap=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        # What the name column gets: the width less the symbol, status and padding.
        room = max(20, self.console.width - 14)
        for image in shown:
            style = _STYLES[image.status]
            name = Text(fit_reference(short_reference(image.source), room))
            if image.status == "failed" and image.error:
                name.append(f": {image.error}", style="red")
            grid.add_row("", Text(_SYMBOLS[image.status], style=style),
                         Text(image.status, style=style), name)
        if hidden_running or hidden_finished:
            more = []
            if hidden_running:
                more.append(f"{hidden_running} more in progress")
            if hidden_finished:
                more.append(f"{hidden_finished} more finished")
            grid.add_row("", "", "", Text("+ " + ", ".join(more), style="dim"))
        return grid

    def _blobs(self, snap: Snapshot) -> RenderableType | None:
        blobs = sorted(snap.blobs, key=lambda b: (-b.size, b.digest))
        if not blobs:
            return None
        grid = Table.grid(padding=(0, 1))
        for blob in blobs[: self._max_blobs]:
            grid.add_row(
                Text("  " + short_digest(blob.digest), style="dim"),
                ProgressBar(total=blob.size or 1, completed=blob.done, width=BAR_WIDTH - 11),
                Text(self._percent(blob.done, blob.size, True)),
                Text(fraction(blob.done, blob.size)),
            )
        if len(blobs) <= self._max_blobs:
            return grid
        more = len(blobs) - self._max_blobs
        return Group(grid, Text(f"  +{more} more blob{'s' if more > 1 else ''} in flight",
                                style="dim"))

    # -- the closing table --------------------------------------------------------------

    def summary(self, verb: str, report: Report, hosts: Sequence[HostState]) -> None:
        """Print the closing table (after `stop`)."""
        self.console.print(summary_table(
            self.prefix, verb, report, hosts, narrow=self.console.width < NARROW
        ))


def fit_reference(reference: str, width: int) -> str:
    """
    A (shortened) reference cut to `width` from the left of its name: the registry, the
    same for most images of a run, goes first; the repository's last part and the
    digest or tag, which tell images apart, stay.
    """
    if len(reference) <= width:
        return reference
    name, at, digest = reference.partition("@")
    suffix = at + digest
    if len(suffix) > width // 2:
        suffix = ""
    keep = max(1, width - len(suffix) - 1)
    return f"…{name[len(name) - keep:]}{suffix}"


def window(
    images: Sequence[ImageLine], limit: int
) -> tuple[list[ImageLine], int, int]:
    """
    The image lines to show when at most `limit` fit: all of them in start order if
    they fit, else the latest finished ones, then the unfinished ones in start order
    (at least half the window goes to those).

    Returns:
        The lines to show, how many unfinished and how many finished are left out.
    """
    if len(images) <= limit:
        return list(images), 0, 0
    running = [i for i in images if not i.finished]
    finished = sorted((i for i in images if i.finished), key=lambda i: i.finished)
    running_slots = min(len(running), max(limit - len(finished), (limit + 1) // 2))
    finished_slots = min(len(finished), limit - running_slots)
    shown = finished[len(finished) - finished_slots:] + running[:running_slots]
    return shown, len(running) - running_slots, len(finished) - finished_slots
