"""
Fetching a bearer token from the realm a registry's challenge names (the Docker token
protocol), and what to tell a user whose credentials were refused.
"""

from __future__ import annotations

import aiohttp
from multidict import CIMultiDict

from relocator import redaction
from relocator.errors import TEMPORARY_STATUS, AuthError, RegistryError
from relocator.transport import urls
from relocator.transport.auth import MAX_TOKEN_BODY, Challenge, Scope, parse_token_response
from relocator.transport.credentials import Credential
from relocator.transport.failures import network_error
from relocator.transport.guard import Guard, token_realm
from relocator.transport.response import read_capped
from relocator.transport.retry import parse_retry_after
from relocator.transport.wire import Wire


async def fetch_token(
    wire: Wire,
    guard: Guard,
    host: str,
    challenge: Challenge,
    scopes: tuple[Scope, ...],
    credential: Credential,
    *,
    http_hosts: frozenset[str],
) -> tuple[str, float]:
    """
    A token for `scopes` on `host` from the challenge's realm, and its lifetime.

    Raises:
        AuthError: The realm refused, or is missing.
        RegistryError: The token service failed for now (temporary).
        TransportError: The network failed.
    """
    realm = challenge.realm
    if not realm:
        raise AuthError(f"{host} sent a Bearer challenge without realm", host=host, status=401)
    registry_url = f"{'http' if host in http_hosts else 'https'}://{host}/"
    realm = token_realm(
        registry_url, realm, insecure_hosts=http_hosts, guard=guard
    )
    service = challenge.params.get("service", "")
    scope_values = [str(s) for s in scopes]
    # A scope the registry named in its challenge (e.g. insufficient_scope) is asked too.
    if challenge.params.get("scope") and challenge.params["scope"] not in scope_values:
        scope_values.append(challenge.params["scope"])
    headers = CIMultiDict({"User-Agent": wire.settings.user_agent})
    session = wire.session()
    try:
        if credential.identity_token:
            redaction.remember(credential.identity_token)
            form = {
                "grant_type": "refresh_token",
                "refresh_token": credential.identity_token,
                "service": service,
                "client_id": "relocator",
                "scope": " ".join(scope_values),
            }
            resp = await session.post(
                realm, data=form, headers=headers, allow_redirects=False,
                proxy=wire.proxy_for(realm),
                ssl=wire.ssl_for(realm),
                timeout=wire.token_timeout(),
            )
        else:
            query = [("service", service)] + [("scope", s) for s in scope_values]
            if credential.username is not None:
                headers["Authorization"] = "Basic " + redaction.remember_basic(
                    credential.username, credential.password
                )
            resp = await session.get(
                realm, params=query, headers=headers, allow_redirects=False,
                proxy=wire.proxy_for(realm),
                ssl=wire.ssl_for(realm),
                timeout=wire.token_timeout(),
            )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise network_error(exc, urls.host_of(realm), "token request") from None
    try:
        if resp.status in TEMPORARY_STATUS:
            # A token service hiccup is not a login problem: retried like any 5xx.
            raise RegistryError(
                f"token endpoint {urls.redact(realm)} answered HTTP {resp.status}",
                host=host,
                status=resp.status,
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            )
        if resp.status != 200:
            raise AuthError(
                f"token endpoint {urls.redact(realm)} refused access to "
                f"{' '.join(scope_values) or host} (HTTP {resp.status})",
                host=host,
                status=resp.status if resp.status in (401, 403) else 401,
                hint=login_hint(host, credential),
            )
        body = await read_capped(resp, MAX_TOKEN_BODY, what=f"token from {host}")
    finally:
        resp.release()
    return parse_token_response(body, host=host)


def login_hint(host: str, credential: Credential) -> str:
    """What to do when `host` refused `credential`, for an error's hint."""
    if credential.anonymous:
        return (
            f"no credentials found for {host}: run `docker login {host}` or set "
            "RELOCATOR_REGISTRY_HOSTNAME_0/_USERNAME_0/_PASSWORD_0"
        )
    return f"the credentials from {credential.source} were refused by {host}"
