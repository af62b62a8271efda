"""
Run the real CNCF distribution registry (`docker-registry serve`) as a subprocess.

Tests start one per variant (plain http, TLS, htpasswd, bearer token) on 127.0.0.1 with
storage in a temporary directory. Everything here is synchronous so that session-scoped
pytest fixtures can use it without an event loop.

Facts about distribution 2.8.2 (Debian's `docker-registry`) these helpers rely on:

- `http.addr` must be given as `127.0.0.1:PORT`; we pick a free port and retry on the
  rare race where someone else takes it before the registry binds.
- htpasswd auth works over plain http (2.8.2 only warns in its docs); only bcrypt hashes
  are accepted.
- Token auth verifies the JWT's `x5c` chain against `rootcertbundle` (see
  `tests.support.tokenserver`).
- No `storage.cache` is configured, so the registry reads the filesystem on every
  request; `Registry.wipe` still restarts the process so nothing survives in memory.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.support.client import RegistryClient

if TYPE_CHECKING:
    from tests.support.tokenserver import TokenServer

#: Environment variable naming the registry binary when it is not on PATH.
BINARY_ENV = "RELOCATOR_TEST_REGISTRY_BINARY"
# Debian/Ubuntu ship it as docker-registry; upstream release tarballs call it registry.
_BINARY_NAMES = ("docker-registry", "registry")
# Startup takes ~0.1 s; 20 s leaves room for a loaded CI machine without hanging forever.
DEFAULT_STARTUP_TIMEOUT = 20.0
# Give the registry 5 s to exit after SIGTERM before it gets SIGKILL.
_STOP_TIMEOUT = 5.0
# Poll /v2/ every 20 ms while waiting for the registry to answer.
_POLL_INTERVAL = 0.02
# Lines of the registry's output quoted in a startup error.
_LOG_TAIL_LINES = 30
# A free port can be taken by someone else before the registry binds it; try 3 ports.
_BIND_ATTEMPTS = 3


class RegistryNotFound(RuntimeError):
    """The distribution registry binary is not installed."""


class RegistryStartError(RuntimeError):
    """The registry exited or did not answer `/v2/` in time; the message quotes its log."""


@cache
def find_registry_binary() -> str:
    """
    Locate the distribution registry binary.

    Looks at `$RELOCATOR_TEST_REGISTRY_BINARY` first, then for `docker-registry` and
    `registry` on PATH; a `registry` found on PATH must say it is distribution.

    Returns:
        The path of the binary.

    Raises:
        RegistryNotFound: None was found (the message says how to install one).
    """
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        if shutil.which(explicit) is None:
            raise RegistryNotFound(f"{BINARY_ENV}={explicit!r} is not an executable")
        return explicit
    for name in _BINARY_NAMES:
        path = shutil.which(name)
        if path is None:
            continue
        # `registry` is a common word; make sure it is the CNCF one before using it.
        if name == "registry" and "distribution" not in _version_of(path):
            continue
        return path
    raise RegistryNotFound(
        "the CNCF distribution registry is not installed: run `apt-get install "
        f"docker-registry` (Debian/Ubuntu) or set {BINARY_ENV} to the `registry` binary"
    )


def _version_of(path: str) -> str:
    try:
        done = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout + done.stderr


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessLogEntry:
    """One request as the registry's access log (Apache combined format) records it."""

    method: str
    path: str
    status: int
    #: Response body bytes, `None` when the log says "-".
    size: int | None
    user: str | None

    @property
    def route(self) -> str:
        """`"blob"`, `"upload"`, `"manifest"`, `"tags"`, `"catalog"`, `"base"` or `"other"`."""
        path = self.path.split("?", 1)[0]
        if path in ("/v2", "/v2/"):
            return "base"
        if path == "/v2/_catalog":
            return "catalog"
        for marker, route in (
            ("/blobs/uploads/", "upload"),
            ("/blobs/", "blob"),
            ("/manifests/", "manifest"),
            ("/tags/list", "tags"),
        ):
            if marker in path:
                return route
        return "other"


