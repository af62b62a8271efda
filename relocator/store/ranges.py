"""
One large blob downloaded as several `Range` requests in parallel, read back in order.

A remote registry, or the CDN behind it, often caps what one TCP connection carries, so
a large layer fetched as one stream moves at that cap however fast the rest of the path
is, and at the end of a run the largest layer alone decides how long it takes. When the
source host has idle slots, helpers fetch the next segments of the blob while the head
streams on, and the reader takes the segments in order.

Three rules keep this from hurting anything else:

- Helpers only take *spare* slots of the source host, never queueing for one, and give
  the slot back after each segment: a blob waiting for its turn always goes first.
- Bytes fetched ahead of the reader come out of a `Budget` shared by every download of
  the run; a helper that cannot reserve its segment stops. Memory stays bounded by the
  budget whatever the number and size of blobs.
- Alone, the head asks for large ranges (`RangePolicy.head`), so a blob on a busy host
  costs one request per 64 MiB rather than one per segment.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from relocator.errors import IntegrityError, RelocatorError

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class RangePolicy:
    """When and how a blob is fetched in parallel ranges."""

    #: Bytes one helper fetches per request: a segment is held in memory until the
    #: reader gets to it, so this times the streams is the memory one blob may take.
    segment: int = 8 * MiB
    #: Bytes the head asks for at once while no helper is running.
    head: int = 64 * MiB
    #: Blobs smaller than this are one stream (a few segments gain nothing).
    minimum: int = 32 * MiB
    #: Streams of one blob at most, the head included.
    streams: int = 8
    #: Bytes a stream may read ahead of the reader without a reservation (the head).
    unreserved: int = 2 * MiB
    #: Seconds between two looks for a spare slot (slots free up as other blobs end).
    poll: float = 0.2

    def applies(self, size: int) -> bool:
        """Whether a blob of `size` bytes is worth splitting."""
        return self.streams > 1 and size >= max(self.minimum, 2 * self.segment)


class Budget:
    """Bytes that may wait in memory for their reader, shared by every ranged download."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        #: The most bytes ever reserved at once (tests assert the bound).
        self.peak = 0

    def try_take(self, size: int) -> bool:
        """Reserve `size` bytes if they are free; never waits."""
        if self.used + size > self.total:
            return False
        self.used += size
        self.peak = max(self.peak, self.used)
        return True

    def give(self, size: int) -> None:
        """Return bytes reserved earlier."""
        self.used -= size


