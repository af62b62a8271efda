"""
Output files: only a regular file or a new name in a writable directory is replaced,
temporary files have names nobody can plant in advance, files found again by name are
opened only if they are regular files of ours with one link, and nothing is renamed
over what replaced the target meanwhile.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from relocator import outfiles
from relocator.cli.jsonout import write_report
from relocator.config import atomic_write_text, write_kbld_lock
from relocator.errors import InputError

PRECIOUS = "precious\n"
REFUSED = "; relocator replaces only a regular file or writes a new one"


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "out")
    return tmp_path / "out"


def _symlink(tmp_path: Path) -> Path:
    (tmp_path / "victim").write_text(PRECIOUS)
    (tmp_path / "out").symlink_to(tmp_path / "victim")
    return tmp_path / "out"


def _dangling(tmp_path: Path) -> Path:
    (tmp_path / "out").symlink_to(tmp_path / "nowhere")
    return tmp_path / "out"


def _directory(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out"


def _device(tmp_path: Path) -> Path:
    return Path("/dev/null")  # only looked at: check_output writes nothing


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "missing" / "out"


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("x")
    return tmp_path / "file" / "out"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_fifo, "{path}: is a FIFO" + REFUSED),
        (_symlink, "{path}: is a symbolic link" + REFUSED),
        (_dangling, "{path}: is a symbolic link" + REFUSED),
        (_directory, "{path}: is a directory" + REFUSED),
        (_device, "{path}: is a character device" + REFUSED),
        (_missing, "{path}: cannot write in {parent}: no such directory"),
        (_under_a_file, "{path}: cannot write in {parent}: not a directory"),
    ],
    ids=["FIFO", "symlink", "dangling symlink", "directory", "device", "missing directory",
         "parent is a file"],
)
def test_check_output_refuses_what_must_not_be_replaced(
    tmp_path: Path, make: Callable[[Path], Path], expected: str
) -> None:
    """Each refusal is one line starting with the flag and the path as given."""
    path = make(tmp_path)

    with pytest.raises(InputError) as caught:
        outfiles.check_output(str(path), flag="--output")

    assert "--output " + expected.format(path=path, parent=path.parent) == str(caught.value)


def test_check_output_refuses_a_name_ending_in_a_separator(tmp_path: Path) -> None:
    """`out/` names a directory even when nothing is there yet."""
    with pytest.raises(InputError) as caught:
        outfiles.check_output(f"{tmp_path}/out/", flag="--report")

    assert f"--report {tmp_path}/out/: names a directory; give a file name" == str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in any directory")
def test_check_output_refuses_a_directory_that_is_not_writable(tmp_path: Path) -> None:
    """A read-only directory is refused up front, naming the user's path."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)

    with pytest.raises(InputError) as caught:
        outfiles.check_output(str(locked / "out"), flag="--lock-output")

    assert f"--lock-output {locked}/out: cannot write in {locked}: not writable" == str(
        caught.value
    )


def test_check_output_accepts_a_regular_file_and_a_new_name(tmp_path: Path) -> None:
    """A regular file (to be replaced) and a name nothing holds yet pass."""
    (tmp_path / "existing").write_text("old")

    outfiles.check_output(tmp_path / "existing")
    outfiles.check_output(tmp_path / "new")

    assert ["existing"] == [p.name for p in tmp_path.iterdir()]


WRITERS: dict[str, Callable[[Path], None]] = {
    "atomic_write_text": lambda path: atomic_write_text(path, "x: 1\n"),
    "write_report": lambda path: write_report(path, {"status": "succeeded"}),
    "write_kbld_lock": lambda path: write_kbld_lock(path, [("a.test/x:1", "b.test/x@sha256:"
                                                            + "a" * 64)]),
}


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize(
    ("make", "kind"),
    [(_fifo, "a FIFO"), (_symlink, "a symbolic link"), (_directory, "a directory")],
    ids=["FIFO", "symlink", "directory"],
)
def test_writers_do_not_replace_what_is_not_a_regular_file(
    tmp_path: Path, writer: str, make: Callable[[Path], Path], kind: str
) -> None:
    """
    Lock files and reports, written by library callers that did not check first, still
    refuse a FIFO, a symlink or a directory at the target: it is left as it was, the
    symlink's target keeps its bytes, and no temporary file stays behind.
    """
    path = make(tmp_path)
    before = {p.name: p.lstat().st_mode for p in tmp_path.iterdir()}

    with pytest.raises(InputError) as caught:
        WRITERS[writer](path)

    assert f"{path}: is {kind} now, not a regular file; relocator left it as it is" == str(
        caught.value
    )
    assert before == {p.name: p.lstat().st_mode for p in tmp_path.iterdir()}
    if (tmp_path / "victim").exists():
        assert PRECIOUS == (tmp_path / "victim").read_text()


