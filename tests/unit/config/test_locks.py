"""
Lock outputs in kbld's and imgpkg's exact formats, the packaging workflow of kbld's docs
end to end (golden files), and atomic 0600 writes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from relocator.config import (
    KeyMatcher,
    SearchRule,
    atomic_write_text,
    imgpkg_lock_text,
    kbld_lock_text,
    load_inputs,
    write_imgpkg_lock,
    write_kbld_lock,
)
from relocator.errors import ConfigError

GOLDEN = Path(__file__).parent / "golden"
NGINX = "sha256:86ae264c3f4acb99b2dee4d0098c40cb8c46dcf9e1148f05d3a51c4df6758c12"
HAPROXY = "sha256:e6f9faf0c2a0cf2d2d5a53307351fa896d90ca9ccd62817c24026460d97dde92"
RESOLVED = {
    "nginx": f"index.docker.io/library/nginx@{NGINX}",
    "haproxy": f"index.docker.io/library/haproxy@{HAPROXY}",
}
DEST = "docker.io/dkalinin/app1"
# The references in the hand-written locks (shapes from kbld's docs and e2e tests).
NGINX_1142 = (
    "index.docker.io/library/nginx@sha256:"
    "f7988fb6c02e0ce69257d9bd9cf37ae20a60f1df7563c3a2a6abe24160306b8d"
)
FETCHER = (
    "gcr.io/cf-build/gcs-fetcher@sha256:"
    "055519d2c0d46c8c8e8cd2d2bba8e1fbd0b21eae1e9a3e0f2a2ac6f3d5a1b9e7"
)


def golden(name: str) -> str:
    return (GOLDEN / name).read_text()


def test_resolve_writes_the_seed_lock() -> None:
    """
    `kbld -f manifest --lock-output manifest.lock`: the lock has exactly the shape of
    kbld's packaging docs: sorted overrides, sorted keys, minimumRequiredVersion 0.21.0.
    """
    inputs = load_inputs([str(GOLDEN / "manifest.yml")])
    entries = [(f.value, RESOLVED[f.value]) for f in inputs.found_images()]

    assert golden("manifest.lock") == kbld_lock_text(
        entries, search_rules=inputs.config.user_search_rules
    )


def test_resolve_renders_the_seed_output() -> None:
    """`kbld -f manifest` prints the manifest with digest references, nothing else."""
    inputs = load_inputs([str(GOLDEN / "manifest.yml")])

    assert golden("resolved-manifest.yml") == inputs.render(RESOLVED)


def test_relocate_from_the_seed_lock_then_use_the_relocated_lock() -> None:
    """
    `relocate -f manifest.lock -r docker.io/dkalinin/app1 --lock-output
    manifest.lock.copied`, then `-f manifest -f manifest.lock.copied` renders the
    relocated references (the second stage of kbld's packaging workflow).
    """
    lock = load_inputs([str(GOLDEN / "manifest.lock")])
    assert () == lock.found_images()
    moved = {o.new_image: f"{DEST}@{o.new_image.split('@')[1]}" for o in lock.preresolved()}
    entries = [(o.image or "", moved[o.new_image]) for o in lock.preresolved()]
    entries += list(moved.items())

    copied = kbld_lock_text(entries)
    assert golden("manifest.lock.copied") == copied

    second = load_inputs([str(GOLDEN / "manifest.yml"), str(GOLDEN / "manifest.lock.copied")])
    final = {f.value: f.override.new_image for f in second.found_images() if f.override}
    assert golden("relocated-manifest.yml") == second.render(final)


def test_imgpkg_lock_format() -> None:
    """`--imgpkg-lock-output`: leading `---`, keys sorted, images sorted by kbld id."""
    assert golden("images-lock.yml") == imgpkg_lock_text(RESOLVED.items())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            "kbld-lock-handwritten.yml",
            [("nginx:1.14.2", NGINX_1142)],
            id="kbld",
        ),
        pytest.param(
            "imgpkg-lock-handwritten.yml",
            [("nginx:1.14.2", NGINX_1142), (FETCHER, FETCHER)],
            id="imgpkg",
        ),
    ],
)
def test_handwritten_locks_in_kbld_and_imgpkg_formats_are_read(
    name: str, expected: list[tuple[str, str]]
) -> None:
    """Locks written by kbld (`--lock-output`, `--imgpkg-lock-output`) are inputs."""
    inputs = load_inputs([str(GOLDEN / name)])

    assert expected == [(o.image, o.new_image) for o in inputs.preresolved()]
    assert () == inputs.documents


def test_kbld_lock_carries_user_search_rules() -> None:
    """A lock keeps the user's rules (kbld writes them so the lock finds the same values)."""
    inputs = load_inputs([str(GOLDEN / "kbld-lock-handwritten.yml")])
    assert (SearchRule(key_matcher=KeyMatcher(name="sidecarImage")),) == (
        inputs.config.user_search_rules
    )

    text = kbld_lock_text(
        [("a", f"r@{NGINX}")],
        search_rules=(
            *inputs.config.user_search_rules,
            *load_inputs(
                ["-"],
                stdin_text="apiVersion: kbld.k14s.io/v1alpha1\nkind: Config\nsearchRules:\n"
                "- keyMatcher: {path: [a, {index: 0}, {allIndexes: true}]}\n"
                "  valueMatcher: {imageRepo: r}\n"
                "  updateStrategy: {yaml: {searchRules: [{keyMatcher: {name: i}}]}}\n"
                "- valueMatcher: {image: x}\n  updateStrategy: {none: {}}\n",
            ).config.user_search_rules,
        ),
    )

    assert (
        "apiVersion: kbld.k14s.io/v1alpha1\n"
        "kind: Config\n"
        "minimumRequiredVersion: 0.21.0\n"
        "overrides:\n"
        "- image: a\n"
        f"  newImage: r@{NGINX}\n"
        "  preresolved: true\n"
        "searchRules:\n"
        "- keyMatcher:\n"
        "    name: sidecarImage\n"
        "- keyMatcher:\n"
        "    path:\n"
        "    - a\n"
        "    - index: 0\n"
        "    - allIndexes: true\n"
        "  updateStrategy:\n"
        "    yaml:\n"
        "      searchRules:\n"
        "      - keyMatcher:\n"
        "          name: i\n"
        "  valueMatcher:\n"
        "    imageRepo: r\n"
        "- updateStrategy:\n"
        "    none: {}\n"
        "  valueMatcher:\n"
        "    image: x\n"
    ) == text
    # ... and reads back as the same rules.
    again = load_inputs(["-"], stdin_text=text).config.user_search_rules
    assert 3 == len(again)


def test_default_rule_alone_is_not_written() -> None:
    """Only the default `image` rule: no searchRules in the lock."""
    inputs = load_inputs(
        ["-"], stdin_text="apiVersion: kbld.k14s.io/v1alpha1\nkind: Config\nkeys: [image]\n"
    )

    assert "searchRules" not in kbld_lock_text([], search_rules=inputs.config.user_search_rules)


def test_lock_entries_are_deduplicated_and_sorted() -> None:
    """Repeated pairs appear once; entries sort by image whatever the input order."""
    text = kbld_lock_text([("b", "y"), ("a", "x"), ("b", "y")])

    assert ["- image: a", "- image: b"] == [
        line for line in text.splitlines() if line.startswith("- image:")
    ]


def test_empty_lock_has_no_overrides_key() -> None:
    """kbld omits empty lists (`omitempty`), and so do we."""
    assert (
        "apiVersion: kbld.k14s.io/v1alpha1\nkind: Config\nminimumRequiredVersion: 0.21.0\n"
        == kbld_lock_text([])
    )
    assert "---\napiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\n" == (
        imgpkg_lock_text([])
    )


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(
            lambda: kbld_lock_text([("a", "x"), ("a", "y")]),
            "lock override 'a' would map to both 'x' and 'y'",
            id="kbld-conflict",
        ),
        pytest.param(
            lambda: kbld_lock_text([("a", "")]),
            "lock override needs a non-empty image and new image: 'a' -> ''",
            id="kbld-empty",
        ),
        pytest.param(
            lambda: imgpkg_lock_text([("a", "nginx:1.14")]),
            "Expected ref to be in digest form, got 'nginx:1.14'",
            id="imgpkg-tag",
        ),
        pytest.param(
            lambda: imgpkg_lock_text([("a", f"x@{NGINX}"), ("a", f"y@{NGINX}")]),
            "ImagesLock id 'a' would map to both",
            id="imgpkg-conflict",
        ),
    ],
)
def test_inconsistent_lock_entries_are_refused(make: object, expected: str) -> None:
    """A lock never silently picks one of two answers, nor names a tag as locked."""
    with pytest.raises(ConfigError) as caught:
        make()  # type: ignore[operator]

    assert expected == str(caught.value)[: len(expected)]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_locks_are_written_0600_whatever_the_umask(tmp_path: Path) -> None:
    """Lock files are private (0600) even under a permissive umask or over a 0644 file."""
    kbld, imgpkg = tmp_path / "app.lock", tmp_path / "images.yml"
    kbld.write_text("old")
    kbld.chmod(0o644)
    old_umask = os.umask(0)
    try:
        write_kbld_lock(kbld, RESOLVED.items())
        write_imgpkg_lock(imgpkg, RESOLVED.items())
    finally:
        os.umask(old_umask)

    assert (0o600, 0o600) == (mode_of(kbld), mode_of(imgpkg))
    assert golden("manifest.lock") == kbld.read_text()
    assert golden("images-lock.yml") == imgpkg.read_text()
    assert ["app.lock", "images.yml"] == sorted(p.name for p in tmp_path.iterdir())


