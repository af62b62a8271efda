"""
Each registry's adaptive concurrency limit against real registries: it backs off when
the registry refuses or drops connections, `--concurrency N` pins it, the report says
where it went, and a copy within one registry runs even with a single slot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.faults_support import images_file, insecure_flags, move, run_cli, through
from tests.support import ImageFactory, Pusher, Registry, verify_image_tree
from tests.support.proxy import Action, FaultProxy, Forward, Reset, Respond

# A run of seconds; one still going after this long hung.
_HANG = 90.0


@pytest.mark.parametrize(
    "refusal",
    [Respond(status=429), Respond(status=503), Reset()],
    ids=["429", "503", "reset"],
)
async def test_an_adaptive_limit_halves_when_the_registry_refuses(
    refusal: Action,
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A registry answering 429 or 503, or dropping the connection, to blob requests halves
    its adaptive limit (from 8 to 4 or below); the copy still lands whole, and the
    other registry's limit never drops.
    """
    images = [push(registry, repository, i) for i in image_factory.corpus(4)]
    # The HTTP library sends a request again, once, after a reset of a connection it
    # reused; that second try is reset too while the rule lasts. With at most 8 blob
    # requests in flight, 16 resets make sure some requests meet two and the reset
    # reaches relocator (with 4, each could meet one and be retried unseen).
    proxy.add(refusal, method="GET", path="/blobs/", times=16 if isinstance(refusal, Reset) else 2)

    moved = await move([through(proxy, i) for i in images], f"{registry2.host}/{repository}",
                       insecure=[proxy.host, registry2.host])

    source, destination = moved.hosts[proxy.host], moved.hosts[registry2.host]
    assert (True, 8) == (source.limiter.lowest <= 4, destination.limiter.lowest)
    assert (True, True) == (source.concurrency.adaptive, destination.concurrency.adaptive)
    for pushed in images:
        verify_image_tree(registry2, repository, pushed.digest, hash_blobs=True)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        pytest.param([], (True, [1, 16], 8), id="adaptive"),
        pytest.param(["--concurrency", "3"], (False, [1, 3], 3), id="pinned-3"),
    ],
)
def test_the_report_says_whether_each_limit_adapted_and_within_what(
    flags: list[str],
    expected: tuple[bool, list[int], int],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Without `--concurrency` each registry's limit adapts within 1-16 from 8; with
    `--concurrency 3` it is pinned at 3 and never goes above it, for both registries.
    """
    pushed = [push(registry, repository, i) for i in image_factory.corpus(3)]
    report = tmp_path / "report.json"
    sources = images_file(tmp_path / "images.yml", [p.reference for p in pushed])

    code, _, err = run_cli(
        ["relocate", "-f", str(sources), "-r", f"{registry2.host}/{repository}",
         "--report", str(report), *flags, *insecure_flags(registry.host, registry2.host)],
        timeout=_HANG,
    )

    assert 0 == code, err
    adaptive, bounds, start = expected
    hosts = json.loads(report.read_text())["registries"]
    assert [(adaptive, bounds, start)] * 2 == [
        (h["adaptive_concurrency"], h["concurrency_bounds"], h["concurrency"]) for h in hosts
    ]
    if not adaptive:
        assert [start] * 2 == [h["peak_concurrency"] for h in hosts]


def test_a_copy_within_one_registry_runs_with_one_slot(
    tmp_path: Path,
    registry: Registry,
    proxy: FaultProxy,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    `--concurrency 1` on a copy from one repository of a registry to another whose
    mounts are declined: each blob is downloaded and uploaded to the same registry,
    both in the one slot the registry has (waiting for a second would hang), and the
    image lands whole.
    """
    pushed = push(registry, repository_factory("src"),
                  image_factory.image(layer_sizes=(1024, 300_000, 2_000_000)))
    destination = repository_factory("dst")
    proxy.add(Forward(drop_query=("mount", "from")), method="POST", query="mount=")
    sources = images_file(tmp_path / "images.yml", [through(proxy, pushed)])

    code, _, err = run_cli(
        ["relocate", "-f", str(sources), "-r", f"{proxy.host}/{destination}",
         "--concurrency", "1", *insecure_flags(proxy.host)],
        timeout=_HANG,
    )

    assert 0 == code, err
    uploads = proxy.requests(method="PUT", path="/blobs/uploads/")
    assert len(pushed.all_blobs()) == len([u for u in uploads if 201 == u.status])
    verify_image_tree(registry, destination, pushed.digest, hash_blobs=True)
