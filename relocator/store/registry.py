"""
A registry as a `Store`: the OCI distribution API over `relocator.transport`.

Uploads take two round trips (POST, then one `PUT ?digest=` carrying the whole body
with a known Content-Length); registries that refuse a body on the PUT get the chunked
PATCH flow instead, remembered per host for the rest of the run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote

import anyio

from relocator.errors import (
    AuthError,
    DigestMismatch,
    IntegrityError,
    InvalidDigest,
    InvalidReference,
    LimitExceeded,
    ManifestError,
    NotFound,
    RegistryError,
    TransportError,
    UnsafeRedirect,
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
    is_tag,
    shown,
)
from relocator.oci import mediatypes as mt
from relocator.oci.strictjson import loads as strict_json
from relocator.store.base import VerifiedBody, cosign_tags, referrers_tag
from relocator.store.ranges import Budget, RangedDownload, RangePolicy, Span
from relocator.transport import HttpClient, Response, Scope, urls
from relocator.transport.auth import pull, push

log = logging.getLogger(__name__)

# A download that broke is resumed with Range this many times in a row without progress;
# progress of `_RESUME_PROGRESS` bytes since the last break resets the count.
_MAX_RESUMES = 5
_RESUME_PROGRESS = 1024 * 1024
# ASCII digits only: Python's \d also matches '٣', which a header must not carry.
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)", re.ASCII)
#: Tags asked for per page of `tags/list`: distribution's largest page by default.
TAGS_PER_PAGE = 1000
#: Pages of tags followed at most: a million tags at 1000 a page, far past any real
#: repository, so a registry whose `Link` never ends cannot keep us listing forever.
MAX_TAG_PAGES = 1000
#: Bytes of one page of tags at most: 1000 tags of 128 characters are 130 KiB, but some
#: registries ignore `n` and send every tag, with metadata per digest (GCR), at once.
MAX_TAG_PAGE = 32 * 1024 * 1024
# One entry of a Link header: <target> and its parameters, up to the next entry.
_LINK = re.compile(r"<(?P<target>[^>]*)>(?P<params>[^<]*)")
_REL = re.compile(r'(?:^|;)\s*rel\s*=\s*"?([^";,]*)', re.IGNORECASE)
# Statuses with which a registry says it will not take a whole body on the final PUT.
_NO_MONOLITHIC = frozenset({400, 405, 411, 413, 415, 416})
#: Pages of one referrers listing followed at most: each page is an index of up to
#: 4 MiB (some 20,000 descriptors), so 100 pages is far past any real image.
MAX_REFERRER_PAGES = 100
# Statuses with which a registry says it has no referrers API: distribution answers 404
# (NAME_UNKNOWN or a plain 404), others 400, 405 or 501 (OCI distribution spec 1.1).
_NO_REFERRERS_API = frozenset({400, 404, 405, 501})


class RangeNotHonoured(IntegrityError):
    """A resumed download did not continue at the byte we asked for; start over."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TagListing:
    """A repository's tags as its registry listed them."""

    #: The valid tags, each once, in the registry's order.
    tags: tuple[str, ...]
    #: Names the listing gave that are not tags by the distribution grammar
    #: (`../../other/manifests/latest`, `a?b`, 129 characters): never put in a URL.
    refused: tuple[str, ...] = ()


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
        self._chunked_hosts: set[str] = set()
        # Upload sessions a declined mount opened, reused by the next blob_put (saves a POST).
        self._pending_uploads: dict[tuple[Repository, Digest], str] = {}

    def host_of(self, repo: Repository) -> str:
        """The API host of `repo`'s registry (the key of its concurrency limit)."""
        return urls.api_host(repo.registry)

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

    async def manifest_put(self, ref: Reference, manifest: Manifest) -> None:
        """PUT the manifest's exact bytes under `ref`'s tag or digest."""
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
        if header and header != str(manifest.digest):
            raise RegistryError(
                f"{what}: registry stored it as {header[:80]}; the digest would change",
                host=urls.api_host(ref.registry),
                status=0,
            )

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
        if not self.ranges.applies(desc.size) or host in self._unranged_hosts:
            # Closed here, whatever the reader did: an abandoned stream still holds its
            # connection and host slot, and its finaliser would run in another context.
            async with aclosing(self._span_chunks(repo, desc, Span(0, desc.size))) as chunks:
                yield chunks
            return
        limiter = self.client.hosts[host].limiter
        download = RangedDownload(
            desc.size,
            lambda span: self._span_chunks(repo, desc, span),
            policy=self.ranges,
            budget=self.range_budget,
            spare=limiter.try_acquire,
            release=limiter.release,
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

    async def _span_chunks(
        self, repo: Repository, desc: Descriptor, span: Span
    ) -> AsyncGenerator[bytes, None]:
        """
        The bytes of `span`; a break is resumed with `Range` from the byte reached. A
        span of the whole blob is asked for without `Range`.
        """
        url = self._url(repo, f"blobs/{desc.digest}")
        what = f"fetching blob {desc.digest.short} from {repo}"
        offset = span.start
        breaks = 0
        progress_at_break = offset
        while True:
            if offset == 0 and span.end == desc.size:
                headers = {}
            elif span.end == desc.size:
                headers = {"Range": f"bytes={offset}-"}
            else:
                headers = {"Range": f"bytes={offset}-{span.end - 1}"}
            try:
                async with self.client.request(
                    "GET", url, what=what, scopes=(pull(repo.path),), headers=headers,
                    ok=(200, 206),
                ) as resp:
                    if _check_span_answer(resp, offset, span, desc, what):
                        span.end = desc.size
                    async with aclosing(resp.chunks()) as body:
                        async for chunk in body:
                            offset += len(chunk)
                            yield chunk
                return
            except TransportError as exc:
                if not exc.temporary or offset >= span.end:
                    raise
                if offset - progress_at_break >= _RESUME_PROGRESS:
                    breaks = 0
                breaks += 1
                progress_at_break = offset
                if breaks > _MAX_RESUMES:
                    raise
                log.debug("%s broke at %d bytes, resuming: %s", what, offset, exc)

    async def blob_put(
        self, repo: Repository, desc: Descriptor, chunks: AsyncIterable[bytes]
    ) -> None:
        """Upload a blob: POST then one streamed PUT (or the chunked fallback)."""
        host = self.host_of(repo)
        what = f"uploading blob {desc.digest.short} to {repo}"
        scopes = (push(repo.path),)
        body = VerifiedBody(desc, chunks, hashing=self.verify_uploads)
        payload: bytes | VerifiedBody = body
        if desc.size == 0:
            # Nothing to stream; still run the (empty) source through the verifier so a
            # source that sends bytes for a zero-size blob is caught.
            async for _ in body:
                pass
            payload = b""
        location = self._pending_uploads.pop((repo, desc.digest), None)
        try:
            if location is None:
                location = await self._start_upload(repo, scopes, what)
            if host in self._chunked_hosts:
                await self._put_chunked(location, desc, payload, scopes, what)
            else:
                await self._put_monolithic(location, desc, payload, scopes, what, host)
        except (TransportError, RegistryError):
            body.reraise()
            raise
        finally:
            await body.aclose()
        body.reraise()

    async def _start_upload(self, repo: Repository, scopes: tuple[Scope, ...], what: str) -> str:
        url = self._url(repo, "blobs/uploads/")
        async with self.client.request(
            "POST", url, what=what, scopes=scopes, body=b"", ok=(202,)
        ) as resp:
            return self._location(url, resp.headers.get("Location"), what)

    def _location(self, url: str, location: str | None, what: str) -> str:
        """Resolve an upload `Location`; it must stay on the registry's own host."""
        if not location:
            raise RegistryError(f"{what}: no upload Location", host=urls.host_of(url), status=0)
        target = urls.follow(url, location, insecure_hosts=self.client.http_hosts())
        if urls.origin(target) != urls.origin(url):
            raise UnsafeRedirect(
                f"{what}: registry handed an upload location on another host "
                f"({urls.redact(target)})"
            )
        return target

    async def _put_monolithic(
        self,
        location: str,
        desc: Descriptor,
        body: bytes | VerifiedBody,
        scopes: tuple[Scope, ...],
        what: str,
        host: str,
    ) -> None:
        url = urls.with_query(location, digest=str(desc.digest))
        try:
            async with self.client.request(
                "PUT",
                url,
                what=what,
                scopes=scopes,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(desc.size),
                },
                body=body,
                ok=(201, 204),
            ):
                pass
        except RegistryError as exc:
            if "DIGEST_INVALID" in exc.codes:
                # The registry got other bytes than the digest names (damaged on the
                # way, or a lying source): an integrity failure, retried from a fresh
                # source, not a reason to change the upload style.
                raise DigestMismatch(f"{what}: registry found the bytes do not match") from exc
            if exc.status in _NO_MONOLITHIC and not (
                isinstance(body, VerifiedBody) and body.error is not None
            ):
                # Next attempt (the engine retries from a fresh source) uses PATCH.
                self._chunked_hosts.add(host)
                raise RegistryError(
                    f"{what}: registry refused a single-request upload, retrying in chunks",
                    host=host,
                    status=503,
                ) from exc
            raise

    async def _put_chunked(
        self,
        location: str,
        desc: Descriptor,
        body: bytes | VerifiedBody,
        scopes: tuple[Scope, ...],
        what: str,
    ) -> None:
        # One streamed PATCH of the whole blob (no Content-Range: a stream), then the PUT.
        async with self.client.request(
            "PATCH",
            location,
            what=what,
            scopes=scopes,
            headers={"Content-Type": "application/octet-stream"},
            body=body,
            ok=(202, 204),
        ) as resp:
            location = self._location(location, resp.headers.get("Location") or location, what)
        async with self.client.request(
            "PUT",
            urls.with_query(location, digest=str(desc.digest)),
            what=what,
            scopes=scopes,
            body=b"",
            ok=(201, 204),
        ):
            pass

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
                self._pending_uploads[(dst, desc.digest)] = self._location(
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

    async def tags(self, repo: Repository) -> TagListing:
        """
        Every tag of `repo`, in the registry's order (`GET /v2/<name>/tags/list`).

        Names that are not tags by the distribution grammar are set apart in
        `refused` (a registry, or someone in front of it, could list
        `../../victim/app/manifests/latest` to steer a request elsewhere): a caller
        uses only `tags`, and may warn about the rest.

        Pages are followed through `Link: <...>; rel="next"` while they stay on the
        registry's own scheme and host; a page seen twice, more than `MAX_TAG_PAGES`
        pages, or a malformed answer is an error rather than a silently short list.

        Raises:
            NotFound: The repository does not exist.
            UnsafeRedirect: A next page on another host or scheme.
            RegistryError: A malformed tag list, or pages that loop.
            LimitExceeded: More than `MAX_TAG_PAGES` pages, or a page over `MAX_TAG_PAGE`.
        """
        url: str | None = self._url(repo, f"tags/list?n={TAGS_PER_PAGE}")
        origin = urls.origin(url or "")
        what = f"listing tags of {repo}"
        seen: set[str] = set()
        found: dict[str, None] = {}
        while url is not None:
            if url in seen:
                raise RegistryError(
                    f"{what}: the next page is one already read ({urls.redact(url)})",
                    host=self.host_of(repo), status=0,
                )
            if len(seen) == MAX_TAG_PAGES:
                raise LimitExceeded(f"{what}: more than {MAX_TAG_PAGES} pages")
            seen.add(url)
            async with self.client.request(
                "GET", url, what=what, scopes=(pull(repo.path),),
                headers={"Accept": "application/json"},
            ) as resp:
                body = await resp.read(MAX_TAG_PAGE, what=what)
                link = resp.headers.get("Link")
            found.update(dict.fromkeys(_tag_page(body, what, self.host_of(repo))))
            url = None
            following = _next_link(link)
            if following is not None:
                url = urls.follow(
                    resp.url, following, insecure_hosts=self.client.http_hosts()
                )
                if urls.origin(url) != origin:
                    raise UnsafeRedirect(
                        f"{what}: the next page is on another host ({urls.redact(url)})"
                    )
        return TagListing(
            tags=tuple(t for t in found if is_tag(t)),
            refused=tuple(t for t in found if not is_tag(t)),
        )

    async def referrers_api(self, repo: Repository, digest: Digest) -> list[Descriptor] | None:
        """
        What `GET /v2/<name>/referrers/<digest>` lists, every page followed (through
        `Link: <...>; rel="next"` on the registry's own scheme and host); None when the
        registry has no referrers API (it answers 400, 404, 405 or 501, or refuses the
        route with 401/403 while the repository is readable).

        Raises:
            RegistryError: A malformed listing, or pages that loop.
            LimitExceeded: More than `MAX_REFERRER_PAGES` pages.
            UnsafeRedirect: A next page on another host or scheme.
        """
        url: str | None = self._url(repo, f"referrers/{digest}")
        origin = urls.origin(url or "")
        host = self.host_of(repo)
        what = f"listing referrers of {repo}@{digest}"
        seen: list[str] = []
        found: dict[Digest, Descriptor] = {}
        while url is not None:
            if url in seen:
                raise RegistryError(
                    f"{what}: the next page is one already read ({urls.redact(url)})",
                    host=host, status=0,
                )
            if len(seen) == MAX_REFERRER_PAGES:
                raise LimitExceeded(f"{what}: more than {MAX_REFERRER_PAGES} pages")
            seen.append(url)
            try:
                async with self.client.request(
                    "GET", url, what=what, scopes=(pull(repo.path),),
                    headers={"Accept": mt.OCI_INDEX}, ok=(200, *_NO_REFERRERS_API),
                ) as resp:
                    status = resp.status
                    body = await resp.read(MAX_MANIFEST_BYTES, what=what) if status == 200 else b""
                    content_type = resp.headers.get("Content-Type")
                    link = resp.headers.get("Link")
                    page_url = resp.url
            except AuthError as exc:
                # Some registries guard unknown routes with auth: for the first page that
                # means "no API here" (the tag scheme is tried next and meets the same
                # permissions); past it, a real refusal.
                if len(seen) > 1:
                    raise
                log.debug("%s: %s; trying the referrers tag scheme", what, exc)
                return None
            if status != 200:
                if len(seen) > 1:
                    raise RegistryError(
                        f"{what}: page {len(seen)} answered HTTP {status}", host=host,
                        status=status,
                    )
                return None
            for desc in _referrers_page(body, content_type, what, host):
                found.setdefault(desc.digest, desc)
            url = None
            following = _next_link(link)
            if following is not None:
                url = urls.follow(
                    page_url, following, insecure_hosts=self.client.http_hosts()
                )
                if urls.origin(url) != origin:
                    raise UnsafeRedirect(
                        f"{what}: the next page is on another host ({urls.redact(url)})"
                    )
        return list(found.values())

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


def _referrers_page(
    body: bytes, content_type: str | None, what: str, host: str
) -> list[Descriptor]:
    """The manifests one page of a referrers listing names (an OCI index)."""
    try:
        page = Manifest.parse(body, content_type=content_type, name=what)
    except ManifestError as exc:
        raise RegistryError(
            f"{what}: {host} sent a malformed referrers list ({exc})", host=host, status=0
        ) from None
    if not page.is_index:
        raise RegistryError(
            f"{what}: {host} sent a {page.media_type} instead of an index", host=host, status=0
        )
    listed = []
    for desc in page.manifests:
        if mt.is_manifest(desc.media_type):
            listed.append(desc)
        else:
            log.debug("%s: skipping %s of type %s", what, desc.digest, desc.media_type)
    return listed


def _tag_page(body: bytes, what: str, host: str) -> list[str]:
    """The tags of one page of `tags/list`: `{"name": ..., "tags": [...]}`."""
    try:
        document = strict_json(body)
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict) or "tags" not in document:
        raise RegistryError(f"{what}: {host} sent a malformed tag list", host=host, status=0)
    tags = document["tags"]
    if tags is None:
        return []  # distribution's answer for a repository whose tags were all deleted
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RegistryError(f"{what}: {host} sent a malformed tag list", host=host, status=0)
    return tags


