"""
The HTTP client: one aiohttp session per run, wrapped in registry manners.

Everything that speaks HTTP goes through `HttpClient.request`, which adds what a registry
client needs on top of aiohttp: the auth handshake, a concurrency limit and shared
backoff per host, bounded retries of replayable requests, redirects followed by our
own rules (credentials never leave the host that asked for them), capped reads of
untrusted bodies, and aiohttp's exceptions translated into `relocator.errors`.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import ssl
import time
import urllib.request
import zlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Collection, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
import anyio
from multidict import CIMultiDict, CIMultiDictProxy

from relocator import __version__, redaction
from relocator.errors import (
    TEMPORARY_STATUS,
    AuthError,
    InputError,
    LimitExceeded,
    NotFound,
    PullLimitReached,
    RegistryError,
    RelocatorError,
    TransportError,
    UnsafeRedirect,
)
from relocator.transport import urls
from relocator.transport.addresses import is_internal
from relocator.transport.auth import (
    MAX_TOKEN_BODY,
    Challenge,
    Scope,
    TokenCache,
    header_safe,
    parse_challenges,
    parse_token_response,
    pick_challenge,
)
from relocator.transport.credentials import Credential, Keychain
from relocator.transport.failures import http_to_tls, speaks_tls
from relocator.transport.failures import network_error as _network_error
from relocator.transport.guard import (
    Classifier,
    Guard,
    GuardedConnector,
    StaticResolver,
    token_realm,
)
from relocator.transport.hosts import Hosts, HostState
from relocator.transport.progress import ProgressRule, headers_within
from relocator.transport.ratelimit import PullAllowance, window_text
from relocator.transport.retry import RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

#: Error bodies are read only to build a message; a registry must not make us buffer more.
MAX_ERROR_BODY = 64 * 1024
# More hops than any CDN setup needs; a loop ends here with a clear error.
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Bytes bodies larger than aiohttp's 1 MiB `TOO_LARGE_BYTES_BODY` go as a stream.
_BIG_BYTES = 1024 * 1024
Body = bytes | AsyncIterable[bytes] | None
# OpenSSL's error for a peer that answered the TLS hello with something else (plain http).
_NO_TLS = "WRONG_VERSION_NUMBER"


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportSettings:
    """How to reach registries: TLS, insecure hosts, limits and timeouts."""

    #: Extra CA certificates (PEM) trusted beside the system's.
    ca_cert_paths: tuple[Path, ...] = ()
    verify_certs: bool = True
    #: Hosts reached over plain http at once.
    insecure_hosts: frozenset[str] = frozenset()
    #: Every registry may fall back to plain http (kbld's boolean `--registry-insecure`).
    insecure_all: bool = False
    #: Concurrent requests (and blob transfers) per registry host.
    concurrency: int = 8
    per_host_concurrency: Mapping[str, int] = field(default_factory=dict)
    #: Requests started per second at most, per host (hosts not named: no limit).
    per_host_rps: Mapping[str, float] = field(default_factory=dict)
    #: Seconds to establish a TCP (and TLS) connection.
    connect_timeout: float = 30.0
    #: Seconds a response may stall without a byte arriving.
    read_timeout: float = 120.0
    #: Seconds from sending a GET or HEAD (or a token request) to having its status line
    #: and headers, all of them: a byte now and then does not stretch it.
    response_timeout: float = 120.0
    #: A body brings at least `progress_bytes` in every `progress_window` seconds spent
    #: waiting for it, or ends: a trickle is cut, a slow but real transfer (over ~550
    #: bytes/s) never is. See `relocator.transport.progress`.
    progress_bytes: int = 64 * 1024
    progress_window: float = 120.0
    #: Seconds a request may wait for a free pooled connection (beyond connecting): the
    #: per-host limits keep the pool from filling, so a wait this long means connections
    #: were lost, and a temporary error beats waiting forever.
    pool_timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Largest piece of a body handed over at once (1 MiB): big enough that per-chunk
    #: overhead is negligible, small enough that memory stays flat.
    chunk_size: int = 1024 * 1024
    user_agent: str = f"relocator/{__version__}"
    #: Honour HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment.
    use_env_proxy: bool = True
    #: Names answered with a fixed IP address instead of asking DNS, like /etc/hosts.
    static_hosts: Mapping[str, str] = field(default_factory=dict)
    #: Which connected addresses (and ports) count as internal: loopback, private,
    #: link-local, ... (`addresses.is_internal`). Tests replace it to stand a local
    #: server in for a public one; see `guard.Guard`.
    internal_address: Classifier = is_internal


    @property
    def progress(self) -> ProgressRule:
        """The least a body must bring while we wait for it."""
        return ProgressRule(minimum=self.progress_bytes, window=self.progress_window)


class Response:
    """A response whose status was accepted; the body is read with caps or streamed."""

    __slots__ = ("_body", "_chunk", "_progress", "_resp", "headers", "status", "url")

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        chunk_size: int,
        progress: ProgressRule,
        body: bytes | None = None,
    ) -> None:
        self._resp = resp
        self._chunk = chunk_size
        self._progress = progress
        # The body, when `HttpClient.request` read it already (`read_limit`).
        self._body = body
        self.status: int = resp.status
        self.headers: CIMultiDictProxy[str] = resp.headers
        self.url: str = str(resp.url)

    async def read(self, limit: int, *, what: str) -> bytes:
        """
        The whole body, refusing more than `limit` bytes (decoded, if the server
        compressed it despite our `Accept-Encoding: identity`).

        Raises:
            LimitExceeded: The body (or its decoded form) is larger than `limit`.
            TransportError: The connection broke or was too slow while reading.
        """
        if self._body is not None:
            if len(self._body) > limit:
                raise LimitExceeded(
                    f"{what}: {urls.host_of(self.url)} sent more than the {limit} bytes allowed"
                )
            return self._body
        return await _read_capped(self._resp, limit, what=what, progress=self._progress)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """
        The raw body in pieces, never decompressed (a blob's digest is over its bytes).

        Raises:
            TransportError: The connection broke or stalled (temporary: the caller may
                resume with a `Range` request).
        """
        host = urls.host_of(self.url)
        content = self._resp.content
        watch = self._progress.watch(host, "reading body")
        try:
            while chunk := await watch.read(lambda: content.read(self._chunk)):
                yield chunk
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _network_error(exc, host, "reading body") from None


class HttpClient:
    """
    The run's HTTP client. Use as an async context manager; one per run.

    Args:
        settings: TLS, limits and timeouts.
        keychain: Where credentials come from.
    """

    def __init__(self, settings: TransportSettings, keychain: Keychain) -> None:
        self.settings = settings
        self.keychain = keychain
        self.hosts = Hosts(
            settings.concurrency, dict(settings.per_host_concurrency), settings.per_host_rps
        )
        self._session: aiohttp.ClientSession | None = None
        self._challenges: dict[str, Challenge | None] = {}
        self._tokens = TokenCache()
        # Built on the first https request: loading the CA store costs tens of
        # milliseconds that a run against plain-http registries need not pay. Extra CA
        # files are loaded at once, so a bad one is reported before any work starts.
        self._ssl: ssl.SSLContext | None = (
            _ssl_context(settings) if settings.ca_cert_paths else None
        )
        self._proxies: dict[tuple[str, str], str | None] = {}
        self._guard = Guard(settings.internal_address)
        # Hosts whose port answered https without TLS and that may use http instead.
        self._fell_back: set[str] = set()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None
            # A connection closed in the last moments (a body abandoned by a cancelled
            # range) finishes closing only when the loop next runs its callbacks: give it
            # those turns, so that no socket is left open when the caller's loop ends.
            for _ in range(2):
                await asyncio.sleep(0)

    def base_url(self, registry: str) -> str:
        """`https://host` (or `http://host` for insecure hosts) of a registry's API."""
        host = urls.api_host(registry)
        scheme = "http" if host in self.http_hosts() else "https"
        return f"{scheme}://{host}"

    def http_hosts(self) -> frozenset[str]:
        """The hosts named insecure and those that answered https without TLS."""
        return self.settings.insecure_hosts | self._fell_back

    def _may_fall_back(self, url: str) -> bool:
        """
        Whether an https URL whose port speaks no TLS may be retried over http.

        As go-containerregistry (kbld, imgpkg) does: https first, then http for every
        registry under kbld's boolean `--registry-insecure`, and without any flag for
        local ones (`urls.local_registry`).
        """
        if urlsplit(url).scheme != "https":
            return False
        host = urls.host_of(url)
        return self.settings.insecure_all or urls.local_registry(host)

    @asynccontextmanager
    async def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        scopes: tuple[Scope, ...] = (),
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        ok: Collection[int] = (200,),
        retry: bool = True,
        read_limit: int | None = None,
    ) -> AsyncIterator[Response]:
        """
        Send a request to a registry and yield the response once its status is in `ok`.

        Replayable requests (no body or a bytes body) are retried on temporary failures
        with the host's shared backoff; a streamed body is sent once and the caller
        retries the whole operation from a fresh source.

        Args:
            method: HTTP method.
            url: Absolute URL on the registry's API host.
            what: What this request does, for error messages ("pushing manifest X").
            scopes: Token scopes the request needs.
            headers: Extra headers.
            body: Nothing, bytes, or an async iterable of bytes (give Content-Length).
            ok: Statuses handed to the caller; others raise.
            retry: Whether temporary failures may be retried here.
            read_limit: Read the whole body (at most this many bytes) before yielding,
                so that a body that breaks or crawls is retried like a failed request.

        Raises:
            AuthError, NotFound, RegistryError: The registry refused.
            TransportError: The network failed.
            UnsafeRedirect: A redirect we refuse to follow.
        """
        host = urls.host_of(url)
        async with self.hosts.hold([host]):
            # Every connection made for this request (hops, token realm) is on behalf of
            # the registry `url` is on; the guard judges each by that registry.
            with self._guard.acting_for(url):
                resp, read = await self._obtain(
                    method, url, what, scopes, headers, body, ok, retry, read_limit
                )
            try:
                yield Response(resp, self.settings.chunk_size, self.settings.progress, read)
            except BaseException:
                # The body may be abandoned half-read: its connection cannot serve
                # another request, so it is closed rather than returned to the pool.
                resp.close()
                raise
            else:
                resp.release()
            finally:
                await _settled(resp)

    async def _obtain(
        self,
        method: str,
        url: str,
        what: str,
        scopes: tuple[Scope, ...],
        headers: Mapping[str, str] | None,
        body: Body,
        ok: Collection[int],
        retry: bool,
        read_limit: int | None,
    ) -> tuple[aiohttp.ClientResponse, bytes | None]:
        host = urls.host_of(url)
        state = self.hosts[host]
        policy = self.settings.retry
        replayable = body is None or isinstance(body, bytes)
        started = time.monotonic()
        attempt = 0
        # Docker Hub counts manifest GETs (not HEADs, not blobs) against its allowance.
        pull = method == "GET" and "/manifests/" in url
        while True:
            await state.wait_turn()
            if pull and state.pulls_exhausted:
                # No pull is left (a 429 with the same news included): the allowance
                # comes back in hours, and every refused pull may count against it too.
                raise _pulls_exhausted(state, what)
            state.requests += 1
            sent_at = time.monotonic()
            try:
                resp = await self._send(method, url, what, scopes, headers, body)
                state.observe(PullAllowance.from_headers(resp.headers))
                if resp.status in ok:
                    state.answered(sent_at)
                    read = None
                    if read_limit is not None:
                        try:
                            read = await _read_capped(
                                resp, read_limit, what=what, progress=self.settings.progress
                            )
                        except BaseException:
                            resp.close()
                            raise
                    return resp, read
                error: RelocatorError = await _error_from(resp, what, self.settings.progress)
            except (TransportError, RegistryError) as exc:
                error = exc
            if isinstance(error, RegistryError) and error.status == 429:
                state.throttled += 1
                state.limiter.throttle()
            attempt += 1
            if (
                not (retry and replayable and error.temporary)
                or attempt > policy.attempts
                or time.monotonic() - started > policy.budget
            ):
                raise error
            delay = policy.delay(attempt, error)
            if isinstance(error, RegistryError) and error.retry_after is not None:
                state.back_off(delay)
            state.retrying(str(error).replace("\n", " "), delay)
            log.debug("retrying %s in %.1fs after: %s", what, delay, error)
            await asyncio.sleep(delay)

    async def _send(
        self,
        method: str,
        url: str,
        what: str,
        scopes: tuple[Scope, ...],
        headers: Mapping[str, str] | None,
        body: Body,
    ) -> aiohttp.ClientResponse:
        """One exchange, with at most one round of authentication."""
        host = urls.host_of(url)
        base = CIMultiDict(
            {"User-Agent": self.settings.user_agent, "Accept-Encoding": "identity"}
        )
        base.update(headers or {})
        replayable = body is None or isinstance(body, bytes)
        if not replayable and host not in self._challenges:
            # A streamed body cannot be sent twice, so learn the auth scheme first.
            await self._ping(host, url)
        authorization = await self._authorization(host, scopes, refresh=False)
        resp = await self._exchange(method, url, base, authorization, body)
        if resp.status != 401 or not replayable or urls.origin(str(resp.url)) != urls.origin(url):
            return resp
        challenge = pick_challenge(parse_challenges(resp.headers.get("WWW-Authenticate", "")))
        resp.release()
        self._challenges[host] = challenge
        authorization = await self._authorization(host, scopes, refresh=True)
        if authorization is None:
            credential = await self._credential(host, scopes)
            raise AuthError(
                f"{what}: {host} requires authentication",
                host=host,
                status=401,
                hint=_login_hint(host, credential),
            )
        return await self._exchange(method, url, base, authorization, body)

    async def _ping(self, host: str, url: str) -> None:
        base = url.split("/v2/", 1)[0] + "/v2/"
        headers = CIMultiDict(
            {"User-Agent": self.settings.user_agent, "Accept-Encoding": "identity"}
        )
        resp = await self._exchange("GET", base, headers, None, None)
        challenge = None
        if resp.status == 401:
            challenge = pick_challenge(parse_challenges(resp.headers.get("WWW-Authenticate", "")))
        resp.release()
        self._challenges[host] = challenge

    async def _exchange(
        self,
        method: str,
        url: str,
        headers: CIMultiDict[str],
        authorization: str | None,
        body: Body,
    ) -> aiohttp.ClientResponse:
        """Send one request, following redirects of GET/HEAD by our rules."""
        session = self._session_now()
        start_origin = urls.origin(url)
        hdrs = CIMultiDict(headers)
        if authorization is not None:
            hdrs["Authorization"] = authorization
        for _ in range(MAX_REDIRECTS + 1):
            # Every exchange counts against the host's rate: retries, auth rounds, hops.
            await self.hosts.pace(urls.host_of(url))
            # aiohttp warns (a ResourceWarning, an error under `-W error`) that a bytes
            # body over 1 MiB may block the loop, and a manifest may be 4 MiB; a fresh
            # BytesIO per exchange sends the same bytes and keeps the request replayable.
            data = io.BytesIO(body) if isinstance(body, bytes) and len(body) > _BIG_BYTES else body
            self._guard.check_url(url)
            try:
                async with self._headers_deadline(method, url):
                    resp = await session.request(
                        method,
                        url,
                        headers=hdrs,
                        data=data,
                        allow_redirects=False,
                        proxy=self._proxy_for(url),
                        ssl=self._ssl_for(url),
                    )
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.debug("%s %s failed: %s", method, urls.redact(url), type(exc).__name__)
                if _NO_TLS in str(exc) and self._may_fall_back(url):
                    # A port that speaks no TLS is asked again over http, and so is
                    # every later request to that host (as go-containerregistry does).
                    self._fell_back.add(urls.host_of(url))
                    url = "http" + url[len("https"):]
                    start_origin = urls.origin(url)
                    continue
                raise _network_error(exc, urls.host_of(url), method) from None
            # Only the method, the redacted URL and the status: headers carry secrets.
            log.debug("%s %s -> %d", method, urls.redact(url), resp.status)
            if resp.status not in _REDIRECTS or method not in ("GET", "HEAD"):
                return resp
            location = resp.headers.get("Location")
            resp.release()
            if not location:
                raise UnsafeRedirect(f"{urls.redact(url)} redirected without a Location")
            url = urls.follow(url, location, insecure_hosts=self.http_hosts())
            if urls.origin(url) != start_origin:
                # Credentials never cross a host boundary, and once dropped they stay
                # dropped even if a later hop comes back (Go CVE-2024-45336).
                hdrs.popall("Authorization", None)
                hdrs.popall("Cookie", None)
        raise UnsafeRedirect(f"more than {MAX_REDIRECTS} redirects from {urls.redact(url)}")

    async def _authorization(
        self, host: str, scopes: tuple[Scope, ...], *, refresh: bool
    ) -> str | None:
        challenge = self._challenges.get(host)
        if challenge is None:
            return None
        credential = await self._credential(host, scopes)
        if challenge.scheme == "basic":
            if credential.username is None:
                return None
            return "Basic " + redaction.remember_basic(credential.username, credential.password)
        if credential.registry_token:
            redaction.remember(credential.registry_token)
            if not header_safe(credential.registry_token):
                raise AuthError(
                    f"the registry token for {host} from {credential.source} is not a valid "
                    "header value (control characters or spaces)",
                    host=host,
                    status=0,
                )
            return f"Bearer {credential.registry_token}"
        scopes = scopes or ()
        key = self._tokens.key(host, scopes)
        if refresh:
            self._tokens.drop(key)
        token = self._tokens.get(key)
        if token is None:
            token, lifetime = await self._fetch_token(host, challenge, scopes, credential)
            self._tokens.put(key, token, lifetime)
        return f"Bearer {token}"

    async def _credential(self, host: str, scopes: tuple[Scope, ...]) -> Credential:
        repository = scopes[0].repository if scopes else ""
        credential = await self.keychain.get(host, repository)
        # Every secret of a credential in use is hidden from output from now on, sent or
        # not: a registry may echo the password although only a token was sent.
        redaction.remember(credential.password, credential.identity_token,
                           credential.registry_token)
        return credential

    async def _fetch_token(
        self, host: str, challenge: Challenge, scopes: tuple[Scope, ...], credential: Credential
    ) -> tuple[str, float]:
        realm = challenge.realm
        if not realm:
            raise AuthError(f"{host} sent a Bearer challenge without realm", host=host, status=401)
        registry_url = f"{'http' if host in self.http_hosts() else 'https'}://{host}/"
        realm = token_realm(
            registry_url, realm, insecure_hosts=self.http_hosts(), guard=self._guard
        )
        service = challenge.params.get("service", "")
        scope_values = [str(s) for s in scopes]
        # A scope the registry named in its challenge (e.g. insufficient_scope) is asked too.
        if challenge.params.get("scope") and challenge.params["scope"] not in scope_values:
            scope_values.append(challenge.params["scope"])
        headers = CIMultiDict({"User-Agent": self.settings.user_agent})
        session = self._session_now()
        try:
            if credential.identity_token:
                redaction.remember(credential.identity_token)
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": credential.identity_token,
                    "service": service,
                    "client_id": "relocator",
                    "scope": " ".join(scope_values),
                }
                resp = await session.post(
                    realm, data=form, headers=headers, allow_redirects=False,
                    proxy=self._proxy_for(realm),
                    ssl=self._ssl_for(realm),
                    timeout=self._token_timeout(),
                )
            else:
                query = [("service", service)] + [("scope", s) for s in scope_values]
                if credential.username is not None:
                    headers["Authorization"] = "Basic " + redaction.remember_basic(
                        credential.username, credential.password
                    )
                resp = await session.get(
                    realm, params=query, headers=headers, allow_redirects=False,
                    proxy=self._proxy_for(realm),
                    ssl=self._ssl_for(realm),
                    timeout=self._token_timeout(),
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _network_error(exc, urls.host_of(realm), "token request") from None
        try:
            if resp.status in TEMPORARY_STATUS:
                # A token service hiccup is not a login problem: retried like any 5xx.
                raise RegistryError(
                    f"token endpoint {urls.redact(realm)} answered HTTP {resp.status}",
                    host=host,
                    status=resp.status,
                    retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                )
            if resp.status != 200:
                raise AuthError(
                    f"token endpoint {urls.redact(realm)} refused access to "
                    f"{' '.join(scope_values) or host} (HTTP {resp.status})",
                    host=host,
                    status=resp.status if resp.status in (401, 403) else 401,
                    hint=_login_hint(host, credential),
                )
            body = await _read_capped(resp, MAX_TOKEN_BODY, what=f"token from {host}")
        finally:
            resp.release()
        return parse_token_response(body, host=host)

    def _timeouts(self, total: float | None = None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=total,
            # aiohttp's `connect` covers the wait for a pooled connection too.
            connect=self.settings.pool_timeout + self.settings.connect_timeout,
            sock_connect=self.settings.connect_timeout,
            sock_read=self.settings.read_timeout,
        )

    def _token_timeout(self) -> aiohttp.ClientTimeout:
        # A token exchange is small: all of it, body included, within the response
        # timeout, so a trickling token service cannot hold the run.
        return self._timeouts(total=self.settings.pool_timeout + self.settings.response_timeout)

    def _headers_deadline(self, method: str, url: str) -> AbstractAsyncContextManager[None]:
        """
        GET and HEAD get their headers within `response_timeout`; other methods send a
        body first (a streamed upload takes as long as it takes) and a registry may take
        long to commit it, so only the stall and progress rules bound them.
        """
        if method not in ("GET", "HEAD"):
            return nullcontext()
        return headers_within(self.settings.response_timeout, urls.host_of(url), method)

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = GuardedConnector(
                self._guard,
                resolver=StaticResolver(self.settings.static_hosts)
                if self.settings.static_hosts
                else None,
                # Backstop only: the per-host limiter decides; a transfer within one
                # registry holds two connections, hence the factor.
                limit_per_host=2 * max(self.settings.concurrency,
                                       *self.settings.per_host_concurrency.values(), 1) + 4,
                limit=0,
                ttl_dns_cache=300,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeouts(),
                auto_decompress=False,
                # Proxies are read below; .netrc credentials must never be injected.
                trust_env=False,
                read_bufsize=self.settings.chunk_size,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    def _ssl_for(self, url: str) -> ssl.SSLContext | bool:
        if not url.startswith("https:"):
            return True  # aiohttp's default; unused for plain http
        if self._ssl is None:
            self._ssl = _ssl_context(self.settings)
        return self._ssl

    def _proxy_for(self, url: str) -> str | None:
        if not self.settings.use_env_proxy:
            return None
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        # Reading the environment costs more than a small request; the answer for a
        # host does not change during a run.
        if key not in self._proxies:
            bypass = urllib.request.proxy_bypass(key[1])
            self._proxies[key] = None if bypass else urllib.request.getproxies().get(key[0])
        return self._proxies[key]


def _ssl_context(settings: TransportSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    for path in settings.ca_cert_paths:
        # A CA file is the user's input: a wrong one is a bad flag (exit 3), not a
        # network failure.
        try:
            context.load_verify_locations(cafile=str(path))
        except ssl.SSLError:
            raise InputError(
                f"CA certificate file {path} holds no PEM certificate",
                hint="--registry-ca-cert-path takes a PEM file (-----BEGIN CERTIFICATE-----)",
            ) from None
        except OSError as exc:
            raise InputError(
                f"cannot read CA certificate file {path}: {exc.strerror or 'unreadable'}"
            ) from None
    if not settings.verify_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _read_capped(
    resp: aiohttp.ClientResponse, limit: int, *, what: str, progress: ProgressRule | None = None
) -> bytes:
    host = urls.host_of(str(resp.url))
    length = resp.content_length
    if length is not None and length > limit:
        raise LimitExceeded(f"{what}: {host} sent {length} bytes, more than the {limit} allowed")
    content = resp.content
    # The token request has its own total timeout instead (`_token_timeout`).
    watch = progress.watch(host, what) if progress is not None else None

    async def read(count: int) -> bytes:
        if watch is None:
            return await content.read(count)
        return await watch.read(lambda: content.read(count))

    try:
        data = await read(limit + 1)
        while len(data) <= limit and not content.at_eof():
            more = await read(limit + 1 - len(data))
            if not more:
                break
            data += more
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _network_error(exc, host, what) from None
    if len(data) > limit:
        raise LimitExceeded(f"{what}: {host} sent more than the {limit} bytes allowed")
    encoding = resp.headers.get("Content-Encoding", "").lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        data = _decode(data, encoding, limit, what, host)
    return data


async def _settled(resp: aiohttp.ClientResponse) -> None:
    """
    Wait for the task that sends a streamed request body to end (releasing or closing
    the response cancelled it): until then it is still reading the body's stream, which
    its owner is about to close. Shielded, so a cancelled caller still waits the moment
    it takes.
    """
    with anyio.CancelScope(shield=True):
        await resp.wait_for_close()


def _decode(data: bytes, encoding: str, limit: int, what: str, host: str) -> bytes:
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    decoder = zlib.decompressobj(wbits)
    try:
        out = decoder.decompress(data, limit + 1)
    except zlib.error:
        raise TransportError(
            f"{what}: {host} sent a body that is not valid {encoding}", host=host, temporary=True
        ) from None
    if len(out) > limit or decoder.unconsumed_tail:
        raise LimitExceeded(f"{what}: {host} sent more than the {limit} bytes allowed (decoded)")
    if data and not decoder.eof:
        # A stream cut short decodes to a silently truncated document otherwise.
        raise TransportError(
            f"{what}: {host} sent a truncated {encoding} body", host=host, temporary=True
        )
    return out


async def _error_from(
    resp: aiohttp.ClientResponse, what: str, progress: ProgressRule
) -> RegistryError | TransportError:
    """
    Turn an unexpected status into an error, reading at most `MAX_ERROR_BODY`; a TLS
    server's answer to plain http becomes the `TransportError` that says so.
    """
    host = urls.host_of(str(resp.url))
    status = resp.status
    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    try:
        body = (
            await _read_capped(resp, MAX_ERROR_BODY, what=what, progress=progress)
            if status != 304 else b""
        )
    except (LimitExceeded, TransportError):
        body = b""
    finally:
        resp.release()
        await _settled(resp)
    if status == 400 and speaks_tls(body[:1024].decode("utf-8", "replace")):
        return http_to_tls(host)
    codes, detail = _parse_errors(body)
    text = f"{what}: {host} answered HTTP {status}"
    if codes:
        text += f" {', '.join(codes)}"
    if detail:
        text += f": {detail}"
    kwargs: dict[str, Any] = {"host": host, "status": status, "codes": codes}
    if status in (401, 403):
        return AuthError(text, hint=f"check the credentials for {host} and their access", **kwargs)
    if status == 404:
        return NotFound(text, **kwargs)
    return RegistryError(text, retry_after=retry_after, **kwargs)


def _parse_errors(body: bytes) -> tuple[tuple[str, ...], str]:
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("errors"), list):
        return (), ""
    codes, messages = [], []
    for item in doc["errors"][:5]:
        if isinstance(item, dict):
            if isinstance(item.get("code"), str):
                codes.append(item["code"][:64])
            if isinstance(item.get("message"), str):
                messages.append(item["message"][:200])
    return tuple(codes), "; ".join(messages)


def _pulls_exhausted(state: HostState, what: str) -> PullLimitReached:
    pulls = state.pulls
    window = window_text(pulls.window if pulls is not None else None)
    limit = pulls.limit if pulls is not None else 0
    return PullLimitReached(
        f"{what}: {state.host} pull limit reached (0 of {limit} pulls left in its "
        f"{window} window); stopped instead of sending more pulls",
        host=state.host,
        status=429,
        hint=f"run again when the {window} window has made room, or log in to an account "
        "with a higher limit",
    )


def _login_hint(host: str, credential: Credential) -> str:
    if credential.anonymous:
        return (
            f"no credentials found for {host}: run `docker login {host}` or set "
            "RELOCATOR_REGISTRY_HOSTNAME_0/_USERNAME_0/_PASSWORD_0"
        )
    return f"the credentials from {credential.source} were refused by {host}"