class Span:
    """
    The bytes `[start, end)` of a blob, as asked for. A fetch that was answered with
    the whole blob instead (a server ignoring `Range` for a request from byte 0) widens
    `end` to the blob's size before yielding anything.
    """

    __slots__ = ("end", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end


#: Streams the bytes of a span (resuming a broken connection itself).
Fetch = Callable[[Span], AsyncGenerator[bytes, None]]
#: A spare slot of the source host, or None when there is none right now.
Spare = Callable[[], object | None]
#: Gives a spare slot back.
Release = Callable[[object], None]


class _Segment:
    """A claimed span: what its stream has delivered and the reader not yet taken."""

    __slots__ = (
        "buffered", "chunks", "done", "error", "reserved", "signal", "span", "waiting"
    )

    def __init__(self, span: Span, reserved: int) -> None:
        self.span = span
        self.reserved = reserved
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.done = False
        self.error: RelocatorError | None = None
        self.signal = anyio.Event()
        # Whether the reader or the stream waits on `signal`: at most one of them can
        # (the reader waits for an empty buffer, the stream for a full one), and a
        # wake-up nobody waits for is skipped, so chunks cost no event each.
        self.waiting = False

    def wake(self) -> None:
        if self.waiting:
            self.waiting = False
            self.signal.set()
            self.signal = anyio.Event()

    async def wait(self) -> None:
        self.waiting = True
        await self.signal.wait()


class RangedDownload:
    """
    Fetch one blob of `size` bytes in segments, by a head stream on the slot its copy
    already holds plus helpers on spare slots; `chunks()` yields the bytes in order.

    Use `reading()` for the duration of the read: it runs the streams and stops them.
    """

    def __init__(
        self,
        size: int,
        fetch: Fetch,
        *,
        policy: RangePolicy,
        budget: Budget,
        spare: Spare,
        release: Release,
    ) -> None:
        self.size = size
        self._fetch = fetch
        self._policy = policy
        self._budget = budget
        self._spare = spare
        self._release = release
        # Claimed segments the reader has not finished, in blob order.
        self._segments: deque[_Segment] = deque()
        self._frontier = 0  # first byte nobody has claimed
        self._helpers = 0
        self._changed = anyio.Event()
        # Set once the head's first answer shows the server honours ranges.
        self._ranged = anyio.Event()
        # A spare slot taken at the start, for the first helper.
        self._first: object | None = None
        #: Whether the server answered a ranged request with the whole blob.
        self.whole = False

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncIterator[bytes]]:
        """
        Run the streams while the block reads the chunks (`chunks()`); on leaving,
        stop them and return what unread segments reserved.
        """
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._head, name="blob head")
                tg.start_soon(self._recruit, tg, name="blob helpers")
                try:
                    async with aclosing(self.chunks()) as chunks:
                        yield chunks
                finally:
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The streams keep their failures for the reader, so what comes out of the
            # task group is the block's own error: raise it as itself, not wrapped.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            self._close()

    def _close(self) -> None:
        """Return what unread segments reserved (after the streams were cancelled)."""
        if self._first is not None:
            self._release(self._first)
            self._first = None
        while self._segments:
            segment = self._segments.popleft()
            if segment.reserved:
                self._budget.give(segment.reserved)
                segment.reserved = 0

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The blob's bytes in order; raises the first failure of the segment being read."""
        while self._segments or self._frontier < self.size:
            if not self._segments:
                await self._wait_change()
                continue
            segment = self._segments[0]
            while segment.chunks or not segment.done:
                if not segment.chunks:
                    if segment.error is not None:
                        raise segment.error
                    await segment.wait()
                    continue
                chunk = segment.chunks.popleft()
                segment.buffered -= len(chunk)
                segment.wake()  # a stream held back by `unreserved` may go on
                yield chunk
            if segment.error is not None:
                raise segment.error
            self._segments.popleft()
            if segment.reserved:
                self._budget.give(segment.reserved)
                segment.reserved = 0
            self._signal()

    # --- streams ----------------------------------------------------------------

    async def _head(self) -> None:
        """The stream on the copy's own slot: claims until the blob is fully claimed."""
        # With a slot spare right now, a helper can join as soon as the first answer
        # shows that ranges work, so the first range is one segment; otherwise a blob
        # smaller than `head` would never be split.
        self._first = self._spare()
        while True:
            segment = await self._claim_for_head()
            if segment is None:
                return
            await self._fill(segment)
            if segment.error is not None:
                return

    async def _helper(self, token: object | None) -> None:
        """A stream on a spare slot (counted in `_helpers` by whoever started it)."""
        try:
            while token is not None:
                segment = self._claim_reserved()
                if segment is None:
                    return
                try:
                    await self._fill(segment)
                finally:
                    self._release(token)
                    token = None
                if segment.error is not None:
                    return
                # Give the slot back between segments: whoever queues for it gets it.
                token = self._spare()
        finally:
            if token is not None:
                self._release(token)
            self._helpers -= 1
            self._signal()

    async def _recruit(self, tg: TaskGroup) -> None:
        """Start helpers whenever a spare slot and budget for a segment are free."""
        await self._ranged.wait()
        policy = self._policy
        first, self._first = self._first, None
        if first is not None:
            if self._frontier < self.size:
                self._helpers += 1
                tg.start_soon(self._helper, first, name="blob helper")
                await anyio.lowlevel.checkpoint()
            else:
                self._release(first)
        while self._frontier < self.size:
            while (
                self._helpers + 1 < policy.streams
                and self._frontier < self.size
                and self._budget.used + policy.segment <= self._budget.total
            ):
                token = self._spare()
                if token is None:
                    break
                self._helpers += 1
                tg.start_soon(self._helper, token, name="blob helper")
                # Let it claim before looking again.
                await anyio.lowlevel.checkpoint()
            await self._wait_change()

    # --- claims -----------------------------------------------------------------

    async def _claim_for_head(self) -> _Segment | None:
        policy = self._policy
        while self._frontier < self.size:
            if not self._segments:
                # Nothing ahead of the reader: stream straight to it, unreserved.
                helped = self._helpers or self._first is not None
                return self._claim(policy.segment if helped else policy.head, reserved=False)
            if not self._helpers:
                # Alone: let the reader catch up and ask for a large range then,
                # rather than hold a segment in memory for nothing.
                await self._wait_change()
                continue
            segment = self._claim_reserved()
            if segment is not None:
                return segment
            # Budget spent: it comes back as this reader or another blob's reads on.
            await self._wait_change()
        return None

    def _claim_reserved(self) -> _Segment | None:
        """The next segment with its bytes reserved, or None if the budget is spent."""
        if self._frontier >= self.size:
            return None
        length = min(self._policy.segment, self.size - self._frontier)
        if not self._budget.try_take(length):
            return None
        return self._claim(length, reserved=True)

    def _claim(self, length: int, *, reserved: bool) -> _Segment:
        end = min(self.size, self._frontier + length)
        segment = _Segment(Span(self._frontier, end), end - self._frontier if reserved else 0)
        self._frontier = end
        self._segments.append(segment)
        self._signal()
        return segment

    async def _fill(self, segment: _Segment) -> None:
        span = segment.span
        cap = self._policy.unreserved
        try:
            received = 0
            # Closed on every way out (a failure, the reader leaving, a cancellation),
            # so the fetch's connection and slot go back at once.
            async with aclosing(self._fetch(span)) as fetched:
                async for chunk in fetched:
                    if span.end > self._frontier:
                        # Answered with the whole blob: nothing is left to claim.
                        self._frontier = span.end
                        self.whole = True
                    elif span.start == 0 and not self._ranged.is_set():
                        self._ranged.set()
                    received += len(chunk)
                    if received > span.end - span.start:
                        raise IntegrityError(
                            f"range {span.start}-{span.end - 1} of the blob brought more bytes"
                        )
                    segment.chunks.append(chunk)
                    segment.buffered += len(chunk)
                    segment.wake()
                    while not segment.reserved and segment.buffered >= cap:
                        await segment.wait()
            if received != span.end - span.start:
                raise IntegrityError(
                    f"range {span.start}-{span.end - 1} of the blob ended after {received} bytes"
                )
        except RelocatorError as exc:
            segment.error = exc
            self._frontier = self.size  # claim nothing more: the reader will fail here
        finally:
            segment.done = True
            segment.wake()
            if span.start == 0 and not self._ranged.is_set():
                # Whole blob, or a failure: either way no helper is wanted.
                self._frontier = max(self._frontier, span.end)
                self._ranged.set()
            self._signal()

    # --- waiting ----------------------------------------------------------------

    def _signal(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _wait_change(self) -> None:
        """
        Wait for a claim, a finished segment or a read, for `RangePolicy.poll` seconds
        at most: budget and slots also come back from other blobs, which do not tell.
        """
        with anyio.move_on_after(self._policy.poll):
            await self._changed.wait()
