"""
A fault-injecting HTTP proxy to put in front of a test registry.

`FaultProxy` listens on 127.0.0.1 and forwards every request to one upstream registry,
except where a `Rule` says otherwise: per request it can cut the connection after N
bytes, stall or pace the body, answer 429 or 5xx a number of times, send a short, long
or corrupted body, rewrite headers, or redirect to a second host, the "CDN", which
records the headers it receives. Everything both hosts see is logged, in order, with
the headers as received and the body bytes sent, so tests assert on the wire.

It runs in a background thread with its own event loop, so synchronous tests, async
tests and the in-process CLI (which runs its own loop) can all use it:

    with FaultProxy(registry.url) as proxy:
        proxy.add(Forward(cut_after=1024), method="GET", path=r"/blobs/", times=1)
        ... relocate from proxy.host ...
        assert 2 == len(proxy.requests(method="GET", path=r"/blobs/"))

Like the rest of `tests.support`, it never imports relocator's transport, stores,
engine or CLI: it is what judges them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

if TYPE_CHECKING:
    from tests.support.registry import TLSFiles

# Bodies are relayed 64 KiB at a time: small enough that "cut after N bytes" and
# pacing land close to where they are asked, big enough to move a 2 GiB layer quickly.
_CHUNK = 64 * 1024
# Seconds to start or stop the proxy's thread; far more than it ever takes.
_THREAD_TIMEOUT = 10.0
# Seconds given to handlers still running at shutdown (a stalled body) before they are
# cancelled.
_SHUTDOWN_TIMEOUT = 0.5
# Loop turns given to connections closed at shutdown to finish closing.
_CLOSE_TURNS = 3
# Seconds between two checks of `wait_until`.
_POLL_INTERVAL = 0.01
# Seconds `requests` waits for handlers that are still logging the end of a response.
_SETTLE_TIMEOUT = 5.0
# Headers that describe one connection, not the message: never relayed (RFC 9110 7.6.1).
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
     "trailer", "transfer-encoding", "upgrade"}
)
#: The query a CDN redirect carries, like a presigned S3 URL: tests check that neither
#: it nor the credential in it ever shows up in relocator's output.
PRESIGNED_QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDPROXYSECRET%2F20250101"
    "&X-Amz-Signature=5ec2e75ec2e75ec2e7proxysignature"
)

Server = Literal["proxy", "cdn"]


# --- rules and actions ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Respond:
    """
    Answer without asking the registry.

    `body` is bytes, or a function returning a fresh iterator of chunks (a synthetic
    blob of `size` bytes that never exists anywhere in full).
    """

    status: int = 200
    body: bytes | Callable[[], Iterator[bytes]] = b""
    #: Length of a body given as a function (its Content-Length).
    size: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Answer `Range: bytes=A-B` (or `A-`) requests with a 206 of the bytes this
    #: function gives for `(A, B + 1)`: a synthetic blob that can be read from anywhere.
    ranges: Callable[[int, int], Iterator[bytes]] | None = None
    #: Answer after reading this many bytes of the request body, the rest unread (a
    #: server refusing an upload early, as with 413); None: the whole body first.
    early: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Forward:
    """
    Forward to the registry, changing the request or the answer on the way.

    Body faults count bytes of the body as this proxy sends it (after `replace_body`,
    `corrupt_at`, `truncate_by` and `extend_by` are applied).
    """

    #: Close the connection (cleanly, FIN) after this many body bytes: to the client
    #: the body simply stops, as after a reset.
    cut_after: int | None = None
    #: Stop sending after this many body bytes until `stall_for` seconds passed or
    #: `FaultProxy.release` was called (None: until released or the proxy stops).
    stall_after: int | None = None
    stall_for: float | None = None
    #: Send the body `pace[0]` bytes at a time with `pace[1]` seconds between pieces.
    pace: tuple[int, float] | None = None
    #: Send the status line and headers `pace_headers[0]` bytes at a time with
    #: `pace_headers[1]` seconds between pieces (written raw, with `Connection: close`),
    #: then the body at once, and close the connection.
    pace_headers: tuple[int, float] | None = None
    #: Flip every bit of the byte at this offset.
    corrupt_at: int | None = None
    #: Send this many bytes fewer than the registry did (Content-Length agrees).
    truncate_by: int = 0
    #: Send these bytes after the registry's body (Content-Length agrees).
    extend_by: bytes = b""
    #: Send this body instead of the registry's, with the registry's status and headers.
    replace_body: bytes | None = None
    #: No Content-Length: the body goes chunked, so only its end tells its length.
    chunked: bool = False
    #: Response headers to set (replacing the registry's).
    set_headers: Mapping[str, str] = field(default_factory=dict)
    #: Response headers to add beside the registry's (duplicates included).
    add_headers: Sequence[tuple[str, str]] = ()
    #: Response headers of the registry's to leave out.
    drop_headers: Sequence[str] = ()
    #: Request headers removed before forwarding (e.g. `Range`, so the registry
    #: answers 200 with the whole body).
    drop_request_headers: Sequence[str] = ()
    #: Query parameters removed before forwarding (e.g. `mount` and `from`, so a mount
    #: request opens a plain upload session and is answered 202).
    drop_query: Sequence[str] = ()
    #: Move the start of a `Range: bytes=N-` request by this many bytes: the registry
    #: then answers 206 at another offset than the client asked for.
    shift_range: int = 0
    #: Rewrite the response's `Location`: `"cdn"` points it at the CDN host (same path
    #: and query), `"relative"` drops scheme and host.
    location: Literal["cdn", "relative"] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Redirect:
    """
    Redirect to the CDN, which serves the registry's answer to the original request.

    The CDN fetches from the registry with the original request's credentials itself,
    the way a presigned URL carries its authority: the client needs (and must send)
    none. Each CDN URL carries `PRESIGNED_QUERY`.
    """

    status: int = 307
    #: CDN URLs visited: 2 means the first CDN URL redirects once more within the CDN.
    hops: int = 1
    #: The last CDN hop answers 401 with a Bearer challenge whose realm is the CDN's
    #: own `/token`, instead of serving the body.
    challenge: bool = False
    #: Headers the CDN adds to the body it serves (e.g. `Content-Encoding: gzip`).
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The CDN's host as the `Location` writes it (another spelling of 127.0.0.1 such
    #: as `0x7f000001` or `[::ffff:127.0.0.1]`, or a name the client resolves there).
    cdn_host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reset:
    """Read up to `after` bytes of the request body, then close the connection unanswered."""

    after: int = 0


Action = Respond | Forward | Redirect | Reset


class Rule:
    """
    Which requests get an action: method, a regular expression searched in the path,
    optionally a request header that must be present, and how many times.

    Rules are tried in the order they were added; the first that matches and has uses
    left applies. A request no rule matches is forwarded unchanged.

    Args:
        action: What to do with a matching request.
        method: HTTP method, or None for any.
        path: Regular expression searched in the path.
        query: Regular expression searched in the raw query string.
        header: Only requests carrying this header (e.g. `"Range"`) match.
        times: The first `times` matching requests get the action; None: all of them.
        skip: Let this many matching requests through unchanged first.
    """

    def __init__(
        self,
        action: Action,
        *,
        method: str | None = None,
        path: str = "",
        query: str = "",
        header: str | None = None,
        times: int | None = None,
        skip: int = 0,
    ) -> None:
        self.action = action
        self.method = method
        self.path = re.compile(path)
        self.query = re.compile(query)
        self.header = header
        self.times = times
        self.skip = skip
        #: Requests this rule applied to so far.
        self.applied = 0
        self._seen = 0

    def __repr__(self) -> str:
        return (
            f"Rule({type(self.action).__name__}, method={self.method!r}, "
            f"path={self.path.pattern!r}, applied={self.applied})"
        )

    def _take(self, request: web.Request) -> bool:
        """Whether this rule applies to the request (counting it if so)."""
        if self.method is not None and self.method != request.method:
            return False
        if not self.path.search(request.path) or not self.query.search(request.query_string):
            return False
        headers = request.headers
        if self.header is not None and self.header not in headers:
            return False
        if self.times is not None and self.applied >= self.times:
            return False
        self._seen += 1
        if self._seen <= self.skip:
            return False
        self.applied += 1
        return True


# --- the log ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyRequest:
    """One request as the proxy or the CDN received and answered it."""

    server: Server
    method: str
    path: str
    #: The raw query string (empty when there is none).
    query: str
    #: Every header as received, in order.
    headers: tuple[tuple[str, str], ...]
    #: Status sent; 0 when the connection was closed without an answer.
    status: int
    #: Body bytes sent to the client.
    body_bytes: int
    #: Request body bytes received from the client (and relayed, when forwarded).
    request_bytes: int
    #: Whether the whole response went out (False: cut, reset, or the client left).
    complete: bool
    #: Order of arrival and of completion, on one counter shared by both hosts.
    started: int
    finished: int
    #: Repr of the rule that applied, if any.
    rule: str | None = None

    def header(self, name: str) -> str | None:
        """The first header called `name` (case-insensitive), or None."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    def header_values(self, name: str) -> list[str]:
        """Every header called `name` (case-insensitive)."""
        lowered = name.lower()
        return [v for k, v in self.headers if k.lower() == lowered]

    @property
    def target(self) -> str:
        """Path and query, as in the request line."""
        return f"{self.path}?{self.query}" if self.query else self.path


