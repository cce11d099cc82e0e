"""ClockWatch: a step of the wall clock is told apart from time passing and from NTP slewing."""

from __future__ import annotations

from edge.daemon.clock import ClockWatch


def test_steps_are_reported_slewing_and_time_passing_are_not() -> None:
    wall, mono = [1_800_000_000.0], [50.0]
    watch = ClockWatch(wall=lambda: wall[0], mono=lambda: mono[0])
    for _ in range(10):                  # a second passes on both clocks, plus NTP slewing
        wall[0] += 1.0005
        mono[0] += 1.0
        assert watch.check() is None
    wall[0] += 3 * 86400                 # date -s three days ahead
    step = watch.check()
    assert step is not None and round(step) == 3 * 86400
    assert "stepped forward by 3 days, 0:00:00" in watch.describe(step)
    assert watch.check() is None         # reported once
    wall[0] -= 7200
    step = watch.check()
    assert step is not None and round(step) == -7200
    assert "stepped back by 2:00:00" in watch.describe(step)
    assert "chronyc tracking" in watch.describe(step)
