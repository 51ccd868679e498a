"""Submission refuses code jobs without a strong sandbox (naming ``verifier.kind``) unless
the operator asked for ``unsafe-none``, and may keep tenant tests to admin keys."""

from __future__ import annotations

import pytest

from ttc_core.errors import InputError
from ttc_core.sandbox import probe as probe_module
from ttc_core.sandbox.cgroup import CgroupSupport
from ttc_core.sandbox.probe import SandboxProbe
from ttc_core.service.submission import JobSpec, validate_job
from ttc_core.settings import Settings

SPEC = {
    "strategy": "best_of_n",
    "endpoint": "sim",
    "prompt": "write add",
    "params": {"n": 2},
    "reference": "x",
    "verifier": {"kind": "code", "tests": "def test_a():\n    assert add(1, 1) == 2\n"},
}


@pytest.fixture
def no_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    weak = SandboxProbe(None, "bubblewrap (bwrap) is not installed", CgroupSupport())
    monkeypatch.setattr(probe_module, "probe_sandbox", lambda config: weak)


@pytest.mark.usefixtures("no_sandbox")
def test_refused_without_a_strong_sandbox() -> None:
    with pytest.raises(InputError) as info:
        validate_job(JobSpec.model_validate(SPEC), Settings(code_sandbox="auto"))
    assert info.value.field == "verifier.kind"
    assert info.value.status == 422
    assert "bwrap" in str(info.value)


@pytest.mark.usefixtures("no_sandbox")
@pytest.mark.parametrize("mode", ["unsafe-none", "bwrap"])
def test_operator_settings_allow_it(mode: str) -> None:
    validate_job(JobSpec.model_validate(SPEC), Settings(code_sandbox=mode))  # type: ignore[arg-type]


@pytest.mark.usefixtures("no_sandbox")
def test_tests_for_admin_keys_only() -> None:
    settings = Settings(code_sandbox="unsafe-none", code_tests_admin_only=True)
    with pytest.raises(InputError) as info:
        validate_job(JobSpec.model_validate(SPEC), settings, admin=False)
    assert (info.value.field, info.value.status) == ("verifier.tests", 403)
    validate_job(JobSpec.model_validate(SPEC), settings, admin=True)
