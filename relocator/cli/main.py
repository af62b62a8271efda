"""
`relocator`: the entry point. Parses arguments, runs a command, maps errors to exit codes.

Every error relocator raises on purpose ends here as one line on stderr (one JSON
`Error` event with `--json`, argument errors and bugs included) and a documented exit
code; a traceback appears only with `--debug`. Whatever is printed passes through
`scrubbed_output`, which hides every credential the run used.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
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
    InputError,
    IntegrityError,
    Interrupted,
    ManifestError,
    OutOfSync,
    PartialFailure,
    RegistryError,
    RelocatorError,
    TransportError,
    UnsafeRedirect,
    tidy,
)
from relocator.outfiles import check_output

from . import registryenv, typos
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
    # Everything printed from here on, by us or by a library, passes the secret filter;
    # the secrets this run used are forgotten once its output is written.
    try:
        with scrubbed_output():
            return _run(argv)
    finally:
        redaction.forget_all()


def _run(argv: list[str]) -> int:
    parser = build_parser()
    if "--json" in argv:
        parsed = _parse_json(parser, argv)
        if isinstance(parsed, int):
            return parsed
        args = parsed
    else:
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
    with _debug_logging(bool(getattr(args, "debug", False))):
        return _execute(args)


def _execute(args: argparse.Namespace) -> int:
    """Run the parsed command; every exception becomes one line (or event) and a code."""
    debug = bool(getattr(args, "debug", False))
    command = _command(args.command)
    try:
        check_outputs(args)
        return anyio.run(
            _with_signals, command, args, backend="asyncio", backend_options=_loop_options()
        )
    except KeyboardInterrupt:
        _report(Interrupted("interrupted"), args)
        return 130
    except RelocatorError as exc:
        _report(exc, args)
        return exit_code(exc)
    except Exception as exc:  # noqa: BLE001 - a bug: reported in one line, not raised
        message = tidy(f"internal error: {type(exc).__name__}: {exc}")
        hint = "run again with --debug for a traceback"
        if getattr(args, "json", False):
            _write_json_error(message, None if debug else hint, 1)
        else:
            sys.stderr.write(f"relocator: {message}\n")
        if debug:
            # Printed here rather than re-raised, so the traceback too passes the
            # secret filter of `scrubbed_output`.
            traceback.print_exception(exc, file=sys.stderr)
        elif not getattr(args, "json", False):
            sys.stderr.write(f"relocator: {hint}\n")
        return 1


def _parse_json(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    """
    Parse a command line that asks for `--json`: an argument error is then one JSON
    event on stderr like every other error, not argparse's usage text.

    Returns:
        The arguments, or the exit code argparse ended with (2 for an error, 0 after
        `--help`, whose text goes to stdout as usual).
    """
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return parser.parse_args(typos.check(parser, argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code == 0:
            sys.stderr.write(captured.getvalue())
        else:
            _write_json_error(_usage_message(captured.getvalue()), "see relocator --help", code)
        return code


def _usage_message(text: str) -> str:
    """The message of argparse's `usage: ...\\nPROG: error: MESSAGE` output, one line."""
    _, marker, message = text.partition(": error: ")
    return tidy(message if marker else text).strip() or "invalid arguments"


def _write_json_error(message: str, hint: str | None, code: int) -> None:
    document = {"type": "Error", "message": message, "hint": hint, "exit_code": code}
    sys.stderr.write(json.dumps(document) + "\n")


Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

#: The flags that name a file relocator writes, by their argparse destination.
OUTPUT_FLAGS = {
    "output": "--output",
    "lock_output": "--lock-output",
    "imgpkg_lock_output": "--imgpkg-lock-output",
    "report": "--report",
}


def check_outputs(args: argparse.Namespace) -> None:
    """
    Refuse every output path the command line names that relocator must not replace
    (see `relocator.outfiles.check_output`), before anything is read or fetched: a run
    must not spend an hour moving images only to fail at the last write.

    Raises:
        InputError: The first unusable path, named as the user gave it.
    """
    for dest, flag in OUTPUT_FLAGS.items():
        value = getattr(args, dest, None)
        if value:
            check_output(value, flag=flag)


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
    if name == "copy":
        from .copy import copy

        return copy
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
        _write_json_error(str(exc), exc.hint, exit_code(exc))
    else:
        line = f"relocator: error: {exc}"
        if exc.hint:
            line += f" (hint: {exc.hint})"
        sys.stderr.write(line.replace("\n", " ") + "\n")
    if getattr(args, "debug", False):
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
