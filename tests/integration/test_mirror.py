"""
`relocator mirror -c FILE` against real registries: tag filters, destinations,
idempotent re-runs, `--keep-going`, `--dry-run`, per-registry limits, config errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest

from relocator.config.mirror import API_VERSION
from relocator.engine import image_tag
from relocator.oci import Digest
from tests.integration.cli import Result, insecure, relocator
from tests.support import ImageFactory, Pusher, Registry, index, verify_image_tree
from tests.support import push as push_to

DOCS = Path(__file__).resolve().parents[2] / "docs"
HEAD = f"apiVersion: {API_VERSION}\nkind: Mirror\n"
# Tags of the source repository and which of nine images each points at: two tags share
# an image (1.25 and 1.25.3, latest and 1.26.1), as in real repositories.
SOURCE_TAGS = {
    "1.24.0": 0, "1.24.1": 1, "1.25.0": 2, "1.25.3": 3, "1.25": 3, "1.25.3-alpine": 4,
    "1.26.0-rc.1": 5, "1.26.0": 6, "1.26.1": 7, "latest": 7, "v1.27.0": 8,
}
# Requests that change a registry: none may reach it when nothing is to be done.
WRITES = ("PUT", "POST", "PATCH", "DELETE")


def seed(
    push: Pusher, registry: Registry, repository: str, image_factory: ImageFactory
) -> dict[str, Digest]:
    """Push the SOURCE_TAGS to `repository`; each tag's digest."""
    images = [image_factory.image(layer_sizes=(512,)) for _ in range(9)]
    return {
        tag: push(registry, repository, images[i], tag=tag).digest
        for tag, i in SOURCE_TAGS.items()
    }


def config_file(tmp_path: Path, body: str, name: str = "mirror.yml") -> Path:
    path = tmp_path / name
    path.write_text(HEAD + body)
    return path


def user_tags(registry: Registry, repository: str) -> dict[str, Digest | None]:
    """The destination's tags other than relocator's digest tags, with their digests."""
    with registry.client() as client:
        return {
            tag: client.manifest_digest(repository, tag)
            for tag in client.tags(repository)
            if not tag.endswith(".relocator")
        }


