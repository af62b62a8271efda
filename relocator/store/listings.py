"""
Listings a registry pages through: a repository's tags (`tags/list`) and a manifest's
referrers (the OCI 1.1 referrers API), each page followed through `Link` headers on the
registry's own scheme and host, and bounded.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from relocator.errors import (
    AuthError,
    LimitExceeded,
    MalformedAnswer,
    ManifestError,
    RegistryError,
    UnsafeRedirect,
)
from relocator.oci import MAX_MANIFEST_BYTES, Descriptor, Digest, Manifest, Repository, is_tag
from relocator.oci import mediatypes as mt
from relocator.oci.strictjson import loads as strict_json
from relocator.transport import HttpClient, urls
from relocator.transport.auth import pull

log = logging.getLogger(__name__)

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
#: Pages of one referrers listing followed at most: each page is an index of up to
#: 4 MiB (some 20,000 descriptors), so 100 pages is far past any real image.
MAX_REFERRER_PAGES = 100
# Statuses with which a registry says it has no referrers API: distribution answers 404
# (NAME_UNKNOWN or a plain 404), others 400, 405 or 501 (OCI distribution spec 1.1).
_NO_REFERRERS_API = frozenset({400, 404, 405, 501})


@dataclass(frozen=True, slots=True, kw_only=True)
class TagListing:
    """A repository's tags as its registry listed them."""

    #: The valid tags, each once, in the registry's order.
    tags: tuple[str, ...]
    #: Names the listing gave that are not tags by the distribution grammar
    #: (`../../other/manifests/latest`, `a?b`, 129 characters): never put in a URL.
    refused: tuple[str, ...] = ()



async def list_tags(
    client: HttpClient, first: str, repo: Repository, host: str, *, pages: int | None = None
) -> TagListing:
    """
    Every tag of `repo`, in the registry's order (`GET /v2/<name>/tags/list`).

    Names that are not tags by the distribution grammar are set apart in
    `refused` (a registry, or someone in front of it, could list
    `../../victim/app/manifests/latest` to steer a request elsewhere): a caller
    uses only `tags`, and may warn about the rest.

    Pages are followed through `Link: <...>; rel="next"` while they stay on the
    registry's own scheme and host; a page seen twice, more than `pages` pages
    (`MAX_TAG_PAGES`), or a malformed answer is an error rather than a silently short
    list.

    Raises:
        NotFound: The repository does not exist.
        UnsafeRedirect: A next page on another host or scheme.
        MalformedAnswer: A malformed tag list, or pages that loop.
        LimitExceeded: More than `pages` pages, or a page over `MAX_TAG_PAGE`.
    """
    what = f"listing tags of {repo}"
    listing = _Pages(client, first, limit=pages or MAX_TAG_PAGES, what=what, host=host)
    found: dict[str, None] = {}
    while (url := listing.next()) is not None:
        async with client.request(
            "GET", url, what=what, scopes=(pull(repo.path),),
            headers={"Accept": "application/json"},
        ) as resp:
            body = await resp.read(MAX_TAG_PAGE, what=what)
            link = resp.headers.get("Link")
        found.update(dict.fromkeys(_tag_page(body, what, host)))
        listing.follow(resp.url, link)
    return TagListing(
        tags=tuple(t for t in found if is_tag(t)),
        refused=tuple(t for t in found if not is_tag(t)),
    )



async def list_referrers(
    client: HttpClient, first: str, repo: Repository, digest: Digest, host: str
) -> list[Descriptor] | None:
    """
    What `GET /v2/<name>/referrers/<digest>` lists, every page followed (through
    `Link: <...>; rel="next"` on the registry's own scheme and host); None when the
    registry has no referrers API (it answers 400, 404, 405 or 501, or refuses the
    route with 401/403 while the repository is readable).

    Raises:
        MalformedAnswer: A malformed listing, or pages that loop.
        RegistryError: A later page failed.
        LimitExceeded: More than `MAX_REFERRER_PAGES` pages.
        UnsafeRedirect: A next page on another host or scheme.
    """
    what = f"listing referrers of {repo}@{digest}"
    pages = _Pages(client, first, limit=MAX_REFERRER_PAGES, what=what, host=host)
    found: dict[Digest, Descriptor] = {}
    while (url := pages.next()) is not None:
        try:
            async with client.request(
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
            if pages.read > 1:
                raise
            log.debug("%s: %s; trying the referrers tag scheme", what, exc)
            return None
        if status != 200:
            if pages.read > 1:
                raise RegistryError(
                    f"{what}: page {pages.read} answered HTTP {status}", host=host,
                    status=status,
                )
            return None
        for desc in _referrers_page(body, content_type, what, host):
            found.setdefault(desc.digest, desc)
        pages.follow(page_url, link)
    return list(found.values())


class _Pages:
    """
    The pages of one listing: each read once, at most `limit` of them, and all on the
    first page's scheme and host.
    """

    def __init__(self, client: HttpClient, first: str, *, limit: int, what: str, host: str) -> None:
        self._client = client
        self._origin = urls.origin(first)
        self._url: str | None = first
        self._seen: set[str] = set()
        self._limit = limit
        self._what = what
        self._host = host

    @property
    def read(self) -> int:
        """Pages asked for so far."""
        return len(self._seen)

    def next(self) -> str | None:
        """
        The URL of the next page, None when the last one named none.

        Raises:
            MalformedAnswer: The next page is one already read.
            LimitExceeded: More than `limit` pages.
        """
        url = self._url
        if url is None:
            return None
        if url in self._seen:
            raise MalformedAnswer(
                f"{self._what}: the next page is one already read ({urls.redact(url)})",
                host=self._host,
            )
        if len(self._seen) == self._limit:
            raise LimitExceeded(f"{self._what}: more than {self._limit} pages")
        self._seen.add(url)
        return url

    def follow(self, page_url: str, link: str | None) -> None:
        """
        Take the next page from the `Link` header of the page read at `page_url`.

        Raises:
            UnsafeRedirect: The next page is on another host or scheme.
        """
        self._url = None
        following = _next_link(link)
        if following is None:
            return
        url = urls.follow(page_url, following, insecure_hosts=self._client.http_hosts())
        if urls.origin(url) != self._origin:
            raise UnsafeRedirect(
                f"{self._what}: the next page is on another host ({urls.redact(url)})"
            )
        self._url = url



def _referrers_page(
    body: bytes, content_type: str | None, what: str, host: str
) -> list[Descriptor]:
    """The manifests one page of a referrers listing names (an OCI index)."""
    try:
        page = Manifest.parse(body, content_type=content_type, name=what)
    except ManifestError as exc:
        raise MalformedAnswer(
            f"{what}: {host} sent a malformed referrers list ({exc})", host=host
        ) from None
    if not page.is_index:
        raise MalformedAnswer(
            f"{what}: {host} sent a {page.media_type} instead of an index", host=host
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
        raise MalformedAnswer(f"{what}: {host} sent a malformed tag list", host=host)
    tags = document["tags"]
    if tags is None:
        return []  # distribution's answer for a repository whose tags were all deleted
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise MalformedAnswer(f"{what}: {host} sent a malformed tag list", host=host)
    return tags


def _next_link(header: str | None) -> str | None:
    """The target of a `Link` header's `rel="next"` entry (RFC 8288), if any."""
    for match in _LINK.finditer(header or ""):
        rel = _REL.search(match.group("params"))
        if rel is not None and "next" in rel.group(1).lower().split():
            return match.group("target")
    return None


