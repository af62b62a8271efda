"""
Credentials from the containers `auth.json` files of podman, skopeo and buildah: read in
their lookup order, after Docker's config.json; and warnings for credentials set up by
halves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from relocator.errors import ConfigError
from relocator.transport import Keychain
from relocator.transport.credentials import containers_auth_files
from tests.unit.transport.test_credentials import auth, write_config


def write_auth(path: Path, auths: dict[str, dict[str, str]]) -> Path:
    """A containers auth.json as `podman login` writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": auths}), encoding="utf-8")
    return path


def login(user: str) -> dict[str, str]:
    """One `auths` entry for `user`."""
    return {"auth": auth(user, "pw")}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty home directory."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HOME": "/h"}, ["/h/.config/containers/auth.json"]),
        (
            {"HOME": "/h", "XDG_RUNTIME_DIR": "/run/user/1000"},
            ["/run/user/1000/containers/auth.json", "/h/.config/containers/auth.json"],
        ),
        (
            {"HOME": "/h", "XDG_RUNTIME_DIR": "/r", "XDG_CONFIG_HOME": "/cfg"},
            ["/r/containers/auth.json", "/cfg/containers/auth.json"],
        ),
        # An explicit file is the only one read, as with podman's and skopeo's --authfile.
        ({"HOME": "/h", "XDG_RUNTIME_DIR": "/r", "REGISTRY_AUTH_FILE": "/x/auth.json"},
         ["/x/auth.json"]),
        ({}, []),
    ],
)
def test_containers_files_are_looked_up_in_podman_order(
    env: dict[str, str], expected: list[str]
) -> None:
    """$REGISTRY_AUTH_FILE alone; else $XDG_RUNTIME_DIR's, then $XDG_CONFIG_HOME's (~/.config)."""
    assert [Path(p) for p in expected] == containers_auth_files(env)


async def test_each_file_is_read_in_order_and_docker_config_first(
    tmp_path: Path, home: Path
) -> None:
    """
    For each host the first file with a login for it wins: Docker's config.json, then
    the runtime auth.json, then ~/.config's.
    """
    runtime = tmp_path / "run"
    write_config(home / ".docker", {"auths": {"a.example": login("docker")}})
    write_auth(runtime / "containers" / "auth.json",
               {"a.example": login("runtime-a"), "b.example": login("runtime-b")})
    write_auth(home / ".config" / "containers" / "auth.json",
               {"b.example": login("config-b"), "c.example": login("config-c")})
    keychain = Keychain(env={"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)})

    users = [(await keychain.get(h)).username for h in ("a.example", "b.example", "c.example")]

    assert ["docker", "runtime-b", "config-c"] == users
    assert None is (await keychain.get("d.example")).username


async def test_registry_auth_file_replaces_the_default_containers_files(
    tmp_path: Path, home: Path
) -> None:
    """With $REGISTRY_AUTH_FILE, ~/.config's auth.json is not read (Docker's still is)."""
    write_auth(home / ".config" / "containers" / "auth.json", {"a.example": login("config")})
    explicit = write_auth(tmp_path / "ci-auth.json", {"b.example": login("explicit")})
    keychain = Keychain(env={"HOME": str(home), "REGISTRY_AUTH_FILE": str(explicit)})

    a, b = await keychain.get("a.example"), await keychain.get("b.example")

    assert (None, "explicit") == (a.username, b.username)
    assert f"{explicit} auths[b.example]" == b.source


async def test_namespace_keys_match_the_most_specific_path(home: Path) -> None:
    """`host/ns/repo` keys apply to that repository and below; the longest one wins."""
    write_auth(home / ".config" / "containers" / "auth.json", {
        "quay.example": login("host"),
        "quay.example/team": login("team"),
        "quay.example/team/app": login("app"),
        "docker.io/library": login("hub-library"),
    })
    keychain = Keychain(env={"HOME": str(home)})

    users = [
        (await keychain.get(host, repo)).username
        for host, repo in (
            ("quay.example", "team/app"),
            ("quay.example", "team/app/sub"),
            ("quay.example", "team/other"),
            ("quay.example", "teams/app"),
            ("index.docker.io", "library/nginx"),
            ("index.docker.io", "someone/nginx"),
        )
    ]

    assert ["app", "app", "team", "host", "hub-library", None] == users


async def test_a_malformed_containers_file_names_itself(home: Path) -> None:
    """A file that is not JSON is a config error naming it, raised only when read."""
    path = home / ".config" / "containers" / "auth.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json", encoding="utf-8")
    keychain = Keychain(env={"HOME": str(home)})

    with pytest.raises(ConfigError, match=re.escape(f"containers auth file {path} is not")):
        await keychain.get("a.example")


NO_PASSWORD = (
    "RELOCATOR_REGISTRY_USERNAME_0 is set but RELOCATOR_REGISTRY_PASSWORD_0 is not: "
    "the user name is sent with an empty password"
)
NO_USERNAME = (
    "RELOCATOR_REGISTRY_PASSWORD_0 is set but RELOCATOR_REGISTRY_USERNAME_0 is not: "
    "the password is never sent"
)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"USERNAME_0": "alice"}, [NO_PASSWORD]),
        ({"PASSWORD_0": "s3cret"}, [NO_USERNAME]),
        ({"USERNAME_0": "alice", "PASSWORD_0": ""}, [NO_PASSWORD]),
        ({"USERNAME_0": "alice", "PASSWORD_0": "pw"}, []),
        ({"REGISTRY_TOKEN_0": "bearer"}, []),
        ({"USERNAME_0": "alice", "IDENTITY_TOKEN_0": "refresh"}, []),
    ],
)
def test_half_configured_credentials_are_warned_about(
    fields: dict[str, str], expected: list[str]
) -> None:
    """A user name without a password, or the reverse, gives one warning for the caller."""
    env = {"RELOCATOR_REGISTRY_HOSTNAME_0": "reg.example"}
    env.update({f"RELOCATOR_REGISTRY_{name}": value for name, value in fields.items()})

    keychain = Keychain(env=env, docker_config_dir=Path("/nonexistent"))

    assert tuple(expected) == keychain.warnings


def test_registry_setting_variables_are_not_unknown_credentials() -> None:
    """The TLS and plain-http settings share the prefix; they are not credential typos."""
    env = {
        "RELOCATOR_REGISTRY_INSECURE": "localhost:5000",
        "RELOCATOR_REGISTRY_CA_CERT_PATH": "/etc/ca.pem",
        "RELOCATOR_REGISTRY_VERIFY_CERTS": "false",
    }

    keychain = Keychain(env=env, docker_config_dir=Path("/nonexistent"))

    assert () == keychain.warnings
