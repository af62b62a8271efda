"""
The ceiling: the least a client can do to move the corpus's blobs, as a measuring stick.

`python -m benchmarks.ceiling copy|pull|push ...` moves the unique blobs listed in a
JSON file with N parallel streams (aiohttp) and no checks at all: no HEAD, no hashing,
no manifests, no retries. `copy` pipes each GET into a monolithic upload (POST, then one
`PUT ?digest=` with Content-Length); `pull` GETs every blob into one file at precomputed
offsets; `push` uploads them back from that file. The registry still checks each
upload's digest, so a wrong byte fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

# Streams in flight: enough to keep two local registries busy on any machine we run on.
DEFAULT_STREAMS = 16
# Bodies move 1 MiB at a time.
_CHUNK = 1024 * 1024
# No total timeout (a 1 GiB run takes a while), but 5 minutes without a byte is a hang.
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=300)


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobRef:
    """A blob to move and where it sits in the pull file."""

    repository: str
    digest: str
    size: int
    offset: int


def write_blob_list(path: Path, blobs: list[tuple[str, str, int]]) -> Path:
    """Write the `(source repository, digest, size)` list the ceiling reads."""
    doc = [{"repository": r, "digest": d, "size": s} for r, d, s in blobs]
    path.write_text(json.dumps({"blobs": doc}))
    return path


def read_blob_list(path: Path) -> list[BlobRef]:
    """The blob list with each blob's offset in the pull file (sizes added up in order)."""
    refs: list[BlobRef] = []
    offset = 0
    for item in json.loads(path.read_text())["blobs"]:
        refs.append(
            BlobRef(
                repository=item["repository"],
                digest=item["digest"],
                size=item["size"],
                offset=offset,
            )
        )
        offset += item["size"]
    return refs


async def _run_all(
    blobs: list[BlobRef],
    streams: int,
    one: Callable[[aiohttp.ClientSession, BlobRef], Awaitable[None]],
) -> None:
    # A copy holds a source and a destination connection: twice the streams in all.
    connector = aiohttp.TCPConnector(limit=2 * streams, limit_per_host=streams)
    slots = asyncio.Semaphore(streams)

    async def guarded(session: aiohttp.ClientSession, blob: BlobRef) -> None:
        async with slots:
            await one(session, blob)

    async with (
        aiohttp.ClientSession(
            connector=connector, timeout=_TIMEOUT, auto_decompress=False
        ) as session,
        asyncio.TaskGroup() as tg,
    ):
        # Largest first, as any sensible scheduler would.
        for blob in sorted(blobs, key=lambda b: b.size, reverse=True):
            tg.create_task(guarded(session, blob))


async def _upload(
    session: aiohttp.ClientSession,
    url: str,
    repository: str,
    blob: BlobRef,
    body: AsyncIterator[bytes],
) -> None:
    async with session.post(f"{url}/v2/{repository}/blobs/uploads/") as started:
        started.raise_for_status()
        location = urllib.parse.urljoin(url, started.headers["Location"])
    separator = "&" if "?" in location else "?"
    target = f"{location}{separator}digest={urllib.parse.quote(blob.digest, safe='')}"
    headers = {"Content-Length": str(blob.size), "Content-Type": "application/octet-stream"}
    async with session.put(target, data=body, headers=headers) as done:
        done.raise_for_status()


async def copy(args: argparse.Namespace) -> None:
    """GET from the source piped into a PUT to the destination, per blob."""

    async def one(session: aiohttp.ClientSession, blob: BlobRef) -> None:
        source = f"{args.source}/v2/{blob.repository}/blobs/{blob.digest}"
        async with session.get(source) as response:
            response.raise_for_status()

            async def body() -> AsyncIterator[bytes]:
                async for chunk in response.content.iter_chunked(_CHUNK):
                    yield chunk

            await _upload(session, args.destination, args.repository, blob, body())

    await _run_all(read_blob_list(args.blobs), args.streams, one)


async def pull(args: argparse.Namespace) -> None:
    """GET every blob into one file, each at its offset, flushed to disk."""
    blobs = read_blob_list(args.blobs)
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, sum(b.size for b in blobs))

        async def one(session: aiohttp.ClientSession, blob: BlobRef) -> None:
            source = f"{args.source}/v2/{blob.repository}/blobs/{blob.digest}"
            position = blob.offset
            async with session.get(source) as response:
                response.raise_for_status()
                async for chunk in response.content.iter_chunked(_CHUNK):
                    os.pwrite(fd, chunk, position)
                    position += len(chunk)
            # A tarball is renamed into place only once it is on disk, so a pull that
            # stands for pkg flushes too; blob by blob, overlapping the other
            # downloads, as pkg does (one flush at the end measured slower).
            await asyncio.to_thread(os.fdatasync, fd)

        await _run_all(blobs, args.streams, one)
    finally:
        os.close(fd)


async def push(args: argparse.Namespace) -> None:
    """Upload every blob from the pull file."""
    fd = os.open(args.input, os.O_RDONLY)
    try:

        async def one(session: aiohttp.ClientSession, blob: BlobRef) -> None:
            async def body() -> AsyncIterator[bytes]:
                done = 0
                while done < blob.size:
                    chunk = os.pread(fd, min(_CHUNK, blob.size - done), blob.offset + done)
                    if not chunk:
                        raise EOFError(f"{args.input} ends inside {blob.digest}")
                    done += len(chunk)
                    yield chunk

            await _upload(session, args.destination, args.repository, blob, body())

        await _run_all(read_blob_list(args.blobs), args.streams, one)
    finally:
        os.close(fd)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ceiling", description=__doc__)
    parser.add_argument("--streams", type=int, default=DEFAULT_STREAMS)
    modes = parser.add_subparsers(dest="mode", required=True)
    for name in ("copy", "pull", "push"):
        mode = modes.add_parser(name)
        mode.add_argument("--blobs", type=Path, required=True, help="blob list (JSON)")
        if name in ("copy", "pull"):
            mode.add_argument("--source", required=True, help="http://host:port")
        if name in ("copy", "push"):
            mode.add_argument("--destination", required=True, help="http://host:port")
            mode.add_argument("--repository", required=True, help="destination repository")
        if name == "pull":
            mode.add_argument("--output", type=Path, required=True)
        if name == "push":
            mode.add_argument("--input", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m benchmarks.ceiling`."""
    args = _parser().parse_args(argv)
    mode = {"copy": copy, "pull": pull, "push": push}[args.mode]
    # Failures end in a traceback and exit status 1: the benchmark quotes the log.
    asyncio.run(mode(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