# --- the proxy --------------------------------------------------------------------


class FaultProxy:
    """
    The proxy and its CDN: construct, `start()` (or use as a context manager), `stop()`.

    Args:
        upstream: The registry's URL, `http(s)://127.0.0.1:PORT`.
        upstream_ssl: SSL context for an https upstream (without one, its certificate
            is not verified: the upstream is a local test registry).
        tls: Serve https to clients with these files (the CDN stays plain http unless
            `cdn_tls` is given too).
        cdn_tls: Serve the CDN over https with these files.
    """

    def __init__(
        self,
        upstream: str,
        *,
        upstream_ssl: ssl.SSLContext | None = None,
        tls: TLSFiles | None = None,
        cdn_tls: TLSFiles | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self._upstream_ssl = upstream_ssl
        self._tls = tls
        self._cdn_tls = cdn_tls
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._log: list[ProxyRequest] = []
        self._clock = itertools.count(1)
        self._in_flight: dict[Server, int] = {"proxy": 0, "cdn": 0}
        self._max_in_flight: dict[Server, int] = {"proxy": 0, "cdn": 0}
        self._stalled = 0
        self._stalls = 0
        # Handlers running (logged when they end), for `requests` to wait for.
        self._open = 0
        self._presigned: dict[str, tuple[str, str, CIMultiDict[str], Redirect]] = {}
        self._presign_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._release: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._session: aiohttp.ClientSession | None = None
        self._sockets: list[socket.socket] = []
        self.port = 0
        self.cdn_port = 0

    # -- addresses ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT` of the proxy, as image references name it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """`http(s)://127.0.0.1:PORT` of the proxy."""
        return f"{'https' if self._tls else 'http'}://{self.host}"

    @property
    def cdn_host(self) -> str:
        """`127.0.0.1:PORT` of the CDN."""
        return f"127.0.0.1:{self.cdn_port}"

    @property
    def cdn_url(self) -> str:
        """`http(s)://127.0.0.1:PORT` of the CDN."""
        return f"{'https' if self._cdn_tls else 'http'}://{self.cdn_host}"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """
        Start both hosts in a background thread; returns once they listen.

        Raises:
            RuntimeError: Already started, or the servers failed to start.
        """
        if self._thread is not None:
            raise RuntimeError("proxy already started")
        proxy_sock, cdn_sock = _listening_socket(), _listening_socket()
        self._sockets = [proxy_sock, cdn_sock]
        self.port = proxy_sock.getsockname()[1]
        self.cdn_port = cdn_sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        self._loop = loop
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve(proxy_sock, cdn_sock, started))
            except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises
                failure.append(exc)
            finally:
                started.set()
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="relocator-fault-proxy", daemon=True)
        self._thread.start()
        if not started.wait(_THREAD_TIMEOUT) or failure:
            self.stop()
            raise RuntimeError(f"fault proxy did not start: {failure[:1]}")
        return self

    def stop(self) -> None:
        """Stop both hosts (stalled bodies are cancelled) and join the thread; idempotent."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        self._thread = None
        if thread is not None and loop is not None and stopping is not None and thread.is_alive():
            loop.call_soon_threadsafe(stopping.set)
            thread.join(_THREAD_TIMEOUT)
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _serve(
        self, proxy_sock: socket.socket, cdn_sock: socket.socket, started: threading.Event
    ) -> None:
        self._release = asyncio.Event()
        self._stopping = asyncio.Event()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ssl=self._upstream_ssl or False),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=_THREAD_TIMEOUT),
            auto_decompress=False,
            # Relay the client's headers exactly: aiohttp must not add its own.
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
        )
        runners: list[web.AppRunner] = []
        try:
            for sock, handler, tls in (
                (proxy_sock, self._handle_proxy, self._tls),
                (cdn_sock, self._handle_cdn, self._cdn_tls),
            ):
                app = web.Application(client_max_size=0)
                app.router.add_route("*", "/{tail:.*}", handler)
                runner = web.AppRunner(
                    app,
                    access_log=None,
                    handler_cancellation=True,
                    shutdown_timeout=_SHUTDOWN_TIMEOUT,
                )
                await runner.setup()
                runners.append(runner)
                context = tls.server_ssl_context() if tls is not None else None
                await web.SockSite(runner, sock, ssl_context=context).start()
            started.set()
            await self._stopping.wait()
        finally:
            self._release.set()
            for runner in runners:
                await runner.cleanup()
            await self._session.close()
            # Connections closed just now finish closing when the loop next runs its
            # callbacks; without those turns their sockets outlive the loop and warn
            # (ResourceWarning) in whichever test the garbage collector runs next.
            for _ in range(_CLOSE_TURNS):
                await asyncio.sleep(0)

    # -- what tests use ----------------------------------------------------------------

    def add(
        self,
        action: Action,
        *,
        method: str | None = None,
        path: str = "",
        query: str = "",
        header: str | None = None,
        times: int | None = None,
        skip: int = 0,
    ) -> Rule:
        """
        Add a rule (see `Rule` for the arguments); returns it, so tests can read
        `applied`.
        """
        rule = Rule(
            action, method=method, path=path, query=query, header=header, times=times, skip=skip
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        """Forget every rule: everything is forwarded unchanged from now on."""
        with self._lock:
            self._rules.clear()

    def release(self) -> None:
        """Let every stalled body (now and later) continue."""
        loop, release = self._loop, self._release
        if loop is not None and release is not None and not loop.is_closed():
            loop.call_soon_threadsafe(release.set)

    def requests(
        self,
        *,
        server: Server | None = None,
        method: str | None = None,
        path: str | None = None,
        settle: bool = True,
    ) -> list[ProxyRequest]:
        """
        Finished requests in order of arrival, filtered by host, method and a regular
        expression searched in the path.

        A client may see a response complete a moment before its handler has logged
        it; with `settle` (the default) this waits (up to 5 s) until every handler not
        stalled has ended, so a test reading the log after its client finished sees
        every request. Pass `settle=False` to read while transfers run.
        """
        if settle:
            with contextlib.suppress(TimeoutError):
                self.wait_until(self._settled, timeout=_SETTLE_TIMEOUT)
        with self._lock:
            entries = sorted(self._log, key=lambda e: e.started)
        pattern = re.compile(path) if path is not None else None
        return [
            e
            for e in entries
            if (server is None or e.server == server)
            and (method is None or e.method == method)
            and (pattern is None or pattern.search(e.path))
        ]

    def clear_log(self) -> None:
        """Forget the requests logged so far (and the in-flight maxima)."""
        with self._lock:
            self._log.clear()
            self._max_in_flight = dict(self._in_flight)

    def max_in_flight(self, server: Server = "proxy") -> int:
        """The most requests one host was handling at once since the start or `clear_log`."""
        with self._lock:
            return self._max_in_flight[server]

    def wait_idle(self, timeout: float = 30.0) -> None:
        """
        Block until no request is being handled, stalled ones included (a client that was
        killed leaves its handlers to end when the proxy notices the connection closed).

        Raises:
            TimeoutError: Some request was still being handled after `timeout` seconds.
        """
        self.wait_until(self._idle, timeout=timeout)

    def _idle(self) -> bool:
        with self._lock:
            return self._open == 0

    def _settled(self) -> bool:
        with self._lock:
            return self._open <= self._stalled

    @property
    def stalls(self) -> int:
        """How many bodies have stalled so far (including those still stalled)."""
        with self._lock:
            return self._stalls

    def wait_until(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """
        Block until `condition()` is true.

        Raises:
            TimeoutError: It was not within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"proxy condition not met within {timeout} s")
            time.sleep(_POLL_INTERVAL)

    # -- serving -----------------------------------------------------------------------

    def _match(self, request: web.Request) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule._take(request):
                    return rule
        return None

    async def _handle_proxy(self, request: web.Request) -> web.StreamResponse:
        rule = self._match(request)
        action = rule.action if rule is not None else Forward()
        with _Exchange(self, "proxy", request, rule) as exchange:
            if isinstance(action, Respond):
                return await self._respond(request, action, exchange)
            if isinstance(action, Redirect):
                return await self._redirect(request, action, exchange)
            if isinstance(action, Reset):
                return await self._reset(request, action, exchange)
            return await self._forward(request, action, exchange)

    async def _handle_cdn(self, request: web.Request) -> web.StreamResponse:
        with _Exchange(self, "cdn", request, None) as exchange:
            parts = request.path.strip("/").split("/")
            with self._lock:
                presigned = self._presigned.get(parts[1]) if len(parts) == 3 else None
            if parts[0] != "cdn" or presigned is None or not parts[2].isdigit():
                return await self._respond(request, Respond(status=404), exchange)
            method, target, headers, redirect = presigned
            hop = int(parts[2])
            if hop < redirect.hops:
                location = f"/cdn/{parts[1]}/{hop + 1}?{PRESIGNED_QUERY}"
                answer = Respond(status=302, headers={"Location": location})
                return await self._respond(request, answer, exchange)
            if redirect.challenge:
                challenge = f'Bearer realm="{self.cdn_url}/token",service="cdn"'
                answer = Respond(status=401, headers={"WWW-Authenticate": challenge})
                return await self._respond(request, answer, exchange)
            return await self._relay(
                request, method, target, headers, None,
                Forward(set_headers=redirect.headers), exchange,
            )

    async def _respond(
        self, request: web.Request, action: Respond, exchange: _Exchange
    ) -> web.StreamResponse:
        async for _ in _counted(request, exchange):
            if action.early is not None and exchange.request_bytes >= action.early:
                break
        if isinstance(action.body, bytes):
            body: AsyncIterator[bytes] = _iterate([action.body])
            size: int | None = len(action.body)
        else:
            body, size = _iterate(action.body()), action.size
        headers = dict(action.headers)
        status = action.status
        asked = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("Range", ""))
        if action.ranges is not None and size is not None and asked is not None:
            start = int(asked.group(1))
            end = min(size, int(asked.group(2)) + 1 if asked.group(2) else size)
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            body, size, status = _iterate(action.ranges(start, end)), end - start, 206
        response = web.StreamResponse(status=status, headers=headers)
        return await self._send(request, response, body, size, Forward(), exchange)

    async def _redirect(
        self, request: web.Request, action: Redirect, exchange: _Exchange
    ) -> web.StreamResponse:
        key = str(next(self._presign_ids))
        with self._lock:
            self._presigned[key] = (
                request.method, request.path_qs, _request_headers(request, ()), action
            )
        scheme = "https" if self._cdn_tls else "http"
        location = f"{scheme}://{action.cdn_host}:{self.cdn_port}/cdn/{key}/1?{PRESIGNED_QUERY}"
        answer = Respond(status=action.status, headers={"Location": location})
        return await self._respond(request, answer, exchange)

    async def _reset(
        self, request: web.Request, action: Reset, exchange: _Exchange
    ) -> web.StreamResponse:
        read = 0
        while read < action.after:
            chunk = await request.content.read(min(_CHUNK, action.after - read))
            if not chunk:
                break
            read += len(chunk)
        exchange.request_bytes = read
        exchange.close_connection(request)
        return web.Response(status=500)

    async def _forward(
        self, request: web.Request, action: Forward, exchange: _Exchange
    ) -> web.StreamResponse:
        headers = _request_headers(request, action.drop_request_headers)
        headers["X-Forwarded-Proto"] = "https" if self._tls else "http"
        if action.shift_range and "Range" in headers:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", headers["Range"])
            if match is not None:
                start = max(0, int(match.group(1)) + action.shift_range)
                headers["Range"] = f"bytes={start}-{match.group(2)}"
        target = request.path
        query = [(k, v) for k, v in parse_qsl(request.query_string, keep_blank_values=True)
                 if k not in action.drop_query]
        if query:
            target += "?" + urlencode(query)
        body = _counted(request, exchange) if request.body_exists else None
        return await self._relay(request, request.method, target, headers, body, action, exchange)

    async def _relay(
        self,
        request: web.Request,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        body: AsyncIterator[bytes] | None,
        action: Forward,
        exchange: _Exchange,
    ) -> web.StreamResponse:
        session = self._session
        assert session is not None
        async with session.request(
            method, self.upstream + target, headers=headers, data=body, allow_redirects=False
        ) as upstream:
            out = CIMultiDict(
                (k, v) for k, v in upstream.headers.items()
                if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
            )
            for name in action.drop_headers:
                out.popall(name, None)
            for name, value in action.set_headers.items():
                out[name] = value
            for name, value in action.add_headers:
                out.add(name, value)
            if action.location is not None and "Location" in out:
                out["Location"] = self._moved(out["Location"], action.location)
            size = upstream.content_length
            chunks: AsyncIterator[bytes] = upstream.content.iter_chunked(_CHUNK)
            if action.replace_body is not None:
                chunks, size = _iterate([action.replace_body]), len(action.replace_body)
            response = web.StreamResponse(status=upstream.status, headers=out)
            return await self._send(request, response, chunks, size, action, exchange)

    def _moved(self, location: str, where: Literal["cdn", "relative"]) -> str:
        parts = urlsplit(location)
        if where == "relative":
            return urlunsplit(("", "", parts.path, parts.query, ""))
        scheme, netloc = urlsplit(self.cdn_url)[:2]
        return urlunsplit((scheme, netloc, parts.path, parts.query, ""))

    async def _send(
        self,
        request: web.Request,
        response: web.StreamResponse,
        chunks: AsyncIterator[bytes],
        size: int | None,
        action: Forward,
        exchange: _Exchange,
    ) -> web.StreamResponse:
        """Send `response` with the body `chunks`, applying `action`'s body faults."""
        exchange.status = response.status
        empty = request.method == "HEAD" or response.status in (204, 304)
        if action.pace_headers is not None:
            body = b"" if empty else b"".join(
                [c async for c in _transformed(chunks, size, action)]
            )
            await self._send_raw(request, response, body, action.pace_headers, exchange)
            return web.Response(status=response.status)
        if action.chunked or size is None:
            if not empty:
                response.enable_chunked_encoding()
        elif empty:
            response.content_length = size
        else:
            response.content_length = size - action.truncate_by + len(action.extend_by)
        if empty:
            # The answer is complete once its headers arrive.
            exchange.done()
            await response.prepare(request)
            await response.write_eof()
            exchange.complete = True
            return response
        await response.prepare(request)
        pieces = _pieces(_transformed(chunks, size, action), action)
        pending = await anext(pieces, None)
        while pending is not None:
            following = await anext(pieces, None)
            if following is None:
                # The client is done once it holds the last byte: stop counting this
                # request as in flight before sending it, never after.
                exchange.done()
            offset = exchange.body_bytes
            await response.write(pending)
            exchange.body_bytes += len(pending)
            await self._fault_at(
                request, offset, exchange.body_bytes, action, exchange, last=following is None
            )
            if exchange.closed:
                return response
            pending = following
        exchange.done()
        await response.write_eof()
        exchange.complete = True
        return response

    async def _send_raw(
        self,
        request: web.Request,
        response: web.StreamResponse,
        body: bytes,
        pace: tuple[int, float],
        exchange: _Exchange,
    ) -> None:
        """Write the response by hand, its head `pace[0]` bytes every `pace[1]` seconds."""
        skip = {"content-length", "transfer-encoding", "connection"}
        lines = [f"HTTP/1.1 {response.status} {response.reason}"]
        lines += [f"{k}: {v}" for k, v in response.headers.items() if k.lower() not in skip]
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        head = "\r\n".join(lines).encode("latin-1")
        transport = request.transport
        step, pause = pace
        for start in range(0, len(head), step):
            if transport is None or transport.is_closing():
                break  # the client gave up
            transport.write(head[start : start + step])
            await asyncio.sleep(pause)
        else:
            if transport is not None:
                transport.write(body)
                exchange.body_bytes = len(body)
                exchange.complete = True
        exchange.close_connection(request)

    async def _fault_at(
        self,
        request: web.Request,
        before: int,
        after: int,
        action: Forward,
        exchange: _Exchange,
        *,
        last: bool,
    ) -> None:
        """Apply the faults whose byte offset the last piece reached."""
        if action.stall_after is not None and before < action.stall_after <= after:
            await self._stall(action.stall_for)
        if action.cut_after is not None and before < action.cut_after <= after:
            exchange.close_connection(request)
            return
        if action.pace is not None and not last:
            await asyncio.sleep(action.pace[1])

    async def _stall(self, seconds: float | None) -> None:
        release = self._release
        assert release is not None
        with self._lock:
            self._stalled += 1
            self._stalls += 1
        try:
            if seconds is None:
                await release.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(release.wait(), seconds)
        finally:
            with self._lock:
                self._stalled -= 1


