"""A command given inputs that name no image stops with one line, exit 3, and writes nothing."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from relocator.cli.main import run

# Parses, names no image (no `image` key), and points at a registry nobody listens on:
# the commands must stop before any network traffic.
NO_IMAGES = "apiVersion: v1\nkind: ConfigMap\ndata: {greeting: hello}\n"
NOWHERE = "127.0.0.1:9/mirror/app"


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(NO_IMAGES, encoding="utf-8")
    return path


def _errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line]


def test_pkg_of_inputs_without_images_writes_no_tarball(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`pkg` of a YAML with no images names the file, exits 3 and leaves no tar behind."""
    output = tmp_path / "images.tar"

    code = run(["pkg", "-f", str(manifest), "--output", str(output)])

    assert 3 == code
    lines = _errors(capsys)
    assert 1 == len(lines), lines
    assert lines[0].startswith(f"relocator: error: no images found in {manifest} (hint:")
    assert [manifest] == list(tmp_path.iterdir())


def test_relocate_of_inputs_without_images_is_an_input_error(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`relocate` of a YAML with no images exits 3 with one line, before any request."""
    code = run(["relocate", "-f", str(manifest), "--repository", NOWHERE])

    assert 3 == code
    lines = _errors(capsys)
    assert 1 == len(lines), lines
    assert lines[0].startswith(f"relocator: error: no images found in {manifest} (hint:")


def test_unpkg_of_an_empty_tarball_is_an_input_error(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`unpkg` of a tarball holding no image names the tarball and exits 3."""
    tarball = tmp_path / "empty.tar"
    with tarfile.open(tarball, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, doc in (
            ("oci-layout", {"imageLayoutVersion": "1.0.0"}),
            ("index.json", {"schemaVersion": 2, "manifests": []}),
        ):
            data = json.dumps(doc).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    code = run(["unpkg", "-f", str(manifest), "--input", str(tarball),
                "--repository", NOWHERE])

    assert 3 == code
    lines = _errors(capsys)
    assert 1 == len(lines), lines
    assert lines[0].startswith(f"relocator: error: no images found in {tarball} (hint:")
