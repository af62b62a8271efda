"""Content descriptors and platforms, as they appear inside manifests and indexes."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from relocator.errors import InputError, InvalidDigest, ManifestError
from relocator.oci import mediatypes
from relocator.oci.digest import Digest

#: Sizes are int64 in the image spec; a descriptor claiming this much or more is refused.
MAX_SIZE = 2**63
# Keys as the specs spell them, by their case-folded form: Go's JSON decoder matches keys
# case-insensitively, so `Digest` beside `digest` means one thing to us and another to Go.
_DESCRIPTOR_KEYS = {
    k.casefold(): k
    for k in ("mediaType", "digest", "size", "urls", "annotations", "platform", "artifactType",
              "data")
}
# Shared by every descriptor without annotations (nearly all): a manifest of a thousand
# layers must not hold a thousand empty dicts.
_NO_ANNOTATIONS: Mapping[str, str] = MappingProxyType({})
_PLATFORM_KEYS = {
    k.casefold(): k
    for k in ("architecture", "os", "os.version", "os.features", "variant", "features")
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    """An image's platform as an index entry declares it."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Platform:
        """
        Parse `os/arch[/variant][:osversion]`, as kbld's and docker's `--platform` do.

        Raises:
            InputError: The text is not of that shape.
        """
        spec, _, os_version = text.partition(":")
        parts = spec.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InputError(
                f"Invalid platform '{text}'", hint="use os/arch[/variant], e.g. linux/arm64/v8"
            )
        return cls(
            os=parts[0],
            architecture=parts[1],
            variant=parts[2] if len(parts) == 3 else None,
            os_version=os_version or None,
        )

    @classmethod
    def from_json(cls, doc: Any) -> Platform:
        """Read the `platform` object of an index entry."""
        if not isinstance(doc, Mapping):
            raise ManifestError("platform must be an object")
        _refuse_case_variants(doc, _PLATFORM_KEYS, "platform")
        os_name, arch = doc.get("os"), doc.get("architecture")
        if not isinstance(os_name, str) or not isinstance(arch, str):
            raise ManifestError("platform needs string 'os' and 'architecture'")
        variant = doc.get("variant")
        os_version = doc.get("os.version")
        features = doc.get("os.features") or []
        if not isinstance(features, list):
            raise ManifestError("platform 'os.features' must be a list")
        return cls(
            os=os_name,
            architecture=arch,
            variant=variant if isinstance(variant, str) else None,
            os_version=os_version if isinstance(os_version, str) else None,
            os_features=tuple(f for f in features if isinstance(f, str)),
        )

    def matches(self, wanted: Platform) -> bool:
        """
        Whether this platform satisfies `wanted`: os and architecture equal, variant and
        os version equal where `wanted` names them, and every os feature `wanted` names
        present here (as kbld's platform selection matches).
        """
        return (
            self.os == wanted.os
            and self.architecture == wanted.architecture
            and (wanted.variant is None or self.variant == wanted.variant)
            and (wanted.os_version is None or self.os_version == wanted.os_version)
            and set(wanted.os_features) <= set(self.os_features)
        )

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        if self.variant:
            text += f"/{self.variant}"
        if self.os_version:
            text += f":{self.os_version}"
        return text


@dataclass(frozen=True, slots=True, kw_only=True)
class Descriptor:
    """What a manifest says about a piece of content: its type, digest and size."""

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    artifact_type: str | None = None

    @classmethod
    def from_json(cls, doc: Any, *, where: str = "descriptor") -> Descriptor:
        """
        Read a descriptor object, validating every field we rely on.

        Raises:
            ManifestError: A field is missing or of the wrong type; the digest is invalid.
        """
        if not isinstance(doc, Mapping):
            raise ManifestError(f"{where} must be an object")
        _refuse_case_variants(doc, _DESCRIPTOR_KEYS, where)
        media_type, digest, size = doc.get("mediaType"), doc.get("digest"), doc.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise ManifestError(f"{where} has no mediaType")
        if not isinstance(digest, str):
            raise ManifestError(f"{where} has no digest")
        # bool is an int in Python; a size of `true` is garbage, not 1. Sizes are int64
        # in the spec (and in every registry): anything larger is hostile, and would
        # overflow a tar header or a Range header much later.
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size < MAX_SIZE:
            raise ManifestError(f"{where} has no valid size (a whole number from 0 to 2^63-1)")
        try:
            parsed = Digest.parse(digest)
        except InvalidDigest as exc:
            raise ManifestError(f"{where}: {exc}") from None
        urls = doc.get("urls") or []
        annotations = doc.get("annotations") or {}
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ManifestError(f"{where} has invalid urls")
        if not isinstance(annotations, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise ManifestError(f"{where} has invalid annotations")
        platform = doc.get("platform")
        artifact_type = doc.get("artifactType")
        return cls(
            # A handful of media types, each repeated by every layer: one string each.
            media_type=sys.intern(media_type),
            digest=parsed,
            size=size,
            urls=tuple(urls),
            annotations=dict(annotations) if annotations else _NO_ANNOTATIONS,
            platform=Platform.from_json(platform) if platform is not None else None,
            artifact_type=artifact_type if isinstance(artifact_type, str) else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The descriptor as a JSON object (for documents we write, such as index.json)."""
        doc: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            doc["urls"] = list(self.urls)
        if self.annotations:
            doc["annotations"] = dict(self.annotations)
        if self.artifact_type:
            doc["artifactType"] = self.artifact_type
        if self.platform is not None:
            platform: dict[str, Any] = {
                "architecture": self.platform.architecture,
                "os": self.platform.os,
            }
            if self.platform.variant:
                platform["variant"] = self.platform.variant
            if self.platform.os_version:
                platform["os.version"] = self.platform.os_version
            if self.platform.os_features:
                platform["os.features"] = list(self.platform.os_features)
            doc["platform"] = platform
        return doc

    @property
    def distributable(self) -> bool:
        """Whether this layer may be copied (not foreign / non-distributable)."""
        return mediatypes.is_distributable(self.media_type)


def _refuse_case_variants(doc: Mapping[str, Any], keys: Mapping[str, str], where: str) -> None:
    for key in doc:
        canonical = keys.get(str(key).casefold())
        if canonical is not None and canonical != key:
            raise ManifestError(f"{where} is ambiguous: key '{key}' differs from '{canonical}'")
