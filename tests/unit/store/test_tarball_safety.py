"""
Hostile and broken tarballs: each is refused with one line naming the culprit, before
anything is read from it (reliability §4 and rows F4-F11 of §8).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

from relocator.errors import IntegrityError, LimitExceeded, RelocatorError, TarError
from relocator.oci import Descriptor, Repository
from relocator.store.tarball import MemberDigestMismatch, TarballReader
from relocator.store.tarball import scan as scan_module
from tests.support import Image, image, multi_platform
from tests.unit.store.tarball_support import FIXTURES, fixture_tar, write_tar

MiB = 1024 * 1024
IMG = image("s/valid", layer_sizes=(300,))
LAYER = IMG.layers[0]
LAYER_NAME = f"blobs/sha256/{LAYER.digest.hex}"
INDEX = multi_platform("s/index", layer_sizes=(10,))
REPO = Repository("any.example", "repo")

Members = list[tuple[str, bytes | None]]
DOCKER_SAVE_MANIFEST = b'[{"Config":"x.json","RepoTags":[],"Layers":[]}]'


def _layout(img: Image = IMG, *, index: bytes | None = None) -> Members:
    """A valid OCI layout of `img`, as (name, data) pairs."""
    entry = {"mediaType": img.media_type, "digest": str(img.digest), "size": img.size}
    index = index or json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    members: Members = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)]
    members += [(f"blobs/sha256/{n.digest.hex}", n.raw) for n in img.walk()]
    members += [(f"blobs/sha256/{b.digest.hex}", b.read()) for b in img.all_blobs()]
    return members


def _header(name: str, kind: bytes, size: int = 0, linkname: str = "") -> bytes:
    """A raw header block of any type (tarfile refuses to write some of them)."""
    info = tarfile.TarInfo(name)
    info.linkname = linkname
    block = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
    block[156:157] = kind
    # GNU base-256, so that sizes beyond the 11 octal digits of ustar fit.
    block[124:136] = b"\x80" + size.to_bytes(11, "big")
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % sum(block)
    return bytes(block)


def _pax(record: str, *, kind: bytes = b"x") -> bytes:
    """An extended header holding one PAX record, followed by an empty regular file."""
    line = f" {record}\n".encode()
    data = f"{len(line) + len(str(len(line) + 2))}".encode() + line
    return (_header("././@PaxHeader", kind, size=len(data)) + data + b"\0" * (-len(data) % 512)
            + _header("after-pax", b"0"))


def _big_member(name: str, size: int) -> bytes:
    """The header of a member larger than ustar can say (its size goes in a PAX record)."""
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(tarfile.PAX_FORMAT)


def _raw_tar(path: Path, members: Members, extra: bytes, *, before: bool = False) -> Path:
    """A valid layout with raw blocks `extra` spliced in (after the members, or first)."""
    body = io.BytesIO()
    write_tar(path, members)
    data = path.read_bytes().rstrip(b"\x00")
    data += b"\x00" * (-len(data) % 512)
    body.write(extra + data if before else data + extra)
    body.write(b"\x00" * 1024)
    path.write_bytes(body.getvalue())
    return path


def _link(kind: bytes, target: str | None = None, *, size: int = 0) -> Callable[[Path], Path]:
    def build(path: Path) -> Path:
        members = [m for m in _layout() if m[0] != LAYER_NAME]
        write_tar(path, members)
        with tarfile.open(path, "a") as archive:
            info = tarfile.TarInfo(LAYER_NAME)
            info.type = kind
            info.linkname = target or ("/etc/passwd" if kind == tarfile.SYMTYPE else "index.json")
            info.size = size
            archive.addfile(info, io.BytesIO(bytes(size)) if size else None)
        return path
    return build


def _link_before_target(path: Path) -> Path:
    """The layer's name is a hard link to a member that only comes after it."""
    members = [m for m in _layout() if m[0] != LAYER_NAME]
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo(LAYER_NAME)
        info.type = tarfile.LNKTYPE
        info.linkname = "later"
        archive.addfile(info)
        for name, data in [*members, ("later", LAYER.read())]:
            entry = tarfile.TarInfo(name)
            entry.size = len(data or b"")
            archive.addfile(entry, io.BytesIO(data or b""))
    return path


