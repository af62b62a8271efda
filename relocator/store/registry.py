"""
A registry as a `Store`: the OCI distribution API over `relocator.transport`.

Manifests and presence checks are here; blob reads are resumed in
`relocator.store.download`, uploads go through `relocator.store.upload`, and the paged
listings (tags, referrers) are in `relocator.store.listings`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from urllib.parse import quote

import anyio

from relocator.errors import (
    AuthError,
    DigestNotKept,
    InvalidDigest,
    InvalidReference,
    NotFound,
    RegistryError,
)
from relocator.oci import (
    MAX_MANIFEST_BYTES,
    Descriptor,
    Digest,
    Manifest,
    Reference,
    Repository,
    check_tag,
    is_repository_path,
    shown,
)
from relocator.oci import mediatypes as mt
from relocator.store.base import cosign_tags, referrers_tag
from relocator.store.download import RangeNotHonoured, span_chunks
from relocator.store.listings import (
    TAGS_PER_PAGE,
    TagListing,
    list_referrers,
    list_tags,
)
from relocator.store.ranges import Budget, RangedDownload, RangePolicy, Span
from relocator.store.upload import Uploads
from relocator.transport import Hosts, HttpClient, urls
from relocator.transport.auth import pull, push

log = logging.getLogger(__name__)


class RegistryStore:
    """
    A registry reached through the run's `HttpClient`.

    Args:
        client: The run's HTTP client (shared by every registry of the run).
        verify_uploads: Hash uploaded blobs in the client too (the registry always
            does); off by default.
        ranges: When large blobs are fetched as parallel ranges.
        range_budget: Bytes of ranges fetched ahead of their reader, at most, across
            every download of this store.
    """

    def __init__(
        self,
        client: HttpClient,
        *,
        verify_uploads: bool = False,
        ranges: RangePolicy | None = None,
        range_budget: int = 64 * 1024 * 1024,
    ) -> None:
        self.client = client
        self.ranges = ranges or RangePolicy()
        self.range_budget = Budget(range_budget)
        # Hosts that ignored or mangled a `Range`: their blobs go as one stream.
        self._unranged_hosts: set[str] = set()
        # A registry must check `PUT ?digest=` against the bytes it received and refuse
        # a mismatch (distribution spec), so hashing again here would only double the
        # CPU of a copy; sizes are always checked. `verify_uploads` hashes anyway, for
        # registries suspected of not checking.
        self.verify_uploads = verify_uploads
        self.name = "registry"
        self._uploads = Uploads(client, verify=verify_uploads)

    def host_of(self, repo: Repository) -> str:
        """The API host of `repo`'s registry (the key of its concurrency limit)."""
        return urls.api_host(repo.registry)

    @property
    def hosts(self) -> Hosts:
        """The client's per-host limits and state (see `HostBound`)."""
        return self.client.hosts

    def _url(self, repo: Repository, tail: str) -> str:
        # `Repository` checks its path when built; checked again and escaped here, where
        # it becomes a URL, so that no request path is ever other than the name it says.
        if not is_repository_path(repo.path):
            raise InvalidReference(f"invalid repository name {shown(repo.path)}")
        path = "/".join(quote(part, safe="") for part in repo.path.split("/"))
        return f"{self.client.base_url(repo.registry)}/v2/{path}/{tail}"

    def _manifest_url(self, ref: Reference) -> str:
        """`/v2/<name>/manifests/<digest or tag>`, the tag checked and escaped."""
        if ref.digest is not None:
            # A Digest is `algorithm:hex` checked when parsed: nothing to escape.
            return self._url(ref.repo, f"manifests/{ref.digest}")
        tag = check_tag(ref.identifier, where=ref.name)
        return self._url(ref.repo, f"manifests/{quote(tag, safe='')}")

    async def manifest_get(self, ref: Reference) -> Manifest:
        """Fetch a manifest; by digest, its bytes must hash to the digest."""
        url = self._manifest_url(ref)
        what = f"fetching manifest {ref}"
        # Read within the request, so that a body that breaks or crawls is retried.
        async with self.client.request(
            "GET", url, what=what, scopes=(pull(ref.repository),), headers={"Accept": mt.ACCEPT},
            read_limit=MAX_MANIFEST_BYTES,
        ) as resp:
            raw = await resp.read(MAX_MANIFEST_BYTES, what=what)
            content_type = resp.headers.get("Content-Type")
        # The Docker-Content-Digest header is deliberately ignored: registries get it wrong
        # and the bytes are what the digest names.
        return Manifest.parse(raw, content_type=content_type, digest=ref.digest, name=str(ref))

    async def manifest_exists(self, ref: Reference) -> Digest | None:
        """
        HEAD a manifest. For a digest reference presence is the answer; for a tag, the
        `Docker-Content-Digest` header (or a GET when the header is missing).
        """
        url = self._manifest_url(ref)
        what = f"checking manifest {ref}"
        try:
            async with self.client.request(
                "HEAD",
                url,
                what=what,
                scopes=(pull(ref.repository),),
                headers={"Accept": mt.ACCEPT},
                ok=(200, 404),
            ) as resp:
                if resp.status == 404:
                    return None
                header = resp.headers.get("Docker-Content-Digest")
        except AuthError as exc:
            # Some registries answer 403 to HEAD for manifests that do not exist yet
            # (JFrog RTFACT-13797); a real permission problem resurfaces on the push.
            if exc.status == 403:
                return None
            raise
        if ref.digest is not None:
            return ref.digest
        if header:
            try:
                # A claim, not a proof: callers pinning an unknown digest confirm it
                # (relocator.engine.resolve); a caller checking a tag it just pushed
                # compares it with what it pushed.
                return Digest.parse(header)
            except InvalidDigest:
                log.debug("unreadable Docker-Content-Digest for %s; reading the bytes", ref)
        try:
            return (await self.manifest_get(ref)).digest
        except NotFound:
            return None

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> Digest | None:
        """
        PUT the manifest's exact bytes under `ref`'s tag or digest; the digest the
        registry's answer names, if it names one.
        """
        url = self._manifest_url(ref)
        what = f"pushing manifest {ref.name}@{manifest.digest}"
        async with self.client.request(
            "PUT",
            url,
            what=what,
            scopes=(push(ref.repository),),
            headers={"Content-Type": manifest.media_type},
            body=manifest.raw,
            ok=(200, 201, 202),
        ) as resp:
            header = resp.headers.get("Docker-Content-Digest")
        if not header:
            return None
        if header != str(manifest.digest):
            raise DigestNotKept(
                f"{what}: registry stored it as {header[:80]}; the digest would change",
                host=urls.api_host(ref.registry),
            )
        return manifest.digest

    async def blob_exists(self, repo: Repository, desc: Descriptor) -> bool:
        """HEAD the blob."""
        url = self._url(repo, f"blobs/{desc.digest}")
        try:
            async with self.client.request(
                "HEAD",
                url,
                what=f"checking blob {desc.digest.short} in {repo}",
                scopes=(pull(repo.path),),
                ok=(200, 404),
            ) as resp:
                return resp.status == 200
        except AuthError as exc:
            if exc.status == 403:
                return False
            raise

    @asynccontextmanager
    async def blob_open(
        self, repo: Repository, desc: Descriptor
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """
        Stream a blob; a connection that breaks mid-body is resumed with `Range`. A
        large blob on a host with spare slots is fetched as parallel ranges (see
        `relocator.store.ranges`).
        """
        host = self.host_of(repo)
        url = self._url(repo, f"blobs/{desc.digest}")
        if not self.ranges.applies(desc.size) or host in self._unranged_hosts:
            # Closed here, whatever the reader did: an abandoned stream still holds its
            # connection and host slot, and its finaliser would run in another context.
            whole = span_chunks(self.client, url, repo, desc, Span(0, desc.size))
            async with aclosing(whole) as chunks:
                yield chunks
            return
        hosts = self.client.hosts
        download = RangedDownload(
            desc.size,
            lambda span: span_chunks(self.client, url, repo, desc, span),
            policy=self.ranges,
            budget=self.range_budget,
            spare=lambda: hosts.try_acquire(host),
            release=lambda token: hosts.release(host, token),
        )
        try:
            async with download.reading() as chunks:
                yield chunks
        except RangeNotHonoured:
            # The whole blob is retried (by the engine) as one stream, as is every
            # later blob of this host.
            self._unranged_hosts.add(host)
            raise
        finally:
            if download.whole:
                self._unranged_hosts.add(host)

    async def blob_put(
        self, repo: Repository, desc: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        """Upload a blob: POST then one streamed PUT (or the chunked fallback)."""
        await self._uploads.put(
            self._url(repo, "blobs/uploads/"), repo, desc, chunks, self.host_of(repo)
        )

    async def blob_mount(self, src: Repository, dst: Repository, desc: Descriptor) -> bool:
        """Ask the registry to mount `desc` from `src` into `dst`; False if it declined."""
        url = urls.with_query(
            self._url(dst, "blobs/uploads/"), mount=str(desc.digest), **{"from": src.path}
        )
        what = f"mounting blob {desc.digest.short} from {src} into {dst}"
        try:
            async with self.client.request(
                "POST",
                url,
                what=what,
                scopes=(push(dst.path), pull(src.path)),
                body=b"",
                ok=(201, 202),
            ) as resp:
                if resp.status == 201:
                    return True
                # 202: not mounted, but an upload session is open; the upload reuses it.
                self._uploads.pending[(dst, desc.digest)] = self._uploads.location(
                    url, resp.headers.get("Location"), what
                )
                return False
        except RegistryError as exc:
            # Any refusal (401, 404, but also Docker Hub's 400s, a 405 from a registry
            # without mounts, 5xx after the request's retries) costs only the mount: the
            # blob is uploaded instead (ggcr retries without mount too). Network errors
            # still propagate: the upload would meet them as well.
            log.debug("%s declined: %s", what, exc)
            return False

    async def referrers(self, repo: Repository, digest: Digest) -> list[Descriptor]:
        """
        The referrers of `digest`: the referrers API's list where the registry has the
        API, else the entries of the index tagged `sha256-<hex>` (the spec's tag scheme;
        no such tag: none).

        Raises:
            RegistryError: A malformed listing, or the registry failed.
        """
        listed = await self.referrers_api(repo, digest)
        if listed is not None:
            return listed
        ref = Reference.from_repo(repo, tag=referrers_tag(digest))
        try:
            index = await self.manifest_get(ref)
        except NotFound:
            return []
        except AuthError as exc:
            log.debug("reading %s refused, taking it as no referrers: %s", ref, exc)
            return []
        if not index.is_index:
            log.info("%s is not an index, so it lists no referrers", ref)
            return []
        return [desc for desc in index.manifests if mt.is_manifest(desc.media_type)]

    async def tags(self, repo: Repository, *, pages: int | None = None) -> TagListing:
        """
        Every tag of `repo`, in the registry's order, in at most `pages` pages (None:
        `listings.MAX_TAG_PAGES`; see `listings.list_tags`).
        """
        url = self._url(repo, f"tags/list?n={TAGS_PER_PAGE}")
        return await list_tags(self.client, url, repo, self.host_of(repo), pages=pages)

    async def referrers_api(self, repo: Repository, digest: Digest) -> list[Descriptor] | None:
        """
        What the referrers API lists for `digest`, None when the registry has no such
        API (see `listings.list_referrers`).
        """
        url = self._url(repo, f"referrers/{digest}")
        return await list_referrers(self.client, url, repo, digest, self.host_of(repo))

    async def attached_tags(self, repo: Repository, digest: Digest) -> dict[str, Digest]:
        """
        cosign's tags for `digest` that exist in `repo` (`sha256-<hex>.sig`, `.att`,
        `.sbom`), with the digest each points at, HEADs only. A tag that is missing
        (404) or refused (401/403, as imgpkg tolerates) is not there. The digests are the
        registry's claims (`manifest_exists`); copying fetches each manifest by its
        digest, which checks it.
        """
        tags = cosign_tags(digest)
        found: dict[str, Digest | None] = {}

        async def head(tag: str) -> None:
            ref = Reference.from_repo(repo, tag=tag)
            try:
                found[tag] = await self.manifest_exists(ref)
            except AuthError as exc:
                log.debug("checking %s refused, taking it as absent: %s", ref, exc)
                found[tag] = None

        async with anyio.create_task_group() as tg:
            for tag in tags:
                tg.start_soon(head, tag)
        return {tag: d for tag in tags if (d := found.get(tag)) is not None}

    async def aclose(self) -> None:
        """Nothing of its own to release: the client belongs to the run."""


