"""Example bodies for the OpenAPI document, in one place.

The schemas reference these through ``json_schema_extra``; ``tests/api/test_openapi.py``
checks that every example still validates against its schema, so the document cannot
drift from the code.
"""

from __future__ import annotations

from typing import Any

JOB_ID = "0b8f5a52-3c1e-4d7a-9f64-5f1c2b7e8a10"
ROOT_ID = "5d1f0a9e-7c55-5b1e-8f0b-3a6c2e9d4b21"
NODE_ID = "9a7c3e10-2b4d-5f6a-8c1e-0d2f4b6a8c90"
CREATED = "2026-11-29T04:12:00.000000Z"

JOB_SUBMIT: dict[str, Any] = {
    "strategy": "best_of_n",
    "endpoint": "sim",
    "prompt": "What is 17 * 23?",
    "params": {"n": 16},
    "verifier": {"kind": "math"},
    "reference": "391",
    "budget": {"max_tokens": 20000},
    "seed": 7,
}

JOB_SUBMIT_BEAM: dict[str, Any] = {
    "strategy": "beam_search",
    "endpoint": "sim",
    "prompt": "Natalia sold clips to 48 of her friends in April, and then she sold half as "
    "many clips in May. How many clips did Natalia sell altogether in April and May?",
    "params": {"n": 8, "beam_width": 2, "max_depth": 6},
    "verifier": {"kind": "math"},
    "prm": {"kind": "prm", "endpoint": "sim-prm"},
}

#: ``openapi_extra`` of ``POST /v1/jobs``: named request examples.
SUBMIT_EXAMPLES: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {
                "examples": {
                    "best_of_n": {"summary": "Best-of-16, math check", "value": JOB_SUBMIT},
                    "beam_search": {
                        "summary": "Step-level beam search with a process reward model",
                        "value": JOB_SUBMIT_BEAM,
                    },
                }
            }
        }
    }
}

JOB_ACCEPTED: dict[str, Any] = {
    "id": JOB_ID,
    "status": "queued",
    "location": f"/v1/jobs/{JOB_ID}",
}

JOB: dict[str, Any] = {
    "id": JOB_ID,
    "status": "succeeded",
    "strategy": "best_of_n",
    "endpoint": "sim",
    "params": {"n": 16, "temperature": 0.8, "top_p": 1.0, "max_tokens": 512, "stop": None},
    "verifier": {"kind": "math"},
    "budget": {"max_tokens": 20000},
    "seed": 7,
    "root_node_id": ROOT_ID,
    "progress": {
        "step": 1,
        "nodes": 16,
        "failed_nodes": 0,
        "pending_batches": 0,
        "planned_samples": 16,
    },
    "usage": {
        "prompt_tokens": 84,
        "completion_tokens": 736,
        "total_tokens": 820,
        "requests": 1,
        "cost": 0.0,
    },
    "result": {
        "answer": "391",
        "text": "17 * 23 = 17 * 20 + 17 * 3 = 340 + 51 = 391. ANSWER: 391",
        "score": 1.0,
        "correct": True,
        "node_id": NODE_ID,
        "ended_by": "strategy",
        "details": {},
    },
    "error": None,
    "created_at": CREATED,
    "started_at": "2026-11-29T04:12:00.050000Z",
    "finished_at": "2026-11-29T04:12:01.400000Z",
}

JOBS: dict[str, Any] = {"data": [JOB], "next_cursor": "WyIyMDI2LTExLTI5VDA0OjEyOjAwIiwiMGI4ZiJd"}

NODE: dict[str, Any] = {
    "id": NODE_ID,
    "parent_id": ROOT_ID,
    "depth": 1,
    "child_index": 0,
    "role": "sample",
    "status": "done",
    "is_terminal": True,
    "text": "17 * 23 = 17 * 20 + 17 * 3 = 340 + 51 = 391. ANSWER: 391",
    "answer": "391",
    "score": 1.0,
    "correct": True,
    "prompt_tokens": 84,
    "completion_tokens": 46,
    "finish_reason": "stop",
    "latency_ms": 41.5,
    "seed": 7,
    "meta": {},
    "children": 0,
    "created_at": CREATED,
}

ROOT_NODE: dict[str, Any] = {
    **NODE,
    "id": ROOT_ID,
    "parent_id": None,
    "depth": 0,
    "role": "root",
    "is_terminal": False,
    "text": "What is 17 * 23?",
    "answer": None,
    "score": None,
    "correct": None,
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "finish_reason": None,
    "latency_ms": None,
    "seed": None,
    "children": None,
}

NODE_DETAIL: dict[str, Any] = {
    **NODE,
    "path": [ROOT_NODE, {**NODE, "children": None}],
    "path_text": NODE["text"],
}

NODES: dict[str, Any] = {"data": [NODE], "next_cursor": "WzBd"}

EVENT: dict[str, Any] = {
    "id": 3,
    "kind": "nodes_added",
    "data": {"batch_id": "c2f1…", "nodes": 16, "failed": 0, "completion_tokens": 736},
    "created_at": CREATED,
}

