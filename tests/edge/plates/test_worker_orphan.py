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
def test_worker_exits_when_its_daemon_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    worker_pid = int(parent.stdout.readline())
    time.sleep(3)                                   # the worker is up and polling the folder
    os.kill(worker_pid, 0)                          # alive
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(worker_pid, signal.SIGKILL)
    pytest.fail("the camera worker outlived its killed daemon by a minute")
