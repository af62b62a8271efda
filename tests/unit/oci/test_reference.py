"""Image references and repository names, normalised as docker, kbld and imgpkg read them."""

from __future__ import annotations

import pytest

from relocator.errors import InvalidReference
from relocator.oci import (
    DOCKER_HUB,
    Digest,
    Reference,
    Repository,
    check_tag,
    is_repository_path,
    is_tag,
    shown,
)

DIGEST = Digest.of(b"reference tests")
OTHER_DIGEST = Digest.of(b"another manifest")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", Reference(DOCKER_HUB, "library/nginx", "latest")),
        ("nginx:1.2", Reference(DOCKER_HUB, "library/nginx", "1.2")),
        ("dkalinin/app1", Reference(DOCKER_HUB, "dkalinin/app1", "latest")),
        ("docker.io/library/x", Reference(DOCKER_HUB, "library/x", "latest")),
        ("docker.io/x", Reference(DOCKER_HUB, "library/x", "latest")),
        ("index.docker.io/x", Reference(DOCKER_HUB, "library/x", "latest")),
        ("index.docker.io/team/x:v1", Reference(DOCKER_HUB, "team/x", "v1")),
        ("localhost/x", Reference("localhost", "x", "latest")),
        ("localhost:5000/x", Reference("localhost:5000", "x", "latest")),
        ("127.0.0.1:5000/a/b", Reference("127.0.0.1:5000", "a/b", "latest")),
        ("[::1]:5000/x", Reference("[::1]:5000", "x", "latest")),
        ("[::1]:5000/x:v2", Reference("[::1]:5000", "x", "v2")),
        ("gcr.io/p/a/b:t", Reference("gcr.io", "p/a/b", "t")),
        # A first component with upper case letters is a registry, as docker reads it.
        ("Registry/app", Reference("Registry", "app", "latest")),
        ("a-b/c__d/e--f.g_h:T_1.x-y", Reference(DOCKER_HUB, "a-b/c__d/e--f.g_h", "T_1.x-y")),
        (f"nginx@{DIGEST}", Reference(DOCKER_HUB, "library/nginx", None, DIGEST)),
        (f"nginx:1.2@{DIGEST}", Reference(DOCKER_HUB, "library/nginx", "1.2", DIGEST)),
        (
            f"localhost:5000/a/b:t@{DIGEST}",
            Reference("localhost:5000", "a/b", "t", DIGEST),
        ),
        (f"nginx:{'t' * 128}", Reference(DOCKER_HUB, "library/nginx", "t" * 128)),
    ],
)
def test_parse_normalises_like_docker(text: str, expected: Reference) -> None:
    """
    Docker Hub is `index.docker.io` with `library/` for single-component names; a first
    component is a registry only with `.`, `:`, `localhost` or upper case; a reference
    without tag or digest means `:latest`, and one with a digest gets no implied tag.
    """
    actual = Reference.parse(text)

    assert expected == actual


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("Nginx", id="uppercase-repository"),
        pytest.param("library/Nginx", id="uppercase-path-component"),
        pytest.param("localhost:5000/Team/app", id="uppercase-after-registry"),
        pytest.param("http://nginx", id="http-prefix"),
        pytest.param("https://registry.example/app", id="https-prefix"),
        pytest.param(f"nginx:{'t' * 129}", id="tag-129-chars"),
        pytest.param("nginx:", id="empty-tag"),
        pytest.param("nginx:-x", id="tag-starting-with-dash"),
        pytest.param("nginx:.x", id="tag-starting-with-dot"),
        pytest.param("nginx:t\u00e4g", id="tag-non-ascii-letter"),
        pytest.param("nginx:\u0661\u0662", id="tag-non-ascii-digits"),
        pytest.param("nginx@sha256:abc", id="short-digest"),
        pytest.param(f"nginx@sha256:{'A' * 64}", id="uppercase-digest"),
        pytest.param(f"nginx@md5:{'a' * 32}", id="md5-digest"),
        pytest.param("nginx@sha256:../../etc/passwd", id="digest-path-traversal"),
        pytest.param(f"nginx@{DIGEST}@{OTHER_DIGEST}", id="two-digests"),
        pytest.param("localhost:5000/", id="empty-repository"),
        pytest.param("a//b", id="empty-path-component"),
        pytest.param("-a/b", id="component-starting-with-dash"),
        pytest.param("a/b_", id="component-ending-with-separator"),
        pytest.param("a/b___c", id="three-underscores"),
        pytest.param("reg:abc/x", id="non-numeric-port"),
        pytest.param(f"localhost:99999/x@{DIGEST}", id="port-above-65535"),
        pytest.param("localhost:0/x", id="port-zero"),
        pytest.param("[::1]:65536/x", id="ipv6-port-above-65535"),
        pytest.param("reg.example/x y", id="space"),
        pytest.param(f"reg.example/{'a' * 244}", id="name-longer-than-255"),
    ],
)
def test_parse_rejects_invalid_references(text: str) -> None:
    """Anything outside the distribution reference grammar is an InvalidReference."""
    with pytest.raises(InvalidReference):
        Reference.parse(text)


