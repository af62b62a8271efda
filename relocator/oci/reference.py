"""
Image references with Docker's normalisation.

`nginx` means `index.docker.io/library/nginx:latest`, as it does for docker, kbld and
imgpkg; the first path component is a registry only if it contains `.` or `:` or is
`localhost`. Docker Hub is written `index.docker.io`, which is how kbld prints it and
what kbld users find in their lock files.

Tags and repository names become parts of registry URLs, so they are checked against
the distribution grammar wherever they come from (`is_tag`, `check_tag`,
`is_repository_path`) and again whenever a `Reference` or `Repository` is built: a
listing, a tarball or a config cannot slip `../` or `?` into a request path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from relocator.errors import InvalidDigest, InvalidReference
from relocator.oci.digest import Digest

DOCKER_HUB = "index.docker.io"
# Spellings of Docker Hub that users type; all mean DOCKER_HUB.
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io"})

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_HOST_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]{{1,5}})?")
#: The longest tag the distribution grammar allows.
MAX_TAG_LENGTH = 128
# distribution's grammar, ASCII only (its \w is Go's; Python's \w would take Unicode).
_TAG = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9_.-]{{0,{MAX_TAG_LENGTH - 1}}}")
# Characters of a hostile value shown in a message at most: enough to recognise it.
_SHOWN = 80
# The port at the end of a registry that `_DOMAIN` accepted (`[::1]` has none).
_PORT = re.compile(r":([0-9]+)$")
# distribution's limit on "registry/path" (reference.NameTotalLengthMax).
_NAME_MAX = 255


def is_tag(text: object) -> bool:
    """Whether `text` is a tag by the distribution grammar: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`."""
    return isinstance(text, str) and _TAG.fullmatch(text) is not None


def check_tag(text: object, *, where: str = "") -> str:
    """
    `text` if it is a tag (see `is_tag`).

    Args:
        text: The would-be tag.
        where: What it came from, to start the message with (a file, a listing).

    Raises:
        InvalidReference: It is not a tag; the message names it (shortened, escaped).
    """
    if isinstance(text, str) and is_tag(text):
        return text
    prefix = f"{where}: " if where else ""
    raise InvalidReference(
        f"{prefix}{shown(text)} is not a valid tag",
        hint=f"a tag is 1 to {MAX_TAG_LENGTH} of A-Z a-z 0-9 _ . - and cannot start with . or -",
    )


def is_repository_path(text: object) -> bool:
    """Whether `text` is a repository path by the distribution grammar (`team/app`)."""
    return isinstance(text, str) and _PATH.fullmatch(text) is not None


def shown(value: object) -> str:
    """
    `value` quoted for a message: control characters escaped and anything past 80
    characters cut, so a hostile tag or name can neither flood nor rewrite a terminal.
    """
    text = value if isinstance(value, str) else repr(value)
    escaped = text.encode("unicode_escape").decode("ascii").replace("'", "\\'")
    if len(escaped) <= _SHOWN:
        return f"'{escaped}'"
    # The same marker as `relocator.errors.shorten`, which caps every message again.
    return f"'{escaped[:_SHOWN]}…' ({len(text)} characters)"


@dataclass(frozen=True, slots=True)
class Repository:
    """
    A repository on a registry: `index.docker.io/library/nginx`. Built only from a
    valid registry and path (the constructor checks them).
    """

    registry: str
    path: str

    def __post_init__(self) -> None:
        _check_name(self.registry, self.path)

    @classmethod
    def parse(cls, text: str) -> Repository:
        """
        Parse a repository name such as `docker.io/dkalinin/app1` or `localhost:5000/x`.

        Raises:
            InvalidReference: The text is not a repository name (a tag or digest included).
        """
        ref = _split(text, what="repository")
        if ref.tag is not None or ref.digest is not None:
            raise InvalidReference(
                f"Expected repository '{text}' to have no tag or digest",
                hint="give a repository such as registry.example.com/team/app",
            )
        return ref.repo

    @property
    def name(self) -> str:
        """`registry/path`."""
        return f"{self.registry}/{self.path}"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Reference:
    """
    An image reference: a repository with a tag, a digest, or both.

    When both are present the digest is authoritative: it names the content, the tag is
    only carried along (for `--preserve-tags` and for messages).
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    def __post_init__(self) -> None:
        # Every tag and name a request is built from passed here, whoever built it.
        _check_name(self.registry, self.repository)
        if self.tag is not None:
            check_tag(self.tag, where=f"{self.registry}/{self.repository}")

    @classmethod
    def parse(cls, text: str) -> Reference:
        """
        Parse `nginx` as `index.docker.io/library/nginx:latest`.

        A reference with neither tag nor digest gets the tag `latest`.

        Raises:
            InvalidReference: The text is not a valid image reference.
        """
        ref = _split(text, what="image")
        if ref.tag is None and ref.digest is None:
            return cls(ref.registry, ref.repository, "latest", None)
        return ref

    @classmethod
    def from_repo(
        cls, repo: Repository, *, tag: str | None = None, digest: Digest | None = None
    ) -> Reference:
        """The reference to `tag` and/or `digest` in `repo`."""
        return cls(repo.registry, repo.path, tag, digest)

    @property
    def repo(self) -> Repository:
        """The repository part."""
        return Repository(self.registry, self.repository)

    @property
    def name(self) -> str:
        """`registry/repository`, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What names the manifest in the registry API: the digest if known, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        # parse() gives every reference a tag or a digest; "latest" covers hand-built ones.
        return self.tag or "latest"

    def with_digest(self, digest: Digest) -> Reference:
        """This repository at `digest`, without a tag."""
        return Reference(self.registry, self.repository, None, digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


#: The fields a destination template may use (`--repository-template`, the destinations
#: of a mirror config): the source's registry, repository path, and its last component.
TEMPLATE_FIELDS = ("registry", "repository", "name")


def expand_template(template: str, source: Repository) -> str:
    """
    `template` with `{registry}`, `{repository}` and `{name}` of `source` filled in:
    `mirror.internal/{repository}` for `index.docker.io/library/nginx` is
    `mirror.internal/library/nginx`. The result is not validated (parse it).
    """
    return template.format(
        registry=source.registry,
        repository=source.path,
        name=source.path.rsplit("/", 1)[-1],
    )


def _split(text: str, *, what: str) -> Reference:
    if not isinstance(text, str) or not text:
        raise InvalidReference(f"Expected {what} reference to be a non-empty string")
    for scheme in ("http://", "https://"):
        if text.startswith(scheme):
            raise InvalidReference(
                f"Reference '{text}' should not include {scheme} protocol prefix"
            )
    rest, digest = text, None
    if "@" in rest:
        rest, _, digest_text = rest.partition("@")
        try:
            digest = Digest.parse(digest_text)
        except InvalidDigest:
            raise InvalidReference(
                f"Invalid {what} reference '{text}': bad digest '{digest_text}'"
            ) from None
    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not is_tag(tag):
            raise InvalidReference(
                f"Invalid {what} reference {shown(text)}: bad tag {shown(tag)}"
            )
    registry, path = _split_domain(rest)
    if not _DOMAIN.fullmatch(registry):
        raise InvalidReference(f"Invalid {what} reference '{text}': bad registry '{registry}'")
    port = _PORT.search(registry)
    if port is not None and not 1 <= int(port.group(1)) <= 65535:
        # urllib and aiohttp would raise ValueError on it far from here.
        raise InvalidReference(
            f"Invalid {what} reference '{text}': port {port.group(1)} of registry "
            f"'{registry}' is not between 1 and 65535"
        )
    if path != path.lower():
        raise InvalidReference(
            f"Invalid {what} reference '{text}': repository name must be lowercase"
        )
    if not _PATH.fullmatch(path):
        raise InvalidReference(f"Invalid {what} reference '{text}': bad repository '{path}'")
    if len(registry) + 1 + len(path) > _NAME_MAX:
        raise InvalidReference(f"Invalid {what} reference '{text}': name longer than 255")
    return Reference(registry, path, tag, digest)


def _check_name(registry: object, path: object) -> None:
    """Refuse a registry or repository path outside the grammar (hand-built values)."""
    if not isinstance(registry, str) or not _DOMAIN.fullmatch(registry):
        raise InvalidReference(f"Invalid registry {shown(registry)}")
    if not is_repository_path(path):
        raise InvalidReference(f"Invalid repository name {shown(path)} on {registry}")


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, remainder = name.partition("/")
    is_domain = slash and (
        "." in first or ":" in first or first == "localhost" or first != first.lower()
    )
    if not is_domain:
        registry, path = DOCKER_HUB, name
    else:
        registry, path = first, remainder
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    return registry, path
