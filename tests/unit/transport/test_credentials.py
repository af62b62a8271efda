"""Where credentials come from: environment variables, docker config.json, credential helpers."""

from __future__ import annotations

import base64
import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from relocator.errors import AuthError, ConfigError
from relocator.transport import Credential, Keychain

HUB_SERVER = "https://index.docker.io/v1/"


def write_config(directory: Path, doc: Any) -> Path:
    """Write `directory/config.json` as docker would."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc, encoding="utf-8")
    return path


def auth(username: str, password: str) -> str:
    """The `auth` field of a config.json entry: base64 of `user:password`."""
    return base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass(frozen=True, slots=True)
class Helpers:
    """Installs fake `docker-credential-<name>` programs on PATH."""

    bin: Path
    log: Path

    def install(self, name: str, stdout: str, *, exit_code: int = 0) -> None:
        """
        A helper that logs its argument and stdin (one line per call) to `log`, prints
        `stdout` and exits with `exit_code`.
        """
        script = self.bin / f"docker-credential-{name}"
        script.write_text(
            "#!/bin/sh\n"
            'read -r server || true\n'
            f'printf "%s %s %s\\n" "{name}" "$1" "$server" >> "{self.log}"\n'
            "cat <<'EOF'\n"
            f"{stdout}\n"
            "EOF\n"
            f"exit {exit_code}\n",
            encoding="utf-8",
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)

    def calls(self) -> list[str]:
        """`<name> <verb> <server>` for every helper run so far."""
        if not self.log.exists():
            return []
        return self.log.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Helpers:
    """A directory of fake credential helpers put first on PATH."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}:/usr/bin:/bin")
    return Helpers(bin=directory, log=tmp_path / "helper-calls.log")


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A docker config directory, empty at first."""
    return tmp_path / "docker"


def user_env(
    prefix: str = "RELOCATOR_REGISTRY_", suffix: str = "", **fields: str
) -> dict[str, str]:
    """Credential variables as CI systems set them."""
    return {f"{prefix}{name.upper()}{suffix}": value for name, value in fields.items()}


async def test_environment_credential(config_dir: Path) -> None:
    """HOSTNAME/USERNAME/PASSWORD variables give the credential for that host."""
    env = user_env(hostname="reg.example", username="alice", password="s3cret")
    keychain = Keychain(env=env, docker_config_dir=config_dir)

    credential = await keychain.get("reg.example", "team/app")

    assert Credential(
        username="alice", password="s3cret", source="RELOCATOR_REGISTRY_*"
    ) == credential


@pytest.mark.parametrize("prefix", ["RELOCATOR_REGISTRY_", "KBLD_REGISTRY_", "IMGPKG_REGISTRY_"])
@pytest.mark.parametrize("suffix", ["", "_0", "_CI_2"])
async def test_every_prefix_and_suffix_is_read(prefix: str, suffix: str, config_dir: Path) -> None:
    """kbld's and imgpkg's variable names work too, with or without a suffix."""
    env = user_env(prefix, suffix, hostname="reg.example", username="alice", password="pw")
    keychain = Keychain(env=env, docker_config_dir=config_dir)

    credential = await keychain.get("reg.example")

    assert ("alice", "pw", f"{prefix}*{suffix}") == (
        credential.username, credential.password, credential.source
    )


async def test_tokens_from_the_environment(config_dir: Path) -> None:
    """IDENTITY_TOKEN and REGISTRY_TOKEN are read beside HOSTNAME."""
    env = {
        **user_env(suffix="_0", hostname="a.example", identity_token="refresh"),
        **user_env(suffix="_1", hostname="b.example", registry_token="bearer"),
    }
    keychain = Keychain(env=env, docker_config_dir=config_dir)

    a, b = await keychain.get("a.example"), await keychain.get("b.example")

    assert ("refresh", None, "bearer") == (a.identity_token, b.identity_token, b.registry_token)
    assert not a.anonymous
    assert not b.anonymous


@pytest.mark.parametrize(
    ("prefixes", "expected"),
    [
        (("RELOCATOR_REGISTRY_", "KBLD_REGISTRY_", "IMGPKG_REGISTRY_"), "RELOCATOR_REGISTRY_*"),
        (("IMGPKG_REGISTRY_", "KBLD_REGISTRY_"), "KBLD_REGISTRY_*"),
    ],
)
async def test_relocator_variables_win_over_kbld_over_imgpkg(
    prefixes: tuple[str, ...], expected: str, config_dir: Path
) -> None:
    """For the same host, RELOCATOR_ beats KBLD_, which beats IMGPKG_."""
    env: dict[str, str] = {}
    for prefix in prefixes:
        env.update(user_env(prefix, hostname="reg.example", username=prefix, password="pw"))
    keychain = Keychain(env=env, docker_config_dir=config_dir)

    credential = await keychain.get("reg.example")

    assert expected == credential.source


@pytest.mark.parametrize(
    ("repository", "expected"),
    [("team/app", "team"), ("team/sub/app", "team"), ("teamx/app", "host"), ("", "host")],
)
async def test_repository_specific_entry_wins(
    repository: str, expected: str, config_dir: Path
) -> None:
    """An entry naming `host/path` beats a host-wide one for repositories under that path."""
    env = {
        **user_env(suffix="_0", hostname="reg.example", username="host", password="pw"),
        **user_env(suffix="_1", hostname="reg.example/team", username="team", password="pw"),
    }
    keychain = Keychain(env=env, docker_config_dir=config_dir)

    credential = await keychain.get("reg.example", repository)

    assert expected == credential.username


@pytest.mark.parametrize(
    ("hostname", "host", "matches"),
    [
        ("*.gcr.io", "eu.gcr.io", True),
        ("*.gcr.io", "gcr.io", False),
        ("https://index.docker.io/v1/", "registry-1.docker.io", True),
        ("docker.io", "registry-1.docker.io", True),
        ("docker.io", "index.docker.io", True),
        ("http://reg.example:5000/v2/", "reg.example:5000", True),
        ("reg.example:5000", "reg.example", False),
        ("reg.example", "other.example", False),
    ],
)
async def test_hostname_matching(hostname: str, host: str, matches: bool, config_dir: Path) -> None:
    """
    HOSTNAME may be a glob or a URL; Docker Hub's spellings are one host, so a Hub entry
    covers registry-1.docker.io where its API lives.
    """
    env = user_env(hostname=hostname, username="alice", password="pw")
    keychain = Keychain(env=env, docker_config_dir=config_dir)

    credential = await keychain.get(host)

    assert matches == (credential.username == "alice")


@pytest.mark.parametrize(
    "name", ["RELOCATOR_REGISTRY_USER", "RELOCATOR_REGISTRY_HOSTNAMES", "RELOCATOR_REGISTRY_TOKEN"]
)
def test_unknown_relocator_variable_is_a_config_error(name: str, config_dir: Path) -> None:
    """A misspelt RELOCATOR_REGISTRY_ variable is reported before any network traffic."""
    with pytest.raises(ConfigError, match=name):
        Keychain(env={name: "x"}, docker_config_dir=config_dir)


async def test_unknown_kbld_and_imgpkg_variables_are_ignored(config_dir: Path) -> None:
    """Other tools' variables we do not know (Azure config, ...) are theirs, not errors."""
    env = {"KBLD_REGISTRY_SOMETHING": "x", "IMGPKG_REGISTRY_AZURE_CR_CONFIG": "/az"}
    keychain = Keychain(env=env, docker_config_dir=config_dir)

    assert (await keychain.get("reg.example")).anonymous


