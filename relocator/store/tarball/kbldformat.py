"""
kbld's and imgpkg's tarball format (carvel.md §2.1, §2.2).

    manifest.json          JSON array of descriptors (Go field names, PascalCase) that
                           embed every manifest and config as a string
    sha256-<hex>.tar.gz    one per distributable layer, by digest, whatever its type

    [{"ImageIndex": null,
      "Image": {"Refs": [...], "Layers": [{"MediaType", "Digest", "DiffID", "Size"}],
                "Config": {"Digest", "Raw"}, "Manifest": {"MediaType", "Digest", "Raw"}}},
     {"ImageIndex": {"Refs", "Images", "Indexes", "MediaType", "Digest", "Raw"},
      "Image": null}]

imgpkg adds `Tag`, `OrigRef` and `Labels` to both descriptors; the reader accepts them,
the writer writes kbld's fields only. Foreign (non-distributable) layers are listed but
never stored. Go matches JSON keys case-insensitively, so the reader refuses keys that
differ from the expected ones only by case: Go would read them, we would not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relocator.errors import IntegrityError, InvalidDigest, ManifestError, TarError
from relocator.oci import MAX_MANIFEST_BYTES, Descriptor, Digest, Manifest
from relocator.store.tarball import jsondoc
from relocator.store.tarball.contents import Package
from relocator.store.tarball.errors import MemberDigestMismatch
from relocator.store.tarball.images import TarballImage, recorded_tags, reference_for
from relocator.store.tarball.layout import Planned
from relocator.store.tarball.names import MANIFEST_JSON, kbld_layer_name

#: Configs are embedded in manifest.json, so they are held in memory; like manifests,
#: no real config comes near 4 MiB.
MAX_CONFIG_BYTES = MAX_MANIFEST_BYTES
#: Indexes of indexes deeper than this are not real images (as in the engine's plan).
MAX_DEPTH = 8
# A config byte takes at most 6 bytes inside a JSON string (`\u00XX`).
_ESCAPED_WORST = 6
# The longest DiffID written: "sha512:" and 128 hex digits.
_DIFF_ID_LONGEST = len("sha512:") + 128


def layers(package: Package) -> list[Descriptor]:
    """The distributable layers stored as members, by digest."""
    found: dict[Digest, Descriptor] = {}
    for manifest in package.manifests.values():
        for layer in manifest.layers:
            if layer.digest in package.blobs:
                found.setdefault(layer.digest, package.blobs[layer.digest])
    return [found[d] for d in sorted(found, key=str)]


def members(package: Package, *, where: str) -> list[Planned]:
    """
    `manifest.json` (reserved at its largest possible size, written at commit when the
    configs it embeds have arrived), then one member per layer.

    Raises:
        TarError: A config is too big to embed.
    """
    for digest in package.configs:
        desc = package.blobs.get(digest)
        if desc is not None and desc.size > MAX_CONFIG_BYTES:
            raise TarError(
                f"{where}: config {digest} has {desc.size} bytes; the kbld format embeds "
                f"configs in manifest.json and relocator caps them at {MAX_CONFIG_BYTES}",
                hint="use the default --format oci",
            )
    planned = [Planned(name=MANIFEST_JSON, size=reservation(package))]
    planned += [
        Planned(name=kbld_layer_name(d.digest), size=d.size, digest=d.digest)
        for d in layers(package)
    ]
    return planned


def reservation(
    package: Package, extra: Mapping[Digest, Mapping[str, Any]] | None = None, *, embed: bool = True
) -> int:
    """
    The most bytes `manifest.json` can take: its exact size without configs and DiffIDs
    (unknown until the configs arrive), plus their worst case. `extra` keys go on the
    entries of the digests they are for (Docker's, in the default format); without
    `embed`, only those keys are written (see `ociformat.manifest_json`), and the
    reservation is never smaller than that.

    The unused tail is filled with spaces at commit, which JSON readers skip.
    """
    alone = len(jsondoc.dump(list((extra or {}).values())))
    if not embed:
        return alone
    renderer = _Renderer(package, None, extra=extra)
    skeleton = renderer.render()
    return max(
        alone,
        len(skeleton)
        + _ESCAPED_WORST * renderer.config_bytes
        + _DIFF_ID_LONGEST * renderer.diff_ids,
    )


def render(
    package: Package,
    configs: Mapping[Digest, bytes],
    *,
    where: str,
    extra: Mapping[Digest, Mapping[str, Any]] | None = None,
) -> bytes:
    """
    kbld's `manifest.json` for `package`, as Go's encoder writes it; `extra` keys go on
    the top-level entries of the digests they are for.

    Raises:
        TarError: A config or manifest is not UTF-8 (Go strings would mangle it).
    """
    return _Renderer(package, configs, where=where, extra=extra).render()


class _Renderer:
    """Builds the descriptor list; without configs, counts what it left out."""

    def __init__(
        self,
        package: Package,
        configs: Mapping[Digest, bytes] | None,
        *,
        where: str = "",
        extra: Mapping[Digest, Mapping[str, Any]] | None = None,
    ) -> None:
        self._package = package
        self._configs = configs
        self._where = where
        self._extra = extra or {}
        self.config_bytes = 0
        self.diff_ids = 0

    def render(self) -> bytes:
        package = self._package
        refs: dict[Digest, list[str]] = {}
        # imgpkg's `Tag`: the tag it re-applies on import (how a bundle keeps its tag).
        tags: dict[Digest, str] = {}
        for entry in package.images:
            digest = entry.manifest.digest
            refs.setdefault(digest, [])
            tag = next((t for t in (entry.reference.tag, *entry.tags) if t), None)
            if tag is not None:
                tags.setdefault(digest, tag)
            ref = f"{entry.reference.name}@{digest}"
            if ref not in refs[digest]:
                refs[digest].append(ref)
        repos = {d: r[0].rsplit("@", 1)[0] for d, r in refs.items()}
        nested: set[Digest] = set()
        for digest in refs:
            self._nest(package.manifests[digest], nested, 0)
        # Manifests no image reaches through index children (the subjects of artifacts)
        # would be lost: kbld's format has no place for them but the top level.
        for entry in package.images:
            for manifest in package.walk(entry.manifest):
                if manifest.digest not in nested and manifest.digest not in refs:
                    refs[manifest.digest] = [f"{repos[entry.manifest.digest]}@{manifest.digest}"]
                    self._nest(manifest, nested, 0)
        items = [
            {**self._item(package.manifests[d], r, tags.get(d)), **self._extra.get(d, {})}
            for d, r in refs.items()
        ]
        items.sort(key=_sort_key)
        return jsondoc.dump_like_go(items)

    def _nest(self, manifest: Manifest, nested: set[Digest], depth: int) -> None:
        nested.add(manifest.digest)
        if depth < MAX_DEPTH:
            for child in manifest.manifests:
                self._nest(self._package.manifests[child.digest], nested, depth + 1)

    def _item(self, manifest: Manifest, refs: list[str], tag: str | None) -> dict[str, Any]:
        if manifest.is_index:
            described = self._index(manifest, refs, 0)
        else:
            described = self._image(manifest, refs)
        if tag is not None:
            described["Tag"] = tag
        if manifest.is_index:
            return {"ImageIndex": described, "Image": None}
        return {"ImageIndex": None, "Image": described}

    def _index(self, manifest: Manifest, refs: list[str], depth: int) -> dict[str, Any]:
        if depth > MAX_DEPTH:
            raise TarError(f"{self._where}: {manifest.digest} nests indexes too deep")
        repo = refs[0].rsplit("@", 1)[0]
        images: list[dict[str, Any]] = []
        indexes: list[dict[str, Any]] = []
        for child in manifest.manifests:
            node = self._package.manifests[child.digest]
            child_refs = [f"{repo}@{child.digest}"]
            if node.is_index:
                indexes.append(self._index(node, child_refs, depth + 1))
            else:
                images.append(self._image(node, child_refs))
        return {
            "Refs": refs,
            # Go writes an empty slice it never appended to as null.
            "Images": images or None,
            "Indexes": indexes or None,
            "MediaType": manifest.media_type,
            "Digest": str(manifest.digest),
            "Raw": self._text(manifest.raw, manifest.digest),
        }

    def _image(self, manifest: Manifest, refs: list[str]) -> dict[str, Any]:
        config = manifest.config
        if config is None:  # pragma: no cover - only indexes lack a config
            raise TarError(f"{self._where}: {manifest.digest} has no config")
        if self._configs is None:
            self.config_bytes += config.size
            self.diff_ids += len(manifest.layers)
            raw_config, diff_ids = "", []
        else:
            data = self._configs[config.digest]
            raw_config, diff_ids = self._text(data, config.digest), _diff_ids(data)
        layer_items = [
            {
                "MediaType": layer.media_type,
                "Digest": str(layer.digest),
                "DiffID": diff_ids[i] if i < len(diff_ids) else "",
                "Size": layer.size,
            }
            for i, layer in enumerate(manifest.layers)
        ]
        return {
            "Refs": refs,
            "Layers": layer_items or None,
            "Config": {"Digest": str(config.digest), "Raw": raw_config},
            "Manifest": {
                "MediaType": manifest.media_type,
                "Digest": str(manifest.digest),
                "Raw": self._text(manifest.raw, manifest.digest),
            },
        }

    def _text(self, raw: bytes, digest: Digest) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TarError(
                f"{self._where}: {digest} is not UTF-8 text; the kbld format cannot embed it",
                hint="use the default --format oci",
            ) from None


def _sort_key(item: dict[str, Any]) -> str:
    """kbld's SortKey: an index's digest; an image's manifest and config digests."""
    if item["ImageIndex"] is not None:
        return str(item["ImageIndex"]["Digest"])
    image = item["Image"]
    return f"{image['Manifest']['Digest']}/{image['Config']['Digest']}"


def _diff_ids(config: bytes) -> list[str]:
    """The config's `rootfs.diff_ids` ("" for entries that are not digests)."""
    try:
        doc = jsondoc.load(config, what="config")
    except TarError:
        return []
    rootfs = doc.get("rootfs") if isinstance(doc, dict) else None
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list):
        return []
    return [_digest_text(value) for value in ids]


def _digest_text(value: Any) -> str:
    try:
        return str(Digest.parse(value if isinstance(value, str) else ""))
    except InvalidDigest:
        return ""


# -- reading ---------------------------------------------------------------------------


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
