"""
From `Registries` to what the transport and the stores take: settings, credentials,
the registry store. imgpkg's credential and limit flags land here too.
"""

from __future__ import annotations

import dataclasses

from relocator.config.mirror import MirrorConfig
from relocator.errors import InputError
from relocator.oci import Repository
from relocator.store import RangePolicy, RegistryStore
from relocator.transport import Credential, HttpClient, Keychain, TransportSettings, urls

from .requests import Registries


def transport_settings(registries: Registries) -> TransportSettings:
    """
    The transport settings `registries` describes.

    Raises:
        InputError: A CA certificate file does not exist.
    """
    for path in registries.ca_cert_paths:
        if not path.is_file():
            raise InputError(f"--registry-ca-cert-path {path}: no such file")
    settings = dataclasses.replace(
        registries.transport or TransportSettings(),
        ca_cert_paths=registries.ca_cert_paths,
        verify_certs=registries.verify_certs,
        insecure_hosts=frozenset(h.lower() for h in registries.insecure_hosts),
        insecure_all=registries.insecure_all,
        concurrency=registries.concurrency,
        retry=registries.retry,
    )
    if registries.retry_attempts is not None:
        settings = dataclasses.replace(
            settings, retry=dataclasses.replace(settings.retry, attempts=registries.retry_attempts)
        )
    if registries.stall_timeout is not None:
        # relocator has no wait for headers alone: its stall timeout covers headers and
        # every later pause of a body, so the same bound applies there too.
        settings = dataclasses.replace(settings, read_timeout=registries.stall_timeout)
    return settings


def mirror_settings(registries: Registries, config: MirrorConfig) -> TransportSettings:
    """`transport_settings`, with the mirror config's per-registry limits added."""
    settings = transport_settings(registries)
    # Limits are kept per API host: Docker Hub's images are named index.docker.io but
    # served by registry-1.docker.io.
    limits = {urls.api_host(r.host): r for r in config.registries}
    return dataclasses.replace(
        settings,
        insecure_hosts=settings.insecure_hosts | {h for h, r in limits.items() if r.insecure},
        per_host_concurrency={
            h: r.concurrency for h, r in limits.items() if r.concurrency is not None
        },
        per_host_rps={
            h: r.requests_per_second for h, r in limits.items()
            if r.requests_per_second is not None
        },
    )


def keychain(registries: Registries, destination: str | None) -> Keychain:
    """
    Where credentials come from: the environment and docker's config, unless
    `anonymous`. A pinned credential is for the destination registry only: imgpkg
    sends it to every registry, which would hand it to the source registries too.

    Raises:
        InputError: A pinned credential without one destination repository, or a
            password without a username.
    """
    pinned = registries.credentials
    if pinned is None or (pinned.username, pinned.password, pinned.token) == (None,) * 3:
        return Keychain(anonymous=registries.anonymous)
    if pinned.password is not None and pinned.username is None:
        raise InputError("--registry-password needs --registry-username")
    if destination is None:
        raise InputError(
            "--registry-username/--registry-password/--registry-token need -r; with "
            "--repository-template set RELOCATOR_REGISTRY_HOSTNAME/_USERNAME/_PASSWORD "
            "for each destination registry"
        )
    host = Repository.parse(destination).registry
    credential = Credential(
        username=pinned.username,
        password=pinned.password,
        registry_token=pinned.token,
        source="--registry-username" if pinned.username is not None else "--registry-token",
    )
    return Keychain(pinned={host: credential}, anonymous=registries.anonymous)


def registry_store(client: HttpClient, registries: Registries) -> RegistryStore:
    """The registry store of a copy, as `registries` describes it."""
    return RegistryStore(
        client,
        verify_uploads=registries.verify_blobs,
        ranges=RangePolicy(streams=registries.range_streams),
    )
