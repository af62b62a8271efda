"""The CLI reference in docs/ is the parser's own description."""

from __future__ import annotations

from pathlib import Path

from relocator.cli.reference import render

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_cli_reference_matches_the_parser() -> None:
    """
    docs/cli.md is exactly what `python -m relocator.cli.reference` renders, so a flag
    added, removed or reworded without regenerating the reference fails here.
    """
    expected = render()

    actual = (DOCS / "cli.md").read_text(encoding="utf-8")

    assert expected == actual, "regenerate: python -m relocator.cli.reference > docs/cli.md"


def test_reference_lists_every_command_and_exit_code() -> None:
    """Each command has a section and the exit code table names codes 0 to 9, 130 and 143."""
    text = render()

    for command in ("resolve", "relocate", "pkg", "unpkg"):
        assert f"## relocator {command}" in text
    for code in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 130, 143):
        assert f"| {code} |" in text
