"""
Deterministic test images and a pusher that seeds registries with them.

Building is pure: `image`, `index`, `artifact`, ... return frozen `Image` trees whose
manifests are final bytes and whose layers are seeded random bytes (the same seed gives
the same digests within one Python version). Layers bigger than 4 MiB keep only their
seed and are generated again for each upload, so a 64 MiB layer never sits in memory.

Layers are random bytes, not tarballs: registries and relocator never look inside, and
the configs' `diff_ids` simply repeat the layer digests. `docker load` would refuse such
images; nothing in the test suite runs it.

Manifests are serialised with three-space indentation (as docker does) so that a client
that re-serialises a manifest changes its digest and gets caught.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from relocator.oci import Descriptor, Digest, mediatypes

if TYPE_CHECKING:
    from tests.support.client import RegistryClient
    from tests.support.registry import Registry

Kind = Literal["oci", "docker"]
Seed = int | str

MiB = 1024 * 1024
# Blobs up to 4 MiB keep their bytes; bigger ones are regenerated from their seed.
_KEEP_IN_MEMORY = 4 * MiB
# Random bytes are generated (and uploaded) 1 MiB at a time.
_CHUNK = MiB
# Fixed creation time, so that configs and manifests are reproducible.
_CREATED = "2024-01-01T00:00:00Z"

#: Media type of the `artifact` helper's manifest (its `artifactType`).
TEST_ARTIFACT_TYPE = "application/vnd.relocator.test.artifact.v1"
#: Media type of the `artifact` helper's payload layer.
TEST_PAYLOAD_TYPE = "application/vnd.relocator.test.payload.v1"
#: The OCI 1.1 empty JSON blob used as an artifact's config.
EMPTY_JSON = b"{}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Blob:
    """A config or layer: its descriptor fields and a way to produce its bytes."""

    media_type: str
    digest: Digest
    size: int
    #: The bytes, for blobs up to 4 MiB; `None` when they are regenerated from `seed`.
    data: bytes | None = field(default=None, repr=False)
    seed: Seed | None = None
    #: Regenerated block by block (`seekable`), so any range can be produced alone.
    blocks: bool = False

    @classmethod
    def from_bytes(cls, data: bytes, media_type: str) -> Blob:
        """A blob holding `data`."""
        return cls(media_type=media_type, digest=Digest.of(data), size=len(data), data=data)

    @classmethod
    def random(cls, seed: Seed, size: int, media_type: str = mediatypes.OCI_LAYER_GZIP) -> Blob:
        """
        `size` seeded random bytes; hashed once here, regenerated on every `chunks()`.

        Args:
            seed: Same seed, same bytes.
            size: Length in bytes (0 gives the empty blob).
            media_type: The type manifests will give it.
        """
        if size <= _KEEP_IN_MEMORY:
            return cls.from_bytes(b"".join(_random_chunks(seed, size)), media_type)
        hasher = hashlib.sha256()
        for chunk in _random_chunks(seed, size):
            hasher.update(chunk)
        return cls(
            media_type=media_type,
            digest=Digest("sha256", hasher.hexdigest()),
            size=size,
            seed=seed,
        )

    @classmethod
    def seekable(
        cls, seed: Seed, size: int, media_type: str = mediatypes.OCI_LAYER_GZIP
    ) -> Blob:
        """
        `size` seeded random bytes, each 1 MiB block from its own seed, so that `span`
        produces any range without generating what comes before it: the body of a
        synthetic source that honours `Range`. Hashed once here.
        """
        hasher = hashlib.sha256()
        for chunk in _seeded_blocks(seed, size, 0, size):
            hasher.update(chunk)
        return cls(
            media_type=media_type,
            digest=Digest("sha256", hasher.hexdigest()),
            size=size,
            seed=seed,
            blocks=True,
        )

    def span(self, start: int, end: int) -> Iterator[bytes]:
        """
        The bytes from `start` up to `end` (exclusive), in pieces of at most 1 MiB.

        Raises:
            ValueError: The blob is generated as one stream (`random`), so only
                `chunks()` can produce it.
        """
        if self.data is not None:
            for at in range(start, end, _CHUNK):
                yield self.data[at : min(end, at + _CHUNK)]
            return
        if not self.blocks or self.seed is None:
            raise ValueError(f"blob {self.digest} can only be read from its start")
        yield from _seeded_blocks(self.seed, self.size, start, end)

    def chunks(self) -> Iterator[bytes]:
        """The bytes, in chunks of at most 1 MiB; a fresh iterator on every call."""
        if self.blocks:
            yield from self.span(0, self.size)
            return
        if self.data is not None:
            for start in range(0, len(self.data), _CHUNK):
                yield self.data[start : start + _CHUNK]
            return
        if self.seed is None:  # pragma: no cover - constructors always set one of the two
            raise ValueError(f"blob {self.digest} has neither bytes nor a seed")
        yield from _random_chunks(self.seed, self.size)

    def read(self) -> bytes:
        """All the bytes at once (fine for small blobs; big ones are generated)."""
        return self.data if self.data is not None else b"".join(self.chunks())

    def descriptor(self) -> Descriptor:
        """Its descriptor as `relocator.oci` models it."""
        return Descriptor(media_type=self.media_type, digest=self.digest, size=self.size)

    def to_json(self) -> dict[str, Any]:
        """Its descriptor as a manifest embeds it."""
        return {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}


def _random_chunks(seed: Seed, size: int) -> Iterator[bytes]:
    # A str seed goes through sha512 inside `random`, so it does not depend on
    # PYTHONHASHSEED; chunk boundaries are fixed, so the stream is too.
    rng = random.Random(seed)
    remaining = size
    while remaining > 0:
        step = min(_CHUNK, remaining)
        yield rng.randbytes(step)
        remaining -= step


def _seeded_blocks(seed: Seed, size: int, start: int, end: int) -> Iterator[bytes]:
    # Block i is `_CHUNK` bytes of a stream seeded with "<seed>/<i>": independent of
    # every other block, so a range starts generating at its own first block.
    for index in range(start // _CHUNK, -(-end // _CHUNK)):
        base = index * _CHUNK
        block = random.Random(f"{seed}/{index}").randbytes(min(_CHUNK, size - base))
        yield block[max(0, start - base) : end - base]


@dataclass(frozen=True, slots=True, kw_only=True)
class Image:
    """
    A manifest or index with everything it refers to, ready to push.

    `raw` is final: its sha256 is `digest`, and pushing sends exactly these bytes.
    """

    media_type: str
    digest: Digest
    raw: bytes = field(repr=False)
    #: Config first, then layers (single images and artifacts); empty for indexes.
    blobs: tuple[Blob, ...] = ()
    #: An index's entries, in order.
    children: tuple[Image, ...] = ()
    #: The image an artifact refers to (OCI 1.1 `subject`).
    subject: Image | None = None
    #: `os/arch[/variant]` an index entry declares for it; `None` for indexes.
    platform: str | None = None
    artifact_type: str | None = None

    @classmethod
    def from_document(
        cls,
        doc: Mapping[str, Any],
        *,
        blobs: Sequence[Blob] = (),
        children: Sequence[Image] = (),
        subject: Image | None = None,
        platform: str | None = None,
    ) -> Image:
        """Serialise `doc` (docker's three-space indent) and wrap it with its parts."""
        raw = json.dumps(doc, indent=3).encode()
        artifact_type = doc.get("artifactType")
        return cls(
            media_type=str(doc["mediaType"]),
            digest=Digest.of(raw),
            raw=raw,
            blobs=tuple(blobs),
            children=tuple(children),
            subject=subject,
            platform=platform,
            artifact_type=artifact_type if isinstance(artifact_type, str) else None,
        )

    @property
    def size(self) -> int:
        """Length of the manifest bytes."""
        return len(self.raw)

    @property
    def is_index(self) -> bool:
        """Whether this is an OCI index or a Docker manifest list."""
        return mediatypes.is_index(self.media_type)

    @property
    def config(self) -> Blob | None:
        """The config blob of a single image; `None` for an index."""
        return self.blobs[0] if self.blobs else None

    @property
    def layers(self) -> tuple[Blob, ...]:
        """The layers of a single image; empty for an index."""
        return self.blobs[1:]

    def to_json(self) -> dict[str, Any]:
        """Its descriptor as a parent index (or a `subject` field) embeds it."""
        doc: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            doc["artifactType"] = self.artifact_type
        if self.platform:
            os_name, arch, *variant = self.platform.split("/")
            platform = {"architecture": arch, "os": os_name}
            if variant:
                platform["variant"] = variant[0]
            doc["platform"] = platform
        return doc

    def descriptor(self) -> Descriptor:
        """Its descriptor as `relocator.oci` models it."""
        return Descriptor.from_json(self.to_json())

    def walk(self) -> Iterator[Image]:
        """Every manifest in the tree once, children (and subject) before parents."""
        seen: set[Digest] = set()

        def visit(node: Image) -> Iterator[Image]:
            if node.digest in seen:
                return
            seen.add(node.digest)
            if node.subject is not None:
                yield from visit(node.subject)
            for child in node.children:
                yield from visit(child)
            yield node

        yield from visit(self)

    def all_blobs(self) -> tuple[Blob, ...]:
        """Every config and layer in the tree (subject included) once, in walk order."""
        found: dict[Digest, Blob] = {}
        for node in self.walk():
            for blob in node.blobs:
                found.setdefault(blob.digest, blob)
        return tuple(found.values())

    def manifest_digests(self) -> tuple[Digest, ...]:
        """Every manifest digest in the tree once, children before parents."""
        return tuple(node.digest for node in self.walk())


# -- builders --------------------------------------------------------------------------


def random_layer(seed: Seed, size: int, *, kind: Kind = "oci") -> Blob:
    """A gzip-typed layer of `size` seeded random bytes."""
    media_type = mediatypes.OCI_LAYER_GZIP if kind == "oci" else mediatypes.DOCKER_LAYER
    return Blob.random(seed, size, media_type)


def image(
    seed: Seed,
    *,
    layer_sizes: Sequence[int] = (1024, 2048),
    kind: Kind = "oci",
    platform: str = "linux/amd64",
    base_layers: Sequence[Blob] = (),
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """
    A single-platform image: `base_layers`, then fresh random layers of `layer_sizes`.

    Args:
        seed: Distinguishes images; the same seed builds the same image.
        layer_sizes: Sizes of the image's own layers, in bytes.
        kind: `"oci"` (OCI manifest and types) or `"docker"` (Docker schema 2).
        platform: `os/arch[/variant]`, written into the config and index entries.
        base_layers: Layers shared with other images, placed first.
        annotations: Manifest annotations (OCI only).
    """
    layers = [
        *base_layers,
        *(random_layer(f"{seed}/layer/{i}", size, kind=kind) for i, size in enumerate(layer_sizes)),
    ]
    config = _config_blob(seed, platform, layers, kind)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST if kind == "oci" else mediatypes.DOCKER_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        if kind != "oci":
            raise ValueError("Docker schema 2 manifests have no annotations")
        doc["annotations"] = dict(annotations)
    return Image.from_document(doc, blobs=[config, *layers], platform=platform)


def _config_blob(seed: Seed, platform: str, layers: Sequence[Blob], kind: Kind) -> Blob:
    os_name, arch, *variant = platform.split("/")
    doc: dict[str, Any] = {
        "architecture": arch,
        "os": os_name,
        "created": _CREATED,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"org.relocator.test.seed": str(seed)},
        },
        # Random layers are not tarballs; their digests stand in for the diff IDs.
        "rootfs": {"type": "layers", "diff_ids": [str(layer.digest) for layer in layers]},
        "history": [
            {"created": _CREATED, "created_by": f"relocator-testing layer {i}"}
            for i in range(len(layers))
        ],
    }
    if variant:
        doc["variant"] = variant[0]
    media_type = mediatypes.OCI_CONFIG if kind == "oci" else mediatypes.DOCKER_CONFIG
    return Blob.from_bytes(json.dumps(doc, indent=2, sort_keys=True).encode(), media_type)


