"""
What a caller asks relocator to do: one frozen, typed request per job.

A request holds everything a run decides from: inputs, destination, platforms,
referrers, dry run, keep going, shard, lock files and registry settings. Defaults keep
a Python caller's request short (`RelocateRequest(files=["app.yml"],
repository="reg.example/team")`); `relocator.api.run` checks a request before it
contacts anyone, so a Python caller gets the same refusals as the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from relocator.config import MAX_INPUT_BYTES
from relocator.engine import Limits, Shard
from relocator.transport import RetryPolicy, TransportSettings

#: The tag each copied image lands under besides its digest (`image_tag`).
TagScheme = Literal["relocator", "kbld", "imgpkg"]

#: Concurrent requests (and blob transfers) per registry host, unless told otherwise.
DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """
    One credential pinned to the destination registry (imgpkg's `--registry-username`,
    `--registry-password`, `--registry-token`): never sent to a source registry.
    """

    username: str | None = None
    password: str | None = None
    token: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Registries:
    """How registries are reached: TLS, plain http, concurrency, credentials, retries."""

    #: PEM files of CAs trusted beside the system's.
    ca_cert_paths: tuple[Path, ...] = ()
    verify_certs: bool = True
    #: Hosts reached over plain http at once.
    insecure_hosts: frozenset[str] = frozenset()
    #: Every registry may fall back to plain http after https fails (kbld's boolean).
    insecure_all: bool = False
    #: Concurrent requests and blob transfers per registry host, pinned (None: each
    #: host's limit starts at the default and adapts to what the host delivers).
    concurrency: int | None = None
    #: Parallel Range requests, at most, for one large blob.
    range_streams: int = 8
    #: Hash every uploaded blob in relocator too, besides the registry's own check.
    verify_blobs: bool = False
    #: Credentials from the environment and docker's config are used unless `anonymous`;
    #: `credentials` pins one for the destination registry (which must be one repository).
    credentials: Credentials | None = None
    anonymous: bool = False
    #: Attempts of one request (imgpkg's `--registry-retry-count`); None: the default.
    retry_attempts: int | None = None
    #: Seconds a response may stall (imgpkg's `--registry-response-header-timeout`).
    stall_timeout: float | None = None
    #: How retries are paced, of requests and of whole blob transfers alike.
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: The transport settings the fields above are applied over (None: the defaults);
    #: for what no flag reaches, such as static host names or which addresses count as
    #: internal.
    transport: TransportSettings | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LockFiles:
    """The lock files a run writes after it succeeds (none for a failed or dry run)."""

    #: A kbld Config lock of the new locations.
    kbld: str | None = None
    #: An imgpkg ImagesLock.
    imgpkg: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    """How images are moved: what else is copied, what happens on failure, what is held."""

    #: Copy what is attached to each image too (signatures, SBOMs, attestations).
    include_referrers: bool = False
    #: Plan only: `Result.plan` says what would move, nothing changes.
    dry_run: bool = False
    #: Finish every other image when one fails (`Incomplete` is raised at the end).
    keep_going: bool = False
    #: Copy foreign / non-distributable layers too.
    include_nondistributable: bool = False
    #: This worker's share of the images; None: all of them.
    shard: Shard | None = None
    #: Caps on what a source may make the run hold.
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolveRequest:
    """Resolve every image the inputs name to a digest; `Result.yaml` is the rewritten YAML."""

    #: YAML or JSON files or directories; `-` reads `stdin`.
    files: Sequence[str]
    #: Resolve indexes to the image for this platform (`os/arch[/variant]`).
    platform: str | None = None
    locks: LockFiles = field(default_factory=LockFiles)
    #: Annotate each document with its images' origins (kbld.k14s.io/images).
    images_annotation: bool = True
    #: Record each image's origins in the imgpkg lock.
    origins_annotation: bool = True
    #: A CNAB relocation mapping (JSON), applied as preresolved overrides.
    image_map: str | None = None
    #: List the references found (`- image: REF`) in `Result.yaml` without resolving.
    unresolved_inspect: bool = False
    registries: Registries = field(default_factory=Registries)
    limits: Limits = field(default_factory=Limits)
    #: Bytes of one input file (or stdin) at most.
    max_input_bytes: int = MAX_INPUT_BYTES
    #: What `-` reads (None: the process's stdin).
    stdin: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RelocateRequest:
    """Copy every image the inputs name, registry to registry, to one destination."""

    files: Sequence[str]
    #: The destination repository of every image...
    repository: str | None = None
    #: ...or one per image, from `{registry}`, `{repository}` and `{name}` of its source.
    repository_template: str | None = None
    #: Also apply the tags the inputs named at the destination.
    preserve_tags: bool = False
    tag_scheme: TagScheme = "relocator"
    #: Copy only these platforms' images of an index (`os/arch[/variant]`).
    platforms: Sequence[str] = ()
    locks: LockFiles = field(default_factory=LockFiles)
    transfer: Transfer = field(default_factory=Transfer)
    registries: Registries = field(default_factory=Registries)
    max_input_bytes: int = MAX_INPUT_BYTES
    stdin: str | None = None
    #: A plan file (`PlanRequest`) made from these inputs and options: the run reads
    #: nothing from the source but blobs (`transfer.shard`, else the whole as one shard).
    plan: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanRequest:
    """Walk the sources once and write the whole plan of a `RelocateRequest` to a file."""

    files: Sequence[str]
    #: The plan file to write.
    output: str
    repository: str | None = None
    repository_template: str | None = None
    preserve_tags: bool = False
    tag_scheme: TagScheme = "relocator"
    transfer: Transfer = field(default_factory=Transfer)
    registries: Registries = field(default_factory=Registries)
    max_input_bytes: int = MAX_INPUT_BYTES
    stdin: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PkgRequest:
    """Export every image the inputs name into one tarball, each blob once."""

    files: Sequence[str]
    #: The tarball to write.
    output: str
    #: `oci` (an OCI layout that kbld and imgpkg read too) or `kbld`.
    format: Literal["oci", "kbld"] = "oci"
    #: Reuse what an interrupted run left (checked); without it such a tarball is refused.
    resume: bool = False
    transfer: Transfer = field(default_factory=Transfer)
    registries: Registries = field(default_factory=Registries)
    max_input_bytes: int = MAX_INPUT_BYTES
    stdin: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnpkgRequest:
    """Import every image of a tarball to one destination; no source registry needed."""

    #: The tarball to read.
    input: str
    #: Inputs whose references are rewritten to the new locations (may be empty).
    files: Sequence[str] = ()
    repository: str | None = None
    repository_template: str | None = None
    preserve_tags: bool = False
    tag_scheme: TagScheme = "relocator"
    locks: LockFiles = field(default_factory=LockFiles)
    transfer: Transfer = field(default_factory=Transfer)
    registries: Registries = field(default_factory=Registries)
    max_input_bytes: int = MAX_INPUT_BYTES
    stdin: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyRequest:
    """Copy one image (by tag or digest) to a repository, like `crane copy`."""

    #: `registry/repo:tag` or `registry/repo@sha256:...`.
    source: str
    #: `registry/repo:tag`, or `registry/repo` to keep the source's tag; never a digest.
    destination: str
    platforms: Sequence[str] = ()
    transfer: Transfer = field(default_factory=Transfer)
    registries: Registries = field(default_factory=Registries)


@dataclass(frozen=True, slots=True, kw_only=True)
class MirrorRequest:
    """Copy what mirror configs select to their destinations (or, `check`, compare only)."""

    #: Mirror config files (kind: Mirror), merged in order.
    configs: Sequence[str]
    #: Copy nothing: `Result.check` says what is missing or stale at the destinations.
    check: bool = False
    #: Copy every source's attachments (else each source's `includeReferrers` decides).
    transfer: Transfer = field(default_factory=Transfer)
    registries: Registries = field(default_factory=Registries)


#: Every request `relocator.api.run` takes.
Request = (
    ResolveRequest | RelocateRequest | PlanRequest | PkgRequest | UnpkgRequest | CopyRequest
    | MirrorRequest
)
