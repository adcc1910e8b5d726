"""Typed errors of the B2 client: one class per B2 error code, plus client-side ones.

``error_from_response`` turns an HTTP error answer into the right class; the retry
loop in ``b2fs.b2.core`` reads ``retryable`` / ``ambiguous`` to decide what to do.
Messages carry the call name, status, code and B2's message, never a header,
token or key (B2 error bodies hold none).
"""

from __future__ import annotations

from typing import Any, ClassVar


class B2Error(Exception):
    """Base of every error the client raises.

    ``status`` is the HTTP status (``None`` for client-side or network errors),
    ``code`` the B2 error code, ``call`` the API name that failed.
    ``retryable``: the retry loop tries again. ``ambiguous``: the request may have
    taken effect on the server even though it failed (drives idempotent recovery).
    """

    retryable: ClassVar[bool] = False
    default_code: ClassVar[str] = "client_error"

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        code: str | None = None,
        call: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code or self.default_code
        self.call = call
        self.retry_after = retry_after
        self.attempts = 1
        self.auth_generation: int | None = None  # account token generation that failed
        self.renewable = False  # an expired token that re-authorizing / a new URL fixes
        self.after_ambiguous = False  # an earlier attempt of the call may have taken effect
        super().__init__(str(self))

    @property
    def ambiguous(self) -> bool:
        return self.status is not None and self.status >= 500

    def __str__(self) -> str:
        where = f"{self.call}: " if self.call else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{where}{status}{self.code}: {self.message}".rstrip(": ")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


# -- 400: the caller's mistake; never retried --------------------------------------------
class BadRequest(B2Error):
    default_code = "bad_request"


class BadJson(BadRequest):
    default_code = "bad_json"


class BadBucketId(BadRequest):
    default_code = "bad_bucket_id"


class DuplicateBucketName(BadRequest):
    default_code = "duplicate_bucket_name"


class TooManyBuckets(BadRequest):
    default_code = "too_many_buckets"


class NoSuchFile(BadRequest):
    default_code = "no_such_file"


class FileNotPresent(BadRequest):
    default_code = "file_not_present"


class AlreadyHidden(BadRequest):
    default_code = "already_hidden"


class MissingPart(BadRequest):
    default_code = "missing_part"


class PartSha1Mismatch(BadRequest):
    default_code = "part_sha1_mismatch"


class SourceTooLarge(BadRequest):
    default_code = "source_too_large"


class AuthTokenLimit(BadRequest):
    default_code = "auth_token_limit"


class FileLockError(BadRequest):
    """Object Lock refuses the request: it cannot be turned off, the bucket has none
    (``bucket_missing_file_lock``), or the bucket is a replication source."""

    default_code = "file_lock_conflict"


class RetentionInThePast(BadRequest):
    default_code = "retain_until_timestamp_must_be_in_future"


class CustomTimestampNotAllowed(BadRequest):
    """The account may not set upload timestamps (B2 enables it on request)."""

    default_code = "custom_timestamp_not_allowed"


# -- 401 ------------------------------------------------------------------------------------
class Unauthorized(B2Error):
    """The key lacks the capability, bucket or name prefix for this call (or bad credentials)."""

    default_code = "unauthorized"


class InvalidAuthToken(Unauthorized):
    """The token is no longer good: the client re-authorizes (or gets a new upload URL)."""

    default_code = "bad_auth_token"


class BadAuthToken(InvalidAuthToken):
    default_code = "bad_auth_token"


class ExpiredAuthToken(InvalidAuthToken):
    default_code = "expired_auth_token"


# -- 403: account caps ----------------------------------------------------------------------
class AccessDenied(B2Error):
    """Refused for this key and these parameters: a wrong SSE-C key, a retention change or
    a delete that Object Lock forbids, an account cap (subclasses)."""

    default_code = "access_denied"


class CapExceeded(AccessDenied):
    default_code = "cap_exceeded"


class TransactionCapExceeded(CapExceeded):
    default_code = "transaction_cap_exceeded"


class StorageCapExceeded(CapExceeded):
    default_code = "storage_cap_exceeded"


# -- 404 / 405 / 409 / 416 ----------------------------------------------------------------------
class NotFound(B2Error):
    default_code = "not_found"


