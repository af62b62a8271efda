"""
What a run packages, checked and indexed for the writers: every manifest and blob once,
which blobs are configs, and that nothing a manifest needs is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from relocator.errors import TarError
from relocator.oci import Descriptor, Digest, Manifest
from relocator.store.base import Contents, ImageEntry


@dataclass(frozen=True, slots=True)
class Package:
    """A run's `Contents`, deduplicated and checked."""

    images: tuple[ImageEntry, ...]
    #: Every manifest and index by digest, children before parents.
    manifests: dict[Digest, Manifest]
    #: Every blob by digest.
    blobs: dict[Digest, Descriptor]
    #: Digests used as a config by some image.
    configs: frozenset[Digest]

    @classmethod
    def of(cls, contents: Contents, *, where: str) -> Package:
        """
        Index `contents`, checking that it is complete.

        Raises:
            TarError: An index child or a distributable blob that some manifest needs is
                not part of the contents (a tarball must hold whole images).
        """
        manifests = {m.digest: m for m in contents.manifests}
        for entry in contents.images:
            manifests.setdefault(entry.manifest.digest, entry.manifest)
        blobs: dict[Digest, Descriptor] = {}
        for desc in contents.blobs:
            blobs.setdefault(desc.digest, desc)
        configs = frozenset(
            m.config.digest for m in manifests.values() if m.config is not None
        )
        for manifest in manifests.values():
            for child in manifest.manifests:
                if child.digest not in manifests:
                    raise TarError(
                        f"{where}: index {manifest.digest} needs {child.digest}, "
                        "which the run does not provide"
                    )
            for desc in manifest.blobs:
                if desc.digest not in blobs and desc.distributable:
                    raise TarError(
                        f"{where}: {manifest.digest} needs blob {desc.digest}, "
                        "which the run does not provide"
                    )
        return cls(tuple(contents.images), manifests, blobs, configs)

    def walk(self, root: Manifest) -> Iterator[Manifest]:
        """`root` and every manifest below it (children and subjects) once, parents first."""
        seen: set[Digest] = set()
        stack = [root]
        while stack:
            manifest = stack.pop()
            if manifest.digest in seen:
                continue
            seen.add(manifest.digest)
            yield manifest
            below = [*manifest.manifests]
            if manifest.subject is not None:
                below.append(manifest.subject)
            stack.extend(
                self.manifests[d.digest] for d in reversed(below) if d.digest in self.manifests
            )
