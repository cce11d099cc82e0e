"""``gate-edge seals listen`` against the e-seal simulator on a real pty."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from simulators.seals import BarcodeScannerSimulator, ESealReaderSimulator

REPO = Path(__file__).resolve().parents[3]

CONFIG = """\
site: {{code: HUUNGHI, name: Huu Nghi}}
lanes:
  - {{id: in-1, direction: inbound, seal_readers: [eseal-in1]}}
seal_readers:
  - {{name: eseal-in1, type: eseal, port: {port}}}
mqtt: {{enabled: false}}
"""


def listen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "edge", "seals", "listen", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def feed_until_done(proc: subprocess.Popen[str], send: Callable[[], object]) -> tuple[str, str]:
    # The listener opens the port asynchronously: keep sending until it has what it wants.
    deadline = time.monotonic() + 15
    while proc.poll() is None and time.monotonic() < deadline:
        send()
        time.sleep(0.1)
    out, err = proc.communicate(timeout=10)
    return out, err


def test_listen_to_a_configured_reader(tmp_path: Path) -> None:
    with ESealReaderSimulator(tmp_path / "seal-1") as sim:
        cfg = tmp_path / "gate-edge.yaml"
        cfg.write_text(CONFIG.format(port=sim.path))
        proc = listen("eseal-in1", "-c", str(cfg), "--count", "2")
        out, err = feed_until_done(proc, lambda: sim.read("ABCD1234", "T", bat=12))
    assert proc.returncode == 0, err
    reads = [json.loads(line) for line in out.splitlines()]
    assert len(reads) == 2
    assert reads[0]["seal_id"] == "ABCD1234" and reads[0]["status"] == "tampered"
    assert reads[0]["reader"] == "eseal-in1" and reads[0]["battery"] == 12
    summary = json.loads(err.strip().splitlines()[-1])
    assert summary["reader"] == "eseal-in1" and summary["reads"] >= 2


def test_listen_to_a_port_directly(tmp_path: Path) -> None:
    with BarcodeScannerSimulator(tmp_path / "scan-1", prefix="]C0") as sim:
        proc = listen("--port", sim.path, "--type", "barcode", "--prefix", "]C0", "--count", "1")
        out, err = feed_until_done(proc, lambda: sim.read("EU 1234567"))
    assert proc.returncode == 0, err
    assert json.loads(out.splitlines()[0])["seal_id"] == "EU1234567"


def test_unknown_reader_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "gate-edge.yaml"
    cfg.write_text(CONFIG.format(port="/dev/null"))
    proc = listen("nope", "-c", str(cfg))
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "no seal reader 'nope'; configured: ['eseal-in1']" in err