def _add(*extra: tuple[str, bytes | None]) -> Callable[[Path], Path]:
    return lambda path: write_tar(path, [*_layout(), *extra])


def _replace(name: str, data: bytes) -> Callable[[Path], Path]:
    return lambda path: write_tar(path, [(n, data if n == name else d) for n, d in _layout()])


def _truncated_in_data(path: Path) -> Path:
    write_tar(path, _layout())
    data = path.read_bytes()
    end = data.find(LAYER.read()) + 100
    path.write_bytes(data[:end])
    return path


def _truncated_at_boundary(path: Path) -> Path:
    write_tar(path, _layout())
    path.write_bytes(path.read_bytes().rstrip(b"\x00"))
    data = path.read_bytes()
    path.write_bytes(data + b"\x00" * (-len(data) % 512))
    return path


def _corrupt_header_later(path: Path) -> Path:
    write_tar(path, _layout())
    data = bytearray(path.read_bytes())
    data[512 + 512 + 20] ^= 0xFF  # inside the name of the second header
    path.write_bytes(bytes(data))
    return path


def _too_many_members(path: Path) -> Path:
    return write_tar(path, [*_layout(), *((f"extra{i}", b"") for i in range(30))])


def _kbld_with(change: Callable[[list[dict[str, object]]], None]) -> Callable[[Path], Path]:
    def build(path: Path) -> Path:
        source = FIXTURES / "kbld"
        doc = json.loads((source / "manifest.json").read_bytes())
        change(doc)
        names = sorted(p.name for p in source.iterdir() if p.name != "manifest.json")
        return write_tar(path, [("manifest.json", json.dumps(doc).encode()),
                                *((n, (source / n).read_bytes()) for n in names)])
    return build


def _lowercase_refs(doc: list[dict[str, object]]) -> None:
    image_desc = doc[0]["Image"]
    assert isinstance(image_desc, dict)
    image_desc["refs"] = image_desc.pop("Refs")


def _empty_entry(doc: list[dict[str, object]]) -> None:
    doc.append({"Image": None, "ImageIndex": None})


def _tampered_config(doc: list[dict[str, object]]) -> None:
    image_desc = doc[0]["Image"]
    assert isinstance(image_desc, dict)
    image_desc["Config"]["Raw"] = image_desc["Config"]["Raw"].replace("amd64", "arm64")


nfc = unicodedata.normalize("NFC", "caf\u00e9")
nfd = unicodedata.normalize("NFD", "caf\u00e9")

def _annotated(**annotations: str) -> Callable[[Path], Path]:
    """A valid layout whose index.json entry carries `annotations`."""
    entry = {"mediaType": IMG.media_type, "digest": str(IMG.digest), "size": IMG.size,
             "annotations": annotations}
    index = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    return lambda path: write_tar(path, _layout(index=index))


def _kbld_tag(tag: str) -> Callable[[list[dict[str, object]]], None]:
    def change(doc: list[dict[str, object]]) -> None:
        image_desc = doc[0]["Image"]
        assert isinstance(image_desc, dict)
        image_desc["Tag"] = tag
    return change


