"""
Large blobs fetched as parallel `Range` requests from a real registry behind a
`FaultProxy`: several ranges in flight at once but never more than the host's limit,
exact ranges asked and checked, breaks resumed within a range, and servers that ignore
or mangle ranges handled by falling back to one stream. Every blob lands with its digest.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from relocator.cli.flaggroups import DEFAULT_RANGE_STREAMS
from relocator.store.ranges import RangePolicy
from tests.integration.faults_support import (
    MiB,
    Moved,
    blob_requests,
    move,
    relocate_through,
    through,
)
from tests.support import ImageFactory, PushedImage, Pusher, Registry, verify_image_tree
from tests.support.proxy import FaultProxy, Forward, ProxyRequest

KiB = 1024
# 1 MiB segments so that a 12 MiB layer is a dozen ranges; heads of 4 MiB.
POLICY = RangePolicy(segment=MiB, head=4 * MiB, minimum=4 * MiB, streams=4, poll=0.01)
# Slow each blob body down a little so that ranges visibly overlap.
PACED = Forward(pace=(256 * KiB, 0.01))


async def ranged_move(
    proxy: FaultProxy, image: PushedImage, destination: Registry, repository: str,
    *, concurrency: int,
) -> Moved:
    """Relocate `image` from behind `proxy` into `destination` with `POLICY`."""
    return await move(
        [through(proxy, image)], f"{destination.host}/{repository}",
        insecure=[proxy.host, destination.host], ranges=POLICY, concurrency=concurrency,
    )


def overlap(requests: list[ProxyRequest]) -> int:
    """The most of `requests` the proxy was handling at the same time."""
    edges = sorted([(r.started, 1) for r in requests] + [(r.finished, -1) for r in requests])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def ranges_asked(requests: list[ProxyRequest]) -> list[str | None]:
    return [r.header("Range") for r in requests]


def span_asked(request: ProxyRequest, size: int) -> tuple[int, int]:
    """The first and last byte a `Range: bytes=A-B` (or open-ended `A-`) asked for."""
    first, _, last = (request.header("Range") or "").removeprefix("bytes=").partition("-")
    return int(first), int(last) if last else size - 1


async def test_a_large_blob_comes_as_parallel_ranges_within_the_host_limit(
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    image = push(registry, repository, image_factory.image(layer_sizes=(12 * MiB + 5,)))
    layer = image.image.layers[0]
    proxy.add(PACED, method="GET", path=f"/blobs/{layer.digest}")

    moved = await ranged_move(proxy, image, registry2, repository, concurrency=3)

    assert 2 == moved.report.blobs_copied  # the config and the layer
    gets = blob_requests(proxy, layer.digest)
    assert all(r.status == 206 for r in gets)
    assert len(gets) > 3, ranges_asked(gets)
    assert overlap(gets) >= 2, "ranges ran in parallel"
    assert proxy.max_in_flight() <= 3, "never more requests than the host's limit"
    # Exactly the blob, each byte asked for once, in ranges of the policy's sizes.
    spans = sorted(span_asked(r, layer.size) for r in gets)
    assert 0 == spans[0][0]
    assert layer.size - 1 == spans[-1][1]
    assert all(b + 1 == c for (_, b), (c, _) in itertools.pairwise(spans))
    assert sum(r.body_bytes for r in gets) == layer.size
    verify_image_tree(registry2, repository, image.digest, hash_blobs=True)


async def test_small_blobs_and_a_busy_host_keep_one_plain_stream(
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """Below `minimum` a blob is one GET without `Range`; with one slot, no helper runs."""
    image = push(registry, repository, image_factory.image(layer_sizes=(3 * MiB, 9 * MiB)))
    small, large = image.image.layers

    moved = await ranged_move(proxy, image, registry2, repository, concurrency=1)

    assert [] == moved.report.failures
    assert [None] == ranges_asked(blob_requests(proxy, small.digest))
    assert [f"bytes=0-{4 * MiB - 1}", f"bytes={4 * MiB}-{8 * MiB - 1}",
            f"bytes={8 * MiB}-"] == ranges_asked(blob_requests(proxy, large.digest))
    verify_image_tree(registry2, repository, image.digest, hash_blobs=True)


async def test_a_server_ignoring_range_sends_the_blob_once_in_full(
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    image = push(registry, repository, image_factory.image(layer_sizes=(8 * MiB,)))
    layer = image.image.layers[0]
    proxy.add(Forward(drop_request_headers=("Range",)), method="GET",
              path=f"/blobs/{layer.digest}")

    moved = await ranged_move(proxy, image, registry2, repository, concurrency=4)

    assert [] == moved.retries
    gets = blob_requests(proxy, layer.digest)
    assert [(200, layer.size)] == [(r.status, r.body_bytes) for r in gets]
    verify_image_tree(registry2, repository, image.digest, hash_blobs=True)


async def test_a_range_cut_mid_body_resumes_within_its_range(
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    image = push(registry, repository, image_factory.image(layer_sizes=(8 * MiB,)))
    layer = image.image.layers[0]
    # The second range asked for (a helper's, or the head's next) breaks after 300 KiB.
    proxy.add(Forward(cut_after=300 * KiB), method="GET", path=f"/blobs/{layer.digest}",
              header="Range", skip=1, times=1)

    moved = await ranged_move(proxy, image, registry2, repository, concurrency=4)

    assert [] == moved.retries, "a break within a range is resumed, not a blob retry"
    gets = blob_requests(proxy, layer.digest)
    [cut] = [r for r in gets if not r.complete]
    start, end = span_asked(cut, layer.size)
    resumed = f"bytes={start + cut.body_bytes}-{end if end < layer.size - 1 else ''}"
    assert [206] == [r.status for r in gets if r.header("Range") == resumed]
    assert sum(r.body_bytes for r in gets) == layer.size
    verify_image_tree(registry2, repository, image.digest, hash_blobs=True)


async def test_a_range_answered_at_another_byte_falls_back_to_one_stream(
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    image = push(registry, repository, image_factory.image(layer_sizes=(8 * MiB,)))
    layer = image.image.layers[0]
    proxy.add(Forward(shift_range=-1000), method="GET", path=f"/blobs/{layer.digest}",
              header="Range", skip=1, times=1)

    moved = await ranged_move(proxy, image, registry2, repository, concurrency=4)

    [retry] = moved.retries
    assert "was not honoured" in retry
    last = blob_requests(proxy, layer.digest)[-1]
    assert (None, 200, layer.size) == (last.header("Range"), last.status, last.body_bytes)
    verify_image_tree(registry2, repository, image.digest, hash_blobs=True)


@pytest.mark.parametrize(("flags", "ranged"), [((), True), (("--range-streams", "1"), False)])
def test_relocate_splits_a_large_layer_unless_told_one_stream(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
    flags: tuple[str, ...],
    ranged: bool,
) -> None:
    """The CLI's defaults split a layer of 33 MiB; `--range-streams 1` keeps one GET."""
    assert DEFAULT_RANGE_STREAMS == RangePolicy().streams, "the parser's default is the store's"
    image = push(registry, repository, image_factory.image(layer_sizes=(33 * MiB,)))
    layer = image.image.layers[0]

    result = relocate_through(
        capsys, tmp_path, proxy, image, f"{registry2.host}/{repository}", *flags
    )

    assert 0 == result.code, result.err
    gets = blob_requests(proxy, layer.digest)
    if ranged:
        assert len(gets) > 1
        assert all(r.status == 206 for r in gets)
    else:
        assert [(None, 200)] == [(r.header("Range"), r.status) for r in gets]
    verify_image_tree(registry2, repository, image.digest, hash_blobs=True)
