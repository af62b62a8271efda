"""
The public Python API (`relocator.api`) against real registries: the example of
docs/api.md as written, and the guarantees a Python caller gets without the CLI.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from relocator.api import (
    Incomplete,
    LockFiles,
    PkgRequest,
    Registries,
    RelocateRequest,
    Transfer,
    UnpkgRequest,
    run,
)
from relocator.api.events import ListSink, Log
from relocator.errors import InputError, IntegrityError
from relocator.oci import Reference
from relocator.store import RegistryStore
from relocator.transport import HttpClient
from tests.integration.tarball_support import http_client
from tests.support import ImageFactory, Pusher, Registry

MiB = 1024 * 1024
DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _example() -> dict[str, Any]:
    """The names the first Python block of docs/api.md defines (not run as __main__)."""
    [code, *_] = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    names: dict[str, Any] = {"__name__": "docs_api_example"}
    exec(compile(code, str(DOC), "exec"), names)  # noqa: S102 - our own document
    return names


@pytest.fixture
async def http(registry: Registry, registry2: Registry) -> AsyncIterator[HttpClient]:
    """relocator's own client, to look at what landed."""
    async with http_client(registry, registry2) as client:
        yield client


def _images_file(path: Path, references: list[str]) -> str:
    path.write_text(yaml.safe_dump({"images": [{"image": r} for r in references]}))
    return str(path)


async def test_the_documented_example_relocates_two_images_with_progress(
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
    http: HttpClient,
) -> None:
    """
    docs/api.md's example, run as written: both images land in the repository, the
    sink hears kbld's lines and each image done, and the rewritten YAML and the lock
    name the new locations.
    """
    source = repository_factory("src")
    destination = f"{registry2.host}/{repository_factory('dst')}"
    one = push(registry, source, image_factory.image(layer_sizes=(1024,)), tag="one")
    two = push(registry, source, image_factory.image(layer_sizes=(2048,)), tag="two")
    references = [f"{p.host}/{p.repository}@{p.digest}" for p in (one, two)]

    result, progress = await _example()["relocate_two"](
        references, destination, tmp_path,
        insecure=frozenset({registry.host, registry2.host}),
    )

    assert result.report is not None
    assert 2 == len(result.report.images)
    assert "exporting 2 images..." in progress.lines
    assert 2 == len(progress.done)
    store = RegistryStore(http)
    for pushed in (one, two):
        moved = Reference.parse(f"{destination}@{pushed.digest}")
        assert pushed.digest == await store.manifest_exists(moved)
        assert str(moved) in (result.yaml or "")
        assert str(moved) in (tmp_path / "images.lock.yml").read_text()


async def test_a_tampered_tarball_imported_through_the_api_leaves_nothing_behind(
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
    http: HttpClient,
) -> None:
    """
    `run(UnpkgRequest(...))` of a tarball with one blob whose bytes no longer match its
    digest fails on integrity, and no image of the tarball, not even those whose own
    blobs were intact, is at the destination: no manifest pushed, no tag.
    """
    source = repository_factory("src")
    intact = push(registry, source, image_factory.image(layer_sizes=(1024,)), tag="intact")
    tampered = push(registry, source, image_factory.image(layer_sizes=(24 * MiB,)),
                    tag="tampered")
    insecure = Registries(insecure_hosts=frozenset({registry.host, registry2.host}))
    files = [_images_file(tmp_path / "images.yml",
                          [f"{p.host}/{p.repository}@{p.digest}" for p in (intact, tampered)])]
    out = tmp_path / "images.tar"
    await run(PkgRequest(files=files, output=str(out), registries=insecure))
    layer = tampered.image.layers[0]
    with tarfile.open(out) as tar:
        offset = tar.getmember(f"sha256-{layer.digest.hex}.tar.gz").offset_data
    with out.open("r+b") as f:  # flip one byte in the middle of the layer
        f.seek(offset + layer.size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    destination = f"{registry2.host}/{repository_factory('dst')}"
    mark = registry2.log.mark()

    with pytest.raises(IntegrityError):
        await run(UnpkgRequest(input=str(out), repository=destination, registries=insecure))

    assert [] == [
        entry.path for entry in registry2.log.requests(since=mark)
        if entry.method == "PUT" and "/manifests/" in entry.path
    ]
    store = RegistryStore(http)
    for pushed in (intact, tampered):
        assert None is await store.manifest_exists(
            Reference.parse(f"{destination}@{pushed.digest}")
        )


async def test_a_request_is_refused_before_anything_is_contacted(tmp_path: Path) -> None:
    """
    A Python caller gets the command line's refusals, before any input is read: an
    output path that must not be replaced (here a directory), referrers with a format
    that records no tags, a template with an unknown field, a platform that does not
    parse.
    """
    (tmp_path / "out.tar").mkdir()
    files = [_images_file(tmp_path / "images.yml", ["unreachable.invalid/a@sha256:" + "0" * 64])]

    with pytest.raises(InputError, match="--output"):
        await run(PkgRequest(files=files, output=str(tmp_path / "out.tar")))
    with pytest.raises(InputError, match="needs --format oci"):
        await run(PkgRequest(files=files, output=str(tmp_path / "x.tar"), format="kbld",
                             transfer=Transfer(include_referrers=True)))
    unread = [str(tmp_path / "no-such-file.yml")]
    with pytest.raises(InputError, match=re.escape("--repository-template 'r.example/{bogus}'")):
        await run(RelocateRequest(files=unread, repository_template="r.example/{bogus}"))
    with pytest.raises(InputError, match="platform"):
        await run(RelocateRequest(files=unread, repository="r.example/a",
                                  platforms=["linux/"]))


async def test_keep_going_with_a_failed_image_raises_incomplete_with_the_report(
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    With `keep_going`, one missing image does not stop the other; `Incomplete` carries
    the report with the failure, the sink heard the summary, and no lock was written.
    """
    source = repository_factory("src")
    there = push(registry, source, image_factory.image(layer_sizes=(1024,)), tag="there")
    missing = f"{registry.host}/{source}@sha256:" + "1" * 64
    files = [_images_file(tmp_path / "images.yml",
                          [f"{there.host}/{there.repository}@{there.digest}", missing])]
    lock = tmp_path / "lock.yml"
    sink = ListSink()
    request = RelocateRequest(
        files=files, repository=f"{registry2.host}/{repository_factory('dst')}",
        locks=LockFiles(kbld=str(lock)), transfer=Transfer(keep_going=True),
        registries=Registries(insecure_hosts=frozenset({registry.host, registry2.host})),
    )

    with pytest.raises(Incomplete) as stopped:
        await run(request, sink=sink)

    report = stopped.value.result.report
    assert report is not None
    assert ([missing], 1) == ([str(f.source) for f in report.failures], len(report.images))
    assert not lock.exists()
    assert any(isinstance(e, Log) and e.text.startswith("failed: ") for e in sink.events)

