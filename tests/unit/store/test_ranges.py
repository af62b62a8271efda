"""
`RangedDownload`: a blob fetched as parallel ranges comes back whole and in order, with
no more streams than spare slots, no more bytes ahead of the reader than the budget,
and failures surfacing where the reader meets them.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel
import pytest

from relocator.errors import IntegrityError, TransportError
from relocator.store.ranges import Budget, RangedDownload, RangePolicy, Span

KiB = 1024
# Small sizes so every path runs in milliseconds: 64 KiB segments, 256 KiB head ranges.
POLICY = RangePolicy(segment=64 * KiB, head=256 * KiB, minimum=128 * KiB, streams=4,
                     unreserved=32 * KiB, poll=0.005)
PIECE = 16 * KiB


def blob(size: int) -> bytes:
    # Random, so that bytes out of place or out of order cannot go unnoticed.
    return os.urandom(size)


@dataclass
class Server:
    """Serves ranges of `data` in pieces, recording what it was asked and how busy it got."""

    data: bytes
    ignore_ranges: bool = False
    #: Called with each span before serving it; may raise to fail that request.
    fault: Callable[[Span], None] | None = None
    #: Bytes to add after the span's end (a server sending more than asked).
    extra: bytes = b""
    spans: list[tuple[int, int]] = field(default_factory=list)
    active: int = 0
    peak: int = 0

    async def fetch(self, span: Span) -> AsyncGenerator[bytes, None]:
        self.spans.append((span.start, span.end))
        if self.fault is not None:
            self.fault(span)
        if self.ignore_ranges and span.start == 0:
            span.end = len(self.data)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            body = self.data[span.start : span.end] + self.extra
            for at in range(0, len(body), PIECE):
                await anyio.lowlevel.checkpoint()
                yield body[at : at + PIECE]
        finally:
            self.active -= 1


class Slots:
    """A host's spare slots: `free` of them, counting the most ever taken at once."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.taken = 0
        self.peak = 0

    def spare(self) -> object | None:
        if self.taken >= self.free:
            return None
        self.taken += 1
        self.peak = max(self.peak, self.taken)
        return object()

    def release(self, token: object) -> None:
        self.taken -= 1


async def download(
    server: Server,
    *,
    slots: Slots,
    budget: Budget | None = None,
    policy: RangePolicy = POLICY,
    reader_delay: float = 0.0,
) -> tuple[bytes, RangedDownload, Budget]:
    budget = budget or Budget(256 * KiB)
    ranged = RangedDownload(
        len(server.data), server.fetch, policy=policy, budget=budget,
        spare=slots.spare, release=slots.release,
    )
    out = bytearray()
    async with ranged.reading() as chunks:
        async for chunk in chunks:
            out += chunk
            if reader_delay:
                await anyio.sleep(reader_delay)
    return bytes(out), ranged, budget


@pytest.mark.parametrize("size", [128 * KiB, 1024 * KiB + 1, 3 * 1024 * KiB - 5])
async def test_spare_slots_fetch_segments_in_parallel_and_the_reader_gets_the_blob(
    size: int,
) -> None:
    server = Server(blob(size))
    slots = Slots(free=3)

    out, _, budget = await download(server, slots=slots)

    assert server.data == out
    assert server.peak > 1, "more than one range was in flight"
    assert slots.peak <= 3
    assert 0 == slots.taken, "spare slots were all given back"
    assert 0 == budget.used
    # The spans tile the blob exactly: no byte asked for twice, none left out.
    spans = sorted(server.spans)
    assert 0 == spans[0][0]
    assert size == spans[-1][1]
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(spans))


async def test_without_spare_slots_the_head_asks_for_large_ranges_alone() -> None:
    size = 1000 * KiB
    server = Server(blob(size))

    out, _, _ = await download(server, slots=Slots(free=0))

    assert server.data == out
    assert 1 == server.peak
    assert [(0, 256 * KiB), (256 * KiB, 512 * KiB), (512 * KiB, 768 * KiB),
            (768 * KiB, size)] == server.spans


async def test_bytes_fetched_ahead_of_a_slow_reader_never_exceed_the_budget() -> None:
    server = Server(blob(2048 * KiB))
    budget = Budget(128 * KiB)  # two segments

    out, _, _ = await download(server, slots=Slots(free=3), budget=budget, reader_delay=0.0005)

    assert server.data == out
    assert 0 < budget.peak <= 128 * KiB
    assert 0 == budget.used


async def test_a_budget_spent_elsewhere_leaves_the_blob_to_its_head() -> None:
    server = Server(blob(1024 * KiB))
    budget = Budget(128 * KiB)
    assert budget.try_take(128 * KiB)  # another download holds it all

    out, _, _ = await download(server, slots=Slots(free=3), budget=budget)

    assert server.data == out
    assert 1 == server.peak
    assert 128 * KiB == budget.used


async def test_a_server_ignoring_ranges_sends_the_whole_blob_once() -> None:
    server = Server(blob(1024 * KiB), ignore_ranges=True)
    slots = Slots(free=3)

    out, ranged, _ = await download(server, slots=slots)

    assert server.data == out
    assert ranged.whole
    assert [(0, 64 * KiB)] == server.spans, "one request, for the first segment"
    assert 0 == slots.taken


async def test_a_failed_segment_fails_the_reader_where_it_gets_there_and_frees_everything() -> (
    None
):
    size = 1024 * KiB

    def fail_third_segment(span: Span) -> None:
        if span.start == 2 * 64 * KiB:
            raise TransportError("connection reset", host="src", temporary=True)

    server = Server(blob(size), fault=fail_third_segment)
    slots = Slots(free=3)
    received = bytearray()
    budget = Budget(256 * KiB)
    ranged = RangedDownload(size, server.fetch, policy=POLICY, budget=budget,
                            spare=slots.spare, release=slots.release)

    async def read() -> None:
        async with ranged.reading() as chunks:
            async for chunk in chunks:
                received.extend(chunk)

    with pytest.raises(TransportError, match="connection reset"):
        await read()

    assert server.data[: 2 * 64 * KiB] == bytes(received)
    assert 0 == budget.used
    assert 0 == slots.taken


async def test_a_range_answered_with_more_bytes_than_asked_is_refused() -> None:
    server = Server(blob(1024 * KiB), extra=b"x")

    with pytest.raises(IntegrityError, match="more bytes"):
        await download(server, slots=Slots(free=3))


def test_small_blobs_are_one_stream() -> None:
    assert not POLICY.applies(127 * KiB)
    assert POLICY.applies(128 * KiB)
    assert not RangePolicy(streams=1).applies(10**12)
