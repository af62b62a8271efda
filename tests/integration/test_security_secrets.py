"""
No secret ever reaches relocator's output: passwords, Basic credentials, bearer tokens
and presigned CDN URLs stay out of stdout, stderr, `--debug` logs, error messages and
tracebacks, on success and on every failure path we can force.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.faults_support import (
    Secured,
    cli_env,
    images_file,
    insecure_flags,
    run_cli,
    secured_proxy,
    through,
)
from tests.support import DockerConfigDir, ImageFactory, Pusher, Registry
from tests.support.proxy import PRESIGNED_QUERY, Redirect

WRONG_PASSWORD = "wrong-PASSWORD-s3cr3t"


@pytest.fixture(params=["basic", "token"])
def secured(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    docker_config: DockerConfigDir,
) -> Iterator[Secured]:
    """The htpasswd or the token registry behind a fault proxy (see `secured_proxy`)."""
    with secured_proxy(request, monkeypatch, request.param) as value:
        yield value


def _secrets(secured: Secured) -> set[str]:
    """Everything that must never be shown: passwords, credentials seen, the signature."""
    found = {
        secured.password,
        WRONG_PASSWORD,
        base64.b64encode(f"{secured.username}:{secured.password}".encode()).decode(),
        "AKIDPROXYSECRET",
        PRESIGNED_QUERY.rsplit("=", 1)[1],
    }
    for request in secured.proxy.requests():
        for value in request.header_values("Authorization"):
            found.add(value)
            found.add(value.split(" ", 1)[-1])
    return found


def test_no_secret_reaches_the_output_even_with_debug(
    tmp_path: Path,
    secured: Secured,
    registry2: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    With `--debug`, a relocation whose blobs are redirected to presigned CDN URLs, one
    where the CDN then demands credentials, and one with a wrong password print debug
    logs and tracebacks, but never a password, a Basic credential, a bearer token or
    the presigned query's secrets.
    """
    pushed = push(secured.registry, repository, image_factory.image())
    proxy = secured.proxy
    images = str(images_file(tmp_path / "images.yml", [through(proxy, pushed)]))
    flags = ["--debug", *insecure_flags(proxy.host, registry2.host)]
    proxy.add(Redirect(hops=2), method="GET", path="/blobs/", times=len(pushed.all_blobs()))
    proxy.add(Redirect(hops=2, challenge=True), method="GET", path="/blobs/")

    redirected = run_cli(["relocate", "-f", images, "-r", f"{registry2.host}/{repository}/a",
                          *flags])
    challenged = run_cli(["relocate", "-f", images, "-r", f"{registry2.host}/{repository}/b",
                          *flags])
    refused = run_cli(
        ["relocate", "-f", images, "-r", f"{registry2.host}/{repository}/c", *flags],
        env=cli_env(RELOCATOR_REGISTRY_PASSWORD_0=WRONG_PASSWORD),
    )

    assert (0, 4, 4) == (redirected[0], challenged[0], refused[0]), refused[2]
    assert "X-Amz-Signature=REDACTED" in redirected[2]
    assert "Traceback" in challenged[2]
    assert "Traceback" in refused[2]
    leaks = [
        (secret, run)
        for secret in _secrets(secured)
        for run, (_, out, err) in zip(
            ("redirected", "challenged", "refused"), (redirected, challenged, refused),
            strict=True,
        )
        if secret in out + err
    ]
    assert [] == leaks