def _next_link(header: str | None) -> str | None:
    """The target of a `Link` header's `rel="next"` entry (RFC 8288), if any."""
    for match in _LINK.finditer(header or ""):
        rel = _REL.search(match.group("params"))
        if rel is not None and "next" in rel.group(1).lower().split():
            return match.group("target")
    return None


def _check_span_answer(
    resp: Response, offset: int, span: Span, desc: Descriptor, what: str
) -> bool:
    """
    Accept an answer only if it brings exactly the bytes asked for: from `offset` (where the
    last one broke) to the end of `span`. True if a request for a range starting at
    byte 0 was answered with the whole blob (the server ignores `Range`).
    """
    status, headers = resp.status, resp.headers
    if offset == 0 and status == 200:
        length = headers.get("Content-Length")
        if length is not None and length.isascii() and length.isdigit() and int(length) != desc.size:
            raise IntegrityError(f"{what}: registry announced {length} bytes, expected {desc.size}")
        return span.end != desc.size
    # Exactly one Content-Range: with two, which one did the bytes follow? (c/image
    # `parseContentRange` refuses them too.)
    ranges = headers.getall("Content-Range", [])
    match = _CONTENT_RANGE.fullmatch(ranges[0]) if len(ranges) == 1 else None
    if (
        status != 206
        or match is None
        or int(match.group(1)) != offset
        or int(match.group(2)) != span.end - 1
        or match.group(3) not in ("*", str(desc.size))
    ):
        asked = (
            f"resuming at byte {offset}"
            if span.end == desc.size
            else f"asking for bytes {offset}-{span.end - 1}"
        )
        raise RangeNotHonoured(f"{what}: {asked} was not honoured")
    return False
