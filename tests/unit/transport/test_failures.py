"""
Network failures as users see them: one line naming the host, the likely mistake and a
hint; never a library object repr, an aiohttp class name or a traceback.

Each fault is real: a closed port, a name that does not resolve, small asyncio servers
that answer TLS with plain http and plain http as a Go TLS server does, an untrusted
certificate, a connection dropped or a body cut short.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from relocator.errors import RelocatorError, TransportError
from relocator.transport import HttpClient, Keychain, RetryPolicy, TransportSettings
from tests.support.registry import TLSFiles

FAST = RetryPolicy(attempts=0, initial=0.001, max_delay=0.001, jitter=0.0)
# Go's net/http answer to a plain-http request on a TLS port, byte for byte.
GO_HTTP_ON_TLS = (
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)
# Every exception name aiohttp exports: none may reach a message.
AIOHTTP_NAMES = sorted(
    name for name in dir(aiohttp) if name.endswith(("Error", "Exception", "Disconnected"))
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Fault:
    """How to make one failure: the URL scheme, a server (or none), and what to expect."""

    scheme: str
    handler: Handler | None
    method: str
    expected: str
    hint: str | None = None
    tls: bool = False
    host: str | None = None
    #: A name (not local, so no plain-http fallback) the server is reached by.
    alias: str | None = None


async def _plain_200(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    writer.close()


async def _go_tls_port(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(GO_HTTP_ON_TLS)
    await writer.drain()
    writer.close()


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def _cut_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    await writer.drain()
    writer.close()


FAULTS = {
    "connection refused": Fault(
        "https", None, "GET",
        "cannot connect to {host}: connection refused (is a registry listening on {host}?)",
    ),
    "name does not resolve": Fault(
        "https", None, "GET", "cannot resolve relocator-test.invalid:443",
        hint="check the registry name", host="relocator-test.invalid:443",
    ),
    # Named as a remote registry: a local one (127.0.0.1) is asked again over http,
    # as kbld does (`test_client.py`).
    "https to a plain-http port": Fault(
        "https", _plain_200, "GET", "{host} does not answer https (no TLS on that port)",
        hint="pass --registry-insecure {host}", alias="plain.example.test",
    ),
    "plain http to a TLS port, GET": Fault(
        "http", _go_tls_port, "GET", "{host} answers https, not plain http",
        hint="the registry speaks https: drop --registry-insecure for {host}",
    ),
    "plain http to a TLS port, HEAD": Fault(
        "http", _go_tls_port, "HEAD", "{host} answers https, not plain http",
        hint="the registry speaks https: drop --registry-insecure for {host}",
    ),
    "untrusted certificate": Fault(
        "https", _plain_200, "GET", "TLS verification failed for {host}: unable to get local "
        "issuer certificate", hint="--registry-ca-cert-path", tls=True,
    ),
    "connection dropped": Fault(
        "http", _hang_up, "GET", "GET from {host} failed: the server closed the connection",
    ),
    "body cut short": Fault(
        "http", _cut_body, "GET", "reading from {host} failed: the response body was cut short",
    ),
}


@asynccontextmanager
async def _server(fault: Fault, tmp_path: Path) -> AsyncIterator[str]:
    """`host:port` of a server playing `fault`, or of a closed port."""
    if fault.host is not None:
        yield fault.host
        return
    if fault.handler is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        yield f"127.0.0.1:{port}"
        return
    context: ssl.SSLContext | None = None
    if fault.tls:
        context = TLSFiles.create(tmp_path / "tls").server_ssl_context()
    server = await asyncio.start_server(fault.handler, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{fault.alias or '127.0.0.1'}:{port}"
    finally:
        server.close()


async def _failure(fault: Fault, host: str, tmp_path: Path) -> RelocatorError:
    settings = TransportSettings(
        insecure_hosts=frozenset({host}) if fault.scheme == "http" else frozenset(),
        use_env_proxy=False,
        retry=FAST,
        static_hosts={fault.alias: "127.0.0.1"} if fault.alias else {},
    )
    keychain = Keychain(env={}, docker_config_dir=tmp_path / "no-docker-config")
    async with HttpClient(settings, keychain) as client:
        try:
            async with client.request(fault.method, f"{fault.scheme}://{host}/v2/",
                                      what=fault.method) as resp:
                await resp.read(10_000, what="reading")
        except RelocatorError as exc:
            return exc
    raise AssertionError("the request succeeded")


@pytest.mark.parametrize("name", list(FAULTS))
async def test_network_failures_are_one_line_with_a_hint(tmp_path: Path, name: str) -> None:
    """Each failure names the host and the likely mistake, and hints at the fix."""
    fault = FAULTS[name]
    async with _server(fault, tmp_path) as host:
        error = await _failure(fault, host, tmp_path)

    assert isinstance(error, TransportError)
    assert str(error).startswith(fault.expected.format(host=host)), str(error)
    if fault.hint is not None:
        assert error.hint is not None
        assert fault.hint.format(host=host) in error.hint


@pytest.mark.parametrize("name", list(FAULTS))
async def test_no_failure_shows_a_library_repr_or_class_name(tmp_path: Path, name: str) -> None:
    """
    No message or hint carries an object repr (`<... object at 0x...>`), an aiohttp
    exception name, a traceback or a second line.
    """
    fault = FAULTS[name]
    async with _server(fault, tmp_path) as host:
        error = await _failure(fault, host, tmp_path)

    text = f"{error} {error.hint or ''}"
    assert [] == re.findall(r"0x[0-9a-fA-F]{6,}|object at|Traceback|\n", text)
    assert [] == [n for n in AIOHTTP_NAMES if n in text]
