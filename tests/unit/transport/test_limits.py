"""Every concurrency default derives from one number, and each host's limit can change."""

from __future__ import annotations

import pytest

from relocator.cli import parser
from relocator.transport import TransportSettings
from relocator.transport.hosts import AdaptiveLimiter
from relocator.transport.limits import DEFAULT_CONCURRENCY, HostLimits


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param(TransportSettings(), (8, 8, 32, 36), id="default-adapts-up-to-16"),
        pytest.param(TransportSettings(concurrency=3), (3, 3, 6, 10), id="concurrency-3"),
        pytest.param(
            TransportSettings(concurrency=2, per_host_concurrency={"big.example": 10}),
            (2, 10, 4, 24), id="one-host-of-its-own",
        ),
    ],
)
def test_limits_derive_from_the_per_host_number(
    settings: TransportSettings, expected: tuple[int, int, int, int]
) -> None:
    """
    Blobs in flight are twice the per-host number; the connection pool's backstop twice
    the largest per-host number, plus 4; a host named on its own keeps its number. An
    adaptive run (no number said) sizes both for the adaptive maximum, 16 per host.
    """
    limits = settings.limits

    assert expected == (
        limits.of("any.example"), limits.of("big.example"), limits.blobs_in_flight,
        limits.connections_per_host,
    )


def test_a_said_number_pins_and_none_adapts() -> None:
    """`--concurrency N` pins every host; a number of a host's own pins that host only."""
    pinned = TransportSettings(concurrency=8).limits
    adaptive = TransportSettings(per_host_concurrency={"big.example": 10}).limits

    assert (True, True, False, True) == (
        pinned.pinned_for("any.example"), pinned.pinned_for("big.example"),
        adaptive.pinned_for("any.example"), adaptive.pinned_for("big.example"),
    )


def test_the_command_line_default_is_the_transports() -> None:
    """`--concurrency`'s documented start is the transport's number (the parser keeps a copy)."""
    assert (8, 8) == (DEFAULT_CONCURRENCY, parser.DEFAULT_CONCURRENCY)
    assert DEFAULT_CONCURRENCY == HostLimits().concurrency


def test_a_hosts_limit_resizes_within_one_and_its_maximum() -> None:
    """`resize` is the one way a limit changes: never below 1 nor above the maximum."""
    limiter = AdaptiveLimiter(8)

    limiter.resize(3)
    shrunk = limiter.limit
    limiter.resize(0)
    floor = limiter.limit
    limiter.resize(50)

    assert (3, 1, 8, 1) == (shrunk, floor, limiter.limit, limiter.lowest)
