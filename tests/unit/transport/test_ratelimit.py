"""
The requests-per-second limiter, on an injected clock (no real time passes), and its
place in the HTTP client: before every exchange with a limited host.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from relocator.transport import HttpClient, Keychain, RetryPolicy, TransportSettings
from relocator.transport.hosts import Hosts
from relocator.transport.ratelimit import PullAllowance, RateLimiter


class FakeTime:
    """A clock that moves only when someone sleeps on it."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await anyio.lowlevel.checkpoint()


def starts(limiter: RateLimiter, time: FakeTime, count: int) -> list[float]:
    """When each of `count` back-to-back requests may start, relative to the first."""
    origin = time.now
    moments = []
    for _ in range(count):
        time.now += limiter.reserve()  # the caller sleeps exactly the delay it is given
        moments.append(round(time.now - origin, 6))
    return moments


@pytest.mark.parametrize(
    ("rate", "burst", "expected"),
    [
        pytest.param(4.0, 1, [0.0, 0.25, 0.5, 0.75, 1.0], id="four-per-second"),
        pytest.param(0.5, 1, [0.0, 2.0, 4.0], id="one-every-two-seconds"),
        pytest.param(4.0, 3, [0.0, 0.0, 0.0, 0.25, 0.5], id="burst-then-spaced"),
        pytest.param(1000.0, 1, [0.0, 0.001, 0.002], id="fast"),
    ],
)
def test_starts_are_spaced_by_the_rate(rate: float, burst: int, expected: list[float]) -> None:
    """Back-to-back requests start `1 / rate` seconds apart, after at most `burst` at once."""
    time = FakeTime()
    limiter = RateLimiter(rate, burst=burst, clock=time.clock, sleep=time.sleep)

    assert expected == starts(limiter, time, len(expected))


def test_a_quiet_spell_does_not_bank_extra_requests() -> None:
    """After a pause the next request starts at once, but the one after is spaced again."""
    time = FakeTime()
    limiter = RateLimiter(2.0, clock=time.clock, sleep=time.sleep)
    starts(limiter, time, 3)

    time.now += 60.0

    assert [0.0, 0.5, 1.0] == starts(limiter, time, 3)


async def test_concurrent_callers_each_get_their_own_slot() -> None:
    """
    Ten tasks asking at the same moment: one starts at once, the other nine wait 0.1,
    0.2, ... 0.9 s (the clock stands still, so only the reservations set the waits).
    """
    time = FakeTime(start=0.0)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(round(seconds, 6))
        await anyio.lowlevel.checkpoint()

    limiter = RateLimiter(10.0, clock=time.clock, sleep=sleep)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(limiter.acquire)

    assert [round(0.1 * i, 6) for i in range(1, 10)] == sorted(waits)
    assert (10, 9) == (limiter.granted, limiter.waited)


async def test_a_request_that_need_not_wait_does_not_sleep() -> None:
    """The first request, and any after a pause, starts without sleeping at all."""
    time = FakeTime()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await time.sleep(seconds)

    limiter = RateLimiter(5.0, clock=time.clock, sleep=sleep)

    await limiter.acquire()
    await limiter.acquire()
    time.now += 10.0
    await limiter.acquire()

    assert [0.2] == [round(s, 6) for s in slept]


@pytest.mark.parametrize(
    ("rate", "burst", "expected"),
    [
        pytest.param(0.0, 1, "rate must be above zero, got 0.0", id="zero-rate"),
        pytest.param(-1.0, 1, "rate must be above zero, got -1.0", id="negative-rate"),
        pytest.param(1.0, 0, "burst must be at least 1, got 0", id="no-burst"),
    ],
)
def test_impossible_limits_are_refused(rate: float, burst: int, expected: str) -> None:
    """A rate of zero or less, or a burst below one, is a programming error."""
    with pytest.raises(ValueError, match=re.escape(expected)) as caught:
        RateLimiter(rate, burst=burst)

    assert expected == str(caught.value)


async def test_only_configured_hosts_are_limited() -> None:
    """`Hosts` keeps a limiter for each host given a rate, and none for the others."""
    hosts = Hosts(per_host_rps={"slow.example": 5.0})

    await hosts.pace("fast.example")
    await hosts.pace("slow.example")

    slow = hosts.rate("slow.example")
    assert (None, 5.0, 1) == (
        hosts.rate("fast.example"), slow.rate if slow else None, slow.granted if slow else 0
    )
    assert [] == hosts.states()  # pacing alone creates no per-host state


@asynccontextmanager
async def serving(*statuses: int) -> AsyncIterator[TestServer]:
    """A local HTTP server answering `statuses` in turn (the last one from then on)."""
    answers = list(statuses)

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=answers.pop(0) if len(answers) > 1 else answers[0])

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def test_the_client_paces_every_exchange_with_a_limited_host() -> None:
    """
    Each request to a limited host waits its turn, a retry included; a host without a
    rate is not limited.
    """
    async with serving(503, 200) as limited, serving(200) as other:
        hosts = [f"127.0.0.1:{server.port}" for server in (limited, other)]
        settings = TransportSettings(
            insecure_hosts=frozenset(hosts),
            per_host_rps={hosts[0]: 1000.0},
            retry=RetryPolicy(initial=0.001, max_delay=0.005, jitter=0.0),
        )
        async with HttpClient(settings, Keychain()) as client:
            limited_url, other_url = (f"http://{host}/v2/" for host in hosts)
            for url in (limited_url, limited_url, other_url):
                async with client.request("GET", url, what="pinging"):
                    pass
            limiter = client.hosts.rate(hosts[0])

    assert limiter is not None
    assert (3, None) == (limiter.granted, client.hosts.rate(hosts[1]))


# -- pull allowances (Docker Hub) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "76;w=21600"},
         PullAllowance(limit=100, remaining=76, window=21600)),
        ({"RateLimit-Limit": "200", "RateLimit-Remaining": "0"},
         PullAllowance(limit=200, remaining=0, window=None)),
        ({"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "250;w=21600"},
         PullAllowance(limit=100, remaining=100, window=21600)),
        ({"ratelimit-limit": "100;w=21600"}, None),
        ({"ratelimit-limit": "many", "ratelimit-remaining": "76"}, None),
        # A hostile registry: digits str.isdigit() takes and int() refuses, or too many.
        ({"ratelimit-limit": "100", "ratelimit-remaining": "²"}, None),
        ({"ratelimit-limit": "100", "ratelimit-remaining": "7" * 5000}, None),
        ({"ratelimit-limit": "100;w=²", "ratelimit-remaining": "76;w=²"},
         PullAllowance(limit=100, remaining=76, window=None)),
        ({}, None),
    ],
)
def test_pull_allowance_headers(headers: dict[str, str], expected: PullAllowance | None) -> None:
    """Docker Hub's `count;w=seconds` headers; half a statement or garbage is none."""
    assert expected == PullAllowance.from_headers(CIMultiDict(headers))


def test_a_pull_allowance_is_low_at_ten_percent_and_reads_for_people() -> None:
    """10 of 100 left is low, 11 is not; the window is shown in hours."""
    low = PullAllowance(limit=100, remaining=10, window=21600)

    assert (True, False) == (low.low, PullAllowance(limit=100, remaining=11, window=None).low)
    assert "10 of 100 pulls left (window 6 h)" == low.describe()
