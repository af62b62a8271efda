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
from typing import Any

from relocator.errors import InvalidDigest, TarError
from relocator.oci import MAX_MANIFEST_BYTES, Descriptor, Digest, Manifest
from relocator.store.tarball import jsondoc
from relocator.store.tarball.contents import Package
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
