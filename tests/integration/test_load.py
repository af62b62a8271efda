"""
Load: many images through one registry stay within the per-host concurrency limit and
the file-descriptor limit, and a multi-GiB layer is streamed in flat memory.

Both run `python -m relocator` as a subprocess, so that its resource limits and its
peak memory (`ru_maxrss`) are its own.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from relocator.engine import image_tag
from relocator.oci import mediatypes
from tests.integration.faults_support import (
    ROOT,
    MiB,
    cli_env,
    images_file,
    insecure_flags,
    through,
    upload_puts,
)
from tests.support import (
    Blob,
    Image,
    PushedImage,
    Registry,
    push,
    random_layer,
    verify_image_tree,
)
from tests.support.proxy import FaultProxy, Respond

# 500 images, as many as a large Helm chart collection.
IMAGES = 500
CONCURRENCY = 4
# The descriptor limit the relocation runs under (ulimit -n 256).
OPEN_FILES = 256
# The layer of the memory test: 2 GiB, streamed from a seed.
BIG_LAYER = 2 * 1024 * MiB
# Peak resident memory allowed while moving it.
MAX_RSS = 200 * MiB
# The digest an upload PUT commits, as the registry's access log shows it.
_UPLOADED = re.compile(r"digest=sha256(?::|%3A)([0-9a-f]{64})", re.IGNORECASE)


def _slim_images(seed: str, count: int) -> tuple[Image, ...]:
    """
    `count` images sharing one config and one base layer, each with its own 256-byte
    layer: every image is distinct, and the registries' work stays per image.
    """
    config = Blob.from_bytes(b'{"architecture":"amd64","os":"linux"}', mediatypes.OCI_CONFIG)
    base = random_layer(f"{seed}/base", 1024)
    images = []
    for n in range(count):
        own = random_layer(f"{seed}/{n}", 256)
        doc = {
            "schemaVersion": 2,
            "mediaType": mediatypes.OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [base.to_json(), own.to_json()],
        }
        images.append(Image.from_document(doc, blobs=[config, base, own]))
    return tuple(images)


def _seed(registry: Registry, repository: str, images: Sequence[Image]) -> list[PushedImage]:
    """Push `images` with four clients at once (one per thread: clients are not shared)."""

    def push_share(share: Sequence[Image]) -> list[PushedImage]:
        with registry.client() as client:
            return [push(client, repository, i, host=registry.host) for i in share]

    first = push_share(images[:1])
    shares = [images[1 + n :: 4] for n in range(4)]
    with ThreadPoolExecutor(4) as pool:
        return first + [p for share in pool.map(push_share, shares) for p in share]


def _limited(open_files: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    return apply


@pytest.mark.slow
def test_500_images_stay_within_the_per_host_and_descriptor_limits(
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    request: pytest.FixtureRequest,
) -> None:
    """
    Relocating 500 images (502 unique blobs) with `--concurrency 4` under `ulimit -n
    256`: neither registry ever has more than 4 requests in flight (both reach 4), no
    descriptor runs out, every unique blob is uploaded exactly once and every image is
    tagged at the destination.
    """
    pushed = _seed(registry, repository, _slim_images(request.node.nodeid, IMAGES))
    unique = {b.digest for i in pushed for b in i.all_blobs()}
    mark = registry2.log.mark()
    with FaultProxy(registry.url) as source, FaultProxy(registry2.url) as destination:
        sources = images_file(tmp_path / "images.yml", [through(source, i) for i in pushed])
        done = subprocess.run(
            [sys.executable, "-m", "relocator", "relocate", "-f", str(sources),
             "-r", f"{destination.host}/{repository}", "--concurrency", str(CONCURRENCY),
             "--progress", "none", *insecure_flags(source.host, destination.host)],
            cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600, check=False,
            preexec_fn=_limited(OPEN_FILES),
        )
        peaks = (source.max_in_flight(), destination.max_in_flight())

    assert 0 == done.returncode, done.stderr[-3000:]
    assert (CONCURRENCY, CONCURRENCY) == peaks
    uploads = upload_puts(registry2, mark)
    assert sorted(d.hex for d in unique) == sorted(
        m.group(1) for path in uploads if (m := _UPLOADED.search(path))
    )
    with registry2.client() as client:
        assert {image_tag(i.digest) for i in pushed} == set(client.tags(repository))
    for image in pushed[:: IMAGES // 5]:
        verify_image_tree(registry2, repository, image.digest, hash_blobs=True,
                          expected=image.image)


def _synthetic_image(seed: str, size: int) -> tuple[Image, Blob]:
    """
    An image whose one layer is `size` seeded bytes, never stored anywhere in full, and
    readable from any offset (`Blob.span`).
    """
    layer = Blob.seekable(f"{seed}/layer", size, mediatypes.OCI_LAYER_GZIP)
    config = Blob.from_bytes(b'{"architecture":"amd64","os":"linux"}', mediatypes.OCI_CONFIG)
    doc = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json()],
    }
    return Image.from_document(doc, blobs=[config, layer]), layer


@pytest.fixture
def scratch_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_binary: str
) -> Iterator[Registry]:
    """A registry of this test alone whose storage is deleted afterwards (it gets GiBs)."""
    from tests.support import running_registry

    with running_registry(tmp_path_factory.mktemp("scratch"), binary=registry_binary) as reg:
        yield reg
    shutil.rmtree(reg.storage, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("ranges", [False, True], ids=["one-stream", "parallel-ranges"])
def test_a_2_gib_layer_moves_in_flat_memory(
    tmp_path: Path,
    scratch_registry: Registry,
    request: pytest.FixtureRequest,
    ranges: bool,
) -> None:
    """
    A 2 GiB layer (generated from a seed by the source, stored only by the destination)
    is relocated with a peak resident memory of the relocator process under 200 MiB:
    from a source that ignores `Range` (one stream), and from one that honours it, so
    that the layer comes as parallel ranges reassembled in order.
    """
    image, layer = _synthetic_image(request.node.nodeid, BIG_LAYER)
    config = image.blobs[0]
    with FaultProxy("http://127.0.0.1:9") as source:
        manifest = Respond(body=image.raw, headers={"Content-Type": image.media_type})
        source.add(manifest, path=f"/v2/big/app/manifests/{image.digest}")
        source.add(Respond(body=config.read()), path=f"/v2/big/app/blobs/{config.digest}")
        source.add(Respond(body=layer.chunks, size=layer.size,
                           ranges=layer.span if ranges else None),
                   path=f"/v2/big/app/blobs/{layer.digest}")
        sources = images_file(tmp_path / "images.yml", [f"{source.host}/big/app@{image.digest}"])
        process = subprocess.Popen(
            [sys.executable, "-m", "relocator", "relocate", "-f", str(sources),
             "-r", f"{scratch_registry.host}/big/app", "--progress", "none",
             *insecure_flags(source.host, scratch_registry.host)],
            cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        assert process.stderr is not None
        with process.stderr:
            err = process.stderr.read().decode()
        # The child's own peak memory (wait4), not the maximum over all children so far.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)

    assert 0 == process.returncode, err
    # ru_maxrss is in KiB on Linux.
    assert usage.ru_maxrss * 1024 < MAX_RSS, f"peak RSS {usage.ru_maxrss // 1024} MiB"
    with scratch_registry.client() as client:
        assert layer.size == client.blob_size("big/app", layer.digest)
    gets = source.requests(method="GET", path=f"/blobs/{layer.digest}")
    if ranges:
        assert len(gets) > 1
        assert all(r.status == 206 for r in gets)
    else:
        assert [200] == [r.status for r in gets]
    verify_image_tree(scratch_registry, "big/app", image.digest)