def test_an_out_of_range_port_is_named() -> None:
    """A port above 65535 is refused in one line naming it, not by urllib much later."""
    with pytest.raises(InvalidReference, match="port 99999 of registry 'localhost:99999'"):
        Reference.parse(f"localhost:99999/x@{DIGEST}")

    assert "localhost:65535" == Reference.parse("localhost:65535/x").registry


def test_parse_accepts_a_name_of_exactly_255_characters() -> None:
    """`registry/path` may be 255 characters long (distribution's NameTotalLengthMax)."""
    text = f"reg.example/{'a' * 243}"

    actual = Reference.parse(text)

    assert 255 == len(actual.name)


def test_parse_names_the_protocol_prefix() -> None:
    """A reference given as a URL is refused with a message naming the prefix."""
    with pytest.raises(InvalidReference, match="should not include https:// protocol prefix"):
        Reference.parse("https://registry.example/app:1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", Repository(DOCKER_HUB, "library/nginx")),
        ("docker.io/dkalinin/app1", Repository(DOCKER_HUB, "dkalinin/app1")),
        ("localhost:5000/x", Repository("localhost:5000", "x")),
        ("registry.example/team/app", Repository("registry.example", "team/app")),
    ],
)
def test_repository_parse_normalises_like_references(text: str, expected: Repository) -> None:
    """Repository names follow the same normalisation as image references."""
    actual = Repository.parse(text)

    assert expected == actual


@pytest.mark.parametrize(
    "text",
    ["nginx:1.2", f"nginx@{DIGEST}", f"registry.example/team/app:v1@{DIGEST}", "Nginx"],
)
def test_repository_parse_refuses_tags_digests_and_invalid_names(text: str) -> None:
    """A repository name carries neither tag nor digest."""
    with pytest.raises(InvalidReference):
        Repository.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "index.docker.io/library/nginx:latest",
        "localhost:5000/a/b:t",
        f"registry.example/team/app@{DIGEST}",
        f"registry.example/team/app:v1@{DIGEST}",
        "[::1]:5000/x:v2",
    ],
)
def test_str_of_a_normalised_reference_parses_back_to_itself(text: str) -> None:
    """`str(ref)` is the full normalised form and round-trips through `parse`."""
    ref = Reference.parse(text)

    assert text == str(ref)
    assert ref == Reference.parse(str(ref))


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (Reference("reg.example", "app", "v1"), "v1"),
        (Reference("reg.example", "app", "v1", DIGEST), str(DIGEST)),
        (Reference("reg.example", "app", None, DIGEST), str(DIGEST)),
        (Reference("reg.example", "app"), "latest"),
    ],
)
def test_identifier_prefers_the_digest(ref: Reference, expected: str) -> None:
    """The manifest is addressed by digest when one is known: the digest is authoritative."""
    assert expected == ref.identifier


