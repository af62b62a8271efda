"""
How a host's concurrency limit follows what the host delivers.

A pure policy, fed one `Sample` per finished request, answering the limit to use from
now on. It is a small gradient limiter in the spirit of TCP Vegas and Netflix's
Gradient2: the samples are grouped in windows; at the end of each window

- the window's latency (its median) is compared with the lowest window latency seen
  lately: when it has risen beyond `LATENCY_TOLERANCE` times that and by more than
  `LATENCY_SLACK`, requests are queueing at the host, and the limit shrinks in
  proportion (at most halving), though not below where it started: latency alone is
  a soft signal (on a busy machine a loopback registry's latency triples without any
  queue), so only the host's own refusals take the limit below its start;
- otherwise the window's throughput (bytes per second) is compared with the previous
  window's. Like TCP's slow start, the limit first doubles every window while that
  brings more throughput; after the first window that does not (or the first sign of
  queueing) it moves one slot at a time: while one more slot brought more throughput
  it grows by one more; when it brought none the step is undone (a plateau) and the
  limit holds, probing one step up again every `PROBE_EVERY` windows in case the link
  got faster.

Only requests whose answer does not wait for a body being sent give a latency: an
upload's answer comes after its whole body, so its time says how big the blob was, not
whether the host is queueing. Every request's bytes count towards throughput; a
streamed body's count piece by piece as they move (`moved`), not when it ends: counted
at its end, a 100 MB blob lands in one window as a burst no link delivered, and the
windows' throughputs swung tenfold on the WAN benchmark. A window that moved less than
`MIN_WINDOW_BYTES` (existence checks, manifests) is judged by its latency alone.

After the limit changes, the next window is not judged: the new slots are still being
taken up (on a far registry each new stream costs a connection and a round trip), so
that window shows neither limit's throughput. Judged anyway, a doubling from 8 to 16
that sped a WAN copy up by a third looked like no gain and was undone.

A refusal that means "too much" (429, 503) or a connection reset halves the limit at
once, without waiting for the window's end, at most once per window so that the
answers to one burst do not halve it over and over. The limit never leaves its bounds,
and a pinned policy (`--concurrency N`) never moves.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections import deque
from dataclasses import dataclass

#: Latency may rise this much over the lowest seen before it counts as queueing.
LATENCY_TOLERANCE = 1.5
#: ... and must have risen by this many seconds at least: a registry on a busy machine
#: answers 10-40 ms later while it receives uploads without queueing any request.
LATENCY_SLACK = 0.05
#: A window that moved fewer bytes (existence checks, manifests) says nothing of how
#: many streams the link carries: it neither ends slow start nor marks a plateau.
MIN_WINDOW_BYTES = 1 << 20
#: In slow start, a doubled limit must bring this much more throughput to double again.
SLOW_START_GAIN = 0.25
#: One more slot must bring at least this share of one slot's throughput to count as
#: growth (a link that scales perfectly brings a whole slot's).
THROUGHPUT_GAIN = 0.5
#: Samples in a window at least (a window also holds at least one per slot).
WINDOW_SAMPLES = 8
#: ... and seconds at least: on loopback 16 answers take 0.1 s, and windows that short
#: swung from 450 to 830 MB/s at one limit, noise that any one-slot step is lost in.
MIN_WINDOW_SECONDS = 0.25
#: Streamed bytes that close a window of that age whatever its answers: eight large
#: blobs on a far registry answer once in seconds, and a window waiting for eight
#: answers kept a link that wanted 16 streams at 8 for the first two seconds.
WINDOW_BYTES = 8 << 20
#: Windows whose latency makes up the long-window minimum (older ones are forgotten,
#: so that a route that got slower for good does not shrink the limit forever).
LONG_WINDOWS = 30
#: Windows held at a plateau before probing one slot up again.
PROBE_EVERY = 8


class Outcome(enum.Enum):
    """How a request ended, as far as the limit cares."""

    #: Answered (whatever the status, unless one of the below).
    OK = "ok"
    #: The host said it has too much to do: 429 or 503.
    OVERLOADED = "overloaded"
    #: The connection was reset or timed out.
    RESET = "reset"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One finished request."""

    #: Seconds from sending the request to its answer's headers (None: the answer
    #: waited for a body being sent, so the time says nothing of queueing).
    latency: float | None
    #: Bytes the request moved (0: none worth counting).
    nbytes: int
    outcome: Outcome
    #: Monotonic time the request finished.
    at: float


class _Step(enum.Enum):
    GREW = "grew"
    HELD = "held"
    SHRANK = "shrank"


