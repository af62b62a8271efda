"""
A minimal, synchronous registry client for seeding and checking test registries.

It is written against the distribution spec with `http.client` only, so tests can seed
sources and verify destinations without trusting `relocator.transport`. It speaks basic
auth and the Docker bearer-token flow (enough for the htpasswd and token variants), and
streams blob uploads from an iterator so a 64 MiB layer never sits in memory.

Synchronous on purpose: session-scoped fixtures have no event loop. From a coroutine
whose loop also runs the server being talked to (an in-process fake), call it through
`asyncio.to_thread`. A client is not thread-safe; use one per thread.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from relocator.oci import Digest

#: Everything a registry may store under /manifests/, for the Accept header.
MANIFEST_ACCEPT = (
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.v1+prettyjws, "
    "application/vnd.docker.distribution.manifest.v1+json"
)
# 60 s per socket operation: generous for a local registry, finite for a hung one.
_TIMEOUT = 60.0
# Error bodies are quoted in messages; 2 KiB says enough.
_ERROR_EXCERPT = 2048
# Blob bodies are read and hashed 1 MiB at a time.
_READ_CHUNK = 1024 * 1024


class RegistryRequestError(RuntimeError):
    """The registry (or token server) answered with an unexpected status."""

    def __init__(self, method: str, url: str, status: int, body: bytes) -> None:
        excerpt = body[:_ERROR_EXCERPT].decode("utf-8", "replace")
        super().__init__(f"{method} {url}: HTTP {status} {excerpt}".strip())
        self.method = method
        self.url = url
        self.status = status
        self.body = body

    @property
    def codes(self) -> tuple[str, ...]:
        """The distribution error codes in the body (`MANIFEST_UNKNOWN`, ...)."""
        try:
            doc = json.loads(self.body)
            return tuple(str(e.get("code")) for e in doc.get("errors", ()))
        except (ValueError, AttributeError, TypeError):
            return ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """A fully read response."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """A parsed `WWW-Authenticate` header."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, header: str) -> Challenge:
        """Parse `Bearer realm="...",service="...",scope="..."` (or `Basic realm=...`)."""
        scheme, _, rest = header.strip().partition(" ")
        params = {
            m["key"].lower(): m["quoted"] if m["quoted"] is not None else m["bare"]
            for m in re.finditer(
                r'(?P<key>[A-Za-z_]+)=(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^,\s]*))',
                rest,
            )
        }
        return cls(scheme=scheme.lower(), params=params)


Body = bytes | Callable[[], Iterable[bytes]]
"""A request body: bytes, or a factory of chunk iterators (called again on a retry)."""


