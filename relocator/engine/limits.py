"""
Caps on what one source may make a run hold: entries of an index, layers of an image,
manifest bytes in one plan.

A manifest is at most 4 MiB, but nothing else bounds a source: a 4 MiB index names
25,000 children, each of them 4 MiB again, and a plan keeps every manifest until it is
pushed. The defaults are far above any real image (indexes have a few dozen platforms,
images rarely more than 127 layers, Docker's overlay limit) and keep one plan's memory
in the hundreds of MiB; `--limit` raises them.
"""

from __future__ import annotations

from dataclasses import dataclass

from relocator.errors import ManifestError
from relocator.oci import Manifest

MiB = 1024 * 1024
#: What holding one manifest costs beyond its bytes (its plan node, parsed fields and
#: the task walking it): a plan of a hundred thousand tiny manifests is no cheaper than
#: one of a few large ones.
MANIFEST_OVERHEAD = 4 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How much source data one plan accepts; exceeding a cap fails the image."""

    #: Entries (children) of one index or manifest list.
    index_entries: int = 1000
    #: Layers of one image manifest.
    layers: int = 1000
    #: Bytes of all the manifests one plan holds until they are pushed, each counted
    #: `MANIFEST_OVERHEAD` more than its size (64 MiB: about 10,000 ordinary manifests).
    plan_manifest_bytes: int = 64 * MiB

    def check(self, manifest: Manifest, name: str) -> None:
        """
        Refuse a manifest with more index entries or layers than the caps allow.

        Raises:
            ManifestError: One line naming the manifest, the count and the cap.
        """
        if len(manifest.manifests) > self.index_entries:
            raise ManifestError(
                f"{name} is an index of {len(manifest.manifests)} entries, more than the "
                f"limit of {self.index_entries}",
                hint="raise it with --limit index-entries=N if the source is trusted",
            )
        if len(manifest.layers) > self.layers:
            raise ManifestError(
                f"{name} has {len(manifest.layers)} layers, more than the limit of "
                f"{self.layers}",
                hint="raise it with --limit layers=N if the source is trusted",
            )

    def check_plan_bytes(self, held: int, name: str) -> None:
        """
        Refuse a plan whose manifests, `name`'s included, add up to more than the cap
        (`held` counts each as its size plus `MANIFEST_OVERHEAD`).

        Raises:
            ManifestError: One line naming the manifest that went over.
        """
        if held > self.plan_manifest_bytes:
            raise ManifestError(
                f"{name}: the manifests of this run add up to more than the limit of "
                f"{self.plan_manifest_bytes} bytes",
                hint="raise it with --limit plan-manifest-bytes=SIZE, or split the run",
            )