@pytest.mark.parametrize("prefix", ["RELOCATOR_REGISTRY_", "KBLD_REGISTRY_"])
def test_entry_without_hostname_is_a_config_error(prefix: str, config_dir: Path) -> None:
    """USERNAME without HOSTNAME (same suffix) cannot be placed and is an error."""
    env = user_env(prefix, "_1", username="alice", password="pw")

    with pytest.raises(ConfigError, match=f"{prefix}HOSTNAME_1"):
        Keychain(env=env, docker_config_dir=config_dir)


async def test_environment_wins_over_docker_config(config_dir: Path) -> None:
    """A variable for a host beats a `docker login` for it."""
    write_config(config_dir, {"auths": {"reg.example": {"auth": auth("docker", "pw")}}})
    env = user_env(hostname="reg.example", username="env", password="pw")
    keychain = Keychain(env=env, docker_config_dir=config_dir)

    assert "env" == (await keychain.get("reg.example")).username


@pytest.mark.parametrize(
    ("entry", "fields"),
    [
        ({"auth": auth("alice", "pa:ss")}, {"username": "alice", "password": "pa:ss"}),
        ({"username": "bob", "password": "pw"}, {"username": "bob", "password": "pw"}),
        (
            {"auth": auth("bob", ""), "identitytoken": "refresh"},
            {"username": "bob", "password": "", "identity_token": "refresh"},
        ),
        ({"registrytoken": "bearer"}, {"registry_token": "bearer"}),
        ({}, {}),
    ],
)
@pytest.mark.parametrize(
    "key", ["reg.example:5000", "https://reg.example:5000", "http://reg.example:5000/v2/"]
)
async def test_docker_config_auths(
    key: str, entry: dict[str, str], fields: dict[str, str], config_dir: Path
) -> None:
    """`auths` entries are found by host whatever URL form their key has."""
    write_config(config_dir, {"auths": {key: entry}})
    keychain = Keychain(env={}, docker_config_dir=config_dir)

    credential = await keychain.get("reg.example:5000")

    assert Credential(**fields, source=f"config.json auths[{key}]") == credential


