"""
A tiny process that starts the measured tools, so that their peak RSS is their own.

Linux records a process's peak RSS (`ru_maxrss`) across `exec`: the high-water mark of
the memory it had before `exec` counts too. A tool forked from the benchmark (a Python
process of about 60 MB) would report at least 60 MB whatever it used. This launcher is
started as `python -S -I launcher.py`, imports nothing beyond builtins (about 9 MB),
and forks every tool from itself, so the floor under a tool's peak RSS is about 9 MB.

Protocol on stdin/stdout: the benchmark sends a length-prefixed `marshal` tuple
`(argv, env, cwd, log)`; the launcher answers `("started", pid)`, then, once the tool
has exited, `("done", exit_code, user_s, system_s, maxrss_kib)` from `os.wait4`.
Run by path, not as a module, so that no package code is imported.
"""

from __future__ import annotations

import marshal
import os

# Frames are prefixed with their length as 4 big-endian bytes.
_LENGTH_BYTES = 4
# The exit status of a child whose exec failed, as shells use.
_EXEC_FAILED = 127


# Requests arrive on stdin, replies leave on stdout; raw descriptors need no imports.
_REQUESTS = 0
_REPLIES = 1


def _read(size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = os.read(_REQUESTS, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _send(value: tuple[str | int | float, ...]) -> None:
    payload = marshal.dumps(value)
    frame = len(payload).to_bytes(_LENGTH_BYTES, "big") + payload
    while frame:
        frame = frame[os.write(_REPLIES, frame) :]


def _start(argv: list[str], env: dict[str, str] | None, cwd: str | None, log: str) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:
        out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        if cwd:
            os.chdir(cwd)
        # argv comes from the benchmark's own command builders, never from a shell.
        if env is None:
            os.execvp(argv[0], argv)  # noqa: S606
        os.execvpe(argv[0], argv, env)  # noqa: S606
    except OSError as exc:
        os.write(2, f"launcher: cannot run {argv[0]}: {exc}\n".encode())
    os._exit(_EXEC_FAILED)


def main() -> None:
    """Serve requests until the benchmark closes our stdin."""
    while True:
        header = _read(_LENGTH_BYTES)
        if header is None:
            return
        body = _read(int.from_bytes(header, "big"))
        if body is None:
            return
        # The only writer of this pipe is the benchmark that started us.
        argv, env, cwd, log = marshal.loads(body)  # noqa: S302
        pid = _start(argv, env, cwd, log)
        _send(("started", pid))
        _, status, usage = os.wait4(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        _send(("done", code, usage.ru_utime, usage.ru_stime, usage.ru_maxrss))


if __name__ == "__main__":
    main()
