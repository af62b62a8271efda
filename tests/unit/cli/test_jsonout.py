"""
`--json` and `--report`: one JSON object per event, byte progress thinned, and a final
report that docs/report.schema.json describes, also when the run stops on an error.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import jsonschema
import pytest

from relocator.cli.jsonout import (
    JsonLines,
    event_object,
    report_document,
    report_from_state,
    write_report,
)
from relocator.cli.options import Display
from relocator.cli.output import Output
from relocator.cli.plain import ProgressState
from relocator.engine import ImageFailure, ImageResult, Report
from relocator.engine import events as ev
from relocator.errors import InputError, RegistryError
from relocator.oci import Reference
from relocator.transport.hosts import AdaptiveLimiter, HostState

DOCS = Path(__file__).resolve().parents[3] / "docs"
MB = 1_000_000
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
SRC = f"src.example.com/team/app@{A}"
DST = f"dst.example.com/all@{A}"


def _load_capture() -> ModuleType:
    spec = importlib.util.spec_from_file_location("capture_progress", DOCS / "capture_progress.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def validate() -> Callable[[Any], None]:
    """Validates a document against docs/report.schema.json (itself checked first)."""
    schema = json.loads((DOCS / "report.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    return validator.validate


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _args(**flags: Any) -> Display:
    return dataclasses.replace(Display(json=True), **flags)


def test_an_event_becomes_an_object_with_its_type_and_fields() -> None:
    """The class name is `type`; every field keeps its name; `elapsed` is in seconds."""
    actual = event_object(ev.BlobDone(A, 12, "mounted"), 1.23456)

    assert {"type": "BlobDone", "digest": A, "size": 12, "how": "mounted",
            "elapsed": 1.235} == actual


def test_byte_progress_is_thinned_to_one_event_per_blob_per_second() -> None:
    """
    Starts and ends are always written; progress of one blob at most once a second
    (counted from its start), each blob on its own schedule.
    """
    clock = Clock()
    stream = io.StringIO()
    lines = JsonLines(stream, clock=clock)
    lines.emit(ev.BlobStarted(A, 10, "dst/repo"))
    for step, done in enumerate(range(1, 10)):
        clock.now = 50.0 + 0.3 * (step + 1)
        lines.emit(ev.BlobProgress(A, done, 10))
        if step == 4:
            lines.emit(ev.BlobStarted(B, 5, "dst/repo"))
            lines.emit(ev.BlobProgress(B, 1, 5))
    lines.emit(ev.BlobDone(A, 10, "copied"))

    written = [(o["type"], o.get("digest"), o.get("done")) for o in _lines(stream)]

    assert [
        ("BlobStarted", A, None),
        ("BlobProgress", A, 4),   # 1.2 s after the start
        ("BlobStarted", B, None),
        ("BlobProgress", A, 8),   # 2.4 s
        ("BlobDone", A, None),
    ] == written


def test_lines_wait_for_flush_while_buffering_and_keep_their_order() -> None:
    """While a transfer runs nothing is written until `flush`; logs and events interleave."""
    stream = io.StringIO()
    lines = JsonLines(stream)
    lines.buffering = True
    lines.line("first")
    lines.emit(ev.Notice("careful"))
    before = stream.getvalue()
    lines.flush()

    assert "" == before
    assert [("Log", "first"), ("Notice", "careful")] == [
        (o["type"], o.get("message")) for o in _lines(stream)
    ]


def test_quiet_json_writes_warnings_and_the_report_only() -> None:
    """`--json --quiet`: no events, no logs; warnings and the report still appear."""
    stream = io.StringIO()
    lines = JsonLines(stream, quiet=True)
    lines.line("hello")
    lines.emit(ev.ImageStarted(SRC, DST))
    lines.emit(ev.Notice("careful"))
    lines.report({"type": "Report"})

    assert ["Notice", "Report"] == [o["type"] for o in _lines(stream)]


def _hosts() -> list[HostState]:
    source = HostState("src.example.com", AdaptiveLimiter(8))
    destination = HostState("dst.example.com", AdaptiveLimiter(8))
    destination.limiter.throttle()
    source.requests, destination.requests, destination.retries = 3, 9, 2
    destination.throttled = 1
    return [source, destination]


async def test_a_report_lists_images_failures_totals_and_registries(
    validate: Callable[[Any], None],
) -> None:
    """
    The report names each image's source and destination with their digests, the
    failures with their error, totals of what moved and what was skipped, and each
    registry's requests and retries; with failures its status is `partial`.
    """
    report = Report(
        images=[ImageResult(source=Reference.parse(SRC), destination=Reference.parse(DST),
                            how="copied")],
        failures=[ImageFailure(source=Reference.parse(f"src.example.com/gone@{B}"),
                               error="src.example.com: HTTP 404 MANIFEST_UNKNOWN")],
        manifests_pushed=1, blobs_copied=2, blobs_mounted=1, blobs_present=3,
        bytes_copied=20, bytes_mounted=5, bytes_present=30, retries=1, seconds=2.5,
    )

    document = report_document("relocate", report, _hosts())

    validate(document)
    assert "partial" == document["status"]
    assert [{"source": SRC, "source_digest": A, "destination": DST, "destination_digest": A,
             "how": "copied"}] == document["images"]
    assert 1 == document["totals"]["images_failed"]
    assert 2 == document["totals"]["images"]
    assert {"host": "dst.example.com", "requests": 9, "retries": 2, "throttled": 1,
            "concurrency": 8, "lowest_concurrency": 4, "peak_concurrency": 8,
            "final_concurrency": 4, "concurrency_bounds": [1, 8],
            "adaptive_concurrency": False} == document["registries"][1]


def test_a_report_rebuilt_from_events_counts_what_finished(
    validate: Callable[[Any], None],
) -> None:
    """When the engine could not return its report, the events seen make one."""
    state = ProgressState()
    state.update(ev.ImageStarted(SRC, DST))
    state.update(ev.ImageStarted(f"src.example.com/gone@{B}", f"dst.example.com/all@{B}"))
    state.update(ev.Planned(images=2, images_present=0, manifests=2, blobs=2,
                            blobs_present=1, bytes_to_move=10, bytes_present=7))
    state.update(ev.BlobDone(B, 7, "present"))
    state.update(ev.BlobStarted(A, 10, "dst.example.com/all"))
    state.update(ev.BlobDone(A, 10, "copied"))
    state.update(ev.ManifestPushed(DST))
    state.update(ev.ImageDone(SRC, DST, "copied"))
    state.update(ev.ImageFailed(f"src.example.com/gone@{B}", "gone"))

    document = report_document(
        "relocate", report_from_state(state), status="failed", error="boom"
    )

    validate(document)
    assert [SRC] == [image["source"] for image in document["images"]]
    assert [{"source": f"src.example.com/gone@{B}", "error": "gone"}] == document["failures"]
    totals = document["totals"]
    assert (1, 10, 1, 7) == (totals["blobs_copied"], totals["bytes_copied"],
                             totals["blobs_present"], totals["bytes_present"])


def test_json_log_lines_are_objects() -> None:
    """`Output.line` with `--json` writes `{"type": "Log", "message": ...}`."""
    stream = io.StringIO()
    out = Output(_args(), "relocate", stream=stream)

    out.line("exporting 3 images...")

    [document] = _lines(stream)
    assert ("Log", "exporting 3 images...") == (document["type"], document["message"])


async def test_a_failed_run_still_writes_a_report_with_the_error(
    tmp_path: Path, validate: Callable[[Any], None]
) -> None:
    """
    An error inside `running()` propagates unchanged, after a report with status
    `failed`, the error and the images finished so far: on stderr and in `--report`.
    """
    stream = io.StringIO()
    path = tmp_path / "report.json"
    out = Output(_args(report=str(path)), "relocate", stream=stream)
    out.emit(ev.ImageStarted(SRC, DST))
    out.emit(ev.Planned(images=1, images_present=0, manifests=1, blobs=1, blobs_present=0,
                        bytes_to_move=10, bytes_present=0))

    async def fail_after_one_image() -> None:
        async with out.running():
            out.emit(ev.ImageDone(SRC, DST, "copied"))
            raise RegistryError("dst.example.com: HTTP 500", host="dst.example.com",
                                status=500)

    with pytest.raises(RegistryError, match="HTTP 500"):
        await fail_after_one_image()

    document = _lines(stream)[-1]
    validate(document)
    assert ("Report", "failed", "dst.example.com: HTTP 500") == (
        document["type"], document["status"], document["error"]
    )
    assert [DST] == [image["destination"] for image in document["images"]]
    assert document == json.loads(path.read_text(encoding="utf-8"))


async def test_a_cancelled_run_reports_interrupted(tmp_path: Path) -> None:
    """A cancellation (Ctrl-C, SIGTERM) is reported as `interrupted`, without noise."""
    path = tmp_path / "report.json"
    out = Output(_args(json=False, progress="none", report=str(path)), "relocate",
                 stream=io.StringIO())

    with anyio.move_on_after(0.05):
        async with out.running():
            await anyio.sleep(10)

    document = json.loads(path.read_text(encoding="utf-8"))
    assert ("interrupted", "interrupted") == (document["status"], document["error"])


async def test_a_report_that_cannot_be_written_does_not_hide_the_error(
    tmp_path: Path,
) -> None:
    """If the report file cannot be written as a run fails, the run's error still wins."""
    stream = io.StringIO()
    path = tmp_path / "missing" / "report.json"
    out = Output(_args(json=False, progress="plain", report=str(path)), "relocate",
                 stream=stream)

    async def fail() -> None:
        async with out.running():
            raise RegistryError("dst.example.com: HTTP 500", host="dst.example.com",
                                status=500)

    with pytest.raises(RegistryError):
        await fail()

    [warning] = stream.getvalue().splitlines()
    assert warning.startswith(f"relocate | warning: cannot write report {path}")


