"""
Helpers for the tarball integration tests: `relocator pkg` and `unpkg` driven through
the engine with relocator's own HTTP client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from relocator.engine import Job, Report, copy_images
from relocator.oci import Reference, Repository
from relocator.store import RegistryStore
from relocator.store.tarball import Format, TarballImage, TarballReader, TarballWriter
from relocator.transport import HttpClient, Keychain, TransportSettings
from tests.support import PushedImage, Registry


@asynccontextmanager
async def http_client(*registries: Registry) -> AsyncIterator[HttpClient]:
    """relocator's own HTTP client, speaking plain http to the test registries."""
    settings = TransportSettings(insecure_hosts=frozenset(r.host for r in registries))
    async with HttpClient(settings, Keychain(env={})) as client:
        yield client


async def package_pushed(
    out: Path, pushed: Sequence[PushedImage], http: HttpClient, fmt: Format = "oci"
) -> Report:
    """`relocator pkg`, driven through the engine: registry -> tarball."""
    jobs = [
        Job(
            source=Reference.parse(p.reference),
            destination=Repository.parse(f"{p.host}/{p.repository}"),
            tags=(p.tag,) if p.tag else (),
        )
        for p in pushed
    ]
    writer = TarballWriter(out, format=fmt)
    try:
        return await copy_images(jobs, source=RegistryStore(http), destination=writer)
    finally:
        await writer.aclose()


async def import_tarball(
    path: Path, http: HttpClient, destination: str
) -> tuple[tuple[TarballImage, ...], Report]:
    """`relocator unpkg`, driven through the engine: tarball -> one repository."""
    repo = Repository.parse(destination)
    async with TarballReader(path) as reader:
        images = reader.images()
        jobs = [
            Job(source=i.reference or Reference.from_repo(repo, digest=i.digest),
                destination=repo, tags=i.tags)
            for i in images
        ]
        report = await copy_images(jobs, source=reader, destination=RegistryStore(http))
    return images, report