class _Exchange:
    """The bookkeeping of one request: in-flight count, bytes sent, the log entry."""

    def __init__(
        self, proxy: FaultProxy, server: Server, request: web.Request, rule: Rule | None
    ) -> None:
        self._proxy = proxy
        self._server: Server = server
        self._request = request
        self._rule = rule
        self._counted = False
        self.status = 0
        self.body_bytes = 0
        self.request_bytes = 0
        self.complete = False
        self.closed = False
        self._started = 0

    def __enter__(self) -> Self:
        proxy = self._proxy
        with proxy._lock:
            self._started = next(proxy._clock)
            proxy._open += 1
            flights = proxy._in_flight
            flights[self._server] += 1
            highest = proxy._max_in_flight
            highest[self._server] = max(highest[self._server], flights[self._server])
        self._counted = True
        return self

    def done(self) -> None:
        """The client can finish now: stop counting this request as in flight."""
        if self._counted:
            self._counted = False
            with self._proxy._lock:
                self._proxy._in_flight[self._server] -= 1

    def close_connection(self, request: web.Request) -> None:
        """Drop the connection now (what the client sees as a reset)."""
        self.done()
        self.closed = True
        transport = request.transport
        if transport is not None:
            transport.close()

    def __exit__(self, *exc_info: object) -> None:
        self.done()
        request = self._request
        proxy = self._proxy
        with proxy._lock:
            proxy._log.append(
                ProxyRequest(
                    server=self._server,
                    method=request.method,
                    path=request.path,
                    query=request.query_string,
                    headers=tuple(request.headers.items()),
                    status=0 if self.closed and not self.body_bytes else self.status,
                    body_bytes=self.body_bytes,
                    request_bytes=self.request_bytes,
                    complete=self.complete and not self.closed,
                    started=self._started,
                    finished=next(proxy._clock),
                    rule=repr(self._rule) if self._rule is not None else None,
                )
            )
            proxy._open -= 1


