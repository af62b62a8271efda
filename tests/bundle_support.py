"""Building imgpkg bundles (and hostile ones) for the bundle tests."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zlib
from collections.abc import Sequence

from relocator.oci import mediatypes
from tests.support.images import Blob, Image

#: The label imgpkg puts on a bundle's config.
BUNDLE_LABEL = "dev.carvel.imgpkg.bundle"


def images_lock(images: Sequence[str]) -> bytes:
    """An imgpkg ImagesLock naming `images` (digest references)."""
    lines = ["apiVersion: imgpkg.carvel.dev/v1alpha1", "kind: ImagesLock", "images:"]
    lines += [f"- image: {image}" for image in images]
    return ("\n".join(lines) + "\n").encode()


def tar_layer(members: Sequence[tuple[str, bytes]]) -> bytes:
    """A gzip tarball of regular files `(name, content)`, in order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


def gzip_stream(parts: Sequence[bytes], repeat: int = 1) -> bytes:
    """Gzip `parts`, the whole sequence `repeat` times, without building it in memory."""
    squeeze = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [squeeze.compress(part) for _ in range(repeat) for part in parts]
    out.append(squeeze.flush())
    return b"".join(out)


def bundle(layer: bytes, *, label: bool = True, padding: int = 0) -> Image:
    """
    A Docker image as `imgpkg push -b` makes it: one gzip layer, the bundle label
    (its config grown by `padding` bytes, for the config cap).
    """
    layer_blob = Blob.from_bytes(layer, mediatypes.DOCKER_LAYER)
    config_doc: dict[str, object] = {
        "architecture": "",
        "os": "",
        "config": {"Labels": {BUNDLE_LABEL: "true"} if label else {}},
        "rootfs": {"type": "layers", "diff_ids": [str(layer_blob.digest)]},
    }
    if padding:
        config_doc["padding"] = "x" * padding
    config = Blob.from_bytes(json.dumps(config_doc).encode(), mediatypes.DOCKER_CONFIG)
    doc = {
        "schemaVersion": 2,
        "mediaType": mediatypes.DOCKER_MANIFEST,
        "config": config.to_json(),
        "layers": [layer_blob.to_json()],
    }
    return Image.from_document(doc, blobs=[config, layer_blob])


def bundle_lock(image: str, tag: str | None) -> str:
    """A BundleLock as `imgpkg push --lock-output` writes it."""
    lines = ["apiVersion: imgpkg.carvel.dev/v1alpha1", "bundle:", f"  image: {image}"]
    if tag is not None:
        lines.append(f"  tag: {tag}")
    lines.append("kind: BundleLock")
    return "\n".join(lines) + "\n"
