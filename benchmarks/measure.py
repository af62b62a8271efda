"""
Measuring child processes: wall time, CPU, peak RSS, and the CPU of the servers.

Every tool runs as a child process, one at a time, started by a small launcher process
(`benchmarks/launcher.py`) that reaps it with `os.wait4`, which returns that process's
own resource usage (its waited-for children included): user and system CPU, and
`ru_maxrss`, its peak resident set. A step of several processes (skopeo image by image,
then `tar`) adds CPU up and keeps the largest peak.

Servers (registries, the WAN proxy) keep running across steps; their CPU is read from
`/proc/<pid>/stat` (utime + stime) before and after. The requests the registries served
during the run are counted from their access logs (one line per request, written before
the response ends, so every request of a finished tool is there), by method and route.

The machine may be shared: whatever CPU the whole machine used during a run (from
`/proc/stat`) beyond the tool, the servers and the benchmark itself is recorded as
`other_cpu_s`, and `wait_for_idle` holds the next run back while something else is busy.
"""

from __future__ import annotations

import marshal
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import Registry

# Clock ticks per second, the unit of utime and stime in /proc/<pid>/stat.
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# ru_maxrss is in KiB on Linux.
_MAXRSS_UNIT = 1024
# A tool that runs longer than an hour is hung; kill it rather than wait forever.
DEFAULT_TIMEOUT = 3600.0
# Lines of a failed tool's output quoted in the error.
_TAIL_LINES = 15
# "Idle" before a run: under a quarter of a core busy over half a second; wait at most
# two minutes for it, then run anyway (other_cpu_s then shows the interference).
_IDLE_CORES = 0.25
_IDLE_WINDOW = 0.5
_IDLE_WAIT = 120.0
# Frames to and from the launcher are prefixed with their length as 4 big-endian bytes.
_LENGTH_BYTES = 4


class ToolFailed(RuntimeError):
    """A measured process exited non-zero (the message quotes its last lines)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One measured run of one tool."""

    wall_s: float
    #: User + system CPU of the tool's processes.
    cpu_s: float
    #: Largest peak resident set of any of its processes, in bytes.
    peak_rss: int
    processes: int
    #: CPU seconds each server used during the run (e.g. `source`, `destination`).
    server_cpu_s: Mapping[str, float] = field(default_factory=dict)
    #: CPU seconds the rest of the machine used meanwhile (other people's work).
    other_cpu_s: float = 0.0
    #: Requests each registry served during the run: registry name -> `"METHOD route"`
    #: (route as `AccessLogEntry.route` names it: blob, upload, manifest, tags...) -> count.
    requests: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def registry_cpu_s(self) -> float:
        """CPU of the registries (the proxy's is reported apart)."""
        return sum(v for k, v in self.server_cpu_s.items() if k != "proxy")

    def requests_by(self, *, method: str | None = None, route: str | None = None) -> int:
        """Requests to both registries, all of them or those of one method and/or route."""
        total = 0
        for counts in self.requests.values():
            for key, count in counts.items():
                m, r = key.split(" ", 1)
                if (method is None or m == method) and (route is None or r == route):
                    total += count
        return total


