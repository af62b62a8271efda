"""
kbld `Config` documents and imgpkg `ImagesLock` documents given as inputs.

Both are configuration, not content: they are taken out of the documents we render and
merged, in input order, into one `KbldConfig` (overrides, search rules, version floor).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from relocator.config.fields import Fields
from relocator.config.origins import ORIGINS_ANNOTATION, Origin, parse_origins_text
from relocator.config.overrides import Override, parse_override
from relocator.config.search import (
    KeyMatcher,
    SearchRule,
    unique_rules,
    with_default_rule,
)
from relocator.config.yamltree import Map, Scalar
from relocator.errors import InvalidReference
from relocator.oci import Reference

KBLD_API_VERSION = "kbld.k14s.io/v1alpha1"
# `Config` and the legacy kinds that kbld reads the same fields from.
KBLD_CONFIG_KINDS = frozenset(
    {"Config", "Sources", "ImageOverrides", "ImageDestinations", "ImageKeys"}
)
IMGPKG_API_VERSION = "imgpkg.carvel.dev/v1alpha1"
IMAGES_LOCK_KIND = "ImagesLock"
#: The ImagesLock annotation holding the reference as it was written in the inputs.
KBLD_ID_ANNOTATION = "kbld.carvel.dev/id"

#: relocator implements kbld's config format (Config fields, search rules, overrides and
#: lock files) as of this kbld version; a config whose `minimumRequiredVersion` is newer
#: may use features we do not know, so it is refused rather than half-understood.
KBLD_COMPATIBLE_VERSION = "0.46.0"

_CONFIG_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "minimumRequiredVersion",
        "sources",
        "destinations",
        "overrides",
        "keys",
        "searchRules",
    }
)
# What kbld can do that relocator does not, and so ignores.
_UNSUPPORTED_FIELDS = (("sources", "building images"), ("destinations", "pushing built images"))
# semver 2.0 with kbld's leniency (hashicorp/go-version): minor and patch may be left out.
# ASCII digits only: Python's \d also matches '٣'.
_VERSION = re.compile(
    r"(\d+)(?:\.(\d+))?(?:\.(\d+))?(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?", re.ASCII
)


@dataclass(frozen=True, slots=True, kw_only=True)
class KbldConfig:
    """Everything the config documents among the inputs said, merged in input order."""

    overrides: tuple[Override, ...] = ()
    #: The user's rules: every config's `keys` (as `keyMatcher: {name: ...}` rules), then
    #: every config's `searchRules`, without repeats and without the default rule.
    user_search_rules: tuple[SearchRule, ...] = ()
    #: The highest `minimumRequiredVersion` seen (all of them were checked).
    minimum_required_version: str | None = None
    #: Whether a config asked to build images (`sources`), which relocator does not do.
    has_sources: bool = False
    #: Whether a config asked to push built images (`destinations`), likewise.
    has_destinations: bool = False
    #: One line per thing that was ignored ("FILE:LINE: ..."), for the CLI to show.
    warnings: tuple[str, ...] = ()

    @property
    def search_rules(self) -> tuple[SearchRule, ...]:
        """The rules in effect: the user's, then the default `image` key rule."""
        return with_default_rule(self.user_search_rules)

    def override_for(self, value: str) -> Override | None:
        """The first override that matches the found value `value`, if any."""
        return next((o for o in self.overrides if o.matches(value)), None)

    def preresolved(self) -> tuple[Override, ...]:
        """The preresolved overrides, in order, without repeats."""
        return tuple(dict.fromkeys(o for o in self.overrides if o.preresolved))


def config_kind(root: Map) -> str | None:
    """`"kbld"` or `"imgpkg"` if the document is a kbld config or an ImagesLock, else None."""
    api_version, kind = root.get("apiVersion"), root.get("kind")
    if not (isinstance(api_version, Scalar) and isinstance(kind, Scalar)):
        return None
    if api_version.value == KBLD_API_VERSION and kind.value in KBLD_CONFIG_KINDS:
        return "kbld"
    if api_version.value == IMGPKG_API_VERSION and kind.value == IMAGES_LOCK_KIND:
        return "imgpkg"
    return None


