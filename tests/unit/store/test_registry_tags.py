"""
Listing a repository's tags (`RegistryStore.tags`): pages followed through `Link`, but
only on the registry's own host, never in a loop, never without end.

distribution 2.8.2 sends every tag in one page, so pagination is exercised against
small local HTTP servers that answer from a table.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from relocator.errors import (
    InvalidReference,
    LimitExceeded,
    NotFound,
    RegistryError,
    UnsafeRedirect,
)
from relocator.oci import Descriptor, Digest, Reference, Repository
from relocator.store import RegistryStore
from relocator.store import listings as listings_module
from relocator.store.listings import TagListing
from relocator.transport import HttpClient, Keychain, TransportSettings

TAGS = "/v2/team/app/tags/list"
_T = TypeVar("_T")


@dataclass(slots=True)
class Pages:
    """A server answering `GET path?query` from a table; every request is recorded."""

    server: TestServer
    #: "path?query" -> (status, body, headers)
    table: dict[str, tuple[int, bytes, dict[str, str]]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def page(
        self, target: str, body: object, *, status: int = 200, link: str | None = None
    ) -> None:
        """Answer `target` with `body` (JSON unless bytes) and an optional Link header."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers: Mapping[str, str] = {"Link": link} if link else {}
        self.table[target] = (status, raw, dict(headers))

    async def _handle(self, request: web.Request) -> web.Response:
        target = request.path_qs
        self.seen.append(target)
        status, body, headers = self.table.get(target, (404, b"", {}))
        return web.Response(status=status, body=body, headers=headers)


@asynccontextmanager
async def pages() -> AsyncIterator[Pages]:
    app = web.Application()
    server = Pages(TestServer(app, host="127.0.0.1"))
    app.router.add_route("GET", "/{tail:.*}", server._handle)
    await server.server.start_server()
    try:
        yield server
    finally:
        await server.server.close()


async def listing(*servers: Pages) -> TagListing:
    """`tags()` of team/app on the first server (every server reached over http)."""
    settings = TransportSettings(insecure_hosts=frozenset(s.host for s in servers))
    async with HttpClient(settings, Keychain()) as client:
        return await RegistryStore(client).tags(Repository(servers[0].host, "team/app"))


async def list_tags(*servers: Pages) -> list[str]:
    """The valid tags `tags()` gives for team/app on the first server."""
    return list((await listing(*servers)).tags)


async def test_pages_are_followed_through_link_headers() -> None:
    """
    The first page asks for 1000 tags; `Link: <...>; rel="next"` (relative or absolute
    on the same host) leads to the next page; a tag listed twice is kept once.
    """
    async with pages() as server:
        server.page(f"{TAGS}?n=1000", {"tags": ["b", "a"]},
                    link=f'<{TAGS}?last=a&n=1000>; rel="next"')
        server.page(f"{TAGS}?last=a&n=1000", {"tags": ["c", "a"]},
                    link=f'<http://{server.host}{TAGS}?last=c&n=1000>; rel=next')
        server.page(f"{TAGS}?last=c&n=1000", {"name": "team/app", "tags": ["d"]})

        actual = await list_tags(server)

    assert ["b", "a", "c", "d"] == actual
    assert [f"{TAGS}?n=1000", f"{TAGS}?last=a&n=1000", f"{TAGS}?last=c&n=1000"] == server.seen


async def test_a_repository_without_tags_has_an_empty_list() -> None:
    """distribution answers `"tags": null` once every tag was deleted."""
    async with pages() as server:
        server.page(f"{TAGS}?n=1000", {"name": "team/app", "tags": None})

        assert [] == await list_tags(server)


async def test_a_missing_repository_is_not_found() -> None:
    """A 404 (NAME_UNKNOWN) is `NotFound`, naming what was being done."""
    async with pages() as server:
        server.page(f"{TAGS}?n=1000", {"errors": [{"code": "NAME_UNKNOWN"}]}, status=404)
        host = server.host

        with pytest.raises(NotFound) as caught:
            await list_tags(server)

    assert f"listing tags of {host}/team/app: {host} answered HTTP 404 NAME_UNKNOWN" == str(
        caught.value
    )


async def test_a_next_page_on_another_host_is_refused() -> None:
    """A `Link` to another host is not followed (nor silently dropped): it is an error."""
    async with pages() as server, pages() as elsewhere:
        server.page(f"{TAGS}?n=1000", {"tags": ["a"]},
                    link=f'<http://{elsewhere.host}{TAGS}?last=a>; rel="next"')
        elsewhere.page(f"{TAGS}?last=a", {"tags": ["evil"]})

        with pytest.raises(UnsafeRedirect) as caught:
            await list_tags(server, elsewhere)

    assert [] == elsewhere.seen
    assert "the next page is on another host" in str(caught.value)


async def test_pages_that_loop_are_an_error() -> None:
    """A next page that was already read ends the listing with an error."""
    async with pages() as server:
        server.page(f"{TAGS}?n=1000", {"tags": ["a"]}, link=f'<{TAGS}?last=a>; rel="next"')
        server.page(f"{TAGS}?last=a", {"tags": ["b"]}, link=f'<{TAGS}?n=1000>; rel="next"')

        with pytest.raises(RegistryError) as caught:
            await list_tags(server)

    assert "the next page is one already read" in str(caught.value)


