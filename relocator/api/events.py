"""
What a run tells its caller besides the engine's own events (`relocator.engine.events`).

Everything goes through one `ProgressSink`: the engine's progress, and the run's log
lines and lifecycle. The library prints nothing; the command line renders these.
"""

from __future__ import annotations

from dataclasses import dataclass

from relocator.engine.events import (
    BlobDone,
    BlobProgress,
    BlobStarted,
    Event,
    ImageDone,
    ImageFailed,
    ImagePlanned,
    ImageStarted,
    ListSink,
    ManifestPushed,
    Notice,
    NullSink,
    Planned,
    ProgressSink,
    PullsLow,
    RegistryRecovered,
    RegistryRetrying,
    Retrying,
    Swept,
)
from relocator.engine.report import Report
from relocator.transport import HostState

__all__ = [
    "BlobDone",
    "BlobProgress",
    "BlobStarted",
    "Event",
    "ImageDone",
    "ImageFailed",
    "ImagePlanned",
    "ImageStarted",
    "ListSink",
    "Log",
    "ManifestPushed",
    "Notice",
    "NullSink",
    "Planned",
    "ProgressSink",
    "PullsLow",
    "RegistryRecovered",
    "RegistryRetrying",
    "Retrying",
    "Summary",
    "Swept",
    "TransferEnded",
    "TransferStarted",
]


@dataclass(frozen=True, slots=True)
class Log(Event):
    """One line for people (kbld's `exporting N images...`, `final: X -> Y`...)."""

    text: str
    #: The line only repeats an event already sent (an `ImageFailed`): machine-readable
    #: output leaves it out.
    repeats: bool = False


@dataclass(frozen=True, slots=True)
class TransferStarted(Event):
    """Moving images begins: a live display starts now."""


@dataclass(frozen=True, slots=True)
class TransferEnded(Event):
    """
    Moving images ended (a live display stops now); `error` is what stopped it, None when
    it finished. Sent also when the run fails while finding bundles, before any transfer.
    """

    error: BaseException | None
    #: Each registry host's state at that moment: requests, retries, pull allowance.
    hosts: tuple[HostState, ...]


@dataclass(frozen=True, slots=True)
class Summary(Event):
    """The transfer's outcome, once its closing log lines are out."""

    #: What was done to the images: `imported`, `exported`, `copied`, `mirrored`.
    verb: str
    report: Report
    hosts: tuple[HostState, ...]
