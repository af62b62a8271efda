"""
Planning and copying run on a fixed set of workers: however many blobs and manifests a
plan names, the number of tasks alive at once stays bounded (a task costs about 4 KiB;
a task per blob made a fan-out of 20 indexes' children take gigabytes).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable

from relocator.engine import CopyOptions, Job, copy_images
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository, mediatypes
from relocator.testing import MemoryStore
from relocator.transport.limits import MAX_CONCURRENCY

SOURCE = Repository.parse("src.example/app")
DESTINATION = Repository.parse("dst.example/app")
# 300 images of 7 one-byte layers each: 2,400 blobs (configs included), 300 manifests.
IMAGES = 300
LAYERS = 7
# While copying: the executor's blob workers (by default twice the adaptive maximum
# per host, 128), its manifest workers (256) and a task per image, plus a few of the
# test's own; planning's 64 blob check workers and a task per image stay below that.
MAX_TASKS = 2 * MAX_CONCURRENCY + 256 + IMAGES + 8


class CountingStore(MemoryStore):
    """The in-memory registry, recording how many tasks were alive at each write or check."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.most_tasks = 0

    def _count(self) -> None:
        self.most_tasks = max(self.most_tasks, len(asyncio.all_tasks()))

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Digest | None:
        self._count()
        return await super().manifest_put(ref, manifest)

    async def blob_exists(self, repo: Repository, desc: Descriptor) -> bool:
        self._count()
        await asyncio.sleep(0)
        return await super().blob_exists(repo, desc)

    async def blob_put(
        self, repo: Repository, desc: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        self._count()
        await super().blob_put(repo, desc, chunks)


def _blob(store: MemoryStore, data: bytes, media_type: str) -> dict[str, object]:
    digest = store.add_blob(SOURCE.path, data)
    return {"mediaType": media_type, "digest": str(digest), "size": len(data)}


def _seed(store: MemoryStore) -> list[Job]:
    jobs = []
    for n in range(IMAGES):
        raw = json.dumps({
            "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
            "config": _blob(store, f"config {n}".encode(), mediatypes.OCI_CONFIG),
            "layers": [_blob(store, f"{n}/{i}".encode(), mediatypes.OCI_LAYER_GZIP)
                       for i in range(LAYERS)],
        }).encode()
        digest = store.add_manifest(SOURCE.path, raw)
        jobs.append(Job(source=Reference.from_repo(SOURCE, digest=digest),
                        destination=DESTINATION))
    return jobs


async def test_tasks_alive_at_once_do_not_grow_with_the_blobs_of_a_plan() -> None:
    """
    Copying 2,400 blobs and 300 manifests never has more tasks alive than the workers
    and one per image, and every blob and manifest still lands.
    """
    source, destination = CountingStore("src.example"), CountingStore("dst.example")
    jobs = _seed(source)

    report = await copy_images(jobs, source=source, destination=destination,
                               options=CopyOptions())

    assert IMAGES * (LAYERS + 1) == report.blobs_copied
    assert source.blobs(SOURCE.path) == destination.blobs(DESTINATION.path)
    assert set(source.manifests(SOURCE.path)) == set(destination.manifests(DESTINATION.path))
    assert destination.most_tasks <= MAX_TASKS, destination.most_tasks
