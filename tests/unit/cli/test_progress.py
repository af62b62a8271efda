"""
Progress on stderr: the counters every display shares, the live display on a real
pseudo-terminal, plain lines on a pipe, and how `--progress` picks between them.

The terminal tests run `docs/capture_progress.py`'s scripted child (a three-image run
driving the CLI's `Output` on a simulated clock) and replay what the terminal received,
so the capture in docs/ is checked by the same code.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from rich.console import Console

from relocator.cli.options import Display
from relocator.cli.output import Output, choose_display
from relocator.cli.plain import ImageLine, PlainProgress, ProgressState, fraction
from relocator.cli.progress import RichProgress, SpeedMeter, duration, window
from relocator.engine import ImageResult, Report
from relocator.engine import events as ev
from relocator.oci import Reference
from relocator.transport.hosts import AdaptiveLimiter, HostState
from relocator.transport.ratelimit import PullAllowance

DOCS = Path(__file__).resolve().parents[3] / "docs"
MB = 1_000_000
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def _load_capture() -> ModuleType:
    spec = importlib.util.spec_from_file_location("capture_progress", DOCS / "capture_progress.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


capture = _load_capture()


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _planned(images: int = 3, bytes_to_move: int = 100 * MB) -> ev.Planned:
    return ev.Planned(images=images, images_present=0, manifests=images, blobs=3,
                      blobs_present=0, bytes_to_move=bytes_to_move, bytes_present=0)


# -- ProgressState ---------------------------------------------------------------------------


def test_a_restarted_blob_goes_back_to_zero_but_the_wire_counter_does_not() -> None:
    """
    A blob restarted after `Retrying` starts again from zero: the bytes done go
    backwards, while the bytes over the wire (for the speed) keep what was sent.
    """
    state = ProgressState()
    state.update(_planned())
    state.update(ev.BlobStarted(A, 10 * MB, "dst/repo"))
    state.update(ev.BlobProgress(A, 6 * MB, 10 * MB))
    before = state.bytes_done

    state.update(ev.Retrying("copying blob", 1, "reset", 0.1))
    state.update(ev.BlobStarted(A, 10 * MB, "dst/repo"))
    restarted = state.bytes_done
    state.update(ev.BlobProgress(A, 2 * MB, 10 * MB))

    assert (6 * MB, 0, 2 * MB) == (before, restarted, state.bytes_done)
    assert 8 * MB == state.bytes_wire
    assert 1 == state.retried


def test_absolute_progress_may_go_backwards_without_a_new_start() -> None:
    """`BlobProgress.done` is absolute: a smaller value replaces a larger one."""
    state = ProgressState()
    state.update(ev.BlobStarted(A, 10 * MB, "dst/repo"))
    state.update(ev.BlobProgress(A, 5 * MB, 10 * MB))
    state.update(ev.BlobProgress(A, 1 * MB, 10 * MB))

    assert 1 * MB == state.bytes_done
    assert 5 * MB == state.bytes_wire


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("copied", {"copied": 1, "mounted": 0, "present": 0, "excluded": 0}),
        ("mounted", {"copied": 0, "mounted": 1, "present": 0, "excluded": 0}),
        ("present", {"copied": 0, "mounted": 0, "present": 1, "excluded": 0}),
        ("excluded", {"copied": 0, "mounted": 0, "present": 0, "excluded": 1}),
    ],
)
def test_each_way_a_blob_lands_has_its_counter(how: str, expected: dict[str, int]) -> None:
    """Copied, mounted, present and excluded blobs are counted apart."""
    state = ProgressState()

    state.update(ev.BlobDone(A, 4 * MB, how))  # type: ignore[arg-type]

    actual = {name: getattr(state, name) for name in expected}
    assert expected == actual


def test_mounted_bytes_settle_the_plan_but_do_not_cross_the_wire() -> None:
    """
    The overall bar counts mounted bytes as taken care of (they are in the plan's
    bytes to move) but the speed does not; present blobs are outside the plan.
    """
    state = ProgressState()
    state.update(_planned(bytes_to_move=30 * MB))
    state.update(ev.BlobDone(A, 10 * MB, "mounted"))
    state.update(ev.BlobDone(B, 50 * MB, "present"))
    state.update(ev.BlobStarted(C, 20 * MB, "dst/repo"))
    state.update(ev.BlobProgress(C, 5 * MB, 20 * MB))

    assert (15 * MB, 5 * MB, 5 * MB) == (state.bytes_settled, state.bytes_done, state.bytes_wire)
    assert (10 * MB, 50 * MB) == (state.bytes_mounted, state.bytes_present)


def test_a_copy_finishing_without_progress_events_counts_its_size() -> None:
    """A small blob may finish before any `BlobProgress`: its size counts all the same."""
    state = ProgressState()
    state.update(_planned(bytes_to_move=3 * MB))
    state.update(ev.BlobStarted(A, 3 * MB, "dst/repo"))
    state.update(ev.BlobDone(A, 3 * MB, "copied"))

    assert (3 * MB, 3 * MB, 3 * MB) == (state.bytes_done, state.bytes_settled, state.bytes_wire)
    assert {} == state.inflight


def test_settled_bytes_never_exceed_the_plan() -> None:
    """A blob copied to two repositories is in the plan once: the bar stops at 100%."""
    state = ProgressState()
    state.update(_planned(bytes_to_move=4 * MB))
    for _ in range(2):
        state.update(ev.BlobStarted(A, 4 * MB, "dst/repo"))
        state.update(ev.BlobDone(A, 4 * MB, "copied"))

    assert 4 * MB == state.bytes_settled


def test_images_go_from_planning_to_copying_to_their_outcome() -> None:
    """Images are `planning` until the plan is known, `copying` after, then finished."""
    state = ProgressState()
    for name in ("a", "b", "c"):
        state.update(ev.ImageStarted(f"src/{name}", f"dst/{name}"))
    planning = [i.status for i in state.images.values()]
    state.update(_planned())
    copying = [i.status for i in state.images.values()]

    state.update(ev.ImageDone("src/c", "dst/c", "present"))
    state.update(ev.ImageFailed("src/a", "boom"))
    state.update(ev.ImageDone("src/b", "dst/b", "copied"))

    assert ["planning"] * 3 == planning
    assert ["copying"] * 3 == copying
    expected = [
        ImageLine(source="src/a", destination="dst/a", status="failed", error="boom",
                  finished=2),
        ImageLine(source="src/b", destination="dst/b", status="done", finished=3),
        ImageLine(source="src/c", destination="dst/c", status="present", finished=1),
    ]
    assert expected == list(state.images.values())
    assert (2, 1, 1) == (state.images_done, state.images_present, state.images_failed)


def test_the_clock_of_the_speed_starts_with_the_plan() -> None:
    """Planning time does not dilute the average speed."""
    clock = Clock()
    state = ProgressState(clock=clock)
    clock.now += 60  # planning
    state.update(_planned())
    state.update(ev.BlobStarted(A, 20 * MB, "dst/repo"))
    clock.now += 2
    state.update(ev.BlobProgress(A, 20 * MB, 20 * MB))

    assert 10 * MB == state.speed


def test_a_snapshot_is_a_copy() -> None:
    """Later events do not change a snapshot already taken (another thread reads it)."""
    state = ProgressState()
    state.update(ev.BlobStarted(A, 10 * MB, "dst/repo"))
    snap = state.snapshot()
    state.update(ev.BlobProgress(A, 5 * MB, 10 * MB))
    state.update(ev.BlobStarted(B, 1 * MB, "dst/repo"))

    assert [(A, 0, 10 * MB)] == [(b.digest, b.done, b.size) for b in snap.blobs]


# -- plain lines -----------------------------------------------------------------------------


def test_the_periodic_line_shows_bytes_percent_images_and_speed() -> None:
    """`600/1000 MB (60%) 4/10 images 200 MB/s`, as the CI log shows every few seconds."""
    clock = Clock()
    plain = PlainProgress(io.StringIO(), "relocate", clock=clock)
    plain.emit(_planned(images=10, bytes_to_move=1000 * MB))
    for n in range(4):
        plain.emit(ev.ImageDone(f"src/{n}", f"dst/{n}", "copied"))
    plain.emit(ev.BlobStarted(A, 800 * MB, "dst/repo"))
    clock.now += 3
    plain.emit(ev.BlobProgress(A, 600 * MB, 800 * MB))

    assert "600/1000 MB (60%) 4/10 images 200 MB/s" == plain.status()


def test_plain_lines_name_finished_images_and_retries() -> None:
    """One line per image finished and per retry, with the command's prefix."""
    stream = io.StringIO()
    plain = PlainProgress(stream, "relocate")
    plain.emit(ev.ImageDone("src/a", "dst/a", "copied"))
    plain.emit(ev.ImageDone("src/b", "dst/b", "present"))
    plain.emit(ev.Retrying("copying blob x", 2, "reset", 0.5))
    plain.emit(ev.BlobProgress(A, 1, 2))

    expected = [
        "relocate | done: src/a -> dst/a",
        "relocate | present: src/b -> dst/b",
        "relocate | retrying copying blob x (attempt 2): reset",
    ]
    assert expected == stream.getvalue().splitlines()


