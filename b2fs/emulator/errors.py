"""B2 error types of the emulator: each is an HTTP status plus B2's ``code`` and message.

Raised anywhere below ``app`` (api, transfer, auth, store, validate); ``app`` turns them
into B2's JSON error body ``{"status", "code", "message"}``.
"""

from __future__ import annotations


class ApiError(Exception):
    """A B2 error response. Subclasses fix the status and the default code."""

    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"status": self.status, "code": self.code, "message": self.message}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    """Key lacks a capability, or a bucket/name-prefix restriction forbids the call."""

    status, code = 401, "unauthorized"


class BadAuthToken(ApiError):
    status, code = 401, "bad_auth_token"


class ExpiredAuthToken(ApiError):
    status, code = 401, "expired_auth_token"


class Forbidden(ApiError):
    status, code = 403, "cap_exceeded"


class AccessDenied(ApiError):
    """A wrong SSE-C key, or a retention/legal-hold change the key may not make."""

    status, code = 403, "access_denied"


class NotFound(ApiError):
    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class RequestTimeout(ApiError):
    status, code = 408, "request_timeout"


class Conflict(ApiError):
    status, code = 409, "conflict"


class RangeNotSatisfiable(ApiError):
    status, code = 416, "range_not_satisfiable"


class TooManyRequests(ApiError):
    status, code = 429, "too_many_requests"


class InternalError(ApiError):
    status, code = 500, "internal_error"


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"