# 127.0.0.1 - user [27/Nov/2025:05:30:00 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "agent"
_ACCESS_LINE = re.compile(
    r'^\S+ \S+ (?P<user>\S+) \[[^\]]*\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" '
    r"(?P<status>\d{3}) (?P<size>\d+|-)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryLog:
    """
    The registry's stdout and stderr, appended to one file across restarts.

    The access log is on (one line per request, written before the response finishes),
    so tests can check what reached the registry without trusting the client under test:
    `mark = registry.log.mark(); ...; registry.log.requests(since=mark)`.
    """

    path: Path

    def mark(self) -> int:
        """A position in the log; pass it as `since=` to see only later lines."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def lines(self, *, since: int = 0) -> tuple[str, ...]:
        """Every line written after `since` (a `mark()`), without line endings."""
        try:
            with self.path.open("rb") as f:
                f.seek(since)
                data = f.read()
        except FileNotFoundError:
            return ()
        return tuple(data.decode("utf-8", "replace").splitlines())

    def requests(self, *, since: int = 0) -> tuple[AccessLogEntry, ...]:
        """The access log entries written after `since`, oldest first."""
        entries = []
        for line in self.lines(since=since):
            match = _ACCESS_LINE.match(line)
            if match is None:
                continue
            size = match["size"]
            user = match["user"]
            entries.append(
                AccessLogEntry(
                    method=match["method"],
                    path=match["path"],
                    status=int(match["status"]),
                    size=None if size == "-" else int(size),
                    user=None if user == "-" else user,
                )
            )
        return tuple(entries)

    def tail(self, count: int = _LOG_TAIL_LINES) -> str:
        """The last `count` lines as one string, for error messages."""
        return "\n".join(self.lines()[-count:])


class _Process:
    """The mutable part of a `Registry`: its current subprocess, replaced on restart."""

    def __init__(self, argv: list[str], log: RegistryLog, probe: _Probe) -> None:
        self.argv = argv
        self.log = log
        self.probe = probe
        self.popen: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()

    def start(self, timeout: float) -> None:
        with self.log.path.open("ab") as out:
            # The child keeps its own copy of the descriptor; ours closes at once.
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        _LIVE.add(self)
        deadline = time.monotonic() + timeout
        while True:
            code = self.popen.poll()
            if code is not None:
                self.stop()
                raise RegistryStartError(
                    f"registry exited with status {code} during startup:\n{self.log.tail()}"
                )
            if self.probe.answers():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RegistryStartError(
                    f"registry did not answer {self.probe.url} within {timeout:.0f} s:\n"
                    f"{self.log.tail()}"
                )
            time.sleep(_POLL_INTERVAL)

    def stop(self) -> None:
        with self.lock:
            popen, self.popen = self.popen, None
        _LIVE.discard(self)
        if popen is None:
            return
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                popen.kill()
        popen.wait()

    @property
    def running(self) -> bool:
        popen = self.popen
        return popen is not None and popen.poll() is None


# Every registry process still running, killed at interpreter exit even if a test run
# aborts before its fixtures' finalizers run.
_LIVE: set[_Process] = set()


@atexit.register
def _stop_all() -> None:
    for process in list(_LIVE):
        process.stop()


@dataclass(frozen=True, slots=True)
class _Probe:
    """Asks `/v2/` whether the registry is up; any HTTP answer (401 too) means yes."""

    url: str
    ssl_context: ssl.SSLContext | None

    def answers(self) -> bool:
        # No ProxyHandler: an http_proxy in CI must not swallow requests to 127.0.0.1.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.ssl_context)
        )
        try:
            # 1 s per attempt: on 127.0.0.1 an up registry answers in milliseconds.
            with opener.open(self.url, timeout=1):
                return True
        except urllib.error.HTTPError as exc:
            exc.close()
            return True
        except (OSError, ssl.SSLError):
            return False


@dataclass(frozen=True, slots=True, kw_only=True)
class Registry:
    """
    A running distribution registry on 127.0.0.1.

    Use `start_registry` or `running_registry` to get one; `stop` it when done.
    """

    #: `127.0.0.1:PORT`, as it appears in image references.
    host: str
    #: `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    url: str
    #: PEM file of the CA that signed the registry's certificate (TLS variants only);
    #: pass it as `--registry-ca-cert-path`.
    ca_path: Path | None = None
    #: Credentials accepted by htpasswd or the token server; `None` without auth.
    username: str | None = None
    password: str | None = None
    #: The token server the registry trusts (token variant only).
    token_server: TokenServer | None = None
    #: Directory holding the registry's blobs and manifests.
    storage: Path
    #: The registry's configuration file.
    config_path: Path
    #: The registry's stdout/stderr, including its access log.
    log: RegistryLog
    _process: _Process = field(repr=False, compare=False)

    @property
    def scheme(self) -> str:
        """`"http"` or `"https"`."""
        return self.url.split("://", 1)[0]

    @property
    def tls(self) -> bool:
        """Whether the registry serves https."""
        return self.scheme == "https"

    @property
    def running(self) -> bool:
        """Whether the registry process is alive."""
        return self._process.running

    def stop(self) -> None:
        """Stop the registry (SIGTERM, then SIGKILL after 5 s); safe to call twice."""
        self._process.stop()

    def restart(self, *, timeout: float = DEFAULT_STARTUP_TIMEOUT) -> None:
        """
        Stop and start the registry on the same port with the same storage.

        Raises:
            RegistryStartError: It did not come back.
        """
        self._process.stop()
        self._process.start(timeout)

    def wipe(self, *, timeout: float = DEFAULT_STARTUP_TIMEOUT) -> None:
        """
        Delete every repository, blob and upload, leaving an empty registry on the same URL.

        Stops the registry, empties its storage directory and starts it again, so no
        in-memory state survives either.

        Raises:
            RegistryStartError: It did not come back.
        """
        self._process.stop()
        for child in self.storage.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        self._process.start(timeout)

    def ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context trusting the registry's CA, or `None` for plain http."""
        return _ssl_context(self.ca_path) if self.tls else None

    def client(
        self, *, username: str | None = None, password: str | None = None, anonymous: bool = False
    ) -> RegistryClient:
        """
        An independent HTTP client for this registry (see `tests.support.client`).

        Args:
            username: Overrides the registry's default user (e.g. a pull-only user).
            password: Goes with `username`.
            anonymous: Send no credentials at all.
        """
        if anonymous:
            username = password = None
        elif username is None:
            username, password = self.username, self.password
        return RegistryClient(
            self.url, ssl_context=self.ssl_context(), username=username, password=password
        )


def _ssl_context(ca_path: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_path) if ca_path else None)


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSFiles:
    """A CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""

    ca_path: Path
    cert_path: Path
    key_path: Path

    @classmethod
    def create(cls, directory: Path) -> TLSFiles:
        """
        Make a fresh CA with `trustme` and a server certificate signed by it.

        Args:
            directory: Where to write `ca.pem`, `server.pem` (chain) and `server-key.pem`.
        """
        # Imported here: only TLS variants need trustme (a `tests` group dependency).
        import trustme

        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost", "::1")
        files = cls(
            ca_path=directory / "ca.pem",
            cert_path=directory / "server.pem",
            key_path=directory / "server-key.pem",
        )
        ca.cert_pem.write_to_path(str(files.ca_path))
        # The registry wants the leaf first, then the chain up to (excluding) the root.
        with files.cert_path.open("wb") as f:
            for blob in server.cert_chain_pems:
                f.write(blob.bytes())
        server.private_key_pem.write_to_path(str(files.key_path))
        return files

    def server_ssl_context(self) -> ssl.SSLContext:
        """A server-side context presenting this certificate (for in-process servers)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        return context


