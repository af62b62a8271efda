"""
Docker credential helpers: `docker-credential-<name> get`, run as Docker runs it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio

from relocator.errors import ConfigError, CredentialHelperFailed

# A credential helper is a local program; one that takes longer than this is stuck.
_HELPER_TIMEOUT = 60.0
_HELPER_NAME = re.compile(r"[A-Za-z0-9._-]+")


async def run_helper(
    name: str, host: str, server: str, *, config_path: Path
) -> tuple[str, str] | None:
    """
    Ask the helper `name` for the credentials of `server` (`host`'s key in it).

    Returns:
        (username, secret), or None when the helper has no credentials for it.

    Raises:
        ConfigError: `name` is not a helper name (a path would run any program).
        CredentialHelperFailed: The helper is missing, stuck, failed or answered nonsense.
    """
    if not _HELPER_NAME.fullmatch(name):
        # A name with "/" would run an arbitrary program; helpers are looked up on PATH.
        raise ConfigError(f"invalid credential helper name {name!r} for {host}")
    program = f"docker-credential-{name}"
    try:
        with anyio.fail_after(_HELPER_TIMEOUT):
            result = await anyio.run_process(
                [program, "get"], input=server.encode(), check=False
            )
    except FileNotFoundError:
        raise CredentialHelperFailed(
            f"credential helper {program} for {host} is not installed",
            host=host,
            hint=f"install {program} or remove it from {config_path}",
        ) from None
    except TimeoutError:
        raise CredentialHelperFailed(
            f"credential helper {program} for {host} did not answer", host=host
        ) from None
    output = result.stdout.decode(errors="replace").strip()
    if result.returncode != 0:
        message = (output or result.stderr.decode(errors="replace")).strip()
        if "credentials not found" in message.lower():
            return None
        raise CredentialHelperFailed(
            f"credential helper {program} failed for {host}: {message[:200]}",
            host=host,
        )
    return _username_and_secret(output, program, host)


def _username_and_secret(output: str, program: str, host: str) -> tuple[str, str]:
    try:
        doc = json.loads(output)
    except ValueError:
        raise CredentialHelperFailed(
            f"credential helper {program} gave unreadable output for {host}",
            host=host,
        ) from None
    username, secret = doc.get("Username"), doc.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise CredentialHelperFailed(
            f"credential helper {program} gave no Username/Secret for {host}", host=host
        )
    return username, secret
