"""
What the engine tells the outside world while it works.

Events are frozen values pushed through a `ProgressSink`; the engine never draws
anything. The CLI turns them into progress bars, periodic CI lines or JSON lines.
`emit` is called on the hot path (once per chunk for byte progress), so sinks must
only record and return: no I/O, no blocking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from relocator.errors import tidy
from relocator.transport.hosts import HostNews, HostRecovered, HostRetrying


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every engine event."""


@dataclass(frozen=True, slots=True)
class Planned(Event):
    """The plan is known: what will move and what is already there."""

    images: int
    images_present: int
    manifests: int
    blobs: int
    blobs_present: int
    #: Bytes of the blobs that will be transferred (after skipping what is present).
    bytes_to_move: int
    bytes_present: int


@dataclass(frozen=True, slots=True)
class ImagePlanned(Event):
    """One top-level image is planned: what it still needs at the destination."""

    source: str
    destination: str
    #: The destination already has the image (nothing to do but check its tag).
    present: bool
    #: Blobs of the image the destination lacks, and their bytes.
    blobs_to_move: int
    bytes_to_move: int


@dataclass(frozen=True, slots=True)
class ImageStarted(Event):
    """Work on one top-level image began (planning it)."""

    source: str
    destination: str


@dataclass(frozen=True, slots=True)
class ImageDone(Event):
    """A top-level image is complete at the destination (and tagged)."""

    source: str
    destination: str
    #: "copied", or "present" when the destination already had it.
    how: Literal["copied", "present"]


@dataclass(frozen=True, slots=True)
class ImageFailed(Event):
    """A top-level image could not be completed."""

    source: str
    error: str


@dataclass(frozen=True, slots=True)
class BlobStarted(Event):
    """A blob transfer started."""

    digest: str
    size: int
    destination: str


@dataclass(frozen=True, slots=True)
class BlobProgress(Event):
    """Bytes of a blob transferred so far (absolute, so a restart can go backwards)."""

    digest: str
    done: int
    size: int


@dataclass(frozen=True, slots=True)
class BlobDone(Event):
    """A blob is at the destination."""

    digest: str
    size: int
    #: How it got there.
    how: Literal["copied", "mounted", "present", "excluded"]


@dataclass(frozen=True, slots=True)
class Swept(Event):
    """A shard swept the whole plan: what it pushed, and what still waits on other shards."""

    shard: str
    manifests_pushed: int
    #: Manifests whose blobs or children another shard has not landed yet.
    manifests_waiting: int


@dataclass(frozen=True, slots=True)
class ManifestPushed(Event):
    """A manifest or index was written to the destination."""

    reference: str


@dataclass(frozen=True, slots=True)
class Retrying(Event):
    """A whole operation (a blob copy) failed and is retried from scratch."""

    what: str
    attempt: int
    error: str
    delay: float


@dataclass(frozen=True, slots=True)
class RegistryRetrying(Event):
    """Requests to a registry started failing and are retried (once until it recovers)."""

    host: str
    error: str
    delay: float


@dataclass(frozen=True, slots=True)
class RegistryRecovered(Event):
    """A registry whose requests were being retried answers again."""

    host: str
    #: Retries the outage cost, and how long it lasted in seconds.
    retries: int
    seconds: float


@dataclass(frozen=True, slots=True)
class PullsLow(Event):
    """A registry's pull allowance runs low; it now gets one request at a time."""

    host: str
    remaining: int
    limit: int
    #: The allowance's window in seconds (None: the registry did not say).
    window: int | None


def host_event(news: HostNews) -> Event:
    """The event telling what the transport noticed about a registry host."""
    if isinstance(news, HostRetrying):
        return RegistryRetrying(news.host, news.error, news.delay)
    if isinstance(news, HostRecovered):
        return RegistryRecovered(news.host, news.retries, news.seconds)
    return PullsLow(news.host, news.remaining, news.limit, news.window)


@dataclass(frozen=True, slots=True)
class Notice(Event):
    """Something the user should know that does not stop the run."""

    message: str

    def __post_init__(self) -> None:
        # Warnings quote outside values (tags, names) as errors do: one line, capped.
        object.__setattr__(self, "message", tidy(self.message))


class ProgressSink(Protocol):
    """Receives engine events. Must return quickly: it runs on the data path."""

    def emit(self, event: Event) -> None:
        """Record one event."""
        ...


class NullSink:
    """A sink that ignores everything (library use, tests)."""

    def emit(self, event: Event) -> None:
        """Ignore `event`."""


class ListSink:
    """A sink that keeps every event (tests)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        """Keep `event`."""
        self.events.append(event)
