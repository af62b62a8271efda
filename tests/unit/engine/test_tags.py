"""
The tags a run sets are checked while planning (`relocator.engine.tags`): each is a
valid tag, and no destination tag is wanted by two different images.
"""

from __future__ import annotations

from typing import cast

import pytest

from relocator.engine import Job, plan_images
from relocator.engine.tags import TagConflict, check_tags
from relocator.errors import InvalidReference
from relocator.oci import Digest, Reference, Repository
from relocator.store import Store

A, B = Digest.of(b"image a"), Digest.of(b"image b")
DEST = Repository("dst.example", "team/app")
OTHER = Repository("dst.example", "team/other")


def job(source: str, digest: Digest, *tags: str, destination: Repository = DEST) -> Job:
    ref = Reference.parse(source)
    return Job(source=ref.with_digest(digest), destination=destination, tags=tags)


@pytest.mark.parametrize(
    ("jobs", "shared", "conflict"),
    [
        pytest.param([job("src.example/a", A, "1.0"), job("src.example/b", B, "1.0")], True,
                     "dst.example/team/app:1.0 would be both "
                     f"src.example/a@{A} and src.example/b@{B}", id="two-images-one-tag"),
        pytest.param([job("src.example/a", A, "2.0", "1.0"), job("src.example/b", B, "1.0")],
                     True, "dst.example/team/app:1.0", id="second-tag-of-one-image"),
        pytest.param([job("src.example/a", A, "1.0"), job("src.example/b", A, "1.0")], True,
                     None, id="one-image-named-twice"),
        pytest.param([job("src.example/a", A, "1.0"),
                      job("src.example/b", B, "1.0", destination=OTHER)], True, None,
                     id="different-repositories"),
        pytest.param([job("src.example/a", A, "1.0"), job("src.example/b", B, "1.0")], False,
                     None, id="file-backed-destination"),
    ],
)
def test_one_destination_tag_is_one_image(jobs: list[Job], shared: bool, conflict: str | None) -> None:
    """
    Two different digests wanting one `repository:tag` are refused, naming it and both
    sources; the same digest twice, other repositories, or a file-backed destination
    (which records tags beside each image's own name) are fine.
    """
    if conflict is None:
        check_tags(jobs, shared_repository=shared)
        return
    with pytest.raises(TagConflict) as caught:
        check_tags(jobs, shared_repository=shared)
    assert str(caught.value).startswith(conflict)


def test_an_invalid_job_tag_is_refused_even_for_a_file_backed_destination() -> None:
    """A tag that is not a tag never reaches a store, whatever the destination."""
    bad = Job(source=Reference.parse(f"src.example/a@{A}"), destination=DEST, tags=("a?b",))

    with pytest.raises(InvalidReference, match=r"'a\?b' is not a valid tag"):
        check_tags([bad], shared_repository=False)


async def test_planning_refuses_a_tag_conflict_before_touching_any_store() -> None:
    """`plan_images` checks the tags first: neither store is asked anything."""
    untouchable = cast("Store", object())
    jobs = [job("src.example/a", A, "1.0"), job("src.example/b", B, "1.0")]

    with pytest.raises(TagConflict):
        await plan_images(jobs, source=untouchable, destination=untouchable)