def test_summary_writes_the_report_file_with_any_display(
    tmp_path: Path, validate: Callable[[Any], None]
) -> None:
    """`--report FILE` with plain lines: the lines on stderr, the report in the file."""
    stream = io.StringIO()
    path = tmp_path / "report.json"
    out = Output(_args(json=False, progress="plain", report=str(path)), "relocate",
                 stream=stream)
    report = Report(
        images=[ImageResult(source=Reference.parse(SRC), destination=Reference.parse(DST),
                            how="copied")],
        manifests_pushed=1, seconds=1.0,
    )

    out.summary("imported", report, _hosts())

    document = json.loads(path.read_text(encoding="utf-8"))
    validate(document)
    assert "succeeded" == document["status"]
    assert 0o644 == path.stat().st_mode & 0o777
    assert stream.getvalue().startswith("relocate | imported 1 images:")
    assert [path.name] == [p.name for p in tmp_path.iterdir()]


def test_an_unwritable_report_is_bad_input(tmp_path: Path) -> None:
    """A report path in a missing directory fails in one line naming the file."""
    with pytest.raises(InputError, match=r"cannot write report .*missing"):
        write_report(tmp_path / "missing" / "report.json", {"type": "Report"})


# -- the scripted run as a child process --------------------------------------------------


def test_json_mode_writes_only_json_lines_ending_with_a_valid_report(
    validate: Callable[[Any], None],
) -> None:
    """
    `--json` on a terminal: no escape codes and no bars, only JSON objects, each with a
    `type`; byte progress at most once a second per blob; the report validates.
    """
    capture = _load_capture()

    captured = capture.run_on_terminal(["--json"])

    assert 0 == captured.code
    assert b"\x1b" not in captured.terminal
    documents = [json.loads(line) for line in captured.terminal.decode().splitlines()]
    assert all(isinstance(d.get("type"), str) for d in documents)
    types = {d["type"] for d in documents}
    assert {"Log", "ImageStarted", "Planned", "BlobStarted", "BlobProgress", "BlobDone",
            "Retrying", "ManifestPushed", "ImageDone", "Report"} == types
    last_progress: dict[str, float] = {}
    for document in documents:
        if document["type"] == "BlobProgress":
            previous = last_progress.get(document["digest"], -1.0)
            assert document["elapsed"] - previous >= 1.0
            last_progress[document["digest"]] = document["elapsed"]
    report = documents[-1]
    validate(report)
    assert (3, 9, 22 * MB) == (report["totals"]["images"], report["totals"]["blobs_copied"],
                               report["totals"]["bytes_mounted"])
    assert all(i["source_digest"] == i["destination_digest"] for i in report["images"])


