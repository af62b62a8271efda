"""
`relocator`: the entry point. Parses arguments, runs a command, maps errors to exit codes.

Every error relocator raises on purpose ends here as one line on stderr (one JSON
`Error` event with `--json`, argument errors and bugs included) and a documented exit
code; a traceback appears only with `--debug`. Whatever is printed passes through
`scrubbed_output`, which hides every credential the run used.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, NoReturn

import anyio

from relocator import __version__, redaction
from relocator.errors import (
    AuthError,
    DeadlineExceeded,
    InputError,
    IntegrityError,
    Interrupted,
    ManifestError,
    OutOfSync,
    PartialFailure,
    RegistryError,
    RelocatorError,
    Terminated,
    TransportError,
    UnsafeRedirect,
    tidy,
)

from . import early
from .arguments import Invocation, read, write_json_error
from .options import Display
from .parser import build_parser
from .scrubbed import scrubbed_output

#: Exit codes, documented in docs/cli.md. Ordered from the most specific class.
EXIT_CODES: tuple[tuple[type[BaseException], int, str], ...] = (
    (InputError, 3, "bad input: a file, reference, flag or tarball"),
    (AuthError, 4, "the registry refused our credentials or access"),
    (ManifestError, 5, "an image cannot be copied as is (schema 1, ambiguous, unsupported)"),
    (IntegrityError, 6, "content did not match its digest or size"),
    (TransportError, 7, "network failure: connection, DNS, TLS, timeouts"),
    (UnsafeRedirect, 7, "network failure: connection, DNS, TLS, timeouts"),
    (RegistryError, 8, "the registry answered with an error"),
    (PartialFailure, 9, "with --keep-going: some images failed, the others were finished"),
    (OutOfSync, 10, "mirror --check: images or tags are missing or stale at the destination"),
    (Terminated, early.SIGTERM_EXIT, "terminated by SIGTERM (e.g. a Kubernetes pod eviction)"),
    (Interrupted, early.SIGINT_EXIT, "interrupted (Ctrl-C)"),
    (DeadlineExceeded, 124, "the run took longer than --timeout"),
    (RelocatorError, 1, "any other failure"),
)
EXIT_USAGE = 2

log = logging.getLogger("relocator")


def exit_code(exc: BaseException) -> int:
    """The exit code for `exc` (see `EXIT_CODES`)."""
    for kind, code, _ in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return 1


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the command line and exit."""
    early.install()
    sys.exit(_run(sys.argv[1:] if argv is None else argv))


def run(argv: list[str]) -> int:
    """
    Run the command line; return the exit code (tests call this). The process's
    signal handlers are what they were on return.
    """
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    # Everything printed from here on, by us or by a library, passes the secret filter;
    # the secrets this run used are forgotten once its output is written.
    try:
        with scrubbed_output():
            return _run(argv)
    finally:
        redaction.forget_all()
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def _run(argv: list[str]) -> int:
    invocation = read(argv)
    if isinstance(invocation, int):
        return invocation
    if invocation.error is not None:
        _report(invocation.error, invocation.display)
        return exit_code(invocation.error)
    if invocation.command is None:
        build_parser().print_help(sys.stderr)
        return EXIT_USAGE
    if invocation.command == "version":
        sys.stdout.write(f"relocator {__version__}\n")
        return 0
    with _debug_logging(invocation.display.debug):
        return _execute(invocation)


def _execute(invocation: Invocation) -> int:
    """Run the command; every exception becomes one line (or event) and a code."""
    display = invocation.display
    try:
        try:
            # Until the event loop runs, the process's handlers apply (`early` for the
            # entry points); inside it, `_with_signals` handles both signals.
            command = _command(invocation.command or "")
            _check_report_path(display)
            return anyio.run(
                _with_signals, command, invocation, invocation.timeout,
                backend="asyncio", backend_options=_loop_options(),
            )
        finally:
            # The outcome is decided: a signal now would only turn its report or the
            # exit into a KeyboardInterrupt.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except KeyboardInterrupt:
        # Only where the caller kept Python's own SIGINT handler (tests, embedding).
        error = Interrupted("interrupted")
        _report(error, display)
        return exit_code(error)
    except RelocatorError as exc:
        _report(exc, display)
        return exit_code(exc)
    except Exception as exc:  # noqa: BLE001 - a bug: reported in one line, not raised
        message = tidy(f"internal error: {type(exc).__name__}: {exc}")
        hint = "run again with --debug for a traceback"
        if display.json:
            write_json_error(message, None if display.debug else hint, 1)
        else:
            sys.stderr.write(f"relocator: {message}\n")
        if display.debug:
            # Printed here rather than re-raised, so the traceback too passes the
            # secret filter of `scrubbed_output`.
            traceback.print_exception(exc, file=sys.stderr)
        elif not display.json:
            sys.stderr.write(f"relocator: {hint}\n")
        return 1