@pytest.mark.parametrize(
    ("done", "total", "expected"),
    [(612 * MB, 1024 * MB, "612/1024 MB"), (1_500_000, 9_000_000, "1.5/9.0 MB"),
     (0, 0, "0.0/0.0 MB")],
)
def test_fractions_use_the_unit_of_the_total(done: int, total: int, expected: str) -> None:
    """Bytes done over bytes planned share one unit and precision."""
    assert expected == fraction(done, total)


# -- the live display, rendered without a terminal ------------------------------------------


def _render(display: RichProgress, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, height=40, color_system=None)
    console.print(display.render())
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def _line(n: int, *, finished: int = 0) -> ImageLine:
    return ImageLine(source=f"src/{n}", destination=f"dst/{n}",
                     status="done" if finished else "copying", finished=finished)


def test_the_live_display_shows_the_five_largest_blobs_and_counts_the_rest() -> None:
    """Blob bars: at most five, largest first, then `+N more blobs in flight`."""
    display = RichProgress(Console(file=io.StringIO()), "relocate")
    display.emit(_planned(bytes_to_move=200 * MB))
    sizes = {f"sha256:{n:064x}": (n + 1) * MB for n in range(8)}
    for digest, size in sizes.items():
        display.emit(ev.BlobStarted(digest, size, "dst/repo"))

    text = _render(display)

    shown = [d[:19] for d in sorted(sizes, key=lambda d: -sizes[d])[:5]]
    positions = [text.index(digest) for digest in shown]
    assert sorted(positions) == positions
    hidden = [d[:19] for d in sizes if d[:19] not in shown]
    assert [] == [digest for digest in hidden if digest in text]
    assert "+3 more blobs in flight" in text


