"""kbld Config documents (overrides, versions, legacy kinds) and ImagesLock as input."""

from __future__ import annotations

import pytest

from relocator.config import (
    KBLD_COMPATIBLE_VERSION,
    KbldConfig,
    Override,
    TagSelection,
    load_inputs,
)
from relocator.config.kbld import _COMPATIBLE_KEY, version_key
from relocator.errors import ConfigError, InputError
from relocator.oci import Platform

CONFIG = "apiVersion: kbld.k14s.io/v1alpha1\nkind: Config\n"
LOCK = "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\n"
DIGEST = "sha256:" + "ab" * 32


def config(text: str) -> KbldConfig:
    return load_inputs(["-"], stdin_text=text).config


def error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_inputs(["-"], stdin_text=text)
    return str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("nginx", "exact", id="exact"),
        pytest.param("docker.io/library/nginx", "repo", id="no-normalisation"),
        pytest.param("nginx:1.14", "tagged", id="exact-tagged"),
        pytest.param("gcr.io/app:2", "by-repo", id="image-repo-tag"),
        pytest.param(f"gcr.io/app@{DIGEST}", "by-repo", id="image-repo-digest"),
        pytest.param("gcr.io/app/sub:1", None, id="image-repo-other"),
    ],
)
def test_override_matching(value: str, expected: str | None) -> None:
    """
    `image` is an exact string match with the value as written (no normalisation);
    `imageRepo` matches the repository part; the first matching override wins.
    """
    overrides = config(
        CONFIG + "overrides:\n"
        "- {image: nginx, newImage: exact}\n"
        "- {image: nginx, newImage: second}\n"
        "- {image: nginx:1.14, newImage: tagged}\n"
        "- {imageRepo: docker.io/library/nginx, newImage: repo}\n"
        "- {imageRepo: gcr.io/app, newImage: by-repo}\n"
    )

    found = overrides.override_for(value)

    assert expected == (found.new_image if found else None)


def test_overrides_from_several_documents_concatenate_in_input_order(tmp_path: object) -> None:
    """Config documents anywhere in the inputs merge in order; the earlier one wins."""
    text = (
        "image: nginx\n---\n"
        + CONFIG
        + "overrides: [{image: nginx, newImage: first}]\n---\n"
        + "apiVersion: kbld.k14s.io/v1alpha1\nkind: ImageOverrides\n"
        "overrides: [{image: nginx, newImage: second}, {image: redis, newImage: r}]\n"
    )

    inputs = load_inputs(["-"], stdin_text=text)

    assert ["first", "second", "r"] == [o.new_image for o in inputs.config.overrides]
    assert "first" == inputs.found_images()[0].override.new_image  # type: ignore[union-attr]


def test_override_fields() -> None:
    """Every override field is read: preresolved, platformSelection, tagSelection."""
    (override,) = config(
        CONFIG + "overrides:\n"
        "- image: nginx\n"
        "  newImage: nginx\n"
        "  preresolved: false\n"
        "  tagSelection:\n"
        "    semver:\n"
        "      constraints: '>=1.14 <1.15'\n"
        "      prereleases: {identifiers: [rc]}\n"
        "  platformSelection:\n"
        "    os: windows\n"
        "    architecture: amd64\n"
        "    os.version: 10.0.17763.1\n"
        "    os.features: [win32k]\n"
        "    features: [sse4]\n"
        "  origins: [{resolved: {url: nginx}}]\n"
    ).overrides

    assert (
        Override(
            image="nginx",
            new_image="nginx",
            platform=Platform(
                os="windows",
                architecture="amd64",
                os_version="10.0.17763.1",
                os_features=("win32k",),
            ),
            platform_features=("sse4",),
            tag_selection=TagSelection(
                constraints=">=1.14 <1.15", prereleases=True, prerelease_identifiers=("rc",)
            ),
        )
        == override
    )
    assert "stdin:4" == override.where


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            "- {newImage: x}\n",
            "stdin:4: override needs a non-empty image or imageRepo",
            id="no-image",
        ),
        pytest.param(
            "- {image: a, imageRepo: a, newImage: x}\n",
            "stdin:4: override needs image or imageRepo, not both",
            id="both",
        ),
        pytest.param(
            "- {image: a}\n", "stdin:4: override needs a non-empty newImage", id="no-new-image"
        ),
        pytest.param(
            "- {image: a, newImage: x, preresolved: 'yes'}\n",
            "stdin:4: expected preresolved to be true or false, got str yes",
            id="preresolved-string",
        ),
        pytest.param(
            "- {image: a, newImage: 1.5}\n",
            "stdin:4: expected newImage to be a string, got float 1.5 (quote it)",
            id="new-image-float",
        ),
        pytest.param(
            "- {image: a, newImage: x, platformSelection: {os: linux}}\n",
            "stdin:4: platformSelection needs os and architecture",
            id="platform",
        ),
        pytest.param(
            "- {image: a, newImage: x, tagSelection: {}}\n",
            "stdin:4: tagSelection needs semver",
            id="tags",
        ),
        pytest.param(
            "- just-a-string\n",
            "stdin:4: expected override to be a mapping, got str just-a-string",
            id="not-mapping",
        ),
    ],
)
def test_invalid_overrides(overrides: str, expected: str) -> None:
    """Malformed overrides are refused with their line."""
    assert expected == error(CONFIG + "overrides:\n" + overrides)