EVENTS: dict[str, Any] = {
    "data": [
        {
            "id": 1,
            "kind": "job_created",
            "data": {"strategy": "best_of_n", "endpoint": "sim"},
            "created_at": CREATED,
        },
        {"id": 2, "kind": "status_changed", "data": {"status": "running"}, "created_at": CREATED},
        EVENT,
    ],
    "next_cursor": "3",
}

PRUNE_RESULT: dict[str, Any] = {"job": {**JOB, "status": "running", "result": None}, "pruned": 5}

EXPAND_REQUEST: dict[str, Any] = {"k": 4}

REPLAY_REQUEST: dict[str, Any] = {"endpoint": "local-vllm-next", "node_id": NODE_ID}
REPLAY_JOB_ID = "7e21c4d9-0a5b-4f3e-9c8d-2b1a0f9e8d7c"
REPLAY: dict[str, Any] = {
    "job_id": REPLAY_JOB_ID,
    "source_job_id": JOB_ID,
    "node_id": NODE_ID,
    "endpoint": "local-vllm-next",
    "model": "Qwen/Qwen2.5-Math-7B-Instruct",
    "status": "succeeded",
    "nodes_compared": 7,
    "nodes_reproduced": 5,
    "paths": 4,
    "paths_reproduced": 2,
    "divergences": [
        {
            "old_node_id": "c3d9a1e2-6b7f-5a40-9e18-2f4d6c8b0a13",
            "new_node_id": "e8b2f4a6-1c3d-5e7f-9a0b-4c6d8e0f2a35",
            "address": "0/1",
            "depth": 2,
            "reason": "text",
            "old_text": "So she sold 48 / 2 = 24 clips in May.",
            "new_text": "So she sold 48 * 2 = 96 clips in May.",
            "paths": 2,
        }
    ],
    "path_divergences": [
        {"leaf_node_id": "a1b2c3d4-0000-5000-8000-000000000001", "divergent_node_id": None},
        {
            "leaf_node_id": "a1b2c3d4-0000-5000-8000-000000000002",
            "divergent_node_id": "c3d9a1e2-6b7f-5a40-9e18-2f4d6c8b0a13",
        },
    ],
}


def json_example(value: Any) -> dict[str, Any]:
    """A response's JSON example, for a route decorator's ``responses`` (routes whose model
    carries no example of its own)."""
    return {"content": {"application/json": {"example": value}}}


def request_example(value: Any) -> dict[str, Any]:
    """A request body's JSON example, for a route decorator's ``openapi_extra``."""
    return {"requestBody": {"content": {"application/json": {"example": value}}}}


# ---------------------------------------------------------------- admin: API keys

KEY: dict[str, Any] = {
    "id": "key_3f9a0c1d2e4b5a6f",
    "tenant": "team-a",
    "name": "ci",
    "admin": False,
    "prefix": "ttc_Bh5hdJOp",
    "created_at": CREATED,
    "last_used_at": None,
    "revoked_at": None,
}
KEY_CREATED: dict[str, Any] = {**KEY, "key": "ttc_Bh5hdJOpHcqETKJpEsX7BQhCXdgUbxYQf8hktGLz36ZnW7"}
KEYS: dict[str, Any] = {"data": [KEY]}
KEY_REVOKED: dict[str, Any] = {**KEY, "revoked_at": "2026-11-29T05:00:00.000000Z"}

# ------------------------------------------------------------------ problem batches

BATCH_ID = "4c2b9e1a-7d3f-4a8e-b6c5-1f0e2d3c4b5a"

BATCH_SUBMIT: dict[str, Any] = {
    "problems": [
        {"prompt": "What is 17 * 23?", "reference": "391"},
        {"prompt": "What is 12 * 12?", "reference": "144"},
    ],
    "strategy": "auto",
    "endpoint": "sim",
    "budget": {"samples": 64},
    "compare_uniform": True,
    "seed": 7,
}

BATCH_ACCEPTED: dict[str, Any] = {
    "id": BATCH_ID,
    "status": "queued",
    "location": f"/v1/problem-batches/{BATCH_ID}",
    "jobs": 4,
}

_ARM = {"samples": 32, "completion_tokens": 1450, "finished": 2, "accuracy": 1.0}

BATCH: dict[str, Any] = {
    "id": BATCH_ID,
    "status": "succeeded",
    "spec": BATCH_SUBMIT,
    "rounds": [
        {
            "budget_left": 32,
            "round_budget": 16,
            "allocated": 16,
            "problems": 1,
            "expected_gain": 0.12,
        }
    ],
    "summary": {"arms": {"adaptive": _ARM, "uniform": _ARM}},
    "problems": [
        {
            "index": 0,
            "reference": "391",
            "adaptive": {
                "job_id": JOB_ID,
                "status": "succeeded",
                "answer": "391",
                "correct": True,
                "samples": 20,
                "completion_tokens": 900,
            },
        }
    ],
    "error": None,
}

BATCHES: dict[str, Any] = {"data": [{**BATCH, "problems": None}], "next_cursor": None}
