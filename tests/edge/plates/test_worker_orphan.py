"""A camera worker whose gate-edge was killed with SIGKILL stops by itself.

SIGKILL gives the daemon no chance to set the worker's stop event; without this the worker
(with its OpenCV capture and onnxruntime sessions) would run on as an orphan and keep the
camera and a CPU core busy after every crash.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import running

REPO = Path(__file__).resolve().parents[3]

PARENT = """
import sys, time
from pathlib import Path
from edge.config.cameras import ImageFolderCameraConfig, ReaderConfig
from edge.plates.worker import CameraWorker
cam = ImageFolderCameraConfig(name="cam-x", type="image-folder", path=sys.argv[1], watch=True)
w = CameraWorker(cam, ReaderConfig(threads=1), "in-1")
w.start()
print(w.process.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kill_after_s", [3.0, 0.0], ids=["running", "still-starting"])
def test_worker_exits_when_its_daemon_is_killed(tmp_path: Path, kill_after_s: float) -> None:
    """Killed while the worker polls, or while it is still loading its models.

    The second case left orphans behind in the reliability tests: the worker asked for its
    parent's pid only after loading, by which time the daemon was gone and the parent was init.
    """
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    worker_pid = int(parent.stdout.readline())
    time.sleep(kill_after_s)
    assert running(worker_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not running(worker_pid):
            return
        time.sleep(0.2)
    os.kill(worker_pid, signal.SIGKILL)
    pytest.fail("the camera worker outlived its killed daemon by a minute")
