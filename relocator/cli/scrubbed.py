"""
stdout and stderr with every credential the run sent hidden, whatever wrote to them.

Messages, logs, `--debug` tracebacks, the live display and JSON lines all end on these
two streams, so hiding secrets here covers output no one thought to check: a registry
that echoes our bearer token in an error body, a password inside a library's
exception text. The secrets come from `relocator.redaction`, which the
transport fills as it sends them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from relocator.redaction import scrub


class ScrubbedStream:
    """A text stream that writes to `inner` with every recorded secret replaced."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        """Write `text` scrubbed; returns the length of `text` as given (callers count it)."""
        self.inner.write(scrub(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each line scrubbed."""
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        # isatty, fileno, flush, encoding...: the terminal checks of rich and of the
        # display choice must see the real stream.
        return getattr(self.inner, name)


@contextmanager
def scrubbed_output() -> Iterator[None]:
    """Route `sys.stdout` and `sys.stderr` through `ScrubbedStream` while the block runs."""
    saved = sys.stdout, sys.stderr
    sys.stdout = ScrubbedStream(saved[0])
    sys.stderr = ScrubbedStream(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
