"""Finding imgpkg bundles among images: what is read, and the caps on what bundles hold."""

from __future__ import annotations

import pytest

from relocator.config import bundle_images
from relocator.engine.bundles import MAX_CONFIG_BYTES, MAX_NESTING, find_bundles
from relocator.errors import LimitExceeded
from relocator.testing.memory import MemoryStore
from tests.bundle_support import bundle, images_lock, tar_layer
from tests.support.images import image


def _bundle_of(images: list[str]) -> bytes:
    return tar_layer([(".imgpkg/images.yml", images_lock(images))])


async def test_only_images_shaped_as_bundles_have_their_config_read() -> None:
    """A two-layer image and an index are copied with no extra read; a bundle is read."""
    store = MemoryStore()
    app = store.add("app", image("app"))
    outer = store.add("bundle", bundle(_bundle_of([str(app)])))

    found = await find_bundles(store, [app, outer], bundle_images)

    assert [outer.digest] == list(found.bundles)
    assert {"bundle"} == {op.repository for op in store.operations("blob_open")}


async def test_a_config_over_the_cap_is_refused_unread() -> None:
    """A bundle-shaped image whose config is larger than the cap is refused, not read."""
    store = MemoryStore()
    big = store.add("big", bundle(_bundle_of([]), padding=MAX_CONFIG_BYTES))

    with pytest.raises(LimitExceeded, match="config is"):
        await find_bundles(store, [big], bundle_images)
    assert [] == store.operations("blob_open")


async def test_bundles_nested_deeper_than_the_cap_are_refused() -> None:
    """A chain of bundles one deeper than the cap ends in one error, not a long walk."""
    store = MemoryStore()
    inner = store.add("b0", bundle(_bundle_of([])))
    for depth in range(1, MAX_NESTING + 2):
        inner = store.add(f"b{depth}", bundle(_bundle_of([str(inner)])))

    with pytest.raises(LimitExceeded, match=f"nest more than {MAX_NESTING} deep"):
        await find_bundles(store, [inner], bundle_images)


async def test_bundles_nested_up_to_the_cap_are_all_found() -> None:
    """Bundles nested exactly as deep as the cap are all found."""
    store = MemoryStore()
    inner = store.add("b0", bundle(_bundle_of([])))
    for depth in range(1, MAX_NESTING + 1):
        inner = store.add(f"b{depth}", bundle(_bundle_of([str(inner)])))

    found = await find_bundles(store, [inner], bundle_images)

    assert MAX_NESTING + 1 == len(found.bundles)
