"""The small scenarios through the whole lab: real processes, real ptys, real MJPEG, real MQTT.

Each test starts Mosquitto, the central simulator, relay boards with gate-controllers, camera
and seal simulators and ``gate-edge run`` (simulators/scenario/lab.py), plays a scenario file
from config/scenarios/ and checks the decisions, the barrier and what the centre received.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "config" / "scenarios"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}


def _children_gone(lab: Path) -> bool:
    """No process still has the lab directory on its command line (ours or a leftover)."""
    mine = str(lab)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if mine in cmdline:
            return False
    return True


def test_outage_scenario_loses_nothing(tmp_path: Path) -> None:
    """gate-sim scenario: trucks decided while the broker is down reach the centre afterwards."""
    lab = tmp_path / "lab"
    proc = subprocess.run([sys.executable, "-m", "simulators.cli", "scenario",
                           str(SCENARIOS / "outage.yaml"), "--keep", str(lab)],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "PASS: 2/2 truck(s) as expected" in proc.stdout
    result = json.loads((lab / "results.json").read_text(encoding="utf-8"))
    tampered, cleared = result["trucks"]
    assert tampered["decision"] == "refer" and "SEAL_TAMPERED" in tampered["reasons"]
    assert not tampered["barrier_opened"] and tampered["passed"] is False
    assert cleared["decision"] == "open" and cleared["barrier_opened"] and cleared["passed"]
    assert result["seq_gaps"] == [] and result["received_passages"] == 2
    # Both were decided while the broker was down, and reached the centre exactly once after.
    up = next(f for f in result["faults"] if f.endswith("broker up"))
    broker_back = datetime.fromisoformat(up.split()[0])
    received = [json.loads(line) for line in
                (lab / "central-received.jsonl").read_text(encoding="utf-8").splitlines()]
    passages = [m for m in received if m["type"] == "passage"]
    assert sorted(m["body"]["passage_id"] for m in passages) == sorted(
        t["passage_id"] for t in result["trucks"])
    for msg in passages:
        assert datetime.fromisoformat(msg["body"]["decision"]["decided_at"]) < broker_back
    assert _children_gone(lab)


def _login(base: str, user: str, password: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    req = urllib.request.Request(base + "api/v1/session", method="POST",
                                 data=json.dumps({"username": user, "password": password}).encode(),
                                 headers={"Content-Type": "application/json"})
    with opener.open(req, timeout=10) as answer:
        assert json.loads(answer.read())["role"] == "officer"
    return opener


def test_gate_edge_demo_serves_the_console_until_stopped(tmp_path: Path) -> None:
    """gate-edge demo: login printed, scenario judged, console usable, SIGTERM stops all.

    This test is about the command (the login works, the console serves the passages, the lab
    stops cleanly and the exit status follows the verdict); the decisions themselves are
    checked strictly by test_outage_scenario_loses_nothing.
    """
    lab = tmp_path / "lab"
    proc = subprocess.Popen([sys.executable, "-m", "edge", "demo", "--scenario",
                             str(SCENARIOS / "one-truck.yaml"), "--keep", str(lab)],
                            cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 200
        for line in proc.stdout:
            lines.append(line)
            if "press Ctrl-C" in line or time.monotonic() > deadline:
                break
        out = "".join(lines)
        verdict = re.search(r"(PASS|FAIL): (\d)/1 truck\(s\) as expected", out)
        assert verdict, out[-4000:]
        url = re.search(r"officer console: (http://\S+)", out)
        login = re.search(r"login: (\S+)\s+password: (\S+)", out)
        assert url and login, out
        opener = _login(url.group(1), login.group(1), login.group(2))
        with opener.open(url.group(1) + "api/v1/passages", timeout=10) as answer:
            passages: list[dict[str, Any]] = json.loads(answer.read())
        result = json.loads((lab / "results.json").read_text(encoding="utf-8"))
        assert [p["id"] for p in passages] == [result["trucks"][0]["passage_id"]]
        assert passages[0]["lane"] == "in-1"
        assert passages[0]["outcome"] == result["trucks"][0]["decision"]
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == (0 if verdict.group(1) == "PASS" else 1), rest[-3000:]
    assert "stopped." in rest
    assert _children_gone(lab)
