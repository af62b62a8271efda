"""
The commands: each hands its request to `relocator.api.run` and renders what comes
back. Log lines and progress arrive as events on the way (`Output`, on stderr, with
kbld's prefixes: `resolve |`, `relocate |`, `package |`, `unpackage |`); the rewritten
YAML (or the digest copied) goes to stdout once the run succeeded.
"""

from __future__ import annotations

import sys

from relocator.api import Request, Result, run
from relocator.api.events import Notice
from relocator.errors import InputError

from .arguments import Invocation
from .mirrorcheck import report_check
from .output import Output


async def resolve(invocation: Invocation) -> int:
    """`relocator resolve`: resolve every found reference to a digest and print the YAML."""
    await _run(invocation, "resolve")
    return 0


async def relocate(invocation: Invocation) -> int:
    """`relocator relocate`: copy every image to its destination, registry to registry."""
    await _run(invocation, "relocate")
    return 0


async def plan(invocation: Invocation) -> int:
    """`relocator plan`: walk the sources once and write the plan of a relocate."""
    await _run(invocation, "plan")
    return 0


async def pkg(invocation: Invocation) -> int:
    """`relocator pkg`: export every referenced image into one tarball, each blob once."""
    await _run(invocation, "package")
    return 0


async def unpkg(invocation: Invocation) -> int:
    """`relocator unpkg`: import every image of a tarball, with no access to its source."""
    await _run(invocation, "unpackage")
    return 0


async def copy(invocation: Invocation) -> int:
    """`relocator copy`: copy one image to a repository (and tag), print its digest."""
    await _run(invocation, "copy")
    return 0


async def mirror(invocation: Invocation) -> int:
    """`relocator mirror`: copy what the config selects to its destinations, or check."""
    if invocation.check_with_report:
        raise InputError(
            "--report describes a transfer and --check copies nothing",
            hint="use --json for the check's result",
        )
    await _run(invocation, "mirror")
    return 0


async def _run(invocation: Invocation, prefix: str) -> Result:
    """Run the request with `Output` as its sink; print what the result holds for stdout."""
    request: Request | None = invocation.request
    if request is None:  # pragma: no cover - main runs commands with a request only
        raise InputError(f"{prefix}: nothing to run")
    out = Output(invocation.display, prefix)
    for notice in invocation.notices:
        out.emit(Notice(notice))
    async with out.showing():
        result = await run(request, sink=out)
    if result.check is not None:
        report_check(out, result.check)
    if result.yaml is not None:
        sys.stdout.write(result.yaml)
    if result.copied is not None:
        sys.stdout.write(f"{result.copied.digest}\n")
    return result
