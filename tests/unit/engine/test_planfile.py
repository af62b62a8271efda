"""
The plan file: the source is walked once; workers rebuild the same plan from the file
without reading a manifest, and a plan file is checked like any outside value.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from relocator.engine import Job, Limits, Shard, TagConflict, image_tag
from relocator.engine.fallback_index import ReferrersIndex
from relocator.engine.plan import make_plan
from relocator.engine.planfile import fingerprint, plan_from_file, read_plan, write_plan
from relocator.engine.sweep import run_shard
from relocator.errors import InputError
from relocator.oci import Repository
from relocator.testing import MemoryStore
from tests.support import artifact, corpus, index

DESTINATION = Repository.parse("dst.test/mirror")
MADE_FROM = {"inputs": ["sha256:" + "a" * 64], "repository": str(DESTINATION)}


def _jobs(source: MemoryStore) -> list[Job]:
    """Four images on one base, an index of two of them, and a signature-like artifact."""
    images = corpus("planfile", 4, bases=1)
    top = index(images[:2])
    attached = artifact("planfile/sbom", subject=images[0])
    jobs = []
    for n, image in enumerate((*images, top)):
        ref = source.add(f"app{n}", image)
        jobs.append(Job(source=ref, destination=DESTINATION, tags=(image_tag(image.digest),)))
    ref = source.add("app0", attached)
    jobs.append(Job(source=ref, destination=DESTINATION, subject=images[0].digest))
    return jobs


def _referrers(plan: Any) -> list[ReferrersIndex]:
    """The fallback referrers index of the attached artifact's subject."""
    attached = plan.jobs[-1]
    listing = plan.manifests[(DESTINATION, attached.digest)].manifest.descriptor()
    return [ReferrersIndex(repository=DESTINATION, subject=attached.subject,
                           referrers=(listing,))]


async def _written(tmp_path: Path) -> tuple[MemoryStore, Path, Any]:
    source = MemoryStore("src.test")
    plan = await make_plan(_jobs(source), source, MemoryStore("dst.test"), skip_present=False)
    path = tmp_path / "plan.json"
    write_plan(path, plan, made_from=MADE_FROM, referrers=_referrers(plan))
    return source, path, plan


async def test_a_plan_read_back_is_the_plan_written_without_reading_the_source(
    tmp_path: Path,
) -> None:
    """Jobs, manifests (children, subjects) and blobs come back alike; no manifest GET."""
    source, path, plan = await _written(tmp_path)
    reads = len(source.operations("manifest_get"))

    again = await plan_from_file(read_plan(path, made_from=MADE_FROM),
                                 destination=MemoryStore("dst.test"))

    assert reads == len(source.operations("manifest_get"))
    assert plan.jobs == again.jobs
    assert list(plan.manifests) == list(again.manifests)
    assert [n.manifests for n in plan.manifests.values()] == [
        n.manifests for n in again.manifests.values()
    ]
    assert {d: b.desc for d, b in plan.blobs.items()} == {
        d: b.desc for d, b in again.blobs.items()
    }
    assert tuple(_referrers(plan)) == read_plan(path, made_from=MADE_FROM).referrers


async def test_shards_run_from_a_plan_file_send_no_manifest_get_to_the_source(
    tmp_path: Path,
) -> None:
    """
    Two shards working from the file complete the run, fallback referrers index
    included, reading only blobs from the source.
    """
    source, path, whole = await _written(tmp_path)
    mark = len(source.log)
    destination = MemoryStore("dst.test", referrers_api=False)

    for i in range(2):
        planfile = read_plan(path, made_from=MADE_FROM)
        plan = await plan_from_file(planfile, destination=destination)
        report = await run_shard(plan, Shard(i, 2), source=source, destination=destination,
                                 referrers=planfile.referrers)

    assert 0 == report.manifests_waiting
    assert {"blob_open"} == {op.kind for op in source.log[mark:]}
    subject = whole.jobs[-1].subject
    listed = await destination.referrers(DESTINATION, subject)
    assert [whole.jobs[-1].digest] == [desc.digest for desc in listed]


async def test_a_plan_made_from_other_inputs_is_refused_naming_the_file(tmp_path: Path) -> None:
    """Another input file or option gives another fingerprint: the worker stops."""
    _, path, _ = await _written(tmp_path)

    with pytest.raises(InputError, match=f"plan file {path} was made from other inputs"):
        read_plan(path, made_from={**MADE_FROM, "repository": "dst.test/other"})


def test_the_fingerprint_does_not_depend_on_key_order() -> None:
    """Equal inputs give equal fingerprints; any change gives another."""
    assert fingerprint({"a": 1, "b": [2]}) == fingerprint({"b": [2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def _tamper(path: Path, change: Any) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _swap_manifest_bytes(doc: dict[str, Any]) -> None:
    raw = base64.b64decode(doc["manifests"][0]["raw"]).replace(b'"schemaVersion"',
                                                               b' "schemaVersion"')
    doc["manifests"][0]["raw"] = base64.b64encode(raw).decode()


def _grow_blob(doc: dict[str, Any]) -> None:
    doc["blobs"][0]["size"] += 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_swap_manifest_bytes, "hashed to"),
        (lambda doc: doc.update(version=2), "version 2 is not 1"),
        (lambda doc: doc["jobs"][0].update(source="src.test/app0:latest"), "has no digest"),
        (lambda doc: doc["jobs"][0].update(tags=["bad tag"]), "tag"),
        (lambda doc: doc["blobs"][0].update(size=-1), r"blobs\[0\] has no valid size"),
        (lambda doc: doc["manifests"][0].update(raw="%%%"), "not base64"),
        (lambda doc: doc["blobs"][0].update(digest="sha256:xyz"), "invalid digest"),
        (lambda doc: doc["referrers"][0]["referrers"][0].pop("size"), "no valid size"),
    ],
)
async def test_a_damaged_plan_file_is_refused_in_one_line_naming_it(
    tmp_path: Path, change: Any, message: str
) -> None:
    """Every value is checked on read; a manifest's bytes must hash to its digest."""
    _, path, _ = await _written(tmp_path)
    _tamper(path, change)

    with pytest.raises(InputError, match=message) as caught:
        read_plan(path, made_from=MADE_FROM)

    assert str(caught.value).startswith(f"plan file {path}")
    assert "\n" not in str(caught.value)


async def test_blob_sizes_that_disagree_with_the_manifests_are_refused(tmp_path: Path) -> None:
    """The recorded blobs must be exactly the ones the manifests name."""
    _, path, _ = await _written(tmp_path)
    _tamper(path, _grow_blob)

    with pytest.raises(InputError, match="its blobs do not match its manifests"):
        await plan_from_file(read_plan(path, made_from=MADE_FROM),
                             destination=MemoryStore("dst.test"))


def test_a_missing_plan_file_is_named(tmp_path: Path) -> None:
    """An unreadable plan file is one line naming it."""
    with pytest.raises(InputError, match=f"plan file {tmp_path / 'none.json'}"):
        read_plan(tmp_path / "none.json", made_from=MADE_FROM)


async def test_a_plan_file_giving_two_images_one_tag_is_refused(tmp_path: Path) -> None:
    """Tags are checked as when planning from the inputs: one tag, one image."""
    _, path, _ = await _written(tmp_path)
    _tamper(path, lambda doc: doc["jobs"][1].update(tags=doc["jobs"][0]["tags"]))

    with pytest.raises(TagConflict):
        await plan_from_file(read_plan(path, made_from=MADE_FROM),
                             destination=MemoryStore("dst.test"))


async def test_a_plan_file_larger_than_the_limits_allow_is_not_read(tmp_path: Path) -> None:
    """The file is read only up to twice the plan's manifest-bytes cap, then refused."""
    _, path, _ = await _written(tmp_path)
    small = Limits(plan_manifest_bytes=path.stat().st_size // 4)

    with pytest.raises(InputError, match=f"plan file {path} is larger than"):
        read_plan(path, made_from=MADE_FROM, limits=small)
