"""
`--resume`: a run after an interrupted one fetches only the blobs that are not already
in the temporary tarball, after re-hashing every one it reuses.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from relocator.engine import CopyOptions
from relocator.errors import DigestMismatch
from relocator.oci import Digest
from relocator.store.tarball import journal_path, temporary_path
from relocator.transport import RetryPolicy
from tests.support import Image, image
from tests.unit.store.tarball_support import files_in, memory_source, package

ONE_AT_A_TIME = CopyOptions(max_blobs_in_flight=1, retry=RetryPolicy(attempts=0))


def _app(seed: str) -> Image:
    return image(seed, layer_sizes=(6000, 5000, 4000, 100))


async def _interrupted(out: Path, images: list[Image], fmt: Any = "oci") -> Image:
    """
    A run that fails on the smallest layer of the first image: blobs go one at a time,
    largest first, so every other blob has landed by then. Returns that image.
    """
    source = memory_source(images)
    failing = images[0]
    source.faults.corrupt.add(failing.layers[-1].digest)
    with pytest.raises(DigestMismatch):
        await package(out, images, source=source, format=fmt, options=ONE_AT_A_TIME)
    return failing


def _journal(out: Path) -> dict[Digest, tuple[int, int]]:
    """What the journal lists (read with plain json, not the code under test)."""
    lines = journal_path(out).read_text().splitlines()[1:]
    return {
        Digest.parse(doc["digest"]): (doc["offset"], doc["size"])
        for doc in map(json.loads, lines)
    }


async def _fresh(tmp_path: Path, images: list[Image], fmt: Any = "oci") -> bytes:
    fresh = tmp_path / "fresh" / "out.tar"
    fresh.parent.mkdir()
    await package(fresh, images, format=fmt)
    return fresh.read_bytes()


async def test_resume_reuses_verified_blobs_and_refetches_a_damaged_one(tmp_path: Path) -> None:
    """
    After an interrupted run, a resumed run fetches the blob that never landed and the
    one whose bytes were damaged on disk, nothing else, and writes the same tarball a
    fresh run writes.
    """
    app = _app("rs/app")
    out = tmp_path / "out.tar"
    await _interrupted(out, [app])
    journaled = _journal(out)
    damaged = app.layers[1]
    offset, _ = journaled[damaged.digest]
    with temporary_path(out).open("r+b") as file:
        file.seek(offset + 10)
        file.write(b"\xff")
    source = memory_source([app])

    report = await package(out, [app], source=source, resume=True)

    missing = app.layers[-1]
    assert set(journaled) == {b.digest for b in app.blobs} - {missing.digest}
    assert Counter({missing.digest: missing.size, damaged.digest: damaged.size}) == source.served
    assert 2 == report.blobs_copied
    assert await _fresh(tmp_path, [app]) == out.read_bytes()
    assert [out] == files_in(tmp_path)


async def test_resume_after_the_images_changed_copies_what_it_can(tmp_path: Path) -> None:
    """
    When the resumed run packages more images (so every offset moves), the blobs of the
    interrupted run are copied into place and only the rest is fetched.
    """
    app, extra = _app("rs/changed"), _app("rs/extra")
    out = tmp_path / "out.tar"
    await _interrupted(out, [app])
    source = memory_source([app, extra])

    await package(out, [app, extra], source=source, resume=True)

    expected = {app.layers[-1].digest: 100} | {b.digest: b.size for b in extra.blobs}
    assert Counter(expected) == source.served
    assert await _fresh(tmp_path, [app, extra]) == out.read_bytes()


async def test_without_resume_a_leftover_is_replaced(tmp_path: Path) -> None:
    """A run without resume fetches everything and replaces what an earlier run left."""
    app = _app("rs/fresh")
    out = tmp_path / "out.tar"
    await _interrupted(out, [app])
    source = memory_source([app])

    await package(out, [app], source=source)

    assert Counter({b.digest: b.size for b in app.blobs}) == source.served
    assert await _fresh(tmp_path, [app]) == out.read_bytes()


async def test_a_torn_journal_line_is_ignored(tmp_path: Path) -> None:
    """A journal whose last line was cut by a crash is read up to that line."""
    app = _app("rs/torn")
    out = tmp_path / "out.tar"
    await _interrupted(out, [app])
    with journal_path(out).open("ab") as file:
        file.write(b'{"digest":"sha256:00')
    source = memory_source([app])

    await package(out, [app], source=source, resume=True)

    assert Counter({app.layers[-1].digest: 100}) == source.served
    assert await _fresh(tmp_path, [app]) == out.read_bytes()


async def test_resume_in_kbld_format_refetches_only_configs_and_missing_layers(
    tmp_path: Path,
) -> None:
    """kbld tarballs resume too; configs, embedded in manifest.json at the end, are
    fetched again (they are a few hundred bytes)."""
    app = _app("rs/kbld")
    out = tmp_path / "out.tar"
    await _interrupted(out, [app], fmt="kbld")
    source = memory_source([app])

    await package(out, [app], source=source, resume=True, format="kbld")

    config = app.blobs[0]
    assert Counter({app.layers[-1].digest: 100, config.digest: config.size}) == source.served
    assert await _fresh(tmp_path, [app], fmt="kbld") == out.read_bytes()


async def test_a_leftover_of_another_format_is_not_reused(tmp_path: Path) -> None:
    """An interrupted OCI run's blobs are not reused by a kbld run (other layout)."""
    app = _app("rs/format")
    out = tmp_path / "out.tar"
    await _interrupted(out, [app])
    source = memory_source([app])

    await package(out, [app], source=source, resume=True, format="kbld")

    assert Counter({b.digest: b.size for b in app.blobs}) == source.served


