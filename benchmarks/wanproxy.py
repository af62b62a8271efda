"""
A TCP proxy that makes a local registry behave like a remote one behind a CDN.

`python -m benchmarks.wanproxy --upstream 127.0.0.1:PORT` listens on a free port of
127.0.0.1, prints `127.0.0.1:PORT` on stdout, and forwards every connection to the
upstream with:

- latency: every chunk is delivered 20 ms after it arrived (each way, so a request
  waits 40 ms for the first byte of its answer), and a new connection waits one round
  trip before it reaches the upstream, as a TCP handshake would;
- bandwidth: each connection, in each direction, is paced to 25 MB/s, as a CDN edge
  caps one TCP stream; more connections get more bandwidth, as they do on the WAN.

It does not look at HTTP. `tc netem` would do this in the kernel, but needs privileges
these machines do not grant.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

# One-way delay: 20 ms each way is a 40 ms round trip.
DEFAULT_DELAY_MS = 20.0
# Per-connection, per-direction cap in MB/s (10^6 bytes per second).
DEFAULT_RATE_MBS = 25.0
# Bytes read at a time; at 25 MB/s one chunk is 2.6 ms of transfer.
_CHUNK = 64 * 1024
# Chunks queued per direction: 2 MiB, more than the 0.5 MB a 20 ms delay at 25 MB/s
# keeps in flight, so the queue never throttles below the rate.
_QUEUE_CHUNKS = 32
# Seconds to wait for the proxy to announce its port.
_STARTUP_TIMEOUT = 20.0


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, rate: float
) -> None:
    """Forward one direction: each chunk `delay` seconds late, paced to `rate` bytes/s."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=_QUEUE_CHUNKS)

    async def receive() -> None:
        while True:
            data = await reader.read(_CHUNK)
            await queue.put((loop.time() + delay, data))
            if not data:
                return

    async def send() -> None:
        free_at = loop.time()
        while True:
            due, data = await queue.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            start = max(free_at, loop.time())
            free_at = start + len(data) / rate
            if (wait := start - loop.time()) > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(receive())
        tg.create_task(send())


async def _serve(upstream: str, delay: float, rate: float) -> None:
    host, port = upstream.rsplit(":", 1)

    async def handle(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            # The round trip of a TCP handshake before the first byte can go anywhere.
            await asyncio.sleep(2 * delay)
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_pipe(client_reader, upstream_writer, delay, rate))
                tg.create_task(_pipe(upstream_reader, client_writer, delay, rate))
        except* OSError:
            pass  # a reset on either side ends the connection, as it would on the WAN
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    address = server.sockets[0].getsockname()
    print(f"{address[0]}:{address[1]}", flush=True)
    async with server:
        await server.serve_forever()


@dataclass(frozen=True, slots=True, kw_only=True)
class WanProxy:
    """A running proxy subprocess."""

    #: `127.0.0.1:PORT` to use instead of the upstream's host.
    host: str
    pid: int


@contextlib.contextmanager
def running_proxy(
    upstream: str, *, delay_ms: float = DEFAULT_DELAY_MS, rate_mbs: float = DEFAULT_RATE_MBS
) -> Iterator[WanProxy]:
    """
    Run the proxy in front of `upstream` (`host:port`) as a subprocess.

    Raises:
        RuntimeError: It did not announce its port.
    """
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.wanproxy",
            "--upstream",
            upstream,
            "--delay-ms",
            str(delay_ms),
            "--rate-mbs",
            str(rate_mbs),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if process.stdout is None:  # pragma: no cover - stdout=PIPE always gives one
            raise RuntimeError("no pipe to the proxy")
        line = process.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"the WAN proxy exited with status {process.wait(_STARTUP_TIMEOUT)}")
        yield WanProxy(host=line, pid=process.pid)
    finally:
        process.terminate()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m benchmarks.wanproxy`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wanproxy", description=__doc__)
    parser.add_argument("--upstream", required=True, help="host:port to forward to")
    parser.add_argument("--delay-ms", type=float, default=DEFAULT_DELAY_MS, help="one-way delay")
    parser.add_argument(
        "--rate-mbs", type=float, default=DEFAULT_RATE_MBS, help="MB/s per connection and direction"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.upstream, args.delay_ms / 1000, args.rate_mbs * 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
