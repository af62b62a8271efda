"""
A throw-away docker config directory, for tests of credential lookup.

The `docker_config` fixture points `HOME` and `DOCKER_CONFIG` at a temporary directory
and removes every credential variable relocator (or kbld, imgpkg, skopeo) would read, so
a developer's own logins never leak into a test and tests never touch them.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Prefixes of environment variables that carry registry credentials.
CREDENTIAL_ENV_PREFIXES = ("RELOCATOR_REGISTRY_", "KBLD_REGISTRY_", "IMGPKG_REGISTRY_")
#: Single variables that point at credentials elsewhere (docker, podman/skopeo).
CREDENTIAL_ENV_NAMES = ("DOCKER_CONFIG", "DOCKER_AUTH_CONFIG", "REGISTRY_AUTH_FILE")
# config.json holds secrets: owner read/write only, as docker writes it.
_CONFIG_MODE = 0o600


def credential_variables(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The names in `environ` that could carry registry credentials."""
    return tuple(
        sorted(
            name
            for name in environ
            if name in CREDENTIAL_ENV_NAMES or name.startswith(CREDENTIAL_ENV_PREFIXES)
        )
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DockerConfigDir:
    """A `HOME` and a `DOCKER_CONFIG` directory inside it, both empty at first."""

    home: Path
    #: The `DOCKER_CONFIG` directory (`HOME/.docker`).
    directory: Path

    @property
    def path(self) -> Path:
        """`DOCKER_CONFIG/config.json`."""
        return self.directory / "config.json"

    def read(self) -> dict[str, Any]:
        """The current config.json, `{}` when absent."""
        if not self.path.exists():
            return {}
        doc: dict[str, Any] = json.loads(self.path.read_text())
        return doc

    def write(self, doc: Mapping[str, Any]) -> Path:
        """Replace config.json with `doc` (mode 0600); returns its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _CONFIG_MODE)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
        return self.path

    def login(
        self,
        host: str,
        username: str,
        password: str = "",
        *,
        identity_token: str | None = None,
        registry_token: str | None = None,
    ) -> Path:
        """
        Add an `auths` entry for `host`, as `docker login` would.

        Args:
            host: Registry host (`127.0.0.1:PORT`), the key of the entry.
            username: Stored base64-encoded in `auth` with the password.
            password: Likewise.
            identity_token: Stored as `identitytoken` (an OAuth2 refresh token).
            registry_token: Stored as `registrytoken` (a bearer token sent as is).
        """
        entry: dict[str, str] = {
            "auth": base64.b64encode(f"{username}:{password}".encode()).decode()
        }
        if identity_token is not None:
            entry["identitytoken"] = identity_token
        if registry_token is not None:
            entry["registrytoken"] = registry_token
        doc = self.read()
        doc.setdefault("auths", {})[host] = entry
        return self.write(doc)
