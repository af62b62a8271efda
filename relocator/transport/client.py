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
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Self
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict

from relocator import redaction
from relocator.errors import (
    AuthError,
    BadToken,
    RegistryError,
    RelocatorError,
    TransportError,
    UnsafeRedirect,
)
from relocator.transport import urls
from relocator.transport.auth import (
    Challenge,
    Scope,
    TokenCache,
    header_safe,
    parse_challenges,
    pick_challenge,
)
from relocator.transport.credentials import Credential, Keychain
from relocator.transport.failures import network_error as _network_error
from relocator.transport.guard import Guard
from relocator.transport.hosts import Hosts
from relocator.transport.ratelimit import PullAllowance
from relocator.transport.response import Response, error_from, read_capped, settled
from relocator.transport.settings import TransportSettings
from relocator.transport.tokens import fetch_token, login_hint
from relocator.transport.wire import Wire

log = logging.getLogger(__name__)

# More hops than any CDN setup needs; a loop ends here with a clear error.
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Bytes bodies larger than aiohttp's 1 MiB `TOO_LARGE_BYTES_BODY` go as a stream.
_BIG_BYTES = 1024 * 1024
Body = bytes | AsyncIterable[bytes] | None
# OpenSSL's error for a peer that answered the TLS hello with something else (plain http).
_NO_TLS = "WRONG_VERSION_NUMBER"


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
            settings.limits, per_host_rps=settings.per_host_rps, retry=settings.retry
        )
        self._challenges: dict[str, Challenge | None] = {}
        self._tokens = TokenCache()
        self._guard = Guard(settings.internal_address)
        self._wire = Wire(settings, self._guard)
        # Hosts whose port answered https without TLS and that may use http instead.
        self._fell_back: set[str] = set()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if await self._wire.aclose():
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
            response = Response(
                resp, self.settings.progress, read, moved=self.hosts[host].throughput()
            )
            try:
                yield response
            except BaseException:
                # The body may be abandoned half-read: its connection cannot serve
                # another request, so it is closed rather than returned to the pool.
                resp.close()
                raise
            else:
                resp.release()
                if method == "GET":
                    # The body arrived by now: its bytes are throughput from now, not
                    # from when its headers came (a burst of them is no speed).
                    streamed = response.streamed
                    self.hosts[host].delivered(0 if streamed else resp.content_length or 0)
            finally:
                await settled(resp)

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
        attempts = self.hosts.retry.current_attempts()
        replayable = body is None or isinstance(body, bytes)
        moved = state.throughput()
        if moved is not None and body is not None and not isinstance(body, bytes):
            # Sent once (not replayable): its pieces count as they go.
            body = _counting(body, moved)
        # Docker Hub counts manifest GETs (not HEADs, not blobs) against its allowance.
        pull = method == "GET" and "/manifests/" in url
        while True:
            await state.wait_turn()
            if pull and state.pulls_exhausted:
                # No pull is left (a 429 with the same news included): the allowance
                # comes back in hours, and every refused pull may count against it too.
                raise state.pulls_exhausted_error(what)
            state.requests += 1
            sent_at = time.monotonic()
            try:
                resp = await self._send(method, url, what, scopes, headers, body)
                state.observe(PullAllowance.from_headers(resp.headers))
                if resp.status in ok:
                    # A streamed body's answer waits for the whole body: its time is
                    # no latency (see `gradient`), though its bytes are throughput.
                    state.answered(
                        sent_at, len(body) if isinstance(body, bytes) else 0,
                        uploaded=not replayable,
                    )
                    read = None
                    if read_limit is not None:
                        try:
                            read = await read_capped(
                                resp, read_limit, what=what, progress=self.settings.progress
                            )
                        except BaseException:
                            resp.close()
                            raise
                    return resp, read
                error: RelocatorError = await error_from(resp, what, self.settings.progress)
            except (TransportError, RegistryError) as exc:
                error = exc
            if isinstance(error, RegistryError) and error.status == 429:
                state.throttled += 1
                state.limiter.throttle()
            elif (isinstance(error, RegistryError) and error.status == 503) or (
                isinstance(error, TransportError) and error.temporary
            ):
                state.overloaded()
            if not (retry and replayable):
                raise error
            # Spends an attempt of the operation this request belongs to (a blob
            # transfer), or of its own; raises the error once they are spent.
            delay = attempts.retry(error)
            if isinstance(error, RegistryError) and error.retry_after is not None:
                state.back_off(delay)
            state.retrying(str(error).replace("\n", " "), delay)
            log.debug("retrying %s in %.1fs after: %s", what, delay, error)
            await asyncio.sleep(delay)

    def _session_now(self) -> aiohttp.ClientSession:
        """The run's session (built on first use)."""
        return self._wire.session()

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
                hint=login_hint(host, credential),
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
        session = self._wire.session()
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
                async with self._wire.headers_deadline(method, url):
                    resp = await session.request(
                        method,
                        url,
                        headers=hdrs,
                        data=data,
                        allow_redirects=False,
                        proxy=self._wire.proxy_for(url),
                        ssl=self._wire.ssl_for(url),
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
                raise BadToken(
                    f"the registry token for {host} from {credential.source} is not a valid "
                    "header value (control characters or spaces)",
                    host=host,
                )
            return f"Bearer {credential.registry_token}"
        scopes = scopes or ()
        key = self._tokens.key(host, scopes)
        if refresh:
            self._tokens.drop(key)
        token = self._tokens.get(key)
        if token is None:
            token, lifetime = await fetch_token(
                self._wire, self._guard, host, challenge, scopes, credential,
                http_hosts=self.http_hosts(),
            )
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


async def _counting(
    body: AsyncIterable[bytes], moved: Callable[[int], None]
) -> AsyncIterator[bytes]:
    """`body`, telling `moved` of each piece as it is sent (the host's throughput)."""
    async for piece in body:
        moved(len(piece))
        yield piece
