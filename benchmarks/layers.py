"""
Gzip-compressed layers of seeded random and text content, kept in files.

`tests.support.Blob.random` layers are pure random bytes; real layers are gzip
streams of files that are partly compressible (text, code) and partly not (binaries,
already-compressed assets). Layers here interleave both, gzip them (level 6, gzip's
default) and stop once the compressed stream reaches the wanted size, so a layer is
about `size` bytes on the wire.

Compressing is slow (about 35 MB/s per core), so layers are written once into a cache
directory, named by everything that determines their bytes, and streamed from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from relocator.oci import Digest, mediatypes
from tests.support import Blob

MiB = 1024 * 1024
# Files are read (and pushed) 1 MiB at a time.
_READ_CHUNK = MiB
# gzip's default level; docker and buildkit use it too.
_GZIP_LEVEL = 6
# wbits 31: a gzip wrapper (16) around a 32 KiB window (15); the header's mtime is 0.
_GZIP_WBITS = 31
# Segments of 4-64 KiB alternate between random bytes and text, like files in a tree.
_SEGMENT_MIN = 4 * 1024
_SEGMENT_MAX = 64 * 1024
# Half the segments are random (incompressible); text compresses to about half.
_RANDOM_SHARE = 0.5
# The text pool: 5000 made-up words, 2 MiB of lines; bigger than gzip's 32 KiB window,
# so repeated slices do not compress unrealistically well.
_WORDS = 5000
_POOL_BYTES = 2 * MiB
# Bump when the generator changes, so cached files are not reused.
_FORMAT = "gzip-random-text-v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileBlob(Blob):
    """A blob whose bytes live in a file (a generated layer)."""

    path: Path

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes, 1 MiB at a time; a fresh iterator on every call."""
        with self.path.open("rb") as f:
            while chunk := f.read(_READ_CHUNK):
                yield chunk


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerSpec:
    """What a generated layer is: a seed and a compressed size."""

    seed: str
    size: int
    docker: bool = False

    @property
    def media_type(self) -> str:
        """The gzip layer type of its manifest's kind."""
        return mediatypes.DOCKER_LAYER if self.docker else mediatypes.OCI_LAYER_GZIP

    @property
    def key(self) -> str:
        """The cache file name: everything that decides the bytes, hashed."""
        text = f"{_FORMAT}|{zlib.ZLIB_RUNTIME_VERSION}|{self.seed}|{self.size}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def gzip_layers(specs: Sequence[LayerSpec], cache_dir: Path) -> dict[LayerSpec, FileBlob]:
    """
    The layers `specs` describe, generating the missing ones (in parallel, one process
    per core) into `cache_dir`.

    Args:
        specs: Layers to provide; duplicates are fine.
        cache_dir: Directory of generated layers; reused across runs.

    Returns:
        One blob per distinct spec.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    unique = list(dict.fromkeys(specs))
    found = {spec: _cached(spec, cache_dir) for spec in unique}
    missing = [spec for spec, blob in found.items() if blob is None]
    if missing:
        # Largest first, so the last worker does not start the biggest layer alone.
        missing.sort(key=lambda spec: spec.size, reverse=True)
        paths = [cache_dir / f"{spec.key}.gz" for spec in missing]
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            # list() waits for every layer and re-raises the first failure.
            list(
                pool.map(_write_layer, [s.seed for s in missing], [s.size for s in missing], paths)
            )
        for spec in missing:
            found[spec] = _cached(spec, cache_dir)
    blobs: dict[LayerSpec, FileBlob] = {}
    for spec, blob in found.items():
        if blob is None:  # pragma: no cover - _write_layer writes both files or raises
            raise RuntimeError(f"layer {spec.seed} was not generated")
        blobs[spec] = blob
    return blobs


def _cached(spec: LayerSpec, cache_dir: Path) -> FileBlob | None:
    data, meta = cache_dir / f"{spec.key}.gz", cache_dir / f"{spec.key}.json"
    if not (data.is_file() and meta.is_file()):
        return None
    doc = json.loads(meta.read_text())
    if data.stat().st_size != doc["size"]:
        return None
    return FileBlob(
        media_type=spec.media_type,
        digest=Digest.parse(doc["digest"]),
        size=doc["size"],
        path=data,
    )


def _write_layer(seed: str, size: int, path: Path) -> None:
    """Write one layer and its `{digest, size}` sidecar, each via a temporary name."""
    hasher = hashlib.sha256()
    written = 0
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        for piece in _gzip_stream(seed, size):
            hasher.update(piece)
            out.write(piece)
            written += len(piece)
    partial.replace(path)
    meta = {"digest": f"sha256:{hasher.hexdigest()}", "size": written}
    partial_meta = path.with_suffix(".json.partial")
    partial_meta.write_text(json.dumps(meta))
    partial_meta.replace(path.with_suffix(".json"))


def _gzip_stream(seed: str, size: int) -> Iterator[bytes]:
    """A gzip stream of about `size` bytes (it ends at the first segment past `size`)."""
    rng = random.Random(seed)
    pool = _text_pool()
    compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
    produced = 0
    while produced < size:
        length = rng.randint(_SEGMENT_MIN, _SEGMENT_MAX)
        if rng.random() < _RANDOM_SHARE:
            segment = rng.randbytes(length)
        else:
            start = rng.randrange(len(pool) - length)
            segment = pool[start : start + length]
        piece = compressor.compress(segment)
        produced += len(piece)
        if piece:
            yield piece
    yield compressor.flush()


@cache
def _text_pool() -> bytes:
    """2 MiB of lines of made-up words, the same in every process."""
    rng = random.Random("relocator-benchmarks/text")
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(_WORDS)]
    lines: list[str] = []
    total = 0
    while total < _POOL_BYTES:
        line = " ".join(rng.choices(words, k=rng.randint(3, 14))) + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()
