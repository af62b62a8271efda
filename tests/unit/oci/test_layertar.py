"""Finding one file in a gzip layer tarball, streaming and bounded."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from relocator.errors import LimitExceeded, ManifestError
from relocator.oci.layertar import LayerFileFinder, LayerLimits

WANTED = ".imgpkg/images.yml"


def _layer(members: list[tuple[str, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue())


def _find(layer: bytes, step: int = 7, limits: LayerLimits | None = None) -> bytes:
    finder = LayerFileFinder(WANTED, what="bundle b", limits=limits)
    for start in range(0, len(layer), step):
        found = finder.feed(layer[start : start + step])
        if found is not None:
            return found
    return finder.finish()


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_the_file_is_found_after_long_names_in_every_tar_format(fmt: int) -> None:
    """Long names (pax `path`, GNU long name, ustar prefix) before it are walked past."""
    long_name = "config/" + "d" * 120 + "/app.yml"
    layer = _layer([(long_name, b"x" * 700), ("./" + WANTED, b"kind: ImagesLock\n")], fmt)

    assert b"kind: ImagesLock\n" == _find(layer)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_a_long_name_that_is_the_file_itself_is_recognised(fmt: int) -> None:
    """A pax `path` or GNU long name naming the file applies to the member after it."""
    wanted = "d" * 120 + "/images.yml"
    layer = _layer([("a" * 150, b"no"), (wanted, b"yes")], fmt)
    finder = LayerFileFinder(wanted, what="bundle b")

    found = [finder.feed(layer[i : i + 1]) for i in range(len(layer))]

    assert [b"yes"] == [f for f in found if f is not None][:1]


def test_an_empty_file_is_found() -> None:
    """A zero-length images.yml is returned (and refused later as no ImagesLock)."""
    assert b"" == _find(_layer([(WANTED, b"")]))


def test_a_layer_without_the_file_is_refused() -> None:
    """The end of the archive without the file: one line naming the bundle."""
    with pytest.raises(ManifestError, match=r"bundle b: expected to find \.imgpkg/images\.yml"):
        _find(_layer([("other.yml", b"x")]))


def test_data_that_is_not_gzip_is_refused() -> None:
    """A layer that is not gzip data is refused, not guessed at."""
    with pytest.raises(ManifestError, match="not gzip data"):
        _find(b"plain bytes, not gzip" * 10)


@pytest.mark.parametrize("name", ["/etc/passwd", "a/../../b", "..", "a\\b"])
def test_unsafe_member_names_are_refused(name: str) -> None:
    """Absolute names, `..` components and backslashes end the read."""
    with pytest.raises(ManifestError, match="member name"):
        _find(_layer([(name, b"x"), (WANTED, b"y")]))


def test_the_caps_hold() -> None:
    """Each cap stops the read with LimitExceeded at its own limit."""
    layer = _layer([("a", b"x" * 5000), ("b", b""), (WANTED, b"y" * 100)])
    with pytest.raises(LimitExceeded, match="inflates past 4096"):
        _find(layer, limits=LayerLimits(max_inflated=4096))
    with pytest.raises(LimitExceeded, match="more than 2 members"):
        _find(layer, limits=LayerLimits(max_members=2))
    with pytest.raises(LimitExceeded, match="is 100 bytes"):
        _find(layer, limits=LayerLimits(max_file=99))
    assert b"y" * 100 == _find(layer, limits=LayerLimits(max_file=100))


def test_the_file_as_a_link_is_refused() -> None:
    """images.yml must be a regular file: a symbolic link to elsewhere is not followed."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        link = tarfile.TarInfo(WANTED)
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)

    with pytest.raises(ManifestError, match="not a regular file"):
        _find(gzip.compress(raw.getvalue()))
