"""A host's adaptive concurrency limit follows what the host delivers, within bounds."""

from __future__ import annotations

import random

import pytest

from relocator.transport import hosts
from relocator.transport.gradient import GradientPolicy, Outcome, Sample
from relocator.transport.hosts import Hosts, HostState
from relocator.transport.limits import HostLimits

_CHUNK = 1024 * 1024


def _policy(start: int = 8, *, pinned: bool = False) -> GradientPolicy:
    return GradientPolicy(start, minimum=1, maximum=64, pinned=pinned)


def _drive(
    policy: GradientPolicy, *, capacity: int, queueing: bool, rounds: int = 200,
    base: float = 0.25,
) -> list[int]:
    """
    Run `rounds` rounds of `policy.limit` requests in flight over a synthetic link that
    carries `capacity` streams at full speed each; beyond that the streams share it.
    With `queueing` the excess shows as waiting before the answer (latency rises);
    without, only the body slows down (the answer comes as fast, throughput is flat).
    Returns the limit after each round.
    """
    now, limits = 0.0, []
    for _ in range(rounds):
        streams = policy.limit
        stretch = max(1.0, streams / capacity)
        duration = base * stretch
        latency = duration if queueing else base
        # The streams overlap: their answers come spread over the round.
        for n in range(streams):
            at = now + duration * (n + 1) / streams
            policy.feed(Sample(latency=latency, nbytes=_CHUNK, outcome=Outcome.OK, at=at))
        now += duration
        limits.append(policy.limit)
    return limits


def test_grows_while_more_streams_make_the_link_faster() -> None:
    """
    On a link that carries 40 streams at full speed each, the limit doubles from 8 while
    that pays (slow start; each doubling judged a window after it was made), then
    settles at the streams the link carries.
    """
    limits = _drive(_policy(8), capacity=40, queueing=False)

    assert [8, 16, 16, 32] == limits[:4]
    assert 39 <= limits[-1] <= 41


@pytest.mark.parametrize("queueing", [False, True], ids=["flat-latency", "queueing"])
def test_stops_growing_at_a_plateau(queueing: bool) -> None:
    """
    Past the link's 12 streams more slots bring no throughput: the limit settles within
    the last doubling that paid (probing one above now and then) instead of climbing
    to its maximum of 64 (the doubling to 32 that brought nothing is given back).
    """
    limits = _drive(_policy(8), capacity=12, queueing=queueing)

    settled = limits[len(limits) // 2:]
    assert (True, True) == (max(settled) <= 18, min(settled) >= 12)


@pytest.mark.parametrize("outcome", [Outcome.OVERLOADED, Outcome.RESET], ids=["429-503", "reset"])
def test_halves_on_overload_or_reset(outcome: Outcome) -> None:
    """A 429/503 or a reset halves the limit at once; more of the same window do not."""
    policy = _policy(16)
    sample = Sample(latency=0.0, nbytes=0, outcome=outcome, at=1.0)

    first = policy.feed(sample)
    second = policy.feed(sample)

    assert (8, 8) == (first, second)


def test_backs_off_when_latency_rises() -> None:
    """
    Latency rising to three times its floor at an unchanged rate shrinks a limit that
    had grown, though not below where it started.
    """
    policy = _policy(8)
    grown = _drive(policy, capacity=40, queueing=False, rounds=20)[-1]
    now = 1e3
    for _ in range(20):
        for _ in range(policy.limit):
            now += 0.75 / policy.limit
            policy.feed(Sample(latency=0.75, nbytes=_CHUNK, outcome=Outcome.OK, at=now))

    assert (True, 8) == (grown > 16, policy.limit)


def test_windows_that_move_nothing_do_not_end_slow_start() -> None:
    """
    Windows of bodiless answers (existence checks before any blob moves) neither end
    slow start nor hold the limit: the first windows that move bytes still double it.
    """
    policy = _policy(8)
    for n in range(64):
        # Before `_drive`'s clock starts at 0.
        policy.feed(Sample(latency=0.01, nbytes=0, outcome=Outcome.OK, at=(n - 64) / 100))
    idle = policy.limit

    limits = _drive(policy, capacity=40, queueing=False, rounds=4)

    assert (8, [8, 16, 16, 32]) == (idle, limits)


def test_latency_alone_does_not_shrink_the_limit_below_its_start() -> None:
    """Latency tripling at the starting limit leaves it there (only refusals go below)."""
    policy = _policy(8)
    now = 0.0
    for latency in [0.05] * 64 + [0.15] * 64:
        now += latency
        policy.feed(Sample(latency=latency, nbytes=_CHUNK, outcome=Outcome.OK, at=now))

    assert 8 == policy.limit


def test_an_uploads_time_is_not_latency() -> None:
    """
    Answers that waited for a big body (latency None) never count as queueing, however
    long they took: a grown limit stays.
    """
    policy = _policy(8)
    grown = _drive(policy, capacity=40, queueing=False, rounds=20)[-1]
    now = 1e3
    for _ in range(40 * policy.limit):
        now += 0.01
        policy.feed(Sample(latency=None, nbytes=_CHUNK, outcome=Outcome.OK, at=now))

    assert grown <= policy.limit


def test_never_leaves_its_bounds() -> None:
    """Whatever the samples, the limit stays within its minimum and maximum."""
    rng = random.Random(15)  # noqa: S311 - repeatable synthetic samples, not secrets
    policy = GradientPolicy(4, minimum=2, maximum=10, pinned=False)
    seen, now = set(), 0.0
    for _ in range(5000):
        now += rng.uniform(0.0, 0.2)
        outcome = rng.choice([Outcome.OK] * 8 + [Outcome.OVERLOADED, Outcome.RESET])
        seen.add(policy.feed(Sample(
            latency=rng.uniform(0.001, 2.0), nbytes=rng.randrange(10**7),
            outcome=outcome, at=now,
        )))
    grown = _drive(GradientPolicy(4, minimum=2, maximum=10, pinned=False),
                   capacity=1000, queueing=False)

    assert (2, 10) == (min(seen | set(grown)), max(seen | set(grown)))


def test_a_pinned_limit_does_not_move() -> None:
    """`--concurrency N`: neither a faster link nor a 429 moves the policy's limit."""
    policy = _policy(8, pinned=True)
    limits = _drive(policy, capacity=40, queueing=False)
    policy.feed(Sample(latency=0.0, nbytes=0, outcome=Outcome.RESET, at=1e6))

    assert ({8}, 8) == (set(limits), policy.limit)


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    """The clock `relocator.transport.hosts` reads, moved by the test."""
    fake = _Clock()
    monkeypatch.setattr(hosts, "time", fake)
    return fake


def _answers(state: HostState, clock: _Clock, *, nbytes: int = _CHUNK, windows: int = 2) -> None:
    """`windows` windows of 8 answers of `nbytes` each, 0.05 s apart."""
    for _ in range(8 * windows):
        clock.now += 0.05
        state.answered(clock.now - 0.01, nbytes)


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        pytest.param(HostLimits(), (16, 16), id="adaptive"),
        pytest.param(HostLimits(pinned=True), (8, 8), id="pinned"),
    ],
)
def test_a_hosts_answers_feed_its_limit(
    clock: _Clock, limits: HostLimits, expected: tuple[int, int]
) -> None:
    """
    Every answered request of a host is a sample: after the start-up window, an
    adaptive host's first window of answers doubles its limit (slow start, nothing to
    compare with yet); a pinned host's stays.
    """
    state = Hosts(limits)["registry.example"]
    _answers(state, clock)

    assert expected == (state.limiter.limit, state.limiter.highest)


