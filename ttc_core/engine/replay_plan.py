"""The driver step of a replay: the old tree's expansions, again, where they were.

A replay job (``jobs.replay``, made by ``ttc_core.service.replay``) does not plan a search of its
own: on another model a re-planned search expands other nodes, and there would be
nothing to compare. At each step it asks for every child that the old tree has under a
position the new tree has generated (``done``) and the new tree lacks: same positions,
so the same seeds (``ttc_core.engine.expansion.child_seed``), and the same role and sampling
temperature as the old child's request (``generation_requests``). Each prompt is built
from the new tree's own path, so below a node that came out differently the replay
continues what the new model wrote. Only the subtree under the replayed node is
regenerated; the path above it was copied. When nothing is left to ask for, the job
finishes with its strategy's own selection over the new tree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ttc_core.search.strategies import Expand, Plan, Selection
from ttc_core.search.tree import NodeRole
from ttc_core.store.models import Job, NodeStatus, RequestRecord
from ttc_core.store.tree_positions import Address, Positioned, children_of, positioned_nodes

__all__ = ["replay_plan"]


def _temperatures(session: Session, request_ids: set[str]) -> dict[str, Any]:
    if not request_ids:
        return {}
    rows = session.execute(
        select(RequestRecord.id, RequestRecord.body).where(RequestRecord.id.in_(request_ids))
    ).all()
    return {rid: (body or {}).get("temperature") for rid, body in rows}


def _in_scope(address: Address, replayed: Address) -> tuple[bool, int | None]:
    """Whether children of ``address`` are replayed: all of them (at or under the replayed
    node), one (an ancestor: only the child on the way to it), or none."""
    if address[: len(replayed)] == replayed:
        return True, None
    if replayed[: len(address)] == address:
        return True, replayed[len(address)]
    return False, None


def replay_plan(
    session: Session,
    job: Job,
    select_answer: Callable[[], Selection],
    job_temperature: float,
) -> Plan:
    """The next step of a replay job (see the module docstring)."""
    replay = job.replay or {}
    old = positioned_nodes(session, str(replay["source_job_id"]))
    new = positioned_nodes(session, job.id)
    replayed: Address = tuple(int(i) for i in replay.get("address") or ())
    old_children, new_children = children_of(old), children_of(new)
    wanted: list[tuple[Positioned, list[Positioned]]] = []
    for address, node in sorted(new.items()):
        if node.status != NodeStatus.done or node.role == NodeRole.think:
            continue  # a thought's answer is generated with it
        scope, only = _in_scope(address, replayed)
        if not scope:
            continue
        have = {child.child_index for child in new_children.get(address, [])}
        missing = [
            child
            for child in old_children.get(address, [])
            if child.child_index not in have and (only is None or child.child_index == only)
        ]
        if missing:
            wanted.append((node, missing))
    temperatures = _temperatures(
        session, {c.request_id for _, kids in wanted for c in kids if c.request_id}
    )
    expansions: list[Expand] = []
    for parent, missing in wanted:
        for child in missing:
            # A thought is asked for as the sample it stands for (it thinks, then answers).
            role = NodeRole.sample if child.role == NodeRole.think else NodeRole(child.role)
            temperature = temperatures.get(child.request_id or "")
            override = None if temperature in (None, job_temperature) else float(temperature)
            last = expansions[-1] if expansions else None
            if (
                last is not None
                and last.parent_id == parent.id
                and last.role == role
                and last.temperature == override
                and (last.first_index or 0) + last.k == child.child_index
            ):
                expansions[-1] = Expand(parent.id, last.k + 1, role, override, last.first_index)
            else:
                expansions.append(Expand(parent.id, 1, role, override, child.child_index))
    if expansions:
        return Plan(expansions=expansions)
    return Plan(finish=select_answer())
