"""The exception tree of ttc_core.

    TTCError
    ├── InputError            bad user input; the API answers 4xx naming ``field``
    │   ├── UnknownNameError  an unknown strategy, endpoint or verifier
    │   └── LimitError        over a configured limit (size, N, prompt length)
    ├── NotFoundError         no such job or node (for this tenant)
    ├── ConflictError         the action does not fit the job's state
    ├── AuthError             no valid API key (401)
    ├── ForbiddenError        a valid key without the admin role, on an admin route (403)
    ├── QuotaError            over a tenant's rate or active-job quota (429, Retry-After)
    └── InferenceError        an inference request failed after its retries
        ├── RetryableInferenceError   429, 5xx, timeouts, dropped connections
        └── RejectedRequestError      the server refused the request (4xx)

HTTP statuses are mapped in one place (``ttc_api.problems``); retry policy in one place
(``ttc_core.inference.retry``).
"""

from __future__ import annotations


class TTCError(Exception):
    """Base of every error ttc raises on purpose."""


class InputError(TTCError):
    status = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownNameError(InputError):
    pass


class LimitError(InputError):
    def __init__(self, message: str, *, field: str | None = None, status: int = 422) -> None:
        super().__init__(message, field=field)
        self.status = status


class NotFoundError(TTCError):
    pass


class ConflictError(TTCError):
    pass


class AuthError(TTCError):
    """No key, a malformed key, or an unknown or revoked one (the API says 401)."""


class ForbiddenError(TTCError):
    pass


class QuotaError(TTCError):
    """Over a per-tenant limit; ``retry_after`` is whole seconds (at least 1)."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class InferenceError(TTCError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableInferenceError(InferenceError):
    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class RejectedRequestError(InferenceError):
    def __init__(self, message: str, *, status: int | None = None, body: str | None = None):
        super().__init__(message, status=status)
        self.body = body
