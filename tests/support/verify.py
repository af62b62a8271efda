"""
Check what a registry holds, independently of relocator's own code.

Everything here walks manifests with plain `json` and hashes with `hashlib`, so a test
that relocates an image and then calls `verify_image_tree` does not trust the engine,
the transport or `relocator.oci.Manifest` to judge their own work. Failures raise
`VerificationError`, an `AssertionError`, so pytest reports them as failed asserts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relocator.oci import Digest
from tests.support.client import RegistryClient

if TYPE_CHECKING:
    from tests.support.images import Image
    from tests.support.registry import Registry

_INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
_IMAGE_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)


class VerificationError(AssertionError):
    """A registry's content does not match what it should be."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedTree:
    """What `verify_image_tree` found and checked."""

    repository: str
    root: Digest
    #: Every manifest in the tree (digest -> media type), children before parents.
    manifests: Mapping[Digest, str]
    #: Every config and layer in the tree (digest -> size).
    blobs: Mapping[Digest, int]


@contextlib.contextmanager
def _client(target: Registry | RegistryClient) -> Iterator[RegistryClient]:
    if isinstance(target, RegistryClient):
        yield target
        return
    with target.client() as client:
        yield client


def fetch_manifest(
    target: Registry | RegistryClient, repository: str, digest: Digest | str
) -> bytes:
    """
    Fetch a manifest by digest and check that its bytes hash to that digest.

    Args:
        target: The registry (its default credentials are used) or a client.
        repository: Repository to read from.
        digest: The digest to fetch by.

    Returns:
        The raw bytes, exactly as served.

    Raises:
        VerificationError: The registry lacks it, or its bytes hash to something else.
    """
    digest = Digest.parse(str(digest))
    with _client(target) as client:
        raw, _ = _fetch(client, repository, digest)
    return raw


def _fetch(client: RegistryClient, repository: str, digest: Digest) -> tuple[bytes, str]:
    if client.manifest_digest(repository, digest) is None:
        raise VerificationError(f"{client.host}/{repository}@{digest}: manifest not found")
    response = client.get_manifest(repository, digest)
    actual = hashlib.new(digest.algorithm, response.body).hexdigest()
    if actual != digest.hex:
        raise VerificationError(
            f"{client.host}/{repository}@{digest}: bytes hash to {digest.algorithm}:{actual}"
        )
    served = response.header("docker-content-digest")
    if served is not None and served != str(digest):
        raise VerificationError(
            f"{client.host}/{repository}@{digest}: Docker-Content-Digest says {served}"
        )
    content_type = (response.header("content-type") or "").split(";", 1)[0].strip()
    return response.body, content_type


def verify_image_tree(
    target: Registry | RegistryClient,
    repository: str,
    digest: Digest | str,
    *,
    hash_blobs: bool = False,
    expected: Image | None = None,
) -> VerifiedTree:
    """
    Walk a manifest or index recursively and check everything it refers to.

    Checks, for every manifest: its bytes hash to its digest; its `Content-Type` and
    its `mediaType` field agree with the descriptor that named it; its size matches.
    For every config and layer: `HEAD` finds it in `repository` with the descriptor's
    size; with `hash_blobs`, its body is downloaded and hashed too.

    Args:
        target: The registry (its default credentials are used) or a client.
        repository: Repository to check.
        digest: The root manifest's digest.
        hash_blobs: Also download every blob and check its digest.
        expected: The `Image` that should be there: the sets of manifest and blob
            digests must then be exactly the image's (subject excluded: it lives
            outside the tree).

    Returns:
        Everything found.

    Raises:
        VerificationError: Anything missing or different.
    """
    root = Digest.parse(str(digest))
    manifests: dict[Digest, str] = {}
    blobs: dict[Digest, int] = {}
    with _client(target) as client:
        _walk(client, repository, root, None, None, manifests, blobs, hash_blobs=hash_blobs)
    tree = VerifiedTree(repository=repository, root=root, manifests=manifests, blobs=blobs)
    if expected is not None:
        _compare(tree, expected)
    return tree


