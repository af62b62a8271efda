"""
Every concurrency default of a run, derived in one place from one number.

`--concurrency N` (`TransportSettings.concurrency`) is the number of requests a run
sends to one registry host at once; a registry may get its own number (`mirror`'s
per-registry `concurrency`). The rest follows from it:

- blob transfers in flight across all hosts: a transfer holds one slot of its source
  host and one of its destination host, so twice the per-host number keeps both ends
  busy without opening more transfers than the hosts would let run;
- connections per host in the HTTP pool: a backstop only (the per-host limits decide),
  twice the largest per-host number, since a copy within one registry holds two
  connections to it, and a few spare for token and ping requests.

The per-host number is where each host's limit starts; the limit itself lives in that
host's `HostState.limiter` and moves while the run goes, within `MIN_CONCURRENCY` and
`MAX_CONCURRENCY`, with what the host delivers (`relocator.transport.gradient`): it grows
while more slots bring more throughput and latency stays flat, and backs off on 429/503,
resets and rising latency. A number said for the run (`--concurrency N`) or for a host
pins the limit instead (it still halves on a 429). Since an adaptive limit may grow to
`MAX_CONCURRENCY`, the blobs in flight and the pool are sized for that maximum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: Concurrent requests per registry host when nothing else is said.
DEFAULT_CONCURRENCY = 8
#: Bounds of an adaptive per-host limit. Twice the start at most: on the benchmark's
#: loopback registries a limit free to reach 64 found more throughput in each window
#: yet left pkg slower (the streams contend for the same two cores), while the WAN's
#: far registry settled near 16-20.
MIN_CONCURRENCY = 1
MAX_CONCURRENCY = 16
# Connections beyond the per-host slots: token requests, pings and bodies closing.
_SPARE_CONNECTIONS = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class HostLimits:
    """The concurrency limits of a run, from which every other one is derived."""

    #: Concurrent requests (and blob transfers) per registry host.
    concurrency: int = DEFAULT_CONCURRENCY
    #: Hosts with a number of their own.
    per_host: Mapping[str, int] = field(default_factory=dict)
    #: Whether `concurrency` was said (`--concurrency N`): then no host's limit adapts.
    pinned: bool = False
    #: Bounds of an adaptive limit.
    minimum: int = MIN_CONCURRENCY
    maximum: int = MAX_CONCURRENCY

    def of(self, host: str) -> int:
        """The number of slots `host` starts with."""
        return self.per_host.get(host, self.concurrency)

    def pinned_for(self, host: str) -> bool:
        """Whether `host`'s limit stays where it starts (a number was said for it)."""
        return self.pinned or host in self.per_host

    @property
    def _most(self) -> int:
        """The most slots any host may get."""
        most = self.concurrency if self.pinned else max(self.concurrency, self.maximum)
        return max(most, *self.per_host.values(), 1)

    @property
    def blobs_in_flight(self) -> int:
        """Blob transfers in flight across all hosts at most."""
        return 2 * (self.concurrency if self.pinned else self._most)

    @property
    def connections_per_host(self) -> int:
        """Pooled connections per host at most (a backstop below the slots)."""
        return 2 * self._most + _SPARE_CONNECTIONS
