"""
The one exception hierarchy of relocator.

Every error relocator raises on purpose derives from `RelocatorError`; the CLI turns
each into one line on stderr and an exit code (`EXIT_CODES` in `relocator.cli`).
Third-party exceptions are translated at the layer that meets them (aiohttp in
`relocator.transport`, yaml in `relocator.config`), so nothing above sees them.
"""

from __future__ import annotations

import re

# 408 and 429 are "try later"; 5xx except 501/505 are server trouble that often passes.
TEMPORARY_STATUS = frozenset({408, 425, 429, 499, 500, 502, 503, 504, 522})
# Distribution error codes that mean "try again" whatever the status says. A registry
# that found an upload's bytes not matching its digest (DIGEST_INVALID) most likely got
# them damaged in transit: the copy is retried from a fresh source, a bounded number of
# times.
TEMPORARY_CODES = frozenset(
    {"TOOMANYREQUESTS", "UNAVAILABLE", "BLOB_UPLOAD_INVALID", "DIGEST_INVALID"}
)


#: Characters of an outside value (a tag, a name, a header) an error message echoes.
SHOWN_CHARS = 200
# A run of this many characters without a space is not a reference, path or URL we
# built (the longest reference is about 400): it is an outside value echoed in full.
_LONG_RUN = re.compile(r"\S{512,}")
# `<ssl.SSLContext object at 0x7f...>`: a library's repr says nothing to a user.
_OBJECT_REPR = re.compile(r"<[^<>\s]+(?: [^<>\s]+)* object at 0x[0-9a-fA-F]+>")


def shorten(value: str, limit: int = SHOWN_CHARS) -> str:
    """
    `value` as an error message may echo it: whole if short, else its first `limit`
    characters, an ellipsis and its length, so that a 20 MB tag makes a one-line error.
    """
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value)} characters)"


def tidy(message: str) -> str:
    """
    `message` fit for a terminal: one line, library object reprs dropped, and any run of
    512 or more non-space characters shortened (see `shorten`). Every `RelocatorError`
    message passes through here, wherever the values in it came from.
    """
    text = _OBJECT_REPR.sub("", " ".join(message.splitlines()))
    return _LONG_RUN.sub(lambda match: shorten(match.group()), text)


class RelocatorError(Exception):
    """Base class for every error relocator raises on purpose."""

    #: A sentence telling the user what to do next, shown after the message.
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(tidy(message))
        if hint is not None:
            self.hint = tidy(hint)

    @property
    def temporary(self) -> bool:
        """Whether retrying the same operation later may succeed."""
        return False


class InputError(RelocatorError):
    """Something the user gave us (a file, a flag, a reference) is not usable."""


class InvalidReference(InputError):
    """An image reference or repository name does not parse."""


class InvalidDigest(InputError):
    """A digest is not `<algorithm>:<lowercase hex of the right length>`."""


class ConfigError(InputError):
    """A YAML input, config document or lock file is malformed."""


class ManifestError(RelocatorError):
    """A manifest cannot be copied safely: unsupported, ambiguous or malformed."""


class UnsupportedManifest(ManifestError):
    """The manifest is of a kind relocator does not copy (schema 1, unknown types)."""


class IntegrityError(RelocatorError):
    """Bytes did not match the digest or size that names them."""

    @property
    def temporary(self) -> bool:
        # A registry or CDN that served corrupt bytes once may serve good ones next time;
        # the caller bounds how often it tries.
        return True


class DigestMismatch(IntegrityError):
    """Content hashed to another digest than the one it was fetched or stored by."""


class SizeMismatch(IntegrityError):
    """Content had another length than its descriptor says."""


class LimitExceeded(RelocatorError):
    """An untrusted body (manifest, token, error, tar member) was larger than its cap."""


class TransportError(RelocatorError):
    """The network failed: connection refused or reset, DNS, TLS, timeouts."""

    def __init__(
        self, message: str, *, host: str, temporary: bool, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.host = host
        self._temporary = temporary

    @property
    def temporary(self) -> bool:
        """Whether the failure looks passing (resets, timeouts) rather than fatal (DNS, TLS)."""
        return self._temporary


class RegistryError(RelocatorError):
    """The registry answered with an error status, or with an answer we cannot use."""

    def __init__(
        self,
        message: str,
        *,
        host: str,
        status: int | None,
        codes: tuple[str, ...] = (),
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.host = host
        #: The HTTP status; None when the status was fine but the answer was not (see
        #: `MalformedAnswer`) or no registry answered (a credential helper).
        self.status = status
        self.codes = codes
        #: Seconds the registry asked us to wait (`Retry-After`), already capped.
        self.retry_after = retry_after

    @property
    def temporary(self) -> bool:
        """Whether the status or the distribution error codes say "try again"."""
        return self.status in TEMPORARY_STATUS or bool(set(self.codes) & TEMPORARY_CODES)


class AuthError(RegistryError):
    """The registry refused our credentials (401) or our access (403)."""


class BadToken(AuthError):
    """
    A token is unusable: the token endpoint answered no JSON or no token, or a token
    (from there or from the user's configuration) is not a valid header value.
    """

    def __init__(self, message: str, *, host: str, hint: str | None = None) -> None:
        super().__init__(message, host=host, status=None, hint=hint)


class CredentialHelperFailed(AuthError):
    """A Docker credential helper is missing, stuck, failed or answered nonsense."""

    def __init__(self, message: str, *, host: str, hint: str | None = None) -> None:
        super().__init__(message, host=host, status=None, hint=hint)


class MalformedAnswer(RegistryError):
    """
    The registry accepted the request but its answer breaks the distribution protocol:
    a malformed tag or referrers list, pages that loop, an upload without `Location`.
    """

    def __init__(self, message: str, *, host: str, hint: str | None = None) -> None:
        super().__init__(message, host=host, status=None, hint=hint)


class DigestNotKept(MalformedAnswer):
    """
    The registry stored a manifest under another digest than the one pushed, or a tag
    reads back as another image than the one pushed to it.
    """


class ChunkedUploadNeeded(RegistryError):
    """
    The registry refused a blob in a single PUT (400, 405, 411, 413, 415, 416); the
    store now uploads to that host in chunks, so the transfer is retried.
    """

    @property
    def temporary(self) -> bool:
        """Always: the next attempt uses another upload style."""
        return True


class NotFound(RegistryError):
    """The registry does not have the manifest, blob or repository asked for."""


class PullLimitReached(RegistryError):
    """The registry said the account's pull allowance is used up (Docker Hub)."""

    @property
    def temporary(self) -> bool:
        """Never: the allowance comes back in hours, not within a retry's backoff."""
        return False


class UnsafeRedirect(RelocatorError):
    """A registry pointed us at a URL we refuse to follow (scheme downgrade, hop limit)."""


class TarError(InputError):
    """A tarball is malformed or hostile."""


class PartialFailure(RelocatorError):
    """Some images failed while the others were finished (`--keep-going`)."""


class OutOfSync(RelocatorError):
    """`mirror --check`: the destination lacks images or tags the config selects."""


class Interrupted(RelocatorError):
    """The run was cancelled (Ctrl-C or a signal) before it finished."""


class Terminated(Interrupted):
    """The run was asked to stop with SIGTERM (`kill`, a Kubernetes pod eviction)."""


class DeadlineExceeded(RelocatorError):
    """The whole run took longer than the deadline it was given (`--timeout`)."""
