"""Picking the error to report out of a task group's exception group."""

from __future__ import annotations

from relocator.errors import RelocatorError


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """
    The failure to report from a task group's exception group: the first relocator
    error, else the first other exception (cancellations are consequences, not causes).
    """
    leaves = _leaves(group)
    for exc in leaves:
        if isinstance(exc, RelocatorError):
            return exc
    for exc in leaves:
        if isinstance(exc, Exception):
            return exc
    return leaves[0] if leaves else group


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(exc))
        else:
            found.append(exc)
    return found