def index(
    children: Sequence[Image],
    *,
    kind: Kind = "oci",
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """
    An OCI index (`kind="oci"`) or Docker manifest list (`"docker"`) of `children`.

    Children may be images, artifacts or other indexes; image entries carry their
    platform.
    """
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX if kind == "oci" else mediatypes.DOCKER_MANIFEST_LIST,
        "manifests": [child.to_json() for child in children],
    }
    if annotations:
        if kind != "oci":
            raise ValueError("Docker manifest lists have no annotations")
        doc["annotations"] = dict(annotations)
    return Image.from_document(doc, children=children)


def multi_platform(
    seed: Seed,
    *,
    platforms: Sequence[str] = ("linux/amd64", "linux/arm64/v8"),
    kind: Kind = "oci",
    layer_sizes: Sequence[int] = (1024, 2048),
) -> Image:
    """An index (or manifest list) with one image per platform."""
    return index(
        [image(f"{seed}/{p}", layer_sizes=layer_sizes, kind=kind, platform=p) for p in platforms],
        kind=kind,
    )


def nested_index(seed: Seed, *, layer_sizes: Sequence[int] = (512,)) -> Image:
    """An OCI index whose first entry is itself an index (two platforms) plus one image."""
    inner = multi_platform(f"{seed}/inner", layer_sizes=layer_sizes)
    extra = image(f"{seed}/extra", layer_sizes=layer_sizes, platform="linux/s390x")
    return index([inner, extra], annotations={"org.relocator.test.nested": "true"})


