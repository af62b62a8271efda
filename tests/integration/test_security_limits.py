"""
Untrusted input is checked before it is used and read with caps: digests are validated
before they become URLs or file names, manifests over 4 MiB and huge error bodies are
refused without being read whole, and a manifest just under the cap still copies.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relocator.oci import MAX_MANIFEST_BYTES, Digest, mediatypes
from relocator.transport.auth import MAX_TOKEN_BODY
from tests.integration.cli import Result, relocator
from tests.integration.faults_support import MiB, fast_cli, images_file, insecure_flags, through
from tests.support import DockerConfigDir, ImageFactory, Pusher, Registry, verify_image_tree
from tests.support.proxy import FaultProxy, Forward, Respond

# Bodies far over every cap, yet small enough that a run without the caps fails fast
# instead of reading for minutes.
HUGE = 64 * MiB



def _relocate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, images: list[str], destination: str,
    *flags: str,
) -> Result:
    return relocator(
        capsys, "relocate", "-f", str(images_file(tmp_path / "images.yml", images)),
        "-r", destination, *flags,
    )


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:../../../../etc/passwd",
        f"sha256:{'A' * 64}",
        f"sha256:{'a' * 63}",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        f"sha256:{'a' * 64}/x",
    ],
)
def test_malformed_digests_in_inputs_are_refused_before_any_request(
    digest: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry2: Registry,
    proxy: FaultProxy,
) -> None:
    """A digest reference whose digest is malformed is one line, exit code 3, no request."""
    result = _relocate(
        capsys, tmp_path, [f"{proxy.host}/team/app@{digest}"], f"{registry2.host}/x",
        *insecure_flags(proxy.host, registry2.host),
    )

    assert 3 == result.code, result.err
    assert 1 == len(result.error_lines)
    assert [] == proxy.requests()


def _manifest_with_layer_digest(layer_digest: str) -> bytes:
    """An OCI manifest (valid but for one layer's digest)."""
    config = b"{}"
    doc = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": str(Digest.of(config)),
                   "size": len(config)},
        "layers": [{"mediaType": mediatypes.OCI_LAYER_GZIP, "digest": layer_digest,
                    "size": 10}],
    }
    return json.dumps(doc).encode()


@pytest.mark.parametrize("command", ["relocate", "pkg"])
@pytest.mark.parametrize(
    "layer_digest", ["sha256:../../../../etc/passwd", f"sha256:{'A' * 64}"]
)
def test_malformed_digests_in_manifests_never_become_urls_or_paths(
    command: str,
    layer_digest: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry2: Registry,
    proxy: FaultProxy,
) -> None:
    """
    A manifest (whose own bytes match its digest) naming a layer by a malformed digest
    is refused in one line before any request for that layer and before anything is
    written: the output's directory stays empty.
    """
    raw = _manifest_with_layer_digest(layer_digest)
    digest = Digest.of(raw)
    proxy.add(Respond(body=raw, headers={"Content-Type": mediatypes.OCI_MANIFEST}),
              method="GET", path=f"/manifests/{digest}")
    images = [f"{proxy.host}/team/app@{digest}"]
    work = tmp_path / "work"
    work.mkdir()
    where = (
        ["-r", f"{registry2.host}/x"] if command == "relocate"
        else ["-o", str(work / "out.tar")]
    )

    result = relocator(
        capsys, command, "-f", str(images_file(tmp_path / "images.yml", images)), *where,
        *insecure_flags(proxy.host, registry2.host),
    )

    assert result.code in (3, 5), result.err
    assert 1 == len(result.error_lines)
    assert [f"/v2/team/app/manifests/{digest}"] == [r.path for r in proxy.requests()]
    assert [] == list(work.iterdir())


def _oversized(size: int) -> bytes:
    """A JSON document of exactly `size` bytes."""
    return b'{"pad":"' + b"x" * (size - 10) + b'"}'


