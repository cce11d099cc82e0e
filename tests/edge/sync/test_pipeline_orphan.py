"""The downlink worker process ends by itself when the daemon that started it is SIGKILLed.

Without this the pool's worker sat blocked on its call queue for good, adopted by init, with
its ~60 MB, one more after every crash. A real daemon-like parent builds the pipeline's pool
(``DownPipeline.warm_up``, as ``edge/sync/pipeline.py`` does for a large batch) and is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import children, running

REPO = Path(__file__).resolve().parents[3]

# The worker polls every 0.5 s; the rest is room for a busy machine (the "starting" case also
# waits for the worker's imports, which come before its watch thread).
GONE_WITHIN_S = 10.0

PARENT = """
import sys, time
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edge.store.cache import ManifestCache
from edge.store.records import Records
from edge.sync.downlink import Downlink
from edge.sync.journal import SyncJournal
from edge.sync.pipeline import DownPipeline
from edge.sync.signing import KeyRing
from edge.sync.topics import Topics
tmp, wait = Path(sys.argv[1]), sys.argv[2] == "ready"
topics = Topics("HUUNGHI")
cache = ManifestCache.open(tmp / "cache.db", check_same_thread=False)
records = Records.open(tmp / "records.db", check_same_thread=False)
downlink = Downlink(topics=topics, keys=KeyRing({"c": Ed25519PrivateKey.generate().public_key()}),
                    cache=cache, journal=SyncJournal(records, topics, alarm_interval_s=0),
                    lanes={"in-1"})
pipeline = DownPipeline(downlink, lambda handled, token: None, workers=1)
pipeline.start()
pipeline.warm_up()
assert not wait or pipeline.wait_ready(60)
print(*pipeline.worker_pids(), flush=True)
time.sleep(600)
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("state", ["ready", "starting"])
def test_pool_worker_exits_when_its_daemon_is_killed(tmp_path: Path, state: str) -> None:
    """Killed once the worker answers, or right after it was spawned (still importing)."""
    journal = tmp_path / "stderr.log"   # the daemon's and so the worker's stderr
    with journal.open("w") as stderr:
        parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path), state], cwd=REPO,
                                  env={**os.environ, "PYTHONPATH": str(REPO)},
                                  stdout=subprocess.PIPE, stderr=stderr, text=True)
    workers: list[int] = []
    try:
        assert parent.stdout is not None
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 1 and set(workers) <= children(parent.pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        killed = time.monotonic()
        while any(running(pid) for pid in workers) and time.monotonic() - killed < GONE_WITHIN_S:
            time.sleep(0.1)
        left = [pid for pid in workers if running(pid)]
        assert not left, f"the downlink worker outlived its killed daemon by {GONE_WITHIN_S} s"
        assert "exiting rather than running on as an orphan" in journal.read_text()
    finally:
        parent.kill()
        parent.wait(10)
        for pid in workers:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
