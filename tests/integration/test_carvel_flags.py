"""kbld's and imgpkg's flags, used as their scripts use them (docs/migration.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.integration.cli import insecure, relocator
from tests.integration.faults_support import images_file
from tests.support import ImageFactory, Pusher, Registry, verify_image_tree

# A registry that does not exist: any attempt to reach it fails the test's exit code.
NOWHERE = "registry.invalid"


def test_registry_username_and_password_authenticate_to_the_destination(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    docker_config: object,
    registry: Registry,
    basic_auth_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
) -> None:
    """
    imgpkg's `--registry-username`/`--registry-password` log in to the destination (an
    htpasswd registry): a wrong password is exit 4 without the password shown, the right
    one lands the image.
    """
    image = push(registry, repository, image_factory.image())
    manifest = images_file(tmp_path / "m.yml", [image.reference])
    target = f"{basic_auth_registry.host}/{repository}"
    flags = [*insecure(registry, basic_auth_registry), "--registry-username", "alice"]

    wrong = relocator(capsys, "relocate", "-f", str(manifest), "-r", target, *flags,
                      "--registry-password", "wrong-password-123")
    right = relocator(capsys, "relocate", "-f", str(manifest), "-r", target, *flags,
                      "--registry-password", "alice-secret")

    assert 4 == wrong.code, wrong.err
    assert "wrong-password-123" not in wrong.err + wrong.out
    assert 0 == right.code, right.err
    assert any("--registry-password is visible in shell history" in line
               for line in right.err.splitlines())
    verify_image_tree(basic_auth_registry, repository, image.digest, hash_blobs=True)


def test_registry_anon_sends_no_credentials(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry: Registry,
    basic_auth_registry: Registry,
    repository: str,
    image_factory: ImageFactory,
    push: Pusher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--registry-anon` ignores the credentials the environment has: exit 4 (refused)."""
    image = push(registry, repository, image_factory.image())
    manifest = images_file(tmp_path / "m.yml", [image.reference])
    monkeypatch.setenv("RELOCATOR_REGISTRY_HOSTNAME", basic_auth_registry.host)
    monkeypatch.setenv("RELOCATOR_REGISTRY_USERNAME", "alice")
    monkeypatch.setenv("RELOCATOR_REGISTRY_PASSWORD", "alice-secret")

    result = relocator(
        capsys, "relocate", "-f", str(manifest), "-r", f"{basic_auth_registry.host}/{repository}",
        "--registry-anon", *insecure(registry, basic_auth_registry),
    )

    assert 4 == result.code, result.err


def test_unresolved_inspect_lists_the_references_and_resolves_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """
    kbld's `--unresolved-inspect` prints `- image: REF` for each reference found, sorted
    and once each, and contacts no registry (they do not exist).
    """
    doc = {
        "kind": "Pod",
        "spec": {"containers": [
            {"image": f"{NOWHERE}/b/app:2"},
            {"image": f"{NOWHERE}/a/app:1"},
            {"image": f"{NOWHERE}/b/app:2"},
        ]},
    }
    (tmp_path / "pod.yml").write_text(yaml.safe_dump(doc))

    result = relocator(capsys, "-f", str(tmp_path / "pod.yml"), "--unresolved-inspect")

    assert 0 == result.code, result.err
    assert f"- image: {NOWHERE}/a/app:1\n- image: {NOWHERE}/b/app:2\n" == result.out


def test_image_map_file_preresolves_the_images_it_names(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """
    kbld's `--image-map-file` (a CNAB relocation mapping) rewrites each image it names
    without contacting a registry; a `Config` override for the same image wins.
    """
    digest = "sha256:" + "a" * 64
    doc = {"kind": "Pod", "spec": {"containers": [
        {"image": f"{NOWHERE}/app:1"}, {"image": f"{NOWHERE}/other:1"},
    ]}}
    lock = {
        "apiVersion": "kbld.k14s.io/v1alpha1", "kind": "Config",
        "overrides": [{"image": f"{NOWHERE}/other:1", "newImage": f"{NOWHERE}/o@{digest}",
                       "preresolved": True}],
    }
    (tmp_path / "pod.yml").write_text(yaml.safe_dump_all([doc, lock]))
    mapping = tmp_path / "relocation-mapping.json"
    mapping.write_text(json.dumps({
        f"{NOWHERE}/app:1": f"mirror.invalid/app@{digest}",
        f"{NOWHERE}/other:1": f"mirror.invalid/other@{digest}",
    }))

    result = relocator(
        capsys, "-f", str(tmp_path / "pod.yml"), "--image-map-file", str(mapping),
        "--images-annotation=false",
    )

    assert 0 == result.code, result.err
    images = [c["image"] for c in yaml.safe_load(result.out)["spec"]["containers"]]
    assert [f"mirror.invalid/app@{digest}", f"{NOWHERE}/o@{digest}"] == images


@pytest.mark.parametrize(
    "flags",
    [["--tty"], ["--tty=true", "--color=false"], ["-y", "--column", "name"], ["--sort=false"]],
)
def test_kbld_ui_flags_change_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str]
) -> None:
    """kbld's UI flags and `--sort` are accepted and the output is the same without them."""
    path = images_file(tmp_path / "m.yml", [f"{NOWHERE}/app@sha256:" + "b" * 64])

    plain = relocator(capsys, "-f", str(path))
    flagged = relocator(capsys, "-f", str(path), *flags)

    assert (0, plain.out) == (flagged.code, flagged.out), flagged.err


@pytest.mark.parametrize(
    ("argv", "alternative"),
    [
        (["resolve", "--build=false"], "does not build"),
        (["resolve", "--build-concurrency", "2"], "does not build"),
        (["relocate", "-r", f"{NOWHERE}/x", "--repo-based-tags"], "--repository-template"),
        (["unpkg", "-i", "t.tar", "-r", f"{NOWHERE}/x", "--repo-based-tags"],
         "--destination-tags imgpkg"),
    ],
)
def test_flags_without_a_counterpart_are_refused_naming_the_alternative(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], alternative: str
) -> None:
    """One line naming the flag and what to use instead; exit 2 (usage), nothing run."""
    path = images_file(tmp_path / "m.yml", [f"{NOWHERE}/app@sha256:" + "b" * 64])

    with pytest.raises(SystemExit) as stopped:
        relocator(capsys, argv[0], "-f", str(path), *argv[1:])
    lines = capsys.readouterr().err.splitlines()

    assert 2 == stopped.value.code
    flag = argv[-1].split("=")[0] if argv[-1].startswith("-") else argv[-2]
    assert [True] == [alternative in line and flag in line for line in lines if "error:" in line]
