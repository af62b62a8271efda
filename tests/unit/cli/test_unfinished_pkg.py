"""
`pkg` without `--resume`, where an interrupted run left an unfinished tarball, says what
it found and what `--resume` would reuse, and stops (exit 3) without touching it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relocator.cli.main import run
from relocator.engine import CopyOptions
from relocator.errors import DigestMismatch
from relocator.store.tarball import TarballWriter, journal_path, temporary_path
from relocator.transport import RetryPolicy
from tests.support import image
from tests.unit.store.tarball_support import memory_source, package

# Sizes of the image's layers: the two large ones land, the small one arrives damaged.
LAYERS = (5000, 6000, 100)


@pytest.fixture
async def interrupted(tmp_path: Path) -> Path:
    """`out.tar` whose packaging failed after its two large layers were written."""
    img = image("w/unfinished", layer_sizes=LAYERS)
    out = tmp_path / "out.tar"
    source = memory_source([img])
    source.faults.corrupt.add(img.layers[-1].digest)  # the smallest blob goes last
    with pytest.raises(DigestMismatch):
        await package(out, [img], source=source,
                      options=CopyOptions(max_blobs_in_flight=1, retry=RetryPolicy(attempts=0)))
    assert temporary_path(out).exists()
    return out


async def test_the_writer_describes_what_resume_would_reuse(interrupted: Path) -> None:
    """The journal's finished blobs (the two large layers, and the config) are counted."""
    left = await TarballWriter(interrupted).unfinished()

    assert left is not None
    assert temporary_path(interrupted) == left.path
    assert journal_path(interrupted) == left.journal
    assert 2 <= left.blobs
    assert 5000 + 6000 <= left.size


async def test_another_format_would_not_reuse_it(interrupted: Path) -> None:
    """A kbld-format run cannot reuse an OCI run's leftover, so there is nothing to say."""
    assert None is await TarballWriter(interrupted, format="kbld").unfinished()


def test_pkg_without_resume_refuses_to_discard_the_unfinished_tarball(
    interrupted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    One line names the unfinished file and what --resume would reuse; exit 3; the
    unfinished file and its journal are left byte for byte (nothing is fetched: the
    source registry named is not even listening).
    """
    temp, journal = temporary_path(interrupted), journal_path(interrupted)
    before = (temp.read_bytes(), journal.read_bytes())
    manifest = tmp_path / "images.yml"
    manifest.write_text("image: 127.0.0.1:9/w/app@sha256:" + "ab" * 32 + "\n")
    capsys.readouterr()

    code = run(["pkg", "-f", str(manifest), "--output", str(interrupted)])

    assert 3 == code
    lines = capsys.readouterr().err.splitlines()
    assert 1 == len(lines), lines
    assert lines[0].startswith(
        f"relocator: error: found the unfinished tarball {temp} of an interrupted run: "
        "--resume would reuse its "
    )
    hint = f"(hint: rerun with --resume, or delete {temp} and {journal} to start afresh)"
    assert lines[0].endswith(hint)
    assert before == (temp.read_bytes(), journal.read_bytes())
    assert not interrupted.exists()
