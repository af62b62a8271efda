"""The environment variables of the registry flags, as `relocator.cli.registryenv` applies them."""

from __future__ import annotations

import argparse

import pytest

from relocator.cli import registryenv
from relocator.errors import InputError


def _args(**given: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "registry_insecure": [], "registry_insecure_all": False,
        "registry_ca_cert_path": [], "registry_verify_certs": None,
    }
    return argparse.Namespace(**{**values, **given})


@pytest.mark.parametrize(
    ("value", "hosts", "every_registry"),
    [
        ("a.example:5000, b.example", ["a.example:5000", "b.example", "flag.example"], False),
        ("true", ["flag.example"], True),
        ("b.example,TRUE", ["b.example", "flag.example"], True),
        ("false", ["flag.example"], False),
        ("", ["flag.example"], False),
    ],
)
def test_insecure_hosts_come_before_the_flags_and_true_is_the_bare_flag(
    value: str, hosts: list[str], every_registry: bool
) -> None:
    """
    RELOCATOR_REGISTRY_INSECURE lists hosts, added before those of the flag; `true` is
    kbld's bare `--registry-insecure` (every registry may fall back to plain http).
    """
    args = _args(registry_insecure=["flag.example"])

    registryenv.apply(args, {"RELOCATOR_REGISTRY_INSECURE": value})

    assert (hosts, every_registry) == (args.registry_insecure, args.registry_insecure_all)


def test_verify_certs_takes_a_boolean_and_the_flag_wins() -> None:
    """RELOCATOR_REGISTRY_VERIFY_CERTS sets the default; anything but a boolean is refused."""
    off, given = _args(), _args(registry_verify_certs=True)
    registryenv.apply(off, {"RELOCATOR_REGISTRY_VERIFY_CERTS": "false"})
    registryenv.apply(given, {"RELOCATOR_REGISTRY_VERIFY_CERTS": "false"})

    assert (False, True) == (off.registry_verify_certs, given.registry_verify_certs)
    with pytest.raises(InputError, match="expected true or false"):
        registryenv.apply(_args(), {"RELOCATOR_REGISTRY_VERIFY_CERTS": "maybe"})
