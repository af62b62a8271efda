"""
The executor takes its limits from the stores' transport (the `HostBound` capability):
each host's slots and the blobs in flight across hosts, without its caller passing them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator

import anyio.lowlevel
import pytest

from relocator.engine import CopyOptions, Job, copy_images
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository, mediatypes
from relocator.testing.memory import MemoryStore
from relocator.transport import Hosts
from relocator.transport.limits import HostLimits

SOURCE = Repository.parse("src.example/app")
DESTINATION = Repository.parse("dst.example/app")
LAYERS = 12


class HostStore(MemoryStore):
    """A `MemoryStore` behind a transport's host limits, counting the uploads in flight."""

    def __init__(self, hosts: Hosts) -> None:
        super().__init__()
        self.hosts = hosts
        self.uploading = 0
        self.most_uploading = 0

    def host_of(self, repo: Repository) -> str:
        return repo.registry

    async def blob_put(
        self, repo: Repository, desc: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        self.uploading += 1
        self.most_uploading = max(self.most_uploading, self.uploading)
        # Let every other transfer that may start now start before this one ends.
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        await super().blob_put(repo, desc, chunks)
        self.uploading -= 1


async def _image(store: MemoryStore) -> Job:
    """An image of `LAYERS` layers pushed to `store` at `SOURCE`; its job to `DESTINATION`."""

    async def blob(data: bytes, media_type: str) -> dict[str, object]:
        desc = Descriptor(media_type=media_type, digest=Digest.of(data), size=len(data))
        await store.blob_put(SOURCE, desc, _one(data))
        return desc.to_json()

    raw = json.dumps({
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
        "config": await blob(b"config", mediatypes.OCI_CONFIG),
        "layers": [await blob(f"layer {n}".encode(), mediatypes.OCI_LAYER_GZIP)
                   for n in range(LAYERS)],
    }).encode()
    manifest = Manifest.parse(raw)
    source = Reference.from_repo(SOURCE, digest=manifest.digest)
    await store.manifest_put(source, manifest)
    return Job(source=source, destination=DESTINATION)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        # One slot per host: one transfer at a time, whatever else would allow more.
        pytest.param(HostLimits(concurrency=1, per_host={}, pinned=True), 1, id="host-slots"),
        # Hosts with 50 slots each, the run's number 1: 2 blobs in flight (2 x 1).
        pytest.param(HostLimits(concurrency=1, per_host={"src.example": 50, "dst.example": 50},
                                pinned=True),
                     2, id="blobs-in-flight"),
        # The default: 8 slots per host to start with (blobs in flight sized for the
        # adaptive maximum): 8 transfers at once while no answer has moved the limit.
        pytest.param(HostLimits(), 8, id="default"),
    ],
)
async def test_transfers_in_flight_follow_the_stores_limits(
    limits: HostLimits, expected: int
) -> None:
    """
    With no limits in `CopyOptions`, blob transfers in flight follow the transport the
    stores speak through: its per-host slots and its derived blobs-in-flight cap.
    """
    hosts = Hosts(limits)
    source, destination = HostStore(hosts), HostStore(hosts)
    job = await _image(source)

    report = await copy_images([job], source=source, destination=destination,
                               options=CopyOptions())

    assert (LAYERS + 1, expected) == (report.blobs_copied, destination.most_uploading)
