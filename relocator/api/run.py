"""
The one way in: `run(request)` checks the request, runs its job and returns the
`Result`, sending events to an optional sink on the way.
"""

from __future__ import annotations

from relocator.engine.events import ProgressSink
from relocator.errors import InputError
from relocator.oci import Platform
from relocator.outfiles import check_output

from .copy import copy
from .mirror import mirror
from .pkg import check_pkg, pkg
from .planning import make_plan_file
from .relocate import relocate
from .requests import (
    CopyRequest,
    MirrorRequest,
    PkgRequest,
    PlanRequest,
    RelocateRequest,
    Request,
    ResolveRequest,
    UnpkgRequest,
)
from .resolve import resolve
from .result import Result
from .session import Session
from .targets import Destinations, parse_platforms
from .unpkg import unpkg


async def run(request: Request, *, sink: ProgressSink | None = None) -> Result:
    """
    Run the job `request` asks for. Events (the engine's progress, log lines, the
    transfer's start, end and summary) go to `sink`; nothing is printed.

    Raises:
        InputError: The request cannot be run as asked (checked first: an output path
            that must not be replaced, a format that cannot hold what is asked...).
        Incomplete: With `keep_going`, some images failed and the others were finished.
        RelocatorError: What stopped the run (see `relocator.errors`).
    """
    check(request)
    session = Session(sink)
    if isinstance(request, ResolveRequest):
        return await resolve(request, session)
    if isinstance(request, RelocateRequest):
        return await relocate(request, session)
    if isinstance(request, PlanRequest):
        return await make_plan_file(request, session)
    if isinstance(request, PkgRequest):
        return await pkg(request, session)
    if isinstance(request, UnpkgRequest):
        return await unpkg(request, session)
    if isinstance(request, CopyRequest):
        return await copy(request, session)
    if isinstance(request, MirrorRequest):
        return await mirror(request, session)
    raise InputError(f"not a request: {type(request).__name__}")


def check(request: Request) -> None:
    """
    Refuse, before anything is read or fetched, what the request cannot do: a run must
    not spend an hour moving images only to fail at the last write, nor on a typo in a
    template or a platform.

    Raises:
        InputError: The first problem, naming its culprit.
    """
    if isinstance(request, PkgRequest):
        check_output(request.output, flag="--output")
        check_pkg(request)
    if isinstance(request, PlanRequest):
        check_output(request.output, flag="--output")
        Destinations.of_request(request.repository, request.repository_template)
    if isinstance(request, RelocateRequest) and request.plan is not None and request.platforms:
        # The plan leaves the index out; the new names need it (see relocate_planned).
        raise InputError(f"--plan {request.plan} cannot be combined with --platform",
                         hint="copy those platforms without a plan file")
    if isinstance(request, ResolveRequest | RelocateRequest | UnpkgRequest):
        if request.locks.kbld:
            check_output(request.locks.kbld, flag="--lock-output")
        if request.locks.imgpkg:
            check_output(request.locks.imgpkg, flag="--imgpkg-lock-output")
    if isinstance(request, RelocateRequest | UnpkgRequest):
        Destinations.of_request(request.repository, request.repository_template)
    if isinstance(request, RelocateRequest | CopyRequest):
        parse_platforms(request.platforms)
    if isinstance(request, ResolveRequest) and request.platform:
        Platform.parse(request.platform)