def test_a_read_bodys_bytes_are_throughput(clock: _Clock) -> None:
    """
    Windows of answers whose bodies are still to come move nothing yet; the bodies,
    once read, are the bytes that let an adaptive limit double.
    """
    state = Hosts(HostLimits())["registry.example"]
    _answers(state, clock, nbytes=0)
    answered = state.limiter.limit
    for _ in range(16):
        clock.now += 0.05
        state.delivered(_CHUNK)

    assert (8, 16) == (answered, state.limiter.limit)


def _window(policy: GradientPolicy, start: float, seconds: float, *, megabytes: int) -> float:
    """One window of `policy.limit` answers over `seconds`, sharing its bytes evenly."""
    answers = max(8, policy.limit)
    for n in range(answers):
        at = start + seconds * (n + 1) / answers
        nbytes = megabytes * _CHUNK // answers
        policy.feed(Sample(latency=0.04, nbytes=nbytes, outcome=Outcome.OK, at=at))
    return start + seconds


def test_the_window_after_a_change_is_not_judged() -> None:
    """
    The window in which a doubling's new slots are still being taken up shows less
    than either limit gives; it is not judged (nor is the start-up window). The window after it, twice as fast,
    doubles the limit again instead of ending slow start.
    """
    policy = _policy(8)
    now = _window(policy, 0.0, 1.0, megabytes=30)  # start-up: not judged either
    now = _window(policy, now, 1.0, megabytes=100)
    after_first = policy.limit
    now = _window(policy, now, 1.0, megabytes=60)
    now = _window(policy, now, 1.0, megabytes=200)

    assert (16, 32) == (after_first, policy.limit)


def test_streamed_bytes_count_as_they_move(clock: _Clock) -> None:
    """
    Bytes of a streamed body count in the window they moved in: windows of answers
    that carried no bytes themselves, while bodies streamed, moved throughput.
    """
    state = Hosts(HostLimits())["registry.example"]
    for _ in range(16):
        clock.now += 0.05
        state.limiter.moved(_CHUNK)
        state.answered(clock.now - 0.01)

    assert 16 == state.limiter.limit


def test_a_window_lasts_a_quarter_second_at_least() -> None:
    """
    64 answers in 0.19 s (a loopback registry's pace) are still one window: windows of
    a few milliseconds swing too much for any step to be judged by them.
    """
    policy = _policy(8)
    for n in range(64):
        policy.feed(Sample(latency=0.001, nbytes=_CHUNK, outcome=Outcome.OK, at=n * 0.003))

    assert (8, 8) == (policy.peak, policy.limit)


def test_streaming_alone_closes_a_window(clock: _Clock) -> None:
    """
    Large bodies answer rarely: while they stream, a window closes once it is old
    enough and moved enough, without waiting for eight answers.
    """
    state = Hosts(HostLimits())["registry.example"]
    state.answered(clock.now - 0.01)
    for _ in range(40):
        clock.now += 0.05
        state.limiter.moved(4 * _CHUNK)

    # Start-up, then the first judged window doubles the limit; the same throughput
    # at 16 then gives the slots back (a plateau): windows kept closing.
    assert (16, 8) == (state.limiter.highest, state.limiter.limit)
