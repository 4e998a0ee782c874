"""The error envelope every client sees: ``{"error": {"type", "message", "code", "details"}}``.

The core raises these; the HTTP edge turns them into responses. Types and status codes follow the
spec's table (api-reference-overview), so SDKs map them to their usual exception classes.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error with its HTTP status and its place in the spec's envelope."""

    status: int = 500
    type: str = "internal_error"
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        status: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def envelope(self) -> dict[str, Any]:
        return {
            "error": {
                "type": self.type,
                "message": self.message,
                "code": self.code,
                "details": self.details,
            }
        }


class InvalidRequest(ApiError):
    status, type, code = 400, "invalid_request", "invalid_request"


class AuthenticationFailed(ApiError):
    status, type, code = 401, "authentication_failed", "invalid_api_key"


class InsufficientBalance(ApiError):
    status, type, code = 402, "insufficient_balance", "payment_required"

    def __init__(self, available_msat: int, required_msat: int) -> None:
        super().__init__(
            f"Insufficient balance. Current: {available_msat} msat, Required: {required_msat} msat",
            details={"required": required_msat, "available": available_msat, "unit": "msat"},
        )


class PaymentRequired(ApiError):
    """NUT-24: pay with a Cashu token in ``X-Cashu`` (the payment request is in the same header)."""

    status, type, code = 402, "insufficient_balance", "payment_required"


class Forbidden(ApiError):
    status, type, code = 403, "forbidden", "forbidden"


class NotFound(ApiError):
    status, type, code = 404, "not_found", "not_found"


class PayloadTooLarge(ApiError):
    status, type, code = 413, "invalid_request", "payload_too_large"


class RateLimited(ApiError):
    status, type, code = 429, "rate_limit_exceeded", "rate_limit_exceeded"


class InternalError(ApiError):
    status, type, code = 500, "internal_error", "internal_error"


class UpstreamError(ApiError):
    status, type, code = 502, "upstream_error", "upstream_error"


class ServiceUnavailable(ApiError):
    status, type, code = 503, "service_unavailable", "service_unavailable"


class ConfigError(Exception):
    """A configuration mistake, worded as what the operator should change. Not an API error: it stops
    start-up or a command. Here, not in ``routstr.config``, because a component that finds such a
    mistake (``storage/node_secret.py``) must not import config, which imports the components."""
