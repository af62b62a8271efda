"""The display options of a command: how its run is shown, nothing of what it does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: `--progress`: how progress is shown on stderr.
ProgressMode = Literal["auto", "tty", "plain", "none"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Display:
    """The output flags of a command: how its run is shown, nothing of what it does."""

    progress: ProgressMode = "auto"
    quiet: bool = False
    json: bool = False
    #: `--report FILE`: the final report as JSON, with any display.
    report: str | None = None
    debug: bool = False
