"""Verifiers: score finished samples against a reference or with a reward model.

``base`` holds the extension point (:class:`Verifier`, :class:`Candidate`,
:class:`Verdict`); ``spec`` the job JSON; ``registry`` turns a spec into a verifier;
``answers`` the answer extraction and normalization shared with voting.
"""

from ttc_core.verifiers.answers import extract_answer, last_boxed, normalize_answer
from ttc_core.verifiers.base import Candidate, Verdict, Verifier, VerifierError
from ttc_core.verifiers.code import CodeVerifier
from ttc_core.verifiers.exact import ExactVerifier
from ttc_core.verifiers.game24 import Game24Verifier
from ttc_core.verifiers.math_equiv import MathVerifier, math_equivalent, warm_up
from ttc_core.verifiers.regex import RegexVerifier
from ttc_core.verifiers.registry import VERIFIER_KINDS, build_verifier, check_spec
from ttc_core.verifiers.reward_model import RewardModelVerifier
from ttc_core.verifiers.spec import (
    DEFAULT_VERIFIER_SPEC,
    CodeSpec,
    ExactSpec,
    Game24Spec,
    MathSpec,
    RegexSpec,
    RewardModelSpec,
    VerifierSpec,
    VerifierSpecModel,
    parse_verifier_spec,
)

__all__ = [
    "DEFAULT_VERIFIER_SPEC",
    "VERIFIER_KINDS",
    "Candidate",
    "CodeSpec",
    "CodeVerifier",
    "ExactSpec",
    "ExactVerifier",
    "Game24Spec",
    "Game24Verifier",
    "MathSpec",
    "MathVerifier",
    "RegexSpec",
    "RegexVerifier",
    "RewardModelSpec",
    "RewardModelVerifier",
    "Verdict",
    "Verifier",
    "VerifierError",
    "VerifierSpec",
    "VerifierSpecModel",
    "build_verifier",
    "check_spec",
    "extract_answer",
    "last_boxed",
    "math_equivalent",
    "normalize_answer",
    "parse_verifier_spec",
    "warm_up",
]
