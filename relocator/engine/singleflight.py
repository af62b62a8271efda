"""One result computed once, however many tasks ask for it at the same time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

from relocator.errors import RelocatorError

_T = TypeVar("_T")


class Once(Generic[_T]):
    """A result computed once, however many tasks ask for it at the same time."""

    def __init__(self, compute: Callable[[], Awaitable[_T]]) -> None:
        self._compute = compute
        self._done: anyio.Event | None = None
        self._result: list[_T] = []
        self._error: Exception | None = None

    async def get(self) -> _T:
        if self._done is None:
            self._done = anyio.Event()
            try:
                self._result.append(await self._compute())
            except Exception as exc:
                self._error = exc
                raise
            finally:
                self._done.set()
        else:
            await self._done.wait()
        if self._error is not None:
            raise self._error
        if not self._result:
            # The task computing it was cancelled; so is the whole lookup.
            raise RelocatorError("a referrers lookup was cancelled")
        return self._result[0]
