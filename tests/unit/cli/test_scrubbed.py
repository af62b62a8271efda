"""The output streams of a run: credentials hidden, terminal checks untouched."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relocator import redaction
from relocator.cli.scrubbed import ScrubbedStream, scrubbed_output


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    """No secret is left recorded after a test."""
    yield
    redaction.forget_all()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_stream_hides_secrets_and_counts_what_it_was_given() -> None:
    """`write` returns the length of the text given (callers count it), not what was written."""
    inner = _Terminal()
    stream = ScrubbedStream(inner)
    redaction.remember("hunter2-token")

    count = stream.write("token hunter2-token refused\n")
    stream.writelines(["again hunter2-token\n"])

    assert len("token hunter2-token refused\n") == count
    assert "token REDACTED refused\nagain REDACTED\n" == inner.getvalue()
    assert stream.isatty()


def test_scrubbed_output_wraps_stdout_and_stderr_and_restores_them() -> None:
    """While the block runs, `print` to either stream is filtered; then the streams return."""
    before = sys.stdout, sys.stderr
    with scrubbed_output():
        assert isinstance(sys.stdout, ScrubbedStream)
        assert isinstance(sys.stderr, ScrubbedStream)

    assert before == (sys.stdout, sys.stderr)


def test_the_entry_point_does_not_load_aiohttp() -> None:
    """`relocator version` and `--help` stay instant: the secret filter needs no aiohttp."""
    code = "import sys, relocator.cli.main; print('aiohttp' in sys.modules)"

    root = Path(__file__).resolve().parents[3]
    env = os.environ | {"PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                          text=True, check=True, timeout=60)

    assert "False" == done.stdout.strip()
