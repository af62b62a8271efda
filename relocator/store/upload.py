"""
Uploading a blob to a registry: POST, then one `PUT ?digest=` carrying the whole body
with a known Content-Length; registries that refuse a body on the PUT get the chunked
PATCH flow instead, remembered per host for the rest of the run.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass

from relocator.errors import (
    ChunkedUploadNeeded,
    DigestMismatch,
    MalformedAnswer,
    RegistryError,
    TransportError,
    UnsafeRedirect,
)
from relocator.oci import Descriptor, Digest, Repository
from relocator.store.base import VerifiedBody
from relocator.transport import HttpClient, Scope, urls
from relocator.transport.auth import push

# Statuses with which a registry says it will not take a whole body on the final PUT.
_NO_MONOLITHIC = frozenset({400, 405, 411, 413, 415, 416})


class Uploads:
    """
    The blob uploads of one registry store.

    Args:
        client: The run's HTTP client.
        verify: Hash uploaded blobs in the client too (sizes are always checked).
    """

    def __init__(self, client: HttpClient, *, verify: bool) -> None:
        self.client = client
        self.verify = verify
        self._chunked_hosts: set[str] = set()
        #: Upload sessions a declined mount opened, reused by the next `put` (saves a POST).
        self.pending: dict[tuple[Repository, Digest], str] = {}

    async def put(
        self,
        start: str,
        repo: Repository,
        desc: Descriptor,
        chunks: AsyncIterable[bytes],
        host: str,
    ) -> None:
        """Upload a blob to `repo` (its upload URL `start`, on `host`)."""
        what = f"uploading blob {desc.digest.short} to {repo}"
        scopes = (push(repo.path),)
        body = VerifiedBody(desc, chunks, hashing=self.verify)
        payload: bytes | VerifiedBody = body
        if desc.size == 0:
            # Nothing to stream; still run the (empty) source through the verifier so a
            # source that sends bytes for a zero-size blob is caught.
            async for _ in body:
                pass
            payload = b""
        location = self.pending.pop((repo, desc.digest), None)
        try:
            if location is None:
                location = await self._start_upload(start, scopes, what)
            upload = _Upload(location=location, desc=desc, body=payload, scopes=scopes, what=what)
            if host in self._chunked_hosts:
                await self._put_chunked(upload)
            else:
                await self._put_monolithic(upload, host)
        except (TransportError, RegistryError):
            body.reraise()
            raise
        finally:
            await body.aclose()
        body.reraise()

    async def _start_upload(self, url: str, scopes: tuple[Scope, ...], what: str) -> str:
        async with self.client.request(
            "POST", url, what=what, scopes=scopes, body=b"", ok=(202,)
        ) as resp:
            return self.location(url, resp.headers.get("Location"), what)

    def location(self, url: str, location: str | None, what: str) -> str:
        """Resolve an upload `Location`; it must stay on the registry's own host."""
        if not location:
            raise MalformedAnswer(f"{what}: no upload Location", host=urls.host_of(url))
        target = urls.follow(url, location, insecure_hosts=self.client.http_hosts())
        if urls.origin(target) != urls.origin(url):
            raise UnsafeRedirect(
                f"{what}: registry handed an upload location on another host "
                f"({urls.redact(target)})"
            )
        return target

    async def _put_monolithic(self, upload: _Upload, host: str) -> None:
        desc, body, what = upload.desc, upload.body, upload.what
        url = urls.with_query(upload.location, digest=str(desc.digest))
        try:
            async with self.client.request(
                "PUT",
                url,
                what=what,
                scopes=upload.scopes,
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
                raise ChunkedUploadNeeded(
                    f"{what}: registry refused a single-request upload, retrying in chunks",
                    host=host,
                    status=exc.status,
                ) from exc
            raise

    async def _put_chunked(self, upload: _Upload) -> None:
        # One streamed PATCH of the whole blob (no Content-Range: a stream), then the PUT.
        location, what = upload.location, upload.what
        async with self.client.request(
            "PATCH",
            location,
            what=what,
            scopes=upload.scopes,
            headers={"Content-Type": "application/octet-stream"},
            body=upload.body,
            ok=(202, 204),
        ) as resp:
            location = self.location(location, resp.headers.get("Location") or location, what)
        async with self.client.request(
            "PUT",
            urls.with_query(location, digest=str(upload.desc.digest)),
            what=what,
            scopes=upload.scopes,
            body=b"",
            ok=(201, 204),
        ):
            pass


@dataclass(frozen=True, slots=True, kw_only=True)
class _Upload:
    """One blob's upload in the session at `location`."""

    location: str
    desc: Descriptor
    #: The verified stream, or the empty bytes of an empty blob.
    body: bytes | VerifiedBody
    scopes: tuple[Scope, ...]
    what: str
