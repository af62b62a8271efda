"""
A source that trickles (a byte now and then, which restarts any read timeout) cannot
hold a run: headers must arrive whole within the response timeout, a body must bring
a minimum of bytes in every window of waiting, and `--timeout` bounds the whole run.
The timeouts here are fractions of a second so that the tests run fast; the FaultProxy
paces what it sends.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.integration.faults_support import (
    blob_requests,
    cli_env,
    fast_cli,
    images_file,
    insecure_flags,
    move,
    relocate_through,
    run_cli,
    through,
)
from tests.support import ImageFactory, Pusher, Registry, verify_image_tree
from tests.support.proxy import FaultProxy, Forward, ProxyRequest

KiB = 1024
# Seconds the library runs below may take before the test calls them hung: far more
# than they need with the protections, far less than a trickle takes without them.
_HANG = 20


def _manifest_gets(proxy: FaultProxy) -> list[ProxyRequest]:
    return proxy.requests(server="proxy", method="GET", path="/manifests/")


async def test_trickled_headers_are_cut_and_asked_again(
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A manifest whose status line and headers come a byte every 50 ms is given up once
    the response timeout passes, though bytes keep coming, and asked for again.
    """
    image = push(registry, repository, image_factory.image())
    proxy.add(Forward(pace_headers=(1, 0.05)), method="GET", path="/manifests/", times=1)

    with anyio.fail_after(_HANG):
        await move(
            [through(proxy, image)], f"{registry2.host}/{repository}",
            insecure=[proxy.host, registry2.host], response_timeout=0.5,
        )

    assert [False, True] == [r.complete for r in _manifest_gets(proxy)]
    verify_image_tree(registry2, repository, image.digest)


async def test_a_trickled_manifest_is_cut_and_fetched_again(
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A manifest body sent a byte every 50 ms brings less than 1 KiB in a 0.5 s window:
    it is cut, and the request is retried like any failed one.
    """
    image = push(registry, repository, image_factory.image())
    proxy.add(Forward(pace=(1, 0.05)), method="GET", path="/manifests/", times=1)

    with anyio.fail_after(_HANG):
        await move(
            [through(proxy, image)], f"{registry2.host}/{repository}",
            insecure=[proxy.host, registry2.host], progress_bytes=KiB, progress_window=0.5,
        )

    assert [False, True] == [r.complete for r in _manifest_gets(proxy)]
    verify_image_tree(registry2, repository, image.digest)


async def test_a_trickled_blob_is_cut_and_resumed(
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A blob sent 64 bytes every 50 ms brings less than 16 KiB in a 0.5 s window: the
    download is cut and resumed with `Range` from the byte it reached.
    """
    image = push(registry, repository, image_factory.image(layer_sizes=(64 * KiB,)))
    layer = image.image.layers[0]
    proxy.add(Forward(pace=(64, 0.05)), method="GET", path=f"/blobs/{layer.digest}", times=1)

    with anyio.fail_after(_HANG):
        await move(
            [through(proxy, image)], f"{registry2.host}/{repository}",
            insecure=[proxy.host, registry2.host],
            progress_bytes=16 * KiB, progress_window=0.5,
        )
    proxy.wait_until(lambda: len(blob_requests(proxy, layer.digest)) == 2)

    first, second = blob_requests(proxy, layer.digest)
    assert (None, False) == (first.header("Range"), first.complete)
    # The byte reached: what the client had read when it gave up (the proxy's count
    # of what it wrote may be one piece behind, so the exact figure is not compared).
    resumed_at = int((second.header("Range") or "bytes=0-")[len("bytes="):-1])
    assert (True, True) == (0 < resumed_at < 64 * KiB, second.complete)
    verify_image_tree(registry2, repository, image.digest, hash_blobs=True)


async def test_a_slow_but_steady_blob_is_never_cut(
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A blob sent 8 KiB every 0.1 s takes over six windows of 0.5 s, but brings 16 KiB
    in each: it arrives in one download.
    """
    image = push(registry, repository, image_factory.image(layer_sizes=(256 * KiB,)))
    layer = image.image.layers[0]
    proxy.add(Forward(pace=(8 * KiB, 0.1)), method="GET", path=f"/blobs/{layer.digest}")

    moved = await move(
        [through(proxy, image)], f"{registry2.host}/{repository}",
        insecure=[proxy.host, registry2.host], progress_bytes=16 * KiB, progress_window=0.5,
    )

    assert [(None, True)] == [
        (r.header("Range"), r.complete) for r in blob_requests(proxy, layer.digest)
    ]
    assert [] == moved.retries


def test_a_source_that_always_trickles_fails_in_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A manifest that trickles on every try is asked for 6 times (the first try and 5
    retries), then the run fails with one line naming the host and the rule (exit 7).
    """
    image = push(registry, repository, image_factory.image())
    proxy.add(Forward(pace=(1, 0.05)), method="GET", path="/manifests/")
    fast_cli(monkeypatch, progress_bytes=KiB, progress_window=0.3)

    result = relocate_through(
        capsys, tmp_path, proxy, image, f"{registry2.host}/{repository}"
    )

    assert 7 == result.code, result.err
    expected = (
        f"relocator: error: fetching manifest {through(proxy, image)}: {proxy.host} sent less "
        "than 1 KiB in 0.3 s"
    )
    assert [expected] == result.error_lines
    assert 6 == len(_manifest_gets(proxy))


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_timeout_bounds_a_whole_run(
    how: str,
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    With a blob stalled for good (well within the stall timeout), `--timeout 2s` (or
    `RELOCATOR_TIMEOUT=2s`) ends the run with one line and exit 124. (The subprocess
    timeout only guards against a hang.)
    """
    image = push(registry, repository, image_factory.image(layer_sizes=(64 * KiB,)))
    layer = image.image.layers[0]
    proxy.add(Forward(stall_after=KiB), method="GET", path=f"/blobs/{layer.digest}")
    sources = images_file(tmp_path / "i.yml", [through(proxy, image)])
    argv = ["relocate", "-f", str(sources), "-r", f"{registry2.host}/{repository}",
            *insecure_flags(proxy.host, registry2.host)]
    if how == "flag":
        code, _, err = run_cli([*argv, "--timeout", "2s"], timeout=60)
    else:
        code, _, err = run_cli(argv, env=cli_env(RELOCATOR_TIMEOUT="2s"), timeout=60)

    assert 124 == code, err
    expected = (
        "relocator: error: the run took longer than its --timeout of 2 s (hint: raise "
        "--timeout, or look for a slow registry with --debug)"
    )
    assert [expected] == [line for line in err.splitlines() if line.startswith("relocator:")]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--timeout", "soon"], {}, 2),
        (["--timeout", "0s"], {}, 2),
        ([], {"RELOCATOR_TIMEOUT": "soon"}, 3),
    ],
    ids=["flag-not-a-duration", "flag-zero", "environment-not-a-duration"],
)
def test_a_bad_timeout_is_refused_before_any_request(
    argv: list[str], env: dict[str, str], expected: int, tmp_path: Path, proxy: FaultProxy
) -> None:
    """A `--timeout` or `RELOCATOR_TIMEOUT` that is not a positive duration is refused."""
    sources = images_file(tmp_path / "i.yml", [f"{proxy.host}/app@sha256:{'a' * 64}"])

    code, _, err = run_cli(
        ["relocate", "-f", str(sources), "-r", "localhost:1/x", *argv], env=cli_env(**env)
    )

    assert expected == code, err
    assert [] == proxy.requests()
    assert 1 == len([line for line in err.splitlines() if "error" in line]), err
