"""When to retry a request, and how long to wait first."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from relocator.errors import RelocatorError


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """
    Bounds and pacing of retries.

    The defaults retry 5 times after 0.2 s, 0.4 s, 0.8 s, 1.6 s, 3.2 s (+/-20 % jitter),
    which rides out a registry restart or a burst of resets; a `Retry-After` longer than
    that is honoured up to `max_retry_after`.
    """

    #: Retries after the first attempt.
    attempts: int = 5
    #: First backoff in seconds; doubles each time.
    initial: float = 0.2
    #: Longest backoff between two attempts, in seconds.
    max_delay: float = 30.0
    #: Fraction of random spread added to each backoff, so that many workers that failed
    #: together do not retry together.
    jitter: float = 0.2
    #: Longest `Retry-After` we wait, in seconds; Docker Hub asks for up to a minute.
    max_retry_after: float = 60.0
    #: Give up retrying one operation after this many seconds in total (10 minutes).
    budget: float = 600.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        base: float = min(self.max_delay, self.initial * 2.0 ** (attempt - 1))
        return base * (1 + self.jitter * random.random())  # noqa: S311 - jitter, not crypto

    def delay(self, attempt: int, error: RelocatorError) -> float:
        """Seconds to wait before retrying after `error`: its `Retry-After`, else backoff."""
        retry_after: float | None = getattr(error, "retry_after", None)
        if retry_after is not None:
            return min(max(retry_after, self.backoff(attempt)), self.max_retry_after)
        return self.backoff(attempt)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """
    Read a `Retry-After` header: seconds or an HTTP date.

    Returns:
        Seconds to wait (0 for dates in the past), or None when the header is absent or
        unreadable, in which case the caller falls back to its own backoff.
    """
    if value is None:
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() also takes '²', which float() refuses.
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)