def artifact(
    seed: Seed,
    subject: Image,
    *,
    artifact_type: str = TEST_ARTIFACT_TYPE,
    payload_size: int = 256,
) -> Image:
    """
    An OCI 1.1 artifact about `subject` (an SBOM or signature, say).

    Its config is the empty descriptor (`application/vnd.oci.empty.v1+json`, content
    `{}`), it has `artifactType`, one payload layer and a `subject` descriptor.
    """
    config = Blob.from_bytes(EMPTY_JSON, mediatypes.OCI_EMPTY)
    payload = Blob.random(f"{seed}/payload", payload_size, TEST_PAYLOAD_TYPE)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.to_json(),
        "layers": [payload.to_json()],
        "subject": _subject_json(subject),
        "annotations": {"org.opencontainers.image.created": _CREATED},
    }
    return Image.from_document(doc, blobs=[config, payload], subject=subject)


def _subject_json(subject: Image) -> dict[str, Any]:
    doc = subject.to_json()
    doc.pop("platform", None)
    return doc


def with_empty_layer(seed: Seed, *, kind: Kind = "oci") -> Image:
    """An image whose middle layer is the empty (0-byte) blob."""
    empty = random_layer("empty", 0, kind=kind)
    first = random_layer(f"{seed}/first", 1024, kind=kind)
    return image(seed, layer_sizes=(512,), kind=kind, base_layers=(first, empty))


