"""
Requests per second, per registry host.

Some registries limit how many requests an account may make per second rather than how
many may run at once (regclient's `reqPerSec` exists for them). `RateLimiter` spaces
request starts evenly: each caller reserves the next free slot, `1 / rate` seconds after
the previous one, and sleeps until it comes. Reserving happens before the first await,
so concurrent callers in one event loop never share a slot; a caller cancelled while it
waits gives its slot up to nobody (the limit errs on the slow side).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

#: Monotonic seconds.
Clock = Callable[[], float]
#: Sleeps the given seconds.
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """
    At most `rate` request starts per second, evenly spaced.

    Args:
        rate: Starts per second; above zero (0.5 is one start every two seconds).
        burst: Starts allowed back to back after a quiet spell (1: always spaced).
        clock: Monotonic seconds; injectable so tests need no real time.
        sleep: How to wait; injectable likewise.

    Raises:
        ValueError: `rate` is not above zero or `burst` is below one.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be above zero, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate = rate
        self.burst = burst
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        # The theoretical time of the next start (the generic cell rate algorithm): the
        # slot after the last one reserved, or now after a quiet spell.
        self._next = -float("inf")
        #: Starts granted, starts that had to wait, and the seconds waited in total.
        self.granted = 0
        self.waited = 0
        self.seconds_waited = 0.0

    def reserve(self) -> float:
        """
        Take the next slot without waiting.

        Returns:
            Seconds until the slot (0 if it is now).
        """
        now = self._clock()
        self.granted += 1
        slot = max(self._next, now)
        # Up to `burst` starts may lie ahead of the clock without waiting.
        allowed_at = slot - (self.burst - 1) * self._interval
        self._next = slot + self._interval
        return max(0.0, allowed_at - now)

    async def acquire(self) -> None:
        """Wait until this caller may start a request."""
        delay = self.reserve()
        if delay > 0:
            self.waited += 1
            self.seconds_waited += delay
            await self._sleep(delay)
