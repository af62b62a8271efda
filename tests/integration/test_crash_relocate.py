"""
A relocation killed half-way (SIGKILL, Ctrl-C's SIGINT, or SIGTERM) leaves no destination tag on
an incomplete image, and running the same command again moves only what is missing.

The command runs as a subprocess (`python -m relocator`); a `FaultProxy` stalls the
biggest blob after 2 MiB so that the signal lands mid-transfer every time, after the
small images have landed.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from relocator.engine import image_tag
from tests.integration.faults_support import (
    MiB,
    blob_requests,
    committed_uploads,
    images_file,
    insecure_flags,
    run_cli,
    spawn,
    through,
    walk_tags,
)
from tests.support import ImageFactory, PushedImage, Pusher, Registry, verify_image_tree
from tests.support.proxy import FaultProxy, Forward

# Seconds to wait for the subprocess to reach the stall, and to exit after a signal.
_PATIENCE = 60.0
# How the run ends: killed, or exiting with the documented code.
_EXIT = {signal.SIGKILL: -signal.SIGKILL, signal.SIGINT: 130, signal.SIGTERM: 143}



def _tags(registry: Registry, repository: str) -> set[str]:
    with registry.client() as client:
        return set(client.tags(repository))


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["SIGKILL", "SIGINT", "SIGTERM"]
)
def test_an_interrupted_relocation_is_finished_by_running_it_again(
    sig: signal.Signals,
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Killed while a big layer is half copied: every tag at the destination points at a
    complete image (the small ones) and the big image has none. Run again: only the
    blobs still missing are uploaded, only the big image's manifest is pushed, no
    small image's blob is downloaded again, and every image lands with its digest.
    """
    small = [push(registry, repository, i) for i in image_factory.corpus(4)]
    big = push(registry, repository, image_factory.image(layer_sizes=(1024, 8 * MiB)))
    layer = max(big.image.layers, key=lambda b: b.size)
    images: list[PushedImage] = [*small, big]
    proxy.add(Forward(stall_after=2 * MiB), method="GET", path=f"/blobs/{layer.digest}", times=1)
    sources = images_file(tmp_path / "images.yml", [through(proxy, i) for i in images])
    argv = [
        "relocate", "-f", str(sources),
        "-r", f"{registry2.host}/{repository}", *insecure_flags(proxy.host, registry2.host),
    ]
    small_tags = {image_tag(i.digest) for i in small}

    process = spawn(argv)
    try:
        proxy.wait_until(
            lambda: proxy.stalls == 1 and small_tags <= _tags(registry2, repository),
            timeout=_PATIENCE,
        )
    finally:
        process.send_signal(sig)
        _, err = process.communicate(timeout=_PATIENCE)

    assert _EXIT[sig] == process.returncode, err
    assert "Traceback" not in err
    if sig != signal.SIGKILL:
        message = "interrupted" if sig == signal.SIGINT else "terminated by SIGTERM"
        assert [f"relocator: error: {message}"] == [
            line for line in err.splitlines() if line.startswith("relocator:")
        ]
    landed = dict(walk_tags(registry2, repository))
    assert small_tags == set(landed)
    for digest in landed.values():
        verify_image_tree(registry2, repository, digest, hash_blobs=True)

    with registry2.client() as client:
        missing = {
            b.digest for i in images for b in i.all_blobs()
            if client.blob_size(repository, b.digest) is None
        }
    assert layer.digest in missing
    # The killed run's stalled request ends when the proxy notices; only then clear.
    proxy.wait_idle()
    proxy.clear_log()
    mark = registry2.log.mark()
    code, _, rerun_err = run_cli(argv)

    assert 0 == code, rerun_err
    uploaded = {b.digest for i in images for b in i.all_blobs()
                if committed_uploads(registry2, b.digest, mark)}
    assert missing == uploaded
    pushed_manifests = [e.path.rsplit("/", 1)[1] for e in registry2.log.requests(since=mark)
                        if e.method == "PUT" and "/manifests/" in e.path]
    assert [image_tag(big.digest)] == pushed_manifests
    assert [] == [b.digest for i in small for b in i.all_blobs() if blob_requests(proxy, b.digest)]
    for image in images:
        verify_image_tree(registry2, repository, image.digest, hash_blobs=True,
                          expected=image.image)
