"""
What a tarball holds, read from its metadata: the images, and where each blob and
manifest lies. One function per flavour, each given the scanned members and a way to
read one (the reader's positional read), so that nothing here keeps a file open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from relocator.errors import LimitExceeded, TarError
from relocator.oci import MAX_MANIFEST_BYTES, Descriptor, Digest
from relocator.store.tarball import kbldread, ociformat
from relocator.store.tarball.images import TarballImage
from relocator.store.tarball.names import (
    INDEX_JSON,
    MANIFEST_JSON,
    OCI_LAYOUT,
    parse_kbld_layer_name,
    parse_oci_blob_name,
)
from relocator.store.tarball.scan import Listing, Member

Flavour = Literal["oci", "kbld"]

#: `oci-layout` is one small object.
MAX_LAYOUT_FILE = 4 * 1024
#: `index.json` is an index: the manifest cap applies.
MAX_INDEX_JSON = MAX_MANIFEST_BYTES
#: kbld's `manifest.json` embeds every manifest and config of every image (a few KiB
#: each, up to 4 MiB for huge indexes): 64 MiB holds thousands of images while bounding
#: what one member can make us hold in memory.
MAX_KBLD_MANIFEST = 64 * 1024 * 1024

#: Reads one member whole (the reader's positional read).
ReadMember = Callable[[Member], bytes]


@dataclass(slots=True)
class Catalog:
    """The images of a tarball and where their contents lie."""

    flavour: Flavour
    images: tuple[TarballImage, ...] = ()
    #: Members holding blobs (and, in OCI layouts, manifests) by digest.
    members: dict[Digest, Member] = field(default_factory=dict)
    #: kbld: manifests (bytes, media type) and configs embedded in manifest.json.
    manifests: dict[Digest, tuple[bytes, str]] = field(default_factory=dict)
    configs: dict[Digest, bytes] = field(default_factory=dict)
    #: Media types the metadata gives for manifests (index.json entries).
    media_types: dict[Digest, str] = field(default_factory=dict)


def read_catalog(listing: Listing, read: ReadMember, *, name: str) -> Catalog:
    """
    The catalog of the tarball `name` whose members are `listing`.

    Raises:
        TarError: It is neither flavour, or its metadata disagrees with its members.
        LimitExceeded: A metadata member is larger than its cap.
        IntegrityError: Embedded metadata does not match its digest (kbld).
    """
    if OCI_LAYOUT in listing.files:
        return _oci(listing, read, name)
    if MANIFEST_JSON in listing.files:
        return _kbld(listing, read, name)
    raise TarError(
        f"{name} is neither an OCI image layout (no {OCI_LAYOUT}) nor a kbld "
        f"tarball (no {MANIFEST_JSON})"
    )


def _json_member(listing: Listing, read: ReadMember, name: str, member_name: str,
                 cap: int) -> bytes:
    member = listing.files[member_name]
    if member.size > cap:
        raise LimitExceeded(
            f"{name}:{member_name} has {member.size} bytes, more than its cap of {cap}"
        )
    return read(member)


def _oci(listing: Listing, read: ReadMember, name: str) -> Catalog:
    catalog = Catalog(flavour="oci")
    ociformat.check_layout_file(
        _json_member(listing, read, name, OCI_LAYOUT, MAX_LAYOUT_FILE),
        where=f"{name}:{OCI_LAYOUT}",
    )
    if INDEX_JSON not in listing.files:
        raise TarError(f"{name} has {OCI_LAYOUT} but no {INDEX_JSON}")
    for member_name, member in listing.files.items():
        digest = parse_oci_blob_name(member_name, where=name)
        if digest is not None:
            catalog.members[digest] = member
    raw = _json_member(listing, read, name, INDEX_JSON, MAX_INDEX_JSON)
    images = ociformat.read_index(raw, where=f"{name}:{INDEX_JSON}")
    for image in images:
        found = catalog.members.get(image.digest)
        if found is None:
            raise TarError(
                f"{name}: {INDEX_JSON} lists {image.digest}, which is not in the tarball"
            )
        if found.size != image.size:
            raise TarError(
                f"{name}: {INDEX_JSON} says {image.digest} has {image.size} bytes, "
                f"its member has {found.size}"
            )
        catalog.media_types[image.digest] = image.media_type
    catalog.images = tuple(images)
    return catalog


def _kbld(listing: Listing, read: ReadMember, name: str) -> Catalog:
    where = f"{name}:{MANIFEST_JSON}"
    raw = _json_member(listing, read, name, MANIFEST_JSON, MAX_KBLD_MANIFEST)
    contents = kbldread.read_manifest(raw, where=where)
    members: dict[Digest, Member] = {}
    for member_name, member in listing.files.items():
        digest = parse_kbld_layer_name(member_name, where=name)
        if digest is None:
            continue
        described: Descriptor | None = contents.layers.get(digest)
        if described is not None and described.size != member.size:
            raise TarError(
                f"{name}: member {member_name} has {member.size} bytes, "
                f"the manifests say {described.size}"
            )
        members[digest] = member
    return Catalog(
        flavour="kbld",
        images=tuple(contents.images),
        members=members,
        manifests=contents.manifests,
        configs=contents.configs,
    )
