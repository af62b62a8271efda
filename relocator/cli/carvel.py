"""
kbld's and imgpkg's flags that have a counterpart in relocator, turned into it.

The flags themselves are in `relocator.cli.parser`; docs/migration.md lists each.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from relocator import config
from relocator.errors import InputError
from relocator.oci import Repository
from relocator.transport import Credential, Keychain, TransportSettings


def with_imgpkg_limits(settings: TransportSettings, args: argparse.Namespace) -> TransportSettings:
    """`settings` with imgpkg's `--registry-retry-count` and response timeout, if given."""
    retries = getattr(args, "registry_retry_count", None)
    if retries is not None:
        settings = dataclasses.replace(
            settings, retry=dataclasses.replace(settings.retry, attempts=retries)
        )
    stall = getattr(args, "registry_response_header_timeout", None)
    if stall is not None:
        # relocator has no wait for headers alone: its stall timeout covers headers and
        # every later pause of a body, so the same bound applies there too.
        settings = dataclasses.replace(settings, read_timeout=stall)
    return settings


def keychain(args: argparse.Namespace) -> Keychain:
    """
    Where credentials come from. imgpkg's `--registry-username`, `--registry-password`
    and `--registry-token` pin one for the destination registry (`-r`) only: imgpkg
    sends it to every registry, which would hand it to the source registries too.

    Raises:
        InputError: Those flags with `--repository-template` (no single destination),
            or a password without a username.
    """
    username = getattr(args, "registry_username", None)
    password = getattr(args, "registry_password", None)
    token = getattr(args, "registry_token", None)
    anonymous = bool(getattr(args, "registry_anon", False))
    if username is None and password is None and token is None:
        return Keychain(anonymous=anonymous)
    if password is not None and username is None:
        raise InputError("--registry-password needs --registry-username")
    if getattr(args, "repository", None) is None:
        raise InputError(
            "--registry-username/--registry-password/--registry-token need -r; with "
            "--repository-template set RELOCATOR_REGISTRY_HOSTNAME/_USERNAME/_PASSWORD "
            "for each destination registry"
        )
    host = Repository.parse(args.repository).registry
    credential = Credential(
        username=username,
        password=password,
        registry_token=token,
        source="--registry-username" if username is not None else "--registry-token",
    )
    return Keychain(pinned={host: credential}, anonymous=anonymous)


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


def with_image_map(inputs: config.Inputs, path: str) -> config.Inputs:
    """
    kbld's `--image-map-file`: a CNAB relocation mapping (a JSON object, each image as
    written -> its new image) as preresolved overrides after the config's own.

    Raises:
        InputError: The file is unreadable or not such an object.
    """
    try:
        mapping = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"--image-map-file {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise InputError(f"--image-map-file {path}: not JSON") from None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise InputError(
            f"--image-map-file {path}: expected a JSON object of image -> relocated image"
        )
    extra = tuple(
        config.Override(image=k, new_image=v, preresolved=True, where=path)
        for k, v in mapping.items()
    )
    found = tuple(
        f if f.override is not None
        else dataclasses.replace(f, override=next((o for o in extra if o.matches(f.value)), None))
        for f in inputs.found
    )
    merged = dataclasses.replace(inputs.config, overrides=(*inputs.config.overrides, *extra))
    return dataclasses.replace(inputs, config=merged, found=found)


def unresolved_inspect(inputs: config.Inputs) -> str:
    """kbld's `--unresolved-inspect` output: `- image: REF` per found reference, sorted."""
    values = sorted({f.value for f in inputs.found_images()})
    if not values:
        return "[]\n"
    return "".join(f"- image: {json.dumps(v) if _needs_quotes(v) else v}\n" for v in values)


def _needs_quotes(value: str) -> bool:
    # Plain references need no quoting; anything YAML could misread is quoted.
    return not value or not all(c.isalnum() or c in "./:@_-" for c in value) or value[0] in "-:@"
