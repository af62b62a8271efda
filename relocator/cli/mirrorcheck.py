"""
`relocator mirror --check`, shown: a line per finding (or one `MirrorCheck` JSON
object), and the exit code that says whether the mirror is in sync.
"""

from __future__ import annotations

from relocator.api import Check
from relocator.api.display import count
from relocator.errors import OutOfSync, PartialFailure

from .output import Output


def report_check(out: Output, check: Check) -> None:
    """
    Say what the check found and end the command accordingly.

    Raises:
        OutOfSync: Something is missing or stale (exit 10).
        PartialFailure: In sync as far as could be checked, but sources failed.
    """
    findings, failures = check.findings, check.failures
    out.step_summary(findings.markdown(failures))
    if out.display == "json":
        out.document(findings.document(failures))
    else:
        for job in findings.missing:
            out.line(f"missing: {job.source} -> {job.target}")
        for stale in findings.stale:
            out.line(f"stale: {stale.tag} is {stale.found}, the source has {stale.expected}")
        for reference in findings.untagged:
            out.line(f"untagged: {reference} (the image is there, the tag is not)")
    if not findings.in_sync:
        counts = [
            f"{count(len(findings.missing), 'image')} missing" if findings.missing else "",
            f"{count(len(findings.stale), 'tag')} stale" if findings.stale else "",
            f"{count(len(findings.untagged), 'tag')} missing" if findings.untagged else "",
        ]
        raise OutOfSync(
            f"mirror out of date: {', '.join(c for c in counts if c)} "
            f"(of {count(findings.images, 'image')}, {count(findings.tags, 'tag')})",
            hint="run relocator mirror without --check to bring it up to date",
        )
    if failures:
        raise PartialFailure(
            f"{count(len(failures), 'source')} could not be checked; the others are in sync",
            hint="see the failed sources above",
        )
    out.line(
        f"in sync: {count(findings.images, 'image')} and {count(findings.tags, 'tag')} "
        "at their destinations"
    )