TRAVERSAL = "../../../victim/app/manifests/latest"
OPEN_CASES: dict[str, tuple[Callable[[Path], Path], type[RelocatorError], str]] = {
    "tag annotation with a path": (
        _annotated(**{"dev.relocator.tags": f"1.0,{TRAVERSAL}"}), TarError,
        r"'\.\./\.\./\.\./victim/app/manifests/latest' is recorded as a tag",
    ),
    "tag annotation with a query": (
        _annotated(**{"dev.relocator.tags": "a?b"}), TarError, r"'a\?b' is recorded as a tag",
    ),
    "tag annotation of 129 characters": (
        _annotated(**{"dev.relocator.tags": "t" * 129}), TarError,
        r"'t{80}…' \(129 characters\) is recorded as a tag",
    ),
    "reference with a bad tag": (
        _annotated(**{"io.containerd.image.name": "reg.example/app:a#b"}), TarError,
        r"'reg.example/app:a#b' records the tag 'a#b', which is not a valid tag",
    ),
    "kbld Tag with a path": (
        _kbld_with(_kbld_tag(TRAVERSAL)), TarError,
        r"entry 0: '\.\./\.\./\.\./victim/app/manifests/latest' is recorded as a tag",
    ),
    "parent segment": (_add(("../evil", b"x")), TarError, r"'\.\./evil' climbs out"),
    "parent inside blobs": (
        _add(("blobs/sha256/../../x", b"x")), TarError, r"'blobs/sha256/\.\./\.\./x' climbs out"
    ),
    "absolute name": (_add(("/abs/x", b"x")), TarError, r"'/abs/x' has an absolute name"),
    "symlink": (_link(tarfile.SYMTYPE), TarError, rf"'{LAYER_NAME}' is a symbolic link"),
    "hardlink to another member": (
        _link(tarfile.LNKTYPE), TarError, "has 300 bytes, the tarball holds"
    ),
    "hardlink outside the archive": (
        _link(tarfile.LNKTYPE, "/etc/passwd"), TarError,
        "points at '/etc/passwd', which is not an earlier regular member",
    ),
    "hardlink climbing out": (
        _link(tarfile.LNKTYPE, "../../etc/passwd"), TarError,
        "which is not an earlier regular member",
    ),
    "hardlink to a directory": (
        _link(tarfile.LNKTYPE, "blobs/sha256"), TarError, "which is not an earlier regular member",
    ),
    "hardlink before its target": (
        _link_before_target, TarError, "points at 'later', which is not an earlier regular member",
    ),
    "hardlink with data": (
        _link(tarfile.LNKTYPE, "index.json", size=512), TarError, "claims 512 bytes of data",
    ),
    "fifo": (_link(tarfile.FIFOTYPE), TarError, rf"'{LAYER_NAME}' is a FIFO"),
    "device": (_link(tarfile.CHRTYPE), TarError, rf"'{LAYER_NAME}' is a character device"),
    "duplicate index.json": (
        _add(("index.json", b"{}")), TarError, "'index.json' appears twice"
    ),
    "duplicate blob": (_add((LAYER_NAME, b"other bytes")), TarError, "appears twice"),
    "names differing by case": (
        _add(("INDEX.json", b"{}")), TarError, "'index.json' and 'INDEX.json' differ only by case"
    ),
    "names differing by normalisation": (
        _add((nfc, b"1"), (nfd, b"2")), TarError, "differ only by case or Unicode normalisation"
    ),
    "blob name in uppercase": (
        _add((f"blobs/sha256/{'AB' * 32}", b"x")),
        TarError, "does not name a valid digest",
    ),
    "blob name of unknown algorithm": (
        _add(("blobs/md5/d41d8cd98f00b204e9800998ecf8427e", b"")), TarError,
        "'blobs/md5/d41d8cd98f00b204e9800998ecf8427e' does not name a valid digest",
    ),
    "blob name too deep": (
        _add(("blobs/sha256/x/y", b"")), TarError, "'blobs/sha256/x/y' is not a blob name"
    ),
    "truncated in a member": (
        _truncated_in_data, TarError, rf"truncated: member '{LAYER_NAME}' claims 300 bytes"
    ),
    "truncated between members": (
        _truncated_at_boundary, TarError,
        "truncated: it ends after member .* without the end-of-archive marker",
    ),
    "not a tar": (
        lambda p: (p.write_bytes(b"just some text\n" * 100), p)[1], TarError,
        "is not a tar archive",
    ),
    "empty file": (lambda p: (p.write_bytes(b""), p)[1], TarError, "is not a tar archive"),
    "gzip-compressed": (
        lambda p: (p.write_bytes(gzip.compress(b"x" * 2000)), p)[1], TarError,
        "is gzip-compressed",
    ),
    "corrupt header": (_corrupt_header_later, TarError, "corrupt tar header at byte 1024"),
    "huge index.json": (
        _replace("index.json", b" " * (4 * MiB + 1)), LimitExceeded,
        "index.json has 4194305 bytes, more than its cap of 4194304",
    ),
    "huge oci-layout": (
        _replace("oci-layout", b" " * 5000), LimitExceeded, "oci-layout has 5000 bytes"
    ),
    "bad oci-layout version": (
        _replace("oci-layout", b'{"imageLayoutVersion":"2.0.0"}'), TarError,
        "imageLayoutVersion is '2.0.0', expected '1.0.0'",
    ),
    "duplicate key in index.json": (
        _replace("index.json", b'{"schemaVersion":2,"manifests":[],"manifests":[]}'),
        TarError, "duplicate key 'manifests'",
    ),
    "index.json lists a missing manifest": (
        lambda p: write_tar(p, [m for m in _layout() if m[0] != f"blobs/sha256/{IMG.digest.hex}"]),
        TarError, f"index.json lists {IMG.digest}, which is not in the tarball",
    ),
    "layer missing": (
        lambda p: write_tar(p, [m for m in _layout() if m[0] != LAYER_NAME]), TarError,
        f"{IMG.digest} needs blob {LAYER.digest}, which is not in the tarball",
    ),
    "layer shorter than its descriptor": (
        lambda p: write_tar(p, [(n, d[:-1] if n == LAYER_NAME and d else d)
                                for n, d in _layout()]),
        TarError, f"says blob {LAYER.digest} has 300 bytes, the tarball holds 299",
    ),
    "index child missing": (
        lambda p: write_tar(p, [m for m in _layout(INDEX)
                                if m[0] != f"blobs/sha256/{INDEX.children[0].digest.hex}"]),
        TarError, f"{INDEX.digest} needs manifest {INDEX.children[0].digest}, which is not",
    ),
    "neither layout nor kbld": (
        lambda p: write_tar(p, [("index.json", b"{}")]), TarError,
        "neither an OCI image layout",
    ),
    "sparse member": (
        lambda p: _raw_tar(p, _layout(), _header("sparse", b"S")), TarError,
        "'sparse' is a sparse file",
    ),
    "PAX header claiming a terabyte": (
        lambda p: _raw_tar(p, _layout(), _header("././@PaxHeader", b"x", size=2**40)), TarError,
        "extended header at byte .* claims 1099511627776 bytes",
    ),
    "PAX sparse record": (
        lambda p: _raw_tar(p, _layout(), _pax("GNU.sparse.major=1")), TarError,
        "is a sparse file \\(PAX GNU.sparse.major\\)",
    ),
    "PAX link path": (
        lambda p: _raw_tar(p, _layout(), _pax("linkpath=/etc/passwd")), TarError,
        "describes a link",
    ),
    "global PAX path": (
        lambda p: _raw_tar(p, _layout(), _pax("path=index.json", kind=b"g"), before=True),
        TarError, "global extended header at byte 0 sets 'path'",
    ),
    "PAX size in superscript digits": (
        lambda p: _raw_tar(p, _layout(), _pax("size=\u00b2")), TarError,
        "extended header at byte .* has an unreadable size",
    ),
    "PAX size in Arabic-Indic digits": (
        lambda p: _raw_tar(p, _layout(), _pax("size=\u0663")), TarError,
        "extended header at byte .* has an unreadable size",
    ),
    "PAX size of 5000 digits": (
        lambda p: _raw_tar(p, _layout(), _pax("size=" + "9" * 5000)), TarError,
        "extended header at byte .* has an unreadable size",
    ),
    "PAX record length of 5000 digits": (
        lambda p: _raw_tar(p, _layout(), _header("././@PaxHeader", b"x", size=5008)
                           + (b"9" * 5000 + b" size=1\n").ljust(5120, b"\0")),
        TarError, "malformed extended header at byte",
    ),
    "PAX size beyond the end of the file": (
        lambda p: _raw_tar(p, _layout(), _big_member("huge", 9 * 1024**3)), TarError,
        "truncated: member 'huge' claims 9663676416 bytes",
    ),
    "GNU long link": (
        lambda p: _raw_tar(p, _layout(), _header("././@LongLink", b"K", size=4) + b"x" * 512),
        TarError, "is a link",
    ),
    "too many members": (_too_many_members, TarError, "has more than 10 members"),
    "kbld key differing by case": (
        _kbld_with(_lowercase_refs), TarError, "key 'refs' differs from 'Refs' only by case"
    ),
    "kbld entry with neither image nor index": (
        _kbld_with(_empty_entry), TarError,
        "entry 2: expected to have either an image or an image index",
    ),
    "kbld config not matching its digest": (
        _kbld_with(_tampered_config), IntegrityError, "entry 0 Config: embedded content of sha256:5be3d610"
    ),
    "docker save archive": (
        lambda p: write_tar(p, [("manifest.json", DOCKER_SAVE_MANIFEST)]),
        TarError, "is a 'docker save' manifest without an OCI layout",
    ),
}


