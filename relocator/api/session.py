"""
One run's connection to its caller and to the registries: where its events go, and
the HTTP client it opens (at most one at a time), whose host states end the run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from relocator.engine.events import Event, Notice, NullSink, ProgressSink, host_event
from relocator.transport import Hosts, HostState, HttpClient, TransportSettings

from .events import Log, TransferEnded
from .registries import keychain
from .requests import Registries


class Session:
    """The sink of one run, with the log lines and host states it sends."""

    def __init__(self, sink: ProgressSink | None) -> None:
        self.sink: ProgressSink = sink or NullSink()
        self._hosts: Hosts | None = None

    def emit(self, event: Event) -> None:
        """Send `event` to the caller."""
        self.sink.emit(event)

    def log(self, text: str, *, repeats: bool = False) -> None:
        """Send one log line."""
        self.sink.emit(Log(text, repeats=repeats))

    def hosts(self) -> tuple[HostState, ...]:
        """Each registry host's state now (none before a client was opened)."""
        return tuple(self._hosts.states()) if self._hosts is not None else ()

    def failed(self, error: BaseException) -> None:
        """Say that the transfer (or what prepares it) stopped on `error`."""
        self.emit(TransferEnded(error, self.hosts()))

    @asynccontextmanager
    async def client(
        self, registries: Registries, settings: TransportSettings, *, destination: str | None
    ) -> AsyncIterator[HttpClient]:
        """
        An HTTP client with `settings` and the credentials `registries` names
        (`destination` is the repository a pinned credential is for); what the transport
        notices about hosts is sent as events.
        """
        found = keychain(registries, destination)
        for warning in found.warnings:
            self.emit(Notice(warning))
        async with HttpClient(settings, found) as client:
            self._hosts = client.hosts
            client.hosts.listen(lambda news: self.emit(host_event(news)))
            yield client
