"""
Sharding across machines: four `relocate --shard i/4` processes against real
registries split the blobs, upload each once, and end where one worker ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.support import ImageFactory, Pusher, Registry, verify_image_tree


def test_four_shards_copy_the_same_as_one_worker_without_copying_a_blob_twice(
    tmp_path: Path,
    registry: Registry,
    fresh_registry: Registry,
    repository_factory: Callable[[str], str],
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    Twelve images on four shared bases plus two standalone images, relocated by four
    concurrent processes that split the blobs: every image ends complete (the worker
    whose uploads land last finds everything ready and lists every image), the uploads
    counted by the destination registry equal the unique blobs, and the destination
    ends with the same images and tags as a single unsharded run.
    """
    images = [push(registry, repository_factory(f"app{i % 5}"), img)
              for i, img in enumerate(image_factory.corpus(12, bases=4))]
    images += [push(registry, repository_factory("solo"), image_factory.image())
               for _ in range(2)]
    manifest = tmp_path / "m.yml"
    manifest.write_text(yaml.safe_dump({"images": [{"image": i.reference} for i in images]}))
    flags = ["--registry-insecure", registry.host, "--registry-insecure", fresh_registry.host,
             "--progress", "none"]
    env = {k: v for k, v in os.environ.items() if k not in ("RELOCATOR_SHARD",
                                                            "JOB_COMPLETION_INDEX")}
    mark = fresh_registry.log.mark()

    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "relocator", "relocate", "-f", str(manifest),
             "-r", f"{fresh_registry.host}/sharded", "--shard", f"{i}/4",
             "--report", str(tmp_path / f"shard{i}.json"), *flags],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        )
        for i in range(4)
    ]
    errors = [worker.communicate(timeout=300)[1].decode() for worker in workers]
    sharded_uploads = [
        e for e in fresh_registry.log.requests(since=mark)
        if e.method == "PUT" and "/blobs/uploads/" in e.path
    ]
    single = subprocess.run(
        [sys.executable, "-m", "relocator", "relocate", "-f", str(manifest),
         "-r", f"{fresh_registry.host}/single", *flags],
        capture_output=True, env=env, check=False, timeout=300,
    )

    assert [0, 0, 0, 0] == [w.returncode for w in workers], errors
    assert 0 == single.returncode, single.stderr.decode()
    reports = [json.loads((tmp_path / f"shard{i}.json").read_text()) for i in range(4)]
    listed = [sorted(image["source"] for image in report["images"]) for report in reports]
    everything = sorted(i.reference for i in images)
    assert everything in listed
    assert 0 in [report["totals"]["manifests_waiting"] for report in reports]
    unique = {b.digest for i in images for b in i.all_blobs()}
    assert len(unique) == len(sharded_uploads)
    for image in images:
        verify_image_tree(fresh_registry, "sharded", image.digest, hash_blobs=True)
    with fresh_registry.client() as client:
        assert client.tags("single") == client.tags("sharded")
