"""
Reading kbld's and imgpkg's `manifest.json` (the format is described in `kbldformat.py`).

imgpkg adds `Tag`, `OrigRef` and `Labels` to both descriptors; the reader accepts them.
Go matches JSON keys case-insensitively, so the reader refuses keys that differ from the
expected ones only by case: Go would read them, we would not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relocator.errors import IntegrityError, InvalidDigest, ManifestError, TarError
from relocator.oci import MAX_MANIFEST_BYTES, Descriptor, Digest, Manifest
from relocator.store.tarball import jsondoc
from relocator.store.tarball.errors import MemberDigestMismatch
from relocator.store.tarball.images import TarballImage, recorded_tags, reference_for
from relocator.store.tarball.kbldformat import MAX_DEPTH


@dataclass(frozen=True, slots=True)
class KbldContents:
    """What a kbld `manifest.json` holds, every manifest and config verified."""

    images: list[TarballImage]
    #: Manifest bytes and media type by digest.
    manifests: dict[Digest, tuple[bytes, str]]
    #: Config bytes by digest.
    configs: dict[Digest, bytes]
    #: Size of every layer a manifest lists, by digest (stored or not).
    layers: dict[Digest, Descriptor]


def read_manifest(raw: bytes, *, where: str) -> KbldContents:
    """
    Parse and verify kbld's `manifest.json`: every embedded manifest and config must
    hash to its digest and agree with the descriptors around it.

    Raises:
        TarError: Malformed, ambiguous or inconsistent descriptors.
        IntegrityError: An embedded manifest or config does not match its digest.
    """
    doc = jsondoc.load(raw, what=where)
    if not isinstance(doc, list):
        raise TarError(f"{where} is not a list of image descriptors")
    if (
        doc and isinstance(doc[0], dict) and "RepoTags" in doc[0]
        and not {"Image", "ImageIndex"} & set(doc[0])
    ):
        raise TarError(
            f"{where} is a 'docker save' manifest without an OCI layout; relocator reads "
            "OCI layout and kbld tarballs",
            hint="save it with Docker 25 or later (which adds an OCI layout), or push it "
            "with skopeo copy docker-archive:...",
        )
    reader = _Reader(where)
    images = [reader.top(item, i) for i, item in enumerate(doc)]
    return KbldContents(images, reader.manifests, reader.configs, reader.layers)


_TOP = ("ImageIndex", "Image")
_IMAGE = ("Refs", "Layers", "Config", "Manifest", "Tag", "OrigRef", "Labels")
_INDEX = ("Refs", "Images", "Indexes", "MediaType", "Digest", "Raw", "Tag", "OrigRef", "Labels")
_LAYER = ("MediaType", "Digest", "DiffID", "Size")
_CONFIG = ("Digest", "Raw")
_MANIFEST = ("MediaType", "Digest", "Raw")


class _Reader:
    def __init__(self, where: str) -> None:
        self.where = where
        self.manifests: dict[Digest, tuple[bytes, str]] = {}
        self.configs: dict[Digest, bytes] = {}
        self.layers: dict[Digest, Descriptor] = {}

    def top(self, item: Any, position: int) -> TarballImage:
        at = f"{self.where} entry {position}"
        fields = _fields(item, _TOP, at)
        index, image = fields.get("ImageIndex"), fields.get("Image")
        if (index is None) == (image is None):
            raise TarError(f"{at}: expected to have either an image or an image index")
        if index is not None:
            manifest = self.index(index, at, 0)
            described = _fields(index, _INDEX, at)
        else:
            manifest = self.image(image, at)
            described = _fields(image, _IMAGE, at)
        refs = _strings(described, "Refs", at)
        orig = _optional_str(described, "OrigRef", at)
        tag = _optional_str(described, "Tag", at)
        labels = described.get("Labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise TarError(f"{at}: Labels must map strings to strings")
        first = refs[0] if refs else None
        reference = reference_for(first, manifest.digest, where=at)
        return TarballImage(
            digest=manifest.digest,
            media_type=manifest.media_type,
            size=len(manifest.raw),
            reference=reference,
            name=orig or first,
            tags=recorded_tags([tag, (reference.tag or "") if reference else ""], where=at),
            annotations=dict(labels),
        )

    def index(self, item: Any, at: str, depth: int) -> Manifest:
        if depth > MAX_DEPTH:
            raise TarError(f"{at}: indexes nested deeper than {MAX_DEPTH} levels")
        fields = _fields(item, _INDEX, at)
        manifest = self._manifest(fields, at)
        if not manifest.is_index:
            raise TarError(f"{at}: ImageIndex {manifest.digest} is not an index")
        listed = {d.digest for d in manifest.manifests}
        children = [
            *(self.image(c, f"{at} image {i}") for i, c in enumerate(_list(fields, "Images", at))),
            *(
                self.index(c, f"{at} index {i}", depth + 1)
                for i, c in enumerate(_list(fields, "Indexes", at))
            ),
        ]
        for child in children:
            if child.digest not in listed:
                raise TarError(f"{at}: {child.digest} is not a child of {manifest.digest}")
        return manifest

    def image(self, item: Any, at: str) -> Manifest:
        fields = _fields(item, _IMAGE, at)
        manifest = self._manifest(_fields(fields.get("Manifest"), _MANIFEST, f"{at} Manifest"),
                                  at)
        if manifest.is_index or manifest.config is None:
            raise TarError(f"{at}: Image {manifest.digest} is an index")
        config = _fields(fields.get("Config"), _CONFIG, f"{at} Config")
        config_digest = _digest(config, f"{at} Config")
        if config_digest != manifest.config.digest:
            raise TarError(
                f"{at}: Config {config_digest} is not the config of {manifest.digest}"
            )
        data = _raw(config, f"{at} Config")
        _verify(config_digest, data, f"{at} Config")
        if len(data) != manifest.config.size:
            raise TarError(f"{at}: config {config_digest} has {len(data)} bytes, "
                           f"the manifest says {manifest.config.size}")
        self.configs[config_digest] = data
        described = [_fields(layer, _LAYER, f"{at} layer") for layer in _list(fields, "Layers", at)]
        listed = [(str(d.digest), d.size) for d in manifest.layers]
        if [(layer.get("Digest"), layer.get("Size")) for layer in described] != listed:
            raise TarError(f"{at}: Layers do not match the layers of {manifest.digest}")
        for layer in manifest.layers:
            self.layers.setdefault(layer.digest, layer)
        return manifest

    def _manifest(self, fields: dict[str, Any], at: str) -> Manifest:
        digest = _digest(fields, at)
        media_type = fields.get("MediaType")
        if not isinstance(media_type, str):
            raise TarError(f"{at}: MediaType must be a string")
        raw = _raw(fields, at)
        if len(raw) > MAX_MANIFEST_BYTES:
            raise TarError(f"{at}: manifest {digest} is larger than {MAX_MANIFEST_BYTES} bytes")
        _verify(digest, raw, at)
        try:
            manifest = Manifest.parse(raw, content_type=media_type, digest=digest, name=at)
        except ManifestError as exc:
            raise TarError(str(exc)) from None
        self.manifests.setdefault(digest, (raw, manifest.media_type))
        return manifest


def _fields(item: Any, known: tuple[str, ...], at: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise TarError(f"{at} must be an object")
    expected = {k.casefold(): k for k in known}
    for key in item:
        canonical = expected.get(key.casefold())
        if canonical is not None and canonical != key:
            raise TarError(
                f"{at} is ambiguous: key '{key}' differs from '{canonical}' only by case"
            )
    return item


def _list(fields: dict[str, Any], key: str, at: str) -> list[Any]:
    value = fields.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise TarError(f"{at}: {key} must be a list")
    return value


def _strings(fields: dict[str, Any], key: str, at: str) -> list[str]:
    values = _list(fields, key, at)
    if not all(isinstance(v, str) for v in values):
        raise TarError(f"{at}: {key} must be a list of strings")
    return values


def _optional_str(fields: dict[str, Any], key: str, at: str) -> str:
    value = fields.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TarError(f"{at}: {key} must be a string")
    return value


def _digest(fields: dict[str, Any], at: str) -> Digest:
    value = fields.get("Digest")
    try:
        return Digest.parse(value if isinstance(value, str) else "")
    except InvalidDigest:
        raise TarError(f"{at}: Digest {str(value)[:80]!r} is not a valid digest") from None


def _raw(fields: dict[str, Any], at: str) -> bytes:
    value = fields.get("Raw")
    if not isinstance(value, str):
        raise TarError(f"{at}: Raw must be a string")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise TarError(f"{at}: Raw is not valid Unicode text") from None


def _verify(digest: Digest, data: bytes, at: str) -> None:
    try:
        digest.verify(data)
    except IntegrityError as exc:
        raise MemberDigestMismatch(f"{at}: embedded {exc}") from None
