"""
Shards split blobs, not images: the assignment is deterministic and balanced by bytes,
each blob is uploaded once, and whatever order the shards run in, the last one
completes the run by sweeping every manifest that is ready (children first, tags last).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from relocator.engine import CopyOptions, Job, Plan, Shard, TagConflict, copy_images, image_tag
from relocator.engine.events import BlobDone, ListSink, Planned, Swept
from relocator.engine.plan import make_plan
from relocator.engine.shard import assign
from relocator.engine.sweep import plan_whole, run_shard
from relocator.errors import RegistryError
from relocator.oci import Repository
from relocator.testing import MemoryStore
from relocator.transport import RetryPolicy
from tests.support import corpus, index

DESTINATION = Repository.parse("dst.test/mirror")


def _fleet(source: MemoryStore, count: int = 12, *, repositories: int = 0) -> list[Job]:
    """
    `count` images on one shared base (two layers), plus a two-platform index, into
    `DESTINATION`, or spread over that many repositories below it.
    """
    images = corpus("fleet", count, bases=1, base_layer_sizes=(40_000, 20_000),
                    app_layer_sizes=(3_000, 1_000))
    jobs = []
    for n, image in enumerate((*images, index(images[:2]))):
        ref = source.add(f"app{n % 3}", image)
        target = (Repository.parse(f"{DESTINATION}/app{n % repositories}") if repositories
                  else DESTINATION)
        jobs.append(Job(source=ref, destination=target, tags=(image_tag(image.digest),)))
    return jobs


async def _whole(jobs: Sequence[Job], source: MemoryStore, destination: MemoryStore) -> Plan:
    return await make_plan(jobs, source, destination, skip_present=False)


async def test_every_worker_derives_the_same_assignment_whatever_order_it_planned_in() -> None:
    """
    Two plans of the same jobs (into three repositories), walked in different orders,
    split the blobs and pick their home repositories alike.
    """
    source = MemoryStore("src.test")
    jobs = _fleet(source, repositories=3)
    shuffled = jobs[::-1]

    first = assign(await _whole(jobs, source, MemoryStore("dst.test")), 4)
    second = assign(await _whole(shuffled, source, MemoryStore("dst.test")), 4)

    assert dict(first.shard_of) == dict(second.shard_of)
    assert dict(first.homes) == dict(second.homes)
    assert first.loads == second.loads


async def test_blobs_are_dealt_by_bytes_so_a_shared_base_does_not_make_one_shard_do_all() -> None:
    """Every blob goes to one shard; no shard gets more than 35 % of the bytes."""
    source = MemoryStore("src.test")
    plan = await _whole(_fleet(source), source, MemoryStore("dst.test"))
    total = sum(b.desc.size for b in plan.blobs.values())

    assignment = assign(plan, 4)

    assert set(plan.blobs) == set(assignment.shard_of)
    assert total == sum(assignment.loads)
    assert all(load <= 0.35 * total for load in assignment.loads), assignment.loads
    assert set(assignment.owners) == set(plan.manifests)


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 1, 0, 2)])
async def test_shards_run_one_after_another_each_add_their_share_and_the_last_completes(
    order: tuple[int, ...],
) -> None:
    """
    Four shards in sequence: each uploads only its own blobs (once), each but the last
    leaves manifests waiting and says so, and after the last the destination holds
    exactly what one unsharded run lands.
    """
    source = MemoryStore("src.test")
    jobs = _fleet(source)
    sharded, single = MemoryStore("dst.test"), MemoryStore("dst.test")
    plan = await _whole(jobs, source, sharded)
    assignment = assign(plan, 4)
    waiting = []

    for position, index_ in enumerate(order):
        before = len(sharded.operations("blob_put"))
        sink = ListSink()
        report = await run_shard(plan, Shard(index_, 4), source=source, destination=sharded,
                                 sink=sink)
        uploaded = [op.target for op in sharded.operations("blob_put")[before:]]
        assert sorted(str(d) for d in assignment.blobs_of(index_)) == sorted(uploaded)
        assert [report.manifests_waiting] == [
            e.manifests_waiting for e in sink.events if isinstance(e, Swept)
        ]
        waiting.append(report.manifests_waiting)
        if position == len(order) - 1:
            assert len(jobs) == len(report.images)
    await copy_images(jobs, source=source, destination=single)

    assert 0 == waiting[-1]
    assert all(n > 0 for n in waiting[:-1]), waiting
    assert single.tagged("mirror") == sharded.tagged("mirror")
    assert all(sharded.has_manifest(repo.path, digest) for repo, digest in plan.manifests)


async def test_the_sweep_pushes_children_before_parents_and_tags_last() -> None:
    """
    One shard of one: every manifest push comes after the pushes of its children, and
    an image's tag is pushed only once its children are there.
    """
    source = MemoryStore("src.test")
    jobs = _fleet(source, count=4)
    destination = MemoryStore("dst.test")
    plan = await _whole(jobs, source, destination)

    await run_shard(plan, Shard(0, 1), source=source, destination=destination)

    pushed = [op.target for op in destination.operations("manifest_put")]
    tags = {image_tag(job.digest): job.digest for job in jobs}
    landed = [str(tags[t]) if t in tags else t for t in pushed]
    for node in plan.manifests.values():
        mine = landed.index(str(node.manifest.digest))
        for child in node.manifests:
            assert landed.index(str(child[1])) < mine
    assert all(t in pushed for t in tags)


async def test_a_blob_shared_by_several_repositories_is_uploaded_once_and_mounted() -> None:
    """
    With a destination repository per source repository, each blob is uploaded into one
    home repository by one shard and mounted into every other repository needing it.
    """
    source = MemoryStore("src.test")
    images = corpus("template", 6, bases=1)
    jobs = []
    for n, image in enumerate(images):
        ref = source.add(f"team/app{n}", image)
        target = Repository.parse(f"dst.test/mirror/app{n % 3}")
        jobs.append(Job(source=ref, destination=target, tags=(image_tag(image.digest),)))
    destination = MemoryStore("dst.test")
    plan = await _whole(jobs, source, destination)

    reports = [
        await run_shard(plan, Shard(i, 3), source=source, destination=destination)
        for i in range(3)
    ]

    puts = [op.target for op in destination.operations("blob_put")]
    assert sorted(str(d) for d in plan.blobs) == sorted(puts)
    base = images[0].blobs[1].digest  # the shared base layer, needed by all three
    mounts = [op for op in destination.operations("blob_mount") if op.target == str(base)]
    assert 2 == len(mounts)
    assert 0 == reports[-1].manifests_waiting
    for job in jobs:
        assert destination.has_manifest(job.destination.path, job.digest)


async def test_a_blob_of_the_share_that_cannot_be_uploaded_fails_the_worker_even_keeping_going(
) -> None:
    """
    No other shard would upload it, so the run could never complete: the worker fails
    (and is retried) instead of returning with manifests waiting forever.
    """
    source = MemoryStore("src.test")
    jobs = _fleet(source, count=2)
    destination = MemoryStore("dst.test")
    plan = await _whole(jobs, source, destination)
    broken = assign(plan, 1).blobs_of(0)[0]
    destination.faults.failing_puts[broken] = 100
    options = CopyOptions(keep_going=True, retry=RetryPolicy(attempts=1, initial=0.001))

    with pytest.raises(RegistryError, match=f"upload of {broken} failed"):
        await run_shard(plan, Shard(0, 1), source=source, destination=destination,
                        options=options)


async def test_a_shard_announces_its_share_before_moving_it() -> None:
    """
    The `Planned` event of a shard counts its own blobs, what it will move; the blobs
    the sweep finds in place are not announced as if they were moved.
    """
    source = MemoryStore("src.test")
    destination = MemoryStore("dst.test")
    plan = await _whole(_fleet(source), source, destination)
    assignment = assign(plan, 4)
    for other in (0, 1, 3):
        await run_shard(plan, Shard(other, 4), source=source, destination=destination)
    sink = ListSink()

    report = await run_shard(plan, Shard(2, 4), source=source, destination=destination,
                             sink=sink)

    planned = [e for e in sink.events if isinstance(e, Planned)]
    assert [(len(assignment.blobs_of(2)), assignment.loads[2])] == [
        (e.blobs, e.bytes_to_move) for e in planned
    ]
    present = [e for e in sink.events if isinstance(e, BlobDone) and e.how == "present"]
    assert [] == present
    assert 0 == report.manifests_waiting


async def test_a_plan_made_against_the_destination_is_refused() -> None:
    """A shard needs the whole plan: one that skipped what is present would split differently."""
    source = MemoryStore("src.test")
    jobs = _fleet(source, count=2)
    destination = MemoryStore("dst.test")
    await copy_images(jobs[:1], source=source, destination=destination,
                      options=CopyOptions())
    plan = await make_plan(jobs, source, destination)

    with pytest.raises(ValueError, match="whole plan"):
        await run_shard(plan, Shard(0, 2), source=source, destination=destination)


async def test_a_repository_gets_a_blob_from_its_home_whose_own_images_are_complete() -> None:
    """
    The home repository's images landed in an earlier run: the sweep still looks for
    the blob there and mounts it into the repository that needs it, nothing uploaded.
    """
    source = MemoryStore("src.test")
    images = corpus("home", 2, bases=1)
    home, other = Repository.parse("dst.test/mirror/a"), Repository.parse("dst.test/mirror/b")
    jobs = [
        Job(source=source.add(f"app{n}", image), destination=target,
            tags=(image_tag(image.digest),))
        for n, (image, target) in enumerate(zip(images, (home, other), strict=True))
    ]
    destination = MemoryStore("dst.test")
    await copy_images(jobs[:1], source=source, destination=destination)
    plan = await _whole(jobs, source, destination)
    before = len(destination.operations("blob_put"))

    report = await run_shard(plan, Shard(0, 1), source=source, destination=destination)

    assert 0 == report.manifests_waiting
    assert 2 == report.blobs_mounted  # the two base layers
    assert before + 2 == len(destination.operations("blob_put"))  # b's own config, layer
    assert destination.has_manifest(other.path, jobs[1].digest)


async def test_the_whole_plan_refuses_two_images_under_one_tag_before_reading_anything() -> None:
    """As for an unsharded run: a tag conflict stops the plan before any request."""
    source = MemoryStore("src.test")
    jobs = _fleet(source, count=2)
    clash = [jobs[0], dataclasses.replace(jobs[1], tags=jobs[0].tags)]

    with pytest.raises(TagConflict):
        await plan_whole(clash, source=source, destination=MemoryStore("dst.test"))

    assert [] == source.operations("manifest_get")


class _FileLike(MemoryStore):
    """A destination written in one go at the end, as a tarball is."""

    async def prepare(self, contents: object) -> None:
        """Nothing to prepare."""

    async def commit(self) -> None:
        """Nothing to commit."""


async def test_a_destination_written_in_one_go_cannot_be_shared_by_shards() -> None:
    """Several workers cannot each write part of one tarball: the split is refused."""
    source = MemoryStore("src.test")
    jobs = _fleet(source, count=1)
    destination = _FileLike("dst.test")
    plan = await _whole(jobs, source, destination)

    with pytest.raises(TypeError, match="only a registry"):
        await run_shard(plan, Shard(0, 2), source=source, destination=destination)

    assert [] == destination.log
