"""Digests: validated names of content, and the streaming verifier."""

from __future__ import annotations

import hashlib

import pytest

from relocator.errors import DigestMismatch, InvalidDigest, SizeMismatch
from relocator.oci import Digest, Verifier

SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SHA512_EMPTY = hashlib.sha512(b"").hexdigest()


@pytest.mark.parametrize(
    ("text", "algorithm", "hex_"),
    [
        (f"sha256:{SHA256_EMPTY}", "sha256", SHA256_EMPTY),
        (f"sha512:{SHA512_EMPTY}", "sha512", SHA512_EMPTY),
    ],
)
def test_parse_accepts_registered_algorithms(text: str, algorithm: str, hex_: str) -> None:
    """sha256 with 64 and sha512 with 128 lowercase hex characters parse and print back."""
    digest = Digest.parse(text)

    assert (algorithm, hex_) == (digest.algorithm, digest.hex)
    assert text == str(digest)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"sha256:{SHA256_EMPTY.upper()}", id="uppercase-hex"),
        pytest.param(f"sha256:{SHA256_EMPTY[:63]}", id="63-chars"),
        pytest.param(f"sha256:{SHA256_EMPTY}0", id="65-chars"),
        pytest.param(f"sha512:{SHA256_EMPTY}", id="sha512-with-64-chars"),
        pytest.param(f"md5:{'a' * 32}", id="md5"),
        pytest.param(f"SHA256:{SHA256_EMPTY}", id="uppercase-algorithm"),
        pytest.param("sha256:../../etc/passwd", id="path-traversal"),
        pytest.param(f"sha256:{SHA256_EMPTY}/x", id="trailing-path"),
        pytest.param(f"sha256:{SHA256_EMPTY}\n", id="trailing-newline"),
        pytest.param(f" sha256:{SHA256_EMPTY}", id="leading-space"),
        pytest.param(SHA256_EMPTY, id="no-algorithm"),
        pytest.param("sha256:", id="no-hex"),
        pytest.param("", id="empty"),
    ],
)
def test_parse_rejects_anything_else(text: str) -> None:
    """
    Only lowercase hex of the algorithm's exact length is a digest, so no digest can
    smuggle `/` or `..` into a URL or a file name (CVE-2024-3727).
    """
    with pytest.raises(InvalidDigest):
        Digest.parse(text)


@pytest.mark.parametrize(
    ("algorithm", "hex_"),
    [("md5", "d41d8cd98f00b204e9800998ecf8427e"), ("sha256", "../x"), ("sha256", "A" * 64)],
)
def test_construction_validates_too(algorithm: str, hex_: str) -> None:
    """A Digest built directly is held to the same rules as a parsed one."""
    with pytest.raises(InvalidDigest):
        Digest(algorithm, hex_)


def test_invalid_digest_message_names_the_text_truncated() -> None:
    """The message quotes the offending text, cut short so a huge input stays one line."""
    with pytest.raises(InvalidDigest) as caught:
        Digest.parse("sha256:" + "z" * 1000)

    assert "sha256:zzz" in str(caught.value)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [("sha256", f"sha256:{SHA256_EMPTY}"), ("sha512", f"sha512:{SHA512_EMPTY}")],
)
def test_of_hashes_bytes(algorithm: str, expected: str) -> None:
    """`Digest.of` names bytes by their hash under the chosen algorithm."""
    assert expected == str(Digest.of(b"", algorithm))


def test_short_and_tag_spellings() -> None:
    """`short` is 12 hex characters for humans; `tag` is the referrers tag scheme."""
    digest = Digest.parse(f"sha256:{SHA256_EMPTY}")

    assert "e3b0c44298fc" == digest.short
    assert f"sha256-{SHA256_EMPTY}" == digest.tag


def test_verify_accepts_matching_bytes_and_rejects_others() -> None:
    """`verify` is silent for the right bytes and raises DigestMismatch for others."""
    digest = Digest.of(b"content")

    digest.verify(b"content")
    with pytest.raises(DigestMismatch):
        digest.verify(b"c0ntent")


@pytest.mark.parametrize(
    "chunks", [[b"hello world"], [b"hello", b" ", b"world"], [b"", b"hello world"]]
)
def test_verifier_accepts_the_exact_content_in_any_chunking(chunks: list[bytes]) -> None:
    """The right bytes in any pieces pass `check`, and `done` counts them."""
    verifier = Verifier(Digest.of(b"hello world"), len(b"hello world"))

    for chunk in chunks:
        verifier.update(memoryview(chunk))
    verifier.check()

    assert 11 == verifier.done


def test_verifier_refuses_a_short_stream() -> None:
    """A stream that ends early fails `check` with SizeMismatch, even if a prefix matches."""
    verifier = Verifier(Digest.of(b"hello world"), 11)
    verifier.update(b"hello")

    with pytest.raises(SizeMismatch):
        verifier.check()


def test_verifier_refuses_a_long_stream_as_soon_as_it_overruns() -> None:
    """The chunk that goes past the declared size is refused at once, not at the end."""
    verifier = Verifier(Digest.of(b"hello world"), 11)
    verifier.update(b"hello world")

    with pytest.raises(SizeMismatch):
        verifier.update(b"!")


def test_verifier_refuses_other_content_of_the_right_size() -> None:
    """Bytes of the declared size that hash differently fail `check` with DigestMismatch."""
    verifier = Verifier(Digest.of(b"hello world"), 11)
    verifier.update(b"HELLO WORLD")

    with pytest.raises(DigestMismatch):
        verifier.check()


def test_verifier_without_hashing_still_checks_sizes() -> None:
    """`hashing=False` accepts other bytes of the right size but never a wrong size."""
    digest = Digest.of(b"abc")
    same_size = Verifier(digest, 3, hashing=False)
    short = Verifier(digest, 3, hashing=False)

    same_size.update(b"xyz")
    same_size.check()
    short.update(b"xy")

    with pytest.raises(SizeMismatch):
        short.check()
    with pytest.raises(SizeMismatch):
        Verifier(digest, 3, hashing=False).update(b"abcd")
