"""imgpkg's credential and limit flags turned into relocator's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from relocator.api import RelocateRequest
from relocator.api.registries import keychain as api_keychain
from relocator.api.registries import transport_settings
from relocator.cli.arguments import Invocation, read
from relocator.errors import InputError
from relocator.transport import Keychain, TransportSettings


def _request(
    *flags: str, destination: tuple[str, ...] = ("-r", "dest.example/team/app")
) -> RelocateRequest:
    invocation = read(["relocate", "-f", "a", *destination, *flags], env={})
    assert isinstance(invocation, Invocation)
    assert isinstance(invocation.request, RelocateRequest)
    return invocation.request


def keychain(request: RelocateRequest) -> Keychain:
    """The keychain a run of `request` uses."""
    return api_keychain(request.registries, request.repository)


def _args(
    *flags: str, destination: tuple[str, ...] = ("-r", "dest.example/team/app")
) -> RelocateRequest:
    return _request(*flags, destination=destination)


async def test_registry_username_is_for_the_destination_registry_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """
    The credential goes to the `-r` registry and to no other: imgpkg would send it to
    the source registries too.
    """
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    chain = keychain(_args("--registry-username", "u", "--registry-password", "p"))

    dest = await chain.get("dest.example", "team/app")
    source = await chain.get("source.example", "team/app")

    assert ("u", "p") == (dest.username, dest.password)
    assert source.anonymous


async def test_registry_anon_wins_over_every_credential(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`--registry-anon` sends nothing, even where a credential is configured."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("RELOCATOR_REGISTRY_HOSTNAME", "dest.example")
    monkeypatch.setenv("RELOCATOR_REGISTRY_USERNAME", "u")
    monkeypatch.setenv("RELOCATOR_REGISTRY_PASSWORD", "p")

    assert (await keychain(_args("--registry-anon")).get("dest.example")).anonymous
    assert not (await keychain(_args()).get("dest.example")).anonymous


@pytest.mark.parametrize(
    ("flags", "destination", "expected"),
    [
        (("--registry-password", "p"), ("-r", "d.example/x"), "needs --registry-username"),
        (("--registry-username", "u"), ("--repository-template", "d.example/{repository}"),
         "need -r"),
    ],
)
def test_credential_flags_that_cannot_apply_are_one_line(
    flags: tuple[str, ...], destination: tuple[str, ...], expected: str
) -> None:
    """A password alone, or no single destination registry: refused, naming why."""
    with pytest.raises(InputError, match=expected):
        keychain(_args(*flags, destination=destination))


def test_retry_count_and_response_timeout_set_the_transport_limits() -> None:
    """`--registry-retry-count` bounds retries; the header timeout bounds stalls."""
    settings = transport_settings(
        _args("--registry-retry-count", "0", "--registry-response-header-timeout", "45s")
        .registries
    )

    assert (0, 45.0) == (settings.retry.attempts, settings.read_timeout)
    assert TransportSettings() == transport_settings(_args().registries)
