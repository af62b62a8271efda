"""
The fault proxy itself, checked with a plain `http.client`: the faults it injects land
where asked, and what it counts is what happened (other tests rely on both).
"""

from __future__ import annotations

import http.client
import threading
from urllib.parse import parse_qs

from tests.support import ImageFactory, Pusher, Registry
from tests.support.proxy import PRESIGNED_QUERY, FaultProxy, Forward, Redirect

KiB = 1024



def _get(host: str, target: str) -> tuple[int, str | None, bytes]:
    """GET `target` on `host`: status, Location, and the body as far as it came."""
    connection = http.client.HTTPConnection(host, timeout=30)
    try:
        connection.request("GET", target, headers={"Cookie": "session=1"})
        response = connection.getresponse()
        try:
            body = response.read()
        except http.client.IncompleteRead as exc:
            body = exc.partial
        return response.status, response.getheader("Location"), body
    finally:
        connection.close()


def test_a_cut_delivers_exactly_the_bytes_asked_for(
    registry: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """`cut_after=N` sends N body bytes and ends the connection; the log says so."""
    pushed = push(registry, repository, image_factory.image(layer_sizes=(300 * KiB,)))
    layer = pushed.image.layers[0]
    path = f"/v2/{repository}/blobs/{layer.digest}"
    proxy.add(Forward(cut_after=100 * KiB), path=path, times=1)

    cut = _get(proxy.host, path)
    whole = _get(proxy.host, path)

    assert [(200, layer.read()[: 100 * KiB]), (200, layer.read())] == [
        (cut[0], cut[2]), (whole[0], whole[2])
    ]
    assert [(100 * KiB, False), (300 * KiB, True)] == [
        (r.body_bytes, r.complete) for r in proxy.requests(path=path)
    ]


def test_stalled_bodies_count_as_in_flight_until_released(
    registry: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """Three downloads stalled at once are three requests in flight; released, they end."""
    pushed = push(registry, repository, image_factory.image(layer_sizes=(64 * KiB,)))
    layer = pushed.image.layers[0]
    path = f"/v2/{repository}/blobs/{layer.digest}"
    proxy.add(Forward(stall_after=KiB), path=path)
    bodies: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: bodies.append(_get(proxy.host, path)[2]))
        for _ in range(3)
    ]

    for thread in threads:
        thread.start()
    proxy.wait_until(lambda: proxy.stalls == 3)
    in_flight = proxy.max_in_flight()
    proxy.release()
    for thread in threads:
        thread.join()

    assert 3 == in_flight
    assert [layer.read()] * 3 == bodies


def test_the_cdn_serves_the_registry_answer_after_its_hops(
    registry: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A redirected request leads, hop by hop, to the registry's bytes served by the CDN,
    every CDN URL carrying the presigned query; the CDN logs the headers it received.
    """
    pushed = push(registry, repository, image_factory.image())
    layer = pushed.image.layers[0]
    path = f"/v2/{repository}/blobs/{layer.digest}"
    proxy.add(Redirect(hops=2), path=path)

    _, first, _ = _get(proxy.host, path)
    assert first is not None
    _, second, _ = _get(proxy.cdn_host, first.split(proxy.cdn_host, 1)[1])
    assert second is not None
    status, _, body = _get(proxy.cdn_host, second)

    assert (200, layer.read()) == (status, body)
    cdn = proxy.requests(server="cdn")
    signed = parse_qs(PRESIGNED_QUERY)
    assert [(302, signed), (200, signed)] == [(r.status, parse_qs(r.query)) for r in cdn]
    assert ["session=1", "session=1"] == [r.header("Cookie") for r in cdn]