def report_of(result: Result) -> dict[str, object]:
    """The final `{"type": "Report"}` object of `--json` output."""
    lines = [json.loads(line) for line in result.err.splitlines() if line.startswith("{")]
    reports = [line for line in lines if line.get("type") == "Report"]
    assert 1 == len(reports), result.err
    report: dict[str, object] = reports[0]
    schema = json.loads((DOCS / "report.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(report)
    return report


def test_tag_filters_select_exactly_the_expected_tags(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Each rule kind, and exclusions, pick exactly these of eleven tags; every tag lands
    on the digest it has at the source, beside relocator's digest tag.
    """
    digests = seed(push, registry, repository, image_factory)
    cases = {
        "exact": "['1.25.3', latest, '9.9.9']",
        "regex": "[{regex: '1\\.26\\.[0-9]+'}]",
        "semver": "[{semver: '>=1.24.0 <1.26.0'}]",
        "prereleases": "[{semver: '~1.26.0-0', prereleases: true}]",
        "excluded": "[{semver: '^1'}]\n  exclude: [{regex: '.*\\.0'}, '1.26.1']",
        "mixed": "['1.25', {regex: 'v.*'}, {semver: '1.24.x'}]",
    }
    sources = "".join(
        f"- repository: {registry.host}/{repository}\n"
        f"  destination: {fresh_registry.host}/{case}\n"
        f"  tags: {rules}\n"
        for case, rules in cases.items()
    )
    config = config_file(tmp_path, "sources:\n" + sources)

    result = relocator(capsys, "mirror", "-c", str(config), *insecure(registry, fresh_registry))

    assert 0 == result.code, result.err
    expected = {
        "exact": ["1.25.3", "latest"],
        "regex": ["1.26.0", "1.26.1"],
        "semver": ["1.24.0", "1.24.1", "1.25.0", "1.25.3"],
        "prereleases": ["1.26.0", "1.26.0-rc.1", "1.26.1"],
        "excluded": ["1.24.1", "1.25.3"],
        "mixed": ["1.24.0", "1.24.1", "1.25", "v1.27.0"],
    }
    actual = {case: sorted(user_tags(fresh_registry, case)) for case in cases}
    assert expected == actual
    for case, tags in expected.items():
        assert {t: digests[t] for t in tags} == user_tags(fresh_registry, case)
    assert f"warning: {config}:6: tag '9.9.9' is not in {registry.host}/{repository}" in result.err


def test_destinations_follow_templates_and_per_source_overrides(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    `defaults.destination` keeps each source's path; a source's own `destination`
    wins; an image by digest lands with relocator's digest tag only, an image by tag
    with its tag too.
    """
    app, tool, pinned, tagged = (
        push(registry, repository_factory(name), image_factory.image(), tag="1.0")
        for name in ("app", "tool", "pinned", "tagged")
    )
    dest = fresh_registry.host
    config = config_file(
        tmp_path,
        f"defaults: {{destination: '{dest}/mirror/{{repository}}'}}\n"
        "sources:\n"
        f"- {{repository: {registry.host}/{app.repository}, tags: ['1.0']}}\n"
        f"- {{repository: {registry.host}/{tool.repository}, tags: ['1.0'], "
        f"destination: '{dest}/override/{{name}}'}}\n"
        f"- {{image: '{pinned.reference}', destination: '{dest}/pinned/{{name}}'}}\n"
        f"- {{image: '{tagged.tagged_reference}'}}\n",
    )

    result = relocator(capsys, "mirror", "-c", str(config), *insecure(registry, fresh_registry))

    assert 0 == result.code, result.err
    landed = {
        f"mirror/{app.repository}": (app, ["1.0", image_tag(app.digest)]),
        "override/tool": (tool, ["1.0", image_tag(tool.digest)]),
        "pinned/pinned": (pinned, [image_tag(pinned.digest)]),
        f"mirror/{tagged.repository}": (tagged, ["1.0", image_tag(tagged.digest)]),
    }
    with fresh_registry.client() as client:
        actual = {path: sorted(client.tags(path)) for path in landed}
    assert {path: sorted(tags) for path, (_, tags) in landed.items()} == actual
    for path, (image, _) in landed.items():
        verify_image_tree(fresh_registry, path, image.digest, hash_blobs=True)


def test_two_images_for_one_destination_tag_are_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Two sources whose `1.0` would both land on one destination tag stop the run while
    it plans (the engine's check, shared with `relocate` and `unpkg`), before any write.
    """
    first, second = (
        push(registry, repository_factory(name), image_factory.image(), tag="1.0")
        for name in ("a/app", "b/app")
    )
    mark = fresh_registry.log.mark()
    config = config_file(
        tmp_path,
        f"defaults: {{destination: '{fresh_registry.host}/{{name}}'}}\n"
        "sources:\n"
        f"- {{repository: {registry.host}/{first.repository}, tags: ['1.0']}}\n"
        f"- {{repository: {registry.host}/{second.repository}, tags: ['1.0']}}\n",
    )

    result = relocator(capsys, "mirror", "-c", str(config), *insecure(registry, fresh_registry))

    assert 3 == result.code
    assert (
        f"relocator: error: {fresh_registry.host}/app:1.0 would be both "
        f"{first.reference} and {second.reference} (hint: give them different destination "
        "repositories, or leave the tag out for one of them)"
    ) == result.error_lines[0]
    assert [] == [e for e in fresh_registry.log.requests(since=mark) if e.method in WRITES]


def test_platforms_narrow_an_index_and_the_tag_goes_to_the_first(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
) -> None:
    """
    With `platforms`, an index's chosen children are mirrored (the index itself would
    change digest) and the source tag points at the first platform listed.
    """
    children = [image_factory.image(platform=p) for p in ("linux/amd64", "linux/arm64",
                                                          "linux/s390x")]
    with registry.client() as client:
        push_to(client, repository, index(children), tag="2.0")
    config = config_file(
        tmp_path,
        "sources:\n"
        f"- repository: {registry.host}/{repository}\n"
        "  tags: ['2.0']\n"
        "  platforms: [linux/arm64, linux/amd64]\n"
        f"  destination: {fresh_registry.host}/multi\n",
    )

    result = relocator(capsys, "mirror", "-c", str(config), *insecure(registry, fresh_registry))

    assert 0 == result.code, result.err
    amd64, arm64, _ = children
    with fresh_registry.client() as client:
        expected = sorted(["2.0", image_tag(amd64.digest), image_tag(arm64.digest)])
        assert expected == sorted(client.tags("multi"))
        assert arm64.digest == client.manifest_digest("multi", "2.0")


def test_a_second_run_changes_nothing_and_a_moved_tag_follows(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Run twice, the second run writes nothing (no upload, no manifest, no tag) and reads
    no blob of the source; its JSON report says every image was present. When the
    source then moves a tag, the next run moves that tag and copies only that image.
    """
    digests = seed(push, registry, repository, image_factory)
    config = config_file(
        tmp_path,
        "sources:\n"
        f"- repository: {registry.host}/{repository}\n"
        "  tags: [{semver: '>=1.25.0'}, latest]\n"
        f"  destination: {fresh_registry.host}/web\n",
    )
    flags = ["mirror", "-c", str(config), *insecure(registry, fresh_registry)]
    first = relocator(capsys, *flags)
    assert 0 == first.code, first.err
    source_mark, mark = registry.log.mark(), fresh_registry.log.mark()

    second = relocator(capsys, *flags, "--json")

    assert 0 == second.code, second.err
    writes = [e for e in fresh_registry.log.requests(since=mark) if e.method in WRITES]
    blob_reads = [
        e for e in registry.log.requests(since=source_mark)
        if e.method == "GET" and e.route == "blob"
    ]
    assert ([], []) == (writes, blob_reads)
    report = report_of(second)
    assert ("mirror", "succeeded") == (report["command"], report["status"])
    totals = report["totals"]
    assert isinstance(totals, dict)
    assert (5, 0, 5) == (totals["images"], totals["images_copied"], totals["images_present"])

    moved = push(registry, repository, image_factory.image(layer_sizes=(512,)), tag="latest")
    mark = fresh_registry.log.mark()
    third = relocator(capsys, *flags)

    assert 0 == third.code, third.err
    expected = {t: digests[t] for t in ("1.25.0", "1.25.3", "1.26.0", "1.26.1", "v1.27.0")}
    assert {**expected, "latest": moved.digest} == user_tags(fresh_registry, "web")
    tags_pushed = [
        e.path for e in fresh_registry.log.requests(since=mark)
        if e.method == "PUT" and e.route == "manifest"
    ]
    assert sorted(
        [f"/v2/web/manifests/{image_tag(moved.digest)}", "/v2/web/manifests/latest"]
    ) == sorted(tags_pushed)


@pytest.mark.parametrize(
    ("keep_going", "code"),
    [pytest.param(True, 9, id="keep-going"), pytest.param(False, 8, id="stop")],
)
def test_a_missing_source_repository(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
    keep_going: bool,
    code: int,
) -> None:
    """
    With `--keep-going` a source repository that does not exist is reported (stderr,
    report file, exit code 9) and the other sources are mirrored; without it the run
    stops before anything is written (exit code 8).
    """
    present = push(registry, repository_factory("present"), image_factory.image(), tag="1")
    missing = f"{registry.host}/{repository_factory('missing')}"
    config = config_file(
        tmp_path,
        f"defaults: {{destination: '{fresh_registry.host}/{{repository}}'}}\n"
        "sources:\n"
        f"- {{repository: {missing}, tags: ['1']}}\n"
        f"- {{repository: {registry.host}/{present.repository}, tags: ['1']}}\n",
    )
    report_path = tmp_path / "report.json"
    mark = fresh_registry.log.mark()

    result = relocator(
        capsys, "mirror", "-c", str(config), "--report", str(report_path),
        *(["--keep-going"] if keep_going else []), *insecure(registry, fresh_registry),
    )

    assert code == result.code, result.err
    landed = fresh_registry.log.requests(since=mark)
    if not keep_going:
        assert [] == [e for e in landed if e.method in WRITES]
        assert f"listing tags of {missing}" in result.error_lines[0]
        return
    assert {"1": present.digest} == user_tags(fresh_registry, present.repository)
    assert f"mirror | failed: {config}:5: {missing}: listing tags of {missing}" in result.err
    report = json.loads(report_path.read_text())
    assert ("partial", [missing]) == (
        report["status"], [f["source"] for f in report["failures"]]
    )
    assert [f"{present.host}/{present.repository}@{present.digest}"] == [
        i["source"] for i in report["images"]
    ]
    assert "relocator: error: 1 of 2 images failed; the others were finished" in result.err


def test_dry_run_lists_the_plan_and_writes_nothing(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """`--dry-run` prints one plan line per image and sends no PUT, POST or PATCH."""
    digests = seed(push, registry, repository, image_factory)
    config = config_file(
        tmp_path,
        "sources:\n"
        f"- repository: {registry.host}/{repository}\n"
        "  tags: [{regex: '1\\.24\\..*'}]\n"
        f"  destination: {fresh_registry.host}/web\n",
    )
    mark, source_mark = fresh_registry.log.mark(), registry.log.mark()

    result = relocator(
        capsys, "mirror", "-c", str(config), "--dry-run", *insecure(registry, fresh_registry)
    )

    assert 0 == result.code, result.err
    expected = [
        f"copy    {registry.host}/{repository}@{digests[t]} -> "
        f"{fresh_registry.host}/web@{digests[t]}"
        for t in ("1.24.0", "1.24.1")
    ]
    assert "" == result.out
    lines = [line.removeprefix("mirror | ") for line in result.err.splitlines()]
    assert expected == sorted(line for line in lines if line.startswith("copy"))
    assert [line for line in lines if line.startswith("plan: 2 images (0 already at the destination)")]
    requests = [*fresh_registry.log.requests(since=mark), *registry.log.requests(since=source_mark)]
    assert [] == [e for e in requests if e.method in WRITES]
    assert f"mirror | will mirror {registry.host}/{repository}:1.24.0 -> " in result.err


def test_per_registry_limits_and_insecure_hosts_from_the_config(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    `registries` sets a host's concurrency and requests per second and reaches it over
    plain http without any flag; the run completes under the rate limit, and the report
    shows the host's concurrency.
    """
    digests = seed(push, registry, repository, image_factory)
    config = config_file(
        tmp_path,
        "registries:\n"
        f"- {{host: '{registry.host}', insecure: true, requestsPerSecond: 200}}\n"
        f"- {{host: '{fresh_registry.host}', insecure: true, concurrency: 2, "
        "requestsPerSecond: 100}\n"
        "sources:\n"
        f"- repository: {registry.host}/{repository}\n"
        "  tags: [{semver: '1.24.x || 1.25.x'}]\n"
        f"  destination: {fresh_registry.host}/limited\n",
    )

    result = relocator(capsys, "mirror", "-c", str(config), "--json")

    assert 0 == result.code, result.err
    assert {t: digests[t] for t in ("1.24.0", "1.24.1", "1.25.0", "1.25.3")} == user_tags(
        fresh_registry, "limited"
    )
    registries = report_of(result)["registries"]
    assert isinstance(registries, list)
    assert [2] == [r["concurrency"] for r in registries if r["host"] == fresh_registry.host]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "sources:\n- repository: reg.example/app\n  tagz: ['1']\n",
            "{path}:5: unknown field 'tagz' in source",
            id="unknown-key",
        ),
        pytest.param(
            "sources:\n- repository: reg.example/app\n  destination: reg.internal/app\n"
            "  tags:\n  - semver: '>=1.2 <<2'\n",
            "{path}:7: bad semver range '>=1.2 <<2': expected a version at '<<2'",
            id="bad-semver",
        ),
        pytest.param(
            "sources:\n- repository: reg.example/app\n  destination: reg.internal/app\n"
            "  tags:\n  - regex: '[0-9'\n",
            "{path}:7: bad regex '[0-9': unterminated character set at position 0",
            id="bad-regex",
        ),
        pytest.param(
            "defaults: {destination: 'reg.internal/{name}'}\n",
            "{path}:1: Mirror needs sources: a list of repositories (with tags) or images",
            id="missing-sources",
        ),
    ],
)
def test_config_errors_are_one_line_with_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, body: str, expected: str
) -> None:
    """A config mistake is one line naming FILE:LINE, exit code 3, nothing contacted."""
    path = config_file(tmp_path, body)

    result = relocator(capsys, "mirror", "-c", str(path))

    assert (3, [f"relocator: error: {expected.format(path=path)}"]) == (
        result.code, result.error_lines
    )


def test_shards_split_the_images_and_together_mirror_all(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    `--shard 0/2` and `--shard 1/2` each mirror a share of the selected images; both
    together land every tag, and no blob is uploaded twice.
    """
    digests = seed(push, registry, repository, image_factory)
    config = config_file(
        tmp_path,
        "sources:\n"
        f"- repository: {registry.host}/{repository}\n"
        "  tags: [{regex: '.*'}]\n"
        f"  destination: {fresh_registry.host}/sharded\n",
    )
    mark = fresh_registry.log.mark()

    results = [
        relocator(capsys, "mirror", "-c", str(config), "--shard", shard,
                  *insecure(registry, fresh_registry))
        for shard in ("0/2", "1/2")
    ]

    assert [0, 0] == [r.code for r in results], "".join(r.err for r in results)
    assert digests == user_tags(fresh_registry, "sharded")
    uploaded = [
        parse_qs(urlsplit(e.path).query)["digest"][0]
        for e in fresh_registry.log.requests(since=mark)
        if e.method == "PUT" and e.route == "upload"
    ]
    # Nine images of a config and one layer each: eighteen blobs, each uploaded once.
    assert (18, 18) == (len(uploaded), len(set(uploaded)))
    assert [True, True] == ["mirror | shard " in r.err for r in results]
