"""One computation per key at a time, its outcome shared; failures and cancellations are not kept."""

from __future__ import annotations

import anyio
import pytest

from relocator.engine.singleflight import SingleFlight
from relocator.errors import RelocatorError


class Counted:
    """A computation that counts its calls and waits for `go` before answering."""

    def __init__(self, answers: list[str | Exception]) -> None:
        self.calls = 0
        self.go = anyio.Event()
        self._answers = answers

    async def __call__(self) -> str:
        self.calls += 1
        answer = self._answers[self.calls - 1]
        await self.go.wait()
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_waiters_share_the_result_of_one_computation() -> None:
    """Five callers of one key at the same time: one computation, five equal results."""
    flights: SingleFlight[str, str] = SingleFlight()
    compute = Counted(["landed"])
    results: list[str] = []

    async def ask() -> None:
        results.append(await flights.run("key", compute))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        compute.go.set()

    assert (1, ["landed"] * 5) == (compute.calls, results)
    assert "landed" == await flights.run("key", compute)
    assert 1 == compute.calls


async def test_a_failure_is_shared_by_its_waiters_and_a_later_caller_tries_again() -> None:
    """The callers waiting on a failed computation get its error; the next one computes anew."""
    flights: SingleFlight[str, str] = SingleFlight()
    compute = Counted([RelocatorError("broken"), "landed"])
    errors: list[str] = []

    async def ask() -> None:
        with pytest.raises(RelocatorError) as caught:
            await flights.run("key", compute)
        errors.append(str(caught.value))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        compute.go.set()

    assert ["broken"] * 3 == errors
    assert "landed" == await flights.run("key", compute)
    assert 2 == compute.calls


async def test_wait_reports_the_last_failure_rather_than_waiting_for_ever() -> None:
    """A caller that only waits for a key whose computation failed gets the failure."""
    flights: SingleFlight[str, str] = SingleFlight()
    compute = Counted([RelocatorError("broken")])
    compute.go.set()
    with pytest.raises(RelocatorError):
        await flights.run("key", compute)

    with pytest.raises(RelocatorError) as caught:
        await flights.wait("key")

    assert "broken" == str(caught.value)


async def test_wait_returns_once_a_later_run_lands_the_key() -> None:
    """`wait` before any `run` of the key waits for it; `settle` answers at once."""
    flights: SingleFlight[str, str] = SingleFlight()
    flights.settle("known", "present")
    results: list[str] = []

    async def waiter() -> None:
        results.append(await flights.wait("key"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert [] == results
        compute = Counted(["landed"])
        compute.go.set()
        await flights.run("key", compute)

    assert (["landed"], "present") == (results, await flights.wait("known"))


async def test_cancelling_the_first_caller_does_not_poison_the_key() -> None:
    """
    The caller computing a key is cancelled: a caller that was waiting computes it
    instead and gets the result, as does a caller that only waits, and later callers.
    """
    flights: SingleFlight[str, str] = SingleFlight()
    compute = Counted(["never", "landed"])
    results: list[str] = []

    async def waiter() -> None:
        results.append(await flights.run("key", compute))

    async def watcher() -> None:
        results.append(await flights.wait("key"))

    first = anyio.CancelScope()

    async def leader() -> None:
        with first:
            await flights.run("key", compute)

    # A guard, not a timing assert: a poisoned key would leave the watcher spinning.
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(waiter)
            tg.start_soon(watcher)
            await anyio.wait_all_tasks_blocked()
            first.cancel()
            await anyio.wait_all_tasks_blocked()
            compute.go.set()

    assert (2, ["landed", "landed"]) == (compute.calls, results)
    assert "landed" == await flights.run("key", compute)