def big_image(seed: Seed, *, size: int = 64 * MiB, kind: Kind = "oci") -> Image:
    """An image with one small layer and one of `size` bytes (64 MiB by default)."""
    return image(seed, layer_sizes=(1024, size), kind=kind)


def corpus(
    seed: Seed,
    count: int,
    *,
    bases: int = 3,
    base_layer_sizes: Sequence[int] = (4096, 8192),
    app_layer_sizes: Sequence[int] = (2048,),
    kind: Kind = "oci",
) -> tuple[Image, ...]:
    """
    `count` images sharing base layers: image `i` starts with the layers of base
    `i % bases` and adds its own app layers.

    Args:
        seed: Distinguishes corpora.
        count: How many images.
        bases: How many distinct bases they share.
        base_layer_sizes: Sizes of each base's layers, in bytes.
        app_layer_sizes: Sizes of each image's own layers, in bytes.
        kind: `"oci"` or `"docker"`.
    """
    base_layers = [
        [random_layer(f"{seed}/base/{b}/{i}", s, kind=kind) for i, s in enumerate(base_layer_sizes)]
        for b in range(bases)
    ]
    return tuple(
        image(
            f"{seed}/app/{i}",
            layer_sizes=app_layer_sizes,
            kind=kind,
            base_layers=base_layers[i % bases],
        )
        for i in range(count)
    )


# -- pushing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PushedImage:
    """Where an `Image` landed, and what it consists of."""

    #: `127.0.0.1:PORT` of the registry.
    host: str
    repository: str
    #: The tag pushed for the top-level manifest; `None` for children and digest pushes.
    tag: str | None
    digest: Digest
    media_type: str
    raw: bytes = field(repr=False)
    #: Config and layers of this manifest (not of children).
    blobs: tuple[Descriptor, ...]
    children: tuple[PushedImage, ...] = ()
    subject: PushedImage | None = None
    #: What was pushed, with blob contents.
    image: Image = field(repr=False)

    @property
    def reference(self) -> str:
        """`host/repository@digest`."""
        return f"{self.host}/{self.repository}@{self.digest}"

    @property
    def tagged_reference(self) -> str:
        """`host/repository:tag` (the digest reference when pushed without a tag)."""
        return f"{self.host}/{self.repository}:{self.tag}" if self.tag else self.reference

    def all_blobs(self) -> tuple[Descriptor, ...]:
        """Every blob of the tree (subject included) once."""
        return tuple(b.descriptor() for b in self.image.all_blobs())

    def manifest_digests(self) -> tuple[Digest, ...]:
        """Every manifest of the tree (subject included) once, children first."""
        return self.image.manifest_digests()