def test_the_live_display_shows_state_counters_and_a_percentage() -> None:
    """The overall line has a percentage; the counters name each way blobs land."""
    display = RichProgress(Console(file=io.StringIO()), "relocate")
    display.emit(ev.ImageStarted("src/app@" + A, "dst/app@" + A))
    display.emit(_planned(images=1, bytes_to_move=10 * MB))
    display.emit(ev.BlobDone(B, 5 * MB, "present"))
    display.emit(ev.BlobDone(C, 4 * MB, "mounted"))
    display.emit(ev.BlobStarted(A, 6 * MB, "dst/repo"))
    display.emit(ev.BlobProgress(A, 1 * MB, 6 * MB))

    text = _render(display)

    assert " 50% 5/10 MB " in text
    assert "0/1 images · 1 skipped (present) · 1 mounted · 0 copied · 0 retried" in text
    assert "copying  src/app@sha256:aaaaaaaaaaaa" in text


def test_the_image_window_stays_bounded_for_hundreds_of_images() -> None:
    """500 images draw at most the window's lines plus one line counting the rest."""
    display = RichProgress(Console(file=io.StringIO()), "relocate", max_images=6)
    for n in range(500):
        display.emit(ev.ImageStarted(f"src/{n}", f"dst/{n}"))
    display.emit(_planned(images=500))
    for n in range(200):
        display.emit(ev.ImageDone(f"src/{n}", f"dst/{n}", "copied"))

    text = _render(display)

    image_lines = [line for line in text.splitlines() if " src/" in line]
    assert 6 == len(image_lines)
    assert "+ 297 more in progress, 197 more finished" in text


@pytest.mark.parametrize(
    ("running", "finished", "limit", "expected_shown", "expected_hidden"),
    [
        (3, 2, 8, ["r0", "r1", "r2", "f1", "f2"], (0, 0)),  # all fit: start order
        (10, 5, 8, ["f2", "f3", "f4", "f5", "r0", "r1", "r2", "r3"], (6, 1)),
        (2, 20, 8, ["f15", "f16", "f17", "f18", "f19", "f20", "r0", "r1"], (0, 14)),
        (20, 0, 8, [f"r{n}" for n in range(8)], (12, 0)),
    ],
)
def test_the_window_keeps_the_latest_finished_and_the_first_running(
    running: int, finished: int, limit: int, expected_shown: list[str],
    expected_hidden: tuple[int, int],
) -> None:
    """Too many images: the latest finished ones, then running ones in start order."""
    images = [
        ImageLine(source=f"r{n}", destination="", status="copying") for n in range(running)
    ] + [
        ImageLine(source=f"f{n}", destination="", status="done", finished=n)
        for n in range(1, finished + 1)
    ]

    shown, hidden_running, hidden_finished = window(images, limit)

    assert expected_shown == [i.source for i in shown]
    assert expected_hidden == (hidden_running, hidden_finished)


