"""kbld's and imgpkg's spellings of flags on relocator's command line."""

from __future__ import annotations

import pytest

from relocator.cli.parser import build_parser


@pytest.mark.parametrize(
    ("argv", "expected_all", "expected_hosts"),
    [
        ([], False, []),
        (["--registry-insecure"], True, []),
        (["--registry-insecure", "-f", "b.yml"], True, []),
        (["--registry-insecure=true"], True, []),
        (["--registry-insecure=True"], True, []),
        (["--registry-insecure=false"], False, []),
        (["--registry-insecure", "true"], True, []),
        (["--registry-insecure", "reg:5000"], False, ["reg:5000"]),
        (["--registry-insecure=reg:5000", "--registry-insecure", "b"], False, ["reg:5000", "b"]),
        (["--registry-insecure", "reg:5000", "--registry-insecure"], True, ["reg:5000"]),
    ],
)
def test_registry_insecure_is_kbld_boolean_and_a_host_list(
    argv: list[str], expected_all: bool, expected_hosts: list[str]
) -> None:
    """Bare or a boolean word: every registry; anything else: one host; never a host `true`."""
    args = build_parser().parse_args(["resolve", "-f", "a.yml", *argv])

    assert (expected_all, expected_hosts) == (args.registry_insecure_all, args.registry_insecure)


def test_destination_tag_schemes_are_the_engines() -> None:
    """The parser's choices (kept import-free for a fast `--help`) are the engine's."""
    from relocator.cli import parser
    from relocator.engine.execute import TAG_SCHEMES

    assert TAG_SCHEMES == parser.TAG_SCHEMES
