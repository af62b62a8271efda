"""
The `registries` entries of the `relocator mirror` config: limits and transport per
registry host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from relocator.config.fields import Fields
from relocator.config.yamltree import Scalar, describe
from relocator.errors import InputError
from relocator.oci import DOCKER_HUB, Repository

_REGISTRY_FIELDS = frozenset({"host", "concurrency", "requestsPerSecond", "insecure"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryLimits:
    """An entry of `registries`: limits and transport for one registry host."""

    #: The registry as references name it (`index.docker.io`, `registry.internal:5000`).
    host: str
    #: Concurrent requests and transfers at once (None: `--concurrency`).
    concurrency: int | None = None
    #: Requests started per second, at most (None: unlimited).
    requests_per_second: float | None = None
    #: Reach the host over plain http.
    insecure: bool = False
    where: str = ""


def registry_limits(fields: Fields) -> RegistryLimits:
    """
    One entry of `registries`.

    Raises:
        ConfigError: The entry is malformed (one line naming FILE:LINE).
    """
    fields.refuse_unknown(_REGISTRY_FIELDS)
    text = fields.get_str("host")
    if not text:
        raise fields.error("a registry needs host (e.g. registry.internal:5000)")
    host = _registry_host(text)
    if host is None:
        why = (
            "give the host alone, without a path" if "/" in text
            else "it needs a '.' or a ':' port, or is localhost"
        )
        raise fields.error(
            f"'{text}' is not a registry host: {why} (e.g. registry.internal, "
            "127.0.0.1:5000)",
            fields.get("host"),
        )
    concurrency = _number(fields, "concurrency", integer=True)
    rate = _number(fields, "requestsPerSecond", integer=False)
    return RegistryLimits(
        host=host,
        concurrency=int(concurrency) if concurrency is not None else None,
        requests_per_second=rate,
        insecure=bool(fields.get_bool("insecure")),
        where=f"{fields.source}:{fields.node.line}",
    )


def _registry_host(text: str) -> str | None:
    """`text` as references name the registry (`docker.io` is `index.docker.io`)."""
    lowered = text.lower()
    if "/" in lowered:
        return None
    try:
        repo = Repository.parse(f"{lowered}/probe")
    except InputError:
        return None
    if repo.registry == DOCKER_HUB and lowered not in ("docker.io", DOCKER_HUB):
        # No '.', ':' or localhost: Docker reads the word as a path on Docker Hub.
        return None
    return repo.registry


def _number(fields: Fields, key: str, *, integer: bool) -> float | None:
    node = fields.get(key)
    if node is None:
        return None
    value = node.value if isinstance(node, Scalar) else None
    number: float | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, float) and not integer:
        number = value
    if number is None or not math.isfinite(number) or number <= 0:
        expected = "a whole number of at least 1" if integer else "a number above 0"
        raise fields.error(f"expected {key} to be {expected}, got {describe(node)}", node)
    return number
