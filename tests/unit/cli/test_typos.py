"""
Typos get named first, with the nearest valid spelling, under the usage of the command
they belong to; the exit status is 2, the usage error of docs/cli.md.
"""

from __future__ import annotations

import pytest

from relocator.cli import typos
from relocator.cli.main import run
from relocator.cli.parser import build_parser


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[str, str]:
    """The first usage line and the error line of a run that must exit 2."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        run(argv)
    assert 2 == exited.value.code
    lines = capsys.readouterr().err.splitlines()
    return lines[0], lines[-1]


@pytest.mark.parametrize(
    ("argv", "usage", "error"),
    [
        (
            ["resolve", "-f", "app.yml", "--lock-ouput", "app.lock"],
            "usage: relocator resolve",
            ("relocator resolve: error: unrecognized argument --lock-ouput "
            "(did you mean --lock-output?)"),
        ),
        (
            # Without the typo check argparse reports the missing -r/--repository.
            ["relocate", "-f", "app.lock", "--repositry", "registry.internal/app"],
            "usage: relocator relocate",
            ("relocator relocate: error: unrecognized argument --repositry "
            "(did you mean --repository?)"),
        ),
        (
            ["pkg", "-f", "app.lock", "--output=images.tar", "--reusme"],
            "usage: relocator pkg",
            "relocator pkg: error: unrecognized argument --reusme (did you mean --resume?)",
        ),
        (
            ["unpkg", "-f", "app.lock", "-i", "images.tar", "-r", "x/y",
             "--lock-output=l", "--preserve-tag=yes", "--dry-rn"],
            "usage: relocator unpkg",
            "relocator unpkg: error: unrecognized argument --dry-rn (did you mean --dry-run?)",
        ),
        (
            ["relocat", "-f", "app.lock"],
            "usage: relocator [-h]",
            "relocator: error: unknown command 'relocat' (did you mean relocate?)",
        ),
        (
            ["pkg", "app.lock", "--output", "images.tar"],
            "usage: relocator pkg",
            "relocator pkg: error: unrecognized argument 'app.lock' (did you mean -f app.lock?)",
        ),
        (
            # copy takes SRC and DST; a third bare word is not one of them.
            ["copy", "reg.example/a:1", "reg.example/b:1", "extra"],
            "usage: relocator copy",
            "relocator copy: error: unrecognized argument 'extra'",
        ),
        (
            # The default command: a top-level flag is the likelier meaning.
            ["--verison"],
            "usage: relocator resolve",
            ("relocator resolve: error: unrecognized argument --verison "
            "(did you mean --version?)"),
        ),
        (
            ["pkg", "-f", "a", "-o", "b", "--include"],
            "usage: relocator pkg",
            ("relocator pkg: error: ambiguous argument --include: "
            "--include-non-distributable-layers or --include-referrers?"),
        ),
    ],
)
def test_typo_is_named_with_the_nearest_spelling(
    capsys: pytest.CaptureFixture[str], argv: list[str], usage: str, error: str
) -> None:
    """The first unknown command, flag or stray word is the error, with a suggestion."""
    first, last = _usage_error(capsys, argv)

    assert first.startswith(usage), first
    assert error == last


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # Values of flags, clusters, `=` forms, optional values and prefixes are not typos.
        (
            ["resolve", "-qf", "-", "--registry-verify-certs", "--lock-out=x", "--platform",
             "--not-a-flag-but-a-value"],
            None,
        ),
        (["relocate", "-fapp.lock", "--repository", "-r", "--concurrency", "-1"], None),
        (
            ["pkg", "-f", "a", "--output", "b", "--registry-verify-certs", "false", "--resume",
             "--", "--anything"],
            None,
        ),
        (["-f", "app.yml", "--lock-output", "app.lock"],
         ["resolve", "-f", "app.yml", "--lock-output", "app.lock"]),
        (["--version"], None),
        ([], None),
        (["copy", "reg.example/a:1", "reg.example/b:1", "--dry-run"], None),
    ],
)
def test_valid_spellings_are_left_to_argparse(
    argv: list[str], expected: list[str] | None
) -> None:
    """Arguments argparse accepts pass the typo check unchanged (or given `resolve`)."""
    actual = typos.check(build_parser(), argv)

    assert (argv if expected is None else expected) == actual
