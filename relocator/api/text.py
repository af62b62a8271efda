"""Small wording helpers shared by the log lines of every job."""

from __future__ import annotations


def count(n: int, noun: str) -> str:
    """`1 image`, `2 images`."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def megabytes(n: int) -> str:
    """`n` bytes as decimal megabytes, the unit of progress and plan lines."""
    return f"{n / 1_000_000:.0f} MB" if n >= 10_000_000 else f"{n / 1_000_000:.1f} MB"
