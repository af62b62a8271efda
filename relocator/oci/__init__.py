"""
The OCI data model: references, digests, media types, descriptors and manifests.

Pure code: nothing here does I/O, so everything here is cheap to test and safe to call
from any layer.
"""

from __future__ import annotations

from relocator.oci import mediatypes
from relocator.oci.descriptor import Descriptor, Platform
from relocator.oci.digest import Digest, Verifier
from relocator.oci.manifest import MAX_MANIFEST_BYTES, Manifest
from relocator.oci.reference import (
    DOCKER_HUB,
    MAX_TAG_LENGTH,
    TEMPLATE_FIELDS,
    Reference,
    Repository,
    check_tag,
    expand_template,
    is_repository_path,
    is_tag,
    shown,
)

__all__ = (
    "DOCKER_HUB",
    "MAX_MANIFEST_BYTES",
    "MAX_TAG_LENGTH",
    "TEMPLATE_FIELDS",
    "Descriptor",
    "Digest",
    "Manifest",
    "Platform",
    "Reference",
    "Repository",
    "Verifier",
    "check_tag",
    "expand_template",
    "is_repository_path",
    "is_tag",
    "mediatypes",
    "shown",
)
