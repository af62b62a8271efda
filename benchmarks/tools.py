"""
Command lines of the tools under test, and what must be reset between their runs.

- relocator runs as `python -m relocator` from the interpreter running the benchmark
  (optionally under pyinstrument); `pkg` / `unpkg` are probed first, because they may
  not be implemented yet.
- skopeo runs image by image, sequentially, as users script it; its blob info cache
  (which remembers where blobs were seen, and would make later runs try mounts from
  wiped repositories) is cleared before every run.
- the ceiling is `python -m benchmarks.ceiling`.
"""

from __future__ import annotations

import compileall
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import relocator

from .ceiling import DEFAULT_STREAMS

# skopeo (containers/image) keeps its blob info cache here when run as root ...
_ROOT_SKOPEO_CACHE = Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb")
# A probe answers in well under a second; 60 s means something hangs.
_PROBE_TIMEOUT = 60.0


def relocator_argv(
    command: str,
    *args: str,
    insecure: Sequence[str],
    concurrency: int | None = None,
    profile: Path | None = None,
) -> list[str]:
    """
    `python -m relocator COMMAND ARGS...` with plain http for `insecure` hosts.

    Args:
        command: `relocate`, `pkg` or `unpkg`.
        args: The command's own arguments.
        insecure: `host:port` of every plain-http registry it talks to.
        concurrency: `--concurrency N`; relocator's default when None.
        profile: Run under pyinstrument, saving the session to this file.
    """
    base = [sys.executable, "-m", "relocator"]
    if profile is not None:
        base = [
            sys.executable,
            "-m",
            "pyinstrument",
            "-r",
            "pyisession",
            "-o",
            str(profile),
            "-m",
            "relocator",
        ]
    flags = [flag for host in insecure for flag in ("--registry-insecure", host)]
    if concurrency is not None:
        flags += ["--concurrency", str(concurrency)]
    return [*base, command, *args, *flags, "--progress", "none"]


def relocator_unavailable(command: str, workdir: Path) -> str | None:
    """
    Why `relocator COMMAND` cannot be benchmarked, or None when it can.

    Asks for `--help`, then runs a dry run on an input naming no images: a command the
    parser knows but the CLI does not implement yet fails there with an internal error.
    """
    done = _quiet([sys.executable, "-m", "relocator", command, "--help"])
    if done.returncode != 0:
        return f"`relocator {command} --help` exited {done.returncode}: {_last_line(done)}"
    # An unknown command falls through to `resolve` (relocator's default command).
    if f"relocator {command}" not in done.stdout:
        return f"relocator has no `{command}` command"
    empty = workdir / "probe-empty.yml"
    empty.write_text("images: []\n")
    args = {
        "pkg": ["-o", str(workdir / "probe.tar")],
        "unpkg": ["-i", str(workdir / "probe-missing.tar"), "-r", "127.0.0.1:1/probe"],
        "relocate": ["-r", "127.0.0.1:1/probe"],
    }.get(command, [])
    done = _quiet(
        [
            sys.executable,
            "-m",
            "relocator",
            command,
            "-f",
            str(empty),
            *args,
            "--dry-run",
            "--progress",
            "none",
        ]
    )
    if "internal error" in done.stderr or "Traceback" in done.stderr:
        return f"`relocator {command}` fails: {_first_error(done)}"
    return None


def _quiet(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT, check=False)


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else "no output"


def _first_error(done: subprocess.CompletedProcess[str]) -> str:
    for line in done.stderr.splitlines():
        if "error" in line.lower():
            return line.strip()
    return _last_line(done)


def skopeo_binary() -> str:
    """
    The skopeo executable.

    Raises:
        FileNotFoundError: skopeo is not installed.
    """
    path = shutil.which("skopeo")
    if path is None:
        raise FileNotFoundError("skopeo is not installed (apt-get install skopeo)")
    return path


def skopeo_copy_argv(source: str, destination: str, *, preserve_digests: bool = True) -> list[str]:
    """
    `skopeo copy --all [--preserve-digests] SOURCE DESTINATION` over plain http.

    Args:
        source: `docker://...` or `oci:DIR:NAME`.
        destination: Likewise.
        preserve_digests: Refuse to change any digest (an OCI layout destination cannot
            hold Docker manifests, so those need it off).
    """
    flags = ["--all", "--src-tls-verify=false", "--dest-tls-verify=false", "--quiet"]
    if preserve_digests:
        flags.append("--preserve-digests")
    return [skopeo_binary(), "copy", *flags, source, destination]


def fresh_skopeo_env(data_home: Path) -> dict[str, str]:
    """
    The environment for one skopeo run, with its blob info cache cleared.

    As root, skopeo keeps that cache in one fixed system file, which is deleted here;
    otherwise it lives under `$XDG_DATA_HOME` (`containers/cache/`), pointed at the
    empty `data_home`.
    """
    env = dict(os.environ)
    if os.geteuid() == 0:
        _ROOT_SKOPEO_CACHE.unlink(missing_ok=True)
    else:
        shutil.rmtree(data_home, ignore_errors=True)
        data_home.mkdir(parents=True)
        env["XDG_DATA_HOME"] = str(data_home)
    return env


def ceiling_argv(mode: str, *args: str, streams: int = DEFAULT_STREAMS) -> list[str]:
    """`python -m benchmarks.ceiling --streams N MODE ARGS...`."""
    return [sys.executable, "-m", "benchmarks.ceiling", "--streams", str(streams), mode, *args]


def version_of(argv: Sequence[str]) -> str:
    """The first line a `--version` command prints, or why it could not be run."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=_PROBE_TIMEOUT, check=False
        )
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    if not lines:
        return "unknown"
    # `docker-registry --version` starts with its own path; keep only the name.
    first, _, rest = lines[0].partition(" ")
    return f"{Path(first).name} {rest}".strip() if "/" in first else lines[0]


def byte_compile() -> None:
    """
    Byte-compile relocator and the benchmark's helpers, as pip does when it installs a
    wheel: an editable install run with `PYTHONDONTWRITEBYTECODE=1` would otherwise
    compile every module again on every run and charge that to the tool.
    """
    for package in (Path(relocator.__file__).parent, Path(__file__).parent):
        compileall.compile_dir(package, quiet=1)


def relocator_revision(source: Path | None = None) -> str:
    """
    `git describe` of the relocator source (this one, or the checkout at `source`) when
    it is a checkout, else an empty string.
    """
    source = source or Path(relocator.__file__).parent.parent
    git = shutil.which("git")
    if git is None:
        return ""
    try:
        done = subprocess.run(
            [git, "-C", str(source), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT,
            check=False,
        )
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
