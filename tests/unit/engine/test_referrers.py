"""
Finding what is attached to images (OCI 1.1 referrers, cosign tags) and writing the
fallback referrers index: discovery against an in-memory source, the registry's
listing against small local HTTP servers, and the index merge as a pure function.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from relocator.config.mirror import MirrorConfig
from relocator.engine import Job
from relocator.engine.events import ListSink, Notice
from relocator.engine.fallback_index import listing_descriptor, merge_index
from relocator.engine.plan import make_plan
from relocator.engine.referrers import (
    LEVELS,
    Attachments,
    describe,
    find_referrers,
    with_attachments,
)
from relocator.errors import (
    ManifestError,
    RegistryError,
    RelocatorError,
    UnsafeRedirect,
)
from relocator.oci import Descriptor, Digest, Manifest, Reference, Repository, mediatypes
from relocator.store import RegistryStore
from relocator.store.base import attached_to, cosign_tags, referrers_tag
from relocator.testing import MemoryStore
from relocator.transport import HttpClient, Keychain, TransportSettings
from tests.support import Image, ImageFactory

SOURCE = Repository("source.example", "team/app")
TARGET = Repository("target.example", "mirror/app")


def parsed(image: Image) -> Manifest:
    """`image` as relocator reads it."""
    return Manifest.parse(image.raw, content_type=image.media_type)


def memory_source(*images: Image) -> MemoryStore:
    """A registry in memory holding `images` (and their subjects) in the source repository."""
    store = MemoryStore(SOURCE.registry)
    for image in images:
        store.add(SOURCE.path, image)
    return store


def job_of(image: Image, *tags: str) -> Job:
    return Job(source=Reference.from_repo(SOURCE, digest=image.digest), destination=TARGET,
               tags=tags)


def found(attachments: Attachments) -> dict[Digest, tuple[Digest | None, tuple[str, ...]]]:
    """Each attached job's digest -> (its subject, its tags)."""
    return {job.digest: (job.subject, job.tags) for job in attachments.jobs}


def listed(attachments: Attachments) -> dict[Digest, list[Digest]]:
    """Each fallback index's subject -> the digests it must list."""
    return {i.subject: [d.digest for d in i.referrers] for i in attachments.indexes}


# -- discovery ---------------------------------------------------------------------------


async def test_attachments_of_an_index_and_its_images_are_found_two_levels_deep(
    image_factory: ImageFactory,
) -> None:
    """
    For an index, the index and each image in it are looked up; what is attached to
    those is looked up once more (a signature on an SBOM), and no further. cosign's
    tags land under their tag; OCI referrers by digest, listed in their subject's index.
    """
    index = image_factory.index()
    child = index.children[0]
    sbom = image_factory.artifact(subject=index)
    provenance = image_factory.artifact(subject=child)
    sbom_signature = image_factory.artifact(subject=sbom)
    too_deep = image_factory.artifact(subject=sbom_signature)
    signature = image_factory.image()
    tag = f"{index.digest.tag}.sig"
    source = memory_source(index, sbom, provenance, sbom_signature, too_deep)
    source.add(SOURCE.path, signature, tag=tag)

    attachments = await find_referrers([job_of(index, "v1")], source)

    assert 2 == LEVELS
    assert {
        sbom.digest: (index.digest, ()),
        sbom_signature.digest: (sbom.digest, ()),
        signature.digest: (index.digest, (tag,)),
        provenance.digest: (child.digest, ()),
    } == found(attachments)
    assert {
        index.digest: [sbom.digest],
        sbom.digest: [sbom_signature.digest],
        child.digest: [provenance.digest],
    } == listed(attachments)
    assert {index.digest, sbom.digest, provenance.digest} <= set(attachments.manifests)


async def test_a_listed_referrer_the_source_no_longer_has_is_left_out(
    image_factory: ImageFactory,
) -> None:
    """A fallback index entry whose manifest is gone is neither copied nor listed."""
    image = image_factory.image()
    kept, gone = image_factory.artifact(subject=image), image_factory.artifact(subject=image)
    source = MemoryStore(SOURCE.registry, referrers_api=False)
    source.add(SOURCE.path, kept)
    fallback = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [
        listing_descriptor(parsed(r)).to_json() for r in (kept, gone)
    ]}
    source.add_manifest(SOURCE.path, json.dumps(fallback).encode(),
                        tag=referrers_tag(image.digest))

    attachments = await find_referrers([job_of(image)], source)

    assert [kept.digest] == [job.digest for job in attachments.jobs]
    assert {image.digest: [kept.digest]} == listed(attachments)


