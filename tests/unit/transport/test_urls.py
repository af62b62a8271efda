"""URLs: API hosts, same-origin checks, redaction and the redirects we agree to follow."""

from __future__ import annotations

import pytest

from relocator.errors import UnsafeRedirect
from relocator.transport import urls


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        ("docker.io", "registry-1.docker.io"),
        ("index.docker.io", "registry-1.docker.io"),
        ("ghcr.io", "ghcr.io"),
        ("localhost:5000", "localhost:5000"),
    ],
)
def test_api_host(registry: str, expected: str) -> None:
    """Docker Hub's API lives on registry-1.docker.io; other registries serve their own."""
    assert expected == urls.api_host(registry)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://reg.example/v2/", ("https", "reg.example:443")),
        ("https://reg.example:443/v2/", ("https", "reg.example:443")),
        ("http://REG.example/v2/", ("http", "reg.example:80")),
        ("http://reg.example:5000/v2/", ("http", "reg.example:5000")),
        ("https://user:pw@reg.example/v2/", ("https", "reg.example:443")),
        ("http://[::1]:5000/v2/", ("http", "::1:5000")),
    ],
)
def test_origin_makes_default_ports_explicit(url: str, expected: tuple[str, str]) -> None:
    """Origins compare scheme, lowercased host and port, with 443/80 filled in."""
    assert expected == urls.origin(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Reg.Example:5000/v2/x", "reg.example:5000"),
        ("https://user:p%40ss@reg.example/v2/", "reg.example"),
        ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
    ],
)
def test_host_of_is_the_netloc_without_user_info(url: str, expected: str) -> None:
    """The per-host key is `host[:port]` as written, lowercased, never with credentials."""
    assert expected == urls.host_of(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://user:secret@cdn.example/blob?X-Amz-Signature=abc&digest=sha256%3A12",
            "https://cdn.example/blob?X-Amz-Signature=REDACTED&digest=sha256%3A12",
        ),
        (
            "https://auth.example/token?service=reg&scope=repository%3Aa%3Apull&account=bob",
            "https://auth.example/token?service=reg&scope=repository%3Aa%3Apull&account=REDACTED",
        ),
        (
            "https://reg.example/v2/a/blobs/uploads/?_state=xyz",
            "https://reg.example/v2/a/blobs/uploads/?_state=xyz",
        ),
        ("https://reg.example/v2/#frag", "https://reg.example/v2/"),
    ],
)
def test_redact_hides_user_info_and_unknown_query_values(url: str, expected: str) -> None:
    """
    Presigned URLs carry secrets in the query: only allow-listed parameters keep their
    value in messages and logs, and user info is dropped.
    """
    assert expected == urls.redact(url)


@pytest.mark.parametrize(
    ("current", "location", "insecure", "expected"),
    [
        ("https://a.example/v2/x", "/v2/y", (), "https://a.example/v2/y"),
        ("https://a.example/v2/x/", "y", (), "https://a.example/v2/x/y"),
        ("https://a.example/v2/x", "https://b.example/blob", (), "https://b.example/blob"),
        ("https://a.example/v2/x", "//b.example/blob", (), "https://b.example/blob"),
        ("http://a.example/v2/x", "https://a.example/v2/x", (), "https://a.example/v2/x"),
        ("http://a.example/v2/x", "http://b.example/x", (), "http://b.example/x"),
        (
            "https://a.example/v2/x", "http://b.example/x", ("b.example",),
            "http://b.example/x",
        ),
    ],
)
def test_follow_resolves_locations_we_may_go_to(
    current: str, location: str, insecure: tuple[str, ...], expected: str
) -> None:
    """Relative and absolute locations resolve against the current URL."""
    actual = urls.follow(current, location, insecure_hosts=frozenset(insecure))

    assert expected == actual


@pytest.mark.parametrize(
    ("current", "location", "insecure"),
    [
        pytest.param("https://a.example/x", "http://b.example/x", (), id="https-to-http"),
        pytest.param(
            "https://a.example/x", "http://b.example/x", ("a.example",),
            id="https-to-http-other-host-insecure",
        ),
        pytest.param("https://a.example/x", "ftp://b.example/x", (), id="ftp"),
        pytest.param("https://a.example/x", "file:///etc/passwd", (), id="file"),
        pytest.param("https://a.example/x", "data:text/plain,hi", (), id="data"),
        pytest.param("https://a.example/x", "http:///nohost", (), id="no-host"),
        pytest.param("https://a.example/x", "https://b.example:99999/x", (), id="port-too-big"),
        pytest.param("https://a.example/x", "https://b.example:port/x", (), id="port-not-number"),
        pytest.param(
            "https://a.example/x", "https://user:pw@b.example/x", (), id="user-info"
        ),
        pytest.param("https://a.example/x", "https://user@a.example/y", (), id="user-only"),
    ],
)
def test_follow_refuses_unsafe_targets(
    current: str, location: str, insecure: tuple[str, ...]
) -> None:
    """
    Only http(s) URLs with a host and a valid port, without user info, are followed;
    https never downgrades to http unless the target host is configured as insecure.
    """
    with pytest.raises(UnsafeRedirect):
        urls.follow(current, location, insecure_hosts=frozenset(insecure))


def test_follow_names_the_downgrade_and_hints_at_the_flag() -> None:
    """A refused downgrade says so and names the flag that allows it."""
    with pytest.raises(UnsafeRedirect, match="https to plain http") as caught:
        urls.follow("https://a.example/x", "http://b.example/y", insecure_hosts=frozenset())

    assert "--registry-insecure" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/upload", "https://a.example/upload?digest=sha256%3Aab"),
        (
            "https://a.example/upload?_state=s&empty=",
            "https://a.example/upload?_state=s&empty=&digest=sha256%3Aab",
        ),
    ],
)
def test_with_query_keeps_existing_parameters(url: str, expected: str) -> None:
    """Upload locations keep their state parameters when the digest is added."""
    assert expected == urls.with_query(url, digest="sha256:ab")
