"""The exception tree.  Each class knows its HTTP status and its OpenAI error ``type``.

::

    TollwayError                      500 server_error
    ├── BadRequest                    400 invalid_request_error
    │   └── PayloadTooLarge           413 invalid_request_error
    ├── AuthenticationError           401 authentication_error
    ├── PermissionDenied              403 permission_error
    ├── InsufficientCredits           402 insufficient_credits
    ├── RateLimited                   429 rate_limit_error   (carries Retry-After)
    ├── ModelNotFound                 404 not_found_error
    ├── NotFound                      404 not_found_error
    ├── NoEndpointAvailable           503 service_unavailable (which constraint excluded what)
    ├── ServiceUnavailable            503 service_unavailable (a dependency such as Redis is down)
    └── UpstreamError                 502 upstream_error     (status and raw body kept)
        └── AllAttemptsFailed         502 upstream_error     (every attempt listed)

Handlers raise these; one place (``tollway.app``) renders them.  Unknown exceptions
become a 500 with a generic message: a stack trace never reaches a client.
"""

from __future__ import annotations

from typing import Any


class TollwayError(Exception):
    status = 500
    type = "server_error"
    code: str | int | None = None

    def __init__(self, message: str, *, metadata: dict[str, Any] | None = None,
                 code: str | int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's error shape, with OpenRouter's ``metadata`` when there is any."""
        err: dict[str, Any] = {"message": self.message, "type": self.type,
                               "code": self.code if self.code is not None else self.status}
        if self.metadata:
            err["metadata"] = self.metadata
        return {"error": err}

    def to_anthropic(self) -> dict[str, Any]:
        """Anthropic's error shape, for the /v1/messages ingress."""
        kind = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error"}.get(
            self.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": self.message}}


class BadRequest(TollwayError):
    status = 400
    type = "invalid_request_error"


class PayloadTooLarge(BadRequest):
    status = 413


class AuthenticationError(TollwayError):
    status = 401
    type = "authentication_error"


class PermissionDenied(TollwayError):
    status = 403
    type = "permission_error"


class InsufficientCredits(TollwayError):
    status = 402
    type = "insufficient_credits"


class RateLimited(TollwayError):
    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after_s: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers["Retry-After"] = str(max(1, int(retry_after_s)))


class NotFound(TollwayError):
    status = 404
    type = "not_found_error"


class ModelNotFound(NotFound):
    pass


class NoEndpointAvailable(TollwayError):
    status = 503
    type = "service_unavailable"


class ServiceUnavailable(TollwayError):
    status = 503
    type = "service_unavailable"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # A dependency outage is expected to be short: tell clients when to come back.
        self.headers.setdefault("Retry-After", "1")


class UpstreamError(TollwayError):
    """An upstream answered badly or not at all.

    ``upstream_status`` is the provider's HTTP status (None for connect errors and
    timeouts); ``retryable`` says whether another attempt may succeed (never for the
    caller's own 4xx).
    """

    status = 502
    type = "upstream_error"

    def __init__(self, message: str, *, provider: str, upstream_status: int | None = None,
                 raw: str | None = None, retryable: bool = True, **kwargs: Any) -> None:
        metadata: dict[str, Any] = {"provider_name": provider}
        if raw is not None:
            metadata["raw"] = raw
        if upstream_status is not None:
            metadata["upstream_status"] = upstream_status
        super().__init__(message, metadata=metadata, **kwargs)
        self.provider = provider
        self.upstream_status = upstream_status
        self.raw = raw
        self.retryable = retryable
        # The caller's own 4xx is relayed with its status (OpenRouter does the same).
        if upstream_status is not None and 400 <= upstream_status < 500 and not retryable:
            self.status = upstream_status
            self.type = "invalid_request_error"


class AllAttemptsFailed(UpstreamError):
    def __init__(self, message: str, *, attempts: list[dict[str, Any]], last: UpstreamError) -> None:
        super().__init__(message, provider=last.provider, upstream_status=last.upstream_status,
                         raw=last.raw, retryable=False)
        # Several providers failed: a gateway error, whatever each one said (all listed).
        self.status = 502
        self.type = "upstream_error"
        if self.metadata is not None:
            self.metadata["attempts"] = attempts
