"""
Manifests and indexes that keep their raw bytes.

The digest of a manifest is the digest of its exact bytes, so the bytes are the truth
and the parsed fields ride along; relocator never re-serialises a manifest it copies.
Parsing is strict where a lenient parser would let two programs read one document two
ways (CVE-2021-41190): a document with both `manifests` and `layers`, a `mediaType` that
contradicts the `Content-Type`, duplicate keys, or keys that differ only in case (Go's
JSON decoder matches keys case-insensitively, Python's does not).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relocator.errors import ManifestError, UnsupportedManifest
from relocator.oci import mediatypes, strictjson
from relocator.oci.descriptor import Descriptor
from relocator.oci.digest import Digest

#: Registries must accept manifests of at least 4 MiB (distribution spec); we read no more.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

_KNOWN_KEYS = {
    k.lower(): k
    for k in (
        "schemaVersion", "mediaType", "config", "layers", "manifests", "subject",
        "artifactType", "annotations", "fsLayers", "history", "signatures",
    )
}
_SCHEMA1_HINT = "only Docker v2 and OCI images and indexes are supported"


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """A manifest or index: its raw bytes, their digest, and the fields we walk."""

    raw: bytes
    digest: Digest
    media_type: str
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(
        cls,
        raw: bytes,
        *,
        content_type: str | None = None,
        digest: Digest | None = None,
        name: str = "manifest",
    ) -> Manifest:
        """
        Parse and check a manifest or index.

        Args:
            raw: The bytes exactly as served or stored.
            content_type: The `Content-Type` it came with, if any.
            digest: The digest it was fetched by; the bytes must hash to it.
            name: How to name the document in errors (usually its reference).

        Raises:
            DigestMismatch: The bytes do not hash to `digest`.
            UnsupportedManifest: A schema 1 manifest or another unsupported type.
            ManifestError: Malformed or ambiguous JSON.
        """
        if digest is not None:
            digest.verify(raw)
        else:
            digest = Digest.of(raw)
        doc = _load_object(raw, name)
        _refuse_case_variants(doc, name)
        header_type = mediatypes.normalize(content_type)
        body_type = doc.get("mediaType")
        if body_type is not None and not isinstance(body_type, str):
            raise ManifestError(f"{name}: mediaType must be a string")
        if (
            doc.get("schemaVersion") == 1
            or "fsLayers" in doc
            or body_type in mediatypes.SCHEMA1_TYPES
            or header_type in mediatypes.SCHEMA1_TYPES
        ):
            raise UnsupportedManifest(
                f"{name} is a Docker schema 1 (v1) manifest; {_SCHEMA1_HINT}",
                hint="rebuild or re-push the image with a current Docker or buildah",
            )
        if doc.get("schemaVersion") != 2:
            raise ManifestError(f"{name}: schemaVersion must be 2")
        if "manifests" in doc and ("layers" in doc or "config" in doc):
            raise ManifestError(f"{name} is ambiguous: it has both manifests and layers/config")
        if (
            body_type is not None
            and header_type in mediatypes.MANIFEST_TYPES
            and body_type != header_type
        ):
            raise ManifestError(
                f"{name} is ambiguous: mediaType {body_type} but Content-Type {header_type}"
            )
        media_type = body_type or _guess_type(doc, header_type)
        if media_type not in mediatypes.MANIFEST_TYPES:
            raise UnsupportedManifest(f"{name} has unsupported media type {media_type}; "
                                      f"{_SCHEMA1_HINT}")
        annotations = doc.get("annotations") or {}
        if not isinstance(annotations, Mapping):
            raise ManifestError(f"{name}: annotations must be an object")
        artifact_type = doc.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise ManifestError(f"{name}: artifactType must be a string")
        subject = doc.get("subject")
        common: dict[str, Any] = {
            "raw": raw,
            "digest": digest,
            "media_type": media_type,
            "subject": Descriptor.from_json(subject, where=f"{name} subject")
            if subject is not None
            else None,
            "artifact_type": artifact_type,
            "annotations": dict(annotations),
        }
        if mediatypes.is_index(media_type):
            if "config" in doc or "layers" in doc:
                raise ManifestError(f"{name} is an index with config or layers")
            return cls(manifests=_descriptors(doc.get("manifests"), name, "manifests"), **common)
        if "manifests" in doc:
            raise ManifestError(f"{name} is an image manifest with manifests")
        if "config" not in doc:
            raise ManifestError(f"{name} has no config")
        return cls(
            config=Descriptor.from_json(doc["config"], where=f"{name} config"),
            layers=_descriptors(doc.get("layers", []), name, "layers"),
            **common,
        )

    @property
    def is_index(self) -> bool:
        """Whether this is an image index / manifest list."""
        return mediatypes.is_index(self.media_type)

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """The blobs an image manifest needs: config first, then layers; none for an index."""
        if self.config is None:
            return ()
        return (self.config, *self.layers)

    def descriptor(self) -> Descriptor:
        """A descriptor naming this manifest."""
        return Descriptor(
            media_type=self.media_type,
            digest=self.digest,
            size=len(self.raw),
            artifact_type=self.artifact_type,
        )


def _load_object(raw: bytes, name: str) -> dict[str, Any]:
    try:
        doc = strictjson.loads(raw)
    except strictjson.DuplicateKey as exc:
        raise ManifestError(f"{name} is ambiguous: {exc}") from None
    except (ValueError, RecursionError):
        raise ManifestError(f"{name} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{name} is not a JSON object")
    return doc


def _refuse_case_variants(doc: Mapping[str, Any], name: str) -> None:
    for key in doc:
        # casefold, not lower: Go also folds 'ſ' to 's' and the Kelvin sign to 'k'.
        canonical = _KNOWN_KEYS.get(key.casefold())
        if canonical is not None and canonical != key:
            raise ManifestError(f"{name} is ambiguous: key '{key}' differs from '{canonical}'")


def _guess_type(doc: Mapping[str, Any], header_type: str | None) -> str:
    if header_type in mediatypes.MANIFEST_TYPES:
        return header_type
    # OCI documents may omit mediaType; the shape then decides.
    if "manifests" in doc:
        return mediatypes.OCI_INDEX
    if "config" in doc:
        return mediatypes.OCI_MANIFEST
    return header_type or "unknown"


def _descriptors(items: Any, name: str, key: str) -> tuple[Descriptor, ...]:
    if not isinstance(items, list):
        raise ManifestError(f"{name}: {key} must be a list")
    return tuple(
        Descriptor.from_json(item, where=f"{name} {key}[{i}]") for i, item in enumerate(items)
    )
