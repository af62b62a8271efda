"""
The wire under the client: one aiohttp session per run, and how each URL is reached
(its TLS context, its proxy, its timeouts).
"""

from __future__ import annotations

import ssl
import urllib.request
from contextlib import AbstractAsyncContextManager, nullcontext
from urllib.parse import urlsplit

import aiohttp

from relocator.errors import InputError
from relocator.transport import urls
from relocator.transport.guard import Guard, GuardedConnector, StaticResolver
from relocator.transport.progress import headers_within
from relocator.transport.settings import TransportSettings


class Wire:
    """
    The run's aiohttp session, built on first use, and the per-URL choices of how to
    reach a registry.

    Args:
        settings: TLS, limits and timeouts.
        guard: Judges every connection the session makes.
    """

    def __init__(self, settings: TransportSettings, guard: Guard) -> None:
        self.settings = settings
        self._guard = guard
        self._session: aiohttp.ClientSession | None = None
        # Built on the first https request: loading the CA store costs tens of
        # milliseconds that a run against plain-http registries need not pay. Extra CA
        # files are loaded at once, so a bad one is reported before any work starts.
        self._ssl: ssl.SSLContext | None = (
            _ssl_context(settings) if settings.ca_cert_paths else None
        )
        self._proxies: dict[tuple[str, str], str | None] = {}

    async def aclose(self) -> bool:
        """Close the session; whether there was one."""
        if self._session is None:
            return False
        await self._session.close()
        self._session = None
        return True

    def timeouts(self, total: float | None = None) -> aiohttp.ClientTimeout:
        """The settings' timeouts, with `total` seconds for the whole exchange if given."""
        return aiohttp.ClientTimeout(
            total=total,
            # aiohttp's `connect` covers the wait for a pooled connection too.
            connect=self.settings.pool_timeout + self.settings.connect_timeout,
            sock_connect=self.settings.connect_timeout,
            sock_read=self.settings.read_timeout,
        )

    def token_timeout(self) -> aiohttp.ClientTimeout:
        """The timeouts of a token exchange."""
        # A token exchange is small: all of it, body included, within the response
        # timeout, so a trickling token service cannot hold the run.
        return self.timeouts(total=self.settings.pool_timeout + self.settings.response_timeout)

    def headers_deadline(self, method: str, url: str) -> AbstractAsyncContextManager[None]:
        """
        GET and HEAD get their headers within `response_timeout`; other methods send a
        body first (a streamed upload takes as long as it takes) and a registry may take
        long to commit it, so only the stall and progress rules bound them.
        """
        if method not in ("GET", "HEAD"):
            return nullcontext()
        return headers_within(self.settings.response_timeout, urls.host_of(url), method)

    def session(self) -> aiohttp.ClientSession:
        """The run's session, built on first use."""
        if self._session is None:
            connector = GuardedConnector(
                self._guard,
                resolver=StaticResolver(self.settings.static_hosts)
                if self.settings.static_hosts
                else None,
                # Backstop only: the per-host limiter decides.
                limit_per_host=self.settings.limits.connections_per_host,
                limit=0,
                ttl_dns_cache=300,
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeouts(),
                auto_decompress=False,
                # Proxies are read below; .netrc credentials must never be injected.
                trust_env=False,
                read_bufsize=self.settings.chunk_size,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    def ssl_for(self, url: str) -> ssl.SSLContext | bool:
        """The TLS context for `url` (built on the first https URL)."""
        if not url.startswith("https:"):
            return True  # aiohttp's default; unused for plain http
        if self._ssl is None:
            self._ssl = _ssl_context(self.settings)
        return self._ssl

    def proxy_for(self, url: str) -> str | None:
        """The proxy the environment names for `url`, if any."""
        if not self.settings.use_env_proxy:
            return None
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        # Reading the environment costs more than a small request; the answer for a
        # host does not change during a run.
        if key not in self._proxies:
            bypass = urllib.request.proxy_bypass(key[1])
            self._proxies[key] = None if bypass else urllib.request.getproxies().get(key[0])
        return self._proxies[key]



def _ssl_context(settings: TransportSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    for path in settings.ca_cert_paths:
        # A CA file is the user's input: a wrong one is a bad flag (exit 3), not a
        # network failure.
        try:
            context.load_verify_locations(cafile=str(path))
        except ssl.SSLError:
            raise InputError(
                f"CA certificate file {path} holds no PEM certificate",
                hint="--registry-ca-cert-path takes a PEM file (-----BEGIN CERTIFICATE-----)",
            ) from None
        except OSError as exc:
            raise InputError(
                f"cannot read CA certificate file {path}: {exc.strerror or 'unreadable'}"
            ) from None
    if not settings.verify_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context