async def test_for_a_tarball_each_index_becomes_an_image_tagged_sha256_hex(
    image_factory: ImageFactory,
) -> None:
    """
    With `package`, nothing is left to merge afterwards: the fallback index is built
    and becomes a job tagged with the subject's `sha256-<hex>`, listing the referrer.
    """
    image = image_factory.image()
    sbom = image_factory.artifact(subject=image)
    source = memory_source(image, sbom)

    attachments = await find_referrers([job_of(image)], source, package=True)

    assert [] == attachments.indexes
    index_job = attachments.jobs[-1]
    assert (image.digest.tag,) == index_job.tags
    index = attachments.manifests[index_job.digest]
    assert [listing_descriptor(parsed(sbom))] == list(index.manifests)
    assert f"referrers index of sha256:{image.digest.short}" == describe(index_job)


async def test_an_image_whose_attachments_cannot_be_listed(
    image_factory: ImageFactory,
) -> None:
    """
    A listing that fails stops the run; with `keep_going` the image is recorded as a
    failure (and a notice says so) while the others' attachments are still found.
    """
    broken, fine = image_factory.image(), image_factory.image()
    sbom = image_factory.artifact(subject=fine)
    source = memory_source(broken, fine, sbom)
    source.faults.failing_referrers.add(broken.digest)
    sink = ListSink()

    with pytest.raises(RegistryError):
        await find_referrers([job_of(broken), job_of(fine)], source)
    attachments = await find_referrers(
        [job_of(broken), job_of(fine)], source, keep_going=True, sink=sink
    )

    assert [sbom.digest] == [job.digest for job in attachments.jobs]
    assert [job_of(broken).source] == [f.source for f in attachments.failures]
    assert 1 == sum(isinstance(e, Notice) for e in sink.events)


async def test_a_missing_image_is_left_for_the_planner_to_report(
    image_factory: ImageFactory,
) -> None:
    """An image the source does not have has nothing attached and is no listing failure."""
    attachments = await find_referrers([job_of(image_factory.image())], memory_source(),
                                       keep_going=True)

    assert ([], []) == (attachments.jobs, attachments.failures)


async def test_a_store_that_cannot_list_referrers_is_refused(
    image_factory: ImageFactory,
) -> None:
    """Asking a store without the capability (a tarball) is an error, not silence."""

    class Plain:
        name = "plain"

    with pytest.raises(RelocatorError, match="cannot list referrers"):
        await find_referrers([job_of(image_factory.image())], Plain())  # type: ignore[arg-type]


def test_attached_jobs_join_the_run_once_and_never_steal_a_tag(
    image_factory: ImageFactory,
) -> None:
    """
    An attached image the run already lands gets its tag added to that job; one whose
    tag another image already has at the destination is left out with a notice.
    """
    image, signature, rival = (image_factory.image() for _ in range(3))
    tag = f"{image.digest.tag}.sig"
    sink = ListSink()
    jobs = [job_of(image, "1.0"), job_of(signature, "mine")]
    extras = [
        Job(source=job_of(signature).source, destination=TARGET, tags=(tag,),
            subject=image.digest),
        Job(source=job_of(rival).source, destination=TARGET, tags=(tag,), subject=image.digest),
    ]

    merged = with_attachments(jobs, extras, sink)

    assert [("1.0",), ("mine", tag)] == [job.tags for job in merged]
    assert [Notice] == [type(e) for e in sink.events]


async def test_an_attached_image_lands_after_its_subject(image_factory: ImageFactory) -> None:
    """
    A cosign signature names its image only in its tag: the plan still makes it wait
    for that image, which is pushed first.
    """
    image, signature = image_factory.image(), image_factory.image()
    source = memory_source(image, signature)
    sig_job = Job(source=job_of(signature).source, destination=TARGET,
                  tags=(f"{image.digest.tag}.sig",), subject=image.digest)

    plan = await make_plan([sig_job, job_of(image)], source, MemoryStore(TARGET.registry))

    assert [(TARGET, image.digest)] == plan.manifests[(TARGET, signature.digest)].manifests
    assert [image.digest, signature.digest] == [key[1] for key in plan.manifests]


# -- the listing descriptor and the index merge -----------------------------------------


def test_a_listing_names_a_referrer_by_type_digest_size_artifact_type_and_annotations(
    image_factory: ImageFactory,
) -> None:
    """artifactType comes from the manifest, else from its config's media type."""
    artifact = image_factory.artifact(artifact_type="application/spdx+json")
    plain = image_factory.image()

    with_type, without = listing_descriptor(parsed(artifact)), listing_descriptor(parsed(plain))

    assert {
        "mediaType": mediatypes.OCI_MANIFEST,
        "digest": str(artifact.digest),
        "size": artifact.size,
        "artifactType": "application/spdx+json",
        "annotations": json.loads(artifact.raw)["annotations"],
    } == with_type.to_json()
    assert mediatypes.OCI_CONFIG == without.artifact_type


