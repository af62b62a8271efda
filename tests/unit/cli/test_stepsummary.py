"""The GitHub Actions step summary: appended, never truncated, never through a symlink."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from relocator.cli.options import Display
from relocator.cli.output import Output
from relocator.cli.stepsummary import append_step_summary, markdown
from relocator.engine import ImageFailure, ImageResult, Report
from relocator.engine.events import Swept
from relocator.errors import InputError
from relocator.oci import Reference
from relocator.transport.hosts import AdaptiveLimiter, HostState
from relocator.transport.ratelimit import PullAllowance

A = "sha256:" + "a" * 64
SRC = f"src.example.com/team/app@{A}"
DST = f"dst.example.com/mirror/app@{A}"


def _report() -> Report:
    return Report(
        images=[ImageResult(source=Reference.parse(SRC), destination=Reference.parse(DST),
                            how="copied")],
        failures=[ImageFailure(source=Reference.parse(f"src.example.com/gone@{A}"),
                               error="src.example.com answered | HTTP 404")],
        manifests_pushed=1, blobs_copied=3, bytes_copied=12_000_000, seconds=2.5,
    )


def _hosts() -> list[HostState]:
    host = HostState("registry-1.docker.io", AdaptiveLimiter(8))
    host.requests, host.retries = 40, 3
    host.observe(PullAllowance(limit=100, remaining=9, window=21600))
    return [host]


def test_the_summary_names_images_bytes_duration_registries_and_failures() -> None:
    """Counts and sizes, the duration, one row per registry, each failure on one line."""
    text = markdown("relocate", "partial", _report(), _hosts())

    assert text.startswith("### relocator relocate: partial\n")
    assert "| images copied | 1 | |" in text
    assert "| blobs copied | 3 | 12 MB |" in text
    assert "| duration | 2.5 s | |" in text
    assert "| registry-1.docker.io | 40 | 3 | 0 | 1 of 8 | 9 of 100 |" in text
    assert f"- src.example.com/gone@{A}: src.example.com answered \\| HTTP 404" in text


def test_appending_keeps_what_earlier_steps_wrote(tmp_path: Path) -> None:
    """Two appends after an earlier step's text: all three remain, in order."""
    path = tmp_path / "summary.md"
    path.write_text("earlier step\n")

    append_step_summary(str(path), "first\n")
    append_step_summary(str(path), "second\n")

    assert "earlier step\nfirst\nsecond\n" == path.read_text()


def test_a_symlink_in_place_of_the_summary_is_refused(tmp_path: Path) -> None:
    """The file a planted symlink points at is left alone; the error names the path."""
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    link = tmp_path / "summary.md"
    link.symlink_to(victim)

    with pytest.raises(InputError, match="it is a symlink"):
        append_step_summary(str(link), "text\n")

    assert "keep me\n" == victim.read_text()


def test_output_appends_when_the_variable_is_set_and_warns_when_it_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    With `GITHUB_STEP_SUMMARY` set the run's summary lands in that file; when it cannot
    (a symlink), the run gets a warning line, not an error.
    """
    args = Display(progress="plain")
    path = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(path))
    stream = io.StringIO()

    Output(args, "relocate", stream=stream).summary("imported", _report(), _hosts())
    written = path.read_text()
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    Output(args, "relocate", stream=stream).summary("imported", _report(), _hosts())

    assert written == markdown("relocate", "partial", _report(), _hosts())
    assert not (tmp_path / "elsewhere").exists()
    warnings = [line for line in stream.getvalue().splitlines() if "warning:" in line]
    assert [(f"relocate | warning: cannot append the step summary to {path} "
             "(GITHUB_STEP_SUMMARY): it is a symlink")] == warnings


def test_a_shard_says_how_many_manifests_wait_on_other_shards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    A shard that left manifests for others: the step summary, the plain summary line
    and a line for the sweep all give the count.
    """
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    report = _report()
    report.manifests_waiting = 7
    stream = io.StringIO()
    out = Output(Display(progress="plain"), "relocate", stream=stream)

    out.emit(Swept("1/4", 2, 7))
    out.summary("copied", report, [])

    assert "| manifests waiting on other shards | 7 | |" in markdown(
        "relocate", "ok", report, [])
    lines = stream.getvalue().splitlines()
    assert ("relocate | shard 1/4: swept the plan: 2 manifests pushed, 7 waiting on "
            "other shards") in lines
    assert any(line.endswith("; 7 manifests waiting on other shards") for line in lines)
