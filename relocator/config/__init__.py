"""
kbld-compatible configuration: finding image references in YAML, overrides, lock files.

Pure code apart from reading the `-f` inputs and writing lock files: no network, no
terminal. Typical use::

    inputs = load_inputs(["app.yml", "app.lock"])
    for found in inputs.found_images():        # values, where, override
        ...
    print(inputs.render({"nginx": "registry.example.com/app@sha256:..."}), end="")
    write_kbld_lock("app.lock.copied", [("nginx", "registry.example.com/app@sha256:...")],
                    search_rules=inputs.config.user_search_rules)

The `relocator mirror` config (`Mirror` documents: sources, tag rules, destinations,
per-registry limits) is read by `load_mirror_config` (`relocator.config.mirror`).

Everything the user gave that is malformed raises `relocator.errors.ConfigError` with
one line naming the file and line.
"""

from __future__ import annotations

from relocator.config.bundles import (
    BundleLock,
    bundle_images,
    bundle_locks,
    image_locations_text,
)
from relocator.config.files import atomic_write_text
from relocator.config.inputs import (
    MAX_INPUT_BYTES,
    Document,
    FoundImage,
    Inputs,
    load_inputs,
)
from relocator.config.kbld import KBLD_COMPATIBLE_VERSION, KBLD_ID_ANNOTATION, KbldConfig
from relocator.config.locks import (
    LOCK_MINIMUM_REQUIRED_VERSION,
    imgpkg_lock_text,
    kbld_lock_text,
    write_imgpkg_lock,
    write_kbld_lock,
)
from relocator.config.mirror import MirrorConfig, MirrorSource, load_mirror_config
from relocator.config.origins import (
    IMAGES_ANNOTATION,
    ORIGINS_ANNOTATION,
    Origin,
    platform_selected,
    preresolved,
    resolved,
)
from relocator.config.overrides import Override, TagSelection
from relocator.config.registrylimits import RegistryLimits
from relocator.config.search import (
    ALL_INDEXES,
    DEFAULT_SEARCH_RULE,
    KeyMatcher,
    SearchRule,
    Strategy,
    UpdateStrategy,
    ValueMatcher,
    image_repo_of,
)
from relocator.config.tagrules import TagFilter

__all__ = (
    "ALL_INDEXES",
    "DEFAULT_SEARCH_RULE",
    "IMAGES_ANNOTATION",
    "KBLD_COMPATIBLE_VERSION",
    "KBLD_ID_ANNOTATION",
    "LOCK_MINIMUM_REQUIRED_VERSION",
    "MAX_INPUT_BYTES",
    "ORIGINS_ANNOTATION",
    "BundleLock",
    "Document",
    "FoundImage",
    "Inputs",
    "KbldConfig",
    "KeyMatcher",
    "MirrorConfig",
    "MirrorSource",
    "Origin",
    "Override",
    "RegistryLimits",
    "SearchRule",
    "Strategy",
    "TagFilter",
    "TagSelection",
    "UpdateStrategy",
    "ValueMatcher",
    "atomic_write_text",
    "bundle_images",
    "bundle_locks",
    "image_locations_text",
    "image_repo_of",
    "imgpkg_lock_text",
    "kbld_lock_text",
    "load_inputs",
    "load_mirror_config",
    "platform_selected",
    "preresolved",
    "resolved",
    "write_imgpkg_lock",
    "write_kbld_lock",
)
