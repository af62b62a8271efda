"""The minimum-progress rule of response bodies (`relocator.transport.progress`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import anyio
import pytest

from relocator.errors import TransportError
from relocator.transport.progress import Progress, ProgressRule, headers_within

_RULE = ProgressRule(minimum=100, window=0.2)


def _source(size: int, delay: float) -> Callable[[], Awaitable[bytes]]:
    async def receive() -> bytes:
        await asyncio.sleep(delay)
        return b"x" * size

    return receive


async def test_a_trickle_is_cut_once_a_window_brings_too_little() -> None:
    """A byte every 20 ms never reaches 100 bytes in 0.2 s: a temporary error, worded."""
    watch = _RULE.watch("registry.test", "fetching blob")
    reads: list[bytes] = []

    with anyio.fail_after(5), pytest.raises(TransportError) as caught:
        await _read_forever(watch, reads)

    assert "fetching blob: registry.test sent less than 100 bytes in 0.2 s" == str(caught.value)
    assert caught.value.temporary
    assert len(reads) < 20


async def _read_forever(watch: Progress, into: list[bytes]) -> None:
    while True:
        into.append(await watch.read(_source(1, 0.02)))


async def test_enough_bytes_start_a_new_window() -> None:
    """60 bytes every 50 ms: each window reaches 100 bytes, so a long body goes on."""
    watch = _RULE.watch("registry.test", "fetching blob")

    received = [len(await watch.read(_source(60, 0.05))) for _ in range(20)]

    assert 20 * 60 == sum(received)


async def test_time_the_reader_spends_elsewhere_does_not_count() -> None:
    """
    A reader that is slow itself (an upload to a slow destination) waits 50 ms between
    reads the source answers at once: 10 bytes at a time never look like a trickle.
    """
    watch = _RULE.watch("registry.test", "fetching blob")
    received = 0
    for _ in range(20):
        received += len(await watch.read(_source(10, 0)))
        await asyncio.sleep(0.05)

    assert 200 == received


async def test_bytes_taken_without_a_wait_count_towards_the_window() -> None:
    """
    A body whose bytes mostly come already buffered (taken with `took`, no wait) and
    partly after 30 ms waits brings 100 bytes in every window: it goes on.
    """
    watch = _RULE.watch("registry.test", "fetching blob")
    received = 0
    for _ in range(20):
        received += len(await watch.read(_source(10, 0.03)))
        watch.took(90)
        received += 90

    assert 20 * 100 == received


async def test_headers_within_bounds_the_whole_block() -> None:
    """Headers not complete within the time are a temporary error naming the host."""
    with pytest.raises(TransportError) as caught:
        async with headers_within(0.1, "registry.test", "GET"):
            await asyncio.sleep(5)

    assert "GET: registry.test sent no complete response headers within 0.1 s" == str(
        caught.value
    )
    assert caught.value.temporary
