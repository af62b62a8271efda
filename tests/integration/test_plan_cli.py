"""
`relocator plan` then `relocate --plan PLAN --shard i/N`: the source is walked once, by
the planner; the workers read blobs from it and no manifest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.support import FaultProxy, ImageFactory, Pusher, Registry, verify_image_tree


def _relocator(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RELOCATOR_SHARD", "JOB_COMPLETION_INDEX")}
    return subprocess.run([sys.executable, "-m", "relocator", *args], capture_output=True,
                          env=env, check=False, timeout=300)


def test_two_shards_from_one_plan_complete_the_run_with_no_manifest_get_at_the_source(
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    proxy: FaultProxy,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Six images on two shared bases, planned once through a proxy that logs the source's
    requests; two workers run the plan one after another: each exits 0, the second
    leaves nothing waiting, every image is complete at the destination, and the
    workers sent the source blob GETs only.
    """
    images = [push(registry, repository_factory(f"app{i % 3}"), image)
              for i, image in enumerate(image_factory.corpus(6, bases=2))]
    manifest = tmp_path / "m.yml"
    manifest.write_text(yaml.safe_dump({"images": [
        {"image": f"{proxy.host}/{image.repository}@{image.digest}"} for image in images
    ]}))
    plan = tmp_path / "plan.json"
    flags = ["-f", str(manifest), "-r", f"{fresh_registry.host}/planned",
             "--registry-insecure", proxy.host, "--registry-insecure", fresh_registry.host,
             "--progress", "none"]

    planned = _relocator("plan", *flags, "-o", str(plan))
    proxy.clear_log()
    workers = [
        _relocator("relocate", *flags, "--plan", str(plan), "--shard", f"{i}/2",
                   "--report", str(tmp_path / f"shard{i}.json"))
        for i in range(2)
    ]

    assert 0 == planned.returncode, planned.stderr.decode()
    assert [0, 0] == [w.returncode for w in workers], [w.stderr.decode() for w in workers]
    assert [] == proxy.requests(path="/manifests/")
    assert proxy.requests(method="GET", path="/blobs/sha256:")
    last = json.loads((tmp_path / "shard1.json").read_text())
    assert 0 == last["totals"]["manifests_waiting"]
    assert len(images) == len(last["images"])
    for image in images:
        verify_image_tree(fresh_registry, "planned", image.digest, hash_blobs=True)
    assert f"{fresh_registry.host}/planned@{images[0].digest}" in workers[1].stdout.decode()


def test_a_plan_used_with_other_inputs_or_options_is_refused_naming_it(
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Another destination, or an input file changed since planning: exit 3, one line
    naming the plan file, nothing pushed.
    """
    image = push(registry, repository_factory("app"), image_factory.image())
    manifest = tmp_path / "m.yml"
    manifest.write_text(yaml.safe_dump({"images": [{"image": image.reference}]}))
    plan = tmp_path / "plan.json"
    common = ["-f", str(manifest), "--registry-insecure", registry.host,
              "--registry-insecure", fresh_registry.host, "--progress", "none"]
    destination = ["-r", f"{fresh_registry.host}/planned"]
    assert 0 == _relocator("plan", *common, *destination, "-o", str(plan)).returncode

    elsewhere = _relocator("relocate", *common, "-r", f"{fresh_registry.host}/other",
                           "--plan", str(plan))
    manifest.write_text(manifest.read_text() + "# edited\n")
    edited = _relocator("relocate", *common, *destination, "--plan", str(plan))

    for refused in (elsewhere, edited):
        assert 3 == refused.returncode
        lines = refused.stderr.decode().splitlines()
        assert 1 == len(lines), lines
        assert f"plan file {plan} was made from other inputs" in lines[0]
    with fresh_registry.client() as client:
        assert () == client.tags("other")
        assert () == client.tags("planned")
