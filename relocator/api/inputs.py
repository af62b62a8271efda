"""
The images a request's input files name, and the lock files written about them.

This is where what the user wrote (YAML values, overrides of lock files) becomes
references the engine can copy: every one in digest form, each image once however many
times and spellings it is named.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from relocator import config
from relocator.engine.events import Notice
from relocator.errors import InputError
from relocator.oci import Digest, Reference, check_tag, shown

from .requests import LockFiles
from .session import Session


@dataclass(frozen=True, slots=True)
class InputImage:
    """An image the inputs name, in digest form, with every string that names it."""

    #: `registry/repository@digest`: what is copied.
    reference: Reference
    #: Strings that name it in the inputs (the found value, an override's image and
    #: newImage): each is rewritten in the output and becomes an entry of a lock.
    names: tuple[str, ...]
    #: The reference as first written, with its tag if it had one (`app:1.0@sha256:...`):
    #: the name a tarball records for it.
    written: Reference

    @property
    def digest(self) -> Digest:
        """The image's digest."""
        digest = self.reference.digest
        if digest is None:  # pragma: no cover - images_of only builds digest references
            raise InputError(f"{self.reference} has no digest")
        return digest

    @property
    def tags(self) -> tuple[str, ...]:
        """
        Tags the inputs named explicitly for this image (`nginx:1.25` in a lock's
        override, `app:2.0@sha256:...` in YAML); an implied `latest` does not count.

        Raises:
            InvalidReference: A name's tag is not a valid tag (an override's `image` is
                matched as written, so it was never parsed as a reference).
        """
        found = []
        for name in (*self.names, str(self.written)):
            last = name.rsplit("/", 1)[-1].split("@", 1)[0]
            if ":" in last:
                found.append(check_tag(last.split(":", 1)[1], where=f"image {shown(name)}"))
        return tuple(dict.fromkeys(found))


def load(
    files: Sequence[str], session: Session, *, max_bytes: int, stdin: str | None = None
) -> config.Inputs:
    """Read the input `files` (`stdin`, else the process's, for `-`); warnings are notices."""
    if "-" in files and stdin is None:
        # One character more than allowed is enough to tell "too large" (a character is
        # at least one byte) without reading an endless stream into memory.
        stdin = sys.stdin.read(max_bytes + 1)
    inputs = config.load_inputs(list(files), stdin_text=stdin, max_bytes=max_bytes)
    for warning in inputs.warnings:
        session.emit(Notice(warning))
    return inputs


def images_of(inputs: config.Inputs) -> list[InputImage]:
    """
    Every image the inputs name, each once: found values (through their overrides) and
    the preresolved overrides of lock files given alone.

    Raises:
        InputError: A reference is not in digest form, or does not parse.
    """
    by_digest: dict[Reference, tuple[Reference, list[str]]] = {}

    def add(value: str, target: str, where: str, names: list[str]) -> None:
        written = parse_reference(target, where)
        if written.digest is None:
            raise InputError(
                f"Expected image '{value}' to be in digest form (i.e. image@digest)",
                hint="resolve tags first: relocator resolve -f FILE --lock-output LOCK, "
                "then pass -f LOCK",
            )
        # The tag, if any, is only a label; the digest names the content.
        ref = written.with_digest(written.digest)
        by_digest.setdefault(ref, (written, []))[1].extend(names)

    for found in inputs.found_images():
        override = found.override
        target = override.new_image if override is not None else found.value
        add(found.value, target, found.where, [found.value, target])
    for override in inputs.preresolved():
        names = [override.new_image] + ([override.image] if override.image else [])
        add(override.new_image, override.new_image, override.where, names)
    return [
        InputImage(ref, tuple(dict.fromkeys(names)), written)
        for ref, (written, names) in by_digest.items()
    ]


def require_images(images: list[InputImage], files: Sequence[str]) -> list[InputImage]:
    """
    `images`, unless there are none: a copy of nothing is a mistake (a wrong file, or
    images under keys the search rules do not cover), not a success.

    Raises:
        InputError: No input names an image.
    """
    if not images:
        named = ", ".join("stdin" if f == "-" else f for f in files)
        raise InputError(
            f"no images found in {named}",
            hint="images are found under `image` keys, and under the keys the searchRules "
            "of a kbld Config passed with -f name",
        )
    return images


def parse_reference(text: str, where: str) -> Reference:
    """`Reference.parse`, with the input's location in the error."""
    try:
        return Reference.parse(text)
    except InputError as exc:
        raise InputError(f"{where}: {exc}" if where else str(exc)) from None


def write_locks(
    locks: LockFiles,
    entries: list[tuple[str, str]],
    inputs: config.Inputs,
    *,
    origins: Mapping[str, Sequence[config.Origin]] | None = None,
) -> None:
    """
    Write the lock files `locks` asks for (kbld, imgpkg), atomically, mode 0600; the
    imgpkg lock records each image's `origins` (by found value) as kbld does.
    """
    try:
        if locks.kbld:
            config.write_kbld_lock(
                locks.kbld, entries, search_rules=inputs.config.user_search_rules
            )
        if locks.imgpkg:
            config.write_imgpkg_lock(locks.imgpkg, entries, origins=origins)
    except OSError as exc:
        raise InputError(f"cannot write lock file: {exc}") from None
