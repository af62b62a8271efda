"""
Timeouts a trickle cannot defeat.

aiohttp's read timeout starts again with every byte, so a server sending one byte a
second keeps a response alive forever. Two rules bound what a slow peer can cost:

- The status line and headers of a GET or HEAD (and of a token request) arrive within
  `TransportSettings.response_timeout` seconds, as a whole (`headers_within`).
- While we wait for a body, it brings at least `minimum` bytes in every `window`
  seconds of waiting, or ends (`Progress`). Only the time spent waiting for the peer
  counts: a reader that is slow itself (an upload to a slow destination) never makes
  its source look slow.

Both failures are temporary `TransportError`s: the request, the download (resumed with
`Range`) or the copy is retried, within the usual bounds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from relocator.errors import TransportError


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressRule:
    """The least a body must bring: `minimum` bytes in every `window` seconds of waiting."""

    minimum: int
    window: float

    def watch(self, host: str, what: str) -> Progress:
        """A fresh watch over one body from `host`."""
        return Progress(self, host=host, what=what)


class Progress:
    """
    Reads of one body, each bounded by what is left of the current window; a window
    restarts once it brought `minimum` bytes.
    """

    __slots__ = ("_count", "_host", "_rule", "_waited", "_what")

    def __init__(self, rule: ProgressRule, *, host: str, what: str) -> None:
        self._rule = rule
        self._host = host
        self._what = what
        self._count = 0
        self._waited = 0.0

    async def read(self, receive: Callable[[], Awaitable[bytes]]) -> bytes:
        """
        `await receive()`, within what is left of the window.

        Raises:
            TransportError: The window ran out before `minimum` bytes came (temporary).
        """
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._rule.window - self._waited) as deadline:
                data = await receive()
        except TimeoutError:
            # aiohttp's own read timeout is a TimeoutError too: only ours is "too slow".
            if deadline.expired():
                raise too_slow(self._host, self._what, self._rule) from None
            raise
        self._waited += time.monotonic() - started
        self.took(len(data))
        return data

    def took(self, count: int) -> None:
        """Count `count` bytes that came without a wait (already buffered)."""
        self._count += count
        if self._count >= self._rule.minimum:
            self._count = 0
            self._waited = 0.0


def too_slow(host: str, what: str, rule: ProgressRule) -> TransportError:
    """The error of a body slower than `rule`."""
    return TransportError(
        f"{what}: {host} sent less than {_size(rule.minimum)} in {rule.window:g} s",
        host=host,
        temporary=True,
    )


@asynccontextmanager
async def headers_within(seconds: float, host: str, what: str) -> AsyncIterator[None]:
    """
    Bound the block (sending a request without a streamed body and receiving its
    headers) to `seconds` in all.

    Raises:
        TransportError: The headers were not complete in time (temporary).
    """
    try:
        async with asyncio.timeout(seconds) as deadline:
            yield
    except TimeoutError:
        if deadline.expired():
            raise TransportError(
                f"{what}: {host} sent no complete response headers within {seconds:g} s",
                host=host,
                temporary=True,
            ) from None
        raise


def _size(count: int) -> str:
    if count >= 1024 and count % 1024 == 0:
        return f"{count // 1024} KiB"
    return f"{count} bytes"
