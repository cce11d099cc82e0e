"""Child processes that end with the gate-edge process that spawned them, even after a SIGKILL.

SIGKILL (the OOM killer, a watchdog, ``kill -9``) gives gate-edge no chance to stop its
children. Linux reparents them to init (or the nearest subreaper) and, blocked on a queue whose
write end they hold themselves, they would run on for good: a camera worker keeping the camera
and a core busy, a downlink worker its ~60 MB, one more after every crash.

The pid to compare against is taken in the parent when it spawns the child and handed to it:
asking ``os.getppid()`` in the child, after seconds of imports or model loading, gives the new
parent's pid when gate-edge died meanwhile, and the orphan never notices
(``tests/edge/plates/test_worker_orphan.py``, the "still-starting" case). Polling is used rather
than ``prctl(PR_SET_PDEATHSIG)``: that signal fires when the parent *thread* that spawned the
child ends (the downlink pool is started from paho's thread), and is lost if the parent is
already gone before the child sets it.
"""

from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger(__name__)

# The exit status of a child that ended because its parent was gone (nobody waits for it: the
# process that adopted it reaps it).
ORPHANED_EXIT_CODE = 3


def parent_gone(parent_pid: int) -> bool:
    """True once this process's parent is no longer ``parent_pid`` (it died, we were adopted)."""
    return os.getppid() != parent_pid


def exit_when_parent_gone(parent_pid: int, name: str, interval: float = 0.5) -> threading.Thread:
    """Start a daemon thread that ends this process once ``parent_pid`` is no longer its parent.

    ``os._exit``, not ``sys.exit``: raised in a thread, SystemExit ends only that thread, while
    the main thread stays blocked on its queue. Nothing is flushed or handed back on the way
    out; whatever the child was doing was for a parent that is no longer there.
    """

    def watch() -> None:
        while not parent_gone(parent_pid):
            time.sleep(interval)
        log.warning("%s: the process that started it (pid %d) is gone, now a child of pid %d; "
                    "exiting rather than running on as an orphan", name, parent_pid, os.getppid())
        os._exit(ORPHANED_EXIT_CODE)

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread
