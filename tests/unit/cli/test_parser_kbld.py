"""kbld's and imgpkg's spellings of flags on relocator's command line."""

from __future__ import annotations

import re
from pathlib import Path

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


def test_an_empty_registry_insecure_value_is_a_usage_error() -> None:
    """`--registry-insecure=` names neither a host nor a boolean: exit 2."""
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["resolve", "-f", "a", "--registry-insecure="])

    assert 2 == stopped.value.code


def test_destination_tag_schemes_are_the_engines() -> None:
    """The parser's choices (kept import-free for a fast `--help`) are the engine's."""
    from relocator.cli import flaggroups
    from relocator.engine.execute import TAG_SCHEMES

    assert TAG_SCHEMES == flaggroups.TAG_SCHEMES


@pytest.mark.parametrize("command", [
    ["resolve", "-f", "a"], ["relocate", "-f", "a", "-r", "r.example/x"],
    ["pkg", "-f", "a", "-o", "t"], ["unpkg", "-f", "a", "-i", "t", "-r", "r.example/x"],
])
def test_kbld_ui_flags_are_accepted_on_every_command(command: list[str]) -> None:
    """`--tty`, `--color`, `-y`, `--column`, `--sort` parse wherever kbld has them."""
    args = build_parser().parse_args(
        [*command, "--tty", "--color=false", "-y", "--column", "a", "--sort=false"]
    )

    assert (True, False, True, ["a"], False) == (
        args.tty, args.color, args.yes, args.column, args.sort
    )


@pytest.mark.parametrize("command", [
    ["relocate", "-f", "a", "-r", "r.example/x"], ["pkg", "-f", "a", "-o", "t"],
])
def test_cosign_signatures_is_include_referrers(command: list[str]) -> None:
    """imgpkg's `--cosign-signatures` switches `--include-referrers`."""
    assert build_parser().parse_args([*command, "--cosign-signatures"]).include_referrers


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0), ("45", 45.0)],
)
def test_response_header_timeout_takes_go_durations(text: str, expected: float) -> None:
    """imgpkg's `--registry-response-header-timeout` is a Go duration (ms|s|m|h)."""
    args = build_parser().parse_args(
        ["relocate", "-f", "a", "-r", "r.example/x", "--registry-response-header-timeout", text]
    )

    assert expected == args.registry_response_header_timeout


@pytest.mark.parametrize("text", ["", "0s", "soon", "5x", "-1s"])
def test_a_bad_duration_is_a_usage_error(text: str) -> None:
    """Not a positive duration: argparse's usage error (exit 2)."""
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(
            ["relocate", "-f", "a", "-r", "r.example/x",
             f"--registry-response-header-timeout={text}"]
        )

    assert 2 == stopped.value.code


# Every flag of kbld 0.42 (resolve, pkg, unpkg, relocate, UI) and imgpkg 0.43 copy, from
# their command sources.
KBLD_FLAGS = (
    "--file", "--sort", "--registry-ca-cert-path", "--registry-verify-certs",
    "--registry-insecure", "--build", "--build-concurrency", "--images-annotation",
    "--origins-annotation", "--image-map-file", "--lock-output", "--imgpkg-lock-output",
    "--unresolved-inspect", "--platform", "--output", "--concurrency", "--input",
    "--repository", "--tty", "--color", "--json", "--yes", "--column",
)
IMGPKG_COPY_FLAGS = (
    "--bundle", "--image", "--lock", "--tar", "--to-repo", "--to-tar", "--resume",
    "--lock-output", "--concurrency", "--include-non-distributable-layers",
    "--repo-based-tags", "--cosign-signatures", "--registry-ca-cert-path",
    "--registry-verify-certs", "--registry-insecure", "--registry-username",
    "--registry-password", "--registry-token", "--registry-anon",
    "--registry-response-header-timeout", "--registry-retry-count", "--debug",
    "--tty", "--color", "--json", "--yes", "--column",
)


def test_the_migration_guide_names_every_kbld_and_imgpkg_flag() -> None:
    """docs/migration.md says what relocator does with each of their flags."""
    guide = (Path(__file__).parents[3] / "docs" / "migration.md").read_text()
    short = {"--file": "-f", "--output": "-o", "--input": "-i", "--repository": "-r",
             "--yes": "-y", "--bundle": "-b", "--image": "-i"}

    def named(flag: str) -> bool:
        return any(
            re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", guide)
            for name in (flag, short.get(flag, flag))
        )

    assert [] == [flag for flag in (*KBLD_FLAGS, *IMGPKG_COPY_FLAGS) if not named(flag)]
