"""What a run returns, and the error a run with failed images ends with."""

from __future__ import annotations

from dataclasses import dataclass

from relocator.engine.report import Report
from relocator.errors import PartialFailure
from relocator.oci import Reference
from relocator.transport import HostState

from .mirrorcheck import Check


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """The outcome of one run."""

    #: What moved (None for resolve, a dry run and a mirror check).
    report: Report | None = None
    #: The inputs with every reference rewritten (resolve, relocate, unpkg): what the
    #: command line prints on stdout. Lock files are written already.
    yaml: str | None = None
    #: The image a copy copied, by digest.
    copied: Reference | None = None
    #: A dry run's plan, as text: totals, then one line per image.
    plan: str | None = None
    #: What a mirror check found.
    check: Check | None = None
    #: Each registry host's state at the end.
    hosts: tuple[HostState, ...] = ()


class Incomplete(PartialFailure):
    """
    With `keep_going`, some images failed and the others were finished; no lock file
    was written and no YAML is given. `result` holds the report with the failures.
    """

    def __init__(self, message: str, *, result: Result, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result
