"""Splitting a plan into shards: blobs dealt out by size, every one to exactly one shard."""

from __future__ import annotations

import json

import pytest

from relocator.engine import Job, ManifestNode, Plan, Shard
from relocator.engine.graph import BlobNode
from relocator.engine.shard import assign
from relocator.errors import InputError
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository, mediatypes

DESTINATION = Repository.parse("dst.example/mirror")


def _blob(name: str, size: int) -> Descriptor:
    return Descriptor(media_type=mediatypes.OCI_LAYER_GZIP, digest=Digest.of(name.encode()),
                      size=size)


def _plan(images: dict[str, list[Descriptor]]) -> Plan:
    """A plan of single-manifest images made of the named blobs."""
    plan = Plan(jobs=[])
    for name, layers in images.items():
        config = _blob(f"config-{name}", 10)
        raw = json.dumps({
            "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
            "config": {**config.to_json(), "mediaType": mediatypes.OCI_CONFIG},
            "layers": [layer.to_json() for layer in layers],
        }).encode()
        manifest = Manifest.parse(raw)
        source = Reference.parse(f"src.example/{name}@{manifest.digest}")
        job = Job(source=source, destination=DESTINATION)
        plan.jobs.append(job)
        node = ManifestNode(source=source, destination=job.target, manifest=manifest)
        for desc in (config, *layers):
            plan.blobs.setdefault(desc.digest, BlobNode(desc=desc, destinations=[DESTINATION]))
            node.blobs.append(desc.digest)
        plan.manifests[node.key] = node
    return plan


@pytest.fixture
def plan() -> Plan:
    """Six images: a, b, c share one base; d, e share another; f stands alone."""
    base1, base2 = _blob("base1", 1000), _blob("base2", 500)
    return _plan({
        "a": [base1, _blob("a", 10)], "b": [base1, _blob("b", 10)], "c": [base1],
        "d": [base2, _blob("d", 10)], "e": [base2], "f": [_blob("f", 100)],
    })


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_images_sharing_a_base_are_split_by_blob_not_kept_together(
    plan: Plan, count: int
) -> None:
    """Every blob goes to exactly one shard; the shared base no longer drags its images."""
    assignment = assign(plan, count)

    shares = [set(assignment.blobs_of(i)) for i in range(count)]
    assert set(plan.blobs) == set().union(*shares)
    assert sum(len(share) for share in shares) == len(plan.blobs)
    if count > 1:
        base1, base2 = _blob("base1", 1000).digest, _blob("base2", 500).digest
        assert assignment.shard_of[base1] != assignment.shard_of[base2]


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [("0/4", None, Shard(0, 4)), ("3/4", None, Shard(3, 4)), ("4", "2", Shard(2, 4))],
)
def test_shard_parse(text: str, env: str | None, expected: Shard) -> None:
    """INDEX/COUNT, or COUNT with the index from JOB_COMPLETION_INDEX."""
    assert expected == Shard.parse(text, env_index=env)


@pytest.mark.parametrize(("text", "env"), [("4/4", None), ("x/2", None), ("4", None),
                                           ("-1/2", None), ("0/0", None),
                                           ("\u0661/\u0664", None), ("1_0/20", None),
                                           (" 1/2", None), ("4", "\u0662"),
                                           ("0/" + "9" * 5000, None)])
def test_bad_shards_are_refused(text: str, env: str | None) -> None:
    """Shards outside 0 <= INDEX < COUNT, or without an index, are input errors."""
    with pytest.raises(InputError):
        Shard.parse(text, env_index=env)