async def test_the_number_of_pages_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry whose pages never end stops us at `MAX_TAG_PAGES`."""
    monkeypatch.setattr(listings_module, "MAX_TAG_PAGES", 3)
    async with pages() as server:
        for i in range(5):
            first = f"{TAGS}?n=1000" if i == 0 else f"{TAGS}?last={i}"
            server.page(first, {"tags": [str(i)]}, link=f'<{TAGS}?last={i + 1}>; rel="next"')

        with pytest.raises(LimitExceeded) as caught:
            await list_tags(server)

    assert 3 == len(server.seen)
    assert str(caught.value).endswith(": more than 3 pages")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'{"tags": ["a"], "tags": ["b"]}', id="duplicate-key"),
        pytest.param({"name": "team/app"}, id="no-tags-key"),
        pytest.param({"tags": "a"}, id="tags-not-a-list"),
        pytest.param({"tags": ["a", 1]}, id="tag-not-a-string"),
        pytest.param([], id="not-an-object"),
    ],
)
async def test_malformed_tag_lists_are_an_error(body: object) -> None:
    """An answer that is not a tag list is a `RegistryError`, never a short list."""
    async with pages() as server:
        server.page(f"{TAGS}?n=1000", body)
        host = server.host

        with pytest.raises(RegistryError) as caught:
            await list_tags(server)

    assert f"listing tags of {host}/team/app: {host} sent a malformed tag list" == str(
        caught.value
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param('</a>; rel="next"', "/a", id="quoted"),
        pytest.param("</a>; rel=next", "/a", id="bare"),
        pytest.param('</p>; rel="prev", </n>; rel="next"', "/n", id="second-entry"),
        pytest.param('</n>; rel="next last"', "/n", id="several-relations"),
        pytest.param('</n>; title="a"; REL="Next"', "/n", id="other-params-and-case"),
        pytest.param('</p>; rel="prev"', None, id="no-next"),
        pytest.param("", None, id="empty"),
    ],
)
def test_link_headers(header: str, expected: str | None) -> None:
    """The `rel="next"` target of a Link header (RFC 8288), if there is one."""
    assert expected == listings_module._next_link(header)


HOSTILE_TAGS = [
    "../../../victim/app/manifests/latest",
    "a?b",
    "a#b",
    "a%2Fb",
    "a/b",
    "t" * 129,
    "",
    ".hidden",
    "-dash",
    "caf\u00e9",
    "line\nbreak",
]


async def test_listed_names_that_are_not_tags_are_set_apart() -> None:
    """
    Names a listing gives that are not tags by the distribution grammar (path
    traversal, `?`, `#`, escapes, 129 characters...) are refused, never mixed with the
    valid tags; the valid ones keep their order.
    """
    async with pages() as server:
        server.page(f"{TAGS}?n=1000", {"tags": ["1.0", *HOSTILE_TAGS, "t" * 128, "_x"]})

        actual = await listing(server)

    assert TagListing(tags=("1.0", "t" * 128, "_x"), refused=tuple(HOSTILE_TAGS)) == actual


def _unchecked(cls: type[_T], **fields: object) -> _T:
    """A reference or repository built around its constructor's checks (as a bug might)."""
    value = object.__new__(cls)
    for name, field_value in fields.items():
        object.__setattr__(value, name, field_value)
    return value


@pytest.mark.parametrize("tag", ["../../../victim/app/manifests/latest", "a?b", "c#d"])
async def test_the_store_never_builds_a_url_from_an_invalid_tag(tag: str) -> None:
    """
    The registry store checks a tag again where it becomes a URL: even a reference that
    escaped its constructor's checks sends no request.
    """
    async with pages() as server:
        settings = TransportSettings(insecure_hosts=frozenset({server.host}))
        async with HttpClient(settings, Keychain()) as client:
            store = RegistryStore(client)
            ref = _unchecked(Reference, registry=server.host, repository="team/app", tag=tag,
                             digest=None)
            with pytest.raises(InvalidReference):
                await store.manifest_exists(ref)
            with pytest.raises(InvalidReference):
                await store.manifest_get(ref)

    assert [] == server.seen


@pytest.mark.parametrize("path", ["team/../victim", "team/a?b", "team/%2e%2e"])
async def test_the_store_never_builds_a_url_from_an_invalid_repository_name(path: str) -> None:
    """The same for a repository name: no request for an unchecked, invalid one."""
    async with pages() as server:
        settings = TransportSettings(insecure_hosts=frozenset({server.host}))
        async with HttpClient(settings, Keychain()) as client:
            store = RegistryStore(client)
            repo = _unchecked(Repository, registry=server.host, path=path)
            with pytest.raises(InvalidReference):
                await store.tags(repo)
            with pytest.raises(InvalidReference):
                await store.blob_exists(repo, Descriptor(
                    media_type="application/octet-stream", digest=Digest.of(b"x"), size=1))

    assert [] == server.seen
