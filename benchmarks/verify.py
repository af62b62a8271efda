"""
Checking what a measured run produced, outside the timing.

Registries: `tests.support.verify_image_tree` walks every expected tree at the
destination (each manifest fetched and hashed, each blob HEADed for its size), and one
sampled tree per run has every blob downloaded and hashed too. Tarballs: every expected
blob and manifest must be a `blobs/sha256/<hex>` member of the right size, and the
members of one sampled tree are hashed.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from relocator.oci import Digest
from tests.support import Registry, VerificationError, verify_image_tree

# Tar members are hashed 1 MiB at a time.
_CHUNK = 1024 * 1024


def verify_registry(
    registry: Registry, repository: str, roots: Sequence[Digest], *, hashed: Digest
) -> str:
    """
    Check every tree in `roots` at `registry/repository`, hashing the blobs of `hashed`.

    Returns:
        A one-line summary.

    Raises:
        VerificationError: Anything is missing or different.
    """
    manifests: set[Digest] = set()
    blobs: set[Digest] = set()
    hashed_bytes = 0
    with registry.client() as client:
        for root in roots:
            tree = verify_image_tree(client, repository, root, hash_blobs=root == hashed)
            manifests.update(tree.manifests)
            blobs.update(tree.blobs)
            if root == hashed:
                hashed_bytes = sum(tree.blobs.values())
    return (
        f"{len(roots)} trees: {len(manifests)} manifests, {len(blobs)} blobs "
        f"({_size(hashed_bytes)} hashed)"
    )


def verify_tar(
    path: Path,
    blobs: Mapping[Digest, int],
    manifests: Mapping[Digest, int],
    *,
    hashed: Sequence[Digest],
) -> str:
    """
    Check that a tarball of an OCI layout holds every blob and manifest, size for size
    (a hard link counting as the member it names), and that the members named in
    `hashed` hash to their digests.

    Returns:
        A one-line summary.

    Raises:
        VerificationError: A member is missing, has the wrong size or the wrong bytes.
    """
    with tarfile.open(path) as tar:
        members = {
            member.name.removeprefix("./"): member for member in tar.getmembers() if member.isfile()
        }
        # relocator's default tarball names each layer twice: kbld's name holds the bytes
        # and the OCI name is a hard link to it, which extracting readers follow.
        members.update(
            (member.name.removeprefix("./"), members[member.linkname.removeprefix("./")])
            for member in tar.getmembers()
            if member.islnk() and member.linkname.removeprefix("./") in members
        )
        for digest, size in [*blobs.items(), *manifests.items()]:
            member = members.get(f"blobs/{digest.algorithm}/{digest.hex}")
            if member is None:
                raise VerificationError(f"{path.name}: no member for {digest}")
            if member.size != size:
                raise VerificationError(
                    f"{path.name}: {digest} is {member.size} bytes, expected {size}"
                )
        hashed_bytes = 0
        for digest in hashed:
            member = members[f"blobs/{digest.algorithm}/{digest.hex}"]
            hashed_bytes += _check_member(tar, member, digest, path)
    return f"{len(manifests)} manifests, {len(blobs)} blobs ({_size(hashed_bytes)} hashed)"


def _size(count: int) -> str:
    """Bytes in MB, or kB below 1 MB (10^3 and 10^6 bytes)."""
    return f"{count / 1e6:.0f} MB" if count >= 1_000_000 else f"{count / 1e3:.0f} kB"


def _check_member(tar: tarfile.TarFile, member: tarfile.TarInfo, digest: Digest, path: Path) -> int:
    stream = tar.extractfile(member)
    if stream is None:  # pragma: no cover - only regular files are looked up
        raise VerificationError(f"{path.name}: {member.name} is not a file")
    hasher = hashlib.new(digest.algorithm)
    with stream:
        while chunk := stream.read(_CHUNK):
            hasher.update(chunk)
    if hasher.hexdigest() != digest.hex:
        raise VerificationError(f"{path.name}: {member.name} hashes to {hasher.hexdigest()}")
    return member.size
