"""OpenAPI examples of the dataset and eval routes (``ttc_api.examples`` holds the rest)."""

from __future__ import annotations

from typing import Any

DATASET_ID = "0c1f6a52-8d0e-4f57-9b6a-3f4c2d1e0a9b"
EVAL_ID = "5b9e2c1a-7f3d-4e8b-a6c0-1d2e3f4a5b6c"
JOB_ID = "7d6f0c1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f"

DATASET_CREATE: dict[str, Any] = {
    "name": "gsm8k-sample",
    "format": "jsonl",
    "content": '{"id": "q1", "prompt": "What is 17 * 23?", "reference": "391"}\n'
    '{"id": "q2", "prompt": "What is 12 + 30?", "reference": 42, "difficulty": 1}\n',
}

DATASET: dict[str, Any] = {
    "id": DATASET_ID,
    "name": "gsm8k-sample",
    "rows": 2,
    "size_bytes": 131,
    "created_at": "2026-12-02T18:00:00Z",
    "preview": [{"id": "q1", "prompt": "What is 17 * 23?", "reference": "391"}],
}

EVAL_SUBMIT: dict[str, Any] = {
    "dataset": DATASET_ID,
    "endpoint": "sim",
    "arms": [
        {"strategy": "best_of_n"},
        {"strategy": "self_consistency"},
        {
            "strategy": "beam_search",
            "params": {"beam_width": 4},
            "prm": {"kind": "prm", "endpoint": "sim-prm", "protocol": "json"},
            "grid": {"n": [4, 16]},
        },
    ],
    "grid": {"n": [1, 2, 4, 8, 16]},
    "seeds": 1,
    "seed": 7,
    "budget": {"max_tokens": 2000000},
}

EVAL_ACCEPTED: dict[str, Any] = {
    "id": EVAL_ID,
    "status": "running",
    "location": f"/v1/evals/{EVAL_ID}",
    "jobs": 8,
    "started": 8,
}

_POINT: dict[str, Any] = {
    "arm": "best_of_n",
    "strategy": "best_of_n",
    "key": "n",
    "value": 4,
    "problems": 2,
    "accuracy": 0.97,
    "ci95": [0.94, 1.0],
    "pass_at_k": 0.97,
    "pass_at_k_ci95": [0.94, 1.0],
    "estimated": True,
    "mean_prompt_tokens": 40.0,
    "total_prompt_tokens": 80.0,
    "mean_completion_tokens": 316.0,
    "total_completion_tokens": 632.0,
    "mean_thinking_tokens": 0.0,
    "total_thinking_tokens": 0.0,
    "mean_requests": 1.0,
    "total_requests": 2.0,
    "mean_cost": 0.0,
    "total_cost": 0.0,
    "mean_wall_s": 0.2,
    "total_wall_s": 0.4,
    "mean_tokens": 356.0,
}

_PROGRESS: dict[str, Any] = {
    "problems": 2,
    "problems_done": 2,
    "jobs": 8,
    "jobs_started": 8,
    "jobs_done": 8,
    "jobs_failed": 0,
    "prompt_tokens": 900,
    "completion_tokens": 12000,
    "thinking_tokens": 0,
    "requests": 30,
    "cost": 0.0,
    "elapsed_s": 4.2,
    "eta_s": None,
    "fraction": 1.0,
}

EVAL: dict[str, Any] = {
    "id": EVAL_ID,
    "name": "",
    "status": "succeeded",
    "ended_by": "complete",
    "dataset": {"id": DATASET_ID, "name": "gsm8k-sample", "rows": 2},
    "spec": EVAL_SUBMIT,
    "progress": _PROGRESS,
    "points": [_POINT],
    "comparisons": [
        {
            "arm_a": "best_of_n",
            "arm_b": "self_consistency",
            "key": "n",
            "value": 4,
            "mean_tokens_a": 356.0,
            "mean_tokens_b": 356.0,
            "problems": 2,
            "difference": 0.12,
            "ci95": [0.0, 0.25],
            "only_a_right": 0.25,
            "only_b_right": 0.0,
            "mcnemar_p": 1.0,
        }
    ],
    "by_difficulty": {
        "source": "dataset",
        "bins": [
            {
                "label": "1",
                "problems": 1,
                "points": [{"arm": "best_of_n", "value": 4, "problems": 1, "accuracy": 1.0}],
            }
        ],
    },
    "error": None,
    "created_at": "2026-12-02T18:00:00Z",
    "finished_at": "2026-12-02T18:00:04Z",
}

EVALS: dict[str, Any] = {
    "data": [{**EVAL, "points": None, "comparisons": None, "by_difficulty": None}],
    "next_cursor": None,
}

EVAL_JOBS: dict[str, Any] = {
    "data": [
        {
            "index": 0,
            "job_id": JOB_ID,
            "arm": "best_of_n",
            "key": "n",
            "value": 16,
            "problem": 0,
            "problem_id": "q1",
            "seed_index": 0,
            "status": "succeeded",
            "correct": True,
            "tree_url": f"/ui/jobs/{JOB_ID}/tree",
        }
    ],
    "next_offset": None,
}

POINTS_CSV = (
    "arm,strategy,key,value,problems,accuracy,ci_low,ci_high\n"
    "best_of_n,best_of_n,n,4,2,0.97,0.94,1.0\n"
)
POINTS_JSONL = '{"arm": "best_of_n", "key": "n", "value": 4, "accuracy": 0.97}\n'
