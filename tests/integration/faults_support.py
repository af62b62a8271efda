"""
Helpers of the fault, security, crash and load tests: relocations through a
`FaultProxy`, in-process (library or CLI) or as a subprocess, and what to look for in
the logs afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from relocator.api import Registries
from relocator.cli import arguments
from relocator.engine import CopyOptions, Job, Report, copy_images, image_tag
from relocator.engine.events import Event, ListSink, Retrying
from relocator.oci import Digest, Reference, Repository
from relocator.store import RangePolicy, RegistryStore
from relocator.transport import HostState, HttpClient, Keychain, RetryPolicy, TransportSettings
from tests.integration.cli import Result, relocator
from tests.support import PushedImage, Registry
from tests.support.proxy import FaultProxy, ProxyRequest

MiB = 1024 * 1024
# Retries in these tests wait milliseconds: the logic is under test, not the pacing.
FAST = RetryPolicy(initial=0.001, max_delay=0.01, jitter=0.0, max_retry_after=0.01)
# The repository root: subprocesses run `python -m relocator` from here.
ROOT = Path(__file__).resolve().parents[2]


def through(proxy: FaultProxy, image: PushedImage) -> str:
    """`image`'s digest reference as reached through `proxy`."""
    return f"{proxy.host}/{image.repository}@{image.digest}"


def images_file(path: Path, references: Sequence[str]) -> Path:
    """A kbld-style YAML file naming `references` under `images:`."""
    path.write_text(yaml.safe_dump({"images": [{"image": r} for r in references]}))
    return path


def relocate_through(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    proxy: FaultProxy,
    image: PushedImage,
    destination: str,
    *flags: str,
) -> Result:
    """
    `relocator relocate` (in-process) of `image` reached through `proxy` into
    `destination` (`host/repository`, plain http like the proxy), with `flags`.
    """
    sources = images_file(tmp_path / "i.yml", [through(proxy, image)])
    host = destination.split("/", 1)[0]
    return relocator(
        capsys, "relocate", "-f", str(sources), "-r", destination,
        *insecure_flags(proxy.host, host), *flags,
    )


def blob_requests(proxy: FaultProxy, digest: Digest, method: str = "GET") -> list[ProxyRequest]:
    """Requests for one blob (not uploads), in order."""
    return proxy.requests(server="proxy", method=method, path=f"/blobs/{digest}$")


def committed_uploads(registry: Registry, digest: Digest, since: int) -> int:
    """How many uploads of `digest` the registry committed (the 201 of the final PUT)."""
    return sum(
        1
        for entry in registry.log.requests(since=since)
        if entry.method == "PUT"
        and "/blobs/uploads/" in entry.path
        and digest.hex in entry.path
        and entry.status == 201
    )


def upload_puts(registry: Registry, since: int) -> list[str]:
    """Paths of every upload PUT the registry answered, in order."""
    return [
        entry.path
        for entry in registry.log.requests(since=since)
        if entry.method == "PUT" and "/blobs/uploads/" in entry.path
    ]


def fast_cli(monkeypatch: pytest.MonkeyPatch, **settings: Any) -> None:
    """
    Make in-process CLI runs retry after milliseconds and use `settings` (fields of
    `TransportSettings`, e.g. a short `read_timeout`): the logic is the same, the
    waits are not. The command line's requests get them through `Registries`.
    """
    build = arguments.registries_of

    def quick(args: Any) -> Registries:
        return dataclasses.replace(
            build(args), retry=FAST, transport=TransportSettings(**settings)
        )

    monkeypatch.setattr(arguments, "registries_of", quick)


@dataclasses.dataclass(frozen=True, slots=True)
class Moved:
    """What an in-process library relocation returned and emitted."""

    report: Report
    events: list[Event]
    #: The client's per-host state at the end, by host.
    hosts: dict[str, HostState]

    @property
    def retries(self) -> list[str]:
        """The error of every whole-blob retry, in order."""
        return [e.error for e in self.events if isinstance(e, Retrying)]


async def move(
    sources: Sequence[str],
    destination: str,
    *,
    insecure: Sequence[str],
    retry: RetryPolicy = FAST,
    copy_retry: RetryPolicy = FAST,
    env: dict[str, str] | None = None,
    ranges: RangePolicy | None = None,
    **settings: Any,
) -> Moved:
    """
    Relocate `sources` (digest references) into `destination` with the library, as the
    CLI would (same store for both ends, per-host holds, tags), with `settings`.
    """
    repo = Repository.parse(destination)
    jobs = []
    for source in sources:
        ref = Reference.parse(source)
        assert ref.digest is not None
        jobs.append(Job(source=ref, destination=repo, tags=(image_tag(ref.digest),)))
    transport = TransportSettings(
        insecure_hosts=frozenset(insecure), retry=retry, use_env_proxy=False, **settings
    )
    sink = ListSink()
    async with HttpClient(transport, Keychain(env=env or {})) as client:
        store = RegistryStore(client, ranges=ranges)
        report = await copy_images(
            jobs,
            source=store,
            destination=store,
            options=CopyOptions(retry=copy_retry),
            sink=sink,
        )
    return Moved(report, sink.events, {state.host: state for state in client.hosts.states()})


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a `python -m relocator` subprocess: ours, no proxies, `extra`."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def spawn(argv: Sequence[str], *, env: dict[str, str] | None = None, **kwargs: Any) -> (
    subprocess.Popen[str]
):
    """Start `python -m relocator ARGV...` with its output captured as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "relocator", *argv],
        cwd=ROOT,
        env=env or cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def run_cli(
    argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 120.0
) -> tuple[int, str, str]:
    """
    Run `python -m relocator ARGV...` to the end: (exit code, stdout, stderr). A run
    still going after `timeout` seconds (a generous ceiling for runs that take seconds)
    is killed and fails the test: it hung.
    """
    done = subprocess.run(
        [sys.executable, "-m", "relocator", *argv],
        cwd=ROOT, env=env or cli_env(), capture_output=True, text=True, timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def insecure_flags(*hosts: str) -> list[str]:
    """`--registry-insecure HOST` for each host."""
    return [flag for host in hosts for flag in ("--registry-insecure", host)]


@dataclasses.dataclass(frozen=True, slots=True)
class Secured:
    """A registry needing credentials, behind a fault proxy, and the user's password."""

    registry: Registry
    proxy: FaultProxy
    username: str
    password: str


@contextlib.contextmanager
def secured_proxy(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, kind: str
) -> Iterator[Secured]:
    """
    The htpasswd registry (`kind="basic"`) or the token registry (`"token"`) behind a
    fault proxy; relocator's credentials for the proxy's host come from
    `RELOCATOR_REGISTRY_*` variables (the caller isolates the rest with `docker_config`).
    """
    name = "basic_auth_registry" if kind == "basic" else "token_registry"
    registry: Registry = request.getfixturevalue(name)
    assert registry.username is not None
    assert registry.password is not None
    with FaultProxy(registry.url) as proxy:
        monkeypatch.setenv("RELOCATOR_REGISTRY_HOSTNAME_0", proxy.host)
        monkeypatch.setenv("RELOCATOR_REGISTRY_USERNAME_0", registry.username)
        monkeypatch.setenv("RELOCATOR_REGISTRY_PASSWORD_0", registry.password)
        yield Secured(registry, proxy, registry.username, registry.password)


def walk_tags(registry: Registry, repository: str) -> Iterator[tuple[str, Digest]]:
    """Every tag of `repository` with the digest it points at."""
    with registry.client() as client:
        for tag in client.tags(repository):
            digest = client.manifest_digest(repository, tag)
            assert digest is not None
            yield tag, digest