def test_report_totals_agree_with_the_per_registry_figures(
    validate: Callable[[Any], None],
) -> None:
    """
    `totals.retries` is the sum of `registries[].retries`; restarts of whole blob
    transfers are counted apart, in `totals.transfers_restarted`.
    """
    hosts = _hosts()
    hosts[0].retries = 30
    report = Report(retries=1, seconds=1.0)

    document = report_document("relocate", report, hosts)

    validate(document)
    assert sum(r["retries"] for r in document["registries"]) == document["totals"]["retries"]
    assert (32, 1) == (document["totals"]["retries"], document["totals"]["transfers_restarted"])


def test_the_summary_names_only_changes_that_happened() -> None:
    """
    A registry that was retried but never rate limited is not said to have lost
    concurrency; one that was is, with its starting figure.
    """
    stream = io.StringIO()
    out = Output(_args(json=False, progress="plain"), "relocate", stream=stream)
    steady, throttled = _hosts()
    steady.retries = 32
    report = Report(
        images=[ImageResult(source=Reference.parse(SRC), destination=Reference.parse(DST),
                            how="copied")],
        manifests_pushed=1, seconds=1.0,
    )

    out.summary("imported", report, [steady, throttled])

    lines = stream.getvalue().splitlines()
    assert "relocate | registry src.example.com: 3 requests, 32 retries" == lines[1]
    assert ("relocate | registry dst.example.com: 9 requests, 2 retries, 1 rate-limited, "
            "concurrency down to 4 of 8") == lines[2]


def test_a_run_that_changed_nothing_says_nothing_to_do() -> None:
    """Every image already present, nothing pushed: one line instead of a zero summary."""
    stream = io.StringIO()
    out = Output(_args(json=False, progress="plain"), "relocate", stream=stream)
    images = [ImageResult(source=Reference.parse(SRC), destination=Reference.parse(DST),
                          how="present")] * 4

    out.summary("imported", Report(images=images, seconds=0.1), [])

    assert "relocate | nothing to do: 4 images already present\n" == stream.getvalue()