class BucketNotFound(NotFound):
    """``get_bucket`` found no bucket of that name (visible to this key)."""

    default_code = "bucket_not_found"


class MethodNotAllowed(B2Error):
    default_code = "method_not_allowed"


class Conflict(B2Error):
    default_code = "conflict"


class RangeNotSatisfiable(B2Error):
    default_code = "range_not_satisfiable"


# -- transient: retried with backoff ------------------------------------------------------------
class TransientError(B2Error):
    retryable = True


class RequestTimeout(TransientError):
    default_code = "request_timeout"


class TooManyRequests(TransientError):
    default_code = "too_many_requests"


class InternalError(TransientError):
    default_code = "internal_error"


class ServiceUnavailable(TransientError):
    default_code = "service_unavailable"


class NetworkError(TransientError):
    """Connect, read, write, reset or timeout below HTTP.

    ``sent`` is False when the request surely never reached the server (connect
    failed), True when it may have been processed.
    """

    default_code = "network_error"

    def __init__(self, message: str = "", *, call: str = "", sent: bool = True) -> None:
        self.sent = sent
        super().__init__(message, call=call)

    @property
    def ambiguous(self) -> bool:
        return self.sent


class CertificateError(NetworkError):
    """The server's TLS certificate was refused (not retried: it will not get better)."""

    retryable = False
    default_code = "certificate_error"


# -- client-side ---------------------------------------------------------------------------------
class Sha1Mismatch(B2Error):
    """Downloaded bytes do not match the stored SHA-1 (the partial file is removed)."""

    default_code = "sha1_mismatch"


class UnexpectedResponse(B2Error):
    """The server answered something the protocol does not allow (e.g. a bad Content-Range)."""

    default_code = "unexpected_response"


class SourceError(B2Error):
    """An upload source read returned fewer bytes than promised, or changed size."""

    default_code = "source_error"


_BY_CODE: dict[str, type[B2Error]] = {
    cls.default_code: cls
    for cls in (
        BadRequest,
        BadJson,
        BadBucketId,
        DuplicateBucketName,
        TooManyBuckets,
        NoSuchFile,
        FileNotPresent,
        AlreadyHidden,
        MissingPart,
        PartSha1Mismatch,
        SourceTooLarge,
        AuthTokenLimit,
        FileLockError,
        RetentionInThePast,
        CustomTimestampNotAllowed,
        Unauthorized,
        BadAuthToken,
        ExpiredAuthToken,
        AccessDenied,
        CapExceeded,
        TransactionCapExceeded,
        StorageCapExceeded,
        NotFound,
        MethodNotAllowed,
        Conflict,
        RangeNotSatisfiable,
        RequestTimeout,
        TooManyRequests,
        InternalError,
        ServiceUnavailable,
    )
}
_BY_CODE["bucket_missing_file_lock"] = FileLockError
_BY_CODE["source_replication_conflict"] = FileLockError

_BY_STATUS: dict[int, type[B2Error]] = {
    400: BadRequest,
    401: Unauthorized,
    403: AccessDenied,
    404: NotFound,
    405: MethodNotAllowed,
    408: RequestTimeout,
    409: Conflict,
    416: RangeNotSatisfiable,
    429: TooManyRequests,
    500: InternalError,
    503: ServiceUnavailable,
}


def error_class(status: int, code: str | None) -> type[B2Error]:
    """The class for an HTTP status and B2 code (status wins for 5xx and 408/429)."""
    if status >= 500 or status in (408, 429):
        return _BY_STATUS.get(status, InternalError if status >= 500 else TransientError)
    by_code = _BY_CODE.get(code or "")
    if by_code is not None:
        return by_code
    return _BY_STATUS.get(status, B2Error)


def error_from_response(
    call: str, status: int, body: Any, retry_after_header: str | None
) -> B2Error:
    """Build the typed error for a non-2xx answer whose JSON body (if any) is ``body``."""
    code = message = None
    if isinstance(body, dict):
        code = body.get("code") if isinstance(body.get("code"), str) else None
        message = body.get("message") if isinstance(body.get("message"), str) else None
    retry_after = None
    if retry_after_header:
        try:
            retry_after = max(0.0, float(retry_after_header))
        except ValueError:
            retry_after = None
    cls = error_class(status, code)
    return cls(message or "", status=status, code=code, call=call, retry_after=retry_after)
