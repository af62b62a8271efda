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
    InputError,
    IntegrityError,
    Interrupted,
    ManifestError,
    PartialFailure,
    RegistryError,
    RelocatorError,
    TransportError,
    UnsafeRedirect,
)

from . import registryenv, typos
from .parser import build_parser

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
    (Interrupted, 130, "interrupted (Ctrl-C or SIGTERM)"),
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
    sys.exit(run(sys.argv[1:] if argv is None else argv))


def run(argv: list[str]) -> int:
    """Run the command line; return the exit code (tests call this)."""
    parser = build_parser()
    args = parser.parse_args(typos.check(parser, argv))
    try:
        registryenv.apply(args, os.environ)
    except InputError as exc:
        _report(exc, args)
        return exit_code(exc)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "version":
        sys.stdout.write(f"relocator {__version__}\n")
        return 0
    debug = bool(getattr(args, "debug", False))
    _configure_logging(debug)
    command = _command(args.command)
    try:
        return anyio.run(
            _with_signals, command, args, backend="asyncio", backend_options=_loop_options()
        )
    except KeyboardInterrupt:
        _report(Interrupted("interrupted"), args)
        return 130
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
    uvloop when it is installed (`pip install '.[speed]'`, the `speed` extra): its C event loop
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


async def _with_signals(command: Command, args: argparse.Namespace) -> int:
    """Run `command`, turning SIGTERM into a clean cancellation like Ctrl-C."""
    result = 0

    async def watch() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            async for _ in signals:
                raise Interrupted("terminated by SIGTERM")

    try:
        async with anyio.create_task_group() as tg:

            async def work() -> None:
                nonlocal result
                try:
                    result = await command(args)
                finally:
                    tg.cancel_scope.cancel()

            tg.start_soon(watch)
            tg.start_soon(work)
    except BaseExceptionGroup as group:
        from relocator.engine.groups import first_error

        raise first_error(group) from None
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
