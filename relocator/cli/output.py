"""
What a command shows on stderr: log lines, progress and the final summary.

stdout carries only machine output (YAML); everything for humans goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio

from relocator.engine import Report
from relocator.engine.events import Event
from relocator.transport import HostState

from .plain import PlainProgress, megabytes


class Output:
    """
    The stderr side of one command.

    Args:
        args: The parsed command line (`--quiet`, `--progress`).
        prefix: The command's log prefix (`relocate`, `package`...).
    """

    def __init__(self, args: argparse.Namespace, prefix: str) -> None:
        self.prefix = prefix
        self.quiet = bool(getattr(args, "quiet", False))
        mode = getattr(args, "progress", "auto")
        self._periodic = mode != "none" and not self.quiet
        self._plain = PlainProgress(sys.stderr, prefix, quiet=self.quiet)

    @property
    def sink(self) -> PlainProgress:
        """Where the engine's events go."""
        return self._plain

    def line(self, text: str) -> None:
        """One log line, `<prefix> | <text>`."""
        self._plain.line(text)

    def emit(self, event: Event) -> None:
        """Pass an event on (for commands that produce events themselves)."""
        self._plain.emit(event)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Show periodic progress while the block runs."""
        async with anyio.create_task_group() as tg:
            if self._periodic:
                tg.start_soon(self._plain.tick)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    def summary(self, verb: str, report: Report, hosts: Sequence[HostState]) -> None:
        """The closing lines: what moved, how fast, what it cost in retries."""
        images = len(report.images)
        seconds = max(report.seconds, 1e-6)
        self.line(
            f"{verb} {images} images: {report.blobs_copied} blobs copied "
            f"({megabytes(report.bytes_copied)}), {report.blobs_mounted} mounted, "
            f"{report.blobs_present} already present, {report.manifests_pushed} manifests "
            f"pushed in {report.seconds:.1f}s ({megabytes(int(report.bytes_copied / seconds))}/s)"
        )
        for host in hosts:
            if host.retries or host.throttled:
                self.line(
                    f"registry {host.host}: {host.requests} requests, {host.retries} retries, "
                    f"{host.throttled} rate-limited (concurrency down to {host.limiter.lowest})"
                )
