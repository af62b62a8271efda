"""
HTTP to registries: the aiohttp session, auth, retries and per-host limits.

The only package that imports aiohttp; the layers above see `HttpClient`, `Response` and
`relocator.errors`, never an aiohttp type.
"""

from __future__ import annotations

from relocator.transport import urls
from relocator.transport.auth import Scope
from relocator.transport.client import HttpClient
from relocator.transport.credentials import Credential, Keychain
from relocator.transport.hosts import Hosts, HostState
from relocator.transport.response import Response
from relocator.transport.retry import RetryPolicy
from relocator.transport.settings import TransportSettings

__all__ = (
    "Credential",
    "HostState",
    "Hosts",
    "HttpClient",
    "Keychain",
    "Response",
    "RetryPolicy",
    "Scope",
    "TransportSettings",
    "urls",
)
