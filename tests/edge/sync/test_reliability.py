"""Nothing is lost and nothing is doubled: broker outages and SIGKILL mid-burst (real Mosquitto).

The broker in these tests runs with persistence on, as a production broker must: a PUBACK
means the *broker* took responsibility for the message, so a broker that forgot its sessions
on restart would lose what was queued for the centre no matter what the edge does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.store import outbox
from edge.store.records import Records
from edge.sync.service import SyncService
from simulators.central.broker import Mosquitto
from tests.edge.sync import support

pytestmark = [pytest.mark.mqtt, pytest.mark.reliability, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]
SITE = support.SITE


@pytest.fixture
def durable_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "durable", persistence=True) as mosq:
        yield mosq


def _depth(records_path: Path) -> int:
    records = Records.open(records_path)
    try:
        return outbox.depth(records.db)
    finally:
        records.close()


def _assert_exactly_once(central, ids: list[str]) -> None:  # type: ignore[no-untyped-def]
    got = central.messages(SITE, "passage")
    assert len(got) == len(ids)
    assert [m["body"]["passage_id"] for m in got] == ids      # seq order == creation order
    seqs = [m["seq"] for m in central.messages(SITE)]
    assert seqs == list(range(1, len(seqs) + 1))              # gap-free
    assert central.report()["sites"][SITE]["gaps"] == []


def test_broker_outage_with_passages_flowing(tmp_path: Path, durable_broker: Mosquitto,
                                             keys: support.Keys) -> None:
    cfg = support.load(support.write_config(tmp_path, [durable_broker.port], keys))
    central = support.central_sim([durable_broker.port], keys).start()
    svc = SyncService(cfg)
    svc.start()
    ids: list[str] = []
    try:
        assert svc.link is not None and svc.link.wait_connected(10)
        writer = threading.Thread(target=lambda: ids.extend(
            support.save_passages(cfg.storage.records_path, 400, pause=0.01)))
        writer.start()
        time.sleep(0.8)
        durable_broker.stop()                       # outage while passages keep coming
        assert support.wait_until(lambda: not svc.link.connected.is_set(), 10)  # type: ignore[union-attr]
        time.sleep(2.0)
        queued_during_outage = _depth(cfg.storage.records_path)
        durable_broker.start()
        writer.join(30)
        assert not writer.is_alive()
        assert queued_during_outage > 0
        assert central.wait_for(SITE, 400, 60, kind="passage"), central.report()
        assert support.wait_until(lambda: _depth(cfg.storage.records_path) == 0, 20)
        _assert_exactly_once(central, ids)
        assert svc.link.connects >= 2
    finally:
        svc.stop()
        central.stop()


def _start_edge(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "edge.sync", "-c", str(config_path),
                                 "--log-level", "INFO"], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)


def test_sigkill_mid_burst_then_restart(tmp_path: Path, broker: Mosquitto, keys: support.Keys) -> None:
    config_path = support.write_config(tmp_path, [broker.port], keys)
    cfg = support.load(config_path)
    n = 4000
    ids = support.save_passages(cfg.storage.records_path, n)
    central = support.central_sim([broker.port], keys).start()
    log_path = tmp_path / "edge.log"
    proc = _start_edge(config_path, log_path)
    try:
        assert central.wait_for(SITE, 300, 30, kind="passage"), log_path.read_text()
        proc.send_signal(signal.SIGKILL)             # mid-burst: no clean-up at all
        proc.wait(10)
        # the broker publishes the retained last will at once (the socket closed uncleanly)
        assert support.wait_until(lambda: (central.sites[SITE].status or {}).get("reason")
                                  == "connection lost", 10)
        first_run = central.report()["sites"][SITE]["received"]
        assert first_run < n, "burst finished before the kill; raise n"
        proc = _start_edge(config_path, log_path)
        assert central.wait_for(SITE, n, 90, kind="passage"), central.report()
        assert support.wait_until(lambda: _depth(cfg.storage.records_path) == 0, 30)
        _assert_exactly_once(central, ids)
        proc.terminate()                             # SIGTERM: clean stop, retained 'offline'
        assert proc.wait(15) == 0
        assert support.wait_until(lambda: (central.sites[SITE].status or {}).get("reason")
                                  == "shutdown", 10)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        central.stop()
