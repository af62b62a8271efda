"""
kbld image overrides: which found values become which image, with the tag and platform
selections an override may carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from relocator.config.fields import Fields
from relocator.config.origins import Origin, parse_origins
from relocator.config.search import image_repo_of
from relocator.config.semver import Range, Version, parse_version
from relocator.config.yamltree import Map
from relocator.oci import Platform

_OVERRIDE_FIELDS = frozenset(
    {
        "image",
        "imageRepo",
        "newImage",
        "preresolved",
        "tagSelection",
        "platformSelection",
        "origins",
    }
)
_PLATFORM_FIELDS = frozenset(
    {"os", "architecture", "variant", "os.version", "os.features", "features"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TagSelection:
    """An override's `tagSelection` (vendir's semver selection), kept for the caller."""

    #: semver constraints such as `>=1.14.0 <1.15.0`; empty means any version.
    constraints: str = ""
    #: Whether prerelease versions may be selected (`prereleases: {...}` given).
    prereleases: bool = False
    #: Only prereleases with one of these identifiers (`rc`, `beta`), if any are named.
    prerelease_identifiers: tuple[str, ...] = ()

    def pick(self, tags: Iterable[str]) -> str | None:
        """
        The tag of the highest version the selection allows (tags that are not full
        semantic versions are never chosen), or None if none is allowed.

        Raises:
            InputError: The constraints are not a valid semver range.
        """
        allowed = Range.parse(self.constraints) if self.constraints.strip() else None
        best: tuple[Version, str] | None = None
        for tag in tags:
            version = parse_version(tag)
            if version is None or not self._allows_prerelease(version):
                continue
            if allowed is not None and not allowed.contains(
                version, allow_prereleases=self.prereleases
            ):
                continue
            if best is None or version > best[0]:
                best = (version, tag)
        return best[1] if best is not None else None

    def _allows_prerelease(self, version: Version) -> bool:
        if not version.is_prerelease:
            return True
        if not self.prereleases:
            return False
        return not self.prerelease_identifiers or any(
            part.startswith(wanted)
            for part in version.prerelease
            for wanted in self.prerelease_identifiers
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Override:
    """
    One kbld image override: found values it `matches` become `new_image`.

    `image` matches the value exactly as written (`nginx` is not `docker.io/library/
    nginx`); `image_repo` matches the repository part of the value (see
    `relocator.config.search.image_repo_of`). A `preresolved` override's `new_image` is
    final: no registry is asked to resolve it.
    """

    image: str | None = None
    image_repo: str | None = None
    new_image: str
    preresolved: bool = False
    platform: Platform | None = None
    #: `platformSelection.features`, which `Platform` has no field for.
    platform_features: tuple[str, ...] = ()
    tag_selection: TagSelection | None = None
    #: Where a preresolved image came from, as the lock recorded it (kbld's `origins`).
    origins: tuple[Origin, ...] = field(default=(), compare=False)
    #: "FILE:LINE" of the override, for messages.
    where: str = field(default="", compare=False)

    def matches(self, value: str) -> bool:
        """Whether this override applies to the found value `value`."""
        if self.image is not None:
            return value == self.image
        return image_repo_of(value) == self.image_repo


def parse_override(fields: Fields, warnings: list[str]) -> Override:
    """
    One entry of a config's `overrides`; unknown fields are ignored, with a line in
    `warnings`, as kbld does.

    Raises:
        ConfigError: The entry is malformed (one line naming FILE:LINE).
    """
    warnings.extend(
        f"{fields.source}:{key.line}: unknown field '{key.text}' in override is ignored"
        for key in fields.unknown(_OVERRIDE_FIELDS)
    )
    image, repo = fields.get_str("image"), fields.get_str("imageRepo")
    if image and repo:
        raise fields.error("override needs image or imageRepo, not both")
    if not image and not repo:
        raise fields.error("override needs a non-empty image or imageRepo")
    new_image = fields.get_str("newImage")
    if not new_image:
        raise fields.error("override needs a non-empty newImage")
    platform, features = _platform(fields.get_map("platformSelection"), fields.source)
    tags = fields.get_map("tagSelection")
    origins = fields.get("origins")
    return Override(
        image=image or None,
        image_repo=repo or None,
        new_image=new_image,
        preresolved=bool(fields.get_bool("preresolved")),
        platform=platform,
        platform_features=features,
        tag_selection=_tag_selection(tags, fields.source) if tags is not None else None,
        origins=parse_origins(origins, where=fields.source) if origins is not None else (),
        where=f"{fields.source}:{fields.node.line}",
    )


def _platform(node: Map | None, source: str) -> tuple[Platform | None, tuple[str, ...]]:
    if node is None:
        return None, ()
    fields = Fields(node, source, "platformSelection")
    fields.refuse_unknown(_PLATFORM_FIELDS)
    os_name, arch = fields.get_str("os"), fields.get_str("architecture")
    if not os_name or not arch:
        # kbld compares both, so a selection without them could never match an image.
        raise fields.error("platformSelection needs os and architecture")
    platform = Platform(
        os=os_name,
        architecture=arch,
        variant=fields.get_str("variant") or None,
        os_version=fields.get_str("os.version") or None,
        os_features=fields.get_str_list("os.features"),
    )
    return platform, fields.get_str_list("features")


def _tag_selection(node: Map, source: str) -> TagSelection:
    fields = Fields(node, source, "tagSelection")
    fields.refuse_unknown({"semver"})
    semver = fields.get_map("semver")
    if semver is None:
        raise fields.error("tagSelection needs semver")
    semver_fields = Fields(semver, source, "tagSelection.semver")
    semver_fields.refuse_unknown({"constraints", "prereleases"})
    prereleases = semver_fields.get("prereleases")
    identifiers: tuple[str, ...] = ()
    if prereleases is not None:
        pre_fields = Fields(prereleases, source, "tagSelection.semver.prereleases")
        pre_fields.refuse_unknown({"identifiers"})
        identifiers = pre_fields.get_str_list("identifiers")
    return TagSelection(
        constraints=semver_fields.get_str("constraints") or "",
        prereleases=prereleases is not None,
        prerelease_identifiers=identifiers,
    )
