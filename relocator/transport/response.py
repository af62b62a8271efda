"""
A registry's answer: the accepted response handed to callers, capped reads of
untrusted bodies, and an unexpected status turned into a `relocator.errors` error.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncGenerator, Callable
from typing import Any

import aiohttp
import anyio
from multidict import CIMultiDictProxy

from relocator.errors import AuthError, LimitExceeded, NotFound, RegistryError, TransportError
from relocator.transport import urls
from relocator.transport.failures import http_to_tls, speaks_tls
from relocator.transport.failures import network_error as _network_error
from relocator.transport.progress import ProgressRule
from relocator.transport.retry import parse_retry_after

#: Error bodies are read only to build a message; a registry must not make us buffer more.
MAX_ERROR_BODY = 64 * 1024


class Response:
    """A response whose status was accepted; the body is read with caps or streamed."""

    __slots__ = ("_body", "_moved", "_progress", "_resp", "headers", "status", "streamed", "url")

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        progress: ProgressRule,
        body: bytes | None = None,
        moved: Callable[[int], None] | None = None,
    ) -> None:
        self._resp = resp
        self._progress = progress
        # Told of each streamed piece (the host's throughput, see `gradient`).
        self._moved = moved
        #: Bytes handed out by `chunks` so far.
        self.streamed = 0
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
        return await read_capped(self._resp, limit, what=what, progress=self._progress)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """
        The raw body in pieces as the socket delivered them (up to aiohttp's read
        buffer, `TransportSettings.chunk_size`), never decompressed (a blob's digest is
        over its bytes).

        Raises:
            TransportError: The connection broke or stalled (temporary: the caller may
                resume with a `Range` request).
        """
        host = urls.host_of(self.url)
        content = self._resp.content
        watch = self._progress.watch(host, "reading body")

        async def piece() -> bytes:
            # One piece as the socket delivered it: joining pieces into larger reads
            # would copy every byte once more, into fresh memory.
            return (await content.readchunk())[0]

        try:
            while True:
                if content.total_bytes > self.streamed:
                    # Held already: taken without arming a deadline (a timer per read
                    # costs more than the read); only a wait is bounded.
                    chunk = await piece()
                    watch.took(len(chunk))
                else:
                    chunk = await watch.read(piece)
                if not chunk:
                    if content.at_eof():
                        return
                    continue  # the end of a chunk of a chunked body
                self.streamed += len(chunk)
                if self._moved is not None:
                    self._moved(len(chunk))
                yield chunk
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _network_error(exc, host, "reading body") from None



async def read_capped(
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


async def settled(resp: aiohttp.ClientResponse) -> None:
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


async def error_from(
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
            await read_capped(resp, MAX_ERROR_BODY, what=what, progress=progress)
            if status != 304 else b""
        )
    except (LimitExceeded, TransportError):
        body = b""
    finally:
        resp.release()
        await settled(resp)
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