class Launcher:
    """
    The client of `benchmarks/launcher.py`: a small process that forks the tools, so
    their peak RSS does not include the benchmark's own memory (see that module).
    """

    def __init__(self) -> None:
        script = Path(__file__).with_name("launcher.py")
        self._process = subprocess.Popen(
            [sys.executable, "-S", "-I", str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    @property
    def pid(self) -> int:
        """The launcher's process id."""
        return self._process.pid

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None,
        cwd: Path | None,
        log: Path,
        timeout: float,
    ) -> tuple[int, float, int]:
        """
        Run one process to completion.

        Returns:
            Its exit code, its CPU seconds (user + system) and its peak RSS in bytes.
        """
        self._send(
            (
                list(argv),
                dict(env) if env is not None else None,
                str(cwd) if cwd is not None else None,
                str(log),
            )
        )
        _, pid = self._receive()
        # A hung tool is killed; the launcher then reports it like any other exit.
        watchdog = threading.Timer(timeout, os.kill, (pid, signal.SIGKILL))
        watchdog.start()
        try:
            _, code, user, system, maxrss = self._receive()
        finally:
            watchdog.cancel()
        return code, user + system, maxrss * _MAXRSS_UNIT

    def close(self) -> None:
        """Stop the launcher (it exits when its stdin closes)."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def _send(self, value: tuple[list[str], dict[str, str] | None, str | None, str]) -> None:
        payload = marshal.dumps(value)
        stdin = self._process.stdin
        if stdin is None:  # pragma: no cover - stdin=PIPE always gives one
            raise RuntimeError("the launcher has no stdin")
        stdin.write(len(payload).to_bytes(_LENGTH_BYTES, "big") + payload)
        stdin.flush()

    def _receive(self) -> tuple[Any, ...]:
        stdout = self._process.stdout
        if stdout is None:  # pragma: no cover - stdout=PIPE always gives one
            raise RuntimeError("the launcher has no stdout")
        header = stdout.read(_LENGTH_BYTES)
        if len(header) < _LENGTH_BYTES:
            raise RuntimeError(f"the launcher exited with status {self._process.wait()}")
        # The only writer of this pipe is the launcher we started.
        reply = marshal.loads(stdout.read(int.from_bytes(header, "big")))  # noqa: S302
        if not isinstance(reply, tuple):
            raise TypeError(f"the launcher answered {reply!r}")
        return reply


class Runner:
    """Runs child processes one at a time (through the launcher), adding up their usage."""

    def __init__(self, launcher: Launcher, log: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """
        Args:
            launcher: Starts the processes.
            log: Every process's stdout and stderr are appended here.
            timeout: Seconds after which a process is killed.
        """
        self.launcher = launcher
        self.log = log
        self.timeout = timeout
        self.cpu_s = 0.0
        self.peak_rss = 0
        self.processes = 0

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        expect: int = 0,
    ) -> None:
        """
        Run `argv` to completion and add its usage.

        Args:
            argv: The command line.
            env: Its environment (default: the benchmark's).
            cwd: Its working directory.
            expect: The exit code of success (a run meant to be refused expects another).

        Raises:
            ToolFailed: It exited with another code or was killed.
        """
        with self.log.open("ab") as out:
            mark = out.tell()
            out.write(f"$ {' '.join(argv)}\n".encode())
        code, cpu, rss = self.launcher.run(
            argv, env=env, cwd=cwd, log=self.log, timeout=self.timeout
        )
        self.cpu_s += cpu
        self.peak_rss = max(self.peak_rss, rss)
        self.processes += 1
        if code != expect:
            raise ToolFailed(
                f"{argv[0]} {' '.join(argv[1:3])}... exited {code}:\n{_tail(self.log, mark)}"
            )


def measure(
    work: Callable[[Runner], None],
    *,
    launcher: Launcher,
    log: Path,
    servers: Mapping[str, int],
    registries: Mapping[str, Registry] | None = None,
) -> Sample:
    """
    Time `work`, which runs its processes through the runner it is given.

    Args:
        work: Runs the tool (one or more processes) with the `Runner`.
        launcher: Starts the processes.
        log: Where the processes' output goes.
        servers: Name -> pid of processes whose CPU to attribute to this run.
        registries: Name -> registry whose served requests to count.
    """
    runner = Runner(launcher, log)
    registries = registries or {}
    ours = {**servers, "launcher": launcher.pid, "benchmark": os.getpid()}
    marks = {name: registry.log.mark() for name, registry in registries.items()}
    before = {name: process_cpu(pid) for name, pid in ours.items()}
    machine_before = machine_cpu()
    start = time.perf_counter()
    work(runner)
    wall = time.perf_counter() - start
    machine_after = machine_cpu()
    after = {name: process_cpu(pid) for name, pid in ours.items()}
    used = {name: after[name] - before[name] for name in ours}
    other = machine_after - machine_before - runner.cpu_s - sum(used.values())
    return Sample(
        wall_s=wall,
        cpu_s=runner.cpu_s,
        peak_rss=runner.peak_rss,
        processes=runner.processes,
        server_cpu_s={name: used[name] for name in servers},
        # Tick rounding can make it slightly negative on an idle machine.
        other_cpu_s=max(0.0, other),
        requests={
            name: served(registry, since=marks[name]) for name, registry in registries.items()
        },
    )


def served(registry: Registry, *, since: int) -> dict[str, int]:
    """Requests in `registry`'s access log after the mark `since`, by `"METHOD route"`."""
    counts = Counter(f"{e.method} {e.route}" for e in registry.log.requests(since=since))
    return dict(sorted(counts.items()))


def machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    # cpu  user nice system idle iowait irq softirq steal ...: busy = all but idle, iowait.
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    return (user + nice + system + irq + softirq) / _CLOCK_TICKS


def wait_for_idle(
    *, busy_cores: float = _IDLE_CORES, limit: float = _IDLE_WAIT
) -> tuple[float, bool]:
    """
    Wait until the machine is nearly idle, at most `limit` seconds.

    Args:
        busy_cores: Idle means less than this many cores busy over a short window.
        limit: Give up (and let the caller run anyway) after this many seconds.

    Returns:
        The seconds waited, and whether the machine went idle.
    """
    start = time.monotonic()
    while True:
        before = machine_cpu()
        time.sleep(_IDLE_WINDOW)
        waited = time.monotonic() - start
        if (machine_cpu() - before) / _IDLE_WINDOW < busy_cores:
            return waited, True
        if waited > limit:
            return waited, False


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    # Fields 14 and 15 of the file are utime and stime; here they are at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def registry_pid(registry: Registry) -> int:
    """
    The pid of a running test registry: the process serving its configuration file.

    Raises:
        LookupError: No such process (the registry is not running).
    """
    wanted = str(registry.config_path).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) >= 3 and argv[-3:-1] == [b"serve", wanted]:
            return int(entry.name)
    raise LookupError(f"no registry process serves {registry.config_path}")


def _tail(log: Path, mark: int) -> str:
    with log.open("rb") as f:
        f.seek(mark)
        lines = f.read().decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-_TAIL_LINES:])
