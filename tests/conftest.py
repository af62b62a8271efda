"""
Fixtures shared by every test: real registries, images to push, isolated credentials.

Registries are session-scoped (each starts once, on first use) and shared, so tests
keep apart by pushing to `repository` names unique to them. A test that needs an empty
registry uses `fresh_registry` (tests/integration/conftest.py) or calls `wipe()` on one
it owns. Without the `docker-registry` binary the registry fixtures fail rather than
skip: a skipped real-registry test proves nothing.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import (
    DockerConfigDir,
    ImageFactory,
    Pusher,
    Registry,
    RegistryNotFound,
    TokenServer,
    credential_variables,
    find_registry_binary,
    running_registry,
)

# Users of the `basic_auth_registry`; the first one is its default.
_BASIC_AUTH_USERS = {"alice": "alice-secret", "bob": "bob-secret"}
# Repository name components stay short enough to read in logs (the limit is 255).
_SLUG_LENGTH = 40


@pytest.fixture(scope="session")
def registry_binary() -> str:
    """The distribution registry binary; fails the test when it is not installed."""
    try:
        return find_registry_binary()
    except RegistryNotFound as exc:
        problem = str(exc)
    # Outside the except block, so the report is the one line, not a chained traceback.
    pytest.fail(problem, pytrace=False)


def _serve(
    factory: pytest.TempPathFactory, name: str, binary: str, **options: object
) -> Iterator[Registry]:
    with running_registry(factory.mktemp(name), binary=binary, **options) as registry:
        yield registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, registry_binary: str) -> Iterator[Registry]:
    """A plain-http registry without auth, shared by the session."""
    yield from _serve(tmp_path_factory, "registry", registry_binary)


@pytest.fixture(scope="session")
def registry2(tmp_path_factory: pytest.TempPathFactory, registry_binary: str) -> Iterator[Registry]:
    """A second plain-http registry, for copies between two hosts."""
    yield from _serve(tmp_path_factory, "registry2", registry_binary)


@pytest.fixture(scope="session")
def tls_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_binary: str
) -> Iterator[Registry]:
    """An https registry without auth; `tls_registry.ca_path` is its CA's PEM file."""
    yield from _serve(tmp_path_factory, "tls-registry", registry_binary, tls=True)


@pytest.fixture(scope="session")
def basic_auth_users() -> dict[str, str]:
    """Users and passwords `basic_auth_registry` accepts (alice first, then bob)."""
    return dict(_BASIC_AUTH_USERS)


@pytest.fixture(scope="session")
def basic_auth_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_binary: str, basic_auth_users: dict[str, str]
) -> Iterator[Registry]:
    """
    A plain-http registry with htpasswd auth (`basic_auth_users`); its `username` and
    `password` are alice's. Distribution 2.8.2 does not insist on TLS for htpasswd.
    """
    yield from _serve(
        tmp_path_factory, "basic-registry", registry_binary, htpasswd=basic_auth_users
    )


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    """
    The token server behind `token_registry`, with `DEFAULT_USERS` (pusher, puller) and
    no anonymous pull. Call `token_server.clear()` before asserting on `requests`.
    """
    with TokenServer(tmp_path_factory.mktemp("token-server")) as server:
        yield server


@pytest.fixture(scope="session")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_binary: str, token_server: TokenServer
) -> Iterator[Registry]:
    """A plain-http registry requiring bearer tokens from `token_server` (user: pusher)."""
    yield from _serve(
        tmp_path_factory, "token-registry", registry_binary, token_server=token_server
    )


@pytest.fixture
def repository_factory(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """
    Makes repository names unique to this test (and this run): call it with a suffix.

    `repository_factory("src")` -> `test/<test-name>-<random>/src`.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    slug = slug[:_SLUG_LENGTH].strip("-") or "test"
    # Random per test run, so a re-run in one session does not find the last run's blobs.
    base = f"test/{slug}-{secrets.token_hex(3)}"

    def make(suffix: str = "") -> str:
        return f"{base}/{suffix}" if suffix else base

    return make


@pytest.fixture
def repository(repository_factory: Callable[[str], str]) -> str:
    """A repository name no other test uses."""
    return repository_factory("")


@pytest.fixture
def image_factory(request: pytest.FixtureRequest) -> ImageFactory:
    """Builds images with seeds derived from the test's id (see `ImageFactory`)."""
    return ImageFactory(request.node.nodeid)


@pytest.fixture
def push() -> Iterator[Pusher]:
    """`push(registry, repository, image, tag=None) -> PushedImage`, one client per registry."""
    pusher = Pusher()
    yield pusher
    pusher.close()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DockerConfigDir:
    """
    An empty `HOME` and `DOCKER_CONFIG` (`HOME/.docker`) for this test, with every
    credential variable (`RELOCATOR_REGISTRY_*`, `KBLD_REGISTRY_*`, ...) removed.
    """
    for name in credential_variables(os.environ):
        monkeypatch.delenv(name)
    home = tmp_path / "home"
    directory = home / ".docker"
    directory.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / "run"))
    return DockerConfigDir(home=home, directory=directory)


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Tests run in GitHub Actions too: no CLI run of a test appends to the job's real
    step summary (tests of the summary set `GITHUB_STEP_SUMMARY` themselves).
    """
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
