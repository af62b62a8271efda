"""
Where registry credentials come from.

In order of precedence: environment variables (`RELOCATOR_REGISTRY_*`, and the
`KBLD_REGISTRY_*` and `IMGPKG_REGISTRY_*` spellings so kbld and imgpkg users keep their
CI secrets), then Docker's `config.json` (`credHelpers`, `credsStore`, `auths`), then
the `auth.json` of podman, skopeo and buildah in their own lookup order (see
`containers_auth_files`). Docker's file comes before the containers ones because kbld
and imgpkg read only Docker's: a setup that worked with them keeps its credentials.
A credential helper that is configured but fails is an error for that registry; we
never fall back to credentials meant for another registry (CVE-2021-41092).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from relocator.errors import ConfigError
from relocator.transport.helpers import run_helper

log = logging.getLogger(__name__)

ENV_PREFIXES = ("RELOCATOR_REGISTRY_", "KBLD_REGISTRY_", "IMGPKG_REGISTRY_")
#: `RELOCATOR_REGISTRY_*` variables that are settings, not credentials (read by the CLI).
SETTING_VARIABLES = frozenset({
    "RELOCATOR_REGISTRY_INSECURE",
    "RELOCATOR_REGISTRY_CA_CERT_PATH",
    "RELOCATOR_REGISTRY_VERIFY_CERTS",
})
_ENV_FIELDS = ("HOSTNAME", "USERNAME", "PASSWORD", "IDENTITY_TOKEN", "REGISTRY_TOKEN")
_ENV_NAME = re.compile(rf"({'|'.join(_ENV_FIELDS)})(?:_(\w+))?")
# imgpkg reads this one itself for Azure; it is not a credential of ours.
_ENV_IGNORED = frozenset({"IMGPKG_REGISTRY_AZURE_CR_CONFIG", *SETTING_VARIABLES})
_HUB_KEYS = frozenset({"index.docker.io", "docker.io", "registry-1.docker.io"})
_HUB_SERVER_URL = "https://index.docker.io/v1/"


@dataclass(frozen=True, slots=True, kw_only=True)
class Credential:
    """What we may present to one registry. All fields empty means anonymous."""

    username: str | None = None
    password: str | None = None
    #: An OAuth2 refresh token (`identitytoken` in config.json) exchanged for bearer tokens.
    identity_token: str | None = None
    #: A bearer token sent as is.
    registry_token: str | None = None
    #: Where it came from, for messages (never the secret itself).
    source: str = "anonymous"

    @property
    def anonymous(self) -> bool:
        """Whether there is nothing to present."""
        return not (self.username or self.identity_token or self.registry_token)

    def __repr__(self) -> str:
        # Secrets must never reach a log line or a traceback through repr().
        return f"Credential(username={self.username!r}, source={self.source!r}, secrets=***)"


ANONYMOUS = Credential()


@dataclass(frozen=True, slots=True, kw_only=True)
class _EnvEntry:
    pattern: str
    credential: Credential


class Keychain:
    """
    Looks up the credential for a registry host and repository.

    Args:
        env: The process environment (injected so tests need not touch `os.environ`).
        docker_config_dir: Directory of Docker's `config.json`; default `$DOCKER_CONFIG`
            or `~/.docker`.
        auth_files: The containers `auth.json` files, in lookup order; default
            `containers_auth_files(env)`.
        pinned: Credentials by host that win over every other source (imgpkg's
            `--registry-username` and friends).
        anonymous: Send no credentials to any registry (imgpkg's `--registry-anon`).

    Raises:
        ConfigError: An unknown `RELOCATOR_REGISTRY_*` variable or an entry without
            HOSTNAME (reported at construction, before any network traffic).
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        docker_config_dir: Path | None = None,
        auth_files: Sequence[Path] | None = None,
        *,
        pinned: Mapping[str, Credential] | None = None,
        anonymous: bool = False,
    ) -> None:
        env = os.environ if env is None else env
        # Credentials given on the command line, per host, before anything else; and
        # imgpkg's `--registry-anon`, which sends none anywhere.
        self._pinned = {_normalize_host(h): c for h, c in (pinned or {}).items()}
        self._anonymous = anonymous
        self._env_entries = _env_entries(env)
        #: Credentials set up by halves (a user name without a password...), one
        #: sentence each, for the caller to show: the library does not print.
        self.warnings: tuple[str, ...] = _half_configured(env)
        self._auth_files = tuple(
            containers_auth_files(env) if auth_files is None else auth_files
        )
        self._auth_docs: dict[Path, dict[str, object]] = {}
        if docker_config_dir is None:
            configured = env.get("DOCKER_CONFIG")
            docker_config_dir = (
                Path(configured) if configured else Path(env.get("HOME", "~")) / ".docker"
            ).expanduser()
        self._config_path = docker_config_dir / "config.json"
        self._config: dict[str, object] | None = None
        self._helper_cache: dict[tuple[str, str], Credential] = {}

    async def get(self, host: str, repository: str = "") -> Credential:
        """The credential for `repository` on `host` (anonymous if none is configured)."""
        host = _normalize_host(host)
        if self._anonymous:
            return ANONYMOUS
        if host in self._pinned:
            return self._pinned[host]
        target = f"{host}/{repository}" if repository else host
        for entry in self._env_entries:
            if _matches(entry.pattern, host, target):
                return entry.credential
        found = await self._from_docker_config(host)
        if not found.anonymous:
            return found
        for path in self._auth_files:
            credential = await self._from_auth_file(path, host, repository)
            if credential is not None and not credential.anonymous:
                return credential
        return found

    async def _from_auth_file(
        self, path: Path, host: str, repository: str
    ) -> Credential | None:
        """A containers `auth.json`: `credHelpers` by host, else the most specific of
        its `auths` keys (`host/namespace/...` keys match the repository's path)."""
        doc = self._auth_docs.get(path)
        if doc is None:
            doc = self._auth_docs[path] = _load_json(path, "containers auth file")
        helpers = doc.get("credHelpers")
        if isinstance(helpers, dict):
            for key, helper in helpers.items():
                if _normalize_host(key) == host and isinstance(helper, str):
                    return await self._run_helper(helper, host)
        auths = doc.get("auths")
        if not isinstance(auths, dict):
            return None
        best: tuple[int, str, Mapping[str, object]] | None = None
        for key, entry in auths.items():
            depth = _namespace_depth(key, host, repository)
            if depth is not None and isinstance(entry, dict) and (
                best is None or depth > best[0]
            ):
                best = (depth, key, entry)
        if best is None:
            return None
        return _from_auth_entry(best[2], f"{path} auths[{best[1]}]")

    async def _from_docker_config(self, host: str) -> Credential:
        config = self._load_config()
        helpers = config.get("credHelpers")
        if isinstance(helpers, dict):
            for key, helper in helpers.items():
                if _normalize_host(key) == host and isinstance(helper, str):
                    return await self._run_helper(helper, host)
        store = config.get("credsStore")
        if isinstance(store, str) and store:
            return await self._run_helper(store, host)
        auths = config.get("auths")
        if isinstance(auths, dict):
            for key, entry in auths.items():
                if _normalize_host(key) == host and isinstance(entry, dict):
                    return _from_auth_entry(entry, f"{self._config_path.name} auths[{key}]")
        return ANONYMOUS

    def _load_config(self) -> dict[str, object]:
        if self._config is None:
            self._config = _load_json(self._config_path, "docker config")
        return self._config

    async def _run_helper(self, name: str, host: str) -> Credential:
        cached = self._helper_cache.get((name, host))
        if cached is not None:
            return cached
        server = _HUB_SERVER_URL if host in _HUB_KEYS else host
        answer = await run_helper(name, host, server, config_path=self._config_path)
        credential = ANONYMOUS
        if answer is not None:
            username, secret = answer
            program = f"docker-credential-{name}"
            # Docker's convention: the user name "<token>" marks an identity (refresh) token.
            if username == "<token>":
                credential = Credential(identity_token=secret, source=program)
            else:
                credential = Credential(username=username, password=secret, source=program)
        self._helper_cache[(name, host)] = credential
        return credential


