"""
The executor takes its limits from the stores' transport (the `HostBound` capability):
each host's slots and the blobs in flight across hosts, without its caller passing them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager

import anyio.lowlevel
import pytest

from relocator.engine import CopyOptions, Job, copy_images
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository, mediatypes
from relocator.transport import Hosts
from relocator.transport.limits import HostLimits

SOURCE = Repository.parse("src.example/app")
DESTINATION = Repository.parse("dst.example/app")
LAYERS = 12


class HostStore:
    """An in-memory store on one network host that counts the blob uploads in flight."""

    name = "memory"

    def __init__(self, hosts: Hosts) -> None:
        self.hosts = hosts
        self.manifests: dict[Digest, Manifest] = {}
        self.blobs: dict[Digest, bytes] = {}
        self.uploading = 0
        self.most_uploading = 0

    def host_of(self, repo: Repository) -> str:
        return repo.registry

    async def manifest_get(self, ref: Reference) -> Manifest:
        assert ref.digest is not None
        return self.manifests[ref.digest]

    async def manifest_exists(self, ref: Reference) -> Digest | None:
        return ref.digest if ref.digest in self.manifests else None

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> None:
        self.manifests[manifest.digest] = manifest

    async def blob_exists(self, repo: Repository, desc: Descriptor) -> bool:
        return desc.digest in self.blobs

    @asynccontextmanager
    async def blob_open(
        self, repo: Repository, desc: Descriptor
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        async def chunks() -> AsyncIterator[bytes]:
            yield self.blobs[desc.digest]

        yield chunks()

    async def blob_put(
        self, repo: Repository, desc: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        self.uploading += 1
        self.most_uploading = max(self.most_uploading, self.uploading)
        # Let every other transfer that may start now start before this one ends.
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        self.blobs[desc.digest] = b"".join([chunk async for chunk in chunks])
        self.uploading -= 1

    async def aclose(self) -> None:
        return None


def _image(store: HostStore) -> Job:
    def blob(data: bytes, media_type: str) -> dict[str, object]:
        store.blobs[Digest.of(data)] = data
        return {"mediaType": media_type, "digest": str(Digest.of(data)), "size": len(data)}

    raw = json.dumps({
        "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
        "config": blob(b"config", mediatypes.OCI_CONFIG),
        "layers": [blob(f"layer {n}".encode(), mediatypes.OCI_LAYER_GZIP)
                   for n in range(LAYERS)],
    }).encode()
    manifest = Manifest.parse(raw)
    store.manifests[manifest.digest] = manifest
    return Job(source=Reference.from_repo(SOURCE, digest=manifest.digest), destination=DESTINATION)


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        # One slot per host: one transfer at a time, whatever else would allow more.
        pytest.param(HostLimits(concurrency=1, per_host={}), 1, id="host-slots"),
        # Hosts with 50 slots each, the run's number 1: 2 blobs in flight (2 x 1).
        pytest.param(HostLimits(concurrency=1, per_host={"src.example": 50, "dst.example": 50}),
                     2, id="blobs-in-flight"),
        # The default: 8 slots per host (16 blobs in flight): 8 transfers at once.
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
    job = _image(source)

    report = await copy_images([job], source=source, destination=destination,
                               options=CopyOptions())

    assert (LAYERS + 1, expected) == (report.blobs_copied, destination.most_uploading)
