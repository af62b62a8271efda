"""
Where the documentation is, so that `--help` names files that exist.

A wheel carries the documents `--help` names inside the package (`relocator/docs/`,
see `force-include` in pyproject.toml); a clone, or an editable install of one, has them
in the source tree's `docs/`.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]


def docs_dir() -> Path:
    """The directory holding user-guide.md, cli.md, mirror.md, report.schema.json..."""
    shipped = _PACKAGE / "docs"
    if shipped.is_dir():
        return shipped
    return _PACKAGE.parent / "docs"
