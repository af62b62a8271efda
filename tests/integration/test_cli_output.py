"""
What `relocator relocate` prints on stderr against real registries: `--json` lines and
a report that validates against docs/report.schema.json (with every destination digest
equal to its source digest), plain lines in a log, and the live display on a terminal.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from relocator.oci import Digest
from tests.integration.cli import Result, insecure, relocator
from tests.support import ImageFactory, PushedImage, Pusher, Registry

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def validate() -> Callable[[Any], None]:
    """Validates a document against docs/report.schema.json."""
    schema = json.loads((DOCS / "report.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema).validate


def _load_capture() -> ModuleType:
    spec = importlib.util.spec_from_file_location("capture_progress", DOCS / "capture_progress.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _manifest(path: Path, references: list[str]) -> Path:
    path.write_text(yaml.safe_dump({"images": [{"image": r} for r in references]}))
    return path


def _json_lines(result: Result) -> list[dict[str, Any]]:
    """Every stderr line, each of which must be a JSON object with a type."""
    documents = [json.loads(line) for line in result.err.splitlines()]
    assert all(isinstance(d, dict) and isinstance(d.get("type"), str) for d in documents)
    return documents


def _report(documents: list[dict[str, Any]]) -> dict[str, Any]:
    [report] = [d for d in documents if d["type"] == "Report"]
    return report


@pytest.fixture
def images(
    registry: Registry, repository: str, image_factory: ImageFactory, push: Pusher
) -> list[PushedImage]:
    """Three images sharing base layers, and a multi-platform index."""
    pushed = [push(registry, repository, image) for image in image_factory.corpus(3)]
    pushed.append(push(registry, repository, image_factory.index()))
    return pushed


def test_json_report_names_every_image_with_unchanged_digests(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    images: list[PushedImage],
    validate: Callable[[Any], None],
) -> None:
    """
    `--json --report FILE`: stderr is JSON lines only, ending with a report that
    validates, names each image's source and destination with the same digest (the one
    pushed), counts each unique blob once and both registries' requests; the file holds
    the same report and stdout the relocated YAML.
    """
    manifest = _manifest(tmp_path / "m.yml", [i.reference for i in images])
    path = tmp_path / "report.json"
    destination = f"{registry2.host}/{repository}"

    result = relocator(
        capsys, "relocate", "-f", str(manifest), "-r", destination, "--json",
        "--report", str(path), *insecure(registry, registry2),
    )

    assert 0 == result.code, result.err
    documents = _json_lines(result)
    report = _report(documents)
    assert report == documents[-1]
    validate(report)
    assert "succeeded" == report["status"]
    expected = {
        (i.reference, str(i.digest), f"{destination}@{i.digest}", str(i.digest), "copied")
        for i in images
    }
    actual = {
        (i["source"], i["source_digest"], i["destination"], i["destination_digest"], i["how"])
        for i in report["images"]
    }
    assert expected == actual
    unique_blobs = {b.digest for image in images for b in image.all_blobs()}
    totals = report["totals"]
    assert (len(images), len(unique_blobs)) == (totals["images_copied"], totals["blobs_copied"])
    assert sum(b.size for b in {b.digest: b for i in images for b in i.all_blobs()}.values()) \
        == totals["bytes_copied"]
    hosts = {r["host"]: r for r in report["registries"]}
    assert {registry.host, registry2.host} == set(hosts)
    assert all(r["requests"] > 0 for r in hosts.values())
    assert report == json.loads(path.read_text(encoding="utf-8"))
    types = [d["type"] for d in documents]
    assert {"Log", "ImageStarted", "Planned", "BlobStarted", "BlobDone", "ManifestPushed",
            "ImageDone"} <= set(types)
    assert len(images) == types.count("ImageDone")
    relocated = yaml.safe_load(result.out)
    assert [f"{destination}@{i.digest}" for i in images] == [
        entry["image"] for entry in relocated["images"]
    ]


def test_a_second_run_reports_everything_present(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    images: list[PushedImage],
    validate: Callable[[Any], None],
) -> None:
    """Run again, the report says every image was present and no byte was copied."""
    manifest = _manifest(tmp_path / "m.yml", [i.reference for i in images])
    flags = ["-f", str(manifest), "-r", f"{registry2.host}/{repository}", "--json",
             *insecure(registry, registry2)]
    first = relocator(capsys, "relocate", *flags)

    second = relocator(capsys, "relocate", *flags)

    assert (0, 0) == (first.code, second.code), second.err
    report = _report(_json_lines(second))
    validate(report)
    assert {"present"} == {i["how"] for i in report["images"]}
    totals = report["totals"]
    assert (len(images), 0, 0, 0) == (
        totals["images_present"], totals["images_copied"], totals["blobs_copied"],
        totals["bytes_copied"],
    )


def test_a_rerun_in_a_log_says_nothing_to_do(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    images: list[PushedImage],
) -> None:
    """
    Run again with plain lines, the log says there is nothing to do, once, instead of a
    summary of zeros.
    """
    manifest = _manifest(tmp_path / "m.yml", [i.reference for i in images])
    flags = ["-f", str(manifest), "-r", f"{registry2.host}/{repository}",
             *insecure(registry, registry2)]
    first = relocator(capsys, "relocate", *flags)

    second = relocator(capsys, "relocate", *flags)

    assert (0, 0) == (first.code, second.code), second.err
    lines = second.err.splitlines()
    assert [f"relocate | nothing to do: {len(images)} images already present"] == [
        line for line in lines if "nothing to do" in line
    ]
    # kbld's bare `imported N images` stays; the summary of copied blobs does not.
    assert [] == [line for line in lines if "blobs copied" in line]


def test_keep_going_reports_the_failed_image_and_status_partial(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    images: list[PushedImage],
    validate: Callable[[Any], None],
) -> None:
    """With `--keep-going`, a missing image is in `failures` with its error; exit code 9."""
    missing = f"{registry.host}/{repository}@{Digest.of(b'never pushed')}"
    manifest = _manifest(tmp_path / "m.yml", [images[0].reference, missing])
    path = tmp_path / "report.json"

    result = relocator(
        capsys, "relocate", "-f", str(manifest), "-r", f"{registry2.host}/{repository}",
        "--keep-going", "--progress", "plain", "--report", str(path),
        *insecure(registry, registry2),
    )

    assert 9 == result.code
    report = json.loads(path.read_text(encoding="utf-8"))
    validate(report)
    assert "partial" == report["status"]
    assert [images[0].reference] == [i["source"] for i in report["images"]]
    [failure] = report["failures"]
    assert missing == failure["source"]
    assert failure["error"]
    assert "\x1b" not in result.err


def test_a_log_gets_plain_lines_without_escape_codes(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    images: list[PushedImage],
) -> None:
    """Not a terminal (a CI log): no escape codes, one `done:` line per image, a summary."""
    manifest = _manifest(tmp_path / "m.yml", [i.reference for i in images])

    result = relocator(
        capsys, "relocate", "-f", str(manifest), "-r", f"{registry2.host}/{repository}",
        *insecure(registry, registry2),
    )

    assert 0 == result.code, result.err
    assert "\x1b" not in result.err
    lines = result.err.splitlines()
    assert len(images) == sum(line.startswith("relocate | done: ") for line in lines)
    assert any(line.startswith(f"relocate | imported {len(images)} images:") for line in lines)


def test_the_live_display_of_a_real_relocation_ends_at_100_percent(
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    images: list[PushedImage],
) -> None:
    """
    `python -m relocator relocate` with stderr on a terminal draws bars, ends at 100%
    with every image done and prints the summary table; stdout stays plain YAML.
    """
    capture = _load_capture()
    manifest = _manifest(tmp_path / "m.yml", [i.reference for i in images])
    destination = f"{registry2.host}/{repository}"

    captured = capture.run_on_terminal(
        ["relocate", "-f", str(manifest), "-r", destination, *insecure(registry, registry2)],
        program=[sys.executable, "-m", "relocator"],
    )

    screen = capture.final_screen(captured.terminal)
    assert 0 == captured.code, screen
    assert "━".encode() in captured.terminal
    assert any(line.startswith("relocate ━") and " 100% " in line
               for line in screen.splitlines()), screen
    n = len(images)
    assert f"{n}/{n} images" in screen
    assert f"relocate: imported {n} images in" in screen
    assert registry2.host in screen
    assert b"\x1b" not in captured.stdout
    assert [f"{destination}@{i.digest}" for i in images] == [
        entry["image"] for entry in yaml.safe_load(captured.stdout)["images"]
    ]


def test_in_github_actions_the_run_is_summarised_in_the_step_summary(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    registry: Registry,
    registry2: Registry,
    repository: str,
    images: list[PushedImage],
) -> None:
    """
    With `GITHUB_STEP_SUMMARY` set, a real relocation appends a markdown section after
    what earlier steps wrote: the images copied, the duration and both registries.
    """
    summary = tmp_path / "step-summary.md"
    summary.write_text("### an earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    manifest = _manifest(tmp_path / "m.yml", [i.reference for i in images])

    result = relocator(
        capsys, "relocate", "-f", str(manifest), "-r", f"{registry2.host}/{repository}",
        *insecure(registry, registry2),
    )

    assert 0 == result.code, result.err
    text = summary.read_text()
    assert text.startswith("### an earlier step\n### relocator relocate: succeeded\n")
    assert f"| images copied | {len(images)} | |" in text
    assert "| duration | " in text
    assert f"| {registry.host} | " in text
    assert f"| {registry2.host} | " in text