def test_the_speed_meter_follows_the_recent_rate() -> None:
    """The speed is that of the last few seconds, not of the whole run."""
    meter = SpeedMeter(window=5.0)
    speeds = [meter.sample(float(t), total)
              for t, total in [(0, 0), (1, 100), (2, 200), (10, 200), (11, 200), (16, 700)]]

    assert [0.0, 100.0, 100.0, 0.0, 0.0, 100.0] == speeds


@pytest.mark.parametrize(("seconds", "expected"),
                         [(0.2, "0:00"), (42, "0:42"), (723, "12:03"), (3723, "1:02:03")])
def test_durations_read_like_a_clock(seconds: float, expected: str) -> None:
    """Time left and time taken as `m:ss` or `h:mm:ss`."""
    assert expected == duration(seconds)


# -- choosing the display --------------------------------------------------------------------


class FakeStream(io.StringIO):
    """A text stream that says whether it is a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _args(**flags: Any) -> Display:
    return dataclasses.replace(Display(json=False), **flags)


@pytest.mark.parametrize(
    ("flags", "tty", "expected"),
    [
        ({}, True, "rich"),
        ({}, False, "plain"),
        ({"progress": "tty"}, False, "rich"),
        ({"progress": "plain"}, True, "plain"),
        ({"progress": "none"}, True, "plain"),
        ({"quiet": True}, True, "plain"),
        ({"json": True}, True, "json"),
        ({"json": True, "progress": "tty"}, False, "json"),
    ],
)
def test_the_display_follows_the_flags_and_the_terminal(
    flags: dict[str, object], tty: bool, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--json` wins; `auto` draws bars only on a terminal; quiet never draws them."""
    monkeypatch.setenv("TERM", "xterm-256color")

    assert expected == choose_display(_args(**flags), FakeStream(tty))