async def test_resume_without_a_leftover_fetches_everything(tmp_path: Path) -> None:
    """Resuming when nothing was left behind is an ordinary run."""
    app = _app("rs/none")
    out = tmp_path / "out.tar"
    source = memory_source([app])

    await package(out, [app], source=source, resume=True)

    assert Counter({b.digest: b.size for b in app.blobs}) == source.served
    assert await _fresh(tmp_path, [app]) == out.read_bytes()


async def test_resume_reuses_the_blobs_of_the_tarball_already_there(tmp_path: Path) -> None:
    """
    With no interrupted run to resume, the tarball already at the target gives its
    blobs: re-packaging after adding an image fetches only the new image's blobs.
    """
    app, extra = _app("rs/donor"), _app("rs/donor-extra")
    out = tmp_path / "out.tar"
    await package(out, [app])
    source = memory_source([app, extra])

    await package(out, [app, extra], source=source, resume=True)

    assert Counter({b.digest: b.size for b in extra.blobs}) == source.served
    assert await _fresh(tmp_path, [app, extra]) == out.read_bytes()


async def test_a_failed_resume_leaves_the_finished_tarball_as_it_was(tmp_path: Path) -> None:
    """Blobs are copied out of the tarball at the target, never moved: if the resumed run
    fails, the earlier tarball is still whole."""
    app, extra = _app("rs/keep"), _app("rs/keep-extra")
    out = tmp_path / "out.tar"
    await package(out, [app])
    before = out.read_bytes()
    source = memory_source([app, extra])
    source.faults.corrupt.add(extra.layers[-1].digest)

    with pytest.raises(DigestMismatch):
        await package(out, [app, extra], source=source, resume=True, options=ONE_AT_A_TIME)

    assert before == out.read_bytes()


async def test_a_kbld_tarball_at_the_target_gives_its_layers_to_an_oci_run(
    tmp_path: Path,
) -> None:
    """Layers are reused across formats; configs (embedded in kbld's manifest.json, not
    stored as members) are fetched."""
    app = _app("rs/cross")
    out = tmp_path / "out.tar"
    await package(out, [app], format="kbld")
    source = memory_source([app])

    await package(out, [app], source=source, resume=True)

    config = app.blobs[0]
    assert Counter({config.digest: config.size}) == source.served
    assert await _fresh(tmp_path, [app]) == out.read_bytes()