def test_write_atomically_uses_a_fresh_unguessable_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The temporary file is created exclusively without following a link: a symlink at
    the name it would take is never written through.
    """
    victim = tmp_path / "victim"
    victim.write_text(PRECIOUS)
    seen: list[int] = []
    real_open = os.open

    def spying_open(path: str, flags: int, mode: int = 0o777, **kw: object) -> int:
        if os.path.basename(path).startswith(".out."):
            seen.append(flags)
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", spying_open)

    outfiles.write_atomically(tmp_path / "out", b"data", mode=0o600)

    assert PRECIOUS == victim.read_text()
    assert 1 == len(seen)
    assert os.O_EXCL | os.O_NOFOLLOW | os.O_CREAT == seen[0] & (
        os.O_EXCL | os.O_NOFOLLOW | os.O_CREAT
    )
    assert (b"data", 0o600) == ((tmp_path / "out").read_bytes(),
                                stat.S_IMODE((tmp_path / "out").stat().st_mode))


def test_open_own_creates_exclusively_and_reopens_a_file_of_ours(tmp_path: Path) -> None:
    """A new name is created; a regular file of ours with one link is opened again."""
    path = tmp_path / "journal"

    os.close(outfiles.open_own(path, os.O_WRONLY | os.O_CREAT))
    fd = outfiles.open_own(path, os.O_RDONLY)
    os.close(fd)

    assert stat.S_ISREG(path.lstat().st_mode)


def _plant_symlink(path: Path, victim: Path) -> None:
    path.symlink_to(victim)


def _plant_hard_link(path: Path, victim: Path) -> None:
    os.link(victim, path)


def _plant_fifo(path: Path, victim: Path) -> None:
    os.mkfifo(path)


def _plant_foreign(path: Path, victim: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    path.write_text("theirs\n")
    os.chown(path, 65534, 65534)


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        (_plant_symlink, "is a symbolic link, not a file relocator left; remove it"),
        (_plant_hard_link, "has 2 hard links, not a file relocator left; remove it"),
        (_plant_fifo, "is a FIFO, not a file relocator left; remove it"),
        (_plant_foreign, "belongs to another user, not a file relocator left; remove it"),
    ],
    ids=["symlink", "hard link", "FIFO", "another user's file"],
)
@pytest.mark.parametrize("flags", [os.O_RDONLY, os.O_RDWR | os.O_CREAT, os.O_WRONLY | os.O_APPEND],
                         ids=["read", "create", "append"])
def test_open_own_refuses_what_another_could_have_planted(
    tmp_path: Path, plant: Callable[[Path, Path], None], expected: str, flags: int
) -> None:
    """Whatever the open is for, a planted file is refused and the victim untouched."""
    victim = tmp_path / "victim"
    victim.write_text(PRECIOUS)
    path = tmp_path / ".out.tar.relocator-tmp"
    plant(path, victim)

    with pytest.raises(InputError) as caught:
        outfiles.open_own(path, flags)

    assert f"{path}: {expected}" == str(caught.value)
    assert PRECIOUS == victim.read_text()


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        (_plant_symlink, "is a symbolic link, not a file relocator left; remove it"),
        (_plant_hard_link, "has 2 hard links, not a file relocator left; remove it"),
        (_plant_fifo, "is a FIFO, not a file relocator left; remove it"),
        (_plant_foreign, "belongs to another user, not a file relocator left; remove it"),
    ],
    ids=["symlink", "hard link", "FIFO", "another user's file"],
)
def test_open_own_refuses_what_appears_after_its_look(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    plant: Callable[[Path, Path], None],
    expected: str,
) -> None:
    """
    A file planted between the look before the open and the open itself (the look is
    made to see nothing) is still refused: the open does not follow a link nor block
    on a FIFO, and what it opened is checked again.
    """
    victim = tmp_path / "victim"
    victim.write_text(PRECIOUS)
    path = tmp_path / ".out.tar.relocator-journal"
    plant(path, victim)
    real_lstat = os.lstat

    def blind_lstat(target: str | os.PathLike[str]) -> os.stat_result:
        if os.fspath(target) == os.fspath(path):
            raise FileNotFoundError(target)
        return real_lstat(target)

    monkeypatch.setattr(os, "lstat", blind_lstat)

    with pytest.raises(InputError) as caught:
        outfiles.open_own(path, os.O_RDONLY)

    assert f"{path}: {expected}" == str(caught.value)
    assert PRECIOUS == victim.read_text()
