"""Fixtures for integration tests only: per-test registries and clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import FaultProxy, Registry, RegistryClient, running_registry


@pytest.fixture
def fresh_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_binary: str
) -> Iterator[Registry]:
    """A plain-http registry of this test alone: empty at start, stopped at the end."""
    with running_registry(tmp_path_factory.mktemp("fresh-registry"), binary=registry_binary) as reg:
        yield reg


@pytest.fixture
def client(registry: Registry) -> Iterator[RegistryClient]:
    """An independent client for `registry` (to seed sources and check destinations)."""
    with registry.client() as c:
        yield c


@pytest.fixture
def client2(registry2: Registry) -> Iterator[RegistryClient]:
    """An independent client for `registry2`."""
    with registry2.client() as c:
        yield c


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    """A fault proxy in front of the shared source registry."""
    with FaultProxy(registry.url) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def proxy2(registry2: Registry) -> Iterator[FaultProxy]:
    """A fault proxy in front of the shared destination registry."""
    with FaultProxy(registry2.url) as fault_proxy:
        yield fault_proxy
