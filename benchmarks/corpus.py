"""
The benchmark corpus: seeded images of realistic shape, and pushing them to a registry.

At scale 1 (about 1 GiB of unique bytes):

- 20 single-platform images over four repositories, all sharing three base layers of
  30, 10 and 5 MiB; images 0-6 share a 25 MiB runtime layer, 7-13 a 40 MiB one;
  each has its own app layer of 24-60 MiB and a 256 KiB one;
- a multi-platform OCI index (two images with a 20 MiB app layer each),
- a Docker manifest list (two Docker images with a 15 MiB layer each),
- an index of an index (small layers),
- an OCI 1.1 artifact whose subject is image 0.

The large-layer section adds one image of one 320 MiB layer (`large_image`).

Every big layer is gzip of random and text content (`benchmarks.layers`). `--small`
uses scale 0.1 (about 100 MiB), same shape.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from relocator.oci import Digest
from tests.support import (
    Blob,
    Image,
    Registry,
    RegistryClient,
    artifact,
    corpus,
    image,
    index,
    nested_index,
    push,
)

from .layers import LayerSpec, MiB, gzip_layers

_SEED = "relocator-benchmarks"
# 20 single-platform images, spread over 4 source repositories.
_APP_IMAGES = 20
_TEAMS = 4
# Base layers every app image shares, in MiB.
_BASE_MIB = (30, 10, 5)
# Two runtime layers (MiB), each shared by 7 of the images; the last 6 have none.
_RUNTIME_MIB = (25, 40)
_RUNTIME_USERS = 7
# App layer of image i: 24 + 9 * (i % 5) MiB, i.e. 24 to 60 MiB.
_APP_MIB_MIN = 24
_APP_MIB_STEP = 9
# Each image's small second layer (its "config files"), in MiB.
_SMALL_MIB = 0.25
# Per-platform app layers of the OCI index and of the Docker manifest list, in MiB.
_INDEX_MIB = 20
_LIST_MIB = 15
# Layers of the index of an index, and the artifact's payload, in MiB.
_NESTED_MIB = 0.5
_PAYLOAD_MIB = 0.25
# The layer of the large-layer section, in MiB, and its least size in bytes (so that
# `--small` still has a layer big enough to be split into ranges).
_LARGE_MIB = 320
_LARGE_MIN = 48 * MiB
# Nothing smaller than 1 KiB, even at tiny scales.
_MIN_SIZE = 1024
# Small images of the scale check: one shared 1 KiB base layer and a 512-byte own one,
# spread over 10 repositories.
_SCALE_REPOS = 10
# Threads pushing the corpus (each with its own client).
_PUSH_THREADS = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One image the benchmark moves: a name, where it lives, what it is."""

    #: Short label, also the tag tools give it at the destination.
    name: str
    #: Source repository.
    repository: str
    image: Image
    #: Contains Docker-typed manifests (an OCI layout cannot hold them unconverted).
    docker: bool = False
    #: An index of an index (skopeo 1.9.3 refuses to copy it).
    nested: bool = False

    def reference(self, host: str) -> str:
        """`host/repository@digest`."""
        return f"{host}/{self.repository}@{self.image.digest}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Corpus:
    """The images to move, with what they add up to."""

    entries: tuple[Entry, ...]

    def blobs(self) -> dict[Digest, Blob]:
        """Every config and layer once (artifact subjects included)."""
        found: dict[Digest, Blob] = {}
        for entry in self.entries:
            for blob in entry.image.all_blobs():
                found.setdefault(blob.digest, blob)
        return found

    def manifests(self) -> dict[Digest, Image]:
        """Every manifest and index once."""
        found: dict[Digest, Image] = {}
        for entry in self.entries:
            for node in entry.image.walk():
                found.setdefault(node.digest, node)
        return found

    @property
    def unique_bytes(self) -> int:
        """Bytes of all unique blobs: what a perfect tool moves once."""
        return sum(blob.size for blob in self.blobs().values())

    def select(self, *, skopeo: bool) -> tuple[Entry, ...]:
        """The entries a tool can copy: skopeo 1.9.3 cannot copy an index of an index."""
        return tuple(e for e in self.entries if not (skopeo and e.nested))