@pytest.mark.parametrize(
    "version", ["0.21.0", "0.21", "0", KBLD_COMPATIBLE_VERSION, "0.46.0-rc.1", "0.46.0+build"]
)
def test_minimum_required_version_accepted(version: str) -> None:
    """Versions up to the kbld version whose format we implement are accepted."""
    assert (
        version
        == config(CONFIG + f"minimumRequiredVersion: '{version}'\n").minimum_required_version
    )


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        pytest.param(
            "0.47.0",
            "stdin:3: this config needs kbld 0.47.0 or newer; relocator "
            f"reads kbld configs up to kbld {KBLD_COMPATIBLE_VERSION}",
            id="newer",
        ),
        pytest.param("1.0", "stdin:3: this config needs kbld 1.0 or newer", id="major"),
        pytest.param("0.47.0-rc.1", "stdin:3: this config needs kbld", id="newer-prerelease"),
        pytest.param(
            "v0.21.0",
            "stdin:3: minimumRequiredVersion 'v0.21.0' must not have prefix 'v' (e.g. '0.8.0')",
            id="v-prefix",
        ),
        pytest.param(
            "latest", "stdin:3: minimumRequiredVersion 'latest' is not a version", id="garbage"
        ),
        pytest.param(
            "0.21",
            "stdin:3: expected minimumRequiredVersion to be a string, got float 0.21 (quote it)",
            id="float",
        ),
    ],
)
def test_minimum_required_version_refused(version: str, expected: str) -> None:
    """A config for a newer kbld is refused rather than half understood."""
    quoted = version if version == "0.21" else f"'{version}'"

    message = error(CONFIG + f"minimumRequiredVersion: {quoted}\n")

    assert expected == message[: len(expected)]


def test_compatible_version_key_matches_constant() -> None:
    """The precomputed key is the key of KBLD_COMPATIBLE_VERSION."""
    assert _COMPATIBLE_KEY == version_key(KBLD_COMPATIBLE_VERSION)


def test_highest_minimum_version_is_kept() -> None:
    """With several configs the highest floor is reported."""
    text = (
        CONFIG
        + "minimumRequiredVersion: 0.30.0\n---\n"
        + CONFIG
        + "minimumRequiredVersion: 0.9.0\n---\n"
        + CONFIG
        + "minimumRequiredVersion: 0.31.0\n"
    )
    assert "0.31.0" == config(text).minimum_required_version


def test_building_and_pushing_are_ignored_but_reported() -> None:
    """`sources` and `destinations` (building, pushing) are not errors; they are flagged."""
    text = (
        "apiVersion: kbld.k14s.io/v1alpha1\nkind: Sources\n"
        "sources: [{image: app, path: src}]\n---\n"
        "apiVersion: kbld.k14s.io/v1alpha1\nkind: ImageDestinations\n"
        "destinations: [{image: app, newImage: r/app}]\n---\n"
        + CONFIG
        + "sources: []\nbogus: 1\noverrides: [{image: a, newImage: b, later: 1}]\n"
    )

    result = config(text)

    assert (True, True) == (result.has_sources, result.has_destinations)
    assert (
        "stdin:3: 'sources' (building images) is not supported by relocator and is ignored",
        (
            "stdin:7: 'destinations' (pushing built images) is not supported by relocator and is "
            "ignored"
        ),
        "stdin:12: unknown field 'bogus' in kbld Config is ignored",
        "stdin:13: unknown field 'later' in override is ignored",
    ) == result.warnings


