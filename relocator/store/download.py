"""
Reading a blob (or one range of it) from a registry: a break mid-body is resumed with
`Range` from the byte reached, and an answer is taken only if it brings exactly the
bytes asked for.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator
from contextlib import aclosing

import anyio

from relocator.errors import IntegrityError, TransportError
from relocator.oci import Descriptor, Repository
from relocator.store.ranges import Span
from relocator.transport import HttpClient, Response
from relocator.transport.auth import pull

log = logging.getLogger(__name__)

# A download that broke is resumed with Range, each resume spending an attempt of its
# transfer (`RetryPolicy.attempts`); progress of `_RESUME_PROGRESS` bytes since the last
# break starts the count afresh.
_RESUME_PROGRESS = 1024 * 1024
# ASCII digits only: Python's \d also matches '٣', which a header must not carry.
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)", re.ASCII)


class RangeNotHonoured(IntegrityError):
    """A resumed download did not continue at the byte we asked for; start over."""


async def span_chunks(
    client: HttpClient, url: str, repo: Repository, desc: Descriptor, span: Span
) -> AsyncGenerator[bytes, None]:
    """
    The bytes of `span`; a break is resumed with `Range` from the byte reached. A
    span of the whole blob is asked for without `Range`.
    """
    what = f"fetching blob {desc.digest.short} from {repo}"
    offset = span.start
    progress_at_break = offset
    # The attempts of the transfer this download is part of (see `transport.retry`).
    attempts = client.hosts.retry.current_attempts()
    while True:
        if offset == 0 and span.end == desc.size:
            headers = {}
        elif span.end == desc.size:
            headers = {"Range": f"bytes={offset}-"}
        else:
            headers = {"Range": f"bytes={offset}-{span.end - 1}"}
        try:
            async with client.request(
                "GET", url, what=what, scopes=(pull(repo.path),), headers=headers,
                ok=(200, 206),
            ) as resp:
                if check_span_answer(resp, offset, span, desc, what):
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
                attempts.progressed()
            progress_at_break = offset
            delay = attempts.retry(exc)
            log.debug("%s broke at %d bytes, resuming in %.1fs: %s", what, offset, delay, exc)
            await anyio.sleep(delay)



def check_span_answer(
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