def containers_auth_files(env: Mapping[str, str]) -> list[Path]:
    """
    The containers `auth.json` files in the order podman and skopeo read them
    (containers-auth.json(5)): `$REGISTRY_AUTH_FILE` alone when it is set (as their
    `--authfile`); else `$XDG_RUNTIME_DIR/containers/auth.json` (where `podman login`
    writes), then `${XDG_CONFIG_HOME:-$HOME/.config}/containers/auth.json`. Docker's
    `config.json`, their next stop, is read before these (see the module docstring).
    """
    explicit = env.get("REGISTRY_AUTH_FILE")
    if explicit:
        return [Path(explicit).expanduser()]
    files = []
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        files.append(Path(runtime) / "containers" / "auth.json")
    config_home = env.get("XDG_CONFIG_HOME") or (
        str(Path(env["HOME"]) / ".config") if env.get("HOME") else None
    )
    if config_home:
        files.append(Path(config_home) / "containers" / "auth.json")
    return files


def _load_json(path: Path, what: str) -> dict[str, object]:
    """A credentials file as a JSON object; a missing file is an empty one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        loaded = json.loads(text)
    except ValueError:
        raise ConfigError(f"{what} {path} is not valid JSON") from None
    return loaded if isinstance(loaded, dict) else {}


def _namespace_depth(key: str, host: str, repository: str) -> int | None:
    """
    How specific an `auths` key of a containers file is for `repository` on `host`
    (0: the host alone; n: n path components), or None if it does not apply.
    """
    key = re.sub(r"^https?://", "", key.strip()).rstrip("/")
    key_host, _, path = key.partition("/")
    if _normalize_host(key_host) != host:
        return None
    if not path:
        return 0
    if path in ("v1", "v2"):
        return 0  # a Docker-style URL key, not a namespace
    if repository == path or repository.startswith(path + "/"):
        return path.count("/") + 1
    return None


def _half_configured(env: Mapping[str, str]) -> tuple[str, ...]:
    """A sentence for each variable group with a user name and no password, or the
    reverse: basic auth then goes out with an empty password, or not at all."""
    groups: dict[str, set[str]] = {}
    for name, value in env.items():
        prefix = next((p for p in ENV_PREFIXES if name.startswith(p)), None)
        match = _ENV_NAME.fullmatch(name[len(prefix):]) if prefix else None
        if prefix is None or match is None or name in _ENV_IGNORED or not value:
            continue
        suffix = f"_{match.group(2)}" if match.group(2) else ""
        groups.setdefault(f"{prefix}{{}}{suffix}", set()).add(match.group(1))
    warnings = []
    for pattern, fields in sorted(groups.items()):
        if fields & {"IDENTITY_TOKEN", "REGISTRY_TOKEN"}:
            continue
        if "USERNAME" in fields and "PASSWORD" not in fields:
            warnings.append(
                f"{pattern.format('USERNAME')} is set but {pattern.format('PASSWORD')} "
                "is not: the user name is sent with an empty password"
            )
        elif "PASSWORD" in fields and "USERNAME" not in fields:
            warnings.append(
                f"{pattern.format('PASSWORD')} is set but {pattern.format('USERNAME')} "
                "is not: the password is never sent"
            )
    return tuple(warnings)


def _from_auth_entry(entry: Mapping[str, object], source: str) -> Credential:
    username, password = entry.get("username"), entry.get("password")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(f"{source}: 'auth' is not base64 of user:password") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise ConfigError(f"{source}: 'auth' is not base64 of user:password")
    identity = entry.get("identitytoken")
    token = entry.get("registrytoken")
    return Credential(
        username=username if isinstance(username, str) and username else None,
        password=password if isinstance(password, str) else None,
        identity_token=identity if isinstance(identity, str) and identity else None,
        registry_token=token if isinstance(token, str) and token else None,
        source=source,
    )


def _env_entries(env: Mapping[str, str]) -> list[_EnvEntry]:
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for name, value in env.items():
        prefix = next((p for p in ENV_PREFIXES if name.startswith(p)), None)
        if prefix is None or name in _ENV_IGNORED:
            continue
        match = _ENV_NAME.fullmatch(name[len(prefix) :])
        if match is None:
            if prefix == ENV_PREFIXES[0]:
                raise ConfigError(f"Unknown env variable '{name}'")
            continue
        groups.setdefault((prefix, match.group(2) or ""), {})[match.group(1)] = value
    entries = []
    for (prefix, suffix), fields in groups.items():
        hostname = fields.get("HOSTNAME")
        if not hostname:
            raise ConfigError(f"{prefix}HOSTNAME{'_' + suffix if suffix else ''} is not set "
                              f"but other {prefix}*{'_' + suffix if suffix else ''} are")
        credential = Credential(
            username=fields.get("USERNAME") or None,
            password=fields.get("PASSWORD"),
            identity_token=fields.get("IDENTITY_TOKEN") or None,
            registry_token=fields.get("REGISTRY_TOKEN") or None,
            source=f"{prefix}*{'_' + suffix if suffix else ''}",
        )
        entries.append(_EnvEntry(pattern=_normalize_pattern(hostname), credential=credential))
    # The most specific entry wins: longer patterns (with a repository path) first, and
    # RELOCATOR_ before KBLD_ before IMGPKG_ for equal patterns (stable sort).
    order = {p: i for i, p in enumerate(ENV_PREFIXES)}
    entries.sort(key=lambda e: (-len(e.pattern), order[e.credential.source.split("*")[0]]))
    return entries


def _normalize_pattern(hostname: str) -> str:
    hostname = re.sub(r"^https?://", "", hostname.strip()).rstrip("/")
    hostname = re.sub(r"/v[12]$", "", hostname)
    host, sep, path = hostname.partition("/")
    return _normalize_host(host) + (sep + path if sep else "")


def _normalize_host(key: str) -> str:
    key = re.sub(r"^https?://", "", key.strip())
    host = key.split("/", 1)[0]
    return "index.docker.io" if host in _HUB_KEYS else host


def _matches(pattern: str, host: str, target: str) -> bool:
    if "/" in pattern:
        return target == pattern or target.startswith(pattern + "/")
    return fnmatch.fnmatchcase(host, pattern)
