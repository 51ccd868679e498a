"""Routing policies: the baselines, prefix affinity with bounded loads, the registry."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from ttc_core.routing import (
    POLICIES,
    ReplicaView,
    RouteRequest,
    RoutingConfig,
    make_policy,
    register,
)
from ttc_core.routing.least_loaded import LeastLoaded
from ttc_core.routing.prefix_affinity import PrefixAffinity, within_bound
from ttc_core.routing.round_robin import RoundRobin
from ttc_core.settings import EndpointConfig

KEYS = ["http://a/v1", "http://b/v1", "http://c/v1", "http://d/v1"]
QUESTION = "Problem 7: Liam has 30 shells and buys 2 bags with 11 shells in each bag. " * 3


def views(loads: dict[str, int] | None = None) -> list[ReplicaView]:
    return [ReplicaView(k, (loads or {}).get(k, 0)) for k in KEYS]


def test_round_robin_takes_each_replica_in_turn() -> None:
    policy = RoundRobin()
    picks = [policy.choose(RouteRequest("x"), views()) for _ in range(8)]
    assert picks == sorted(KEYS) * 2


def test_least_loaded_picks_the_lightest_and_shares_ties() -> None:
    policy = LeastLoaded()
    loads = {KEYS[0]: 8, KEYS[1]: 2, KEYS[2]: 5, KEYS[3]: 9}
    assert policy.choose(RouteRequest("x"), views(loads)) == KEYS[1]
    tied = Counter(policy.choose(RouteRequest("x"), views()) for _ in range(8))
    assert set(tied.values()) == {2}  # all idle: each replica in turn


def run_depth(
    policy: PrefixAffinity, texts: Sequence[str], cost: int, loads: dict[str, int]
) -> list[str]:
    """Route ``texts`` at once (none finishes before the last is routed)."""
    picks = []
    for text in texts:
        key = policy.choose(RouteRequest(text, cost), views(loads))
        loads[key] = loads.get(key, 0) + cost
        picks.append(key)
    return picks


def test_a_continuation_goes_where_its_prefix_was_generated() -> None:
    policy = PrefixAffinity(RoutingConfig(block_chars=16))
    for i in range(256):  # a process that has been serving other work, spread evenly
        policy.choose(RouteRequest(f"earlier request {i}: " * 4, 4), views())
    prompt = QUESTION
    first = policy.choose(RouteRequest(prompt, 4), views())
    steps = [f" Step from sample {i}: 30 + 22 = 52 shells, so far so good.\n\n" for i in range(4)]
    policy.observe(RouteRequest(prompt, 4), first, steps)
    # Every child (a sibling of the others) continues its own sample: all go home (the
    # ring alone would scatter them), while home stays within the bound.
    loads = {key: 4 for key in KEYS}
    for child in [prompt + s for s in steps]:
        assert policy.choose(RouteRequest(child + "Next", 4), views(loads)) == first


def test_unknown_prefixes_spread_by_consistent_hashing() -> None:
    policy = PrefixAffinity()
    texts = [f"question number {i}: " + "x" * 100 for i in range(400)]
    picks = Counter(policy.choose(RouteRequest(t), views()) for t in texts)
    assert set(picks) == set(KEYS)
    assert max(picks.values()) < 2 * min(picks.values())
    # A replica leaving moves only its own share: the others keep their prefixes.
    before = {t: policy.choose(RouteRequest(t), views()) for t in texts}
    rest = [v for v in views() if v.key != KEYS[0]]
    for text, key in before.items():
        if key != KEYS[0]:
            assert policy.choose(RouteRequest(text), rest) == key


def test_bounded_loads_keep_every_replica_within_the_factor() -> None:
    policy = PrefixAffinity(
        RoutingConfig(block_chars=16, load_factor=1.25, load_measure="in_flight")
    )
    hot = QUESTION  # every request continues one hot prefix
    policy.observe(RouteRequest(hot), KEYS[0], [])
    loads: dict[str, int] = {}
    picks = run_depth(policy, [hot + f"step {i} " * 4 for i in range(16)], 4, loads)
    mean = sum(loads.values()) / len(KEYS)
    assert max(loads.values()) <= 1.25 * mean
    assert picks[0] == KEYS[0]
    assert Counter(picks).most_common(1)[0][0] == KEYS[0]  # home takes what its bound allows


def test_siblings_that_spill_over_spill_to_the_same_replica() -> None:
    policy = PrefixAffinity(RoutingConfig(block_chars=16, load_measure="in_flight"))
    parent = QUESTION + "First step, which every sibling continues.\n\n"
    home, second = KEYS[0], KEYS[2]
    policy.observe(RouteRequest(QUESTION), second, ["First step, which every sibling"])
    policy.observe(RouteRequest(parent), home, [])
    # The home is full: the siblings all go to the replica holding most of their path.
    loads = {home: 40}
    siblings = [parent + f"sibling {i} goes on here. " for i in range(3)]
    assert set(run_depth(policy, siblings, 1, loads)) == {second}


def beam_depths(
    policy: PrefixAffinity, clusters: Sequence[dict[str, int]], cost: int = 4
) -> tuple[int, Counter[str]]:
    """Route beam-search depths whose selected paths live where ``clusters`` says (how
    many requests continue a path generated on each replica), each depth finishing
    before the next; the requests sent away from their home and the sequences each
    replica took."""
    moved = 0
    work: Counter[str] = Counter()
    for depth, cluster in enumerate(clusters):
        texts = []
        for key, count in cluster.items():
            for i in range(count):
                parent = f"{QUESTION} depth {depth} on {key} path {i}: 30 + 22 = 52.\n\n"
                policy.observe(RouteRequest(parent), key, [])
                texts.append((key, parent + "Next step"))
        loads: dict[str, int] = {}
        for home, text in texts:
            key = policy.choose(RouteRequest(text, cost), views(loads))
            loads[key] = loads.get(key, 0) + cost
            work[key] += cost
            moved += key != home
    return moved, work


# Where the 16 kept paths of each depth live: a few replicas by chance, a different few
# at each depth (beam search keeps the best children wherever they are).
CLUSTERS = [
    {KEYS[0]: 7, KEYS[1]: 5, KEYS[2]: 3, KEYS[3]: 1},
    {KEYS[1]: 7, KEYS[2]: 5, KEYS[3]: 3, KEYS[0]: 1},
    {KEYS[2]: 6, KEYS[0]: 5, KEYS[3]: 4, KEYS[1]: 1},
    {KEYS[3]: 7, KEYS[0]: 4, KEYS[1]: 4, KEYS[2]: 1},
] * 2


def test_recent_work_bound_moves_fewer_paths_and_keeps_the_shares() -> None:
    # Bounding the sequences in flight moves the surplus of every depth away from home;
    # bounding each replica's recent work lets a depth pile up where its paths are as long
    # as the replica's share of the work stays within the factor.
    in_flight, _ = beam_depths(PrefixAffinity(RoutingConfig(load_measure="in_flight")), CLUSTERS)
    moved, work = beam_depths(PrefixAffinity(RoutingConfig(load_measure="recent")), CLUSTERS)
    assert in_flight >= 8  # 7 requests of 4 where 5 fit: 2 moved per depth at least
    assert moved < in_flight / 2
    mean = sum(work.values()) / len(KEYS)
    assert max(work.values()) <= 1.25 * mean


def test_recent_work_bound_spreads_a_drifting_replica() -> None:
    # The same replica holds most kept paths depth after depth: its share is held to the
    # bound (the surplus goes elsewhere), not left to grow.
    policy = PrefixAffinity(RoutingConfig(load_measure="recent"))
    moved, work = beam_depths(policy, [{KEYS[0]: 10, KEYS[1]: 2, KEYS[2]: 2, KEYS[3]: 2}] * 8)
    mean = sum(work.values()) / len(KEYS)
    assert max(work.values()) <= 1.25 * mean + 4  # within one request of the bound
    assert moved > 0


def test_the_pieces_of_a_large_n_spread_under_the_recent_work_bound() -> None:
    # The four pieces of a large n, one text, on a fresh process: the slack is less than a
    # piece, so each piece goes to a replica of its own.
    policy = PrefixAffinity(RoutingConfig(load_measure="recent"))
    loads: dict[str, int] = {}
    picks = run_depth(policy, [QUESTION] * 4, 16, loads)
    assert sorted(picks) == sorted(KEYS)


def test_recent_work_decays_over_the_window() -> None:
    policy = PrefixAffinity(RoutingConfig(load_measure="recent", load_window=100))
    policy.observe(RouteRequest(QUESTION), KEYS[0], [])
    assert policy.choose(RouteRequest(QUESTION + " more", 10), views()) == KEYS[0]
    others = [v for v in views() if v.key != KEYS[0]]
    for i in range(50):
        policy.choose(RouteRequest(f"other {i} " * 8, 2), others)
    recent = policy._recent(KEYS)
    assert recent[KEYS[0]] == pytest.approx(10 * math.exp(-1))  # 100 routed since: 1/e
    assert sum(recent.values()) < 100  # about one window's worth


def test_within_bound() -> None:
    assert within_bound(0, 16, 100, 4, 1.25)  # an idle replica always may
    assert within_bound(4, 4, 28, 4, 1.25)  # 8 <= 1.25 * 32 / 4 = 10
    assert not within_bound(8, 4, 28, 4, 1.25)  # 12 > 10


def test_the_registry_is_the_one_seam() -> None:
    class First:
        def __init__(self, config: RoutingConfig) -> None:
            self.config = config

        def choose(self, request: RouteRequest, replicas: Sequence[ReplicaView]) -> str:
            return replicas[0].key

        def observe(self, request: RouteRequest, replica: str, completions: Sequence[str]) -> None:
            pass

    register("first_listed", First)
    try:
        config = EndpointConfig(
            base_urls=KEYS, model="m", routing={"policy": "first_listed"}
        ).routing
        assert make_policy(config).choose(RouteRequest("x"), views()) == KEYS[0]
    finally:
        POLICIES.pop("first_listed")
    with pytest.raises(ValidationError, match="unknown routing policy 'nope'"):
        EndpointConfig(base_urls=KEYS, model="m", routing={"policy": "nope"})
    with pytest.raises(ValidationError, match="base_url must be one of base_urls"):
        EndpointConfig(base_url="http://e/v1", base_urls=KEYS, model="m")