def test_legacy_image_keys_kind() -> None:
    """`kind: ImageKeys` documents contribute their keys."""
    inputs = load_inputs(
        ["-"],
        stdin_text="sidecar: envoy\n---\napiVersion: kbld.k14s.io/v1alpha1\nkind: ImageKeys\n"
        "keys: [sidecar]\n",
    )
    assert ["envoy"] == [f.value for f in inputs.found_images()]


def test_other_kinds_of_the_kbld_api_are_documents() -> None:
    """Only kbld's config kinds are config; any other document is searched and kept."""
    inputs = load_inputs(
        ["-"], stdin_text="apiVersion: kbld.k14s.io/v1alpha1\nkind: Other\nimage: x\n"
    )

    assert ["x"] == [f.value for f in inputs.found_images()]
    assert 1 == len(inputs.documents)


def test_images_lock_becomes_preresolved_overrides() -> None:
    """
    Each ImagesLock image becomes `{image: <kbld id or the image>, newImage: <image,
    fully qualified>, preresolved: true}`; the lock is not a document.
    """
    text = (
        LOCK + "images:\n"
        f"- image: index.docker.io/library/nginx@{DIGEST}\n"
        "  annotations:\n"
        "    kbld.carvel.dev/id: nginx:1.14\n"
        "    kbld.carvel.dev/origins: |\n      - resolved: {url: nginx}\n"
        f"- image: ubuntu:22.04@{DIGEST}\n"
    )

    inputs = load_inputs(["-"], stdin_text=text)

    assert () == inputs.documents
    assert (
        Override(
            image="nginx:1.14",
            new_image=f"index.docker.io/library/nginx@{DIGEST}",
            preresolved=True,
        ),
        Override(
            image=f"ubuntu:22.04@{DIGEST}",
            new_image=f"index.docker.io/library/ubuntu@{DIGEST}",
            preresolved=True,
        ),
    ) == inputs.preresolved()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "metadata: {}\n",
            "stdin:3: unknown field 'metadata' in ImagesLock",
            id="unknown-top-field",
        ),
        pytest.param(
            f"images:\n- image: a@{DIGEST}\n  tag: x\n",
            "stdin:5: unknown field 'tag' in ImagesLock image",
            id="unknown-image-field",
        ),
        pytest.param(
            "images:\n- image: nginx:1.14\n",
            "stdin:4: Expected ref to be in digest form, got 'nginx:1.14'",
            id="tag-only",
        ),
        pytest.param(
            "images:\n- annotations: {}\n",
            "stdin:4: Expected ref to be in digest form, got ''",
            id="no-image",
        ),
        pytest.param(
            "images:\n- image: 'Nginx@sha256:1'\n",
            "stdin:4: Expected ref to be in digest form, got 'Nginx@sha256:1'",
            id="invalid",
        ),
        pytest.param(
            f"images:\n- image: a@{DIGEST}\n  annotations: {{n: 1}}\n",
            "stdin:5: expected n to be a string, got int 1",
            id="annotation-int",
        ),
    ],
)
def test_images_lock_is_strict(body: str, expected: str) -> None:
    """imgpkg reads ImagesLock strictly: unknown fields and tag references are errors."""
    message = error(LOCK + body)

    assert expected == message[: len(expected)]


TAGS = ["latest", "1.24.0", "1.25.1", "v1.25.3", "1.25", "1.26.0-rc.1", "1.26.0-beta.2", "x"]


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (TagSelection(constraints=">=1.25.0 <1.26.0"), "v1.25.3"),
        (TagSelection(constraints="~1.24"), "1.24.0"),
        (TagSelection(), "v1.25.3"),
        (TagSelection(constraints="<1.27.0", prereleases=True), "1.26.0-rc.1"),
        (TagSelection(constraints="<1.27.0", prereleases=True,
                      prerelease_identifiers=("beta",)), "1.26.0-beta.2"),
        (TagSelection(constraints=">=2.0.0"), None),
    ],
)
def test_tag_selection_picks_the_highest_allowed_version(
    selection: TagSelection, expected: str | None
) -> None:
    """Only full semantic versions count; prereleases only when allowed, by identifier."""
    assert expected == selection.pick(TAGS)


def test_tag_selection_with_a_bad_range_is_an_input_error() -> None:
    """Constraints that are not a semver range fail with a clear error."""
    with pytest.raises(InputError, match="semver"):
        TagSelection(constraints=">=banana").pick(TAGS)