@pytest.mark.parametrize(
    "serve",
    [
        pytest.param(Forward(replace_body=_oversized(MAX_MANIFEST_BYTES + 1)), id="over-cap"),
        pytest.param(
            Forward(replace_body=_oversized(MAX_MANIFEST_BYTES + 1), chunked=True),
            id="over-cap-chunked",
        ),
        pytest.param(Forward(replace_body=_oversized(5 * MiB), chunked=True), id="5-MiB-chunked"),
        pytest.param(
            Respond(body=lambda: (b"\0" * MiB for _ in range(HUGE // MiB)), size=HUGE),
            id="layer-as-manifest",
        ),
    ],
)
def test_manifests_over_the_cap_are_refused_without_being_read_whole(
    serve: Forward | Respond,
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
    A manifest body over 4 MiB (announced, chunked, or a layer served at a manifest
    URL) fails the run in one line naming the cap, without reading it whole.
    """
    pushed = push(registry, repository, image_factory.image())
    proxy.add(serve, method="GET", path=f"/manifests/{pushed.digest}")

    result = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{registry2.host}/{repository}",
        *insecure_flags(proxy.host, registry2.host),
    )

    assert 1 == result.code, result.err
    assert [str(MAX_MANIFEST_BYTES) in line for line in result.error_lines] == [True]
    [get] = proxy.requests(method="GET", path="/manifests/")
    assert get.body_bytes < HUGE


def test_a_manifest_just_under_the_cap_is_copied(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A 3.9 MB manifest (the conformance suite's large manifest: 390 annotations of 10 000
    bytes) is copied with its digest.
    """
    big = image_factory.image(annotations={f"org.test.{i}": "x" * 10_000 for i in range(390)})
    assert 3_900_000 < big.size < MAX_MANIFEST_BYTES
    pushed = push(registry, repository, big)

    result = _relocate(
        capsys, tmp_path, [pushed.reference], f"{registry2.host}/{repository}",
        *insecure_flags(registry.host, registry2.host),
    )

    assert 0 == result.code, result.err
    verify_image_tree(registry2, repository, pushed.digest, expected=pushed.image)


@pytest.mark.parametrize(("status", "exit_code"), [(500, 8), (401, 4)])
def test_huge_error_bodies_are_never_read_whole(
    status: int,
    exit_code: int,
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
    A 500 or 401 with a 64 MiB body fails in one line naming the status, after the
    usual retries of a 500; not one of those bodies is read whole.
    """
    fast_cli(monkeypatch)
    pushed = push(registry, repository, image_factory.image())
    body = Respond(status=status, body=lambda: (b"e" * MiB for _ in range(HUGE // MiB)),
                   size=HUGE)
    proxy.add(body, method="GET", path=f"/manifests/{pushed.digest}")

    result = _relocate(
        capsys, tmp_path, [through(proxy, pushed)], f"{registry2.host}/{repository}",
        *insecure_flags(proxy.host, registry2.host),
    )

    assert exit_code == result.code, result.err
    assert [f"HTTP {status}" in line or "requires authentication" in line
            for line in result.error_lines] == [True]
    gets = proxy.requests(method="GET", path="/manifests/")
    assert gets
    assert all(g.body_bytes < HUGE for g in gets), [g.body_bytes for g in gets]


def test_a_huge_token_response_is_refused_without_being_read_whole(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    docker_config: DockerConfigDir,
    token_registry: Registry,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A token endpoint answering 64 MiB is refused in one line naming the 1 MiB cap; the
    body is neither read whole nor echoed.
    """
    pushed = push(token_registry, repository, image_factory.image())
    with FaultProxy(token_registry.url) as proxy:
        huge = Respond(body=lambda: (b"t" * MiB for _ in range(HUGE // MiB)), size=HUGE)
        proxy.add(huge, path="^/token")
        realm = f'Bearer realm="{proxy.url}/token",service="relocator-test-registry"'
        proxy.add(Forward(set_headers={"WWW-Authenticate": realm}), path="^/v2/")
        monkeypatch.setenv("RELOCATOR_REGISTRY_HOSTNAME_0", proxy.host)
        monkeypatch.setenv("RELOCATOR_REGISTRY_USERNAME_0", "pusher")
        monkeypatch.setenv("RELOCATOR_REGISTRY_PASSWORD_0", "pusher-secret")

        result = _relocate(
            capsys, tmp_path, [through(proxy, pushed)], f"{registry2.host}/{repository}",
            *insecure_flags(proxy.host, registry2.host),
        )
        tokens = proxy.requests(path="^/token")

    assert 1 == result.code, result.err
    assert [str(MAX_TOKEN_BODY) in line for line in result.error_lines] == [True]
    assert "ttttt" not in result.err
    assert tokens
    assert all(t.body_bytes < HUGE for t in tokens), [t.body_bytes for t in tokens]
