"""`--limit NAME=N`: what it accepts, and defaults that match the caps the code applies."""

from __future__ import annotations

import argparse

import pytest

from relocator.cli.arguments import limits_of
from relocator.cli.flagtypes import LIMIT_DEFAULTS
from relocator.cli.parser import build_parser
from relocator.config import MAX_INPUT_BYTES
from relocator.engine.limits import Limits


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["relocate", "-f", "x.yml", "-r", "r.example/a", *argv])


def test_the_documented_defaults_are_the_caps_the_code_applies() -> None:
    """The defaults `--help` and docs/cli.md show are those of `Limits` and the inputs."""
    default = Limits()

    assert {
        "index-entries": default.index_entries,
        "layers": default.layers,
        "plan-manifest-bytes": default.plan_manifest_bytes,
        "input-bytes": MAX_INPUT_BYTES,
    } == LIMIT_DEFAULTS


def test_limits_take_plain_numbers_and_binary_sizes_the_last_one_winning() -> None:
    """`K`, `M` and `G` (with or without `iB`) are powers of 1024; a later flag wins."""
    args = _parse("--limit", "layers=5", "--limit", "index-entries=2k",
                  "--limit", "plan-manifest-bytes=3MiB", "--limit", "layers=7")

    assert Limits(index_entries=2048, layers=7, plan_manifest_bytes=3 * 1024 * 1024) == (
        limits_of(args)
    )


def test_no_limit_flag_means_the_defaults() -> None:
    """Without `--limit` the caps are the defaults."""
    assert Limits() == limits_of(_parse())


@pytest.mark.parametrize(
    "text", ["layers", "layers=", "layers=0", "layers=-1", "layers=1.5", "layers=2T",
             "layers=٣", "bogus=3", "=3"],
)
def test_malformed_limits_are_usage_errors(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A limit that is not a known NAME with a positive number exits with code 2."""
    with pytest.raises(SystemExit) as stopped:
        _parse("--limit", text)

    assert 2 == stopped.value.code
    assert "--limit" in capsys.readouterr().err
