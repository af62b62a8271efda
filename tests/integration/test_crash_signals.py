"""
SIGINT (Ctrl-C) and SIGTERM (a pod being evicted) at random moments of `relocate` and
`pkg` on images with blobs large enough to be fetched as parallel ranges: each run
ends within seconds with at most one `relocator: error:` line, its documented exit
code and no traceback, and the next run finishes the job.

The moments (0.5 to 2.5 s after the start: a signal while the interpreter itself
starts, before relocator's code runs, gets Python's own handling) come from a seeded
generator (`RELOCATOR_TEST_SEED` picks another seed,
`RELOCATOR_TEST_INTERRUPTS` more interrupts per command), so a failure replays.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from relocator.engine import image_tag
from tests.integration.faults_support import (
    MiB,
    images_file,
    insecure_flags,
    run_cli,
    spawn,
    through,
)
from tests.support import ImageFactory, PushedImage, Pusher, Registry, verify_image_tree
from tests.support.proxy import FaultProxy, Forward

# What stderr must never hold: Python's reports of a failure nobody handled.
_NOISE = ("Traceback", "Task exception was never retrieved", "Exception ignored")
# Seconds a signalled run may take to exit before the test calls it hung.
_EXIT_PATIENCE = 20.0
_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
_MESSAGE = {
    signal.SIGINT: "relocator: error: interrupted",
    signal.SIGTERM: "relocator: error: terminated by SIGTERM",
}
# Interrupts per command, and interrupted runs before each run that must finish.
_INTERRUPTS = int(os.environ.get("RELOCATOR_TEST_INTERRUPTS", "10"))
_BETWEEN_FINISHES = 5


def _sha256(path: Path) -> str:
    # Hashed a piece at a time: holding 80 MB tarballs would grow this process, and
    # the peak memory the load tests measure of their children starts from it.
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while piece := f.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def _seed() -> int:
    return int(os.environ.get("RELOCATOR_TEST_SEED", "12"))


def _interrupt(argv: list[str], sig: signal.Signals, delay: float) -> tuple[int, str]:
    """Start `relocator ARGV`, send `sig` after `delay` seconds: (exit code, stderr)."""
    process = spawn(argv)
    try:
        time.sleep(delay)
        process.send_signal(sig)
        _, err = process.communicate(timeout=_EXIT_PATIENCE)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"{sig.name} after {delay:.2f}s: still running {_EXIT_PATIENCE}s later\n{err}")
    return process.returncode, err


def _check_interrupted(code: int, err: str, sig: signal.Signals, delay: float) -> None:
    context = f"{sig.name} after {delay:.2f}s:\n{err}"
    assert [] == [n for n in _NOISE if n in err], context
    lines = [line for line in err.splitlines() if line.startswith("relocator: error:")]
    if code == 0:
        # The run finished before the signal came.
        assert [] == lines, context
    else:
        assert (_EXIT[sig], [_MESSAGE[sig]]) == (code, lines), context


@pytest.fixture
def big_images(
    registry: Registry, repository: str, image_factory: ImageFactory, push: Pusher
) -> list[PushedImage]:
    """Two images with a 40 MiB layer (fetched as ranges) and three small ones."""
    big = [push(registry, repository, image_factory.image(layer_sizes=(2048, 40 * MiB)))
           for _ in range(2)]
    return [*big, *(push(registry, repository, i) for i in image_factory.corpus(3))]


def _slowed(proxy: FaultProxy, images: list[PushedImage]) -> None:
    """Pace the big layers so a run lasts long enough for signals to land mid-transfer."""
    for image in images:
        for layer in image.image.layers:
            if layer.size > 32 * MiB:
                proxy.add(Forward(pace=(256 * 1024, 0.02)), method="GET",
                          path=f"/blobs/{layer.digest}")


@pytest.mark.slow
def test_random_interrupts_of_relocate_end_cleanly_and_the_next_run_finishes(
    tmp_path: Path,
    registry2: Registry,
    proxy: FaultProxy,
    repository: str,
    big_images: list[PushedImage],
) -> None:
    """
    Every interrupted `relocate` exits 130 (SIGINT) or 143 (SIGTERM) with its one line
    and no traceback, or 0 if it had finished; after every five interrupts a run
    without one exits 0 and every image is complete at the destination.
    """
    rng = random.Random(_seed())  # noqa: S311 - moments of a test, not secrets
    _slowed(proxy, big_images)
    sources = images_file(tmp_path / "i.yml", [through(proxy, i) for i in big_images])
    for round_ in range(0, _INTERRUPTS, _BETWEEN_FINISHES):
        target = f"{repository}-{round_}"
        argv = ["relocate", "-f", str(sources), "-r", f"{registry2.host}/{target}",
                *insecure_flags(proxy.host, registry2.host)]
        for i in range(round_, min(_INTERRUPTS, round_ + _BETWEEN_FINISHES)):
            sig = signal.SIGINT if i % 2 else signal.SIGTERM
            delay = rng.uniform(0.5, 2.5)
            code, err = _interrupt(argv, sig, delay)
            _check_interrupted(code, err, sig, delay)

        code, _, err = run_cli(argv)

        assert 0 == code, err
        for image in big_images:
            verify_image_tree(registry2, target, image.digest, expected=image.image)
            with registry2.client() as client:
                assert image.digest == client.manifest_digest(target, image_tag(image.digest))


@pytest.mark.slow
def test_random_interrupts_of_pkg_end_cleanly_and_resume_finishes(
    tmp_path: Path,
    proxy: FaultProxy,
    big_images: list[PushedImage],
) -> None:
    """
    Every interrupted `pkg --resume` exits 130 or 143 with its one line and no
    traceback, or 0 if it had finished; after every five interrupts a run without one
    exits 0 with the very tarball an uninterrupted run writes.
    """
    rng = random.Random(_seed() + 1)  # noqa: S311 - moments of a test, not secrets
    _slowed(proxy, big_images)
    sources = images_file(tmp_path / "i.yml", [through(proxy, i) for i in big_images])
    code, _, err = run_cli(["pkg", "-f", str(sources), "-o", str(tmp_path / "fresh.tar"),
                            *insecure_flags(proxy.host)])
    assert 0 == code, err
    fresh = _sha256(tmp_path / "fresh.tar")
    for round_ in range(0, _INTERRUPTS, _BETWEEN_FINISHES):
        out = tmp_path / f"out-{round_}.tar"
        argv = ["pkg", "-f", str(sources), "-o", str(out), "--resume",
                *insecure_flags(proxy.host)]
        for i in range(round_, min(_INTERRUPTS, round_ + _BETWEEN_FINISHES)):
            sig = signal.SIGINT if i % 2 else signal.SIGTERM
            delay = rng.uniform(0.5, 2.5)
            code, err = _interrupt(argv, sig, delay)
            _check_interrupted(code, err, sig, delay)

        code, _, err = run_cli(argv)

        assert 0 == code, err
        assert fresh == _sha256(out)
