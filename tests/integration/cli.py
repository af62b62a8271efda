"""Running the relocator command line in-process from tests, with its outputs captured."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from relocator.cli.main import run
from tests.support import Registry


@dataclass(frozen=True, slots=True)
class Result:
    """What one command run printed and returned."""

    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        """The `relocator: error:` lines of stderr."""
        return [line for line in self.err.splitlines() if line.startswith("relocator: error:")]


def relocator(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    """Run `relocator ARGV...` and return its exit code, stdout and stderr."""
    capsys.readouterr()
    code = run(list(argv))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def insecure(*registries: Registry) -> list[str]:
    """`--registry-insecure HOST` for each plain-http test registry."""
    flags: list[str] = []
    for registry in registries:
        flags += ["--registry-insecure", registry.host]
    return flags
