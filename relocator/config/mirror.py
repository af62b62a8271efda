"""
The `relocator mirror` config file: which repositories and tags to mirror, and where.

A `Mirror` document lists sources (a repository filtered by tag rules, or one image),
where each goes (a destination template), and per-registry limits::

    apiVersion: relocator.dev/v1alpha1
    kind: Mirror
    defaults:
      destination: registry.internal/mirror/{repository}
      includeReferrers: true
    registries:
    - host: registry.internal
      concurrency: 4
      requestsPerSecond: 20
    sources:
    - repository: docker.io/library/nginx
      tags: ["1.25.3", {regex: '^1\\.26\\.[0-9]+$'}, {semver: ">=1.24.0 <1.26.0"}]

Parsing is pure (files are read, nothing else): `docs/mirror.md` is the reference, and
everything malformed is a `ConfigError` of one line naming FILE:LINE. Tag rules and
choosing tags are in `tagrules`, the `registries` entries in `registrylimits`.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from relocator.config.fields import Fields
from relocator.config.registrylimits import RegistryLimits, registry_limits
from relocator.config.tagrules import TagFilter, tag_rules
from relocator.config.yamltree import Node, ParseProblem, parse_yaml_stream
from relocator.errors import ConfigError, InputError
from relocator.oci import (
    TEMPLATE_FIELDS,
    Platform,
    Reference,
    Repository,
    expand_template,
)

API_VERSION = "relocator.dev/v1alpha1"
KIND = "Mirror"

_DOCUMENT_FIELDS = frozenset({"apiVersion", "kind", "defaults", "registries", "sources"})
_DEFAULTS_FIELDS = frozenset({"destination", "platforms", "includeReferrers"})
_SOURCE_FIELDS = frozenset(
    {"repository", "image", "tags", "exclude", "destination", "platforms", "includeReferrers"}
)
# Sample source a template without a real source is tried on, to catch a template that
# can never give a valid repository (`Registry.internal/{repository}`) at load time.
_SAMPLE = Repository(registry="registry.example", path="library/nginx")
# Config files are written by people; anything larger is not a mirror config (16 MiB).
MAX_CONFIG_BYTES = 16 * 1024 * 1024

_T = TypeVar("_T")


# ---------------------------------------------------------------------------------------
# Sources and destinations


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """
    Where a source goes: a template whose fields (`{registry}`, `{repository}`,
    `{name}`) come from the source repository, or a fixed repository.
    """

    template: str
    where: str = ""

    def of(self, source: Repository) -> Repository:
        """
        The destination repository of `source`.

        Raises:
            ConfigError: The template gives no valid repository name for `source`.
        """
        text = expand_template(self.template, source)
        try:
            return Repository.parse(text)
        except InputError as exc:
            raise ConfigError(
                f"{self.where}: destination '{self.template}' gives '{text}' for "
                f"{source}: {exc}"
            ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorSource:
    """One entry of `sources`, with the file's defaults applied."""

    #: The repository read from.
    repository: Repository
    #: For an `image:` source, the image (by tag, digest or both); None for a
    #: `repository:` source.
    image: Reference | None = None
    #: For a `repository:` source, which tags; None for an `image:` source.
    tags: TagFilter | None = None
    destination: Destination
    #: Platforms to copy of an index (empty: the whole index), as `relocate --platform`.
    platforms: tuple[Platform, ...] = ()
    #: Copy what is attached to each image too (referrers, cosign signature tags), as
    #: `relocate --include-referrers`.
    include_referrers: bool = False
    #: "FILE:LINE" of the entry.
    where: str = ""

    @property
    def name(self) -> str:
        """The source as written: the image reference or the repository name."""
        return str(self.image) if self.image is not None else self.repository.name


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorConfig:
    """Every `Mirror` document of the config files, merged in the order given."""

    registries: tuple[RegistryLimits, ...] = ()
    sources: tuple[MirrorSource, ...] = ()

    @classmethod
    def parse(cls, text: str | bytes, source: str) -> MirrorConfig:
        """
        Parse the `Mirror` documents of one file.

        Args:
            text: The file's content.
            source: Its name, for messages.

        Raises:
            ConfigError: The YAML is malformed or the config is not valid.
        """
        try:
            roots = parse_yaml_stream(text)
        except ParseProblem as problem:
            raise problem.to_config_error(source) from None
        documents = [root for root in roots if root is not None]
        if not documents:
            raise ConfigError(f"{source}: no {KIND} document (apiVersion: {API_VERSION})")
        return merge_configs(_document(root, source) for root in documents)


def merge_configs(configs: Iterable[MirrorConfig]) -> MirrorConfig:
    """
    One config of several: sources in order, registries each once.

    Raises:
        ConfigError: A registry host is configured twice.
    """
    registries: dict[str, RegistryLimits] = {}
    sources: list[MirrorSource] = []
    for config in configs:
        for limits in config.registries:
            first = registries.get(limits.host)
            if first is not None:
                raise ConfigError(
                    f"{limits.where}: registry {limits.host} is configured twice "
                    f"(first at {first.where})"
                )
            registries[limits.host] = limits
        sources.extend(config.sources)
    return MirrorConfig(registries=tuple(registries.values()), sources=tuple(sources))


