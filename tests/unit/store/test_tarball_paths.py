"""
What sits at a tarball's names is never trusted: the temporary file and the journal
keep predictable names (a resumed run finds them by name) but are opened without
following a link and only as regular files of ours with one link; the journal is
staged under a random name; the output is renamed over only while it is a regular
file or absent. Each case plants its trap after the writer was built, as a race
would, so that the checks at open and rename time are what stops it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from relocator.engine import copy_images
from relocator.errors import DigestMismatch, InputError
from relocator.oci import Descriptor, Repository
from relocator.store.tarball import TarballWriter, journal_path, temporary_path
from relocator.testing import MemoryStore
from tests.support import Image, image
from tests.unit.store.tarball_support import SOURCE_REGISTRY, jobs_for, memory_source, package
from tests.unit.store.test_tarball_resume import ONE_AT_A_TIME

PRECIOUS = b"precious\n"


class TrappedStore(MemoryStore):
    """A source that runs `trap` once, when the first blob is read (mid-run)."""

    def __init__(self, images: Sequence[Image], trap: Callable[[], None]) -> None:
        super().__init__(SOURCE_REGISTRY)
        memory_source(images, store=self)
        self._trap: Callable[[], None] | None = trap

    @asynccontextmanager
    async def blob_open(
        self, repo: Repository, desc: Descriptor
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        if self._trap is not None:
            trap, self._trap = self._trap, None
            trap()
        async with super().blob_open(repo, desc) as chunks:
            yield chunks


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "elsewhere" / "victim"
    victim.parent.mkdir()
    victim.write_bytes(PRECIOUS)
    return victim


async def _run(writer: TarballWriter, images: list[Image], source: MemoryStore) -> None:
    try:
        await copy_images(jobs_for(images), source=source, destination=writer)
    finally:
        await writer.aclose()


@pytest.mark.parametrize("plant", ["symlink", "hard link", "FIFO"])
async def test_the_temporary_file_is_never_opened_through_what_was_planted(
    tmp_path: Path, plant: str
) -> None:
    """
    A symlink, a hard link or a FIFO appearing at `.<out>.relocator-tmp` after the
    writer was built stops the run with an input error naming that path: the victim
    keeps its bytes and no tarball is written.
    """
    app = image("tp/app")
    out = tmp_path / "out.tar"
    victim = _victim(tmp_path)
    temp = temporary_path(out)
    writer = TarballWriter(out)
    if plant == "symlink":
        temp.symlink_to(victim)
    elif plant == "hard link":
        os.link(victim, temp)
    else:
        os.mkfifo(temp)

    with pytest.raises(InputError) as caught:
        await _run(writer, [app], memory_source([app]))

    assert str(caught.value).startswith(f"{temp}: ")
    assert PRECIOUS == victim.read_bytes()
    assert not out.exists()


async def test_a_resumed_run_does_not_follow_a_symlinked_journal(tmp_path: Path) -> None:
    """
    After an interrupted run, its journal replaced by a symlink to a file elsewhere:
    the resumed run refuses it instead of reading it and appending to the file.
    """
    app = image("tp/resume", layer_sizes=(6000, 5000, 100))
    out = tmp_path / "out.tar"
    source = memory_source([app])
    source.faults.corrupt.add(app.layers[-1].digest)
    with pytest.raises(DigestMismatch):
        await package(out, [app], source=source, options=ONE_AT_A_TIME)
    journal = journal_path(out)
    victim = tmp_path / "elsewhere" / "victim"
    victim.parent.mkdir()
    journal.rename(victim)
    kept = victim.read_bytes()
    writer = TarballWriter(out, resume=True)
    journal.symlink_to(victim)

    with pytest.raises(InputError) as caught:
        await _run(writer, [app], memory_source([app]))

    assert f"{journal}: is a symbolic link, not a file relocator left; remove it" == str(
        caught.value
    )
    assert kept == victim.read_bytes()
    assert journal.is_symlink()


async def test_the_journal_is_staged_under_a_name_nobody_can_plant(tmp_path: Path) -> None:
    """
    A symlink at the journal's old staging name (`.<out>.relocator-journal.new`) is
    neither followed nor used: the victim keeps its bytes and the tarball is written.
    """
    app = image("tp/staging")
    out = tmp_path / "out.tar"
    victim = _victim(tmp_path)
    staging = journal_path(out).with_name(f"{journal_path(out).name}.new")
    staging.symlink_to(victim)

    await package(out, [app])

    assert PRECIOUS == victim.read_bytes()
    assert stat.S_ISREG(out.lstat().st_mode)


@pytest.mark.parametrize("swap", ["FIFO", "directory"])
async def test_the_output_is_not_renamed_over_what_replaced_it_meanwhile(
    tmp_path: Path, swap: str
) -> None:
    """
    The output checked at the start but turned into a FIFO or a directory while the
    blobs were fetched: the finished tarball is not renamed over it, and it is left as
    it is.
    """
    app = image("tp/swap")
    out = tmp_path / "out.tar"
    writer = TarballWriter(out)

    def trap() -> None:
        if swap == "FIFO":
            os.mkfifo(out)
        else:
            out.mkdir()

    with pytest.raises(InputError) as caught:
        await _run(writer, [app], TrappedStore([app], trap))

    assert f"{out}: is a {swap} now, not a regular file; relocator left it as it is" == str(
        caught.value
    )
    kind = stat.S_ISFIFO if swap == "FIFO" else stat.S_ISDIR
    assert kind(out.lstat().st_mode)


@pytest.mark.parametrize("companion", [temporary_path, journal_path])
def test_the_writer_refuses_a_foreign_file_at_its_names_when_built(
    tmp_path: Path, companion: Callable[[Path], Path]
) -> None:
    """
    Built (before anything is fetched), the writer refuses a symlink at the temporary
    file's or the journal's name, naming it.
    """
    out = tmp_path / "out.tar"
    planted = companion(out)
    planted.symlink_to(_victim(tmp_path))

    with pytest.raises(InputError) as caught:
        TarballWriter(out)

    assert f"{planted}: is a symbolic link, not a file relocator left; remove it" == str(
        caught.value
    )
