"""
When to retry, how often, and how long to wait first: one policy, and one count of
attempts per operation, shared by every retry loop inside it.

Three loops retry today's failures, nested: the transport retries a request
(`HttpClient.request`), the registry store resumes a broken download with `Range`,
and the engine restarts a whole blob transfer from a fresh source. Nested loops that
each counted their own attempts would multiply them (6 x 6 requests for a blob that
always fails). The rule instead:

- A blob transfer is one *operation* (`RetryPolicy.operation`). Every retry made
  inside it, at whatever level, spends one attempt of the same `Attempts`; once
  `RetryPolicy.attempts` are spent, or `RetryPolicy.budget` seconds have passed since
  its failures began, the failure goes up and no level above retries it again. A
  request outside any operation (a manifest, a check) is an operation of its own.
- A failure is retried at the innermost level that can replay it: the request, if
  its body can be sent again; else the download, resumed where it broke; else the
  whole transfer.
- Progress forgives: a download that broke after bringing `progress` bytes since the
  last failure starts its count afresh, so a long transfer over a flaky link is not
  failed by breaks it recovered from.

So one blob fails at most `1 + attempts` times in a row without progress, whichever
levels retried it: with the defaults, a blob whose GET always answers 503 is requested
6 times in all.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
    #: Give up retrying one operation this many seconds after its failures began
    #: (10 minutes).
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


    def current_attempts(self) -> Attempts:
        """
        The attempts of the operation under way in this task (see `operation`), or
        fresh ones for an operation of its own.
        """
        current = _operation.get()
        return current if current is not None else Attempts(self)

    @contextmanager
    def operation(self) -> Iterator[Attempts]:
        """
        Make the block one operation: every retry loop inside it (in this task and the
        tasks it starts) spends the attempts yielded. An operation inside another is
        part of it.
        """
        attempts = self.current_attempts()
        token = _operation.set(attempts)
        try:
            yield attempts
        finally:
            _operation.reset(token)


class Attempts:
    """The retries one operation has made, and the rule that stops them."""

    __slots__ = ("_failing_since", "policy", "spent")

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        #: Retries made since the operation began or last made progress.
        self.spent = 0
        self._failing_since: float | None = None

    def retry(self, error: RelocatorError) -> float:
        """
        Spend one attempt on `error`: the seconds to wait before trying again.

        Raises:
            RelocatorError: `error` itself, when it is not temporary, when the attempts
                are spent, or when the failures have lasted longer than the budget.
        """
        if not error.temporary:
            raise error
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        self.spent += 1
        if self.spent > self.policy.attempts or now - self._failing_since > self.policy.budget:
            raise error
        return self.policy.delay(self.spent, error)

    def progressed(self) -> None:
        """The operation moved forward since it last failed: its count starts afresh."""
        self.spent = 0
        self._failing_since = None


# The operation under way in the current task, if any.
_operation: ContextVar[Attempts | None] = ContextVar("relocator_operation", default=None)


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