@pytest.mark.parametrize("host", ["index.docker.io", "docker.io", "registry-1.docker.io"])
async def test_docker_hub_login_covers_every_hub_host(host: str, config_dir: Path) -> None:
    """`docker login` stores Hub under https://index.docker.io/v1/; every Hub host finds it."""
    write_config(config_dir, {"auths": {HUB_SERVER: {"auth": auth("hubuser", "pw")}}})
    keychain = Keychain(env={}, docker_config_dir=config_dir)

    assert "hubuser" == (await keychain.get(host)).username


async def test_other_hosts_are_anonymous(config_dir: Path) -> None:
    """A login for one registry is never used for another."""
    write_config(config_dir, {"auths": {"reg.example": {"auth": auth("alice", "pw")}}})
    keychain = Keychain(env={}, docker_config_dir=config_dir)

    credential = await keychain.get("other.example")

    assert credential.anonymous
    assert "anonymous" == credential.source


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param({"auths": {"reg.example": {"auth": "%%%not-base64"}}}, id="bad-base64"),
        pytest.param(
            {"auths": {"reg.example": {"auth": base64.b64encode(b"no-colon").decode()}}},
            id="no-colon",
        ),
        pytest.param("{not json", id="not-json"),
    ],
)
async def test_malformed_docker_config_is_a_config_error(doc: Any, config_dir: Path) -> None:
    """A config.json we cannot read is an error, not silently anonymous."""
    write_config(config_dir, doc)
    keychain = Keychain(env={}, docker_config_dir=config_dir)

    with pytest.raises(ConfigError):
        await keychain.get("reg.example")


async def test_docker_config_location_follows_docker_config_then_home(tmp_path: Path) -> None:
    """Without an explicit directory, $DOCKER_CONFIG is read, else $HOME/.docker."""
    write_config(tmp_path / "dc", {"auths": {"a.example": {"auth": auth("from-dc", "pw")}}})
    write_config(
        tmp_path / "home" / ".docker", {"auths": {"a.example": {"auth": auth("from-home", "pw")}}}
    )
    home = str(tmp_path / "home")

    with_dc = Keychain(env={"DOCKER_CONFIG": str(tmp_path / "dc"), "HOME": home})
    home_only = Keychain(env={"HOME": home})

    assert ["from-dc", "from-home"] == [
        (await with_dc.get("a.example")).username,
        (await home_only.get("a.example")).username,
    ]


async def test_cred_helper_answers_for_its_host(helpers: Helpers, config_dir: Path) -> None:
    """A credHelpers entry runs `docker-credential-<name> get` with the host on stdin."""
    helpers.install("fake", '{"ServerURL": "reg.example", "Username": "alice", "Secret": "pw"}')
    write_config(config_dir, {"credHelpers": {"reg.example": "fake"}})
    keychain = Keychain(env={}, docker_config_dir=config_dir)

    credential = await keychain.get("reg.example")

    assert Credential(
        username="alice", password="pw", source="docker-credential-fake"
    ) == credential
    assert ["fake get reg.example"] == helpers.calls()


@pytest.mark.parametrize("host", ["index.docker.io", "registry-1.docker.io"])
async def test_cred_store_is_asked_for_docker_hub_by_its_server_url(
    host: str, helpers: Helpers, config_dir: Path
) -> None:
    """Docker Hub is looked up as https://index.docker.io/v1/, the key docker login used."""
    helpers.install("store", '{"Username": "hubuser", "Secret": "pw"}')
    write_config(config_dir, {"credsStore": "store"})
    keychain = Keychain(env={}, docker_config_dir=config_dir)

    credential = await keychain.get(host)

    assert "hubuser" == credential.username
    assert [f"store get {HUB_SERVER}"] == helpers.calls()


