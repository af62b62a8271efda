"""
Capture relocator's live progress display as text: `docs/progress-capture.txt`.

    python docs/capture_progress.py            # rewrite docs/progress-capture.txt
    python docs/capture_progress.py --show     # print the capture instead

A child process drives the CLI's `Output` with a scripted run (three images, one of them
already at the destination; blobs copied, mounted, present; one transfer restarted after
a retry) on a pseudo-terminal, exactly as a real terminal would see it; a small terminal
emulator replays the bytes and keeps the final screen. The child runs on a simulated
clock, so the numbers on the final screen are the same at every run.

The tests (`tests/unit/cli/test_progress.py`) use the same child and emulator, so this
script cannot silently stop working.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CAPTURE = HERE / "progress-capture.txt"
#: The pseudo-terminal's size: wide enough for a bar and a reference side by side.
COLUMNS, ROWS = 100, 32
#: Seconds a child may take before it is considered stuck.
TIMEOUT = 60.0
MB = 1_000_000


# -- the child: a scripted run driving Output ----------------------------------------------


class SimulatedClock:
    """Monotonic seconds that move only when the script says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_digest(name: str) -> str:
    """A well-formed sha256 digest derived from `name` (stable across runs)."""
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def share_out(flight: dict[str, list[int]], budget: int) -> None:
    """
    Advance the blobs in flight (digest -> [done, size]) by `budget` bytes in all, split
    evenly, smallest first: what a nearly finished blob does not need goes to the others.
    A constant budget per step makes the speed on screen the same at every run.
    """
    order = sorted(flight, key=lambda digest: (flight[digest][1] - flight[digest][0], digest))
    for position, digest in enumerate(order):
        done, size = flight[digest]
        take = min(budget // (len(order) - position), size - done)
        flight[digest][0] += take
        budget -= take


async def scripted_run(argv: list[str]) -> None:
    """Drive `Output` through a three-image relocation, then print YAML on stdout."""
    import anyio

    from relocator.cli.options import Display
    from relocator.cli.output import Output
    from relocator.engine import ImageResult, Report
    from relocator.engine import events as ev
    from relocator.oci import Reference
    from relocator.transport.hosts import AdaptiveLimiter, HostState

    parser = argparse.ArgumentParser()
    parser.add_argument("--progress", default="auto")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--report")
    parser.add_argument("--quiet", action="store_true")
    # Real seconds per step (a simulated quarter second): the run takes 25 steps.
    parser.add_argument("--pace", type=float, default=0.04)
    # Leave the live display after this many steps, as an interrupted run would.
    parser.add_argument("--stop-after", type=int, default=0)
    args = parser.parse_args(argv)

    clock = SimulatedClock()
    start = clock.now
    display = Display(progress=args.progress, json=args.json, report=args.report,
                      quiet=args.quiet)
    out = Output(display, "relocate", clock=clock)
    source, destination = "registry.example.com/team", "mirror.example.org/apps/all"
    names = ("app", "db", "cache")
    images = {
        name: (f"{source}/{name}@{fake_digest(name)}", f"{destination}@{fake_digest(name)}")
        for name in names
    }
    # What each image copies, largest first as the engine starts blobs.
    sizes = {
        "app": {"layer-1": 38 * MB, "layer-2": 12 * MB, "layer-3": 5 * MB, "layer-4": 2 * MB,
                "config": 4_000},
        "db": {"layer-1": 27 * MB, "layer-2": 9 * MB, "layer-3": 1 * MB, "config": 3_000},
    }
    copies = sorted(
        ((fake_digest(f"{name}-{blob}"), size, name)
         for name, blobs in sizes.items() for blob, size in blobs.items()),
        key=lambda item: (-item[1], item[0]),
    )
    mounted = (fake_digest("base-layer"), 22 * MB)
    present = {fake_digest("cache-layer"): 15 * MB, fake_digest("cache-config"): 2_000}
    restart = fake_digest("db-layer-1")

    out.line(f"exporting {len(images)} images...")
    for src, _ in images.values():
        out.line(f"will export {src}")
    for src, dst in images.values():
        out.emit(ev.ImageStarted(src, dst))
    out.emit(ev.Planned(
        images=3, images_present=1, manifests=2, blobs=len(copies) + 3, blobs_present=2,
        bytes_to_move=sum(size for _, size, _ in copies) + mounted[1],
        bytes_present=sum(present.values()),
    ))
    hosts = [HostState(source.split("/")[0], AdaptiveLimiter(8)),
             HostState(destination.split("/")[0], AdaptiveLimiter(8))]
    steps = 0
    async with out.running():
        for digest, size in present.items():
            out.emit(ev.BlobDone(digest, size, "present"))
        out.emit(ev.ImageDone(*images["cache"], how="present"))
        waiting = list(copies)
        flight: dict[str, list[int]] = {}
        owner = {digest: name for digest, _, name in copies}
        unfinished = {"app", "db"}
        retried = False
        while waiting or flight:
            while waiting and len(flight) < 8:
                digest, size, _ = waiting.pop(0)
                flight[digest] = [0, size]
                out.emit(ev.BlobStarted(digest, size, destination))
            clock.now += 0.25
            await anyio.sleep(args.pace)
            steps += 1
            if steps == 2:
                out.emit(ev.BlobDone(*mounted, "mounted"))
            # 6 MB per simulated quarter second: 24 MB/s over the wire.
            share_out(flight, 6 * MB)
            for digest, (done, size) in sorted(flight.items()):
                if digest == restart and not retried and done > 10 * MB:
                    # The connection broke: the engine starts the blob again from zero.
                    retried = True
                    out.emit(ev.Retrying(
                        f"copying blob {digest[:19]} to {destination}", 1,
                        "registry.example.com: connection reset by peer", 0.2,
                    ))
                    out.emit(ev.BlobStarted(digest, size, destination))
                    flight[digest] = [0, size]
                    continue
                out.emit(ev.BlobProgress(digest, done, size))
                if done == size:
                    del flight[digest]
                    out.emit(ev.BlobDone(digest, size, "copied"))
            busy = {owner[d] for d in flight} | {name for _, _, name in waiting}
            for name in sorted(unfinished - busy):
                unfinished.discard(name)
                out.emit(ev.ManifestPushed(images[name][1]))
                out.emit(ev.ImageDone(*images[name], how="copied"))
            if steps == args.stop_after:
                return
        await anyio.sleep(3 * args.pace)
    hosts[0].requests, hosts[1].requests, hosts[1].retries = 16, 37, 1
    report = Report(
        images=[
            ImageResult(source=Reference.parse(images[name][0]),
                        destination=Reference.parse(images[name][1]),
                        how="present" if name == "cache" else "copied")
            for name in ("cache", "app", "db")
        ],
        manifests_pushed=2, manifests_present=1,
        blobs_copied=len(copies), blobs_mounted=1, blobs_present=len(present),
        bytes_copied=sum(size for _, size, _ in copies), bytes_mounted=mounted[1],
        bytes_present=sum(present.values()), retries=1, seconds=clock.now - start,
    )
    out.summary("imported", report, hosts)
    sys.stdout.write("images:\n")
    for name in names:
        sys.stdout.write(f"- image: {images[name][1]}\n")


def child(argv: list[str]) -> None:
    """The child process's entry point."""
    import anyio

    anyio.run(scripted_run, argv, backend="asyncio")


# -- the parent: a pseudo-terminal or a pipe -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Captured:
    """What the child wrote and how it ended."""

    #: Bytes written to stderr (the terminal, or the pipe).
    terminal: bytes
    stdout: bytes
    code: int


def _environment() -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items()
        if key not in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE",
                       "COLUMNS", "LINES", "PYTHONWARNINGS")
    }
    env.update(TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(ROWS),
               PYTHONIOENCODING="utf-8")
    root = str(HERE.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _command(argv: list[str], program: list[str] | None) -> list[str]:
    if program is None:
        program = [sys.executable, str(Path(__file__).resolve()), "--child"]
    return [*program, *argv]


def run_on_terminal(argv: list[str], *, program: list[str] | None = None) -> Captured:
    """
    Run the scripted child (or `program`) with `argv`, stderr on a pseudo-terminal of
    `COLUMNS` x `ROWS` and stdout on a pipe.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    with subprocess.Popen(
        _command(argv, program), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=slave, env=_environment(),
    ) as process:
        os.close(slave)
        out_fd = process.stdout.fileno() if process.stdout is not None else -1
        received: dict[int, list[bytes]] = {master: [], out_fd: []}
        open_fds = {master, out_fd}
        deadline = time.monotonic() + TIMEOUT
        try:
            while open_fds:
                if time.monotonic() > deadline:
                    process.kill()
                    raise TimeoutError(f"{argv} still running after {TIMEOUT} s")
                ready, _, _ = select.select(list(open_fds), [], [], 0.1)
                for fd in ready:
                    try:
                        data = os.read(fd, 65536)
                    except OSError:  # EIO: the child closed the terminal
                        data = b""
                    if data:
                        received[fd].append(data)
                    else:
                        open_fds.discard(fd)
        finally:
            os.close(master)
        code = process.wait(TIMEOUT)
    return Captured(b"".join(received[master]), b"".join(received[out_fd]), code)


def run_on_pipe(argv: list[str], *, program: list[str] | None = None) -> Captured:
    """Run the scripted child (or `program`) with stderr and stdout on pipes (as in CI)."""
    result = subprocess.run(
        _command(argv, program), stdin=subprocess.DEVNULL, capture_output=True, env=_environment(),
        timeout=TIMEOUT, check=False,
    )
    return Captured(result.stderr, result.stdout, result.returncode)


# -- a terminal emulator just big enough for rich ------------------------------------------

_CONTROL = re.compile(
    rb"\x1b\[(?P<private>[?>=]?)(?P<params>[0-9;]*)(?P<final>[@-~])"  # CSI
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC (titles, hyperlinks)
    rb"|\x1b[@-Z\\-_]"  # other two-byte escapes
    rb"|[\r\n\b]"
)


class Screen:
    """
    Replays terminal output (cursor moves, erasing, carriage returns; colours
    ignored) onto lines of text, keeping everything scrolled off the top.
    """

    def __init__(self, columns: int = COLUMNS, rows: int = ROWS) -> None:
        self.columns = columns
        self.rows = rows
        self.lines: list[list[str]] = [[]]
        self.row = 0
        self.col = 0

    def feed(self, data: bytes) -> None:
        """Interpret `data`."""
        position = 0
        for match in _CONTROL.finditer(data):
            self._text(data[position:match.start()].decode("utf-8", "replace"))
            self._control(match)
            position = match.end()
        self._text(data[position:].decode("utf-8", "replace"))

    @property
    def top(self) -> int:
        """Index of the first line on screen (the ones above have scrolled off)."""
        return max(0, len(self.lines) - self.rows)

    def _line(self) -> list[str]:
        while len(self.lines) <= self.row:
            self.lines.append([])
        return self.lines[self.row]

    def _text(self, text: str) -> None:
        for char in text:
            if self.col >= self.columns:
                self.row, self.col = self.row + 1, 0
            line = self._line()
            line.extend(" " * (self.col - len(line) + 1))
            line[self.col] = char
            self.col += 1

    def _control(self, match: re.Match[bytes]) -> None:
        token = match.group()
        if token == b"\r":
            self.col = 0
        elif token == b"\n":
            self.row += 1
            self._line()
        elif token == b"\b":
            self.col = max(0, self.col - 1)
        elif match.group("final") is not None and not match.group("private"):
            params = [int(p) if p else 0 for p in match.group("params").decode().split(";")]
            self._csi(match.group("final").decode(), params)

    def _csi(self, final: str, params: list[int]) -> None:
        n = params[0] or 1
        if final == "A":
            self.row = max(self.top, self.row - n)
        elif final == "B":
            self.row += n
            self._line()
        elif final == "C":
            self.col = min(self.columns - 1, self.col + n)
        elif final == "D":
            self.col = max(0, self.col - n)
        elif final == "G":
            self.col = n - 1
        elif final == "H":
            self.row = self.top + n - 1
            self.col = (params[1] if len(params) > 1 and params[1] else 1) - 1
            self._line()
        elif final == "K":
            line = self._line()
            if params[0] == 0:
                del line[self.col:]
            elif params[0] == 1:
                line[: self.col + 1] = [" "] * min(len(line), self.col + 1)
            else:
                line.clear()
        elif final == "J" and params[0] in (0, 2, 3):
            del self._line()[self.col:]
            del self.lines[self.row + 1:]

    def text(self) -> str:
        """Every line (scrolled-off ones included), trailing blanks removed."""
        lines = ["".join(line).rstrip() for line in self.lines]
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines) + "\n"


def final_screen(data: bytes, columns: int = COLUMNS, rows: int = ROWS) -> str:
    """What a terminal shows after receiving `data` (and what scrolled above it)."""
    screen = Screen(columns, rows)
    screen.feed(data)
    return screen.text()


#: Steps after which the "during the run" capture leaves the display.
DURING_STEPS = 2


def capture(argv: list[str]) -> str:
    """The final screen of the scripted run with `argv`."""
    captured = run_on_terminal(argv)
    if captured.code != 0:
        sys.stderr.write(captured.terminal.decode("utf-8", "replace"))
        raise SystemExit(f"the scripted run failed with exit code {captured.code}")
    return final_screen(captured.terminal)


def render_capture() -> str:
    """The whole of `docs/progress-capture.txt`."""
    during = capture(["--stop-after", str(DURING_STEPS)])
    end = capture([])
    return (
        "relocator's live display on stderr, as a "
        f"{COLUMNS}x{ROWS} terminal shows it (colours left out),\n"
        "for a scripted relocation of three images on a simulated clock.\n"
        "Regenerate with: python docs/capture_progress.py\n"
        "\n"
        f"== During the run (after {DURING_STEPS * 0.25:.1f} simulated seconds) ==\n\n"
        f"{during}\n"
        "== At the end: the last frame, then the summary ==\n\n"
        f"{end}"
    )


def main() -> None:
    """Write (or `--show`) the capture of the live display."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--show", action="store_true", help="print instead of writing")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        child(rest)
    elif args.show:
        sys.stdout.write(render_capture())
    else:
        CAPTURE.write_text(render_capture(), encoding="utf-8")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
