"""
Network faults between relocator and real registries, injected by a `FaultProxy`:
broken and stalled downloads resume with `Range` (and only from the right byte), broken
uploads restart from a fresh source stream, bodies of the wrong length or content are
never committed, retries stop, and a slow but healthy transfer is never cut.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from relocator.errors import RegistryError, TransportError
from relocator.transport import RetryPolicy
from tests.integration.faults_support import (
    FAST,
    MiB,
    blob_requests,
    committed_uploads,
    fast_cli,
    move,
    relocate_through,
    through,
)
from tests.support import ImageFactory, Pusher, Registry, verify_image_tree
from tests.support.proxy import FaultProxy, Forward, Reset, Respond

KiB = 1024




def test_a_download_cut_mid_body_resumes_at_the_byte_it_reached(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A blob download whose connection drops after 1 MiB continues with
    `Range: bytes=1048576-` answered 206 from that byte; the upload it feeds goes on
    (one upload committed) and the blob lands with its digest.
    """
    image = push(registry, repository, image_factory.image(layer_sizes=(3 * MiB,)))
    layer = image.image.layers[0]
    proxy.add(Forward(cut_after=MiB), method="GET", path=f"/blobs/{layer.digest}", times=1)
    mark = registry2.log.mark()

    result = relocate_through(capsys, tmp_path, proxy, image, f"{registry2.host}/{repository}")

    assert 0 == result.code, result.err
    assert [(None, 200, MiB), (f"bytes={MiB}-", 206, 2 * MiB)] == [
        (r.header("Range"), r.status, r.body_bytes) for r in blob_requests(proxy, layer.digest)
    ]
    assert 1 == committed_uploads(registry2, layer.digest, mark)
    verify_image_tree(registry2, repository, image.digest, hash_blobs=True)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Forward(drop_request_headers=("Range",)), id="200-whole-body"),
        pytest.param(Forward(shift_range=-1000), id="206-at-another-byte"),
        pytest.param(
            Forward(add_headers=[("Content-Range", "bytes 0-9/10")]), id="two-content-ranges"
        ),
        pytest.param(Forward(set_headers={"Content-Range": "bytes */3145728"}), id="no-range"),
    ],
)
async def test_a_resume_not_continuing_at_that_byte_restarts_from_byte_zero(
    answer: Forward,
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A resume answered with anything but one 206 `Content-Range` starting at the byte
    asked for is never spliced on: the copy starts over from byte 0 with a fresh hash
    and lands with its digest.
    """
    image = push(registry, repository, image_factory.image(layer_sizes=(3 * MiB,)))
    layer = image.image.layers[0]
    path = f"/blobs/{layer.digest}"
    proxy.add(Forward(cut_after=MiB), method="GET", path=path, times=1)
    proxy.add(answer, method="GET", path=path, header="Range", times=1)

    moved = await move(
        [through(proxy, image)], f"{registry2.host}/{repository}",
        insecure=[proxy.host, registry2.host],
    )

    assert [None, f"bytes={MiB}-", None] == [
        r.header("Range") for r in blob_requests(proxy, layer.digest)
    ]
    assert [f"resuming at byte {MiB} was not honoured"] == [
        error.rsplit(": ", 1)[-1] for error in moved.retries
    ]
    verify_image_tree(registry2, repository, image.digest, hash_blobs=True)


async def test_a_download_cut_again_and_again_gives_up_after_bounded_tries(
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A connection that drops every 100 KiB forever is resumed from where it stopped, each
    resume spending an attempt of the blob's transfer (5 by default; no 1 MiB of
    progress forgives them): 6 downloads in all, then the copy fails with a temporary
    transport error that no whole-transfer retry multiplies.
    """
    image = push(registry, repository, image_factory.image(layer_sizes=(2 * MiB,)))
    layer = image.image.layers[0]
    proxy.add(Forward(cut_after=100 * KiB), method="GET", path=f"/blobs/{layer.digest}")

    with pytest.raises(TransportError) as caught:
        await move(
            [through(proxy, image)], f"{registry2.host}/{repository}",
            insecure=[proxy.host, registry2.host],
        )

    offsets = [None] + [f"bytes={n * 100 * KiB}-" for n in range(1, 6)]
    assert offsets == [r.header("Range") for r in blob_requests(proxy, layer.digest)]
    assert caught.value.temporary


async def test_a_blob_always_answering_503_is_requested_1_plus_attempts_times_in_all(
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    The transport's request retries and the engine's whole-transfer retries of one blob
    spend one count of attempts (`RetryPolicy.attempts`, 5): a blob whose GET always
    answers 503 is requested 6 times in all, not 6 per transfer attempt (36).
    """
    image = push(registry, repository, image_factory.image(layer_sizes=(4 * KiB,)))
    layer = image.image.layers[0]
    proxy.add(Respond(status=503), method="GET", path=f"/blobs/{layer.digest}")

    with pytest.raises(RegistryError) as caught:
        await move(
            [through(proxy, image)], f"{registry2.host}/{repository}",
            insecure=[proxy.host, registry2.host],
        )

    assert 6 == len(blob_requests(proxy, layer.digest))
    assert 503 == caught.value.status
    assert proxy.host in str(caught.value)


@pytest.mark.parametrize("level", ["request", "blob-copy"])
async def test_retries_stop_when_the_time_budget_is_spent(
    level: str,
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A registry that answers 503 forever is not asked a thousand times when the policy
    allows a thousand retries but only 0.5 s: the time budget ends the retries, of a
    request and of a whole blob copy alike.
    """
    image = push(registry, repository, image_factory.image(layer_sizes=(1024,)))
    layer = image.image.layers[0]
    proxy.add(Respond(status=503), method="GET", path=f"/blobs/{layer.digest}")
    patient = RetryPolicy(attempts=1000, initial=0.001, max_delay=0.001, jitter=0.0, budget=0.5)
    none = RetryPolicy(attempts=0)

    with pytest.raises(RegistryError) as caught:
        await move(
            [through(proxy, image)], f"{registry2.host}/{repository}",
            insecure=[proxy.host, registry2.host],
            retry=patient if level == "request" else none,
            copy_retry=none if level == "request" else patient,
        )

    assert 503 == caught.value.status
    assert len(blob_requests(proxy, layer.digest)) < 1000


async def test_a_stalled_body_times_out_and_resumes(
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A body that stops arriving for longer than the read timeout is abandoned and
    resumed with `Range` from the last byte received.
    """
    image = push(registry, repository, image_factory.image(layer_sizes=(MiB,)))
    layer = image.image.layers[0]
    proxy.add(Forward(stall_after=64 * KiB), method="GET", path=f"/blobs/{layer.digest}", times=1)

    with anyio.fail_after(30):
        await move(
            [through(proxy, image)], f"{registry2.host}/{repository}",
            insecure=[proxy.host, registry2.host], read_timeout=0.5,
        )
    proxy.wait_until(lambda: len(blob_requests(proxy, layer.digest)) == 2)

    assert [(None, False), (f"bytes={64 * KiB}-", True)] == [
        (r.header("Range"), r.complete) for r in blob_requests(proxy, layer.digest)
    ]
    verify_image_tree(registry2, repository, image.digest, hash_blobs=True)


async def test_a_slow_but_healthy_transfer_is_never_cut(
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A blob that trickles in 32 KiB every 0.1 s takes over three times the read timeout
    in total and still arrives in one download: only a stall ends a transfer, never its
    duration (there is no total timeout).
    """
    image = push(registry, repository, image_factory.image(layer_sizes=(MiB,)))
    layer = image.image.layers[0]
    proxy.add(Forward(pace=(32 * KiB, 0.1)), method="GET", path=f"/blobs/{layer.digest}")

    moved = await move(
        [through(proxy, image)], f"{registry2.host}/{repository}",
        insecure=[proxy.host, registry2.host], read_timeout=1.0,
    )

    assert [(None, True)] == [
        (r.header("Range"), r.complete) for r in blob_requests(proxy, layer.digest)
    ]
    assert [] == moved.retries
    verify_image_tree(registry2, repository, image.digest, hash_blobs=True)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Forward(truncate_by=1), id="short-content-length"),
        pytest.param(Forward(extend_by=b"x"), id="long-content-length"),
        pytest.param(Forward(truncate_by=1, chunked=True), id="short-chunked"),
        pytest.param(Forward(extend_by=b"x", chunked=True), id="long-chunked"),
        pytest.param(Forward(corrupt_at=MiB + 5), id="corrupt"),
    ],
)
@pytest.mark.parametrize("verify", [False, True], ids=["registry-checks", "verify-blobs"])
def test_a_body_of_the_wrong_length_or_content_is_never_committed(
    answer: Forward,
    verify: bool,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    proxy2: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A source that always sends one byte too few or too many (with an honest or a lying
    Content-Length, or chunked) or a flipped byte fails the run with exit code 6 after
    the bounded retries, and nothing is committed or tagged. A body of the wrong length
    never reaches the destination whole; a flipped byte does, and the registry's own
    digest check refuses it, unless `--verify-blobs` makes relocator hash too: then
    the destination never receives the whole body (so even a registry that does not
    check digests could not commit it).
    """
    fast_cli(monkeypatch)
    image = push(registry, repository, image_factory.image(layer_sizes=(2 * MiB,)))
    layer = image.image.layers[0]
    proxy.add(answer, method="GET", path=f"/blobs/{layer.digest}")
    mark = registry2.log.mark()

    result = relocate_through(
        capsys, tmp_path, proxy, image, f"{proxy2.host}/{repository}",
        *(["--verify-blobs"] if verify else []),
    )

    assert 6 == result.code, result.err
    assert 1 == len(result.error_lines)
    assert 1 + FAST.attempts == len(blob_requests(proxy, layer.digest))
    uploads = proxy2.requests(method="PUT", path="/blobs/uploads/")
    assert uploads
    if verify or answer.corrupt_at is None:
        assert all(u.request_bytes < layer.size for u in uploads), [
            u.request_bytes for u in uploads
        ]
    assert 0 == committed_uploads(registry2, layer.digest, mark)
    with registry2.client() as client:
        assert (None, ()) == (client.blob_size(repository, layer.digest), client.tags(repository))


def test_an_upload_cut_mid_body_restarts_from_a_fresh_source_stream(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    proxy2: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    When the connection drops while a blob is being uploaded, the whole upload starts
    over: a new upload session (POST) fed by a new download from byte 0; the blob is
    committed once and lands with its digest.
    """
    image = push(registry, repository, image_factory.image(layer_sizes=(2 * MiB,)))
    layer = image.image.layers[0]
    proxy2.add(Reset(after=512 * KiB), method="PUT", path="/blobs/uploads/",
               query=layer.digest.hex, times=1)
    mark = registry2.log.mark()

    result = relocate_through(capsys, tmp_path, proxy, image, f"{proxy2.host}/{repository}")

    assert 0 == result.code, result.err
    puts = [p for p in proxy2.requests(method="PUT", path="/blobs/uploads/")
            if layer.digest.hex in p.query]
    assert [(0, 512 * KiB), (201, layer.size)] == [(p.status, p.request_bytes) for p in puts]
    assert [None, None] == [r.header("Range") for r in blob_requests(proxy, layer.digest)]
    assert 1 == committed_uploads(registry2, layer.digest, mark)
    verify_image_tree(registry2, repository, image.digest, hash_blobs=True)