def _listening_socket() -> socket.socket:
    # Bound and listening before the thread starts, so the port is known at once.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def _request_headers(request: web.Request, drop: Iterable[str]) -> CIMultiDict[str]:
    dropped = {name.lower() for name in drop} | _HOP_BY_HOP
    return CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in dropped)


async def _counted(request: web.Request, exchange: _Exchange) -> AsyncIterator[bytes]:
    """The request body, counted in `exchange.request_bytes` as it is read."""
    if not request.body_exists:
        return
    async for chunk in request.content.iter_chunked(_CHUNK):
        exchange.request_bytes += len(chunk)
        yield chunk


async def _iterate(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        if chunk:
            yield chunk
            # A synthetic body of gigabytes must not starve the proxy's other requests.
            await asyncio.sleep(0)


async def _transformed(
    chunks: AsyncIterator[bytes], size: int | None, action: Forward
) -> AsyncIterator[bytes]:
    """The body with `corrupt_at`, `truncate_by` and `extend_by` applied."""
    limit = None if size is None else size - action.truncate_by
    held = b""
    offset = 0
    async for chunk in chunks:
        if action.corrupt_at is not None and offset <= action.corrupt_at < offset + len(chunk):
            at = action.corrupt_at - offset
            chunk = chunk[:at] + bytes([chunk[at] ^ 0xFF]) + chunk[at + 1 :]
        offset += len(chunk)
        if limit is not None:
            chunk = chunk[: max(0, limit - (offset - len(chunk)))]
        elif action.truncate_by:
            # Unknown length: hold the last `truncate_by` bytes back until the end.
            held += chunk
            chunk, held = held[: -action.truncate_by], held[-action.truncate_by :]
        if chunk:
            yield chunk
    if action.extend_by:
        yield action.extend_by


async def _pieces(chunks: AsyncIterator[bytes], action: Forward) -> AsyncIterator[bytes]:
    """Split the body where faults or pacing must act between two writes."""
    marks = sorted(m for m in (action.cut_after, action.stall_after) if m is not None)
    step = action.pace[0] if action.pace is not None else None
    offset = 0
    async for chunk in chunks:
        while chunk:
            length = len(chunk)
            if step is not None:
                length = min(length, step)
            for mark in marks:
                if offset < mark < offset + length:
                    length = mark - offset
                    break
            piece, chunk = chunk[:length], chunk[length:]
            offset += len(piece)
            yield piece
