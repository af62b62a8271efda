"""
Shards that split blobs, against real registries: on a fleet whose images all share one
base, four shards each move about a quarter of the bytes, concurrently or one after
another; each blob is uploaded once; the last shard completes the run; an interrupted
shard finishes its share when started again; workers reading a plan file send the
source no manifest request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from relocator.engine import CopyOptions, Job, Plan, Report, Shard, copy_images, image_tag
from relocator.engine.events import BlobDone, Event
from relocator.engine.plan import make_plan
from relocator.engine.planfile import plan_from_file, read_plan, write_plan
from relocator.engine.shard import assign
from relocator.engine.sweep import run_shard
from relocator.oci import Reference, Repository
from relocator.store import RegistryStore
from relocator.transport import HttpClient, Keychain, RetryPolicy, TransportSettings
from tests.support import (
    FaultProxy,
    ImageFactory,
    PushedImage,
    Pusher,
    Registry,
    verify_image_tree,
)

# Retries in these tests wait milliseconds: the logic is under test, not the pacing.
FAST = RetryPolicy(initial=0.001, max_delay=0.01, jitter=0.0, max_retry_after=0.01)
SHARDS = 4
# The share of the bytes no shard may exceed (an even split is 25 %).
MOST = 0.35
# Inputs and options the plan file tests make their plan from.
MADE_FROM = {"inputs": ["fleet.yml"], "repository": "sharded"}


@pytest.fixture
def fleet(
    registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> list[PushedImage]:
    """Sixteen images in four repositories, every one built on the same base."""
    images = image_factory.corpus(16, bases=1, base_layer_sizes=(96_000, 48_000),
                                  app_layer_sizes=(24_000, 8_000))
    repositories = [repository_factory(f"fleet{n}") for n in range(4)]
    return [push(registry, repositories[n % 4], image) for n, image in enumerate(images)]


def _jobs(images: Sequence[PushedImage], destination: str, host: str | None = None) -> list[Job]:
    """One job per image into `destination`, tagged as the CLI tags; read from `host`."""
    jobs = []
    for image in images:
        source = Reference.parse(f"{host or image.host}/{image.repository}@{image.digest}")
        jobs.append(Job(source=source, destination=Repository.parse(destination),
                        tags=(image_tag(image.digest),)))
    return jobs


@asynccontextmanager
async def _store(*insecure: str) -> AsyncIterator[tuple[RegistryStore, CopyOptions]]:
    """One worker's registry store (its own connections) and copy options."""
    settings = TransportSettings(insecure_hosts=frozenset(insecure), retry=FAST,
                                 use_env_proxy=False)
    async with HttpClient(settings, Keychain(env={})) as client:
        yield RegistryStore(client), CopyOptions(retry=FAST)


async def _whole_plan(jobs: Sequence[Job], *insecure: str) -> Plan:
    async with _store(*insecure) as (store, _):
        return await make_plan(jobs, store, store, skip_present=False)


async def _shard(plan: Plan, index: int, *insecure: str) -> Report:
    """Run shard `index` of `SHARDS` as a worker of its own would."""
    async with _store(*insecure) as (store, options):
        return await run_shard(plan, Shard(index, SHARDS), source=store, destination=store,
                               options=options)


def _uploads(registry: Registry, since: int) -> list[str]:
    """The digest of every blob upload the registry committed."""
    return [
        entry.path.rsplit("digest=", 1)[-1].replace("%3A", ":")
        for entry in registry.log.requests(since=since)
        if entry.method == "PUT" and "/blobs/uploads/" in entry.path and entry.status == 201
    ]


async def _same_as_one_worker(
    fleet: Sequence[PushedImage], registry: Registry, destination: Registry
) -> None:
    """The sharded repository holds exactly what one unsharded run lands."""
    async with _store(registry.host, destination.host) as (store, options):
        await copy_images(_jobs(fleet, f"{destination.host}/single"), source=store,
                          destination=store, options=options)
    for image in fleet:
        verify_image_tree(destination, "sharded", image.digest, hash_blobs=True)
    with destination.client() as client:
        assert client.tags("single") == client.tags("sharded")


def _unique_bytes(plan: Plan) -> int:
    return sum(blob.desc.size for blob in plan.blobs.values())


async def test_four_concurrent_shards_each_move_a_quarter_and_upload_every_blob_once(
    registry: Registry, fresh_registry: Registry, fleet: list[PushedImage]
) -> None:
    """
    Four workers at once on a fleet sharing one base: none moves more than 35 % of the
    bytes, every blob is uploaded once, nothing is left waiting at the end, and the
    destination equals one unsharded run.
    """
    hosts = (registry.host, fresh_registry.host)
    plan = await _whole_plan(_jobs(fleet, f"{fresh_registry.host}/sharded"), *hosts)
    mark = fresh_registry.log.mark()
    reports: dict[int, Report] = {}

    async def worker(index: int) -> None:
        reports[index] = await _shard(plan, index, *hosts)

    async with anyio.create_task_group() as tg:
        for index in range(SHARDS):
            tg.start_soon(worker, index)
    uploads = _uploads(fresh_registry, mark)

    total = _unique_bytes(plan)
    shares = [reports[i].bytes_copied / total for i in range(SHARDS)]
    assert all(share <= MOST for share in shares), shares
    assert total == sum(r.bytes_copied for r in reports.values())
    assert sorted(str(d) for d in plan.blobs) == sorted(uploads)
    await _same_as_one_worker(fleet, registry, fresh_registry)


