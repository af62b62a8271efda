"""
`relocator pkg` killed half-way (SIGKILL, Ctrl-C's SIGINT, or SIGTERM) leaves the tarball an
earlier run wrote untouched, and `--resume` then fetches only the blobs the interrupted
run had not finished, producing the very tarball an uninterrupted run writes.

The command runs as a subprocess (`python -m relocator`); a `FaultProxy` stalls the
biggest blob after 2 MiB so that the signal lands mid-transfer, once every other blob
is in the unfinished tarball's journal.
"""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

import pytest

from tests.integration.faults_support import (
    MiB,
    images_file,
    insecure_flags,
    run_cli,
    spawn,
    through,
)
from tests.support import ImageFactory, PushedImage, Pusher, Registry
from tests.support.proxy import FaultProxy, Forward

# Seconds to wait for the subprocess to reach the stall, and to exit after a signal.
_PATIENCE = 60.0
# How the run ends: killed, or exiting with the documented code.
_EXIT = {signal.SIGKILL: -signal.SIGKILL, signal.SIGINT: 130, signal.SIGTERM: 143}



def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _journaled(journal: Path) -> set[str]:
    """Digests the unfinished tarball's journal (`.<name>.relocator-journal`) lists."""
    try:
        lines = journal.read_text().splitlines()
    except FileNotFoundError:
        return set()
    found = set()
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue  # the last line may be half written
        if isinstance(doc, dict) and isinstance(doc.get("digest"), str):
            found.add(doc["digest"])
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["SIGKILL", "SIGINT", "SIGTERM"]
)
def test_an_interrupted_pkg_keeps_the_earlier_tarball_and_resumes(
    sig: signal.Signals,
    tmp_path: Path,
    proxy: FaultProxy,
    repository: str,
    image_factory: ImageFactory,
    registry: Registry,
    push: Pusher,
) -> None:
    """
    An earlier `out.tar` is byte for byte what it was after the kill, with no other file
    at its name. `pkg` without `--resume` refuses to start over it (exit 3, naming what
    `--resume` would reuse); `pkg --resume` then downloads exactly one blob (the one cut off) and
    writes the same bytes as an uninterrupted run; its leftovers are gone.
    """
    earlier = [push(registry, repository, i) for i in image_factory.corpus(2)]
    small = [push(registry, repository, i) for i in image_factory.corpus(3)]
    big = push(registry, repository, image_factory.image(layer_sizes=(1024, 8 * MiB)))
    layer = max(big.image.layers, key=lambda b: b.size)
    images: list[PushedImage] = [*small, big]
    out = tmp_path / "out.tar"
    flags = insecure_flags(proxy.host)
    first = images_file(tmp_path / "earlier.yml", [through(proxy, i) for i in earlier])
    code, _, err = run_cli(["pkg", "-f", str(first), "-o", str(out), *flags])
    assert 0 == code, err
    before = _sha256(out)
    every = images_file(tmp_path / "images.yml", [through(proxy, i) for i in images])
    others = {str(b.digest) for i in images for b in i.all_blobs()} - {str(layer.digest)}
    journal = tmp_path / ".out.tar.relocator-journal"
    proxy.add(Forward(stall_after=2 * MiB), method="GET", path=f"/blobs/{layer.digest}", times=1)

    process = spawn(["pkg", "-f", str(every), "-o", str(out), *flags])
    try:
        proxy.wait_until(lambda: proxy.stalls == 1 and others <= _journaled(journal),
                         timeout=_PATIENCE)
    finally:
        process.send_signal(sig)
        _, err = process.communicate(timeout=_PATIENCE)

    assert _EXIT[sig] == process.returncode, err
    assert "Traceback" not in err
    assert before == _sha256(out)
    assert ["out.tar"] == sorted(p.name for p in tmp_path.glob("out.tar*"))

    # Without --resume the unfinished tarball is named, not silently started afresh.
    code, _, err = run_cli(["pkg", "-f", str(every), "-o", str(out), *flags])
    assert 3 == code, err
    assert f"--resume would reuse its {len(others)} finished blobs" in err

    # The killed run's stalled request ends when the proxy notices; only then clear.
    proxy.wait_idle()
    proxy.clear_log()
    code, _, err = run_cli(["pkg", "-f", str(every), "-o", str(out), "--resume", *flags])
    assert 0 == code, err
    resumed_gets = [r.path for r in proxy.requests(method="GET", path="/blobs/")]
    code, _, err = run_cli(["pkg", "-f", str(every), "-o", str(tmp_path / "fresh.tar"), *flags])
    assert 0 == code, err

    assert [f"/v2/{repository}/blobs/{layer.digest}"] == resumed_gets
    assert _sha256(tmp_path / "fresh.tar") == _sha256(out)
    assert ["earlier.yml", "fresh.tar", "images.yml", "out.tar"] == sorted(
        p.name for p in tmp_path.iterdir()
    )
