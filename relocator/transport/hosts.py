"""
Per-registry state shared by every request to that registry.

Rate limits are per registry (often per account), so the concurrency limit, the backoff
after a 429, the retry counters and the pull allowance live here, one `HostState` per
host, and every request to the host consults the same one.

The transport prints nothing: what a display should tell about a host (its requests
started failing, it recovered, its pull allowance runs low) goes as `HostNews` to the
listeners registered with `Hosts.listen`.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import anyio

from relocator.errors import PullLimitReached
from relocator.transport.gradient import ConcurrencyFigures, GradientPolicy, Outcome, Sample
from relocator.transport.limits import HostLimits
from relocator.transport.ratelimit import PullAllowance, RateLimiter, window_text
from relocator.transport.retry import RetryPolicy

# Which hosts the current task already holds a slot for. A blob copy holds its source
# and destination slots for the whole transfer; the requests it makes inside must not
# queue for a second slot of the same host (that could deadlock).
_held: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("relocator_held_slots")

#: After this many successful requests in a row, a host whose limit was halved by a 429
#: gets one more slot back: recovery is slow on purpose so a rate limit is not hit again
#: at once.
GROW_AFTER_SUCCESSES = 20


class AdaptiveLimiter:
    """
    A host's concurrency limit: pinned, it halves on rate limiting and grows back
    slowly; adaptive, its `GradientPolicy` moves it.

    Tokens are plain objects, given back by whoever holds them (a stream of a large
    blob takes a spare one and gives it back when its part is done).
    """

    def __init__(
        self, limit: int, *, minimum: int = 1, maximum: int | None = None,
        pinned: bool = True,
    ) -> None:
        #: Slots at the start, and the most the limit may grow to (lowered by `cap`):
        #: a pinned limit only grows back to where it started after a 429.
        self.initial = limit
        self.minimum = minimum if not pinned else 1
        self.maximum = limit if pinned or maximum is None else max(limit, maximum)
        #: What moves an adaptive limit (a pinned one's policy never moves).
        self.policy = GradientPolicy(
            limit, minimum=self.minimum, maximum=self.maximum, pinned=pinned
        )
        self._limiter = anyio.CapacityLimiter(limit)
        self._successes = 0
        #: Lowest and highest limit reached, for the run summary.
        self.lowest = limit
        self.highest = limit

    @property
    def pinned(self) -> bool:
        """Whether the limit stays where it started (but for 429s and pull allowances)."""
        return self.policy.pinned

    @property
    def limit(self) -> int:
        """The current number of slots."""
        return int(self._limiter.total_tokens)

    @property
    def in_use(self) -> int:
        """Slots held right now."""
        return int(self._limiter.borrowed_tokens)

    async def acquire(self) -> object:
        """Wait for a slot; return the token to give back to `release`."""
        token = object()
        await self._limiter.acquire_on_behalf_of(token)
        return token

    def try_acquire(self) -> object | None:
        """
        A slot if one is free and nobody is queueing for it, else None; never waits.
        For work that only uses spare capacity (extra streams of one large blob).
        """
        token = object()
        try:
            self._limiter.acquire_on_behalf_of_nowait(token)
        except anyio.WouldBlock:
            return None
        return token

    def release(self, token: object) -> None:
        """Give a slot back."""
        self._limiter.release_on_behalf_of(token)

    def resize(self, limit: int) -> None:
        """
        Allow `limit` slots from now on (at least one, at most `maximum`). Slots held
        beyond a lowered limit are kept until released; nobody new gets one until the
        count is below the limit. The one way the limit changes, whatever decides it.
        """
        new = min(self.maximum, max(1, limit))
        self._limiter.total_tokens = new
        self.lowest = min(self.lowest, new)
        self.highest = max(self.highest, new)

    def cap(self, ceiling: int) -> None:
        """Never allow more than `ceiling` slots from now on (nor grow back above it)."""
        self.maximum = min(self.maximum, max(1, ceiling))
        self.resize(min(self.limit, self.maximum))

    def throttle(self) -> None:
        """Halve the limit (never below one) after the host said "too many requests"."""
        self._successes = 0
        if self.pinned:
            self.resize(self.limit // 2)
        else:
            self.sample(Sample(
                latency=0.0, nbytes=0, outcome=Outcome.OVERLOADED, at=time.monotonic()
            ))

    def sample(self, sample: Sample) -> None:
        """Feed one finished request to the policy; an adaptive limit follows it."""
        if not self.pinned:
            self.resize(self.policy.feed(sample))

    def moved(self, nbytes: int) -> None:
        """Count bytes of a streamed body just moved; an adaptive limit's throughput."""
        if not self.pinned:
            limit = self.policy.moved(nbytes, time.monotonic())
            # Called for every piece of every body: resize (which wakes waiters) only
            # when the window's end moved the limit.
            if limit != self.limit:
                self.resize(limit)

    def succeeded(self) -> None:
        """Count a success; every `GROW_AFTER_SUCCESSES` of them give one slot back."""
        if self.limit >= self.maximum or not self.pinned:
            return
        self._successes += 1
        if self._successes >= GROW_AFTER_SUCCESSES:
            self._successes = 0
            self.resize(self.limit + 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class HostRetrying:
    """Requests to a host started failing and are being retried (once per episode)."""

    host: str
    #: The failure that started the episode, one line.
    error: str
    #: Seconds until the first retry.
    delay: float


@dataclass(frozen=True, slots=True, kw_only=True)
class HostRecovered:
    """A host that was being retried answered again."""

    host: str
    #: Retries the episode cost, and how long it lasted.
    retries: int
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PullsLow:
    """A host's pull allowance runs low: from now on it gets one request at a time."""

    host: str
    remaining: int
    limit: int
    #: The allowance's window in seconds (None: not stated).
    window: int | None


#: What a display may want to say about a host.
HostNews = HostRetrying | HostRecovered | PullsLow
Listener = Callable[[HostNews], None]


@dataclass(slots=True)
class HostState:
    """Everything shared by the requests to one registry host."""

    host: str
    limiter: AdaptiveLimiter
    #: Monotonic time before which no request may start (a shared `Retry-After`).
    not_before: float = 0.0
    retries: int = 0
    throttled: int = 0
    requests: int = 0
    #: What the host last said of its pull allowance (None: it says nothing).
    pulls: PullAllowance | None = None
    #: Whether the allowance ran low (the host is down to one request at a time).
    pulls_low: bool = False
    #: Monotonic time the current run of failures began (None: the host is healthy),
    #: and the retries it has cost so far.
    troubled_since: float | None = None
    troubled_retries: int = 0
    #: Where `HostNews` goes.
    notify: Listener = field(default=lambda news: None, repr=False)

    @property
    def concurrency(self) -> ConcurrencyFigures:
        """Where the host's concurrency limit started, went and ended, for a summary."""
        limiter = self.limiter
        return ConcurrencyFigures(
            initial=limiter.initial, lowest=limiter.lowest, peak=limiter.highest,
            final=limiter.limit, minimum=limiter.minimum, maximum=limiter.maximum,
            adaptive=not limiter.pinned,
        )

    def retrying(self, error: str, delay: float) -> None:
        """Count a retry; the first of an episode is news."""
        self.retries += 1
        if self.troubled_since is None:
            self.troubled_since = time.monotonic()
            self.troubled_retries = 0
            self.notify(HostRetrying(host=self.host, error=error, delay=delay))
        self.troubled_retries += 1

    def answered(self, sent_at: float, nbytes: int = 0, *, uploaded: bool = False) -> None:
        """
        A request sent at monotonic `sent_at` got its answer, having sent `nbytes` bytes
        of body; the answer of an `uploaded` body waited for all of it.
        Only a request sent after the trouble began proves recovery: one already on its
        way may have been answered by a host that failed a moment later.
        """
        self.limiter.succeeded()
        now = time.monotonic()
        self.limiter.sample(Sample(
            latency=None if uploaded else now - sent_at, nbytes=nbytes, outcome=Outcome.OK,
            at=now,
        ))
        since = self.troubled_since
        if since is not None and sent_at >= since:
            self.troubled_since = None
            self.notify(HostRecovered(
                host=self.host, retries=self.troubled_retries,
                seconds=time.monotonic() - since,
            ))

    def throughput(self) -> Callable[[int], None] | None:
        """
        What to tell of each piece of a streamed body, or None when the limit is
        pinned: nothing then, and a pinned run pays no call per piece.
        """
        return None if self.limiter.pinned else self.limiter.moved

    def delivered(self, nbytes: int) -> None:
        """
        A response body was read to its end just now: `nbytes` of it not yet counted
        with `moved` (0 for a streamed body, counted piece by piece).
        """
        self.limiter.sample(
            Sample(latency=None, nbytes=nbytes, outcome=Outcome.OK, at=time.monotonic())
        )

    def observe(self, pulls: PullAllowance | None) -> None:
        """
        Record the pull allowance a response stated. When it runs low the host gets one
        request at a time for the rest of the run, so the rest lasts as long as it can
        and no burst runs into the limit; that is news once.
        """
        if pulls is None:
            return
        self.pulls = pulls
        if pulls.low and not self.pulls_low:
            self.pulls_low = True
            self.limiter.cap(1)
            self.notify(PullsLow(
                host=self.host, remaining=pulls.remaining, limit=pulls.limit,
                window=pulls.window,
            ))

    @property
    def pulls_exhausted(self) -> bool:
        """Whether the host said no pulls are left."""
        return self.pulls is not None and self.pulls.remaining <= 0

    def pulls_exhausted_error(self, what: str) -> PullLimitReached:
        """The error that stops `what`, a pull the host has no allowance left for."""
        pulls = self.pulls
        window = window_text(pulls.window if pulls is not None else None)
        limit = pulls.limit if pulls is not None else 0
        return PullLimitReached(
            f"{what}: {self.host} pull limit reached (0 of {limit} pulls left in its "
            f"{window} window); stopped instead of sending more pulls",
            host=self.host,
            status=429,
            hint=f"run again when the {window} window has made room, or log in to an "
            "account with a higher limit",
        )

    async def wait_turn(self) -> None:
        """Sleep until the host's shared backoff has passed."""
        delay = self.not_before - time.monotonic()
        if delay > 0:
            await anyio.sleep(delay)

    def overloaded(self) -> None:
        """The host answered 503 or the connection broke: an adaptive limit backs off."""
        self.limiter.sample(
            Sample(latency=0.0, nbytes=0, outcome=Outcome.RESET, at=time.monotonic())
        )

    def back_off(self, seconds: float) -> None:
        """Make every request to this host wait `seconds` from now."""
        self.not_before = max(self.not_before, time.monotonic() + seconds)


class Hosts:
    """
    The `HostState` of every host of a run, created on first use, and the request rate
    limits of the hosts that have one.
    """

    def __init__(
        self,
        limits: HostLimits | None = None,
        *,
        per_host_rps: Mapping[str, float] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        #: Where each host's limit starts, and the limits derived from it.
        self.limits = limits or HostLimits()
        #: How requests to these hosts, and transfers between them, are retried.
        self.retry = retry or RetryPolicy()
        self._states: dict[str, HostState] = {}
        self._rates = {host: RateLimiter(rps) for host, rps in (per_host_rps or {}).items()}
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """Send every `HostNews` of the run to `listener` too (called on the event loop)."""
        self._listeners.append(listener)

    def _notify(self, news: HostNews) -> None:
        for listener in self._listeners:
            listener(news)

    def rate(self, host: str) -> RateLimiter | None:
        """The requests-per-second limit of `host`, if it has one."""
        return self._rates.get(host)

    async def pace(self, host: str) -> None:
        """Wait until `host`'s requests-per-second limit lets one more request start."""
        limiter = self._rates.get(host)
        if limiter is not None:
            await limiter.acquire()

    def __getitem__(self, host: str) -> HostState:
        state = self._states.get(host)
        if state is None:
            limits = self.limits
            limiter = AdaptiveLimiter(
                limits.of(host), minimum=limits.minimum, maximum=limits.maximum,
                pinned=limits.pinned_for(host),
            )
            state = self._states[host] = HostState(host, limiter, notify=self._notify)
        return state

    def states(self) -> list[HostState]:
        """Every host seen so far, in first-use order."""
        return list(self._states.values())

    def try_acquire(self, host: str) -> object | None:
        """A spare slot of `host` if one is free, else None (see `AdaptiveLimiter`)."""
        return self[host].limiter.try_acquire()

    def release(self, host: str, token: object) -> None:
        """Give back a slot `try_acquire` returned."""
        self[host].limiter.release(token)

    def held(self, host: str) -> bool:
        """Whether the current task already holds a slot of `host`."""
        return host in _held.get(frozenset())

    @asynccontextmanager
    async def hold(self, hosts: Iterable[str]) -> AsyncIterator[None]:
        """
        Hold one slot of each host in `hosts` for the duration of the block; requests
        made inside reuse them instead of queueing.

        A host listed twice (a copy within one registry) still gets one slot: a task
        that waited for a second slot of a host while holding one could wait forever
        (always, with a limit of one; with more, once as many copies each hold one).
        The slot stands for the transfer, whose two requests share it. Slots are taken
        in sorted host order so that a copy from A to B and one from B to A can never
        each hold one and wait for the other.
        """
        wanted = frozenset(hosts)
        held = _held.get(frozenset())
        async with AsyncExitStack() as stack:
            for host in sorted(wanted - held):
                limiter = self[host].limiter
                token = await limiter.acquire()
                stack.callback(limiter.release, token)
            reset = _held.set(held | wanted)
            try:
                yield
            finally:
                # Left from another context than the one that entered (a stream first
                # read by the HTTP library's upload task, closed by its owner): that
                # context never saw our change, so there is nothing to undo.
                with contextlib.suppress(ValueError):
                    _held.reset(reset)
