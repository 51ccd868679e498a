"""A job's nodes by position: the child indices from the root down (``()`` is the root).

Node ids derive from the job id, so two jobs' trees line up only by position; a replay
regenerates an old tree's nodes at their old positions (``ttc_core.engine.replay_plan``) and is
compared with it position by position (``ttc_core.service.replay``). Seeds derive from the
position too (``ttc_core.engine.expansion.child_seed``), so one position asks for one sample.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ttc_core.store.models import Node

Address = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Positioned:
    id: str
    parent_id: str | None
    child_index: int
    role: str
    status: str
    depth: int
    request_id: str | None
    text: str | None
    address: Address = ()


def format_address(address: Address) -> str:
    """``"0/3/1"``: how an address is shown (the root is ``""``)."""
    return "/".join(str(i) for i in address)


def positioned_nodes(
    session: Session, job_id: str, *, with_text: bool = False
) -> dict[Address, Positioned]:
    """Every node of a job by its address."""
    text = Node.text if with_text else Node.id.label("no_text")
    rows = session.execute(
        select(
            Node.id,
            Node.parent_id,
            Node.child_index,
            Node.role,
            Node.status,
            Node.depth,
            Node.request_id,
            text,
        ).where(Node.job_id == job_id)
    ).all()
    nodes = [
        Positioned(
            r.id,
            r.parent_id,
            r.child_index,
            r.role,
            r.status,
            r.depth,
            r.request_id,
            r[7] if with_text else None,
        )
        for r in rows
    ]
    return _addressed(nodes)


def _addressed(nodes: Iterable[Positioned]) -> dict[Address, Positioned]:
    by_id = {n.id: n for n in nodes}
    memo: dict[str, Address] = {}

    def address(node: Positioned) -> Address:
        # Iterative: trees are deep enough (step searches) to make recursion a risk.
        chain: list[Positioned] = []
        current: Positioned | None = node
        while current is not None and current.id not in memo:
            chain.append(current)
            current = by_id.get(current.parent_id) if current.parent_id else None
        base = memo[current.id] if current is not None else ()
        for item in reversed(chain):
            base = (*base, item.child_index) if item.parent_id is not None else ()
            memo[item.id] = base
        return memo[node.id]

    out: dict[Address, Positioned] = {}
    for node in by_id.values():
        where = address(node)
        out[where] = Positioned(
            node.id,
            node.parent_id,
            node.child_index,
            node.role,
            node.status,
            node.depth,
            node.request_id,
            node.text,
            where,
        )
    return out


def children_of(nodes: dict[Address, Positioned]) -> dict[Address, list[Positioned]]:
    """Each address's children, by child index."""
    kids: dict[Address, list[Positioned]] = {}
    for address, node in nodes.items():
        if address:
            kids.setdefault(address[:-1], []).append(node)
    for siblings in kids.values():
        siblings.sort(key=lambda n: n.child_index)
    return kids
