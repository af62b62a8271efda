"""
Files a resumed run can take blobs from instead of fetching them.

First choice is the temporary tarball an interrupted run left, with the journal saying
which of its regions are finished; failing that, a tarball already at the target (from
an earlier, finished run: re-packaging after adding an image fetches only the new
blobs), whose blob members are found by their names.

Nothing is trusted until the bytes have been hashed again: a blob counts as present
only if the region it is said to occupy hashes to its digest (checked once per blob,
the first time the engine asks).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from relocator.errors import TarError
from relocator.oci import Descriptor, Digest, Verifier
from relocator.outfiles import open_own
from relocator.store.tarball import journal
from relocator.store.tarball.fileio import read_at, region_matches
from relocator.store.tarball.journal import JournalHead, Region
from relocator.store.tarball.names import parse_kbld_layer_name, parse_oci_blob_name
from relocator.store.tarball.scan import scan

log = logging.getLogger(__name__)


@dataclass(slots=True, kw_only=True)
class Leftover:
    """A file holding blobs an earlier run wrote, opened for reading."""

    path: Path
    fd: int
    #: The journal's head for an interrupted run's temporary file; None for a finished
    #: tarball (which must stay as it is until the new one replaces it).
    head: JournalHead | None
    regions: dict[Digest, Region]
    _verdicts: dict[Digest, bool] = field(default_factory=dict)

    @classmethod
    def donor(cls, tarball: Path) -> Leftover | None:
        """
        A finished tarball (either format) whose blob members can be reused; None if
        there is none, or it cannot be read safely.
        """
        try:
            # Never through a link, and never a FIFO (which would block the open).
            fd = os.open(tarball, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        try:
            regions = _blob_members(fd, tarball.name)
        except (TarError, OSError) as exc:
            os.close(fd)
            log.info("not reusing blobs of %s: %s", tarball.name, exc)
            return None
        return cls(path=tarball, fd=fd, head=None, regions=regions)

    @classmethod
    def find(cls, temp: Path, journal_path: Path, *, format: str) -> Leftover | None:
        """
        The leftover of an interrupted run writing `format`, if there is a usable one:
        a journal of this format and a temporary file of the length it records.

        Raises:
            InputError: Something other than a regular file of ours is at either name.
        """
        loaded = journal.load(journal_path, format=format)
        if loaded is None:
            return None
        head, regions = loaded
        try:
            fd = open_own(temp, os.O_RDONLY)
        except OSError:
            log.info("journal %s has no temporary file; starting afresh", journal_path.name)
            return None
        if os.fstat(fd).st_size != head.size:
            os.close(fd)
            log.info("%s does not have the length its journal records; starting afresh",
                     temp.name)
            return None
        return cls(path=temp, fd=fd, head=head, regions=regions)

    def holds(self, desc: Descriptor) -> bool:
        """Whether the journal lists `desc` and its region hashes to it (blocking)."""
        verdict = self._verdicts.get(desc.digest)
        if verdict is None:
            region = self.regions.get(desc.digest)
            verdict = (
                region is not None
                and region.size == desc.size
                and region_matches(self.fd, region.offset, Verifier(desc.digest, desc.size))
            )
            if region is not None and not verdict:
                log.info("%s: %s is damaged; fetching it again", self.path.name, desc.digest)
            self._verdicts[desc.digest] = verdict
        return verdict

    @property
    def temporary(self) -> bool:
        """Whether this is an interrupted run's temporary file (not a finished tarball)."""
        return self.head is not None

    def close(self) -> None:
        """Close the file (it stays on disk)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass(frozen=True, slots=True, kw_only=True)
class Unfinished:
    """What an interrupted run left for a tarball, as its journal describes it."""

    #: The temporary file.
    path: Path
    #: The journal beside it.
    journal: Path
    #: Finished blobs the journal lists (a resumed run re-hashes each before reuse).
    blobs: int
    #: Their bytes.
    size: int


def unfinished(temp: Path, journal_path: Path, *, format: str) -> Unfinished | None:
    """
    The interrupted run's leftover a resumed run writing `format` would reuse, if it
    holds at least one finished blob; None otherwise (blocking).
    """
    leftover = Leftover.find(temp, journal_path, format=format)
    if leftover is None:
        return None
    leftover.close()
    if not leftover.regions:
        return None
    return Unfinished(
        path=temp,
        journal=journal_path,
        blobs=len(leftover.regions),
        size=sum(region.size for region in leftover.regions.values()),
    )


def _blob_members(fd: int, where: str) -> dict[Digest, Region]:
    listing = scan(lambda offset, count: read_at(fd, offset, count), os.fstat(fd).st_size,
                   where=where)
    regions = {}
    for name, member in listing.files.items():
        digest = parse_oci_blob_name(name, where=where) or parse_kbld_layer_name(name, where=where)
        if digest is not None:
            regions[digest] = Region(member.offset, member.size)
    return regions
