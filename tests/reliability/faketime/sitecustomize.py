"""Put on ``PYTHONPATH`` only for processes the clock tests run under libfaketime.

libfaketime 0.9.10 (Debian 12) with ``DONT_FAKE_MONOTONIC=1`` mistranslates
``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ...)``, which CPython 3.11's ``time.sleep``
uses: every ``time.sleep`` then fails with EINVAL (``OSError: [Errno 22]``), at any offset,
even +0. A real clock step never does that, so without this the tests would see threads die
of the test tool, not of the clock. ``time.sleep`` is replaced by ``select`` with a relative
timeout on the monotonic clock, which libfaketime leaves alone; everything else is untouched.
"""

from __future__ import annotations

import os
import select
import time

if "libfaketime" in os.environ.get("LD_PRELOAD", ""):
    def _sleep(secs: float) -> None:
        if secs < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = time.monotonic() + secs
        while (left := deadline - time.monotonic()) > 0:
            select.select([], [], [], left)

    time.sleep = _sleep  # type: ignore[assignment]  # floats only: all gate-edge passes
