"""The replica health state machine, on a clock the test moves."""

from __future__ import annotations

from ttc_core.inference.health import Health, ReplicaHealth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def machine(clock: Clock) -> ReplicaHealth:
    return ReplicaHealth(fall=3, rise=2, cooldown_s=1.0, max_cooldown_s=3.0, clock=clock)


def test_failed_requests_in_a_row_take_it_down_and_a_success_resets_the_count() -> None:
    clock = Clock()
    health = machine(clock)
    health.request_failed("refused")
    health.request_failed("refused")
    health.request_succeeded()
    assert health.request_failed("refused") is False and health.state is Health.UP
    health.request_failed("refused")
    assert health.request_failed("connection refused") is True
    assert health.state is Health.DOWN and not health.routable()
    assert health.reason == "connection refused" and health.downs == 1


def test_half_open_after_the_cooldown_lets_one_trial_through() -> None:
    clock = Clock()
    health = machine(clock)
    for _ in range(3):
        health.request_failed("500")
    clock.now += 1.0
    assert health.state is Health.HALF_OPEN and health.routable()
    assert health.begin() is True
    assert not health.routable()  # one trial at a time
    assert health.begin() is False
    health.request_succeeded(trial=True)
    assert health.state is Health.UP and health.failures == 0


def test_a_failed_trial_goes_down_again_for_twice_as_long_capped() -> None:
    clock = Clock()
    health = machine(clock)
    for _ in range(3):
        health.request_failed("500")
    for expected in (2.0, 3.0, 3.0):
        clock.now = health.down_until
        assert health.begin()
        health.request_failed("still 500", trial=True)
        assert health.state is Health.DOWN
        assert health.down_until - clock.now == expected
    health.request_succeeded(trial=True)
    assert health.cooldown_s == 1.0  # back to the base cooldown once up


def test_probes_take_it_down_and_bring_it_back() -> None:
    clock = Clock()
    health = machine(clock)
    assert not health.probe_failed("GET /health answered 503")
    assert not health.probe_failed("GET /health answered 503")
    assert health.probe_failed("GET /health answered 503")
    assert health.state is Health.DOWN
    assert not health.probe_succeeded()
    health.probe_failed("refused")  # the good probes must be in a row
    assert not health.probe_succeeded()
    assert health.probe_succeeded() is True  # rise = 2, cooldown or not
    assert health.state is Health.UP


def test_late_news_about_a_down_replica_changes_nothing() -> None:
    clock = Clock()
    health = machine(clock)
    for _ in range(3):
        health.request_failed("reset")
    until = health.down_until
    health.request_succeeded()  # a request sent before it went down, answered late
    health.request_failed("reset")
    assert health.state is Health.DOWN and health.down_until == until


def test_an_abandoned_trial_frees_the_replica_for_another() -> None:
    clock = Clock()
    health = machine(clock)
    for _ in range(3):
        health.request_failed("500")
    clock.now += 1.0
    assert health.begin()
    health.end_trial()
    assert health.routable() and health.begin()
