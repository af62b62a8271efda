"""
The wheel installs and works on its own: built from this tree, installed with its
dependencies into a fresh virtualenv (no source tree on the path), it runs, and every
file its `--help` names is part of what was installed. It ships the in-memory registry
for users' tests and none of the test servers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from relocator import __version__

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "relocator-cli"
# Building needs the build backend and installing needs the dependencies: both come
# from the package index, which can take a while on a slow link.
_TIMEOUT = 600
# An absolute path in help text: a `/` that does not continue a word, a host name, a
# `{placeholder}` or an `[optional]` part of a metavar (OS/ARCH[/VARIANT]).
# A command line (indented shell, or a CI step's `- run:` / `- `) installing `relocator`.
_INSTALL_RELOCATOR = re.compile(r"\s*(?:-\s*)?(?:run:\s*)?pip install [\"']?relocator(?![\w-])")
_PATH = re.compile(r"(?<![\w.}\]>\[-])/[\w./+-]+")
# The test servers, image factory and checks that once lived in relocator.testing and
# are test infrastructure now (tests/support).
_TEST_SERVERS = ("client", "dockerconfig", "images", "proxy", "registry", "tokenserver",
                 "verify")


def _run(argv: list[str], cwd: Path) -> str:
    """Run `argv` without this tree on the path; its stdout (fails on a non-zero exit)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=_TIMEOUT, check=False)
    assert 0 == result.returncode, f"{argv}: {result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this tree, built as the user guide says."""
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist),
          str(ROOT)], cwd=dist)
    wheels = list(dist.glob("*.whl"))
    assert 1 == len(wheels), wheels
    return wheels[0]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh virtualenv with the wheel of this tree installed, dependencies and all."""
    work = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "venv", "--without-pip", str(work / "venv")], cwd=work)
    python = work / "venv" / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
          str(wheel)], cwd=work)
    return work / "venv"


@pytest.mark.slow
def test_the_install_lines_name_the_wheel_the_build_makes(wheel: Path) -> None:
    """Every wheel file name the docs install is the one `pip wheel` produced."""
    named = {
        name
        for path in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
        for name in re.findall(r"relocator_cli-\S+?\.whl", path.read_text(encoding="utf-8"))
    }

    assert {wheel.name} == named


def test_no_install_line_fetches_the_unrelated_distribution() -> None:
    """
    `relocator` on the package index is another project: no command line in the docs
    (a shell line, a CI step) runs `pip install relocator` or an extra of it.
    """
    found = [
        f"{path.name}: {line.strip()}"
        for path in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
        for line in path.read_text(encoding="utf-8").splitlines()
        if _INSTALL_RELOCATOR.match(line)
    ]

    assert [] == found


@pytest.mark.slow
def test_the_installed_wheel_runs_and_knows_its_version(venv: Path) -> None:
    """`relocator --version` of the installed command; the distribution's own name."""
    version = _run([str(venv / "bin" / "relocator"), "--version"], cwd=venv)
    metadata = _run([str(venv / "bin" / "python"), "-c",
                     f"import importlib.metadata as m; print(m.version({DISTRIBUTION!r}))"],
                    cwd=venv)

    assert f"relocator {__version__}\n" == version
    assert f"{__version__}\n" == metadata


@pytest.mark.slow
def test_every_path_the_help_names_was_installed(venv: Path) -> None:
    """
    The help of relocator and of each command names documents by absolute paths inside
    the virtualenv, and each of them exists there; none is named relative to a clone.
    """
    relocator = str(venv / "bin" / "relocator")
    commands = _run([str(venv / "bin" / "python"), "-c",
                     "from relocator.cli.parser import COMMANDS; print(*COMMANDS)"],
                    cwd=venv).split()
    helps = [_run([relocator, "--help"], cwd=venv)]
    helps += [_run([relocator, command, "--help"], cwd=venv)
              for command in commands if command != "version"]
    text = "\n".join(helps)

    named = {path.rstrip(".,;") for path in _PATH.findall(text)}
    missing = [path for path in sorted(named) if not Path(path).is_file()]
    outside = [path for path in sorted(named)
               if not Path(path).resolve().is_relative_to(venv.resolve())]

    assert {"user-guide.md", "cli.md", "mirror.md", "report.schema.json"} <= {
        Path(path).name for path in named
    }, named
    assert [] == missing
    assert [] == outside
    assert [] == re.findall(r"(?<![/\w])docs/\S+", text)


@pytest.mark.slow
def test_the_wheel_ships_the_memory_store_and_no_test_server(wheel: Path) -> None:
    """
    relocator.testing in the wheel is the in-memory registry and nothing else; no test
    server, image factory or check is in it, under its old name or under tests/.
    """
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    servers = {f"relocator/testing/{module}.py" for module in _TEST_SERVERS}

    assert {"relocator/testing/__init__.py", "relocator/testing/memory.py"} == {
        name for name in names if name.startswith("relocator/testing/")
    }
    assert set() == servers & names
    assert [] == sorted(name for name in names if name.startswith("tests/"))


@pytest.mark.slow
def test_the_installed_package_imports_no_test_server(venv: Path) -> None:
    """
    Installed alone, the command line and `relocator.testing.MemoryStore` import; the
    command line loads no testing module, and MemoryStore none of the test servers.
    """
    python = str(venv / "bin" / "python")
    probe = ("import sys, {module}; print(sorted(m for m in sys.modules"
             " if m == 'tests' or m.startswith(('tests.', 'relocator.testing'))))")
    cli = _run([python, "-c", probe.format(module="relocator.cli.main")], cwd=venv)
    memory = _run([python, "-c", probe.format(module="relocator.testing") +
                   "; from relocator.testing import MemoryStore; MemoryStore()"], cwd=venv)

    assert "[]\n" == cli
    assert "['relocator.testing', 'relocator.testing.memory']\n" == memory
