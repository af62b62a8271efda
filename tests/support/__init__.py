"""
The test suite's servers and images: real registries, a token server, a fault proxy,
test images and independent checks. Test infrastructure, not part of the package.

- `start_registry` / `running_registry` run the CNCF distribution registry
  (`docker-registry`) on 127.0.0.1: plain, TLS, htpasswd or bearer-token auth.
- `TokenServer` issues the bearer tokens the token variant trusts.
- `image`, `index`, `artifact`, `corpus`, ... build deterministic `Image` trees and
  `push` seeds a registry with them through `RegistryClient`, a small independent client.
- `verify_image_tree` / `verify_pushed` check a registry's content without relocator's
  own code.
- `FaultProxy` sits in front of a registry and injects faults per request (resets,
  stalls, 429/5xx, wrong bodies and headers, redirects to a "CDN" host), logging what
  both hosts received.

These helpers never import the engine, stores, transport, config or CLI (only the pure
data model in `relocator.oci` and the error hierarchy): tests use them to judge that
code, so they must not depend on it. The in-memory registry for engine tests is public,
in `relocator.testing`. The benchmarks and `scripts/demo` use these helpers from a
checkout; a wheel neither ships nor imports them.
"""

from __future__ import annotations

from tests.support.client import RegistryClient, RegistryRequestError, Response
from tests.support.dockerconfig import DockerConfigDir, credential_variables
from tests.support.images import (
    Blob,
    Image,
    ImageFactory,
    PushedImage,
    Pusher,
    artifact,
    big_image,
    corpus,
    image,
    index,
    multi_platform,
    nested_index,
    push,
    random_layer,
    with_empty_layer,
)
from tests.support.proxy import (
    PRESIGNED_QUERY,
    FaultProxy,
    Forward,
    ProxyRequest,
    Redirect,
    Reset,
    Respond,
    Rule,
)
from tests.support.registry import (
    AccessLogEntry,
    Registry,
    RegistryLog,
    RegistryNotFound,
    RegistryStartError,
    TLSFiles,
    find_registry_binary,
    running_registry,
    start_registry,
)
from tests.support.tokenserver import DEFAULT_USERS, TokenRequest, TokenServer, TokenUser
from tests.support.verify import (
    VerificationError,
    VerifiedTree,
    fetch_manifest,
    verify_image_tree,
    verify_pushed,
)

__all__ = (
    "DEFAULT_USERS",
    "PRESIGNED_QUERY",
    "AccessLogEntry",
    "Blob",
    "DockerConfigDir",
    "FaultProxy",
    "Forward",
    "Image",
    "ImageFactory",
    "ProxyRequest",
    "PushedImage",
    "Pusher",
    "Redirect",
    "Registry",
    "RegistryClient",
    "RegistryLog",
    "RegistryNotFound",
    "RegistryRequestError",
    "RegistryStartError",
    "Reset",
    "Respond",
    "Response",
    "Rule",
    "TLSFiles",
    "TokenRequest",
    "TokenServer",
    "TokenUser",
    "VerificationError",
    "VerifiedTree",
    "artifact",
    "big_image",
    "corpus",
    "credential_variables",
    "fetch_manifest",
    "find_registry_binary",
    "image",
    "index",
    "multi_platform",
    "nested_index",
    "push",
    "random_layer",
    "running_registry",
    "start_registry",
    "verify_image_tree",
    "verify_pushed",
    "with_empty_layer",
)
