"""Retry pacing: exponential backoff with jitter, and `Retry-After` within bounds."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from relocator.errors import RegistryError, TransportError
from relocator.transport import RetryPolicy
from relocator.transport.retry import Attempts, parse_retry_after

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.6), (5, 3.2), (9, 30.0)]
)
def test_backoff_doubles_up_to_the_cap(attempt: int, expected: float) -> None:
    """Without jitter the wait doubles from `initial` and stops growing at `max_delay`."""
    policy = RetryPolicy(initial=0.2, max_delay=30.0, jitter=0.0)

    assert expected == pytest.approx(policy.backoff(attempt))


def test_backoff_jitter_stays_within_its_fraction() -> None:
    """Jitter only lengthens a wait, by at most `jitter` of it."""
    policy = RetryPolicy(initial=1.0, jitter=0.5)

    waits = [policy.backoff(1) for _ in range(200)]

    assert all(1.0 <= wait <= 1.5 for wait in waits)
    assert len(set(waits)) > 1


def _error(retry_after: float | None) -> RegistryError:
    return RegistryError("busy", host="reg.example", status=429, retry_after=retry_after)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        pytest.param(5.0, 5.0, id="honoured"),
        pytest.param(600.0, 60.0, id="capped-at-max-retry-after"),
        pytest.param(0.0, 0.2, id="never-shorter-than-backoff"),
        pytest.param(None, 0.2, id="absent-means-backoff"),
    ],
)
def test_delay_honours_retry_after_within_bounds(
    retry_after: float | None, expected: float
) -> None:
    """
    A registry's `Retry-After` is waited, but never less than our own backoff and never
    longer than `max_retry_after`.
    """
    policy = RetryPolicy(initial=0.2, jitter=0.0, max_retry_after=60.0)

    assert expected == pytest.approx(policy.delay(1, _error(retry_after)))


def test_delay_of_a_network_error_is_the_backoff() -> None:
    """Errors without a `Retry-After` wait the policy's backoff."""
    policy = RetryPolicy(initial=0.5, jitter=0.0)
    error = TransportError("reset", host="reg.example", temporary=True)

    assert 1.0 == pytest.approx(policy.delay(2, error))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("120", 120.0, id="seconds"),
        pytest.param(" 7 ", 7.0, id="seconds-with-spaces"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param(format_datetime(NOW.replace(second=30), usegmt=True), 30.0, id="date"),
        pytest.param(format_datetime(NOW.replace(hour=11), usegmt=True), 0.0, id="past-date"),
        pytest.param("Wed, 01 Jan 2025 12:00:30", None, id="date-without-zone"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("-5", None, id="negative"),
        pytest.param("1.5", None, id="fraction"),
        pytest.param("", None, id="empty"),
        pytest.param("\u00b2", None, id="superscript-digit"),
        pytest.param("\u0663", None, id="arabic-indic-digit"),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    """`Retry-After` is seconds or an HTTP date; anything unreadable falls back to backoff."""
    assert expected == parse_retry_after(header, now=NOW.timestamp())


def _spend(attempts: Attempts, error: TransportError) -> int:
    """Retries `attempts` grants `error` before raising it."""
    granted = 0
    while True:
        try:
            attempts.retry(error)
        except TransportError:
            return granted
        granted += 1


BROKEN = TransportError("connection reset", host="h", temporary=True)


def test_loops_inside_one_operation_share_its_attempts() -> None:
    """
    A request retried inside a blob transfer spends the transfer's attempts: two
    retries there leave three to the transfer, not five more.
    """
    policy = RetryPolicy(attempts=5, jitter=0.0)

    with policy.operation() as transfer:
        request = policy.current_attempts()
        request.retry(BROKEN)
        request.retry(BROKEN)

        assert (True, 3) == (request is transfer, _spend(transfer, BROKEN))
    assert 5 == _spend(policy.current_attempts(), BROKEN)


def test_progress_starts_the_count_afresh_and_lasting_errors_spend_nothing() -> None:
    """
    A transfer that moved forward since it last failed gets its attempts back; an
    error that is not temporary is raised at once, without spending one.
    """
    attempts = RetryPolicy(attempts=2).current_attempts()
    attempts.retry(BROKEN)
    attempts.retry(BROKEN)
    attempts.progressed()

    with pytest.raises(RegistryError):
        attempts.retry(RegistryError("denied", host="h", status=403))

    assert (0, 2) == (attempts.spent, _spend(attempts, BROKEN))