def test_a_new_index_lists_the_referrers(image_factory: ImageFactory) -> None:
    """Without an index at the tag, one is made listing each referrer once."""
    sbom = listing_descriptor(parsed(image_factory.artifact()))

    index = merge_index(None, [sbom, sbom], name="reg/app:sha256-x")

    assert index is not None
    assert mediatypes.OCI_INDEX == index.media_type
    assert [sbom] == list(index.manifests)


def test_merging_keeps_every_entry_and_field_of_the_existing_index(
    image_factory: ImageFactory,
) -> None:
    """
    Entries already listed stay first and exactly as they were (fields relocator does
    not know included), as do the index's other fields; only what is missing is added.
    """
    old_entry = {**listing_descriptor(parsed(image_factory.artifact())).to_json(),
                 "x-unknown": {"kept": True}}
    existing_doc = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
                    "manifests": [old_entry], "annotations": {"by": "cosign"}}
    existing = Manifest.parse(json.dumps(existing_doc).encode())
    new = listing_descriptor(parsed(image_factory.artifact()))

    merged = merge_index(existing, [new], name="reg/app:sha256-x")

    assert merged is not None
    expected = {**existing_doc, "manifests": [old_entry, new.to_json()]}
    assert expected == json.loads(merged.raw)


def test_an_index_already_listing_everything_is_not_rewritten(
    image_factory: ImageFactory,
) -> None:
    """Nothing to add: no new index, so a re-run writes nothing."""
    sbom = listing_descriptor(parsed(image_factory.artifact()))
    existing = merge_index(None, [sbom], name="x")

    assert None is merge_index(existing, [sbom], name="x")


def test_something_else_at_the_tag_is_left_alone(image_factory: ImageFactory) -> None:
    """An image (or a Docker list) tagged sha256-<hex> is not overwritten."""
    sbom = listing_descriptor(parsed(image_factory.artifact()))
    for other in (image_factory.image(), image_factory.manifest_list()):
        with pytest.raises(ManifestError, match="left as it is"):
            merge_index(parsed(other), [sbom], name="reg/app:sha256-x")


# -- tag schemes ---------------------------------------------------------------------------


def test_tags_of_both_schemes_name_the_digest_they_are_about() -> None:
    """
    `sha256-<hex>` (the referrers tag) and cosign's `.sig`, `.att`, `.sbom` parse back to
    the digest; sha512's referrers tag is cut to 64 hex digits (the spec's truncation)
    and cosign has no valid tag for it; other tags are about nothing.
    """
    sha256 = Digest.of(b"image")
    sha512 = Digest.of(b"image", "sha512")

    assert (sha256, None) == attached_to(referrers_tag(sha256))
    assert [(sha256, s) for s in ("sig", "att", "sbom")] == [
        attached_to(t) for t in cosign_tags(sha256)
    ]
    assert f"sha512-{sha512.hex[:64]}" == referrers_tag(sha512)
    assert [] == cosign_tags(sha512)
    for other in ("latest", f"{sha256.tag}.relocator", f"{sha256.tag}.sig.x", "sha256-00"):
        assert None is attached_to(other)


# -- the registry's listing ----------------------------------------------------------------

Route = tuple[int, bytes, dict[str, str]]


@dataclass(slots=True)
class Server:
    """A registry stand-in answering `METHOD path?query` from a table, recording requests."""

    server: TestServer
    table: dict[str, Route] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def answer(self, target: str, body: object = b"", *, status: int = 200,
               headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.table[target] = (status, raw, headers or {})

    async def _handle(self, request: web.Request) -> web.Response:
        target = f"{request.method} {request.path_qs}"
        self.seen.append(target)
        status, body, headers = self.table.get(target, (404, b"", {}))
        if request.method == "HEAD":
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, body=body, headers=headers)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    app = web.Application()
    stand_in = Server(TestServer(app, host="127.0.0.1"))
    app.router.add_route("*", "/{tail:.*}", stand_in._handle)
    await stand_in.server.start_server()
    try:
        yield stand_in
    finally:
        await stand_in.server.close()


@asynccontextmanager
async def registry_store(*servers: Server) -> AsyncIterator[RegistryStore]:
    settings = TransportSettings(insecure_hosts=frozenset(s.host for s in servers))
    async with HttpClient(settings, Keychain()) as client:
        yield RegistryStore(client)


SUBJECT = Digest.of(b"subject")
API = f"GET /v2/team/app/referrers/{SUBJECT}"
TAG = f"GET /v2/team/app/manifests/{SUBJECT.tag}"