def load_mirror_config(paths: Sequence[str]) -> MirrorConfig:
    """
    Read and merge the config files named by `-c` (in order).

    Raises:
        ConfigError: A file cannot be read, or is not a valid config.
    """
    configs = []
    for path in paths:
        try:
            with Path(path).open("rb") as handle:
                data = handle.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB")
        configs.append(MirrorConfig.parse(data, path))
    return merge_configs(configs)


# ---------------------------------------------------------------------------------------
# Reading one document


def _document(root: Node, source: str) -> MirrorConfig:
    fields = Fields(root, source, f"{KIND} document")
    api_version, kind = fields.get_str("apiVersion"), fields.get_str("kind")
    if api_version != API_VERSION or kind != KIND:
        raise fields.error(
            f"expected apiVersion: {API_VERSION} and kind: {KIND}, got "
            f"{api_version or 'no apiVersion'} and {kind or 'no kind'}"
        )
    fields.refuse_unknown(_DOCUMENT_FIELDS)
    destination: Destination | None = None
    platforms: tuple[Platform, ...] = ()
    referrers = False
    defaults = fields.get_map("defaults")
    if defaults is not None:
        default_fields = Fields(defaults, source, "defaults")
        default_fields.refuse_unknown(_DEFAULTS_FIELDS)
        destination = _destination(default_fields, None)
        platforms = _platforms(default_fields) or ()
        referrers = bool(default_fields.get_bool("includeReferrers"))
    registries_node = fields.get_seq("registries")
    registries = merge_configs(
        MirrorConfig(registries=(registry_limits(Fields(item, source, "registry")),))
        for item in (registries_node.items if registries_node is not None else ())
    ).registries
    sources_node = fields.get_seq("sources")
    if sources_node is None or not sources_node.items:
        raise fields.error(
            f"{KIND} needs sources: a list of repositories (with tags) or images",
            sources_node,
        )
    sources = tuple(
        _source(Fields(item, source, "source"), destination, platforms, referrers)
        for item in sources_node.items
    )
    return MirrorConfig(registries=registries, sources=sources)


def _source(
    fields: Fields,
    default_destination: Destination | None,
    default_platforms: tuple[Platform, ...],
    default_referrers: bool,
) -> MirrorSource:
    fields.refuse_unknown(_SOURCE_FIELDS)
    where = f"{fields.source}:{fields.node.line}"
    repository_text, image_text = fields.get_str("repository"), fields.get_str("image")
    if bool(repository_text) == bool(image_text):
        raise fields.error("a source needs either repository or image (not both)")
    image: Reference | None = None
    tags: TagFilter | None = None
    if image_text:
        image = _parse(Reference.parse, image_text, fields, fields.get("image"))
        repository = image.repo
        for key in ("tags", "exclude"):
            if fields.get(key) is not None:
                raise fields.error(
                    f"{key} is for a repository source; an image source copies one image",
                    fields.get(key),
                )
    else:
        repository = _parse(
            Repository.parse, repository_text or "", fields, fields.get("repository")
        )
        include = tag_rules(fields, "tags")
        if not include:
            raise fields.error(
                f"source {repository} needs tags: exact tags, {{regex: ...}} or "
                '{semver: ...} (to mirror every tag, write - regex: ".*")',
                fields.get("tags"),
            )
        tags = TagFilter(include=include, exclude=tag_rules(fields, "exclude"))
    destination = _destination(fields, repository) or default_destination
    if destination is None:
        raise fields.error(
            f"source {repository} has no destination: set destination here or in defaults"
        )
    platforms = _platforms(fields)
    referrers = fields.get_bool("includeReferrers")
    return MirrorSource(
        repository=repository,
        image=image,
        tags=tags,
        destination=destination,
        platforms=default_platforms if platforms is None else platforms,
        include_referrers=default_referrers if referrers is None else referrers,
        where=where,
    )


def _destination(fields: Fields, repository: Repository | None) -> Destination | None:
    template = fields.get_str("destination")
    if template is None:
        return None
    node = fields.get("destination")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise fields.error(f"destination '{template}': {exc}", node) from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS or spec or conversion:
            raise fields.error(
                f"destination '{template}' may use "
                f"{', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)} and nothing else",
                node,
            )
    destination = Destination(template=template, where=f"{fields.source}:{_line(node)}")
    # Try it now, so a template that cannot work fails before anything is listed.
    destination.of(repository or _SAMPLE)
    return destination


def _platforms(fields: Fields) -> tuple[Platform, ...] | None:
    node = fields.get_seq("platforms")
    if node is None:
        return None
    platforms = []
    for item, text in zip(node.items, fields.get_str_list("platforms"), strict=True):
        platforms.append(_parse(Platform.parse, text, fields, item, "linux/arm64/v8"))
    return tuple(platforms)


def _parse(
    parse: Callable[[str], _T], text: str, fields: Fields, node: Node | None, example: str = ""
) -> _T:
    """`parse(text)`, with a bad value reported at its line (and an example)."""
    try:
        return parse(text)
    except InputError as exc:
        raise fields.error(f"{exc} (e.g. {example})" if example else str(exc), node) from None


def _line(node: Node | None) -> int:
    return node.line if node is not None else 0
