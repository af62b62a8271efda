"""
The other readers and writers of image tarballs in a kbld or imgpkg pipeline: Docker's
loader reads relocator's default tarball, and relocator imports what
go-containerregistry (crane) and regctl write (`tests/data/carvel/`, see its README).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from relocator.oci import Reference
from tests.integration.carvel_support import loadable_image
from tests.integration.cli import insecure, relocator
from tests.support import Image, Pusher, Registry, index, verify_image_tree

FIXTURES = Path(__file__).parents[1] / "data" / "carvel"


def _inside(root: Path, name: str) -> Path:
    """`name` under `root`, as Docker's `safePath` resolves it (never outside `root`)."""
    path = (root / name).resolve()
    assert path.is_relative_to(root.resolve()), name
    return path


def docker_load(tarball: Path, into: Path) -> list[dict[str, Any]]:
    """
    Check `tarball` the way Docker's loader (moby `image/tarexport/load.go`) does, and
    return what it would load: every `manifest.json` entry must name a config that is
    a file in the archive, whose OS is linux and whose `rootfs.diff_ids` match the
    entry's `Layers` one for one, each layer decompressing to the bytes of its diff ID;
    every `RepoTags` item must be a `name:tag`.
    """
    with tarfile.open(tarball) as tar:
        tar.extractall(into, filter="data")
    entries = json.loads(_inside(into, "manifest.json").read_bytes())
    assert isinstance(entries, list)
    loaded = []
    for entry in entries:
        config_path = _inside(into, entry.get("Config", ""))
        assert config_path.is_file(), f"entry without a loadable config: {sorted(entry)}"
        config_bytes = config_path.read_bytes()
        config = json.loads(config_bytes)
        assert "linux" == config["os"]
        diff_ids = config["rootfs"]["diff_ids"]
        assert len(diff_ids) == len(entry["Layers"])
        for name, diff_id in zip(entry["Layers"], diff_ids, strict=True):
            layer = _inside(into, name).read_bytes()
            assert diff_id == f"sha256:{hashlib.sha256(gzip.decompress(layer)).hexdigest()}"
        for repo_tag in entry.get("RepoTags") or []:
            assert Reference.parse(repo_tag).tag is not None, repo_tag
        loaded.append({
            "config": f"sha256:{hashlib.sha256(config_bytes).hexdigest()}",
            "tags": entry.get("RepoTags") or [],
        })
    return loaded


def _config(image: Image) -> str:
    return str(image.blobs[0].digest)


def test_docker_load_reads_the_default_tarball(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, registry: Registry, push: Pusher
) -> None:
    """
    `docker load` of relocator's default tarball (a Docker image, an OCI image and a
    two-platform index) finds a config and every layer for each `manifest.json` entry,
    each layer's diff ID as its config lists it, and tags each image as it was tagged;
    the index loads its linux/amd64 image under the index's tag (Docker's loader fails
    on an entry without a config, so no entry may lack one).
    """
    app = loadable_image("load/app", layer_sizes=(900, 1300, 700))
    oci = loadable_image("load/oci", kind="oci")
    arm = loadable_image("load/arm", kind="oci", platform="linux/arm64/v8")
    amd = loadable_image("load/amd", kind="oci", platform="linux/amd64")
    pushed = [
        push(registry, "load/app", app, tag="1.0"),
        push(registry, "load/oci", oci, tag="3.1"),
        push(registry, "load/multi", index([arm, amd]), tag="2.0"),
    ]
    images = tmp_path / "images.yml"
    images.write_text(yaml.safe_dump(
        {"images": [{"image": f"{p.host}/{p.repository}:{p.tag}"} for p in pushed]}
    ))
    lock, out = tmp_path / "lock.yml", tmp_path / "rel.tar"
    resolved = relocator(capsys, "-f", str(images), "--lock-output", str(lock),
                         *insecure(registry))
    assert 0 == resolved.code, resolved.err

    result = relocator(capsys, "pkg", "-f", str(lock), "-o", str(out), *insecure(registry))

    assert 0 == result.code, result.err
    expected = sorted([
        {"config": _config(app), "tags": [f"{registry.host}/load/app:1.0"]},
        {"config": _config(oci), "tags": [f"{registry.host}/load/oci:3.1"]},
        {"config": _config(amd), "tags": [f"{registry.host}/load/multi:2.0"]},
    ], key=str)
    assert expected == sorted(docker_load(out, tmp_path / "loaded"), key=str)


