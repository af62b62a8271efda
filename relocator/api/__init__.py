"""
relocator's public Python API: one typed request in, one `Result` out.

    result = await run(RelocateRequest(files=["app.yml"], repository="reg.example/team"))

Every job (resolve, relocate, pkg, unpkg, copy, mirror) is a frozen request; `run`
checks it, runs it, streams events to an optional sink and returns the outcome. The
command line is a translator onto this API; docs/api.md describes what stays stable.
"""

from __future__ import annotations

from relocator.engine import Limits, Shard
from relocator.transport import HostState, RetryPolicy, TransportSettings

from . import events
from .events import Event, Log, ProgressSink, Summary, TransferEnded, TransferStarted
from .mirrorcheck import Check, Findings, Stale
from .requests import (
    CopyRequest,
    Credentials,
    LockFiles,
    MirrorRequest,
    PkgRequest,
    PlanRequest,
    Registries,
    RelocateRequest,
    Request,
    ResolveRequest,
    TagScheme,
    Transfer,
    UnpkgRequest,
)
from .result import Incomplete, Result
from .run import check, run

__all__ = [
    "Check",
    "CopyRequest",
    "Credentials",
    "Event",
    "Findings",
    "HostState",
    "Incomplete",
    "Limits",
    "LockFiles",
    "Log",
    "MirrorRequest",
    "PkgRequest",
    "PlanRequest",
    "ProgressSink",
    "Registries",
    "RelocateRequest",
    "Request",
    "ResolveRequest",
    "Result",
    "RetryPolicy",
    "Shard",
    "Stale",
    "Summary",
    "TagScheme",
    "Transfer",
    "TransferEnded",
    "TransferStarted",
    "TransportSettings",
    "UnpkgRequest",
    "check",
    "events",
    "run",
]
