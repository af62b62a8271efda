"""
What a command shows on stderr: log lines, progress and the final summary.

stdout carries only machine output (YAML); everything for humans goes to stderr, in one
of three displays chosen from the flags and the terminal:

- `rich`: a live display redrawn a few times a second, then a summary table
  (`--progress auto` on a terminal, or `--progress tty`);
- `plain`: lines without escape codes, a progress line every few seconds (`--progress
  auto` when stderr is not a terminal, `--progress plain`; `--progress none` and
  `--quiet` drop the progress lines, `--quiet` every other line but warnings too);
- `json`: JSON lines only, events then a final report (`--json`).

`--report FILE` writes the final report as JSON to FILE with any display.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Literal, Protocol, TextIO

import anyio

from relocator.api.display import HostState, Report, first_error, megabytes
from relocator.api.events import (
    Event,
    Log,
    Notice,
    ProgressSink,
    Summary,
    Swept,
    TransferEnded,
    TransferStarted,
)
from relocator.errors import Interrupted, RelocatorError

from . import plain as plain_module
from .jsonout import (
    FLUSH_SECONDS,
    JsonLines,
    Status,
    error_text,
    report_document,
    report_from_state,
    write_report,
)
from .options import Display
from .plain import Clock, PlainProgress, ProgressState, nothing_done, registry_costs
from .stepsummary import append_step_summary, markdown, step_summary_path

if TYPE_CHECKING:
    from .progress import RichProgress

#: Which display a command uses (see the module docstring).
DisplayKind = Literal["rich", "plain", "json"]


#: `TERM` values of terminals that cannot move the cursor: they get plain lines.
_DUMB_TERMINALS = frozenset({"dumb", "unknown"})


class _Display(Protocol):
    state: ProgressState

    def emit(self, event: Event) -> None: ...

    def line(self, text: str) -> None: ...


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is a terminal that can redraw (a TTY whose `TERM` is not dumb)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # no fileno, or closed
        return False
    return tty and os.environ.get("TERM", "") not in _DUMB_TERMINALS


def choose_display(display: Display, stream: TextIO) -> DisplayKind:
    """
    The display the flags ask for: `--json` wins; then `--quiet`, `--progress plain` and
    `--progress none` mean plain lines; `--progress tty` means rich; `--progress auto`
    means rich when `stream` is a terminal, plain otherwise.
    """
    if display.json:
        return "json"
    mode = display.progress
    if display.quiet or mode in ("plain", "none"):
        return "plain"
    if mode == "tty":
        return "rich"
    return "rich" if is_terminal(stream) else "plain"


class Output:
    """
    The stderr side of one command, and the sink of its run's events: log lines,
    progress, and the transfer's start, end and summary.

    Args:
        display: The output flags (`--quiet`, `--progress`, `--json`, `--report`).
        prefix: The command's log prefix (`relocate`, `package`...).
        stream: Where it all goes; stderr by default.
        clock: Monotonic seconds (injectable so tests and captures are repeatable).
    """

    def __init__(
        self,
        display: Display,
        prefix: str,
        *,
        stream: TextIO | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.prefix = prefix
        self.quiet = display.quiet
        self.display: DisplayKind = choose_display(display, stream or sys.stderr)
        self._report_path = display.report
        self._periodic = display.progress != "none" and not self.quiet
        # Periodic progress lines are due (a transfer is running).
        self._ticking = False
        self._rich: RichProgress | None = None
        self._json: JsonLines | None = None
        self._plain: PlainProgress | None = None
        self._display: _Display
        if self.display == "rich":
            # Imported here: rich costs start-up time that logs and JSON do not need.
            from rich.console import Console

            from .progress import RichProgress

            forced = display.progress == "tty" or None
            console = (
                Console(file=stream, force_terminal=forced, force_interactive=forced)
                if stream is not None
                else Console(stderr=True, force_terminal=forced, force_interactive=forced)
            )
            self._display = self._rich = RichProgress(console, prefix, clock=clock)
        elif self.display == "json":
            self._display = self._json = JsonLines(
                stream or sys.stderr, quiet=self.quiet, clock=clock
            )
        else:
            self._display = self._plain = PlainProgress(
                stream or sys.stderr, prefix, quiet=self.quiet, clock=clock
            )

    @property
    def sink(self) -> ProgressSink:
        """Where the engine's events go."""
        return self

    @property
    def state(self) -> ProgressState:
        """The counters aggregated from the events so far."""
        return self._display.state

    def line(self, text: str) -> None:
        """One log line: `<prefix> | <text>`, or `{"type": "Log", ...}` with `--json`."""
        self._display.line(text)

    def document(self, document: dict[str, object]) -> None:
        """With `--json`, write one final object (e.g. a check's result) now."""
        if self._json is not None:
            self._json.report(document)

    def emit(self, event: Event) -> None:
        """
        Show one event of the run: a log line, the transfer starting (the live display
        starts), ending (it stops; a failure writes the report of what finished) or
        summed up; anything else goes to the display.
        """
        if isinstance(event, Log):
            if not (event.repeats and self.display == "json"):
                self.line(event.text)
        elif isinstance(event, TransferStarted):
            self._start()
        elif isinstance(event, TransferEnded):
            self._stop()
            if event.error is not None:
                self._failed(event.error, event.hosts)
        elif isinstance(event, Summary):
            self.summary(event.verb, event.report, event.hosts)
        elif isinstance(event, Swept):
            self._display.emit(event)
            if self.display != "json":
                self.line(
                    f"shard {event.shard}: swept the plan: {event.manifests_pushed} "
                    f"manifests pushed, {event.manifests_waiting} waiting on other shards"
                )
        else:
            self._display.emit(event)

    @asynccontextmanager
    async def showing(self) -> AsyncIterator[None]:
        """
        Keep the display's timers going while a run goes on (JSON lines written in
        batches, periodic progress lines); the display itself starts and stops with the
        run's `TransferStarted` and `TransferEnded` events. An error propagates
        unchanged (not wrapped in an exception group).
        """
        failure: Exception | None = None
        done = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._timers, done)
            try:
                yield
            except Exception as exc:  # noqa: BLE001 - re-raised below
                # Outside the task group, so that it is not wrapped in a group.
                failure = exc
            finally:
                self._stop()
                # The timers end by themselves: cancelling the group here could turn
                # the run's own error into the group's cancellation.
                done.set()
        if failure is not None:
            raise failure

    def _start(self) -> None:
        if self._rich is not None:
            self._rich.start()
        elif self._json is not None:
            self._json.buffering = True
        self._ticking = True

    async def _timers(self, done: anyio.Event) -> None:
        """
        Until `done`: write queued JSON lines in batches, or (plain) a progress line
        every `TICK_SECONDS` while a transfer runs (`PlainProgress.tick`).
        """
        if self._json is not None:
            seconds = FLUSH_SECONDS
        elif self._plain is not None and self._periodic:
            seconds = plain_module.TICK_SECONDS
        else:
            return
        while not done.is_set():
            with anyio.move_on_after(seconds):
                await done.wait()
            if self._json is not None:
                self._json.flush()
            elif self._plain is not None and self._ticking and self._plain.state.planned:
                self._plain.line(self._plain.status())

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """
        Show progress while the block runs, as between a run's `TransferStarted` and
        `TransferEnded` (for callers that drive the display without a run: tests, the
        progress capture). If the block fails, the report (`--json`, `--report`) is
        still written, with what finished and the error, and the error propagates
        unchanged.
        """
        async with self.showing():
            self.emit(TransferStarted())
            try:
                yield
            except BaseException as exc:
                self.emit(TransferEnded(exc, ()))
                raise
            self.emit(TransferEnded(None, ()))

    def _stop(self) -> None:
        self._ticking = False
        if self._rich is not None:
            self._rich.stop()
        if self._json is not None:
            self._json.buffering = False
            self._json.flush()

    @staticmethod
    async def _flush_json(lines: JsonLines) -> None:
        while True:
            await anyio.sleep(FLUSH_SECONDS)
            lines.flush()

    def _failed(self, exc: BaseException, hosts: Sequence[HostState]) -> None:
        """Write the report of a run the engine did not finish (events seen so far)."""
        if isinstance(exc, BaseExceptionGroup):
            exc = first_error(exc)
        interrupted = isinstance(
            exc, Interrupted | KeyboardInterrupt | anyio.get_cancelled_exc_class()
        )
        status: Status = "interrupted" if interrupted else "failed"
        report = report_from_state(self.state)
        self.step_summary(markdown(self.prefix, status, report, hosts, error=error_text(exc)))
        if self._json is None and self._report_path is None:
            return
        try:
            self._report(report_document(
                self.prefix, report, hosts, status=status, error=error_text(exc)
            ))
        except RelocatorError as problem:
            # The error that stopped the run is the one to report; this one is a warning.
            self.emit(Notice(str(problem)))

    def _report(self, document: dict[str, object]) -> None:
        if self._json is not None:
            self._json.report(document)
        if self._report_path is not None:
            write_report(self._report_path, document)

    def summary(self, verb: str, report: Report, hosts: Sequence[HostState]) -> None:
        """
        The closing lines: what moved, how fast, what it cost in retries; a table on a
        terminal, the report object with `--json`, and the report file with `--report`.
        """
        unchanged = nothing_done(report, self.state)
        if self._json is None and unchanged:
            # A re-run of a finished job: one line says it all.
            self.line(f"nothing to do: {len(report.images)} images already present")
        elif self._rich is not None:
            self._rich.summary(verb, report, hosts)
        elif self._plain is not None:
            self._plain_summary(verb, report, hosts)
        if self._json is not None or self._report_path is not None:
            self._report(report_document(self.prefix, report, hosts))
        self.step_summary(markdown(
            self.prefix, "partial" if report.failures else "succeeded", report, hosts,
            nothing_done=unchanged,
        ))

    def step_summary(self, text: str) -> None:
        """Append to the GitHub Actions step summary, if there is one; a failure warns."""
        path = step_summary_path()
        if path is None:
            return
        try:
            append_step_summary(path, text)
        except RelocatorError as problem:
            self.emit(Notice(str(problem)))

    def _plain_summary(self, verb: str, report: Report, hosts: Sequence[HostState]) -> None:
        images = len(report.images)
        seconds = max(report.seconds, 1e-6)
        self.line(
            f"{verb} {images} images: {report.blobs_copied} blobs copied "
            f"({megabytes(report.bytes_copied)}), {report.blobs_mounted} mounted, "
            f"{report.blobs_present} already present, {report.manifests_pushed} manifests "
            f"{'written' if self.prefix == 'package' else 'pushed'} in {report.seconds:.1f}s ({megabytes(int(report.bytes_copied / seconds))}/s)"
            + (f"; {report.retries} blob transfer{'s' if report.retries > 1 else ''} "
               "restarted" if report.retries else "")
            + (f"; {report.manifests_waiting} manifests waiting on other shards"
               if report.manifests_waiting else "")
        )
        for host in hosts:
            if host.retries or host.throttled or host.pulls is not None:
                self.line(f"registry {host.host}: {registry_costs(host)}")