@pytest.mark.parametrize("case", list(OPEN_CASES))
async def test_hostile_tarballs_are_refused_when_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """Each hostile or broken tarball is refused at open, in one line naming the culprit."""
    build, error, message = OPEN_CASES[case]
    monkeypatch.setattr(scan_module, "MAX_MEMBERS", 10)
    path = build(tmp_path / "hostile.tar")

    with pytest.raises(error, match=message) as caught:
        await TarballReader.open(path)

    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("hostile.tar")


async def test_the_valid_base_of_the_hostile_cases_opens(tmp_path: Path) -> None:
    """The layout every hostile case starts from is itself fine (so each case fails for
    its own reason)."""
    async with TarballReader(write_tar(tmp_path / "ok.tar", _layout())) as reader:
        assert [IMG.digest] == [i.digest for i in reader.images()]
    async with TarballReader(fixture_tar(FIXTURES / "kbld", tmp_path / "kbld.tar")) as reader:
        assert 2 == len(reader.images())


async def test_a_blob_whose_bytes_do_not_match_its_name_is_refused_while_streaming(
    tmp_path: Path,
) -> None:
    """
    A member whose bytes are not the blob its name promises is refused when it is read,
    before its last chunk is handed over, with an error that is not worth retrying.
    """
    forged = bytes(reversed(LAYER.read()))
    path = write_tar(tmp_path / "forged.tar",
                     [(n, forged if n == LAYER_NAME else d) for n, d in _layout()])
    received: list[bytes] = []

    async with TarballReader(path) as reader:
        with pytest.raises(MemberDigestMismatch, match=f"member {LAYER_NAME}") as caught:
            async with reader.blob_open(REPO, LAYER.descriptor()) as chunks:
                received += [chunk async for chunk in chunks]

    assert [] == received
    assert not caught.value.temporary


async def test_a_manifest_whose_bytes_do_not_match_its_name_is_refused(tmp_path: Path) -> None:
    """Manifests are verified against their digest when the tarball is opened."""
    name = f"blobs/sha256/{IMG.digest.hex}"
    forged = IMG.raw + b" "
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": IMG.media_type, "digest": str(IMG.digest), "size": len(forged)}
    ]}).encode()
    path = write_tar(tmp_path / "forged.tar", [
        (n, forged if n == name else index if n == "index.json" else d) for n, d in _layout()
    ])

    with pytest.raises(IntegrityError, match=f"forged.tar:{name}: content of {IMG.digest}"):
        await TarballReader.open(path)


async def test_a_blob_asked_for_with_another_size_is_refused(tmp_path: Path) -> None:
    """A member is served only for a descriptor of its exact size."""
    path = write_tar(tmp_path / "ok.tar", _layout())
    wrong = Descriptor(media_type=LAYER.media_type, digest=LAYER.digest, size=LAYER.size + 1)

    async with TarballReader(path) as reader:
        with pytest.raises(IntegrityError, match=f"member {LAYER_NAME} has 300 bytes"):
            async with reader.blob_open(REPO, wrong):
                pass
