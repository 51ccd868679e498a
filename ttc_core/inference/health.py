"""The health of one replica: a small state machine fed by real requests (passive checks)
and by probes of the server's health route (active checks).

::

                 `fall` failed requests in a row,
                 or `fall` failed probes in a row
        ┌────┐ ─────────────────────────────────▶ ┌──────┐
        │ up │                                    │ down │ ◀─┐ trial failed: down again,
        └────┘ ◀──── `rise` good probes in a row ─ └──────┘   │ cooldown doubled (capped)
          ▲                                          │ cooldown over
          │ trial succeeded                          ▼        │
          └──────────────────────────────────── half_open ────┘
                                               (one trial request at a time)

A down replica takes no requests. After its cooldown it is *half-open*: one real request
may try it (a recovered server is back at the first success even with no probes); while
that trial is out, it stays closed to the others. Probes of a down replica count good
answers: ``rise`` in a row bring it back whatever its cooldown says. A failure of a
request sent before the replica went down changes nothing (it says what is known).

The clock is injectable, so every transition is tested without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class Health(StrEnum):
    #: Takes requests.
    UP = "up"
    #: Takes none until its cooldown ends or probes bring it back.
    DOWN = "down"
    #: Cooldown over: one trial request may go.
    HALF_OPEN = "half_open"


class ReplicaHealth:
    def __init__(
        self,
        *,
        fall: int = 3,
        rise: int = 2,
        cooldown_s: float = 2.0,
        max_cooldown_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fall = fall
        self.rise = rise
        self.base_cooldown_s = cooldown_s
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self._clock = clock
        self._down = False
        self._down_until = 0.0
        self._trial_out = False
        #: Failed requests (or probes) in a row while up; good probes in a row while down.
        self.failures = 0
        self.good_probes = 0
        #: Times the replica went down (for metrics and tests).
        self.downs = 0
        #: Why it last went down, in words.
        self.reason: str | None = None

    @property
    def state(self) -> Health:
        if not self._down:
            return Health.UP
        if self._clock() >= self._down_until:
            return Health.HALF_OPEN
        return Health.DOWN

    @property
    def down_until(self) -> float:
        return self._down_until if self._down else 0.0

    def routable(self) -> bool:
        """Whether a request may be sent now (up, or half-open with no trial out)."""
        state = self.state
        return state is Health.UP or (state is Health.HALF_OPEN and not self._trial_out)

    def begin(self) -> bool:
        """A request is being sent; True when it is the half-open trial."""
        if self.state is Health.HALF_OPEN and not self._trial_out:
            self._trial_out = True
            return True
        return False

    def end_trial(self) -> None:
        """A trial ended with no verdict (cancelled, or refused for its own content)."""
        self._trial_out = False

    # -------------------------------------------------------------- passive checks
    def request_succeeded(self, trial: bool = False) -> None:
        if self._down and not trial:
            return  # sent before it went down: no news
        self._up()

    def request_failed(self, reason: str, trial: bool = False) -> bool:
        """Count a failed request; True when this takes the replica down."""
        if self._down:
            if trial:
                self._trial_out = False
                self._go_down(reason, doubled=True)
            return False
        self.failures += 1
        if self.failures >= self.fall:
            self._go_down(reason)
            return True
        return False

    # --------------------------------------------------------------- active checks
    def probe_succeeded(self) -> bool:
        """Count a good probe; True when this brings the replica back."""
        if not self._down:
            self.failures = 0
            return False
        self.good_probes += 1
        if self.good_probes >= self.rise:
            self._up()
            return True
        return False

    def probe_failed(self, reason: str) -> bool:
        """Count a failed probe; True when this takes the replica down."""
        if self._down:
            self.good_probes = 0
            return False
        return self.request_failed(reason)

    # ---------------------------------------------------------------- transitions
    def _go_down(self, reason: str, doubled: bool = False) -> None:
        if doubled:
            self.cooldown_s = min(self.cooldown_s * 2, self.max_cooldown_s)
        self._down = True
        self._down_until = self._clock() + self.cooldown_s
        self._trial_out = False
        self.good_probes = 0
        self.downs += 1
        self.reason = reason

    def _up(self) -> None:
        self._down = False
        self._trial_out = False
        self.failures = 0
        self.good_probes = 0
        self.cooldown_s = self.base_cooldown_s
        self.reason = None
