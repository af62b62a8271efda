"""Per-host state: adaptive concurrency limits, shared backoff and re-entrant slots."""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel
import pytest

from relocator.transport import Hosts
from relocator.transport.hosts import (
    GROW_AFTER_SUCCESSES,
    AdaptiveLimiter,
    HostNews,
    HostRecovered,
    HostRetrying,
    HostState,
    PullsLow,
)
from relocator.transport.limits import HostLimits
from relocator.transport.ratelimit import PullAllowance


def test_throttle_halves_the_limit_down_to_one() -> None:
    """Each rate limit halves the slots, never below one, and the lowest is remembered."""
    limiter = AdaptiveLimiter(8)

    limits = []
    for _ in range(5):
        limiter.throttle()
        limits.append(limiter.limit)

    assert [4, 2, 1, 1, 1] == limits
    assert 1 == limiter.lowest
    assert 8 == limiter.maximum


def test_limit_grows_back_one_slot_per_run_of_successes() -> None:
    """After a throttle, every GROW_AFTER_SUCCESSES successes give back one slot."""
    limiter = AdaptiveLimiter(8)
    limiter.throttle()

    for _ in range(GROW_AFTER_SUCCESSES - 1):
        limiter.succeeded()
    before = limiter.limit
    limiter.succeeded()

    assert (4, 5) == (before, limiter.limit)


def test_limit_never_grows_past_its_maximum() -> None:
    """Successes at full capacity change nothing."""
    limiter = AdaptiveLimiter(3)

    for _ in range(10 * GROW_AFTER_SUCCESSES):
        limiter.succeeded()

    assert 3 == limiter.limit


def test_a_throttle_restarts_the_count_of_successes() -> None:
    """Successes before a 429 do not count towards growing back after it."""
    limiter = AdaptiveLimiter(8)
    limiter.throttle()
    for _ in range(GROW_AFTER_SUCCESSES - 1):
        limiter.succeeded()

    limiter.throttle()
    limiter.succeeded()

    assert 2 == limiter.limit


async def test_acquire_and_release_count_slots_in_use() -> None:
    """Tokens are per acquisition, so one task may hold several slots."""
    limiter = AdaptiveLimiter(2)

    first = await limiter.acquire()
    second = await limiter.acquire()
    in_use = limiter.in_use
    limiter.release(first)
    limiter.release(second)

    assert (2, 0) == (in_use, limiter.in_use)


def test_hosts_use_per_host_limits_and_keep_one_state_per_host() -> None:
    """A host gets its own limit if configured, else the default; its state is reused."""
    hosts = Hosts(HostLimits(concurrency=8, per_host={"slow.example": 2}))

    slow = hosts["slow.example"]
    other = hosts["other.example"]

    assert (2, 8) == (slow.limiter.limit, other.limiter.limit)
    assert slow is hosts["slow.example"]
    assert ["slow.example", "other.example"] == [s.host for s in hosts.states()]


def test_back_off_keeps_the_later_deadline() -> None:
    """A shorter `Retry-After` never cuts a longer one another request already set."""
    state = Hosts(HostLimits(concurrency=1))["reg.example"]

    state.back_off(100.0)
    deadline = state.not_before
    state.back_off(1.0)

    assert deadline == state.not_before


async def test_wait_turn_returns_at_once_without_backoff() -> None:
    """A host nobody backed off from does not delay requests."""
    state = Hosts(HostLimits(concurrency=1))["reg.example"]

    with anyio.fail_after(5):
        await state.wait_turn()

    assert 0.0 == state.not_before


async def test_hold_is_reentrant_for_the_holding_task() -> None:
    """
    Requests made while a task holds a host's slot reuse it instead of queueing for
    another, so a copy inside one registry with a limit of one cannot deadlock.
    """
    hosts = Hosts(HostLimits(concurrency=1))

    with anyio.fail_after(5):
        async with hosts.hold(["reg.example"]):
            held_outer = hosts.held("reg.example")
            async with hosts.hold(["reg.example"]):
                in_use_inner = hosts["reg.example"].limiter.in_use

    assert (True, 1) == (held_outer, in_use_inner)
    assert 0 == hosts["reg.example"].limiter.in_use
    assert not hosts.held("reg.example")


async def test_hold_takes_one_slot_per_host_however_often_listed() -> None:
    """
    A copy within one registry (its host listed as source and destination) holds one
    of its slots, so with a limit of one it runs instead of waiting for a second.
    """
    hosts = Hosts(HostLimits(concurrency=1, pinned=True))

    with anyio.fail_after(5):
        async with hosts.hold(["a.example", "a.example", "b.example"]):
            in_use = (hosts["a.example"].limiter.in_use, hosts["b.example"].limiter.in_use)

    assert (1, 1) == in_use
    assert (0, 0) == (hosts["a.example"].limiter.in_use, hosts["b.example"].limiter.in_use)


