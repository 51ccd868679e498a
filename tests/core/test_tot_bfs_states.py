"""Tree-of-thoughts BFS drops duplicate states before keeping the best b (hand-built trees,
no I/O), and the state keys it compares."""

from __future__ import annotations

from ttc_core.search.strategies import Expand, TotBfs
from ttc_core.search.strategies.states import state_key
from ttc_core.search.tree import NodeView, TreeView

ROOT = "root"


def node(node_id: str, parent: str, index: int, score: float, state: str | None) -> NodeView:
    return NodeView(node_id, parent, 1, index, "step", "done", score=score, state=state)


def step(parent: str, k: int) -> Expand:
    return Expand(parent, k, role="step")


def test_state_key_is_the_numbers_left_for_game24_moves() -> None:
    # Two orders of moves that leave the same multiset: one state.
    a = state_key(["4 + 9 = 13 (left: 10 13 13)"])
    b = state_key(["1 + 2 = 3 (left: 4 9 10)", "4 + 9 = 13 (left: 13 13 10)"])
    assert a == b == "left:10 13 13"
    assert state_key(["13 / 3 = 13/3 (left: 13/3 2)"]) == "left:2 13/3"
    assert state_key(["6 - 4 = 2 (left: 2 8 8)"]) != a


def test_state_key_of_other_steps_is_the_path() -> None:
    assert state_key(["First,  add.", "Then\nsubtract."]) == state_key(
        ["First, add.", "Then subtract."]
    )
    assert state_key(["First, add."]) != state_key(["First, add.", "Then subtract."])
    assert state_key(["a"]).startswith("path:")
    # A left-list that is not numbers falls back to the path.
    assert state_key(["x (left: some)"]).startswith("path:")


def tree(children: list[tuple[str, float, str | None]]) -> TreeView:
    nodes = [NodeView(ROOT, None, 0, 0, "root", "done")]
    nodes += [node(i, ROOT, j, s, st) for j, (i, s, st) in enumerate(children)]
    return TreeView.build(nodes)


def test_duplicates_are_dropped_before_the_best_b_are_kept() -> None:
    bfs = TotBfs()
    params = bfs.parse_params({"k": 5, "breadth": 3, "max_depth": 4})
    t = tree(
        [
            ("a", 0.9, "left:1 2 3"),
            ("b", 0.9, "left:1 2 3"),  # same state and score as a: a ranks first (index 0)
            ("c", 0.8, "left:4 5 6"),
            ("d", 0.7, "left:1 2 3"),  # duplicate of a, lower
            ("e", 0.6, "left:7 8 9"),
            ("f", 0.5, "left:10 11 12"),
        ]
    )
    plan = bfs.plan(t, params, {})
    # Ranked: a .9, b .9, c .8, d .7, e .6, f .5. Without b and d (a's state) the best
    # three states are a, c, e; f is a unique state beyond b=3.
    assert plan.expansions == [step("a", 5), step("c", 5), step("e", 5)]
    assert plan.node_meta == {
        "b": {"dropped": True, "duplicate_of": "a"},
        "d": {"dropped": True, "duplicate_of": "a"},
        "f": {"dropped": True},
    }


def test_without_dedupe_or_state_keys_duplicates_are_kept() -> None:
    bfs = TotBfs()
    children = [("a", 0.9, "s1"), ("b", 0.8, "s1"), ("c", 0.7, "s2")]
    off = bfs.parse_params({"k": 2, "breadth": 2, "dedupe": False})
    assert bfs.plan(tree(children), off, {}).expansions == [step("a", 2), step("b", 2)]
    on = bfs.parse_params({"k": 2, "breadth": 2})
    assert bfs.plan(tree(children), on, {}).expansions == [step("a", 2), step("c", 2)]
    # Nodes written before state keys existed (state None) are all distinct.
    legacy = [(i, s, None) for i, s, _ in children]
    assert bfs.plan(tree(legacy), on, {}).expansions == [step("a", 2), step("b", 2)]


def test_a_duplicate_of_a_state_beyond_b_is_marked_as_such() -> None:
    bfs = TotBfs()
    params = bfs.parse_params({"k": 1, "breadth": 1})
    t = tree([("a", 0.9, "x"), ("b", 0.5, "y"), ("c", 0.4, "y")])
    plan = bfs.plan(t, params, {})
    assert plan.expansions == [step("a", 1)]
    assert plan.node_meta == {
        "b": {"dropped": True},
        "c": {"dropped": True, "duplicate_of": "b"},
    }
