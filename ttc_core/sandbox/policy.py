"""Submission-time policy for code verifiers: is there a sandbox, may this key send tests.

Kept apart from the backends so that the API checks a job without starting anything but
the (cached) probe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ttc_core.errors import InputError, LimitError
from ttc_core.sandbox import SandboxUnavailable, check_code_allowed, config_from_settings

if TYPE_CHECKING:
    from ttc_core.settings import Settings

__all__ = ["check_code_submission"]


def check_code_submission(settings: Settings, *, admin: bool) -> None:
    """Refuse a ``code`` verifier when no strong sandbox is available (``verifier.kind``,
    422) or when ``code_tests_admin_only`` keeps tenant-written tests to admin keys
    (``verifier.tests``, 403)."""
    try:
        check_code_allowed(config_from_settings(settings))
    except SandboxUnavailable as exc:
        raise InputError(
            f"verifier.kind: 'code' is refused on this server: {exc}", field="verifier.kind"
        ) from None
    if settings.code_tests_admin_only and not admin:
        raise LimitError(
            "verifier.tests: this server runs tenant-written tests for admin keys only "
            "(code_tests_admin_only)",
            field="verifier.tests",
            status=403,
        )
