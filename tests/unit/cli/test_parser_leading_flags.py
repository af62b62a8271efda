"""kbld's registry flags written before the command, as cobra lets kbld users write them."""

from __future__ import annotations

import argparse

import pytest

from relocator.cli import typos
from relocator.cli.parser import build_parser


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse `argv` as `relocator` does."""
    parser = build_parser()
    return parser.parse_args(typos.check(parser, argv))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--registry-insecure", "pkg", "-f", "a", "-o", "t"],
         ("pkg", True, [], None, [])),
        (["--registry-insecure=true", "--registry-verify-certs=false", "relocate", "-f", "a",
          "-r", "r.example/x"],
         ("relocate", True, [], False, [])),
        (["--registry-insecure", "reg:5000", "unpkg", "-f", "a", "-i", "t", "-r", "r.example/x"],
         ("unpkg", False, ["reg:5000"], None, [])),
        (["--registry-verify-certs", "false", "--registry-ca-cert-path", "ca.pem",
          "--registry-ca-cert-path=b.pem", "--registry-insecure", "resolve", "-f", "a"],
         ("resolve", True, [], False, ["ca.pem", "b.pem"])),
        (["--registry-verify-certs", "package", "-f", "a", "-o", "t",
          "--registry-insecure", "h:1"],
         ("package", False, ["h:1"], True, [])),
        (["--registry-insecure", "-f", "a"],
         ("resolve", True, [], None, [])),
    ],
    ids=["bare-pkg", "booleans-relocate", "host-unpkg", "all-three-resolve",
         "alias-and-after", "default-command"],
)
def test_registry_flags_before_the_command_apply_to_it(
    argv: list[str], expected: tuple[object, ...]
) -> None:
    """
    `relocator --registry-insecure pkg ...` is `relocator pkg --registry-insecure ...`
    (so for `--registry-ca-cert-path` and `--registry-verify-certs`): the command is
    never taken for a host or a boolean, and flags after the command still count.
    """
    args = parse(argv)

    assert expected == (
        args.command, args.registry_insecure_all, args.registry_insecure,
        args.registry_verify_certs, args.registry_ca_cert_path,
    )


def test_other_flags_before_the_command_stay_a_usage_error() -> None:
    """Only the registry flags move: `relocator -o t pkg` is still refused (exit 2)."""
    with pytest.raises(SystemExit) as stopped:
        parse(["-o", "t", "pkg", "-f", "a"])

    assert 2 == stopped.value.code