def merge_config_documents(docs: Iterable[tuple[str, Map]]) -> KbldConfig:
    """
    Read config documents (each `(source name, root)`), in input order, into one config.

    Raises:
        ConfigError: A document is malformed, or needs a newer kbld than
            `KBLD_COMPATIBLE_VERSION`.
    """
    overrides: list[Override] = []
    keys: list[SearchRule] = []
    rules: list[SearchRule] = []
    warnings: list[str] = []
    minimum: tuple[tuple[int, int, int, int], str] | None = None
    sources = destinations = False
    for source, root in docs:
        if config_kind(root) == "imgpkg":
            overrides.extend(_images_lock_overrides(root, source))
            continue
        fields = Fields(root, source, "kbld Config")
        kind = fields.get_str("kind")
        warnings.extend(
            f"{source}:{key.line}: unknown field '{key.text}' in kbld {kind} is ignored"
            for key in fields.unknown(_CONFIG_FIELDS)
        )
        version = _check_version(fields)
        if version is not None and (minimum is None or version[0] > minimum[0]):
            minimum = version
        for name, purpose in _UNSUPPORTED_FIELDS:
            node = fields.get_seq(name)
            if node is not None and node.items:
                sources |= name == "sources"
                destinations |= name == "destinations"
                warnings.append(
                    f"{source}:{node.line}: '{name}' ({purpose}) is not supported "
                    f"by relocator and is ignored"
                )
        keys.extend(_keys(fields))
        rules_node = fields.get_seq("searchRules")
        if rules_node is not None:
            rules.extend(SearchRule.from_node(r, source) for r in rules_node.items)
        overrides_node = fields.get_seq("overrides")
        if overrides_node is not None:
            overrides.extend(
                parse_override(Fields(item, source, "override"), warnings)
                for item in overrides_node.items
            )
    return KbldConfig(
        overrides=tuple(overrides),
        # kbld puts every config's keys before any config's searchRules.
        user_search_rules=unique_rules([*keys, *rules]),
        minimum_required_version=minimum[1] if minimum else None,
        has_sources=sources,
        has_destinations=destinations,
        warnings=tuple(warnings),
    )


def _keys(fields: Fields) -> list[SearchRule]:
    result = []
    for name in fields.get_str_list("keys"):
        if not name:
            raise fields.error("keys must not contain an empty string", fields.get("keys"))
        result.append(SearchRule(key_matcher=KeyMatcher(name=name)))
    return result


def _check_version(fields: Fields) -> tuple[tuple[int, int, int, int], str] | None:
    text = fields.get_str("minimumRequiredVersion")
    if text is None:
        return None
    node = fields.get("minimumRequiredVersion")
    if text.startswith("v"):
        raise fields.error(
            f"minimumRequiredVersion '{text}' must not have prefix 'v' (e.g. '0.8.0')", node
        )
    key = version_key(text)
    if key is None:
        raise fields.error(f"minimumRequiredVersion '{text}' is not a version (e.g. '0.8.0')", node)
    if key > _COMPATIBLE_KEY:
        raise fields.error(
            f"this config needs kbld {text} or newer; relocator reads kbld configs up to "
            f"kbld {KBLD_COMPATIBLE_VERSION}",
            node,
        )
    return key, text


def version_key(text: str) -> tuple[int, int, int, int] | None:
    """A sortable key for a semver-ish version (`0.21`, `0.46.0-rc.1`), None if not one."""
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    major, minor, patch, pre, _ = match.groups()
    # A prerelease sorts before its release; prereleases among themselves are not ordered
    # because only "is it newer than our release" is ever asked.
    return int(major), int(minor or 0), int(patch or 0), 0 if pre else 1


_COMPATIBLE_KEY = (0, 46, 0, 1)  # version_key(KBLD_COMPATIBLE_VERSION); a test keeps them equal


def _images_lock_overrides(root: Map, source: str) -> list[Override]:
    # imgpkg reads ImagesLock strictly (yaml.UnmarshalStrict): unknown fields are errors.
    fields = Fields(root, source, "ImagesLock")
    fields.refuse_unknown({"apiVersion", "kind", "images"})
    images = fields.get_seq("images")
    overrides = []
    for item in images.items if images is not None else ():
        entry = Fields(item, source, "ImagesLock image")
        entry.refuse_unknown({"image", "annotations"})
        image = entry.get_str("image") or ""
        annotations = entry.get_map("annotations")
        ident = None
        origins: tuple[Origin, ...] = ()
        if annotations is not None:
            notes = Fields(annotations, source, "annotations")
            for key, _ in annotations.items:
                notes.get_str(key.text)  # imgpkg's annotations are map[string]string
            ident = notes.get_str(KBLD_ID_ANNOTATION)
            recorded = notes.get_str(ORIGINS_ANNOTATION)
            if recorded:
                origins = parse_origins_text(recorded, where=f"{source}:{item.line}")
        ref = digest_reference(image)
        if ref is None:
            raise entry.error(f"Expected ref to be in digest form, got '{image}'")
        overrides.append(
            Override(
                # Without kbld's id annotation the lock names the image itself, so the
                # override matches documents that already hold that reference.
                image=ident or image,
                # imgpkg fully qualifies lock images: ubuntu@sha256:.. is
                # index.docker.io/library/ubuntu@sha256:.. (any tag is dropped).
                new_image=f"{ref.name}@{ref.digest}",
                preresolved=True,
                origins=origins,
                where=f"{source}:{item.line}",
            )
        )
    return overrides


def digest_reference(image: str) -> Reference | None:
    """`image` parsed if it is a valid reference with a digest, else None."""
    try:
        ref = Reference.parse(image)
    except InvalidReference:
        return None
    return ref if ref.digest is not None else None