Command = Callable[[Invocation], Coroutine[Any, Any, int]]


def _check_report_path(display: Display) -> None:
    """
    Refuse a `--report` path relocator must not replace before anything is read or
    fetched (the request's own output paths are checked by the api, as early).
    """
    if display.report:
        from relocator.api.display import check_output

        check_output(display.report, flag="--report")


def _loop_options() -> dict[str, Any]:
    """
    uvloop when it is installed (`pip install '.[speed]'`, the `speed` extra): its C event loop
    moves socket bytes with less CPU, which on small machines the registry needs more.
    `RELOCATOR_NO_UVLOOP=1` keeps asyncio's own loop.
    """
    if os.environ.get("RELOCATOR_NO_UVLOOP") or importlib.util.find_spec("uvloop") is None:
        return {}
    return {"use_uvloop": True}


def _command(name: str) -> Command:
    # Imported lazily: `relocator version` and `--help` stay instant.
    from . import commands

    handler: Command = getattr(commands, name)
    return handler


async def _with_signals(
    command: Command, invocation: Invocation, deadline: float | None = None
) -> int:
    """
    Run `command`; SIGINT or SIGTERM cancels it, and once it has cleaned up (unfinished
    tarball kept, connections closed) the signal is raised as `Interrupted` or
    `Terminated`. Later signals are ignored: the cleanup is short, and a signal landing
    in the middle of it would only leave tracebacks and half-closed files behind.
    Reaching `deadline` seconds cancels it the same way and raises `DeadlineExceeded`.
    """
    result = 0
    stop: list[RelocatorError] = []
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with anyio.create_task_group() as tg:
                work = anyio.CancelScope(
                    deadline=anyio.current_time() + deadline if deadline else float("inf")
                )

                async def watch() -> None:
                    async for signum in signals:
                        if not stop:
                            stop.append(
                                Terminated("terminated by SIGTERM")
                                if signum == signal.SIGTERM
                                else Interrupted("interrupted")
                            )
                            work.cancel()

                async def run_command() -> None:
                    nonlocal result
                    try:
                        with work:
                            result = await command(invocation)
                    finally:
                        if not stop and work.cancel_called:
                            stop.append(DeadlineExceeded(
                                f"the run took longer than its --timeout of {deadline:g} s",
                                hint="raise --timeout, or look for a slow registry with "
                                "--debug",
                            ))
                        tg.cancel_scope.cancel()

                tg.start_soon(watch)
                tg.start_soon(run_command)
    except BaseExceptionGroup as group:
        if stop:
            raise stop[0] from None
        from relocator.api.display import first_error

        raise first_error(group) from None
    except RelocatorError:
        if stop:
            raise stop[0] from None
        raise
    finally:
        # The receiver put back the default handlers, and the outcome is decided: a
        # signal now would only turn the loop's shutdown into a KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if stop:
        raise stop[0]
    return result


def _report(exc: RelocatorError, display: Display) -> None:
    if display.json:
        # With --json, stderr carries JSON objects only, errors included.
        write_json_error(str(exc), exc.hint, exit_code(exc))
    else:
        line = f"relocator: error: {exc}"
        if exc.hint:
            line += f" (hint: {exc.hint})"
        sys.stderr.write(line.replace("\n", " ") + "\n")
    if display.debug:
        traceback.print_exception(exc, file=sys.stderr)


@contextlib.contextmanager
def _debug_logging(debug: bool) -> Iterator[None]:
    """
    With `--debug`, relocator's log lines go to this run's stderr. The handler is removed
    when the run ends: one left behind would write to a stream closed since, when `run`
    is called again in the same process (tests, embedders).
    """
    if not debug:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("debug | %(name)s: %(message)s"))
    root = logging.getLogger("relocator")
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