class GradientPolicy:
    """A host's concurrency limit, moved by the samples it is fed (see the module)."""

    def __init__(self, start: int, *, minimum: int, maximum: int, pinned: bool) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.pinned = pinned
        self.limit = min(maximum, max(minimum, start))
        #: Where the limit started: rising latency alone never shrinks it below.
        self.start = self.limit
        #: Highest limit reached, for the run summary.
        self.peak = self.limit
        self._window: list[Sample] = []
        # Bytes of streamed bodies moved in this window (`moved`).
        self._streamed = 0
        # Whether the current window began as the limit changed (it is not judged).
        # The first window that moves bytes is start-up (connections being opened, the
        # first round trips): judged, any doubling after it looked like a gain.
        self._settling = True
        # Throughput is measured from the end of the previous window (from the first
        # request's start, for the first window) so that time spent waiting counts.
        self._window_start: float | None = None
        self._latencies: deque[float] = deque(maxlen=LONG_WINDOWS)
        self._last_throughput: float | None = None
        # The first window has nothing to compare with: grow, as if the last step had.
        self._last_step = _Step.GREW
        self._held_windows = 0
        self._dropped_this_window = False
        self._slow_start = True
        # The most bytes per second one slot delivered in slow start.
        self._best_per_slot = 0.0

    def moved(self, nbytes: int, at: float) -> int:
        """
        Count `nbytes` of a streamed body (either way) moved at monotonic `at`; the
        limit to use from now on.
        """
        if self.pinned:
            return self.limit
        if self._window_start is None:
            self._window_start = at
        self._streamed += nbytes
        if self._streamed >= WINDOW_BYTES and at - self._window_start >= MIN_WINDOW_SECONDS:
            self._close_window(at)
        return self.limit

    def feed(self, sample: Sample) -> int:
        """Take one finished request into account; the limit to use from now on."""
        if self.pinned:
            return self.limit
        if sample.outcome is not Outcome.OK:
            if not self._dropped_this_window:
                self._dropped_this_window = True
                self._set(self.limit // 2)
                self._last_step, self._slow_start = _Step.SHRANK, False
            return self.limit
        if self._window_start is None:
            self._window_start = sample.at - (sample.latency or 0.0)
        self._window.append(sample)
        if (
            len(self._window) >= max(WINDOW_SAMPLES, self.limit)
            and sample.at - self._window_start >= MIN_WINDOW_SECONDS
        ):
            self._close_window(sample.at)
        return self.limit

    def _close_window(self, now: float) -> None:
        window, start = self._window, self._window_start or 0.0
        moved = sum(s.nbytes for s in window) + self._streamed
        self._window, self._window_start, self._streamed = [], now, 0
        self._dropped_this_window = False
        if self._settling:
            # Only a window that moved bytes shows the new limit at work.
            self._settling = moved < MIN_WINDOW_BYTES
            return
        throughput = moved / max(now - start, 1e-9)
        queueing = self._queueing(window)
        if moved < MIN_WINDOW_BYTES and not queueing:
            return
        previous, self._last_throughput = self._last_throughput, throughput
        if self._slow_start:
            self._best_per_slot = max(self._best_per_slot, throughput / self.limit)
            if not queueing and (previous is None or throughput > previous * (1 + SLOW_START_GAIN)):
                self._set(self.limit * 2)
                self._last_step = _Step.GREW
                return
            # Doubling brought little, or requests began to queue: the link's limit is
            # near. Keep the slots this throughput needs at the best rate one slot
            # delivered so far, and from now on move one slot at a time.
            self._slow_start = False
            needed = self.limit
            if self._best_per_slot > 0:
                needed = math.ceil(throughput / self._best_per_slot)
            self._set(min(self.limit, max(self.start, needed)))
            self._last_step, self._held_windows = _Step.HELD, 0
            return
        if queueing:
            # Shrink by how far latency rose, at most by half, not below the start.
            floor, latency = min(self._latencies), self._latencies[-1]
            shrunk = int(self.limit * max(0.5, LATENCY_TOLERANCE * floor / latency))
            self._set(min(self.limit, max(self.start, shrunk)))
            self._last_step = _Step.SHRANK
            return
        grew = previous is None or throughput > previous * (1 + THROUGHPUT_GAIN / self.limit)
        if self._last_step is _Step.GREW and not grew:
            # The last slot brought nothing: a plateau. Give it back and hold.
            self._set(self.limit - 1)
            self._last_step, self._held_windows = _Step.HELD, 0
            return
        self._held_windows += 1
        if grew or self._held_windows >= PROBE_EVERY:
            self._set(self.limit + 1)
            self._last_step, self._held_windows = _Step.GREW, 0
        else:
            self._last_step = _Step.HELD

    def _queueing(self, window: list[Sample]) -> bool:
        """Whether the window's latency rose enough over the lowest seen lately."""
        latencies = [s.latency for s in window if s.latency is not None]
        if not latencies:
            return False
        latency = statistics.median(latencies)
        self._latencies.append(latency)
        floor = min(self._latencies)
        return latency > LATENCY_TOLERANCE * floor and latency - floor > LATENCY_SLACK

    def _set(self, limit: int) -> None:
        new = min(self.maximum, max(self.minimum, limit))
        # The window under way straddles the change: the one after it is judged.
        self._settling = self._settling or new != self.limit
        self.limit = new
        self.peak = max(self.peak, self.limit)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConcurrencyFigures:
    """A host's concurrency limit over the run: its bounds and the values it took."""

    initial: int
    lowest: int
    peak: int
    final: int
    #: Bounds an adaptive limit moves within (a pinned one: 1 and where it started).
    minimum: int
    maximum: int
    #: Whether the limit followed what the host delivered (no number was said).
    adaptive: bool