def index_of(*entries: Descriptor, extra: Sequence[dict[str, object]] = ()) -> bytes:
    """A referrers list naming `entries` (and `extra` raw entries after them)."""
    doc = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX,
           "manifests": [e.to_json() for e in entries] + list(extra)}
    return json.dumps(doc).encode()


def referrer(n: int) -> Descriptor:
    return Descriptor(media_type=mediatypes.OCI_MANIFEST, digest=Digest.of(b"r%d" % n), size=n,
                      artifact_type="application/example")


OCI_INDEX = {"Content-Type": mediatypes.OCI_INDEX}


async def test_the_referrers_api_is_read_page_by_page(server: Server) -> None:
    """
    Pages are followed through `Link` on the same host; entries that are not manifests
    are skipped; the fallback tag is not read when the API answers.
    """
    page2 = f"/v2/team/app/referrers/{SUBJECT}?last=1"
    blob = {"mediaType": "application/octet-stream", "digest": str(Digest.of(b"b")), "size": 1}
    server.answer(API, index_of(referrer(1), extra=[blob]),
                  headers={**OCI_INDEX, "Link": f'<{page2}>; rel="next"'})
    server.answer(f"GET {page2}", index_of(referrer(2)), headers=OCI_INDEX)

    async with registry_store(server) as store:
        found = await store.referrers(Repository(server.host, "team/app"), SUBJECT)

    assert [referrer(1), referrer(2)] == found
    assert [API, f"GET {page2}"] == server.seen


@pytest.mark.parametrize("status", [400, 404, 405, 501])
async def test_without_the_api_the_fallback_tag_is_read(server: Server, status: int) -> None:
    """The statuses that say "no referrers API" lead to the `sha256-<hex>` index."""
    server.answer(API, status=status)
    server.answer(TAG, index_of(referrer(3)), headers=OCI_INDEX)

    async with registry_store(server) as store:
        repo = Repository(server.host, "team/app")
        api = await store.referrers_api(repo, SUBJECT)
        found = await store.referrers(repo, SUBJECT)

    assert (None, [referrer(3)]) == (api, found)


async def test_no_api_and_no_fallback_tag_is_no_referrers(server: Server) -> None:
    """404 on both: nothing is attached."""
    async with registry_store(server) as store:
        assert [] == await store.referrers(Repository(server.host, "team/app"), SUBJECT)


@pytest.mark.parametrize(
    "body",
    [b"<html>", json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                            "config": referrer(1).to_json(), "layers": []}).encode()],
    ids=["not-json", "not-an-index"],
)
async def test_a_malformed_listing_is_an_error_naming_the_registry(
    server: Server, body: bytes
) -> None:
    """A 200 that is not an index is the registry's fault, said in one line."""
    server.answer(API, body)

    async with registry_store(server) as store:
        with pytest.raises(RegistryError, match=server.host):
            await store.referrers(Repository(server.host, "team/app"), SUBJECT)


async def test_a_next_page_on_another_host_is_refused(server: Server) -> None:
    """A listing cannot send us (with our credentials) to another host."""
    server.answer(API, index_of(referrer(1)),
                  headers={**OCI_INDEX, "Link": '<http://elsewhere.example/v2/x>; rel="next"'})

    async with registry_store(server) as store:
        with pytest.raises(UnsafeRedirect):
            await store.referrers(Repository(server.host, "team/app"), SUBJECT)


async def test_cosign_tags_are_found_with_heads_and_refusals_are_absences(
    server: Server,
) -> None:
    """
    `.sig` exists (found with a HEAD, its digest from the registry's header), `.att` is
    refused with 403 (taken as absent, as imgpkg does), `.sbom` is missing.
    """
    signature = Digest.of(b"signature")
    head = f"HEAD /v2/team/app/manifests/{SUBJECT.tag}"
    server.answer(f"{head}.sig", headers={"Docker-Content-Digest": str(signature)})
    server.answer(f"{head}.att", status=403)

    async with registry_store(server) as store:
        found = await store.attached_tags(Repository(server.host, "team/app"), SUBJECT)

    assert {f"{SUBJECT.tag}.sig": signature} == found
    assert {f"{head}.sig", f"{head}.att", f"{head}.sbom"} <= set(server.seen)


# -- the mirror config ---------------------------------------------------------------------


def test_include_referrers_in_a_mirror_config_defaults_and_per_source() -> None:
    """`defaults.includeReferrers` applies to every source; a source may turn it off."""
    text = """
apiVersion: relocator.dev/v1alpha1
kind: Mirror
defaults: {destination: "reg.example/m/{repository}", includeReferrers: true}
sources:
- {image: "src.example/a:1"}
- {image: "src.example/b:1", includeReferrers: false}
"""
    config = MirrorConfig.parse(text, "mirror.yml")

    assert [True, False] == [source.include_referrers for source in config.sources]

