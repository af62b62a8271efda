"""How the transport reaches registries: TLS, insecure hosts, limits and timeouts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from relocator import __version__
from relocator.transport.addresses import is_internal
from relocator.transport.guard import Classifier
from relocator.transport.limits import DEFAULT_CONCURRENCY, HostLimits
from relocator.transport.progress import ProgressRule
from relocator.transport.retry import RetryPolicy


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportSettings:
    """How to reach registries: TLS, insecure hosts, limits and timeouts."""

    #: Extra CA certificates (PEM) trusted beside the system's.
    ca_cert_paths: tuple[Path, ...] = ()
    verify_certs: bool = True
    #: Hosts reached over plain http at once.
    insecure_hosts: frozenset[str] = frozenset()
    #: Every registry may fall back to plain http (kbld's boolean `--registry-insecure`).
    insecure_all: bool = False
    #: Concurrent requests (and blob transfers) per registry host, pinned; every other
    #: concurrency limit is derived from it (see `limits`). None: each host's limit
    #: starts at `DEFAULT_CONCURRENCY` and adapts to what the host delivers.
    concurrency: int | None = None
    per_host_concurrency: Mapping[str, int] = field(default_factory=dict)
    #: Requests started per second at most, per host (hosts not named: no limit).
    per_host_rps: Mapping[str, float] = field(default_factory=dict)
    #: Seconds to establish a TCP (and TLS) connection.
    connect_timeout: float = 30.0
    #: Seconds a response may stall without a byte arriving.
    read_timeout: float = 120.0
    #: Seconds from sending a GET or HEAD (or a token request) to having its status line
    #: and headers, all of them: a byte now and then does not stretch it.
    response_timeout: float = 120.0
    #: A body brings at least `progress_bytes` in every `progress_window` seconds spent
    #: waiting for it, or ends: a trickle is cut, a slow but real transfer (over ~550
    #: bytes/s) never is. See `relocator.transport.progress`.
    progress_bytes: int = 64 * 1024
    progress_window: float = 120.0
    #: Seconds a request may wait for a free pooled connection (beyond connecting): the
    #: per-host limits keep the pool from filling, so a wait this long means connections
    #: were lost, and a temporary error beats waiting forever.
    pool_timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Bytes of a body aiohttp buffers before it stops reading the socket (1 MiB): big
    #: enough that per-read overhead is negligible, small enough that memory stays flat.
    chunk_size: int = 1024 * 1024
    user_agent: str = f"relocator/{__version__}"
    #: Honour HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment.
    use_env_proxy: bool = True
    #: Names answered with a fixed IP address instead of asking DNS, like /etc/hosts.
    static_hosts: Mapping[str, str] = field(default_factory=dict)
    #: Which connected addresses (and ports) count as internal: loopback, private,
    #: link-local, ... (`addresses.is_internal`). Tests replace it to stand a local
    #: server in for a public one; see `guard.Guard`.
    internal_address: Classifier = is_internal

    @property
    def limits(self) -> HostLimits:
        """The run's concurrency limits, all derived from `concurrency`."""
        return HostLimits(
            concurrency=self.concurrency or DEFAULT_CONCURRENCY,
            per_host=self.per_host_concurrency,
            pinned=self.concurrency is not None,
        )

    @property
    def progress(self) -> ProgressRule:
        """The least a body must bring while we wait for it."""
        return ProgressRule(minimum=self.progress_bytes, window=self.progress_window)

