"""
The two lock formats relocator writes: kbld's `Config` of preresolved overrides and
imgpkg's `ImagesLock`. Both are written as kbld and imgpkg write them (keys sorted,
entries sorted), so either tool reads ours and diffs between runs stay small.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from relocator.config.emit import dump_plain
from relocator.config.files import atomic_write_text
from relocator.config.kbld import (
    IMAGES_LOCK_KIND,
    IMGPKG_API_VERSION,
    KBLD_API_VERSION,
    KBLD_ID_ANNOTATION,
    digest_reference,
)
from relocator.config.origins import ORIGINS_ANNOTATION, Origin, origins_text
from relocator.config.search import DEFAULT_SEARCH_RULE, SearchRule
from relocator.errors import ConfigError

#: What a kbld lock we write says in `minimumRequiredVersion`. kbld writes its own
#: version there, but our lock uses nothing newer than preresolved overrides, which kbld
#: reads since 0.21.0 (the version its packaging docs show); naming our own version or
#: a recent kbld would make older kbld installations refuse a lock they can read.
LOCK_MINIMUM_REQUIRED_VERSION = "0.21.0"


def kbld_lock_text(
    entries: Iterable[tuple[str, str]], *, search_rules: Sequence[SearchRule] = ()
) -> str:
    """
    A kbld lock: a `Config` whose overrides map each found value to its final reference.

    Args:
        entries: `(image as found, new image)` pairs, in any order; exact repeats are
            dropped.
        search_rules: The user's rules (`KbldConfig.user_search_rules`), carried along so
            the lock finds the same values again; left out when there are none besides
            the default `image` key rule.

    Returns:
        The lock's text; overrides sorted by image, each with keys in alphabetical order.

    Raises:
        ConfigError: One image maps to two different new images, or a value is empty.
    """
    doc: dict[str, object] = {
        "apiVersion": KBLD_API_VERSION,
        "kind": "Config",
        "minimumRequiredVersion": LOCK_MINIMUM_REQUIRED_VERSION,
    }
    pairs = _unique_pairs(entries, "lock override")
    if pairs:
        doc["overrides"] = [{"image": i, "newImage": n, "preresolved": True} for i, n in pairs]
    if any(rule != DEFAULT_SEARCH_RULE for rule in search_rules):
        doc["searchRules"] = [rule.to_json() for rule in search_rules]
    return dump_plain(doc)


def imgpkg_lock_text(
    entries: Iterable[tuple[str, str]],
    *,
    origins: Mapping[str, Sequence[Origin]] | None = None,
) -> str:
    """
    An imgpkg `ImagesLock`, written as kbld writes it (leading `---`, keys sorted).

    Args:
        entries: `(id, image)` pairs: the value as found in the inputs (kept in the
            `kbld.carvel.dev/id` annotation) and its digest reference.
        origins: Where each id's image came from, kept in the `kbld.carvel.dev/origins`
            annotation (ids without origins get none).

    Returns:
        The lock's text, images sorted by id.

    Raises:
        ConfigError: An image is not a digest reference, or one id has two images.
    """
    doc: dict[str, object] = {"apiVersion": IMGPKG_API_VERSION, "kind": IMAGES_LOCK_KIND}
    pairs = _unique_pairs(entries, "ImagesLock id")
    for _, image in pairs:
        if digest_reference(image) is None:
            raise ConfigError(f"Expected ref to be in digest form, got '{image}'")
    images = []
    for ident, image in pairs:
        notes = {KBLD_ID_ANNOTATION: ident}
        recorded = (origins or {}).get(ident)
        if recorded:
            notes[ORIGINS_ANNOTATION] = origins_text(recorded)
        images.append({"annotations": notes, "image": image})
    if images:
        doc["images"] = images
    return "---\n" + dump_plain(doc)


def write_kbld_lock(
    path: str | os.PathLike[str],
    entries: Iterable[tuple[str, str]],
    *,
    search_rules: Sequence[SearchRule] = (),
) -> None:
    """
    Write `kbld_lock_text(entries, search_rules=...)` to `path` atomically, mode 0600.

    Raises:
        ConfigError: As `kbld_lock_text`; nothing is written then.
        OSError: The file cannot be written; `path` is left as it was.
    """
    atomic_write_text(path, kbld_lock_text(entries, search_rules=search_rules))


def write_imgpkg_lock(
    path: str | os.PathLike[str],
    entries: Iterable[tuple[str, str]],
    *,
    origins: Mapping[str, Sequence[Origin]] | None = None,
) -> None:
    """
    Write `imgpkg_lock_text(entries, origins=...)` to `path` atomically, mode 0600.

    Raises:
        ConfigError: As `imgpkg_lock_text`; nothing is written then.
        OSError: The file cannot be written; `path` is left as it was.
    """
    atomic_write_text(path, imgpkg_lock_text(entries, origins=origins))


def _unique_pairs(entries: Iterable[tuple[str, str]], what: str) -> list[tuple[str, str]]:
    chosen: dict[str, str] = {}
    for key, value in entries:
        if not key or not value:
            raise ConfigError(f"{what} needs a non-empty image and new image: {key!r} -> {value!r}")
        if chosen.setdefault(key, value) != value:
            raise ConfigError(f"{what} '{key}' would map to both '{chosen[key]}' and '{value}'")
    return sorted(chosen.items())
