"""
Registries that misbehave, simulated by a `FaultProxy` in front of real ones: rate
limits, server errors and refusals, bytes that do not match their digest, lying headers,
odd content types, declined mounts, 404s of every shape, and a website posing as a
registry. Also the order in which an image's parts reach the destination.
"""

from __future__ import annotations

import email.utils
import gzip
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from relocator.engine import image_tag
from relocator.oci import Digest, mediatypes
from relocator.transport import RetryPolicy
from tests.integration.cli import insecure, relocator
from tests.integration.faults_support import (
    blob_requests,
    fast_cli,
    images_file,
    insecure_flags,
    move,
    through,
)
from tests.support import (
    Blob,
    Image,
    ImageFactory,
    PushedImage,
    Pusher,
    Registry,
    image,
    random_layer,
    verify_image_tree,
)
from tests.support.proxy import FaultProxy, Forward, Redirect, Respond

# Error bodies of registries that answer 404 in their own way.
NOT_FOUND_SHAPES = {
    "empty": b"",
    "html": b"<html><body><h1>404 Not Found</h1></body></html>",
    "harbor": b'{"errors":[{"code":"NOT_FOUND","message":"artifact not found"}]}',
    "unknown-code": b'{"errors":[{"code":"UNKNOWN","message":"unknown error"}]}',
}




def _relocate(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    images: list[str],
    destination: str,
    *flags: str,
) -> tuple[int, str, str, list[str]]:
    """`relocator relocate` of `images` (references) into `destination`."""
    result = relocator(
        capsys, "relocate", "-f", str(images_file(tmp_path / "images.yml", images)),
        "-r", destination, *flags,
    )
    return result.code, result.out, result.err, result.error_lines


# --- rate limits and retries -------------------------------------------------------


