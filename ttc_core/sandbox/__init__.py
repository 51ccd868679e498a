"""Sandboxes for untrusted code (code-verifier programs and tenant-written tests).

A :class:`SandboxBackend` runs a Python script with a few files beside it under
:class:`SandboxLimits` and returns a :class:`SandboxOutcome`:

* ``bwrap`` (:mod:`.bwrap`): the strong one: bubblewrap namespaces, a read-only minimal
  root, a uid of its own per run, per-tree memory and process limits;
* ``unsafe-none`` (:mod:`.unsafe`): a plain subprocess, for trusted tenants only.

Which one runs is the operator's ``TTC_CODE_SANDBOX``: ``auto`` (the default) is bwrap
when :func:`~ttc_core.sandbox.probe.probe_sandbox` finds it strong on this host, and
otherwise **no backend**: code verification is refused (at submission with a 4xx naming
``verifier.kind``, and on a worker that lacks it with a failed verification), never run
in something weaker. ``bwrap`` requires it (the API does not probe then: the setting says
the workers have it). ``unsafe-none`` must be asked for by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from ttc_core.sandbox.limits import SandboxConfig, SandboxLimits
from ttc_core.sandbox.process import SandboxOutcome

if TYPE_CHECKING:
    from ttc_core.settings import Settings

__all__ = [
    "SANDBOX_MODES",
    "SandboxBackend",
    "SandboxConfig",
    "SandboxLimits",
    "SandboxOutcome",
    "SandboxUnavailable",
    "check_code_allowed",
    "config_from_settings",
    "select_backend",
]

#: Values of ``TTC_CODE_SANDBOX``.
SANDBOX_MODES = ("auto", "bwrap", "unsafe-none")


class SandboxUnavailable(Exception):
    """No sandbox strong enough for untrusted code on this host (the message says why)."""


class SandboxBackend(Protocol):
    """Runs ``python -I <box>/<script> <box>`` with ``files`` in a read-only ``<box>``,
    writing ``stdin`` to it, in a writable private working directory; kills the whole tree
    at the wall limit or when the caller is cancelled, and leaves nothing behind."""

    name: str
    #: Whether untrusted tenants' code may run in it.
    strong: bool
    config: SandboxConfig

    async def run_python(
        self, files: Mapping[str, str], script: str, stdin: bytes, limits: SandboxLimits
    ) -> SandboxOutcome: ...


def config_from_settings(settings: Settings) -> SandboxConfig:
    return SandboxConfig(
        mode=settings.code_sandbox,
        uid_base=settings.code_sandbox_uid_base,
        slots=settings.code_sandbox_slots,
        max_processes=settings.code_sandbox_max_processes,
        tmp_mb=settings.code_sandbox_tmp_mb,
        max_file_bytes=settings.code_sandbox_max_file_mb * 1024 * 1024,
        max_open_files=settings.code_sandbox_max_open_files,
        python=settings.code_sandbox_python,
        cgroups=settings.code_sandbox_cgroups,
    )


def select_backend(config: SandboxConfig) -> SandboxBackend:
    """The backend for ``config`` on this host; :class:`SandboxUnavailable` when none is."""
    if config.mode == "unsafe-none":
        from ttc_core.sandbox.unsafe import UnsafeNoneBackend

        return UnsafeNoneBackend(config)
    from ttc_core.sandbox.bwrap import BwrapBackend
    from ttc_core.sandbox.probe import probe_sandbox

    found = probe_sandbox(config)
    if found.layout is None:
        raise SandboxUnavailable(
            f"code verification needs a strong sandbox and this worker has none "
            f"({found.problem}); see the README's Security section"
        )
    return BwrapBackend(config, found.layout)


def check_code_allowed(config: SandboxConfig) -> None:
    """Submission-time check: :class:`SandboxUnavailable` when code jobs must be refused.

    ``bwrap`` is the operator's word that the workers have it (the API host may not);
    ``auto`` probes this host.
    """
    if config.mode in ("unsafe-none", "bwrap"):
        return
    select_backend(config)
