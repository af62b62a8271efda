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
import base64
import io
import json
import logging
import ssl
import time
import urllib.request
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from relocator import __version__
from relocator.errors import (
    TEMPORARY_STATUS,
    AuthError,
    LimitExceeded,
    NotFound,
    RegistryError,
    RelocatorError,
    TransportError,
    UnsafeRedirect,
)
from relocator.transport import urls
from relocator.transport.auth import (
    MAX_TOKEN_BODY,
    Challenge,
    Scope,
    TokenCache,
    parse_challenges,
    parse_token_response,
    pick_challenge,
)
from relocator.transport.credentials import Credential, Keychain
from relocator.transport.hosts import Hosts
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
    #: Seconds a response may stall without a byte arriving; a healthy but slow transfer
    #: is never cut, since there is no total timeout.
    read_timeout: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Largest piece of a body handed over at once (1 MiB): big enough that per-chunk
    #: overhead is negligible, small enough that memory stays flat.
    chunk_size: int = 1024 * 1024
    user_agent: str = f"relocator/{__version__}"
    #: Honour HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment.
    use_env_proxy: bool = True


class Response:
    """A response whose status was accepted; the body is read with caps or streamed."""

    __slots__ = ("_chunk", "_resp", "headers", "status", "url")

    def __init__(self, resp: aiohttp.ClientResponse, chunk_size: int) -> None:
        self._resp = resp
        self._chunk = chunk_size
        self.status: int = resp.status
        self.headers: CIMultiDictProxy[str] = resp.headers
        self.url: str = str(resp.url)

    async def read(self, limit: int, *, what: str) -> bytes:
        """
        The whole body, refusing more than `limit` bytes (decoded, if the server
        compressed it despite our `Accept-Encoding: identity`).

        Raises:
            LimitExceeded: The body (or its decoded form) is larger than `limit`.
            TransportError: The connection broke while reading.
        """
        return await _read_capped(self._resp, limit, what=what)

    async def chunks(self) -> AsyncIterator[bytes]:
        """
        The raw body in pieces, never decompressed (a blob's digest is over its bytes).

        Raises:
            TransportError: The connection broke or stalled (temporary: the caller may
                resume with a `Range` request).
        """
        host = urls.host_of(self.url)
        try:
            async for chunk in self._resp.content.iter_chunked(self._chunk):
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

        Raises:
            AuthError, NotFound, RegistryError: The registry refused.
            TransportError: The network failed.
            UnsafeRedirect: A redirect we refuse to follow.
        """
        host = urls.host_of(url)
        async with self.hosts.hold([host]):
            resp = await self._obtain(method, url, what, scopes, headers, body, ok, retry)
            try:
                yield Response(resp, self.settings.chunk_size)
            finally:
                resp.release()

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
    ) -> aiohttp.ClientResponse:
        host = urls.host_of(url)
        state = self.hosts[host]
        policy = self.settings.retry
        replayable = body is None or isinstance(body, bytes)
        started = time.monotonic()
        attempt = 0
        while True:
            await state.wait_turn()
            state.requests += 1
            try:
                resp = await self._send(method, url, what, scopes, headers, body)
                if resp.status in ok:
                    state.limiter.succeeded()
                    return resp
                error: RelocatorError = await _error_from(resp, what)
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
            state.retries += 1
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
            try:
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
            pair = f"{credential.username}:{credential.password or ''}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        if credential.registry_token:
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
        return await self.keychain.get(host, repository)

    async def _fetch_token(
        self, host: str, challenge: Challenge, scopes: tuple[Scope, ...], credential: Credential
    ) -> tuple[str, float]:
        realm = challenge.realm
        if not realm:
            raise AuthError(f"{host} sent a Bearer challenge without realm", host=host, status=401)
        registry_url = f"{'http' if host in self.http_hosts() else 'https'}://{host}/"
        realm = self._check_realm(host, registry_url, realm)
        service = challenge.params.get("service", "")
        scope_values = [str(s) for s in scopes]
        # A scope the registry named in its challenge (e.g. insufficient_scope) is asked too.
        if challenge.params.get("scope") and challenge.params["scope"] not in scope_values:
            scope_values.append(challenge.params["scope"])
        headers = CIMultiDict({"User-Agent": self.settings.user_agent})
        session = self._session_now()
        try:
            if credential.identity_token:
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
                )
            else:
                query = [("service", service)] + [("scope", s) for s in scope_values]
                if credential.username is not None:
                    pair = f"{credential.username}:{credential.password or ''}".encode()
                    headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
                resp = await session.get(
                    realm, params=query, headers=headers, allow_redirects=False,
                    proxy=self._proxy_for(realm),
                    ssl=self._ssl_for(realm),
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

    def _check_realm(self, host: str, registry_url: str, realm: str) -> str:
        """A token realm must be http(s), and https unless the registry itself is plain."""
        target = urls.follow(registry_url, realm, insecure_hosts=self.http_hosts())
        if target.startswith("http://") and not registry_url.startswith("http://"):
            raise UnsafeRedirect(f"{host} asks for tokens over plain http: {urls.redact(target)}")
        return target

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
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
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=self.settings.connect_timeout,
                    sock_read=self.settings.read_timeout,
                ),
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
        try:
            context.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(
                f"cannot load CA certificate {path}: {exc}", host="", temporary=False
            ) from None
    if not settings.verify_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _read_capped(resp: aiohttp.ClientResponse, limit: int, *, what: str) -> bytes:
    host = urls.host_of(str(resp.url))
    length = resp.content_length
    if length is not None and length > limit:
        raise LimitExceeded(f"{what}: {host} sent {length} bytes, more than the {limit} allowed")
    try:
        data = await resp.content.read(limit + 1)
        while len(data) <= limit and not resp.content.at_eof():
            more = await resp.content.read(limit + 1 - len(data))
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


async def _error_from(resp: aiohttp.ClientResponse, what: str) -> RegistryError:
    """Turn an unexpected status into an error, reading at most `MAX_ERROR_BODY`."""
    host = urls.host_of(str(resp.url))
    status = resp.status
    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    try:
        body = await _read_capped(resp, MAX_ERROR_BODY, what=what) if status != 304 else b""
    except (LimitExceeded, TransportError):
        body = b""
    finally:
        resp.release()
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


def _network_error(exc: BaseException, host: str, what: str) -> TransportError:
    if _NO_TLS in str(exc):
        return TransportError(
            f"{host} does not answer https (no TLS on that port)",
            host=host,
            temporary=False,
            hint=f"for a plain-http registry pass --registry-insecure {host}",
        )
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return TransportError(
            f"TLS verification failed for {host}: {_short(exc)}",
            host=host,
            temporary=False,
            hint="pass --registry-ca-cert-path with the registry's CA, "
            "or --registry-verify-certs=false to skip verification",
        )
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return TransportError(
            f"cannot resolve registry host {host}", host=host, temporary=False,
            hint="check the registry name in the image reference",
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransportError(f"cannot connect to {host}: {_short(exc)}", host=host, temporary=True)
    if isinstance(exc, aiohttp.InvalidURL):
        return TransportError(f"invalid URL for {host}", host=host, temporary=False)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return TransportError(f"{what} from {host} timed out", host=host, temporary=True)
    return TransportError(f"{what} from {host} failed: {_short(exc)}", host=host, temporary=True)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _login_hint(host: str, credential: Credential) -> str:
    if credential.anonymous:
        return (
            f"no credentials found for {host}: run `docker login {host}` or set "
            "RELOCATOR_REGISTRY_HOSTNAME_0/_USERNAME_0/_PASSWORD_0"
        )
    return f"the credentials from {credential.source} were refused by {host}"
