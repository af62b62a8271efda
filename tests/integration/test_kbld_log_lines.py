"""
relocator's plain log lines hold kbld's, in kbld's order (the README promises them).

`tests/data/carvel/kbld-0.42-log.txt` is the standard error of the real kbld 0.42 for
`pkg`, `unpkg` and `relocate` of the two images the fixtures describe (see that folder's
README). The same images are pushed here (same seeds, so the same digests), relocator
runs the same three commands, and each kbld line must appear in relocator's output in
kbld's order; relocator's own lines may come between them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.cli import relocator
from tests.support import Pusher, Registry, image, multi_platform

DATA = Path(__file__).parent.parent / "data" / "carvel"
KBLD_HOST = "127.0.0.1:5055"
# Lines kbld prints from concurrent workers, whose order among themselves varies.
_UNORDERED = re.compile(r"[a-z]+ \| (importing .+ -> .+\.\.\.|done: file '.+')$")


def _kbld_lines(prefix: str, source: str, destination: str) -> list[str]:
    """kbld's lines with `prefix`, its registry renamed, each `(duration)` cut off."""
    lines = []
    for line in (DATA / "kbld-0.42-log.txt").read_text().splitlines():
        if not line.startswith(f"{prefix} | "):
            continue
        line = line.replace(f"{KBLD_HOST}/cap/", f"{destination}/cap/")
        line = line.replace(f"{KBLD_HOST}/", f"{source}/")
        lines.append(re.sub(r"^(.*done: file '[^']+') \(.*\)$", r"\1", line))
    return lines


def _groups(lines: list[str]) -> list[set[str]]:
    """Lines in order; a run of lines from kbld's concurrent workers is one group."""
    groups: list[set[str]] = []
    unordered = False
    for line in lines:
        this = bool(_UNORDERED.match(line))
        if this and unordered:
            groups[-1].add(line)
        else:
            groups.append({line})
        unordered = this
    return groups


def _assert_in_order(kbld: list[str], ours: list[str]) -> None:
    """Each group of kbld lines is in `ours`, after every line of the group before."""
    ours = [re.sub(r"^(.*done: file '[^']+') \(.*\)$", r"\1", line) for line in ours]
    after = -1
    for group in _groups(kbld):
        places = []
        for line in sorted(group):
            found = [i for i, mine in enumerate(ours) if mine == line and i > after]
            assert found, f"kbld's line {line!r} missing after line {after} of:\n" + "\n".join(
                ours
            )
            places.append(found[0])
        after = max(places)


def _write(path: Path, name: str, source: str) -> Path:
    path.write_text((DATA / name).read_text().replace(f"{KBLD_HOST}/", f"{source}/"))
    return path


def test_pkg_unpkg_and_relocate_print_kbld_lines_in_kbld_order(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    push: Pusher,
) -> None:
    """
    `package |`, `unpackage |` and `relocate |` lines of kbld, as kbld printed them for
    the same images (its file durations aside: relocator prints each file's size).
    """
    app = push(registry, "src/app", image("exp/a", layer_sizes=(3000, 5000), kind="docker"),
               tag="1.0")
    multi = push(registry, "src/multi", multi_platform("exp/m"), tag="2.0")
    lock = _write(tmp_path / "kbld.lock.yml", "kbld.lock.yml", registry.host)
    resolved = _write(tmp_path / "resolved.yml", "kbld-resolved.yml", registry.host)
    # The same seeds give the same digests as the images kbld saw.
    assert str(app.digest) in lock.read_text()
    assert str(multi.digest) in lock.read_text()
    tarball = tmp_path / "pkg.tar"
    plain = ["--progress", "plain"]

    packaged = relocator(capsys, "pkg", "-f", str(lock), "-o", str(tarball), *plain)
    unpackaged = relocator(capsys, "unpkg", "-f", str(resolved), "-i", str(tarball),
                           "-r", f"{registry2.host}/cap/unpkg", *plain)
    relocated = relocator(capsys, "relocate", "-f", str(resolved),
                          "-r", f"{registry2.host}/cap/relocate", *plain)

    assert [0, 0, 0] == [packaged.code, unpackaged.code, relocated.code], relocated.err
    for prefix, result in (("package", packaged), ("unpackage", unpackaged),
                           ("relocate", relocated)):
        kbld = _kbld_lines(prefix, registry.host, registry2.host)
        assert len(kbld) > 3
        _assert_in_order(kbld, result.err.splitlines())
