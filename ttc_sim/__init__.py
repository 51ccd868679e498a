"""ttc_sim: a simulated OpenAI-compatible inference server and reward model with task families
of known ground truth, for tests, demos and benchmarks.

Start one in a thread::

    from ttc_sim import SimConfig, SimServer, synthetic_problems

    with SimServer(SimConfig(slots=8)) as sim:
        ...  # OpenAI base URL: sim.base_url; reward model: f"{sim.url}/classify"

See :mod:`ttc_sim.config` for the knobs and the model-name override syntax,
:mod:`ttc_sim.model` for the sample format and step-by-step continuation, :mod:`ttc_sim.prm` for
the process reward model (``/pooling``, ``/v1/prm``) and :mod:`ttc_sim.judges` for the value,
critique and revision prompts.
"""

from .answers import answers_match, extract_answer
from .config import SimConfig, config_for_model
from .judges import parse_judge_prompt
from .metrics import Metrics
from .model import Sample, distractor_answers, generate
from .prm import step_scores
from .reward import reward_score, score_responses, score_text
from .runner import SimServer, add_sim_arguments, config_from_args, serve
from .server import SimApp, create_app
from .steps import STEP_DELIMITER, final_step, is_correct, judge_chunks
from .tasks import (
    Problem,
    ProblemIndex,
    choice_problems,
    find_problem,
    game24_problems,
    gsm8k_problems,
    synthetic_problems,
)
from .tokens import count_tokens, split_tokens

__all__ = [
    "STEP_DELIMITER",
    "Metrics",
    "Problem",
    "ProblemIndex",
    "Sample",
    "SimApp",
    "SimConfig",
    "SimServer",
    "add_sim_arguments",
    "answers_match",
    "choice_problems",
    "config_for_model",
    "config_from_args",
    "count_tokens",
    "create_app",
    "distractor_answers",
    "extract_answer",
    "final_step",
    "find_problem",
    "game24_problems",
    "generate",
    "gsm8k_problems",
    "is_correct",
    "judge_chunks",
    "parse_judge_prompt",
    "reward_score",
    "score_responses",
    "score_text",
    "serve",
    "split_tokens",
    "step_scores",
    "synthetic_problems",
]