def test_a_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TTY that cannot move the cursor (`TERM=dumb`) is treated like a pipe."""
    monkeypatch.setenv("TERM", "dumb")

    assert "plain" == choose_display(_args(), FakeStream(True))


async def test_plain_output_has_no_escape_codes_even_when_colours_are_forced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`FORCE_COLOR` (common in CI) does not turn a log into a terminal."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    stream = FakeStream(False)
    out = Output(_args(), "relocate", stream=stream)
    out.line("hello")
    async with out.running():
        out.emit(_planned())
        out.emit(ev.ImageDone("src/a", "dst/a", "copied"))

    assert "plain" == out.display
    assert "\x1b" not in stream.getvalue()
    assert "relocate | hello" in stream.getvalue().splitlines()


# -- on a real pseudo-terminal ---------------------------------------------------------------


@pytest.fixture(scope="module")
def terminal_run() -> bytes:
    """The scripted three-image run with stderr on a pseudo-terminal (`--progress auto`)."""
    captured = capture.run_on_terminal(["--progress", "auto"])
    assert 0 == captured.code, captured.terminal.decode(errors="replace")
    yaml_out = yaml.safe_load(captured.stdout)
    assert 3 == len(yaml_out["images"])
    assert b"\x1b" not in captured.stdout
    terminal: bytes = captured.terminal
    return terminal


def test_bars_are_drawn_on_a_terminal_and_redrawn_in_place(terminal_run: bytes) -> None:
    """
    On a terminal the display draws bars (`━`) with percentages and redraws in place
    (cursor up, erase line) rather than printing a new line per update.
    """
    text = terminal_run.decode()

    assert "━" in text
    assert "%" in text
    assert "\x1b[1A" in text or "\x1b[A" in text
    assert "\x1b[2K" in text
    assert len(set(_percentages(text))) >= 2


def _percentages(text: str) -> list[str]:
    return [word for word in text.replace("\x1b", " ").split() if word.endswith("%")]


def test_the_final_screen_shows_100_percent_and_the_summary_table(terminal_run: bytes) -> None:
    """The last frame stays on screen at 100%, with every image finished, then the table."""
    screen = capture.final_screen(terminal_run)
    lines = screen.splitlines()

    overall = [line for line in lines if line.startswith("relocate ━")]
    assert 1 == len(overall), screen
    assert " 100% 116/116 MB " in overall[0]
    assert any("3/3 images · 2 skipped (present) · 1 mounted · 9 copied · 1 retried" in line
               for line in lines)
    assert any("relocate: imported 3 images in" in line for line in lines)
    for row in ("images copied", "blobs mounted", "blobs present (skipped)", "throughput"):
        assert any(line.strip().startswith(row) for line in lines), row
    registry_rows = [line.split() for line in lines if "mirror.example.org " in line]
    assert [["mirror.example.org", "37", "1", "0", "8"]] == registry_rows


def test_the_capture_in_docs_is_what_the_script_renders() -> None:
    """docs/progress-capture.txt is up to date (regenerate: python docs/capture_progress.py)."""
    expected = capture.render_capture()

    actual = (DOCS / "progress-capture.txt").read_text(encoding="utf-8")

    assert expected == actual, "regenerate: python docs/capture_progress.py"


def test_a_pipe_gets_plain_lines_without_escape_codes() -> None:
    """Not a terminal: no escape code at all, one line per finished image, a summary."""
    captured = capture.run_on_pipe(["--progress", "auto"])
    text = captured.terminal.decode()

    assert 0 == captured.code, text
    assert "\x1b" not in text
    lines = text.splitlines()
    assert all(line.startswith("relocate | ") for line in lines), text
    assert 2 == sum(line.startswith("relocate | done: ") for line in lines)
    assert 1 == sum(line.startswith("relocate | present: ") for line in lines)
    assert lines[-2].startswith("relocate | imported 3 images: 9 blobs copied")


def test_progress_tty_draws_bars_even_on_a_pipe() -> None:
    """`--progress tty` forces the live display (for terminals that hide behind a pipe)."""
    captured = capture.run_on_pipe(["--progress", "tty"])

    assert 0 == captured.code
    assert b"\x1b[2K" in captured.terminal
    assert "━".encode() in captured.terminal


@pytest.mark.parametrize("flag", ["none", "quiet"])
def test_progress_none_and_quiet_draw_nothing_on_a_terminal(flag: str) -> None:
    """`--progress none` prints log lines only; `--quiet` prints nothing at all."""
    argv = ["--quiet"] if flag == "quiet" else ["--progress", "none"]

    captured = capture.run_on_terminal(argv)

    assert 0 == captured.code
    assert b"\x1b" not in captured.terminal
    assert "━".encode() not in captured.terminal
    assert (flag == "quiet") == (b"" == captured.terminal)


# -- 60 columns ------------------------------------------------------------------------------


def test_at_60_columns_hosts_names_and_counters_stay_readable() -> None:
    """
    On a 60-column terminal the live display keeps every counter and each image's
    repository and digest, and the closing summary names every registry host in full
    with its requests, retries, lost concurrency and pulls left (no column cut to a few
    letters).
    """
    console = Console(width=60, height=40, record=True, file=io.StringIO(), color_system=None)
    display = RichProgress(console, "relocate", clock=lambda: 10.0)
    source = f"registry.internal.example.com:5000/team/application@{A}"
    display.emit(ev.ImageStarted(source, f"mirror.example.org/apps/all@{A}"))
    display.emit(_planned(images=3, bytes_to_move=116 * MB))
    display.emit(ev.BlobStarted(B, 50 * MB, "mirror.example.org/apps/all"))
    display.emit(ev.BlobProgress(B, 20 * MB, 50 * MB))
    internal = HostState("registry.internal.example.com:5000", AdaptiveLimiter(8))
    internal.requests, internal.retries = 1234, 32
    hub = HostState("registry-1.docker.io", AdaptiveLimiter(8))
    hub.observe(PullAllowance(limit=100, remaining=7, window=21600))
    report = Report(images=[ImageResult(source=Reference.parse(source),
                                        destination=Reference.parse(source), how="copied")],
                    blobs_copied=9, bytes_copied=94 * MB, seconds=4.5)

    console.print(display.render())
    display.summary("imported", report, [internal, hub])
    text = console.export_text()

    # Log lines ("relocate | ...") are left for the terminal to wrap; the display fits.
    assert [] == [line for line in text.splitlines()
                  if len(line) > 60 and not line.startswith("relocate | ")]
    assert "0/3 images · 0 present · 0 mounted · 0 copied · 0 retried" in text
    assert f"team/application@{A[:19]}" in text
    assert "registry.internal.example.com:5000\n  1234 requests, 32 retries\n" in text
    assert "registry-1.docker.io\n" in text
    assert "concurrency down to 1 of 8" in text
    assert "7 of 100 pulls left" in text
