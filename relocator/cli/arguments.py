"""
The command line, read: argv (and the environment variables that stand in for flags)
turned once into a typed `Invocation`, the api request and the display options.

This module and the grammar (`parser.py`, with `flaggroups.py` and `flagtypes.py`) are the
only ones that see argparse's namespace; everything after works on typed values.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relocator.errors import InputError, RelocatorError, tidy

from . import registryenv, typos
from .flaggroups import DEFAULT_RANGE_STREAMS
from .flagtypes import LIMIT_DEFAULTS, parse_duration
from .options import Display
from .parser import build_parser

if TYPE_CHECKING:
    # The api is imported when a request is built: `--help` and `version` stay instant.
    from relocator.api import Limits, LockFiles, Registries, Request, Shard, Transfer

#: The canonical name of each command's aliases.
_CANONICAL = {"package": "pkg", "unpackage": "unpkg"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Invocation:
    """One command line, read."""

    #: The command, by its canonical name (`pkg` for `package`); None: none was given.
    command: str | None
    display: Display
    #: What to run (None for `version` and for no command).
    request: Request | None = None
    #: Seconds the whole run may take (`--timeout`, else `$RELOCATOR_TIMEOUT`).
    timeout: float | None = None
    #: Warnings about the command line itself (a password in it).
    notices: tuple[str, ...] = ()
    #: Why the command line cannot run (an environment variable that does not parse).
    error: RelocatorError | None = None
    #: `mirror --check` together with `--report`.
    check_with_report: bool = False


def read(argv: list[str], env: Mapping[str, str] | None = None) -> Invocation | int:
    """
    Read `argv`; an argument error ends here (argparse's usage text, or one JSON event
    with `--json`) as the exit code to return.
    """
    env = os.environ if env is None else env
    parser = build_parser()
    if "--json" in argv:
        parsed = _parse_json(parser, argv)
        if isinstance(parsed, int):
            return parsed
        args = parsed
    else:
        args = parser.parse_args(typos.check(parser, argv))
    display = Display(
        progress=getattr(args, "progress", "auto"),
        quiet=bool(getattr(args, "quiet", False)),
        json=bool(getattr(args, "json", False)),
        report=getattr(args, "report", None),
        debug=bool(getattr(args, "debug", False)),
    )
    command = _CANONICAL.get(args.command, args.command) if args.command else None
    try:
        registryenv.apply(args, env)
        request = None if command in (None, "version") else _request(command or "", args)
        timeout = _timeout(args, env)
    except RelocatorError as exc:
        return Invocation(command=command, display=display, error=exc)
    return Invocation(
        command=command, display=display, request=request, timeout=timeout,
        notices=tuple(n for n in [password_notice(args)] if n is not None),
        check_with_report=bool(getattr(args, "check", False) and display.report),
    )


def _request(command: str, args: argparse.Namespace) -> Request:
    from relocator.api import (
        CopyRequest,
        MirrorRequest,
        PkgRequest,
        PlanRequest,
        RelocateRequest,
        ResolveRequest,
        Transfer,
        UnpkgRequest,
    )

    if command == "resolve":
        return ResolveRequest(
            files=args.file, platform=args.platform, locks=locks_of(args),
            images_annotation=args.images_annotation,
            origins_annotation=args.origins_annotation, image_map=args.image_map_file,
            unresolved_inspect=args.unresolved_inspect, registries=registries_of(args),
            limits=limits_of(args), max_input_bytes=_limit(args, "input-bytes"),
        )
    if command == "relocate":
        return RelocateRequest(
            files=args.file, repository=args.repository,
            repository_template=args.repository_template, preserve_tags=args.preserve_tags,
            tag_scheme=args.destination_tags, platforms=_platforms(args.platform),
            locks=locks_of(args), transfer=transfer_of(args), registries=registries_of(args),
            max_input_bytes=_limit(args, "input-bytes"), plan=args.plan,
        )
    if command == "plan":
        return PlanRequest(
            files=args.file, output=args.output, repository=args.repository,
            repository_template=args.repository_template, preserve_tags=args.preserve_tags,
            tag_scheme=args.destination_tags,
            transfer=Transfer(
                include_referrers=args.include_referrers, keep_going=args.keep_going,
                include_nondistributable=args.include_non_distributable_layers,
                limits=limits_of(args),
            ),
            registries=registries_of(args), max_input_bytes=_limit(args, "input-bytes"),
        )
    if command == "pkg":
        return PkgRequest(
            files=args.file, output=args.output, format=args.format, resume=args.resume,
            transfer=transfer_of(args), registries=registries_of(args),
            max_input_bytes=_limit(args, "input-bytes"),
        )
    if command == "unpkg":
        return UnpkgRequest(
            input=args.input, files=args.file, repository=args.repository,
            repository_template=args.repository_template, preserve_tags=args.preserve_tags,
            tag_scheme=args.destination_tags, locks=locks_of(args),
            transfer=transfer_of(args), registries=registries_of(args),
            max_input_bytes=_limit(args, "input-bytes"),
        )
    if command == "copy":
        return CopyRequest(
            source=args.source, destination=args.destination,
            platforms=_platforms(args.platform), transfer=transfer_of(args),
            registries=registries_of(args),
        )
    return MirrorRequest(
        configs=args.config, check=args.check, transfer=transfer_of(args),
        registries=registries_of(args),
    )


def registries_of(args: argparse.Namespace) -> Registries:
    """The registry flags (and imgpkg's credential and limit flags)."""
    from relocator.api import Credentials, Registries

    username = getattr(args, "registry_username", None)
    password = getattr(args, "registry_password", None)
    token = getattr(args, "registry_token", None)
    pinned = (
        Credentials(username=username, password=password, token=token)
        if (username, password, token) != (None, None, None) else None
    )
    return Registries(
        ca_cert_paths=tuple(Path(p) for p in args.registry_ca_cert_path),
        verify_certs=args.registry_verify_certs,
        insecure_hosts=frozenset(args.registry_insecure),
        insecure_all=args.registry_insecure_all,
        concurrency=args.concurrency,
        range_streams=getattr(args, "range_streams", DEFAULT_RANGE_STREAMS),
        verify_blobs=bool(getattr(args, "verify_blobs", False)),
        credentials=pinned,
        anonymous=bool(getattr(args, "registry_anon", False)),
        retry_attempts=getattr(args, "registry_retry_count", None),
        stall_timeout=getattr(args, "registry_response_header_timeout", None),
    )


def transfer_of(args: argparse.Namespace) -> Transfer:
    """The transfer flags; the shard from `--shard`, else `$RELOCATOR_SHARD`."""
    from relocator.api import Transfer

    return Transfer(
        include_referrers=bool(getattr(args, "include_referrers", False)),
        dry_run=args.dry_run,
        keep_going=args.keep_going,
        include_nondistributable=args.include_non_distributable_layers,
        shard=_shard(args),
        limits=limits_of(args),
    )


def locks_of(args: argparse.Namespace) -> LockFiles:
    """`--lock-output` and `--imgpkg-lock-output`."""
    from relocator.api import LockFiles

    return LockFiles(kbld=args.lock_output, imgpkg=args.imgpkg_lock_output)


def limits_of(args: argparse.Namespace) -> Limits:
    """The caps on source data, `--limit` applied over the defaults."""
    from relocator.api import Limits

    return Limits(
        index_entries=_limit(args, "index-entries"),
        layers=_limit(args, "layers"),
        plan_manifest_bytes=_limit(args, "plan-manifest-bytes"),
    )


def _limit(args: argparse.Namespace, name: str) -> int:
    """The last `--limit name=N` given, or its default."""
    chosen = dict(getattr(args, "limit", None) or ())
    return int(chosen.get(name, LIMIT_DEFAULTS[name]))


def _platforms(text: str | None) -> tuple[str, ...]:
    """`linux/amd64,linux/arm64/v8` as a list (empty when not given)."""
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def _shard(args: argparse.Namespace) -> Shard | None:
    """`--shard` (default `$RELOCATOR_SHARD`); the index may come from Kubernetes."""
    if not hasattr(args, "shard"):
        # Only commands with --shard read $RELOCATOR_SHARD: a tarball cannot be shared.
        return None
    text = args.shard or os.environ.get("RELOCATOR_SHARD")
    if not text:
        return None
    from relocator.api import Shard

    return Shard.parse(text, env_index=os.environ.get("JOB_COMPLETION_INDEX"))


def _timeout(args: argparse.Namespace, env: Mapping[str, str]) -> float | None:
    """Seconds the whole run may take: `--timeout`, else `$RELOCATOR_TIMEOUT`, else None."""
    seconds: float | None = getattr(args, "timeout", None)
    if seconds is not None or not hasattr(args, "timeout"):
        return seconds
    text = env.get("RELOCATOR_TIMEOUT", "")
    if not text:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InputError(f"RELOCATOR_TIMEOUT: {exc}") from None


def password_notice(args: argparse.Namespace) -> str | None:
    """The warning a password or token on the command line deserves, if one is there."""
    for flag in ("registry_password", "registry_token"):
        if getattr(args, flag, None) is not None:
            name = "--" + flag.replace("_", "-")
            return (
                f"{name} is visible in shell history and to other users' process "
                "listings; prefer RELOCATOR_REGISTRY_PASSWORD (or _REGISTRY_TOKEN) with "
                "RELOCATOR_REGISTRY_HOSTNAME, or docker login"
            )
    return None


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
            write_json_error(_usage_message(captured.getvalue()), "see relocator --help", code)
        return code


def _usage_message(text: str) -> str:
    """The message of argparse's `usage: ...\\nPROG: error: MESSAGE` output, one line."""
    _, marker, message = text.partition(": error: ")
    return tidy(message if marker else text).strip() or "invalid arguments"


def write_json_error(message: str, hint: str | None, code: int) -> None:
    """One JSON `Error` event on stderr."""
    document: dict[str, Any] = {"type": "Error", "message": message, "hint": hint,
                                "exit_code": code}
    sys.stderr.write(json.dumps(document) + "\n")
