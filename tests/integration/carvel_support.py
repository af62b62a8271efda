"""
Images that container runtimes would accept: gzip tar layers and configs whose
`rootfs.diff_ids` are the true hashes of the uncompressed layers (the seeded test images
use random bytes as layers, which `docker load` and go-containerregistry re-gzip or
refuse).
"""

from __future__ import annotations

import gzip
import io
import json
import random
import tarfile
from collections.abc import Sequence

from relocator.oci import Digest, mediatypes
from tests.support import Blob, Image


def layer_tar(seed: str, size: int) -> bytes:
    """An uncompressed tar holding one file of `size` seeded random bytes."""
    content = random.Random(seed).randbytes(size)  # noqa: S311 - test data, not secrets
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"data/{seed.replace('/', '-')}")
        info.size = size
        tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def loadable_image(
    seed: str,
    *,
    layer_sizes: Sequence[int] = (1500, 2500),
    kind: str = "docker",
    platform: str = "linux/amd64",
) -> Image:
    """
    A single-platform image of gzip tar layers whose config lists each layer's diff ID
    (sha256 of the uncompressed tar), in order.
    """
    docker = kind == "docker"
    layer_type = mediatypes.DOCKER_LAYER if docker else mediatypes.OCI_LAYER_GZIP
    layers, diff_ids = [], []
    for i, size in enumerate(layer_sizes):
        tar = layer_tar(f"{seed}/{i}", size)
        diff_ids.append(str(Digest.of(tar)))
        layers.append(Blob.from_bytes(gzip.compress(tar, mtime=0), layer_type))
    os_name, arch, *variant = platform.split("/")
    config_doc: dict[str, object] = {
        "architecture": arch,
        "os": os_name,
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": [f"SEED={seed}"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if variant:
        config_doc["variant"] = variant[0]
    config = Blob.from_bytes(
        json.dumps(config_doc).encode(),
        mediatypes.DOCKER_CONFIG if docker else mediatypes.OCI_CONFIG,
    )
    doc = {
        "schemaVersion": 2,
        "mediaType": mediatypes.DOCKER_MANIFEST if docker else mediatypes.OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    return Image.from_document(doc, blobs=[config, *layers], platform=platform)
