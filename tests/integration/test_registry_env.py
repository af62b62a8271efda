"""
CI settings without flags: the registry flags' environment variables, podman's and
skopeo's `auth.json`, and a warning for credentials set up by halves, against real
registries.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.integration.cli import relocator
from tests.support import DockerConfigDir, ImageFactory, PushedImage, Pusher, Registry


def _manifest(tmp_path: Path, image: PushedImage) -> Path:
    path = tmp_path / "manifest.yml"
    path.write_text(f"image: {image.host}/{image.repository}:latest\n")
    return path


def _resolved(image: PushedImage) -> str:
    """What resolve prints for `image: HOST/REPO` by tag, kbld's annotation left out."""
    return f"image: {image.host}/{image.repository}@{image.digest}\n"


def _printed(out: str) -> str:
    """The printed document without kbld's `kbld.k14s.io/images` annotation."""
    return out.split("metadata:\n", 1)[0]


def test_insecure_hosts_from_the_environment(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker_config: DockerConfigDir,
    registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    $RELOCATOR_REGISTRY_INSECURE (comma-separated) does what --registry-insecure does.
    (Without it a registry on 127.0.0.1 is reached too, after https, as kbld reaches
    local registries; `tests/unit/cli/test_registryenv.py` checks what the variable
    sets.)
    """
    image = push(registry, repository, image_factory.image(), tag="latest")
    manifest = _manifest(tmp_path, image)

    monkeypatch.setenv("RELOCATOR_REGISTRY_INSECURE", f"other.example:5000, {registry.host}")
    accepted = relocator(capsys, "resolve", "-f", str(manifest))

    assert 0 == accepted.code, accepted.err
    assert _resolved(image) == _printed(accepted.out)


def test_tls_settings_from_the_environment(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker_config: DockerConfigDir,
    tls_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    $RELOCATOR_REGISTRY_CA_CERT_PATH trusts a CA; $RELOCATOR_REGISTRY_VERIFY_CERTS=false
    skips verification, unless --registry-verify-certs says otherwise; a value that is
    not a boolean is bad input (exit 3).
    """
    assert tls_registry.ca_path is not None
    image = push(tls_registry, repository, image_factory.image(), tag="latest")
    manifest = _manifest(tmp_path, image)

    untrusted = relocator(capsys, "resolve", "-f", str(manifest))
    monkeypatch.setenv("RELOCATOR_REGISTRY_CA_CERT_PATH", str(tls_registry.ca_path))
    trusted = relocator(capsys, "resolve", "-f", str(manifest))
    monkeypatch.delenv("RELOCATOR_REGISTRY_CA_CERT_PATH")
    monkeypatch.setenv("RELOCATOR_REGISTRY_VERIFY_CERTS", "false")
    unverified = relocator(capsys, "resolve", "-f", str(manifest))
    flag_wins = relocator(capsys, "resolve", "-f", str(manifest), "--registry-verify-certs")
    monkeypatch.setenv("RELOCATOR_REGISTRY_VERIFY_CERTS", "maybe")
    bad = relocator(capsys, "resolve", "-f", str(manifest))

    assert [7, 0, 0, 7, 3] == [r.code for r in (untrusted, trusted, unverified, flag_wins, bad)]
    assert _resolved(image) == _printed(trusted.out) == _printed(unverified.out)
    assert [
        "relocator: error: RELOCATOR_REGISTRY_VERIFY_CERTS: expected true or false, got 'maybe'"
    ] == bad.error_lines


@pytest.mark.parametrize("where", ["runtime", "config", "explicit"])
def test_podman_login_is_used(
    where: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker_config: DockerConfigDir,
    registry: Registry,
    basic_auth_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    A login that `podman login` wrote ($XDG_RUNTIME_DIR), one in ~/.config, or the file
    $REGISTRY_AUTH_FILE names authenticates to an htpasswd registry.
    """
    image = push(basic_auth_registry, repository, image_factory.image(), tag="latest")
    manifest = _manifest(tmp_path, image)
    paths = {
        "runtime": docker_config.home / "run" / "containers" / "auth.json",
        "config": docker_config.home / ".config" / "containers" / "auth.json",
        "explicit": tmp_path / "ci" / "auth.json",
    }
    path = paths[where]
    path.parent.mkdir(parents=True)
    secret = base64.b64encode(
        f"{basic_auth_registry.username}:{basic_auth_registry.password}".encode()
    ).decode()
    path.write_text(json.dumps({"auths": {basic_auth_registry.host: {"auth": secret}}}))
    if where == "explicit":
        monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))
    flags = ["--registry-insecure", basic_auth_registry.host]

    result = relocator(capsys, "resolve", "-f", str(manifest), *flags)

    assert 0 == result.code, result.err
    assert _resolved(image) == _printed(result.out)


def test_a_user_name_without_a_password_is_warned_about(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker_config: DockerConfigDir,
    registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """The run goes on; stderr says which variable is missing."""
    image = push(registry, repository, image_factory.image(), tag="latest")
    manifest = _manifest(tmp_path, image)
    monkeypatch.setenv("RELOCATOR_REGISTRY_HOSTNAME_0", "elsewhere.example")
    monkeypatch.setenv("RELOCATOR_REGISTRY_USERNAME_0", "ci-bot")

    result = relocator(capsys, "resolve", "-f", str(manifest),
                       "--registry-insecure", registry.host)

    assert 0 == result.code, result.err
    assert (
        "RELOCATOR_REGISTRY_USERNAME_0 is set but RELOCATOR_REGISTRY_PASSWORD_0 is not: "
        "the user name is sent with an empty password"
    ) in result.err