async def test_four_shards_one_after_another_each_finish_and_the_last_completes(
    registry: Registry, fresh_registry: Registry, fleet: list[PushedImage]
) -> None:
    """
    A Job running one shard at a time: every shard returns, each adds at most 35 % of
    the bytes, the first three leave manifests waiting, the last leaves none, and the
    destination then equals one unsharded run.
    """
    hosts = (registry.host, fresh_registry.host)
    plan = await _whole_plan(_jobs(fleet, f"{fresh_registry.host}/sharded"), *hosts)
    total = _unique_bytes(plan)

    reports = [await _shard(plan, index, *hosts) for index in range(SHARDS)]

    shares = [r.bytes_copied / total for r in reports]
    assert all(share <= MOST for share in shares), shares
    assert all(r.manifests_waiting > 0 for r in reports[:-1])
    assert 0 == reports[-1].manifests_waiting
    assert len(fleet) == len(reports[-1].images)
    await _same_as_one_worker(fleet, registry, fresh_registry)


async def test_a_shard_interrupted_mid_run_finishes_its_share_when_started_again(
    registry: Registry, fresh_registry: Registry, fleet: list[PushedImage]
) -> None:
    """
    A worker stopped after its first upload, then started again, uploads the rest of
    its share and not what landed: every blob of its share is uploaded once.
    """
    hosts = (registry.host, fresh_registry.host)
    plan = await _whole_plan(_jobs(fleet, f"{fresh_registry.host}/sharded"), *hosts)
    share = {str(d) for d in assign(plan, SHARDS).blobs_of(1)}
    mark = fresh_registry.log.mark()

    with anyio.CancelScope() as scope:

        class StopAfterFirstUpload:
            def emit(self, event: Event) -> None:
                if isinstance(event, BlobDone) and event.how == "copied":
                    scope.cancel()

        async with _store(*hosts) as (store, options):
            # One upload at a time, so that the interruption lands between two uploads.
            options = dataclasses.replace(options, max_blobs_in_flight=1)
            await run_shard(plan, Shard(1, SHARDS), source=store, destination=store,
                            options=options, sink=StopAfterFirstUpload())
    first = _uploads(fresh_registry, mark)
    report = await _shard(plan, 1, *hosts)
    uploads = _uploads(fresh_registry, mark)

    assert scope.cancelled_caught
    assert 1 <= len(first) < len(share)
    # Uploads in flight at the interruption may have completed at the registry: the
    # restart finds them there with the rest of the first run's.
    assert len(first) <= report.blobs_present
    assert len(share) == report.blobs_present + report.blobs_copied
    assert sorted(share) == sorted(uploads)


async def test_several_destination_repositories_get_each_blob_uploaded_once_and_mounted(
    registry: Registry, fresh_registry: Registry, fleet: list[PushedImage]
) -> None:
    """
    With one destination repository per source repository (a repository template),
    the shared base is uploaded once by one shard and mounted into the other three
    repositories; every image is complete in its own repository.
    """
    hosts = (registry.host, fresh_registry.host)
    jobs = [
        Job(source=Reference.parse(f"{image.host}/{image.repository}@{image.digest}"),
            destination=Repository.parse(
                f"{fresh_registry.host}/templated/{image.repository.rsplit('/', 1)[-1]}"),
            tags=(image_tag(image.digest),))
        for image in fleet
    ]
    plan = await _whole_plan(jobs, *hosts)
    mark = fresh_registry.log.mark()

    reports = [await _shard(plan, index, *hosts) for index in range(SHARDS)]

    mounts = [e for e in fresh_registry.log.requests(since=mark)
              if e.method == "POST" and "mount=" in e.path and e.status == 201]
    assert sorted(str(d) for d in plan.blobs) == sorted(_uploads(fresh_registry, mark))
    # Two base layers, each mounted into the three repositories that are not its home.
    assert 2 * 3 == len(mounts) == sum(r.blobs_mounted for r in reports)
    assert 0 == reports[-1].manifests_waiting
    for job in jobs:
        verify_image_tree(fresh_registry, job.destination.path, job.digest, hash_blobs=True)


async def test_shards_working_from_a_plan_file_send_the_source_no_manifest_get(
    tmp_path: Path, fresh_registry: Registry, proxy: FaultProxy, fleet: list[PushedImage]
) -> None:
    """
    The source is walked once, to write the plan; four workers reading the plan file
    then complete the run with blob reads only.
    """
    hosts = (proxy.host, fresh_registry.host)
    jobs = _jobs(fleet, f"{fresh_registry.host}/sharded", host=proxy.host)
    path = tmp_path / "plan.json"
    write_plan(path, await _whole_plan(jobs, *hosts), made_from=MADE_FROM)
    proxy.clear_log()

    reports = []
    for index in range(SHARDS):
        async with _store(*hosts) as (store, options):
            plan = await plan_from_file(read_plan(path, made_from=MADE_FROM), destination=store)
            reports.append(await run_shard(plan, Shard(index, SHARDS), source=store,
                                           destination=store, options=options))

    assert [] == proxy.requests(path="/manifests/")
    assert proxy.requests(method="GET", path="/blobs/sha256:")
    assert 0 == reports[-1].manifests_waiting
    for image in fleet:
        verify_image_tree(fresh_registry, "sharded", image.digest,
                          hash_blobs=True)
