"""
`relocator`: the entry point. Parses arguments, runs a command, maps errors to exit codes.

Every error relocator raises on purpose ends here as one line on stderr and a documented
exit code; a traceback appears only with `--debug` (or for a bug, which is also
reported in one line first).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

import anyio

from relocator import __version__
from relocator.errors import (
    AuthError,
    DeadlineExceeded,
    InputError,
    IntegrityError,
    Interrupted,
    ManifestError,
    PartialFailure,
    RegistryError,
    RelocatorError,
    Terminated,
    TransportError,
    UnsafeRedirect,
)

from . import early
from .parser import build_parser, parse_duration, with_default_command

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
    try:
        return _run(argv)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def _run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(with_default_command(argv))
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "version":
        sys.stdout.write(f"relocator {__version__}\n")
        return 0
    debug = bool(getattr(args, "debug", False))
    _configure_logging(debug)
    try:
        try:
            # Until the event loop runs, the process's handlers apply (`early` for the
            # entry points); inside it, `_with_signals` handles both signals.
            command = _command(args.command)
            deadline = _deadline(args)
            return anyio.run(
                _with_signals, command, args, deadline,
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
        _report(error, args)
        return exit_code(error)
    except RelocatorError as exc:
        _report(exc, args)
        return exit_code(exc)
    except Exception as exc:
        sys.stderr.write(f"relocator: internal error: {type(exc).__name__}: {exc}\n")
        if debug:
            raise
        sys.stderr.write("relocator: run again with --debug for a traceback\n")
        return 1


Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def _loop_options() -> dict[str, Any]:
    """
    uvloop when it is installed (`pip install relocator[speed]`): its C event loop
    moves socket bytes with less CPU, which on small machines the registry needs more.
    `RELOCATOR_NO_UVLOOP=1` keeps asyncio's own loop.
    """
    if os.environ.get("RELOCATOR_NO_UVLOOP") or importlib.util.find_spec("uvloop") is None:
        return {}
    return {"use_uvloop": True}


def _command(name: str) -> Command:
    # Imported lazily: `relocator version` and `--help` stay instant.
    if name == "mirror":
        from .mirror import mirror

        return mirror
    from . import commands

    canonical = {"package": "pkg", "unpackage": "unpkg"}.get(name, name)
    handler: Command = getattr(commands, canonical)
    return handler


def _deadline(args: argparse.Namespace) -> float | None:
    """Seconds the whole run may take: `--timeout`, else `$RELOCATOR_TIMEOUT`, else None."""
    seconds: float | None = getattr(args, "timeout", None)
    if seconds is not None or not hasattr(args, "timeout"):
        return seconds
    text = os.environ.get("RELOCATOR_TIMEOUT", "")
    if not text:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InputError(f"RELOCATOR_TIMEOUT: {exc}") from None


async def _with_signals(
    command: Command, args: argparse.Namespace, deadline: float | None = None
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
                            result = await command(args)
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
        from relocator.engine.groups import first_error

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


def _report(exc: RelocatorError, args: argparse.Namespace) -> None:
    if getattr(args, "json", False):
        # With --json, stderr carries JSON objects only, errors included.
        document = {
            "type": "Error",
            "message": str(exc),
            "hint": exc.hint,
            "exit_code": exit_code(exc),
        }
        sys.stderr.write(json.dumps(document) + "\n")
    else:
        line = f"relocator: error: {exc}"
        if exc.hint:
            line += f" (hint: {exc.hint})"
        sys.stderr.write(line.replace("\n", " ") + "\n")
    if getattr(args, "debug", False):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)


def _configure_logging(debug: bool) -> None:
    if not debug:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("debug | %(name)s: %(message)s"))
    root = logging.getLogger("relocator")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
