"""
Requests per second, per registry host.

Some registries limit how many requests an account may make per second rather than how
many may run at once (regclient's `reqPerSec` exists for them). `RateLimiter` spaces
request starts evenly: each caller reserves the next free slot, `1 / rate` seconds after
the previous one, and sleeps until it comes. Reserving happens before the first await,
so concurrent callers in one event loop never share a slot; a caller cancelled while it
waits gives its slot up to nobody (the limit errs on the slow side).

Pull allowances are the other kind of limit: Docker Hub counts manifest GETs per account
over a window of hours and says how many are left (`PullAllowance`); `hosts.HostState`
slows a host down when little is left and stops asking when nothing is.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

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


# Digits of a header count read at most: counts and windows below 2**63.
_MAX_DIGITS = 18
#: Below this share of its pull allowance left, a host gets one request at a time.
PULLS_LOW_FRACTION = 0.10


@dataclass(frozen=True, slots=True, kw_only=True)
class PullAllowance:
    """
    What a registry says is left of an account's pull allowance (Docker Hub's
    `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 76;w=21600` headers).
    """

    limit: int
    remaining: int
    #: Length of the window the allowance covers, in seconds (None: not given).
    window: int | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> PullAllowance | None:
        """The allowance the headers state, or None when they state none (or garble it)."""
        limit, window = _quota(headers.get("ratelimit-limit"))
        remaining, remaining_window = _quota(headers.get("ratelimit-remaining"))
        if limit is None or remaining is None:
            return None
        return cls(limit=limit, remaining=min(remaining, limit),
                   window=window if window is not None else remaining_window)

    @property
    def low(self) -> bool:
        """Whether at most `PULLS_LOW_FRACTION` of the allowance is left."""
        return self.remaining <= self.limit * PULLS_LOW_FRACTION

    def describe(self) -> str:
        """`76 of 100 pulls left (window 6 h)`."""
        text = f"{self.remaining} of {self.limit} pulls left"
        return f"{text} (window {window_text(self.window)})" if self.window else text


def window_text(seconds: int | None) -> str:
    """A window length for people: `6 h`, `15 min`, `30 s`."""
    if seconds is None:
        return "unknown"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _quota(value: str | None) -> tuple[int | None, int | None]:
    """`76;w=21600` -> (76, 21600); a bare `76` -> (76, None); garbage -> (None, None)."""
    if value is None:
        return None, None
    count, *params = (part.strip() for part in value.split(";"))
    if not _number(count):
        return None, None
    window = None
    for param in params:
        key, _, text = param.partition("=")
        if key.strip().lower() == "w" and _number(text.strip()):
            window = int(text.strip())
    return int(count), window


def _number(text: str) -> bool:
    """
    A count a registry may send: ASCII digits only (str.isdigit() also takes '²',
    which int() refuses), and few enough that int() reads them (18: below 2**63).
    """
    return 0 < len(text) <= _MAX_DIGITS and text.isascii() and text.isdigit()