async def test_cred_helpers_win_over_the_cred_store(helpers: Helpers, config_dir: Path) -> None:
    """A per-host helper is used for its host; the store for every other host."""
    helpers.install("one", '{"Username": "from-one", "Secret": "pw"}')
    helpers.install("store", '{"Username": "from-store", "Secret": "pw"}')
    write_config(config_dir, {"credHelpers": {"a.example": "one"}, "credsStore": "store"})
    keychain = Keychain(env={}, docker_config_dir=config_dir)

    a, b = await keychain.get("a.example"), await keychain.get("b.example")

    assert ("from-one", "from-store") == (a.username, b.username)


async def test_helper_token_username_means_identity_token(
    helpers: Helpers, config_dir: Path
) -> None:
    """The user name `<token>` marks the secret as an identity (refresh) token."""
    helpers.install("fake", '{"Username": "<token>", "Secret": "refresh-token"}')
    write_config(config_dir, {"credHelpers": {"reg.example": "fake"}})
    keychain = Keychain(env={}, docker_config_dir=config_dir)

    credential = await keychain.get("reg.example")

    assert Credential(identity_token="refresh-token", source="docker-credential-fake") == (
        credential
    )


async def test_helper_without_credentials_means_anonymous(
    helpers: Helpers, config_dir: Path
) -> None:
    """A helper saying "credentials not found" leaves the host anonymous, not failed."""
    helpers.install("fake", "credentials not found in native keychain", exit_code=1)
    write_config(config_dir, {"credHelpers": {"reg.example": "fake"}})
    keychain = Keychain(env={}, docker_config_dir=config_dir)

    assert (await keychain.get("reg.example")).anonymous


async def test_helper_is_asked_once_per_host(helpers: Helpers, config_dir: Path) -> None:
    """Helper answers (including "not found") are remembered for the run."""
    helpers.install("fake", "credentials not found in native keychain", exit_code=1)
    write_config(config_dir, {"credsStore": "fake"})
    keychain = Keychain(env={}, docker_config_dir=config_dir)

    for host in ("a.example", "a.example", "b.example", "a.example"):
        await keychain.get(host, "team/app")

    assert ["fake get a.example", "fake get b.example"] == helpers.calls()


async def test_missing_helper_is_an_error_without_fallback(
    helpers: Helpers, config_dir: Path
) -> None:
    """
    A configured helper that is not installed fails the lookup; credentials stored for
    the host elsewhere are not used instead (CVE-2021-41092).
    """
    write_config(
        config_dir,
        {
            "credHelpers": {"reg.example": "missing"},
            "auths": {"reg.example": {"auth": auth("alice", "pw")}},
        },
    )
    keychain = Keychain(env={}, docker_config_dir=config_dir)

    with pytest.raises(AuthError, match="docker-credential-missing") as caught:
        await keychain.get("reg.example")

    assert "docker-credential-missing" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("stdout", "exit_code", "message"),
    [
        ("keychain locked", 1, "failed for reg.example: keychain locked"),
        ("not json", 0, "unreadable output"),
        ('{"Username": "alice"}', 0, "no Username/Secret"),
    ],
)
async def test_failing_helper_is_an_auth_error(
    stdout: str, exit_code: int, message: str, helpers: Helpers, config_dir: Path
) -> None:
    """A helper that fails or answers nonsense is an error for its host."""
    helpers.install("fake", stdout, exit_code=exit_code)
    write_config(config_dir, {"credHelpers": {"reg.example": "fake"}})
    keychain = Keychain(env={}, docker_config_dir=config_dir)

    with pytest.raises(AuthError, match=message):
        await keychain.get("reg.example")


@pytest.mark.parametrize("name", ["../../bin/sh", "/bin/sh", "a b", ""])
async def test_helper_names_that_are_not_plain_names_are_refused(
    name: str, helpers: Helpers, config_dir: Path
) -> None:
    """A helper name with `/` (or other odd characters) could run any program; refused."""
    write_config(config_dir, {"credHelpers": {"reg.example": name}})
    keychain = Keychain(env={}, docker_config_dir=config_dir)

    with pytest.raises(ConfigError, match="invalid credential helper name"):
        await keychain.get("reg.example")

    assert [] == helpers.calls()


def test_repr_never_shows_secrets() -> None:
    """Secrets cannot reach a log line or traceback through repr() or str()."""
    credential = Credential(
        username="alice",
        password="pw-SECRET",
        identity_token="id-SECRET",
        registry_token="reg-SECRET",
        source="env",
    )

    for text in (repr(credential), str(credential), f"{credential!r}", repr([credential])):
        assert "SECRET" not in text
        assert "alice" in text
