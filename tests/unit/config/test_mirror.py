"""The `relocator mirror` config: documents, sources, tag rules, destinations, limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from relocator.config.mirror import API_VERSION, Destination, MirrorConfig, load_mirror_config
from relocator.config.registrylimits import RegistryLimits
from relocator.config.tagrules import ExactTag
from relocator.errors import ConfigError
from relocator.oci import Platform, Reference, Repository

DOCS = Path(__file__).resolve().parents[3] / "docs"
HEAD = f"apiVersion: {API_VERSION}\nkind: Mirror\n"
DIGEST = "sha256:" + "ab" * 32
# Tags of a repository the filters below choose from.
TAGS = (
    "1.24.0", "1.24.1", "1.25", "1.25.0", "1.25.3", "1.25.3-alpine", "1.26.0-rc.1",
    "1.26.0", "1.26.1", "v1.27.0", "latest", "mainline",
)


def parse(text: str) -> MirrorConfig:
    return MirrorConfig.parse(HEAD + text, "mirror.yml")


def error(text: str, *, head: str = HEAD) -> str:
    with pytest.raises(ConfigError) as caught:
        MirrorConfig.parse(head + text, "mirror.yml")
    return str(caught.value)


def selected(rules: str) -> list[str]:
    config = parse(
        "defaults: {destination: 'registry.internal/mirror/{repository}'}\n"
        "sources:\n"
        "- repository: docker.io/library/nginx\n" + rules
    )
    tags = config.sources[0].tags
    assert tags is not None
    return tags.select(TAGS)


def test_every_field_lands_where_it_should() -> None:
    """Every field of a full config is read into the value it describes."""
    config = parse(
        "defaults:\n"
        "  destination: registry.internal/mirror/{repository}\n"
        "  platforms: [linux/amd64, linux/arm64]\n"
        "registries:\n"
        "- host: registry.internal\n"
        "  concurrency: 4\n"
        "  requestsPerSecond: 20\n"
        "- host: docker.io\n"
        "  requestsPerSecond: 2.5\n"
        "  insecure: false\n"
        "sources:\n"
        "- repository: docker.io/library/nginx\n"
        "  tags: ['1.25.3', {regex: '^1\\.26\\.[0-9]+$'}, {semver: '>=1.24.0 <1.26.0'}]\n"
        "  exclude: [{regex: '.*-alpine'}]\n"
        "  destination: registry.internal/web/nginx\n"
        f"- image: quay.io/org/tool@{DIGEST}\n"
        "  platforms: []\n"
    )

    expected_registries = (
        RegistryLimits(host="registry.internal", concurrency=4, requests_per_second=20.0,
                       where="mirror.yml:7"),
        RegistryLimits(host="index.docker.io", requests_per_second=2.5, where="mirror.yml:10"),
    )
    assert expected_registries == config.registries
    nginx, tool = config.sources
    assert (Repository("index.docker.io", "library/nginx"), None, "mirror.yml:14") == (
        nginx.repository, nginx.image, nginx.where
    )
    assert Destination(template="registry.internal/web/nginx", where="mirror.yml:17") == (
        nginx.destination
    )
    assert (Platform.parse("linux/amd64"), Platform.parse("linux/arm64")) == nginx.platforms
    assert Reference.parse(f"quay.io/org/tool@{DIGEST}") == tool.image
    assert (None, (), "registry.internal/mirror/{repository}") == (
        tool.tags, tool.platforms, tool.destination.template
    )


def test_the_example_of_docs_mirror_md_is_valid() -> None:
    """
    The complete example of docs/mirror.md parses, and its sources land where the page
    says they do.
    """
    text = (DOCS / "mirror.md").read_text(encoding="utf-8")
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]

    config = MirrorConfig.parse(example, "mirror.md")

    landing = [str(s.destination.of(s.repository)) for s in config.sources]
    assert [
        "registry.internal/web/nginx",
        "registry.internal/mirror/prometheus/prometheus",
        "registry.internal/tools/tool",
        "registry.internal/mirror/team/builder",
    ] == landing
    assert ["registry.internal", "index.docker.io", "registry.lab:5000"] == [
        r.host for r in config.registries
    ]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        pytest.param("  tags: ['1.25.3', latest]\n", ["1.25.3", "latest"], id="exact"),
        pytest.param(
            "  tags: [{regex: '^1\\.26\\.[0-9]+$'}]\n", ["1.26.0", "1.26.1"], id="regex"
        ),
        pytest.param(
            "  tags: [{regex: '1\\.26'}]\n", [], id="regex-is-anchored"
        ),
        pytest.param(
            "  tags: [{semver: '>=1.24.0 <1.26.0'}]\n",
            ["1.24.0", "1.24.1", "1.25.0", "1.25.3"],
            id="semver-releases-only",
        ),
        pytest.param(
            "  tags: [{semver: '>=1.26.0-0', prereleases: true}]\n",
            ["1.26.0-rc.1", "1.26.0", "1.26.1", "v1.27.0"],
            id="semver-with-prereleases",
        ),
        pytest.param(
            "  tags: [{semver: '~1.25'}]\n  exclude: ['1.25.0']\n",
            ["1.25.3"],
            id="exclude-exact",
        ),
        pytest.param(
            "  tags: [{regex: '.*'}]\n  exclude: [{semver: '<1.26.0'}, {regex: '[a-z]+'}]\n",
            ["1.25", "1.25.3-alpine", "1.26.0-rc.1", "1.26.0", "1.26.1", "v1.27.0"],
            id="exclude-semver-and-regex",
        ),
        pytest.param(
            "  tags: ['1.25.3', {semver: '1.25.x'}, {regex: '1\\.25\\..*'}]\n",
            ["1.25.0", "1.25.3", "1.25.3-alpine"],
            id="overlapping-rules-select-once",
        ),
        pytest.param("  tags: ['1.23.0']\n", [], id="absent-exact"),
    ],
)
def test_tag_filters_select(rules: str, expected: list[str]) -> None:
    """A tag is mirrored when any `tags` rule selects it and no `exclude` rule does."""
    assert expected == selected(rules)


def test_exact_tags_that_are_not_there_are_reported() -> None:
    """`absent` names the exact tags the repository does not have (likely typos)."""
    config = parse(
        "sources:\n"
        "- repository: reg.example/app\n"
        "  destination: reg.internal/app\n"
        "  tags:\n"
        "  - '1.25.3'\n"
        "  - '1.25.4'\n"
        "  - {regex: nothing}\n"
    )
    tags = config.sources[0].tags
    assert tags is not None

    assert [ExactTag(tag="1.25.4", where="mirror.yml:8")] == tags.absent(TAGS)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("reg.internal/mirror/{repository}", "reg.internal/mirror/library/nginx",
                     id="repository"),
        pytest.param("reg.internal/{name}", "reg.internal/nginx", id="name"),
        pytest.param("reg.internal/{registry}/{repository}",
                     "reg.internal/index.docker.io/library/nginx", id="registry"),
        pytest.param("reg.internal/web/nginx", "reg.internal/web/nginx", id="fixed"),
    ],
)
def test_destination_templates(template: str, expected: str) -> None:
    """Templates use the fields of `--repository-template`; a fixed name is fine too."""
    config = parse(f"sources:\n- repository: nginx\n  tags: [a]\n  destination: {template}\n")
    source = config.sources[0]

    assert Repository.parse(expected) == source.destination.of(source.repository)


def test_defaults_apply_to_the_sources_of_their_own_file(tmp_path: Path) -> None:
    """
    Each file's defaults go to its own sources; files merge in order, and a source's
    own destination and platforms win over the defaults (an empty list included).
    """
    first, second = tmp_path / "a.yml", tmp_path / "b.yml"
    first.write_text(
        HEAD + "defaults: {destination: 'one.example/{name}', platforms: [linux/amd64]}\n"
        "sources:\n- {repository: reg.example/a, tags: [x]}\n"
        "- {repository: reg.example/b, tags: [x], destination: 'own.example/b', "
        "platforms: []}\n"
    )
    second.write_text(
        HEAD + "defaults: {destination: 'two.example/{name}'}\n"
        "sources:\n- {repository: reg.example/c, tags: [x]}\n"
    )

    config = load_mirror_config([str(first), str(second)])

    actual = [
        (str(s.destination.of(s.repository)), [str(p) for p in s.platforms])
        for s in config.sources
    ]
    assert [
        ("one.example/a", ["linux/amd64"]),
        ("own.example/b", []),
        ("two.example/c", []),
    ] == actual


def test_an_image_source_keeps_its_tag_and_digest() -> None:
    """`image:` takes a tag, a digest or both; no tag means latest, as everywhere."""
    config = parse(
        "defaults: {destination: 'reg.internal/{name}'}\n"
        "sources:\n"
        "- image: reg.example/tool:1.2\n"
        f"- image: reg.example/tool@{DIGEST}\n"
        f"- image: reg.example/tool:1.2@{DIGEST}\n"
        "- image: reg.example/tool\n"
    )

    expected = ["reg.example/tool:1.2", f"reg.example/tool@{DIGEST}",
                f"reg.example/tool:1.2@{DIGEST}", "reg.example/tool:latest"]
    assert expected == [s.name for s in config.sources]


def test_registry_hosts_are_named_as_references_name_them() -> None:
    """Hosts are lowercased, and docker.io is index.docker.io."""
    config = parse(
        "registries:\n- host: Registry.Internal:5000\n- host: Docker.IO\n- host: localhost\n"
        "sources:\n- {image: reg.example/a:1, destination: reg.internal/a}\n"
    )

    assert ["registry.internal:5000", "index.docker.io", "localhost"] == [
        r.host for r in config.registries
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "sources:\n- repository: nginx\n  tagz: [a]\n",
            "mirror.yml:5: unknown field 'tagz' in source",
            id="unknown-source-key",
        ),
        pytest.param(
            "source: []\n", "mirror.yml:3: unknown field 'source' in Mirror document",
            id="unknown-top-level-key",
        ),
        pytest.param(
            "defaults: {destination: 'a.example/{name}'}\n", "mirror.yml:1: Mirror needs "
            "sources: a list of repositories (with tags) or images",
            id="missing-sources",
        ),
        pytest.param(
            "sources: []\n",
            "mirror.yml:3: Mirror needs sources: a list of repositories (with tags) or images",
            id="empty-sources",
        ),
        pytest.param(
            "sources:\n- repository: nginx\n  destination: a.example/x\n  tags:\n"
            "  - semver: '>=1.2.q'\n",
            "mirror.yml:7: bad semver range '>=1.2.q': '1.2.q' is not a version "
            "(e.g. 1.2.3, 1.2, 1.x)",
            id="bad-semver",
        ),
        pytest.param(
            "sources:\n- repository: nginx\n  destination: a.example/x\n  tags:\n"
            "  - regex: '^(1'\n",
            "mirror.yml:7: bad regex '^(1': missing ), unterminated subpattern at position 1",
            id="bad-regex",
        ),
        pytest.param(
            "sources:\n- repository: nginx\n  destination: a.example/x\n  tags: [1.25]\n",
            "mirror.yml:6: expected a tag to be a string, got float 1.25 (quote it)",
            id="unquoted-number-tag",
        ),
        pytest.param(
            "sources:\n- repository: nginx\n  destination: a.example/x\n  tags: ['a/b']\n",
            "mirror.yml:6: 'a/b' is not a valid tag",
            id="bad-exact-tag",
        ),
        pytest.param(
            "sources:\n- repository: nginx\n  destination: a.example/x\n  tags:\n"
            "  - {regex: a, semver: '1'}\n",
            'mirror.yml:7: a tag rule is an exact tag, {regex: "..."} or {semver: "..."} '
            "(one of them)",
            id="two-kinds-in-one-rule",
        ),
        pytest.param(
            "sources:\n- repository: nginx\n  destination: a.example/x\n  tags:\n"
            "  - {regex: a, prereleases: true}\n",
            "mirror.yml:7: prereleases goes with semver",
            id="prereleases-with-regex",
        ),
        pytest.param(
            "sources:\n- repository: nginx\n  destination: a.example/x\n",
            'mirror.yml:4: source index.docker.io/library/nginx needs tags: exact tags, '
            '{regex: ...} or {semver: ...} (to mirror every tag, write - regex: ".*")',
            id="repository-without-tags",
        ),
        pytest.param(
            "sources:\n- image: nginx:1\n  destination: a.example/x\n  tags: [a]\n",
            "mirror.yml:6: tags is for a repository source; an image source copies one image",
            id="image-with-tags",
        ),
        pytest.param(
            "sources:\n- {repository: nginx, image: nginx:1, destination: a.example/x}\n",
            "mirror.yml:4: a source needs either repository or image (not both)",
            id="both-kinds",
        ),
        pytest.param(
            "sources:\n- repository: nginx\n  tags: [a]\n",
            "mirror.yml:4: source index.docker.io/library/nginx has no destination: set "
            "destination here or in defaults",
            id="no-destination",
        ),
        pytest.param(
            "sources:\n- repository: nginx:1.25\n  tags: [a]\n  destination: a.example/x\n",
            "mirror.yml:4: Expected repository 'nginx:1.25' to have no tag or digest",
            id="repository-with-tag",
        ),
        pytest.param(
            "defaults: {destination: 'a.example/{project}'}\nsources: [{image: a.example/b:1}]\n",
            "mirror.yml:3: destination 'a.example/{project}' may use {registry}, "
            "{repository}, {name} and nothing else",
            id="unknown-template-field",
        ),
        pytest.param(
            "defaults: {destination: 'A.example/Mirror/{name}'}\n"
            "sources: [{image: a.example/b:1}]\n",
            "mirror.yml:3: destination 'A.example/Mirror/{name}' gives "
            "'A.example/Mirror/nginx' for registry.example/library/nginx: Invalid repository "
            "reference 'A.example/Mirror/nginx': repository name must be lowercase",
            id="template-that-never-works",
        ),
        pytest.param(
            "defaults: {platforms: [linux]}\nsources: [{image: a.example/b:1, "
            "destination: a.example/c}]\n",
            "mirror.yml:3: Invalid platform 'linux' (e.g. linux/arm64/v8)",
            id="bad-platform",
        ),
        pytest.param(
            "registries:\n- {host: r.example, concurrency: 0}\n"
            "sources: [{image: a.example/b:1, destination: a.example/c}]\n",
            "mirror.yml:4: expected concurrency to be a whole number of at least 1, got int 0",
            id="zero-concurrency",
        ),
        pytest.param(
            "registries:\n- {host: r.example, requestsPerSecond: fast}\n"
            "sources: [{image: a.example/b:1, destination: a.example/c}]\n",
            "mirror.yml:4: expected requestsPerSecond to be a number above 0, got str fast",
            id="words-per-second",
        ),
        pytest.param(
            "registries:\n- {host: r.example, concurrency: 2.5}\n"
            "sources: [{image: a.example/b:1, destination: a.example/c}]\n",
            "mirror.yml:4: expected concurrency to be a whole number of at least 1, got "
            "float 2.5",
            id="fractional-concurrency",
        ),
        pytest.param(
            "registries:\n- {host: myregistry}\n"
            "sources: [{image: a.example/b:1, destination: a.example/c}]\n",
            "mirror.yml:4: 'myregistry' is not a registry host: it needs a '.' or a ':' "
            "port, or is localhost (e.g. registry.internal, 127.0.0.1:5000)",
            id="host-docker-would-read-as-a-path",
        ),
        pytest.param(
            "registries:\n- {host: r.example/team}\n"
            "sources: [{image: a.example/b:1, destination: a.example/c}]\n",
            "mirror.yml:4: 'r.example/team' is not a registry host: give the host alone, "
            "without a path (e.g. registry.internal, 127.0.0.1:5000)",
            id="host-with-a-path",
        ),
        pytest.param(
            "registries:\n- {host: r.example}\n- {host: R.example}\n"
            "sources: [{image: a.example/b:1, destination: a.example/c}]\n",
            "mirror.yml:5: registry r.example is configured twice (first at mirror.yml:4)",
            id="registry-twice",
        ),
        pytest.param(
            "sources:\n- image: nginx:1\n  destination: a.example/x\n  destination: b.example/y\n",
            "mirror.yml:6: duplicate key 'destination' (first at line 5)",
            id="duplicate-key",
        ),
    ],
)
def test_config_errors_name_file_and_line(text: str, expected: str) -> None:
    """Every mistake is one line starting with FILE:LINE of the culprit."""
    assert expected == error(text)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        pytest.param(
            "apiVersion: relocator.dev/v1\nkind: Mirror\n",
            f"mirror.yml:1: expected apiVersion: {API_VERSION} and kind: Mirror, got "
            "relocator.dev/v1 and Mirror",
            id="other-version",
        ),
        pytest.param(
            "kind: Config\n",
            f"mirror.yml:1: expected apiVersion: {API_VERSION} and kind: Mirror, got "
            "no apiVersion and Config",
            id="other-kind",
        ),
    ],
)
def test_only_mirror_documents_are_read(head: str, expected: str) -> None:
    """A document of another kind or version is refused, not half understood."""
    assert expected == error("sources: []\n", head=head)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("", "m.yml: no Mirror document (apiVersion: relocator.dev/v1alpha1)",
                     id="empty"),
        pytest.param("a: [\n", "m.yml:2: did not find expected node content (while parsing "
                     "a flow node)", id="malformed-yaml"),
    ],
)
def test_files_that_are_not_configs(tmp_path: Path, content: str, expected: str) -> None:
    """An empty or malformed file is one error naming it."""
    path = tmp_path / "m.yml"
    path.write_text(content)

    with pytest.raises(ConfigError) as caught:
        load_mirror_config([str(path)])

    assert expected == str(caught.value).replace(str(tmp_path) + "/", "")


def test_a_missing_file_is_one_error(tmp_path: Path) -> None:
    """A config file that cannot be read is named with the reason."""
    missing = tmp_path / "nope.yml"

    with pytest.raises(ConfigError) as caught:
        load_mirror_config([str(missing)])

    assert f"cannot read {missing}: No such file or directory" == str(caught.value)


def test_registries_of_several_files_must_not_repeat(tmp_path: Path) -> None:
    """The same registry configured in two files is refused with both places."""
    body = (
        HEAD + "registries: [{host: r.example}]\n"
        "sources: [{image: a.b/c:1, destination: a.b/d}]\n"
    )
    first, second = tmp_path / "a.yml", tmp_path / "b.yml"
    first.write_text(body)
    second.write_text(body)

    with pytest.raises(ConfigError) as caught:
        load_mirror_config([str(first), str(second)])

    assert f"{second}:3: registry r.example is configured twice (first at {first}:3)" == str(
        caught.value
    )
