"""
`relocator mirror -c FILE --check` against real registries: what is missing or stale
is listed, the exit code says whether the mirror is in sync, and nothing is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relocator.engine import image_tag
from tests.integration.cli import insecure, relocator
from tests.integration.test_mirror import WRITES, config_file, seed
from tests.support import ImageFactory, Pusher, Registry

OUT_OF_SYNC = 10


def test_check_lists_missing_then_in_sync_then_stale_and_writes_nothing(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Before the first mirror both selected images are missing (exit 10); after it the
    check is in sync (exit 0); once a destination tag is moved to another image, that
    tag is stale (exit 10). No check sends a PUT, POST, PATCH or DELETE anywhere.
    """
    digests = seed(push, registry, repository, image_factory)
    config = config_file(
        tmp_path,
        "sources:\n"
        f"- repository: {registry.host}/{repository}\n"
        "  tags: [{regex: '1\\.24\\..*'}]\n"
        f"  destination: {fresh_registry.host}/web\n",
    )
    flags = ["mirror", "-c", str(config), *insecure(registry, fresh_registry)]
    marks = fresh_registry.log.mark(), registry.log.mark()

    before = relocator(capsys, *flags, "--check")
    writes_before = [
        e for e in [*fresh_registry.log.requests(since=marks[0]),
                    *registry.log.requests(since=marks[1])]
        if e.method in WRITES
    ]
    mirrored = relocator(capsys, *flags)
    mark = fresh_registry.log.mark()
    synced = relocator(capsys, *flags, "--check")
    writes_synced = [e for e in fresh_registry.log.requests(since=mark) if e.method in WRITES]
    other = push(fresh_registry, "web", image_factory.image(), tag="1.24.0")
    mark = fresh_registry.log.mark()
    stale = relocator(capsys, *flags, "--check")
    writes_stale = [e for e in fresh_registry.log.requests(since=mark) if e.method in WRITES]

    assert (OUT_OF_SYNC, 0, 0, OUT_OF_SYNC) == (
        before.code, mirrored.code, synced.code, stale.code
    ), before.err + mirrored.err + synced.err + stale.err
    assert [] == writes_before
    missing = sorted(line for line in before.err.splitlines() if "| missing: " in line)
    assert [
        f"mirror | missing: {registry.host}/{repository}@{digests[t]} -> "
        f"{fresh_registry.host}/web@{digests[t]}"
        for t in sorted(("1.24.0", "1.24.1"), key=lambda t: str(digests[t]))
    ] == missing
    [error] = before.error_lines
    assert "mirror out of date: 2 images missing (of 2 images, 4 tags)" in error
    assert "mirror | in sync: 2 images and 4 tags at their destinations" in synced.err
    assert ([], []) == (writes_synced, writes_stale)
    assert [
        (f"mirror | stale: {fresh_registry.host}/web:1.24.0 is {other.digest}, the source "
         f"has {digests['1.24.0']}")
    ] == [line for line in stale.err.splitlines() if "| stale: " in line]


def test_check_with_json_ends_with_a_mirror_check_object(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    With `--json` the result is a `MirrorCheck` object (and the error object with exit
    code 10): the missing image with its destination and tags, nothing stale. In GitHub
    Actions the step summary says the same.
    """
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    digests = seed(push, registry, repository, image_factory)
    config = config_file(
        tmp_path,
        "sources:\n"
        f"- repository: {registry.host}/{repository}\n"
        "  tags: [v1.27.0]\n"
        f"  destination: {fresh_registry.host}/web\n",
    )

    result = relocator(
        capsys, "mirror", "-c", str(config), "--check", "--json",
        *insecure(registry, fresh_registry),
    )

    assert OUT_OF_SYNC == result.code
    documents = [json.loads(line) for line in result.err.splitlines()]
    [check] = [d for d in documents if d["type"] == "MirrorCheck"]
    digest = digests["v1.27.0"]
    assert {
        "type": "MirrorCheck", "in_sync": False, "images": 1, "tags": 2,
        "missing": [{
            "source": f"{registry.host}/{repository}@{digest}",
            "destination": f"{fresh_registry.host}/web@{digest}",
            "tags": [image_tag(digest), "v1.27.0"],
        }],
        "stale": [], "untagged": [], "failures": [],
    } == check
    assert OUT_OF_SYNC == documents[-1]["exit_code"]
    text = summary.read_text()
    assert text.startswith("### relocator mirror --check: out of sync\n")
    assert f"- `{fresh_registry.host}/web@{digest}`" in text