async def test_copies_within_one_registry_do_not_wait_on_each_other() -> None:
    """
    As many copies within one registry as it has slots, started together, all finish:
    none holds a slot while it waits for another one that the others hold.
    """
    hosts = Hosts(HostLimits(concurrency=2, pinned=True))
    finished: list[int] = []

    async def copy(n: int) -> None:
        async with hosts.hold(["a.example", "a.example"]):
            await anyio.lowlevel.checkpoint()
            finished.append(n)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for n in range(4):
                tg.start_soon(copy, n)

    assert [0, 1, 2, 3] == sorted(finished)


async def test_hold_releases_slots_when_the_block_fails() -> None:
    """An exception inside the block gives every slot back."""
    hosts = Hosts(HostLimits(concurrency=2))

    with pytest.raises(RuntimeError):
        async with hosts.hold(["a.example", "b.example"]):
            raise RuntimeError("copy failed")

    assert (0, 0) == (hosts["a.example"].limiter.in_use, hosts["b.example"].limiter.in_use)


async def test_hold_queues_other_tasks_at_the_limit() -> None:
    """A second task waits for the slot the first holds; it does not share it."""
    hosts = Hosts(HostLimits(concurrency=1))
    order: list[str] = []
    first_holds = anyio.Event()
    release_first = anyio.Event()

    async def first() -> None:
        async with hosts.hold(["reg.example"]):
            order.append("first in")
            first_holds.set()
            await release_first.wait()
            order.append("first out")

    async def second() -> None:
        await first_holds.wait()
        async with hosts.hold(["reg.example"]):
            order.append("second in")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            tg.start_soon(second)
            await first_holds.wait()
            # Let the second task run up to its queueing point before releasing.
            for _ in range(10):
                await anyio.lowlevel.checkpoint()
            release_first.set()

    assert ["first in", "first out", "second in"] == order


# -- news for the displays, and pull allowances --------------------------------------------


def _state(limit: int = 8) -> tuple[HostState, list[HostNews]]:
    news: list[HostNews] = []
    hosts = Hosts(HostLimits(concurrency=limit))
    hosts.listen(news.append)
    return hosts["registry.example"], news


def test_an_outage_is_news_twice_when_it_starts_and_when_it_ends() -> None:
    """
    The first retry of an episode is news, later ones only count; the first answer to a
    request sent after the trouble began ends it, with the retries it cost.
    """
    state, news = _state()
    state.retrying("registry.example answered HTTP 503", 0.2)
    state.retrying("registry.example answered HTTP 503", 0.4)
    state.retrying("registry.example answered HTTP 503", 0.8)
    state.answered(time.monotonic())

    assert [HostRetrying, HostRecovered] == [type(n) for n in news]
    recovered = news[1]
    assert isinstance(recovered, HostRecovered)
    assert (3, 3) == (state.retries, recovered.retries)
    assert state.troubled_since is None


def test_an_answer_to_a_request_sent_before_the_trouble_is_no_recovery() -> None:
    """A request already on its way when the host failed proves nothing about it now."""
    state, news = _state()
    sent_before = time.monotonic()
    state.retrying("registry.example: connection reset", 0.2)

    state.answered(sent_before - 1.0)

    assert [HostRetrying] == [type(n) for n in news]
    assert state.troubled_since is not None


def test_a_low_pull_allowance_caps_the_host_at_one_slot_and_is_news_once() -> None:
    """
    At or below 10 % of the allowance left, the host gets one request at a time for the
    rest of the run (it does not grow back), and that is said once.
    """
    state, news = _state()
    state.observe(PullAllowance(limit=100, remaining=50, window=21600))
    assert (8, []) == (state.limiter.limit, news)

    state.observe(PullAllowance(limit=100, remaining=10, window=21600))
    state.observe(PullAllowance(limit=100, remaining=9, window=21600))
    for _ in range(3 * GROW_AFTER_SUCCESSES):
        state.limiter.succeeded()

    assert [PullsLow(host="registry.example", remaining=10, limit=100, window=21600)] == news
    assert (1, 1, 8) == (state.limiter.limit, state.limiter.lowest, state.limiter.initial)
    assert 9 == (state.pulls.remaining if state.pulls else None)
    assert not state.pulls_exhausted


def test_no_pull_left_is_exhausted() -> None:
    """A stated remaining of 0 marks the host exhausted; no statement leaves it as it was."""
    state, _ = _state()
    state.observe(PullAllowance(limit=100, remaining=0, window=21600))
    state.observe(None)

    assert state.pulls_exhausted