def build(scale: float, cache_dir: Path) -> Corpus:
    """
    The corpus at `scale` (1.0: about 1 GiB of unique bytes), generating layers into
    `cache_dir` when they are not there yet.
    """

    def size(mib: float) -> int:
        return max(_MIN_SIZE, round(mib * MiB * scale))

    def spec(name: str, mib: float, *, docker: bool = False) -> LayerSpec:
        return LayerSpec(seed=f"{_SEED}/{name}", size=size(mib), docker=docker)

    bases = [spec(f"base/{i}", mib) for i, mib in enumerate(_BASE_MIB)]
    runtimes = [spec(f"runtime/{i}", mib) for i, mib in enumerate(_RUNTIME_MIB)]
    apps = [
        (
            spec(f"app/{i}/main", _APP_MIB_MIN + _APP_MIB_STEP * (i % 5)),
            spec(f"app/{i}/etc", _SMALL_MIB),
        )
        for i in range(_APP_IMAGES)
    ]
    platforms = ("linux/amd64", "linux/arm64/v8")
    index_layers = [spec(f"index/{p}", _INDEX_MIB) for p in platforms]
    list_layers = [spec(f"list/{p}", _LIST_MIB, docker=True) for p in platforms]
    layers = gzip_layers(
        [*bases, *runtimes, *(s for pair in apps for s in pair), *index_layers, *list_layers],
        cache_dir,
    )

    entries: list[Entry] = []
    for i, (main, small) in enumerate(apps):
        runtime = runtimes[i // _RUNTIME_USERS] if i // _RUNTIME_USERS < len(runtimes) else None
        stack = [*bases, *([runtime] if runtime else []), main, small]
        img = image(f"{_SEED}/app/{i}", layer_sizes=(), base_layers=[layers[s] for s in stack])
        entries.append(Entry(name=f"app-{i:02d}", repository=f"bench/team{i % _TEAMS}", image=img))

    oci_index = index(
        [
            image(
                f"{_SEED}/index/{p}",
                layer_sizes=(),
                platform=p,
                base_layers=[*(layers[s] for s in bases), layers[layer]],
            )
            for p, layer in zip(platforms, index_layers, strict=True)
        ]
    )
    docker_list = index(
        [
            image(
                f"{_SEED}/list/{p}",
                layer_sizes=(),
                platform=p,
                kind="docker",
                base_layers=[layers[layer]],
            )
            for p, layer in zip(platforms, list_layers, strict=True)
        ],
        kind="docker",
    )
    nested = nested_index(f"{_SEED}/nested", layer_sizes=(size(_NESTED_MIB),))
    subject = entries[0]
    signed = artifact(f"{_SEED}/artifact", subject.image, payload_size=size(_PAYLOAD_MIB))
    entries += [
        Entry(name="oci-index", repository="bench/shapes", image=oci_index),
        Entry(name="docker-list", repository="bench/shapes", image=docker_list, docker=True),
        Entry(name="nested-index", repository="bench/shapes", image=nested, nested=True),
        Entry(name="artifact", repository=subject.repository, image=signed),
    ]
    return Corpus(entries=tuple(entries))


def large_image(scale: float, cache_dir: Path) -> Entry:
    """
    One image whose single layer is large (320 MiB at scale 1, at least 48 MiB): a
    model or a toolchain, the layer that decides how long a run takes.
    """
    spec = LayerSpec(
        seed=f"{_SEED}/large", size=max(round(_LARGE_MIB * MiB * scale), _LARGE_MIN), docker=False
    )
    layer = gzip_layers([spec], cache_dir)[spec]
    img = image(f"{_SEED}/large", layer_sizes=(), base_layers=[layer])
    return Entry(name="large", repository="bench/large", image=img)


def scale_images(count: int) -> tuple[Entry, ...]:
    """`count` small images (a shared 1 KiB layer, a 512-byte own one) for the scale check."""
    images = corpus(
        f"{_SEED}/scale", count, bases=1, base_layer_sizes=(1024,), app_layer_sizes=(512,)
    )
    return tuple(
        Entry(name=f"small-{i:04d}", repository=f"bench/scale{i % _SCALE_REPOS}", image=img)
        for i, img in enumerate(images)
    )


def push_all(registry: Registry, entries: Sequence[Entry]) -> None:
    """Push every entry (subjects, children and blobs first), four at a time."""
    local = threading.local()
    clients: list[RegistryClient] = []
    lock = threading.Lock()

    def one(entry: Entry) -> None:
        client: RegistryClient | None = getattr(local, "client", None)
        if client is None:
            client = local.client = registry.client()
            with lock:
                clients.append(client)
        push(client, entry.repository, entry.image)

    try:
        with ThreadPoolExecutor(max_workers=_PUSH_THREADS) as pool:
            for _ in pool.map(one, entries):
                pass
    finally:
        for client in clients:
            client.close()


def write_images_file(path: Path, host: str, entries: Iterable[Entry]) -> Path:
    """The relocator input naming every entry in digest form on `host`."""
    doc = {"images": [{"image": entry.reference(host)} for entry in entries]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