def test_with_digest_drops_the_tag() -> None:
    """`with_digest` names the same repository at a digest, without the tag."""
    ref = Reference.parse("registry.example/team/app:v1")

    actual = ref.with_digest(DIGEST)

    assert Reference("registry.example", "team/app", None, DIGEST) == actual


def test_from_repo_and_repo_are_inverse() -> None:
    """A reference built from a repository gives that repository back."""
    repo = Repository.parse("registry.example/team/app")

    ref = Reference.from_repo(repo, tag="v1", digest=DIGEST)

    assert Reference("registry.example", "team/app", "v1", DIGEST) == ref
    assert repo == ref.repo
    assert "registry.example/team/app" == ref.name == repo.name == str(repo)


# (tag, valid): the distribution grammar `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
TAGS = [
    ("latest", True),
    ("1.25.3-alpine", True),
    ("_x", True),
    ("V1_2.3-rc.1", True),
    ("t" * 128, True),
    ("sha256-" + "a" * 64 + ".sig", True),
    ("t" * 129, False),
    ("", False),
    (".x", False),
    ("-x", False),
    ("../../../victim/app/manifests/latest", False),
    ("..", False),
    ("a/b", False),
    ("a?b", False),
    ("a#b", False),
    ("a%2Fb", False),
    ("a:b", False),
    ("a@b", False),
    ("a b", False),
    ("a+b", False),
    ("line\nbreak", False),
    ("x\r", False),
    ("t\u00e4g", False),
    ("\u0661\u0662", False),
]


@pytest.mark.parametrize(("tag", "valid"), TAGS, ids=[repr(t[:20]) for t, _ in TAGS])
def test_tags_follow_the_distribution_grammar(tag: str, valid: bool) -> None:
    """
    `is_tag` accepts exactly the distribution grammar; `check_tag` returns a valid tag
    and refuses any other with one line naming it; a reference or repository with such
    a tag or name cannot even be built.
    """
    assert valid == is_tag(tag)
    if valid:
        assert tag == check_tag(tag)
        assert tag == Reference("reg.example", "app", tag).tag
        return
    with pytest.raises(InvalidReference) as caught:
        check_tag(tag, where="listing of reg.example/app")
    message = str(caught.value)
    assert message.startswith(f"listing of reg.example/app: {shown(tag)} is not a valid tag")
    assert [] == [c for c in message if not c.isprintable()]
    with pytest.raises(InvalidReference):
        Reference("reg.example", "app", tag)
    with pytest.raises(InvalidReference):
        Reference.from_repo(Repository("reg.example", "app"), tag=tag)


@pytest.mark.parametrize(
    ("path", "valid"),
    [
        ("app", True),
        ("team/app", True),
        ("a-b/c__d/e--f.g_h", True),
        ("mirror/../victim", False),
        ("a/./b", False),
        ("App", False),
        ("a//b", False),
        ("/a", False),
        ("a/", False),
        ("a?b", False),
        ("a%2fb", False),
        ("a#b", False),
        ("a___b", False),
        ("", False),
    ],
)
def test_repository_paths_follow_the_distribution_grammar(path: str, valid: bool) -> None:
    """
    `is_repository_path` accepts exactly the distribution's path grammar; a repository
    or reference with any other path cannot be built.
    """
    assert valid == is_repository_path(path)
    if valid:
        assert path == Repository("reg.example", path).path
        return
    with pytest.raises(InvalidReference):
        Repository("reg.example", path)
    with pytest.raises(InvalidReference):
        Reference("reg.example", path, "v1")


@pytest.mark.parametrize("registry", ["reg.example/x", "reg.example?x", "", "reg example"])
def test_a_registry_outside_the_grammar_cannot_be_built(registry: str) -> None:
    """The registry part becomes a URL's host: a hand-built one is checked too."""
    with pytest.raises(InvalidReference):
        Repository(registry, "app")


def test_hostile_values_are_shown_short_and_escaped() -> None:
    """A 20 MB tag or one with control characters is named, cut and escaped."""
    assert "'a\\nb'" == shown("a\nb")
    assert f"'{'t' * 80}…' (20000000 characters)" == shown("t" * 20_000_000)
