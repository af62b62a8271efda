"""
Streams that go wrong mid-body end cleanly: an over-long chunked blob is a one-line
integrity failure, its connection is given back, and no finaliser fails later in
another context (no traceback on stderr, whatever the number of such blobs).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

from relocator.errors import TransportError
from relocator.transport import HttpClient, Keychain, TransportSettings
from tests.integration.faults_support import FAST, images_file, insecure_flags, run_cli, through
from tests.support import ImageFactory, Pusher, Registry
from tests.support.proxy import FaultProxy, Forward, Respond

# What stderr must never hold: Python's reports of a failure nobody handled.
_NOISE = ("Traceback", "Task exception was never retrieved", "Exception ignored")


@pytest.mark.parametrize("command", ["relocate", "pkg"])
def test_over_long_chunked_blobs_fail_in_one_line_without_hanging(
    command: str,
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Twelve blobs, more than the default 8 transfers per host, each sent chunked with
    bytes past its descriptor's size, every retry too: every transfer fails as an
    integrity error and gives its connection and slot back, so the run ends (exit 6)
    with one error line and nothing Python printed on its own. (The subprocess timeout
    only guards against a hang.)
    """
    images = [
        push(registry, repository, image_factory.image(layer_sizes=(4096,))) for _ in range(12)
    ]
    for image in images:
        proxy.add(Forward(chunked=True, extend_by=b"x" * 4096),
                  method="GET", path=f"/blobs/{image.image.layers[0].digest}")
    sources = images_file(tmp_path / "i.yml", [through(proxy, i) for i in images])
    target = (["-r", f"{registry2.host}/{repository}"] if command == "relocate"
              else ["-o", str(tmp_path / "out.tar")])

    code, _, err = run_cli(
        [command, "-f", str(sources), *target, *insecure_flags(proxy.host, registry2.host)],
        timeout=90,
    )

    assert 6 == code, err
    assert [] == [n for n in _NOISE if n in err], err
    assert 1 == len([ln for ln in err.splitlines() if ln.startswith("relocator: error:")]), err



async def test_waiting_for_a_pooled_connection_is_bounded(
    registry: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    With every pooled connection of a host held by bodies nobody reads (what lost
    streams used to do), a request does not wait forever for one: after the pool
    timeout it is a temporary network error, retried, then raised.
    """
    image = push(registry, repository, image_factory.image(layer_sizes=(64 * 1024,)))
    layer = image.image.layers[0]
    proxy.add(Forward(stall_after=1024), method="GET", path=f"/blobs/{layer.digest}")
    url = f"http://{proxy.host}/v2/{repository}/blobs/{layer.digest}"
    settings = TransportSettings(
        insecure_hosts=frozenset({proxy.host}), concurrency=1, use_env_proxy=False,
        retry=FAST, pool_timeout=0.2, connect_timeout=0.2,
    )
    async with HttpClient(settings, Keychain(env={})) as client, AsyncExitStack() as held:
        # The connector's backstop for one slot per host: 2 × 1 + 4 connections, all
        # taken behind the client's back.
        session = client._session_now()
        for _ in range(6):
            await held.enter_async_context(session.get(url))

        with anyio.fail_after(30), pytest.raises(TransportError) as caught:
            async with client.request("GET", url, what="fetching blob"):
                pass

    assert caught.value.temporary
    assert f"GET from {proxy.host} timed out" == str(caught.value)
    proxy.release()


def test_an_upload_refused_before_its_body_is_read_is_retried_cleanly(
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A destination that answers 413 after the first 64 KiB of an upload, while the
    upload is still reading its source: the stream is closed only once the upload task
    let go of it, and the blob goes again in chunks (exit 0, no traceback).
    """
    image = push(registry, repository, image_factory.image(layer_sizes=(4 * 1024 * 1024,)))
    layer = image.image.layers[0]
    with FaultProxy(registry2.url) as destination:
        destination.add(Respond(status=413, early=64 * 1024), method="PUT",
                        path="/blobs/uploads/", query=f"digest={layer.digest}", times=1)
        sources = images_file(tmp_path / "i.yml", [through(proxy, image)])

        code, _, err = run_cli(
            ["relocate", "-f", str(sources), "-r", f"{destination.host}/{repository}",
             *insecure_flags(proxy.host, destination.host)],
            timeout=90,
        )

        assert 0 == code, err
        assert [] == [n for n in _NOISE if n in err], err
        assert [413] == [r.status for r in destination.requests(method="PUT")
                         if r.rule is not None]
