"""
Environment variables for the registry flags, so that a CI job can set them once.

`RELOCATOR_REGISTRY_INSECURE` and `RELOCATOR_REGISTRY_CA_CERT_PATH` (comma-separated)
add to `--registry-insecure` and `--registry-ca-cert-path` (`RELOCATOR_REGISTRY_INSECURE=true`
is the bare kbld flag: every registry may fall back to plain http);
`RELOCATOR_REGISTRY_VERIFY_CERTS` is the default of `--registry-verify-certs`, which
wins when given. kbld and imgpkg have no variables for these (imgpkg even refuses
unknown `IMGPKG_REGISTRY_*` ones), so there are no KBLD_ or IMGPKG_ spellings.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from relocator.errors import InputError

INSECURE = "RELOCATOR_REGISTRY_INSECURE"
CA_CERT_PATH = "RELOCATOR_REGISTRY_CA_CERT_PATH"
VERIFY_CERTS = "RELOCATOR_REGISTRY_VERIFY_CERTS"

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def apply(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    """
    Fill the registry flags of `args` (if its command has them) from `env`.

    Raises:
        InputError: `RELOCATOR_REGISTRY_VERIFY_CERTS` is not a boolean.
    """
    if not hasattr(args, "registry_insecure"):
        return
    named = _items(env.get(INSECURE))
    if any(item.lower() in _TRUE for item in named):
        args.registry_insecure_all = True
    hosts = [item for item in named if item.lower() not in _TRUE | _FALSE]
    args.registry_insecure = [*hosts, *args.registry_insecure]
    args.registry_ca_cert_path = [*_items(env.get(CA_CERT_PATH)), *args.registry_ca_cert_path]
    if args.registry_verify_certs is None:
        text = env.get(VERIFY_CERTS, "").strip().lower()
        if text and text not in _TRUE | _FALSE:
            raise InputError(f"{VERIFY_CERTS}: expected true or false, got '{text}'")
        args.registry_verify_certs = text not in _FALSE


def _items(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]