def _walk(
    client: RegistryClient,
    repository: str,
    digest: Digest,
    declared_type: str | None,
    declared_size: int | None,
    manifests: dict[Digest, str],
    blobs: dict[Digest, int],
    *,
    hash_blobs: bool,
) -> None:
    if digest in manifests:
        return
    where = f"{client.host}/{repository}@{digest}"
    raw, content_type = _fetch(client, repository, digest)
    if declared_size is not None and declared_size != len(raw):
        raise VerificationError(f"{where}: {len(raw)} bytes, its descriptor says {declared_size}")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise VerificationError(f"{where}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise VerificationError(f"{where}: not a JSON object")
    media_type = doc.get("mediaType") or content_type
    if content_type and content_type != media_type:
        raise VerificationError(f"{where}: served as {content_type}, mediaType is {media_type}")
    if declared_type is not None and declared_type != media_type:
        raise VerificationError(f"{where}: is {media_type}, its descriptor says {declared_type}")
    if media_type in _INDEX_TYPES:
        for entry in _descriptors(doc.get("manifests"), where):
            _walk(
                client,
                repository,
                Digest.parse(entry["digest"]),
                entry["mediaType"],
                entry["size"],
                manifests,
                blobs,
                hash_blobs=hash_blobs,
            )
    elif media_type in _IMAGE_TYPES:
        entries = _descriptors([doc.get("config")], where) + _descriptors(doc.get("layers"), where)
        for entry in entries:
            blob = Digest.parse(entry["digest"])
            if blob not in blobs:
                _check_blob(client, repository, blob, entry["size"], hash_blobs=hash_blobs)
                blobs[blob] = entry["size"]
    else:
        raise VerificationError(f"{where}: unexpected media type {media_type!r}")
    manifests[digest] = media_type


def _descriptors(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise VerificationError(f"{where}: missing descriptor list")
    for entry in value:
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("mediaType"), str)
            and isinstance(entry.get("digest"), str)
            and type(entry.get("size")) is int
        )
        if not ok:
            raise VerificationError(f"{where}: malformed descriptor {entry!r}")
    return value


def _check_blob(
    client: RegistryClient, repository: str, digest: Digest, size: int, *, hash_blobs: bool
) -> None:
    where = f"{client.host}/{repository}@{digest}"
    actual_size = client.blob_size(repository, digest)
    if actual_size is None:
        raise VerificationError(f"{where}: blob not found")
    if actual_size != size:
        raise VerificationError(f"{where}: blob is {actual_size} bytes, expected {size}")
    if hash_blobs:
        hasher = hashlib.new(digest.algorithm)
        length = 0
        for chunk in client.blob_chunks(repository, digest):
            hasher.update(chunk)
            length += len(chunk)
        if length != size or hasher.hexdigest() != digest.hex:
            raise VerificationError(
                f"{where}: body is {length} bytes hashing to "
                f"{digest.algorithm}:{hasher.hexdigest()}"
            )


def _compare(tree: VerifiedTree, expected: Image) -> None:
    want_manifests = {n.digest for n in _tree_without_subject(expected)}
    want_blobs = {b.digest: b.size for n in _tree_without_subject(expected) for b in n.blobs}
    if set(tree.manifests) != want_manifests:
        raise VerificationError(
            f"{tree.repository}@{tree.root}: manifests {_names(tree.manifests)} "
            f"!= expected {_names(want_manifests)}"
        )
    if dict(tree.blobs) != want_blobs:
        raise VerificationError(
            f"{tree.repository}@{tree.root}: blobs {_names(tree.blobs)} "
            f"!= expected {_names(want_blobs)}"
        )


def _tree_without_subject(image: Image) -> Iterator[Image]:
    yield image
    for child in image.children:
        yield from _tree_without_subject(child)


def _names(digests: Mapping[Digest, Any] | set[Digest]) -> str:
    return "{" + ", ".join(sorted(d.short for d in digests)) + "}"


def verify_pushed(
    target: Registry | RegistryClient,
    repository: str,
    image: Image,
    *,
    tag: str | None = None,
    hash_blobs: bool = False,
) -> VerifiedTree:
    """
    Check that `repository` holds exactly `image` (and that `tag` points at it).

    Raises:
        VerificationError: It does not.
    """
    with _client(target) as client:
        if tag is not None:
            actual = client.manifest_digest(repository, tag)
            if actual != image.digest:
                raise VerificationError(
                    f"{client.host}/{repository}:{tag} is {actual}, expected {image.digest}"
                )
        return verify_image_tree(
            client, repository, image.digest, hash_blobs=hash_blobs, expected=image
        )
