"""
Single flight: one computation per key at a time, its outcome shared by every task that
asks for the key meanwhile.

The engine does a few things once per key however many tasks need them: walking a
manifest into the plan (per destination and digest), looking up what is attached to a
manifest, landing a blob or a manifest at its destination. `SingleFlight` is that rule:

- the first caller of `run` computes; callers that come while it runs wait and share
  its result, or its failure;
- a success is kept: later callers get it without computing;
- a failure is not: the next caller of `run` computes again (the failure may have been
  passing), while `wait` reports it, so nobody waits for a key that will not come;
- a computation that was cancelled leaves nothing behind: a waiting caller takes over.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio

_K = TypeVar("_K", bound=Hashable)
_T = TypeVar("_T")


@dataclass(slots=True)
class _Flight(Generic[_T]):
    """One computation of a key: set `done` once it succeeded, failed or was cancelled."""

    done: anyio.Event = field(default_factory=anyio.Event)
    #: The result, once there is one (a list: the result may be None).
    value: list[_T] = field(default_factory=list)
    error: Exception | None = None
    running: bool = False


class SingleFlight(Generic[_K, _T]):
    """The flights of one kind of work, by key; see the module's docstring for the rules."""

    def __init__(self) -> None:
        self._flights: dict[_K, _Flight[_T]] = {}

    def _flight(self, key: _K) -> _Flight[_T]:
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight()
        return flight

    async def run(self, key: _K, compute: Callable[[], Awaitable[_T]]) -> _T:
        """
        `key`'s result: computed by `compute` unless it is known or being computed.

        Raises:
            Exception: What `compute` raised, in this call or in the one it waited for.
        """
        while True:
            flight = self._flight(key)
            if flight.value:
                return flight.value[0]
            if flight.done.is_set():
                # It failed before: this caller tries again.
                flight = self._flights[key] = _Flight()
            if not flight.running:
                break
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            # Succeeded (the loop returns it) or was cancelled (the loop takes over).
        flight.running = True
        try:
            value = await compute()
        except Exception as exc:
            flight.error = exc
            raise
        except BaseException:
            # Cancelled: forget the flight, so that a waiter computes instead.
            if self._flights.get(key) is flight:
                del self._flights[key]
            raise
        else:
            flight.value.append(value)
            return value
        finally:
            flight.running = False
            flight.done.set()

    async def wait(self, key: _K) -> _T:
        """
        `key`'s result once a `run` of it finished (now or later), without computing.

        Raises:
            Exception: The failure of the last `run` of `key`.
        """
        while True:
            flight = self._flight(key)
            await flight.done.wait()
            if flight.value:
                return flight.value[0]
            if flight.error is not None:
                raise flight.error

    def settle(self, key: _K, value: _T) -> None:
        """Record `value` as `key`'s result without computing (what is known already)."""
        flight = self._flights[key] = _Flight()
        flight.value.append(value)
        flight.done.set()
