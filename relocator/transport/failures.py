"""
aiohttp's and the OS's network exceptions as one-line `TransportError`s with a hint.

aiohttp's messages carry object reprs (`ssl:<ssl.SSLContext object at 0x…>`), errno
lists and parser internals; a user needs to know which mistake it most likely was: a
wrong port, plain http sent to a TLS port or the reverse, a name that does not
resolve, a certificate not trusted.
"""

from __future__ import annotations

import errno
import ssl

import aiohttp

from relocator.errors import TransportError, tidy

# What TLS servers answer to a plain-http request: Go's net/http (distribution, Harbor,
# zot) and nginx. aiohttp may parse it as a 400 or fail on the bytes that follow.
_HTTP_TO_TLS_MARKERS = (
    "Client sent an HTTP request to an HTTPS server",
    "The plain HTTP request was sent to HTTPS port",
)


def speaks_tls(text: str) -> bool:
    """Whether a response body or parser error says plain http reached a TLS port."""
    return any(marker in text for marker in _HTTP_TO_TLS_MARKERS)


def http_to_tls(host: str) -> TransportError:
    """The error for plain http sent to a port that speaks TLS."""
    return TransportError(
        f"{host} answers https, not plain http",
        host=host,
        temporary=False,
        hint=f"the registry speaks https: drop --registry-insecure for {host}",
    )


def network_error(exc: BaseException, host: str, what: str) -> TransportError:
    """`exc`, raised while `what` talked to `host`, as a one-line `TransportError`."""
    text = str(exc)
    if "WRONG_VERSION_NUMBER" in text:
        return TransportError(
            f"{host} does not answer https (no TLS on that port)",
            host=host,
            temporary=False,
            hint=f"for a plain-http registry pass --registry-insecure {host}",
        )
    if speaks_tls(text):
        return http_to_tls(host)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return TransportError(
            f"TLS verification failed for {host}: {_tls_reason(exc)}",
            host=host,
            temporary=False,
            hint="pass --registry-ca-cert-path with the registry's CA, "
            "or --registry-verify-certs=false to skip verification",
        )
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return TransportError(
            f"cannot resolve {host}", host=host, temporary=False,
            hint="check the registry name in the image reference, and the DNS of this machine",
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _connect_error(exc, host)
    if isinstance(exc, aiohttp.InvalidURL):
        return TransportError(f"invalid URL for {host}", host=host, temporary=False)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return TransportError(f"{what} from {host} timed out", host=host, temporary=True)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransportError(
            f"{what} from {host} failed: the server closed the connection", host=host,
            temporary=True,
        )
    return TransportError(f"{what} from {host} failed: {_reason(exc)}", host=host, temporary=True)


def _connect_error(exc: aiohttp.ClientConnectorError, host: str) -> TransportError:
    cause = exc.os_error
    number = getattr(cause, "errno", None)
    if isinstance(cause, ConnectionRefusedError) or number == errno.ECONNREFUSED:
        return TransportError(
            f"cannot connect to {host}: connection refused (is a registry listening on {host}?)",
            host=host,
            temporary=True,
            hint="check the port in the image reference or repository",
        )
    reason = getattr(cause, "strerror", None) or _reason(cause)
    return TransportError(f"cannot connect to {host}: {reason}", host=host, temporary=True)


def _tls_reason(exc: BaseException) -> str:
    # The verification error names the cause ("self-signed certificate in certificate
    # chain"); aiohttp's own text wraps it in reprs of the connection key.
    for cause in (getattr(exc, "certificate_error", None), getattr(exc, "os_error", None)):
        if isinstance(cause, ssl.SSLCertVerificationError) and cause.verify_message:
            return str(cause.verify_message)
        if isinstance(cause, ssl.SSLError) and cause.reason:
            return str(cause.reason).lower().replace("_", " ")
    return _reason(exc)


def _reason(exc: BaseException) -> str:
    """The first line of `exc`'s text (or its kind), at most 200 characters, no reprs."""
    if isinstance(exc, aiohttp.ClientPayloadError):
        # aiohttp's text nests the repr of its parser's exception.
        return "the response body was cut short"
    if isinstance(exc, aiohttp.ClientResponseError) and exc.message:
        # A response that did not parse: `400, message='Data after ...'` is noise.
        text = f"unreadable response ({exc.message})"
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = str(exc)
    lines = text.splitlines()
    first = tidy(lines[0]) if lines else ""
    return first[:200] if first.strip() else "connection error"
