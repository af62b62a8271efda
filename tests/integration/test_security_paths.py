"""
Output paths are not trusted: `pkg --output`, `--lock-output`, `--imgpkg-lock-output`
and `--report` replace only a regular file or write a new name, in a directory that
exists and is writable, checked before any registry is contacted (exit 3, one line
naming the user's path); nothing planted at the tarball's predictable temporary or
journal name is ever followed or written through.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from relocator.store.tarball import journal_path, temporary_path
from tests.integration.cli import insecure, relocator
from tests.integration.faults_support import images_file
from tests.support import ImageFactory, PushedImage, Pusher, Registry


@pytest.fixture
def image(
    registry: Registry, repository: str, image_factory: ImageFactory, push: Pusher
) -> PushedImage:
    """One small image in the source registry."""
    return push(registry, f"{repository}/app", image_factory.image(), tag="1.0")


@dataclass(frozen=True, slots=True)
class Hostile:
    """Something at an output path that must survive a run untouched."""

    path: Path
    #: What must still hold after the run (the kind of file, a victim's content).
    intact: Callable[[], bool]


def _fifo(tmp_path: Path) -> Hostile:
    path = tmp_path / "out"
    os.mkfifo(path)
    return Hostile(path, lambda: stat.S_ISFIFO(path.lstat().st_mode))


def _symlink(tmp_path: Path) -> Hostile:
    victim = tmp_path / "elsewhere" / "victim"
    victim.parent.mkdir()
    victim.write_text("precious\n")
    path = tmp_path / "out"
    path.symlink_to(victim)
    return Hostile(path, lambda: path.is_symlink() and "precious\n" == victim.read_text())


def _device(tmp_path: Path) -> Hostile:
    # As root a bug would replace a device node, so root tests on a null device of its
    # own; anyone else cannot write in /dev and uses /dev/null itself.
    if os.geteuid() == 0:
        path = tmp_path / "null"
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except OSError as exc:
            pytest.skip(f"cannot make a device node here: {exc}")
    else:
        path = Path("/dev/null")
    assert stat.S_ISCHR(path.lstat().st_mode)
    return Hostile(path, lambda: stat.S_ISCHR(path.lstat().st_mode))


def _directory(tmp_path: Path) -> Hostile:
    path = tmp_path / "out"
    path.mkdir()
    return Hostile(path, lambda: path.is_dir() and [] == list(path.iterdir()))


def _missing_directory(tmp_path: Path) -> Hostile:
    path = tmp_path / "missing" / "out"
    return Hostile(path, lambda: not path.parent.exists())


def _file_as_directory(tmp_path: Path) -> Hostile:
    # Root may write anywhere, so "not writable" is shown with a parent that cannot be
    # written in by anyone: a regular file.
    parent = tmp_path / "file"
    parent.write_text("not a directory\n")
    path = parent / "out"
    return Hostile(path, lambda: "not a directory\n" == parent.read_text())


HOSTILE = {
    "FIFO": (_fifo, "is a FIFO"),
    "symlink": (_symlink, "is a symbolic link"),
    "device": (_device, "is a character device"),
    "directory": (_directory, "is a directory"),
    "missing directory": (_missing_directory, "no such directory"),
    "parent is a file": (_file_as_directory, "not a directory"),
}

COMMANDS: dict[str, tuple[str, Callable[[str], list[str]]]] = {
    "pkg --output": ("--output", lambda dst: ["pkg"]),
    "relocate --lock-output": ("--lock-output", lambda dst: ["relocate", "-r", dst]),
    "relocate --report": ("--report", lambda dst: ["relocate", "-r", dst]),
    "unpkg --imgpkg-lock-output": (
        "--imgpkg-lock-output", lambda dst: ["unpkg", "-i", "in.tar", "-r", dst]
    ),
    "resolve --lock-output": ("--lock-output", lambda dst: ["resolve"]),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_output_path_that_is_not_a_regular_file_is_refused_before_any_request(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    repository: str,
    image: PushedImage,
    command: str,
    kind: str,
) -> None:
    """
    A FIFO, a symlink, a device, a directory, a missing directory or a parent that is
    not a directory at an output flag: exit 3, one line naming the flag and the path as
    given, the thing left as it was, and not one request sent to the registry.
    """
    make, reason = HOSTILE[kind]
    hostile = make(tmp_path)
    flag, words = COMMANDS[command]
    images = images_file(tmp_path / "images.yml", [image.reference])
    mark = registry.log.mark()

    result = relocator(
        capsys, *words(f"{registry.host}/{repository}/dst"), "-f", str(images),
        flag, str(hostile.path), *insecure(registry),
    )

    assert 3 == result.code, result.err
    assert 1 == len(result.error_lines), result.err
    assert result.error_lines[0].startswith(f"relocator: error: {flag} {hostile.path}: ")
    assert reason in result.error_lines[0]
    assert hostile.intact()
    assert () == registry.log.requests(since=mark)
    assert not any(".tmp" in p.name or "relocator-" in p.name for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("companion", [temporary_path, journal_path])
@pytest.mark.parametrize("resume", [False, True])
def test_a_symlink_planted_at_the_tarballs_predictable_names_is_never_followed(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    image: PushedImage,
    companion: Callable[[Path], Path],
    resume: bool,
) -> None:
    """
    A symlink at `.<out>.relocator-tmp` or `.<out>.relocator-journal` (names a resumed
    run must find again, so they stay predictable) is refused with exit 3 before any
    request: its target keeps its content, the link stays a link, and the tarball
    already at the output stays a regular file with its bytes.
    """
    out = tmp_path / "out.tar"
    out.write_bytes(b"an earlier tarball\n")
    victim = tmp_path / "elsewhere" / "victim"
    victim.parent.mkdir()
    victim.write_text("precious\n")
    planted = companion(out)
    planted.symlink_to(victim)
    images = images_file(tmp_path / "images.yml", [image.reference])
    mark = registry.log.mark()

    result = relocator(
        capsys, "pkg", "-f", str(images), "-o", str(out), *(["--resume"] if resume else []),
        *insecure(registry),
    )

    assert 3 == result.code, result.err
    expected = f"relocator: error: {planted}: is a symbolic link, not a file relocator left"
    assert [f"{expected}; remove it"] == result.error_lines
    assert "precious\n" == victim.read_text()
    assert planted.is_symlink()
    assert stat.S_ISREG(out.lstat().st_mode)
    assert b"an earlier tarball\n" == out.read_bytes()
    assert () == registry.log.requests(since=mark)


@pytest.mark.parametrize("flag", ["--lock-output", "--report"])
def test_outputs_at_new_names_and_over_regular_files_are_written(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    repository: str,
    image: PushedImage,
    flag: str,
) -> None:
    """The checks refuse only what they must: a new name and a regular file are written."""
    images = images_file(tmp_path / "images.yml", [image.reference])
    existing = tmp_path / "existing"
    existing.write_text("old\n")
    fresh = tmp_path / "fresh"
    dst = f"{registry.host}/{repository}/dst"

    results = [
        relocator(capsys, "relocate", "-f", str(images), "-r", dst, flag, str(path),
                  *insecure(registry))
        for path in (existing, fresh)
    ]

    assert [0, 0] == [r.code for r in results], [r.err for r in results]
    assert "old\n" != existing.read_text()
    assert stat.S_ISREG(existing.lstat().st_mode)
    assert fresh.read_text()
    assert {"existing", "fresh", "images.yml"} == {p.name for p in tmp_path.iterdir()}
