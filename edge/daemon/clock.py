"""Noticing when the wall clock is stepped, so the operator learns why trucks are referred.

gate-edge judges the manifest cache's age, a declaration's validity and the open tokens it
gives gate-controller by the wall clock (``CLOCK_REALTIME``). A wrong NTP step, a fast RTC
corrected at boot or an operator's ``date -s`` moves it in one go; ``CLOCK_MONOTONIC`` does
not move. Their difference changing by more than a couple of seconds between two checks is
such a step (NTP slewing changes it by well under a millisecond a second); suspend and resume
also shows as a forward step, which is what it is for the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

#: a change of wall-minus-monotonic at least this big between two checks is a step
STEP_S = 2.0


class ClockWatch:
    """Compares the wall clock with the monotonic clock at each ``check``."""

    def __init__(self, *, wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic, step_s: float = STEP_S) -> None:
        self._wall = wall
        self._mono = mono
        self.step_s = step_s
        self._offset = wall() - mono()

    def check(self) -> float | None:
        """The step in seconds (negative: back) since the last check, or None if none."""
        offset = self._wall() - self._mono()
        step, self._offset = offset - self._offset, offset
        return step if abs(step) >= self.step_s else None

    def describe(self, step: float) -> str:
        """One sentence for the log and the centre's alarm: what moved and what to check."""
        span = timedelta(seconds=round(abs(step)))
        now = datetime.fromtimestamp(self._wall(), UTC).isoformat(timespec="seconds")
        return (f"the wall clock was stepped {'forward' if step > 0 else 'back'} by {span} "
                f"(it now reads {now}); manifest cache age, declaration validity and open "
                f"tokens are judged by it: if the step was wrong, fix the time source "
                f"(timedatectl status, chronyc tracking)")