def test_atomic_write_mode_is_a_parameter(tmp_path: Path) -> None:
    """Other layers can write other files atomically with their own mode."""
    target = tmp_path / "out.yml"

    atomic_write_text(target, "x: 1\n", 0o644)

    assert (0o644, "x: 1\n") == (mode_of(target), target.read_text())


def test_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the rename fails, the old file is intact and the temporary file is gone."""
    target = tmp_path / "app.lock"
    target.write_text("previous\n")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        write_kbld_lock(target, RESOLVED.items())

    assert "previous\n" == target.read_text()
    assert ["app.lock"] == [p.name for p in tmp_path.iterdir()]


def test_invalid_lock_writes_nothing(tmp_path: Path) -> None:
    """An invalid lock is refused before the file is touched."""
    target = tmp_path / "images.yml"
    target.write_text("previous\n")

    with pytest.raises(ConfigError):
        write_imgpkg_lock(target, [("nginx", "nginx:latest")])

    assert "previous\n" == target.read_text()
    assert ["images.yml"] == [p.name for p in tmp_path.iterdir()]


def test_write_into_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    """A missing directory is an OSError naming it; nothing is created."""
    with pytest.raises(FileNotFoundError):
        atomic_write_text(tmp_path / "missing" / "x.lock", "x")

    assert [] == list(tmp_path.iterdir())