class RegistryClient:
    """
    A tiny distribution API client: blobs, manifests, tags, catalog.

    Credentials are sent only after the registry asks for them (a 401): as basic auth,
    or to the token server the `Bearer` challenge names, whose tokens are cached per
    scope. `uploaded` and `skipped` record what `push_blob` did, for tests of blob reuse.
    """

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        """
        Args:
            url: `http://host:port` or `https://host:port`.
            ssl_context: Trust settings for https (and for an https token realm).
            username: For basic auth or the token server; `None` for anonymous.
            password: Goes with `username`.
        """
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not a registry URL: {url!r}")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.netloc
        self.ssl_context = ssl_context
        self.username = username
        self.password = password
        #: Blob digests `push_blob` uploaded / found present, in order.
        self.uploaded: list[Digest] = []
        self.skipped: list[Digest] = []
        self._connection: http.client.HTTPConnection | None = None
        self._basic = False
        self._bearer: dict[str, str] = {}
        self._challenge: Challenge | None = None

    # -- plumbing ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; the client reconnects if used again."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connect(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(netloc, timeout=_TIMEOUT, context=self.ssl_context)
        return http.client.HTTPConnection(netloc, timeout=_TIMEOUT)

    def _send(
        self, method: str, target: str, headers: Mapping[str, str], body: Body | None
    ) -> http.client.HTTPResponse:
        """Send one request on the kept-alive connection, reconnecting once if stale."""
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = self._connect(*self.url.split("://", 1))
            payload: bytes | Iterable[bytes] | None
            payload = body if body is None or isinstance(body, bytes) else body()
            try:
                self._connection.request(method, target, body=payload, headers=dict(headers))
                return self._connection.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server closed meanwhile; retry once fresh.
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Body | None = None,
        expect: Iterable[int] = (200,),
        stream: bool = False,
    ) -> Response | http.client.HTTPResponse:
        """
        Send a request to the registry, answering one auth challenge if needed.

        Args:
            method: HTTP method.
            path: Path and query (`/v2/...`) or an absolute URL on this registry.
            scope: Token scope the request needs (`repository:NAME:pull,push`).
            headers: Extra headers.
            body: Bytes, or a factory returning a fresh chunk iterator per attempt
                (set `Content-Length` in `headers` to avoid chunked encoding).
            expect: Statuses that count as success.
            stream: Return the open `HTTPResponse` (caller reads and closes it fully
                before the next request) instead of a read `Response`.

        Raises:
            RegistryRequestError: The final status is not in `expect`.
        """
        target = self._target(path)
        expected = set(expect)
        for attempt in (1, 2):
            all_headers = {"User-Agent": "relocator-testing", **(headers or {})}
            authorization = self._authorization(scope)
            if authorization:
                all_headers["Authorization"] = authorization
            response = self._send(method, target, all_headers, body)
            if response.status == 401 and attempt == 1:
                data = response.read()
                challenge = response.getheader("WWW-Authenticate")
                if challenge and self._answer(Challenge.parse(challenge), scope):
                    continue
                raise RegistryRequestError(method, self.url + target, 401, data)
            if response.status not in expected:
                data = response.read()
                raise RegistryRequestError(method, self.url + target, response.status, data)
            if stream:
                return response
            data = response.read()
            return Response(
                status=response.status,
                headers={k.lower(): v for k, v in response.getheaders()},
                body=data,
            )
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, **kwargs: Any) -> Response:
        """`request` without `stream`: always a fully read `Response`."""
        response = self.request(method, path, **kwargs)
        if not isinstance(response, Response):
            raise TypeError("call() does not stream; use request(stream=True)")
        return response

    def _target(self, path: str) -> str:
        if path.startswith("/"):
            return path
        parts = urllib.parse.urlsplit(path)
        if f"{parts.scheme}://{parts.netloc}" != self.url:
            raise ValueError(f"registry sent us to another host: {path!r}")
        return urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))

    def _authorization(self, scope: str | None) -> str | None:
        if self._basic and self.username is not None:
            return _basic(self.username, self.password or "")
        if self._challenge is not None:
            token = self._bearer.get(scope or "")
            if token is None and self._challenge.scheme == "bearer":
                token = self._fetch_token(self._challenge, scope)
            return f"Bearer {token}"
        return None

    def _answer(self, challenge: Challenge, scope: str | None) -> bool:
        """Prepare credentials for a challenge; `False` when retrying cannot help."""
        if challenge.scheme == "basic":
            if self.username is None or self._basic:
                return False
            self._basic = True
            return True
        if challenge.scheme == "bearer":
            # The cached token (if any) expired or lacks the scope: fetch a fresh one once.
            self._bearer.pop(scope or "", None)
            self._challenge = challenge
            return True
        return False

    def _fetch_token(self, challenge: Challenge, scope: str | None) -> str:
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryRequestError("GET", self.url, 401, b"Bearer challenge without realm")
        query = [("service", challenge.params.get("service", ""))]
        # A mount needs two scopes (`... repository:SRC:pull`): one `scope=` each.
        query.extend(("scope", one) for one in (scope or "").split())
        if self.username is not None:
            query.append(("account", self.username))
        parts = urllib.parse.urlsplit(realm)
        target = urllib.parse.urlunsplit(
            ("", "", parts.path or "/", "&".join(filter(None, [parts.query, _query(query)])), "")
        )
        headers = {"User-Agent": "relocator-testing"}
        if self.username is not None:
            headers["Authorization"] = _basic(self.username, self.password or "")
        connection = self._connect(parts.scheme, parts.netloc)
        try:
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise RegistryRequestError("GET", realm, response.status, data)
        doc = json.loads(data)
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str):
            raise RegistryRequestError("GET", realm, response.status, b"no token in answer")
        self._bearer[scope or ""] = token
        return token

    # -- distribution API --------------------------------------------------------------

    def ping(self) -> Response:
        """`GET /v2/` (authenticating if asked to)."""
        return self.call("GET", "/v2/")

    def blob_size(self, repository: str, digest: Digest | str) -> int | None:
        """
        `HEAD` a blob.

        Returns:
            Its `Content-Length`, or `None` if the repository does not have it.

        Raises:
            RegistryRequestError: Any status other than 200 or 404, or a
                `Docker-Content-Digest` that is not the digest asked for.
        """
        path = f"/v2/{repository}/blobs/{digest}"
        response = self.call("HEAD", path, scope=_pull(repository), expect=(200, 404))
        if response.status == 404:
            return None
        served = response.header("docker-content-digest")
        if served is not None and served != str(digest):
            raise RegistryRequestError("HEAD", path, 200, f"digest header {served}".encode())
        return int(response.header("content-length") or "-1")

    def blob_chunks(self, repository: str, digest: Digest | str) -> Iterator[bytes]:
        """Stream a blob's body in 1 MiB chunks (consume it fully before other calls)."""
        response = self.request(
            "GET", f"/v2/{repository}/blobs/{digest}", scope=_pull(repository), stream=True
        )
        if isinstance(response, Response):  # pragma: no cover - stream=True never reads
            yield response.body
            return
        with response:
            while chunk := response.read(_READ_CHUNK):
                yield chunk

    def get_blob(self, repository: str, digest: Digest | str) -> bytes:
        """A blob's body, read into memory (small blobs only)."""
        return b"".join(self.blob_chunks(repository, digest))

    def push_blob(
        self,
        repository: str,
        digest: Digest,
        size: int,
        chunks: Callable[[], Iterable[bytes]],
        *,
        mount_from: str | None = None,
    ) -> bool:
        """
        Upload a blob unless the repository already has it.

        One `POST` to open the session, then one streaming `PUT ?digest=` with a known
        `Content-Length`, as the distribution spec's monolithic upload; `chunks` is
        called once per attempt, so the body never needs to be held in memory.

        Args:
            repository: Destination repository.
            digest: The blob's digest, checked by the registry.
            size: Its length in bytes.
            chunks: Factory of the body's chunks.
            mount_from: Try a cross-repository mount from this repository first.

        Returns:
            `True` if bytes were uploaded (or mounted), `False` if the blob was present.
        """
        if self.blob_size(repository, digest) == size:
            self.skipped.append(digest)
            return False
        query = [("mount", str(digest)), ("from", mount_from)] if mount_from else []
        response = self.call(
            "POST",
            f"/v2/{repository}/blobs/uploads/{_qs(query)}",
            scope=_push(repository, mount_from),
            headers={"Content-Length": "0"},
            expect=(201, 202),
        )
        if response.status == 202:
            location = response.header("location")
            if not location:
                raise RegistryRequestError("POST", repository, 202, b"no Location header")
            parts = urllib.parse.urlsplit(location)
            query_pairs = [*urllib.parse.parse_qsl(parts.query), ("digest", str(digest))]
            target = urllib.parse.urlunsplit(
                (parts.scheme, parts.netloc, parts.path, _query(query_pairs), "")
            )
            self.call(
                "PUT",
                target,
                scope=_push(repository),
                headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
                body=chunks,
                expect=(201,),
            )
        self.uploaded.append(digest)
        return True

    def put_manifest(
        self, repository: str, reference: str | Digest, raw: bytes, media_type: str
    ) -> Digest:
        """
        `PUT` a manifest by tag or digest, sending its exact bytes.

        Returns:
            The digest the registry reports (`Docker-Content-Digest`).
        """
        response = self.call(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            scope=_push(repository),
            headers={"Content-Type": media_type},
            body=raw,
            expect=(201,),
        )
        return Digest.parse(response.header("docker-content-digest") or "")

    def get_manifest(self, repository: str, reference: str | Digest) -> Response:
        """`GET` a manifest as stored (any media type is accepted)."""
        return self.call(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scope=_pull(repository),
            headers={"Accept": MANIFEST_ACCEPT},
        )

    def manifest_digest(self, repository: str, reference: str | Digest) -> Digest | None:
        """`HEAD` a manifest: its digest, or `None` when the registry does not have it."""
        response = self.call(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            scope=_pull(repository),
            headers={"Accept": MANIFEST_ACCEPT},
            expect=(200, 404),
        )
        if response.status == 404:
            return None
        return Digest.parse(response.header("docker-content-digest") or "")

    def delete_manifest(self, repository: str, digest: Digest) -> None:
        """Delete a manifest by digest (the test registries enable deletes)."""
        self.call(
            "DELETE",
            f"/v2/{repository}/manifests/{digest}",
            scope=_delete(repository),
            expect=(202,),
        )

    def tags(self, repository: str) -> tuple[str, ...]:
        """The repository's tags, sorted; empty if it does not exist."""
        response = self.call(
            "GET", f"/v2/{repository}/tags/list", scope=_pull(repository), expect=(200, 404)
        )
        if response.status == 404:
            return ()
        return tuple(sorted(json.loads(response.body).get("tags") or ()))

    def catalog(self) -> tuple[str, ...]:
        """Every repository in the registry, sorted (follows `Link` pagination)."""
        # 1000 per page: distribution's default `catalog.maxentries`; more is a 400.
        path: str | None = "/v2/_catalog?n=1000"
        names: list[str] = []
        while path is not None:
            response = self.call("GET", path, scope="registry:catalog:*")
            names.extend(json.loads(response.body).get("repositories") or ())
            match = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', response.header("link") or "")
            path = match.group(1) if match else None
        return tuple(sorted(names))


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def _push(repository: str, mount_from: str | None = None) -> str:
    scope = f"repository:{repository}:pull,push"
    return f"{scope} {_pull(mount_from)}" if mount_from else scope


def _delete(repository: str) -> str:
    return f"repository:{repository}:delete"


def _query(pairs: Iterable[tuple[str, str]]) -> str:
    return urllib.parse.urlencode(list(pairs), safe=":,*")


def _qs(pairs: Sequence[tuple[str, str]]) -> str:
    return f"?{_query(pairs)}" if pairs else ""