def push(
    client: RegistryClient,
    repository: str,
    image: Image,
    *,
    tag: str | None = None,
    host: str | None = None,
) -> PushedImage:
    """
    Push `image` with everything it refers to: subject, children and blobs first, then
    the manifest by digest, then (if given) by `tag`.

    Args:
        client: A client for the destination registry.
        repository: Destination repository.
        image: What to push.
        tag: Also tag the top-level manifest.
        host: The `host` to record (defaults to the client's).

    Returns:
        A description of what landed where.
    """
    host = host or client.host
    subject = push(client, repository, image.subject, host=host) if image.subject else None
    children = tuple(push(client, repository, child, host=host) for child in image.children)
    for blob in image.blobs:
        client.push_blob(repository, blob.digest, blob.size, blob.chunks)
    client.put_manifest(repository, image.digest, image.raw, image.media_type)
    if tag is not None:
        client.put_manifest(repository, tag, image.raw, image.media_type)
    return PushedImage(
        host=host,
        repository=repository,
        tag=tag,
        digest=image.digest,
        media_type=image.media_type,
        raw=image.raw,
        blobs=tuple(b.descriptor() for b in image.blobs),
        children=children,
        subject=subject,
        image=image,
    )


class ImageFactory:
    """
    Builds test images with fresh seeds, so images of one test never collide.

    Each call takes the next seed `"<namespace>/<n>"`; a test re-run builds the same
    images again. Methods mirror the module's builders.
    """

    def __init__(self, namespace: str) -> None:
        """
        Args:
            namespace: Prefix of every seed (the test's node id works well).
        """
        self.namespace = namespace
        self._count = 0

    def seed(self) -> str:
        """The next seed."""
        self._count += 1
        return f"{self.namespace}/{self._count}"

    def image(self, **options: Any) -> Image:
        """A single image (options of `image`)."""
        return image(self.seed(), **options)

    def docker_image(self, **options: Any) -> Image:
        """A Docker schema 2 image (options of `image`)."""
        return image(self.seed(), kind="docker", **options)

    def index(self, **options: Any) -> Image:
        """An OCI multi-platform index (options of `multi_platform`)."""
        return multi_platform(self.seed(), **options)

    def manifest_list(self, **options: Any) -> Image:
        """A Docker manifest list of Docker images (options of `multi_platform`)."""
        return multi_platform(self.seed(), kind="docker", **options)

    def nested_index(self, **options: Any) -> Image:
        """An index of an index (options of `nested_index`)."""
        return nested_index(self.seed(), **options)

    def artifact(self, subject: Image | None = None, **options: Any) -> Image:
        """An OCI 1.1 artifact about `subject` (a fresh image by default)."""
        return artifact(self.seed(), subject or self.image(), **options)

    def with_empty_layer(self, **options: Any) -> Image:
        """An image with a 0-byte layer (options of `with_empty_layer`)."""
        return with_empty_layer(self.seed(), **options)

    def big_image(self, **options: Any) -> Image:
        """An image with a 64 MiB layer (options of `big_image`)."""
        return big_image(self.seed(), **options)

    def corpus(self, count: int, **options: Any) -> tuple[Image, ...]:
        """`count` images sharing base layers (options of `corpus`)."""
        return corpus(self.seed(), count, **options)


class Pusher:
    """
    Pushes images to test registries, keeping one client per registry.

    The `push` fixture is one of these: `push(registry, repo, image, tag="v1")`.
    """

    def __init__(self) -> None:
        self._clients: dict[str, RegistryClient] = {}

    def client(self, registry: Registry) -> RegistryClient:
        """The cached client for `registry` (with its default credentials)."""
        client = self._clients.get(registry.url)
        if client is None:
            client = self._clients[registry.url] = registry.client()
        return client

    def __call__(
        self, registry: Registry, repository: str, image: Image, *, tag: str | None = None
    ) -> PushedImage:
        """Push `image` to `registry` (see `push`)."""
        return push(self.client(registry), repository, image, tag=tag, host=registry.host)

    def close(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
