"""
Where an image reference came from, as kbld records it.

kbld notes each image's origins (the tag it was resolved from, the lock that
preresolved it, the platform picked from an index) in two places, and relocator writes
both the same way so that tools reading them see no difference:

- the `kbld.k14s.io/images` annotation on every resolved document that names images:
  a YAML list of `{url, origins}`, sorted by URL, leaving out images that were already
  digests (and reading `null` when that leaves nothing, as kbld writes it);
- the `kbld.carvel.dev/origins` annotation of each image in an imgpkg `ImagesLock`,
  which is also read back from a lock given as input.

An origin is plain data: a mapping with one of kbld's kinds (`resolved`, `preresolved`,
`platformSelected`, `tagged`, `git`, `local`) as its only key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from relocator.config.emit import dump_plain
from relocator.config.yamltree import STR, Map, Node, ParseProblem, Scalar, Seq, parse_yaml_stream
from relocator.errors import ConfigError
from relocator.oci import Platform

#: The annotation kbld puts on resolved documents.
IMAGES_ANNOTATION = "kbld.k14s.io/images"
#: The annotation holding an image's origins in an imgpkg `ImagesLock`.
ORIGINS_ANNOTATION = "kbld.carvel.dev/origins"

#: One origin: `{"resolved": {"tag": ..., "url": ...}}` and the like.
Origin = Mapping[str, Any]

_KINDS = frozenset({"resolved", "preresolved", "platformSelected", "tagged", "git", "local"})


def resolved(url: str, tag: str | None) -> Origin:
    """The tag `url` was resolved from (kbld leaves `tag` out when there is none)."""
    inner = {"url": url}
    if tag:
        inner["tag"] = tag
    return {"resolved": inner}


def preresolved(url: str) -> Origin:
    """An image a lock file (a preresolved override) named as final."""
    return {"preresolved": {"url": url}}


def platform_selected(index: str, platform: Platform) -> Origin:
    """The image of `platform` picked from the index `index` (a digest reference)."""
    inner = {"index": index, "os": platform.os, "architecture": platform.architecture}
    if platform.variant:
        inner["variant"] = platform.variant
    return {"platformSelected": inner}


def images_annotation(images: Iterable[tuple[str, Sequence[Origin]]]) -> str:
    """
    The `kbld.k14s.io/images` annotation of a document naming `images` (final URL,
    origins): sorted by URL, repeats and images without origins left out.
    """
    entries: list[dict[str, Any]] = []
    for url, origins in sorted(images, key=lambda item: item[0]):
        if not origins:
            continue
        entry = {"origins": [dict(o) for o in origins], "url": url}
        if entry not in entries:
            entries.append(entry)
    if not entries:
        # kbld marshals its empty list as null, and writes that.
        return "null\n"
    return dump_plain(entries)


def annotate(root: Map, text: str) -> Map:
    """
    `root` with `metadata.annotations["kbld.k14s.io/images"]` set to `text` (a literal
    block), creating `metadata` and `annotations` at the end of their parents if they
    are missing or null. A document whose `metadata` or `annotations` is something else
    than a mapping is left as it is: it is not a resource kbld could annotate.
    """
    line = root.line
    value = Scalar(text, STR, text, line, "|")
    metadata = root.get("metadata")
    if not _mapping_or_null(metadata):
        return root
    metadata = metadata if isinstance(metadata, Map) else Map((), line)
    annotations = metadata.get("annotations")
    if not _mapping_or_null(annotations):
        return root
    annotations = annotations if isinstance(annotations, Map) else Map((), line)
    annotations = _with(annotations, IMAGES_ANNOTATION, value)
    return _with(root, "metadata", _with(metadata, "annotations", annotations))


def _mapping_or_null(node: Node | None) -> bool:
    return node is None or isinstance(node, Map) or (
        isinstance(node, Scalar) and node.value is None
    )


def _with(parent: Map, key: str, value: Node) -> Map:
    """`parent` with `key` set to `value`: in place if present, else appended."""
    items = list(parent.items)
    for i, (k, _) in enumerate(items):
        if k.text == key:
            items[i] = (k, value)
            return Map(tuple(items), parent.line)
    items.append((Scalar(key, STR, key, parent.line), value))
    return Map(tuple(items), parent.line)


def origins_text(origins: Sequence[Origin]) -> str:
    """The `kbld.carvel.dev/origins` annotation of one `ImagesLock` image."""
    return dump_plain([dict(o) for o in origins])


def parse_origins_text(text: str, *, where: str) -> tuple[Origin, ...]:
    """
    The origins in an `ImagesLock`'s `kbld.carvel.dev/origins` annotation.

    Raises:
        ConfigError: Not a YAML list of kbld origins.
    """
    try:
        docs = parse_yaml_stream(text)
    except ParseProblem as problem:
        raise ConfigError(f"{where}: {ORIGINS_ANNOTATION}: {problem.message}") from None
    root = docs[0] if docs else None
    return parse_origins(root, where=where) if root is not None else ()


def parse_origins(node: Map | Seq | Scalar, *, where: str) -> tuple[Origin, ...]:
    """
    A list of origins as a kbld `Config` override or an `ImagesLock` writes it.

    Raises:
        ConfigError: Not a list of mappings each with one known origin kind.
    """
    if not isinstance(node, Seq):
        raise ConfigError(f"{where}: origins must be a list")
    found = []
    for item in node.items:
        if not isinstance(item, Map) or len(item.items) != 1:
            raise ConfigError(f"{where}:{item.line}: an origin must be a mapping with one kind")
        (key, value), = item.items
        if key.text not in _KINDS:
            raise ConfigError(
                f"{where}:{item.line}: unknown origin kind '{key.text[:80]}' "
                f"(expected one of {', '.join(sorted(_KINDS))})"
            )
        found.append({key.text: _plain(value, where)})
    return tuple(found)


def _plain(node: Map | Seq | Scalar, where: str) -> Any:
    if isinstance(node, Map):
        return {k.text: _plain(v, where) for k, v in node.items}
    if isinstance(node, Seq):
        return [_plain(v, where) for v in node.items]
    if isinstance(node.value, (str, bool)) or node.value is None:
        return node.value
    # Numbers and dates in an origin are text to kbld (Go strings): keep them as written.
    return node.text