def _fixture_digests(images: str = "ggcr-images.yml") -> list[Reference]:
    doc = yaml.safe_load((FIXTURES / images).read_text())
    return [Reference.parse(item["image"]) for item in doc["images"]]


@pytest.mark.parametrize(
    ("tarball", "images"),
    [("ggcr-0.20-pull-oci.tar", "ggcr-images.yml"), ("regctl-export.tar", "regctl-images.yml")],
    ids=["crane-pull-oci", "regctl-export"],
)
def test_unpkg_imports_the_oci_layouts_crane_and_regctl_write(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    fresh_registry: Registry,
    tarball: str,
    images: str,
) -> None:
    """
    `relocator unpkg` imports the OCI layout go-containerregistry writes for
    `crane pull --format oci` (a Docker image, an OCI image and a two-platform index;
    index.json entries without names), tarred, and the tarball `regctl image export`
    writes (the index): every image lands by its digest, every blob hashed from what
    the registry serves, and the lock names them.
    """
    work = tmp_path / "work"
    shutil.copytree(FIXTURES, work)
    repository = f"{fresh_registry.host}/imported"
    lock = tmp_path / "copied.lock.yml"

    result = relocator(capsys, "unpkg", "-f", str(work / images), "-i", str(work / tarball),
                       "-r", repository, "--lock-output", str(lock),
                       *insecure(fresh_registry))

    assert 0 == result.code, result.err
    sources = _fixture_digests(images)
    for source in sources:
        assert source.digest is not None
        verify_image_tree(fresh_registry, "imported", source.digest, hash_blobs=True)
    written = yaml.safe_load(lock.read_text())
    expected = {str(s): f"{repository}@{s.digest}" for s in sources}
    assert expected == {o["image"]: o["newImage"] for o in written["overrides"]}


def test_unpkg_refuses_crane_pulls_default_tarball_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fresh_registry: Registry
) -> None:
    """
    The tarball `crane pull` writes by default (`docker save`'s older format: configs
    and layers, no manifests, so no manifest digest to keep) is refused with one line
    naming it and the way out, exit 3, and nothing reaches the registry.
    """
    work = tmp_path / "work"
    shutil.copytree(FIXTURES, work)

    result = relocator(capsys, "unpkg", "-f", str(work / "ggcr-images.yml"),
                       "-i", str(work / "ggcr-0.20-pull.tar"),
                       "-r", f"{fresh_registry.host}/imported", *insecure(fresh_registry))

    assert 3 == result.code, result.err
    assert 1 == len(result.error_lines)
    line = result.error_lines[0]
    assert "ggcr-0.20-pull.tar" in line
    assert "'docker save' manifest without an OCI layout" in line
    assert "Traceback" not in result.err
    with fresh_registry.client() as client:
        assert () == client.catalog()


def test_the_docker_load_check_accepts_a_docker_format_writers_tarball(tmp_path: Path) -> None:
    """
    `docker_load` above is no stricter than Docker: it accepts the tarball
    go-containerregistry writes for `crane pull` (Docker's format), one entry per image
    pulled, each tagged as pulled.
    """
    loaded = docker_load(FIXTURES / "ggcr-0.20-pull.tar", tmp_path / "loaded")

    tags = sorted(t.rsplit(":", 1)[0] for entry in loaded for t in entry["tags"])
    assert sorted(f"{r.registry}/{r.repository}" for r in _fixture_digests()) == tags