async def test_retry_after_is_honoured_up_to_its_cap(
    caplog: pytest.LogCaptureFixture,
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    The wait after a 429 is its `Retry-After`, in seconds or as an HTTP date, but never
    more than `max_retry_after`; an unreadable value falls back to the backoff. The
    request succeeds on its fifth try.
    """
    pushed = push(registry, repository, image_factory.image())
    path = f"/manifests/{pushed.digest}"
    in_an_hour = email.utils.formatdate(time.time() + 3600, usegmt=True)
    for value in ("1", in_an_hour, "soon", "86400"):
        proxy.add(Respond(status=429, headers={"Retry-After": value}), method="GET", path=path,
                  times=1)
    caplog.set_level(logging.DEBUG, logger="relocator.transport")
    policy = RetryPolicy(attempts=5, initial=0.001, max_delay=0.001, jitter=0.0,
                         max_retry_after=1.0)

    await move([through(proxy, pushed)], f"{registry2.host}/{repository}",
               insecure=[proxy.host, registry2.host], retry=policy)

    waits = re.findall(r"retrying fetching manifest \S+ in (\d+\.\d)s", caplog.text)
    assert ["1.0", "1.0", "0.0", "1.0"] == waits
    assert [429, 429, 429, 429, 200] == [
        r.status for r in proxy.requests(method="GET", path=path)
    ]


async def test_429_halves_the_hosts_concurrency_which_grows_back_slowly(
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Three 429s take a registry's concurrency from 8 to 1 (halved each time); the
    limit then grows back by one slot per 20 successful requests, not at once.
    """
    images = [push(registry, repository, i) for i in image_factory.corpus(20)]
    proxy.add(Respond(status=429), method="GET", path="/blobs/", times=3)

    moved = await move([through(proxy, i) for i in images], f"{registry2.host}/{repository}",
                       insecure=[proxy.host, registry2.host], concurrency=8)

    state = moved.hosts[proxy.host]
    answered = [r for r in proxy.requests() if r.status != 429]
    assert (3, 1, 3) == (state.throttled, state.limiter.lowest, state.retries)
    assert 1 < state.limiter.limit <= 1 + len(answered) // 20 < 8


def test_the_summary_says_what_each_registry_cost_in_retries(
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
    The run's summary (the log line and the `--report` file) names every registry that
    cost retries, with how many and how many were rate limits; the others cost none.
    """
    fast_cli(monkeypatch)
    pushed = push(registry, repository, image_factory.image())
    proxy.add(Respond(status=429), method="GET", path="/blobs/", times=2)
    proxy.add(Respond(status=503), method="GET", path="/manifests/", times=1)
    report = tmp_path / "report.json"

    code, _, err, _ = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{registry2.host}/{repository}",
        "--report", str(report), *insecure_flags(proxy.host, registry2.host),
    )

    assert 0 == code, err
    costs = {
        r["host"]: (r["retries"], r["throttled"], r["lowest_concurrency"])
        for r in json.loads(report.read_text())["registries"]
    }
    # The proxy's adaptive limit halves once for the 503 and the 429s that follow in
    # the same window of answers (one overload, one halving): 8 to 4.
    assert {proxy.host: (3, 2, 4), registry2.host: (0, 0, 8)} == costs
    assert [line for line in err.splitlines() if proxy.host in line and "3 retries" in line]


def test_an_outage_gets_one_line_when_retries_start_and_one_when_it_recovers(
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
    A registry failing every request for a while (here: the next 4 answered 503) gets
    one line when its requests start failing and one when it answers again, in the log
    and as `RegistryRetrying` / `RegistryRecovered` objects with `--json`; the report's
    retry total is the sum of its per-registry figures.
    """
    fast_cli(monkeypatch)
    pushed = push(registry, repository, image_factory.image())
    destination = f"{registry2.host}/{repository}"
    flags = insecure_flags(proxy.host, registry2.host)
    proxy.add(Respond(status=503), times=4)
    plain = _relocate(capsys, tmp_path, [through(proxy, pushed)], destination, *flags)
    proxy.add(Respond(status=503), times=4)
    report = tmp_path / "report.json"

    code, _, err, _ = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{destination}-json", "--json",
        "--report", str(report), *flags,
    )

    assert (0, 0) == (plain[0], code), plain[2] + err
    news = [line.removeprefix("relocate | ") for line in plain[2].splitlines()
            if f"registry {proxy.host}: re" in line]
    assert 2 == len(news), plain[2]
    assert news[0].startswith(f"registry {proxy.host}: requests failing, retrying: ")
    assert f"registry {proxy.host}: recovered after 4 retries in " in news[1]
    events = [json.loads(line) for line in err.splitlines()]
    assert [("RegistryRetrying", proxy.host), ("RegistryRecovered", proxy.host)] == [
        (e["type"], e["host"]) for e in events if e["type"].startswith("Registry")
    ]
    document = json.loads(report.read_text())
    assert 4 == document["totals"]["retries"]
    assert document["totals"]["retries"] == sum(r["retries"] for r in document["registries"])


def test_server_errors_are_retried_until_the_registry_recovers(
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
    """A manifest GET answered 503 twice and a manifest PUT answered 500 once still land."""
    fast_cli(monkeypatch)
    pushed = push(registry, repository, image_factory.image())
    proxy.add(Respond(status=503), method="GET", path=f"/manifests/{pushed.digest}", times=2)
    proxy2.add(Respond(status=500), method="PUT", path="/manifests/", times=1)

    code, _, err, _ = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{proxy2.host}/{repository}",
        *insecure_flags(proxy.host, proxy2.host),
    )

    assert 0 == code, err
    assert [503, 503, 200] == [
        r.status for r in proxy.requests(method="GET", path=f"/manifests/{pushed.digest}")
    ]
    assert [500, 201] == [r.status for r in proxy2.requests(method="PUT", path="/manifests/")]
    verify_image_tree(registry2, repository, pushed.digest, hash_blobs=True)


@pytest.mark.parametrize(
    ("status", "code", "exit_code"),
    [
        (400, "MANIFEST_INVALID", 8),
        (404, "NAME_UNKNOWN", 8),
        (501, "UNSUPPORTED", 8),
        (403, "DENIED", 4),
    ],
)
def test_refusals_are_not_retried(
    status: int,
    code: str,
    exit_code: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    registry: Registry,
    proxy2: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A manifest PUT refused with 400, 404, 501 or 403 is sent once, and the run ends
    with one line naming the registry, the image and the registry's error code.
    """
    fast_cli(monkeypatch)
    pushed = push(registry, repository, image_factory.image())
    body = json.dumps({"errors": [{"code": code, "message": "refused"}]}).encode()
    proxy2.add(Respond(status=status, body=body), method="PUT", path="/manifests/")

    result, _, err, errors = _relocate(
        capsys, tmp_path, [pushed.reference], f"{proxy2.host}/{repository}",
        *insecure(registry), *insecure_flags(proxy2.host),
    )

    assert exit_code == result, err
    assert 1 == len(proxy2.requests(method="PUT", path="/manifests/"))
    [line] = errors
    assert (True, True, True) == (proxy2.host in line, repository in line, code in line)


# --- bytes and headers that lie -----------------------------------------------------


def test_a_manifest_whose_bytes_do_not_hash_to_its_digest_is_refused(
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
    A registry serving other (valid) manifest bytes for a digest is refused in one line
    naming the digest, exit code 6, before anything reaches the destination.
    """
    wanted = push(registry, repository, image_factory.image())
    other = push(registry, repository, image_factory.image())
    proxy.add(Forward(replace_body=other.raw), method="GET", path=f"/manifests/{wanted.digest}")
    mark = registry2.log.mark()

    code, _, err, errors = _relocate(
        capsys, tmp_path, [through(proxy, wanted)], f"{registry2.host}/{repository}",
        *insecure_flags(proxy.host, registry2.host),
    )

    assert 6 == code, err
    assert 1 == len(errors)
    assert str(wanted.digest) in errors[0]
    assert [] == [e for e in registry2.log.requests(since=mark) if e.method in ("PUT", "POST")]


@pytest.mark.parametrize(
    "claimed",
    [
        pytest.param(str(Digest.of(b"no such manifest")), id="absent-digest"),
        pytest.param("sha256:../../etc/passwd", id="malformed"),
    ],
)
def test_a_wrong_digest_header_on_a_tag_is_not_trusted(
    claimed: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Resolving a tag whose `Docker-Content-Digest` names a manifest the registry does not
    serve (or is not a digest at all) gives the digest of the tag's bytes instead.
    """
    pushed = push(registry, repository, image_factory.image(), tag="v1")
    proxy.add(Forward(set_headers={"Docker-Content-Digest": claimed}), path="/manifests/v1")
    source = images_file(tmp_path / "images.yml", [f"{proxy.host}/{repository}:v1"])

    result = relocator(capsys, "resolve", "-f", str(source), *insecure_flags(proxy.host))

    assert 0 == result.code, result.err
    assert f"{proxy.host}/{repository}@{pushed.digest}" in result.out
    assert claimed not in result.out
    assert ["HEAD", "GET"] == [
        r.method for r in proxy.requests(path="/manifests/v1")
    ]


def test_a_registry_storing_another_digest_than_pushed_fails_the_push(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    proxy2: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A manifest PUT answered with another `Docker-Content-Digest` than the bytes' fails
    the run in one line (the digest would change), exit code 8.
    """
    pushed = push(registry, repository, image_factory.image())
    other = str(Digest.of(b"something else"))
    proxy2.add(Forward(set_headers={"Docker-Content-Digest": other}), method="PUT",
               path="/manifests/")

    code, _, err, errors = _relocate(
        capsys, tmp_path, [pushed.reference], f"{proxy2.host}/{repository}",
        *insecure(registry), *insecure_flags(proxy2.host),
    )

    assert 8 == code, err
    [line] = errors
    assert f"registry stored it as {other}; the digest would change" in line


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/json; charset=utf-8", f"{mediatypes.OCI_INDEX}; charset=utf-8"],
)
def test_manifests_served_with_loose_content_types_keep_their_digest(
    content_type: str,
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
    A manifest served as `text/plain` (a CDN) or with parameters is typed by its own
    `mediaType` and copied byte for byte.
    """
    pushed = push(registry, repository, image_factory.index())
    proxy.add(Forward(set_headers={"Content-Type": content_type}), method="GET",
              path=f"/manifests/{pushed.digest}")

    code, _, err, _ = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{registry2.host}/{repository}",
        *insecure_flags(proxy.host, registry2.host),
    )

    assert 0 == code, err
    verify_image_tree(registry2, repository, pushed.digest, expected=pushed.image)


def test_a_content_type_contradicting_the_media_type_is_refused(
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
    An image manifest served as an index (`Content-Type` against its `mediaType`) is
    refused in one line, exit code 5: readers could take it for either.
    """
    pushed = push(registry, repository, image_factory.image())
    proxy.add(Forward(set_headers={"Content-Type": mediatypes.OCI_INDEX}), method="GET",
              path="/manifests/")

    code, _, err, errors = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{registry2.host}/{repository}",
        *insecure_flags(proxy.host, registry2.host),
    )

    assert 5 == code, err
    assert [str(pushed.digest) in line for line in errors] == [True]


def test_a_website_answering_200_to_everything_is_not_a_registry(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    proxy2: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A destination that answers every request `200 text/html` (a registry replaced by a
    web page) fails the run in one line; nothing is reported as copied.
    """
    pushed = push(registry, repository, image_factory.image())
    page = b"<html><body>Welcome to our new website!</body></html>"
    proxy2.add(Respond(status=200, body=page, headers={"Content-Type": "text/html"}))

    code, out, err, errors = _relocate(
        capsys, tmp_path, [pushed.reference], f"{proxy2.host}/{repository}",
        *insecure(registry), *insecure_flags(proxy2.host),
    )

    assert 0 != code
    assert 1 == len(errors), err
    assert "" == out
    assert "Traceback" not in err


# --- upload sessions and mounts ------------------------------------------------------


def test_a_declined_mount_falls_back_to_an_upload_in_its_session(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    proxy: FaultProxy,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A mount answered 202 (an upload session, not a mount) is followed by an upload in
    that very session: one POST and one PUT per blob, and the image lands whole.
    """
    pushed = push(registry, repository_factory("src"), image_factory.image())
    destination = repository_factory("dst")
    proxy.add(Forward(drop_query=("mount", "from")), method="POST", query="mount=")

    code, _, err, _ = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{proxy.host}/{destination}",
        *insecure_flags(proxy.host),
    )

    assert 0 == code, err
    posts = proxy.requests(method="POST", path="/blobs/uploads/")
    puts = proxy.requests(method="PUT", path="/blobs/uploads/")
    blobs = len(pushed.all_blobs())
    assert ([202] * blobs, [201] * blobs) == ([p.status for p in posts], [p.status for p in puts])
    verify_image_tree(registry, destination, pushed.digest, hash_blobs=True)


async def test_a_refused_single_put_upload_is_retried_in_chunks(
    registry: Registry,
    registry2: Registry,
    proxy2: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A registry that refuses a blob's single `PUT ?digest=` (405) gets it again as one
    PATCH and a closing PUT: the refusal is retried by its type, and the image lands.
    """
    pushed = push(registry, repository, image_factory.image(layer_sizes=(1024,)))
    refusal = proxy2.add(Respond(status=405), method="PUT", path="/blobs/uploads/",
                         query="digest=", times=1)

    await move([pushed.reference], f"{proxy2.host}/{repository}",
               insecure=[registry.host, proxy2.host])

    assert 1 == refusal.applied
    assert {202} == {p.status for p in proxy2.requests(method="PATCH", path="/blobs/uploads/")}
    verify_image_tree(registry2, repository, pushed.digest, hash_blobs=True)


def test_relative_upload_locations_are_resolved_against_the_request(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy2: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    An upload `Location` without scheme and host, with its own query (`_state`), is
    resolved against the POST's URL and keeps that query beside `digest`.
    """
    pushed = push(registry, repository, image_factory.image())
    proxy2.add(Forward(location="relative"), method="POST", path="/blobs/uploads/")

    code, _, err, _ = _relocate(
        capsys, tmp_path, [pushed.reference], f"{proxy2.host}/{repository}",
        *insecure(registry), *insecure_flags(proxy2.host),
    )

    assert 0 == code, err
    puts = proxy2.requests(method="PUT", path="/blobs/uploads/")
    assert [(201, True, True)] * len(pushed.all_blobs()) == [
        (p.status, "_state=" in p.query, "digest=" in p.query) for p in puts
    ]
    verify_image_tree(registry2, repository, pushed.digest, hash_blobs=True)


@pytest.mark.parametrize("shape", list(NOT_FOUND_SHAPES))
def test_not_found_in_any_shape_means_absent(
    shape: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    proxy: FaultProxy,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Mounts refused with a 404 of any body (empty, HTML, Harbor's, an UNKNOWN code) and
    manifest or blob HEADs answered 403 (as Artifactory does for what does not exist)
    mean "not there": every blob is uploaded and the image lands.
    """
    pushed = push(registry, repository_factory("src"), image_factory.image())
    destination = repository_factory("dst")
    proxy.add(Respond(status=404, body=NOT_FOUND_SHAPES[shape]), method="POST", query="mount=")
    proxy.add(Respond(status=403), method="HEAD", path=f"{destination}/(manifests|blobs)/sha256:")

    code, _, err, _ = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{proxy.host}/{destination}",
        *insecure_flags(proxy.host),
    )

    assert 0 == code, err
    assert len(pushed.all_blobs()) == len(
        [p for p in proxy.requests(method="PUT", path="/blobs/uploads/") if p.status == 201]
    )
    verify_image_tree(registry, destination, pushed.digest, hash_blobs=True)


@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param(Respond(status=400, body=b'{"errors":[{"code":"UNSUPPORTED"}]}'), id="400"),
        pytest.param(Respond(status=405), id="405"),
        pytest.param(Respond(status=503), id="503-every-time"),
    ],
)
def test_a_mount_that_fails_falls_back_to_an_upload(
    refusal: Respond,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    registry: Registry,
    proxy: FaultProxy,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A mount answered with an error (Docker Hub answers 400 to some; others do not
    implement it, or keep failing) costs only the mount: each blob is then uploaded and
    the image lands.
    """
    fast_cli(monkeypatch)
    pushed = push(registry, repository_factory("src"), image_factory.image())
    destination = repository_factory("dst")
    proxy.add(refusal, method="POST", query="mount=")

    code, _, err, _ = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{proxy.host}/{destination}",
        *insecure_flags(proxy.host),
    )

    assert 0 == code, err
    assert len(pushed.all_blobs()) == len(
        [p for p in proxy.requests(method="PUT", path="/blobs/uploads/") if p.status == 201]
    )
    verify_image_tree(registry, destination, pushed.digest, hash_blobs=True)


@pytest.mark.parametrize("shape", list(NOT_FOUND_SHAPES))
def test_a_missing_tag_is_one_not_found_line_whatever_the_404_body(
    shape: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    proxy: FaultProxy,
    repository: str,
) -> None:
    """Resolving a tag the registry answers 404 for, in any shape, is one "not found" line."""
    proxy.add(Respond(status=200), method="HEAD", path="/manifests/v9")
    proxy.add(Respond(status=404, body=NOT_FOUND_SHAPES[shape]), method="GET",
              path="/manifests/v9")
    source = images_file(tmp_path / "images.yml", [f"{proxy.host}/{repository}:v9"])

    result = relocator(capsys, "resolve", "-f", str(source), *insecure_flags(proxy.host))

    assert 8 == result.code, result.err
    assert [f"relocator: error: image {proxy.host}/{repository}:v9 not found"] == [
        line.split(" (hint:")[0] for line in result.error_lines
    ]


# --- order and encodings -------------------------------------------------------------


def test_push_order_is_blobs_manifest_children_index_then_tag(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    proxy2: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    In the destination's request log every manifest PUT starts after the uploads of its
    blobs, its children and its subject have finished, and each top-level image is
    pushed by its tag after all of them.
    """
    base = image_factory.image()
    shapes = [
        push(registry, repository, image_factory.nested_index()),
        push(registry, repository, image_factory.artifact(subject=base)),
    ]

    code, _, err, _ = _relocate(
        capsys, tmp_path, [s.reference for s in shapes], f"{proxy2.host}/{repository}",
        *insecure(registry), *insecure_flags(proxy2.host),
    )

    assert 0 == code, err
    landed = {
        parse_qs(r.query)["digest"][0]: r.finished
        for r in proxy2.requests(method="PUT", path="/blobs/uploads/")
    }
    manifest_puts = proxy2.requests(method="PUT", path="/manifests/")
    pushes = {r.path.rsplit("/", 1)[1]: r for r in manifest_puts}
    for top in shapes:
        for node in top.image.walk():
            name = image_tag(node.digest) if node is top.image else str(node.digest)
            before = [landed[str(b.digest)] for b in node.blobs]
            before += [pushes[str(c.digest)].finished for c in node.children]
            if node.subject is not None:
                before.append(pushes[str(node.subject.digest)].finished)
            assert all(t < pushes[name].started for t in before), name
    assert {image_tag(s.digest) for s in shapes} | {
        str(d) for s in shapes for d in s.manifest_digests() if d != s.digest
    } == set(pushes)


def _gzip_image(seed: str) -> Image:
    """An image whose one layer is real gzip data (what CDNs like to label)."""
    data = gzip.compress(random_layer(seed, 256 * 1024).read())
    layer = Blob.from_bytes(data, mediatypes.OCI_LAYER_GZIP)
    return image(seed, layer_sizes=(), base_layers=(layer,))


@pytest.mark.parametrize(
    "serve",
    [
        pytest.param(Forward(set_headers={"Content-Encoding": "gzip"}), id="gzip"),
        pytest.param(Forward(set_headers={"Content-Encoding": "x-gzip"}), id="x-gzip"),
        pytest.param(Redirect(headers={"Content-Encoding": "gzip"}), id="cdn-gzip"),
    ],
)
def test_a_gzip_layer_labelled_content_encoding_gzip_keeps_its_digest(
    serve: Forward | Redirect,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    push: Pusher,
    request: pytest.FixtureRequest,
) -> None:
    """
    A gzip layer served with `Content-Encoding: gzip` (by the registry or by the CDN it
    redirects to) is copied as the bytes sent, never decompressed: its digest holds.
    """
    pushed: PushedImage = push(registry, repository, _gzip_image(request.node.nodeid))
    layer = pushed.image.layers[0]
    proxy.add(serve, method="GET", path=f"/blobs/{layer.digest}")

    code, _, err, _ = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{registry2.host}/{repository}",
        *insecure_flags(proxy.host, registry2.host),
    )

    assert 0 == code, err
    assert 1 == len(blob_requests(proxy, layer.digest))
    verify_image_tree(registry2, repository, pushed.digest, hash_blobs=True)


# --- pull allowances (Docker Hub's ratelimit headers) ----------------------------------

_WINDOW = "w=21600"


def _allowance(remaining: int) -> dict[str, str]:
    return {"ratelimit-limit": f"100;{_WINDOW}", "ratelimit-remaining": f"{remaining};{_WINDOW}"}


def test_a_low_pull_allowance_slows_the_host_warns_once_and_is_reported(
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
    A registry stating 5 of 100 pulls left (below 10 %) gets one request at a time for
    the rest of the run, one warning, and its allowance in the summary and the report;
    the copy still lands.
    """
    fast_cli(monkeypatch)
    pushed = push(registry, repository, image_factory.index())
    proxy.add(Forward(set_headers=_allowance(5)), method="GET", path="/manifests/")
    report = tmp_path / "report.json"

    code, _, err, _ = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{registry2.host}/{repository}",
        "--report", str(report), *insecure_flags(proxy.host, registry2.host),
    )

    assert 0 == code, err
    warnings = [line for line in err.splitlines() if "pulls left" in line and "warning" in line]
    assert [(f"relocate | warning: registry {proxy.host}: only 5 of 100 pulls left (window "
             "6 h); one request at a time from now on")] == warnings
    assert any(line.startswith(f"relocate | registry {proxy.host}: ")
               and line.endswith("concurrency down to 1 of 8, 5 of 100 pulls left (window 6 h)")
               for line in err.splitlines()), err
    [entry] = [r for r in json.loads(report.read_text())["registries"] if r["host"] == proxy.host]
    assert {"limit": 100, "remaining": 5, "window_seconds": 21600} == entry["pulls"]
    assert 1 == entry["lowest_concurrency"]
    verify_image_tree(registry2, repository, pushed.digest, hash_blobs=True)


def test_no_pull_left_stops_with_the_window_instead_of_sending_more_pulls(
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
    The index's GET says 0 pulls are left: no further manifest GET reaches the registry,
    and the run stops with one line naming the host and the window (exit 8).
    """
    fast_cli(monkeypatch)
    pushed = push(registry, repository, image_factory.index())
    proxy.add(Forward(set_headers=_allowance(0)), method="GET", path="/manifests/")

    code, _, err, errors = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{registry2.host}/{repository}",
        *insecure_flags(proxy.host, registry2.host),
    )

    assert 8 == code, err
    assert 1 == len(proxy.requests(method="GET", path="/manifests/"))
    [line] = errors
    assert f"{proxy.host} pull limit reached (0 of 100 pulls left in its 6 h window)" in line


def test_a_429_with_no_pull_left_is_not_retried(
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
    """A 429 stating 0 pulls left would only be answered 429 again: one request, exit 8."""
    fast_cli(monkeypatch)
    pushed = push(registry, repository, image_factory.image())
    proxy.add(Respond(status=429, headers=_allowance(0)), method="GET", path="/manifests/")

    code, _, err, errors = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{registry2.host}/{repository}",
        *insecure_flags(proxy.host, registry2.host),
    )

    assert 8 == code, err
    assert 1 == len(proxy.requests(method="GET", path="/manifests/"))
    [line] = errors
    assert "pull limit reached" in line