def htpasswd_line(username: str, password: str) -> str:
    """
    One htpasswd line with a bcrypt hash, the only kind distribution accepts.

    Cost 4 (the minimum) keeps each request's password check well under a millisecond;
    the default cost 12 would add ~0.2 s to every request the registry authenticates.
    """
    # Imported here: only htpasswd variants need bcrypt (a `tests` group dependency).
    import bcrypt

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return f"{username}:{hashed}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_registry(
    workdir: Path,
    *,
    tls: bool | TLSFiles = False,
    htpasswd: Mapping[str, str] | None = None,
    token_server: TokenServer | None = None,
    extra_config: Mapping[str, Any] | None = None,
    binary: str | None = None,
    timeout: float = DEFAULT_STARTUP_TIMEOUT,
) -> Registry:
    """
    Start a distribution registry on 127.0.0.1 and wait until `/v2/` answers.

    Args:
        workdir: An empty directory for storage, config, certificates and the log.
        tls: Serve https with a fresh `trustme` CA (`True`) or the given files.
        htpasswd: Users and passwords for basic auth; the first pair becomes
            `Registry.username` / `Registry.password`.
        token_server: Require bearer tokens from this server; its first user with push
            rights becomes `Registry.username` / `Registry.password`.
        extra_config: Merged into the generated configuration (nested mappings merge).
        binary: The registry binary; found with `find_registry_binary` by default.
        timeout: Seconds to wait for `/v2/`.

    Returns:
        The running registry; the caller must `stop()` it (or use `running_registry`).

    Raises:
        RegistryNotFound: No registry binary is installed.
        RegistryStartError: It exited or did not answer in time (quotes its log).
        ValueError: Both `htpasswd` and `token_server` were given.
    """
    if htpasswd is not None and token_server is not None:
        raise ValueError("a registry has one auth method: htpasswd or token, not both")
    binary = binary or find_registry_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    tls_files = TLSFiles.create(workdir / "tls") if tls is True else tls or None

    config: dict[str, Any] = {
        "version": 0.1,
        "log": {
            "level": "error",
            # The access log is on: it is how tests see requests independently.
            "accesslog": {"disabled": False},
        },
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "redirect": {"disable": True},
            # No upload purging: it runs at startup and could race with tests.
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {
            # A fixed secret keeps upload state valid across restart().
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }
    username = password = None
    if tls_files is not None:
        config["http"]["tls"] = {
            "certificate": str(tls_files.cert_path),
            "key": str(tls_files.key_path),
        }
    if htpasswd is not None:
        if not htpasswd:
            raise ValueError("htpasswd needs at least one user")
        path = workdir / "htpasswd"
        path.write_text("".join(htpasswd_line(u, p) + "\n" for u, p in htpasswd.items()))
        config["auth"] = {"htpasswd": {"realm": "relocator-test", "path": str(path)}}
        username, password = next(iter(htpasswd.items()))
    if token_server is not None:
        config["auth"] = {"token": token_server.registry_config()}
        username, password = token_server.default_credentials()
    if extra_config:
        _merge(config, extra_config)

    scheme = "https" if tls_files is not None else "http"
    log = RegistryLog(path=workdir / "registry.log")
    config_path = workdir / "config.yml"
    last_error: RegistryStartError | None = None
    for _ in range(_BIND_ATTEMPTS):
        port = free_port()
        config["http"]["addr"] = f"127.0.0.1:{port}"
        config_path.write_text(yaml.safe_dump(config, sort_keys=True))
        url = f"{scheme}://127.0.0.1:{port}"
        probe = _Probe(
            f"{url}/v2/", _ssl_context(tls_files.ca_path) if tls_files is not None else None
        )
        process = _Process([binary, "serve", str(config_path)], log, probe)
        mark = log.mark()
        try:
            process.start(timeout)
        except RegistryStartError as exc:
            if not any("address already in use" in line for line in log.lines(since=mark)):
                raise
            last_error = exc
            continue
        return Registry(
            host=f"127.0.0.1:{port}",
            url=url,
            ca_path=tls_files.ca_path if tls_files is not None else None,
            username=username,
            password=password,
            token_server=token_server,
            storage=storage,
            config_path=config_path,
            log=log,
            _process=process,
        )
    raise last_error or RegistryStartError("registry could not bind a port")


@contextlib.contextmanager
def running_registry(workdir: Path, **options: Any) -> Iterator[Registry]:
    """
    `start_registry` as a context manager: the registry stops on exit, even on errors.

    Args:
        workdir: As for `start_registry`.
        options: Keyword arguments of `start_registry`.
    """
    registry = start_registry(workdir, **options)
    try:
        yield registry
    finally:
        registry.stop()


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        current = into.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            _merge(current, value)
        else:
            into[key] = value
