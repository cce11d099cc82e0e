"""Signed lane commands: expiry, nonce replay, wrong lane, too long a validity (real broker)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from ulid import ULID

from edge.config import GateEdgeConfig
from edge.store.records import Records
from edge.sync.downlink import LaneCommand
from edge.sync.service import SyncService
from edge.sync.signing import sign_bytes
from simulators.central.central import CentralSim
from tests.edge.sync import support

pytestmark = pytest.mark.mqtt
SITE = support.SITE


@pytest.fixture
def delivered() -> list[LaneCommand]:
    return []


@pytest.fixture
def commanded(config: GateEdgeConfig, delivered: list[LaneCommand]):  # type: ignore[no-untyped-def]
    svc = SyncService(config, on_command=delivered.append)
    svc.start()
    assert svc.link is not None and svc.link.wait_connected(10)
    yield svc
    svc.stop()


def _command(lane: str = "in-1", *, issued: datetime | None = None, ttl: timedelta = timedelta(seconds=30),
             command: str = "hold", nonce: str | None = None) -> dict:
    issued = issued or datetime.now(UTC)
    return {"type": "command", "site": SITE, "lane": lane, "command": command, "mode": None,
            "passage_id": None, "reason": "test", "nonce": nonce or str(ULID()),
            "issued_at": issued.isoformat(), "not_after": (issued + ttl).isoformat()}


def _send(central: CentralSim, body: dict, topic_lane: str | None = None) -> None:
    central.publish_raw(support.central_topics().command(topic_lane or body["lane"]),
                        sign_bytes(body, central.key, central.kid), expiry_s=60)


def _audit_actions(config: GateEdgeConfig) -> list[tuple[str, str | None]]:
    records = Records.open(config.storage.records_path)
    try:
        rows = records.db.execute("SELECT action, reason_code FROM audit WHERE subject LIKE 'command:%'"
                                  " ORDER BY id").fetchall()
        return [(r[0], r[1]) for r in rows]
    finally:
        records.close()


def test_replayed_command_is_rejected(commanded: SyncService, central: CentralSim,
                                      delivered: list[LaneCommand], config: GateEdgeConfig) -> None:
    body = _command(command="open")
    _send(central, body)
    assert support.wait_until(lambda: len(delivered) == 1, 10)
    _send(central, body)                                   # the same signed command, again
    assert support.wait_until(lambda: commanded.downlink.counts["rejected:REPLAYED"] == 1, 10)  # type: ignore[union-attr]
    assert len(delivered) == 1
    assert central.wait_for(SITE, 1, 10, kind="alarm")
    assert central.messages(SITE, "alarm")[0]["body"]["alarm"] == "SYNC_REPLAYED"
    assert _audit_actions(config) == [("command.accepted", None)]


@pytest.mark.parametrize(("label", "body", "topic_lane", "code"), [
    ("expired", _command(issued=datetime.now(UTC) - timedelta(minutes=5)), None, "COMMAND_EXPIRED"),
    ("valid too long", _command(ttl=timedelta(hours=1)), None, "COMMAND_TTL_TOO_LONG"),
    ("unknown lane", _command(lane="out-9"), None, "WRONG_LANE"),
    ("lane differs from topic", _command(lane="in-1"), "in-2", "WRONG_LANE"),
    ("unknown command", _command(command="raise-arm"), None, "INVALID_COMMAND"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_command_is_rejected_and_not_delivered(
        label: str, body: dict, topic_lane: str | None, code: str, commanded: SyncService,
        central: CentralSim, delivered: list[LaneCommand]) -> None:
    _send(central, body, topic_lane)
    assert support.wait_until(lambda: commanded.downlink.counts[f"rejected:{code}"] == 1, 10), \
        dict(commanded.downlink.counts)  # type: ignore[union-attr]
    assert delivered == []
    if code in ("COMMAND_EXPIRED", "COMMAND_TTL_TOO_LONG", "INVALID_COMMAND"):
        # signed and well addressed: the centre learns why through a 'rejected' ack
        # (the start-up snapshot's 'applied' ack may come first: look for this command's)
        def command_acks() -> list[dict]:
            return [m["body"] for m in central.messages(SITE, "ack")
                    if m["body"].get("nonce") == body["nonce"]]
        assert support.wait_until(lambda: bool(command_acks()), 10), central.messages(SITE, "ack")
        [ack] = command_acks()
        assert (ack["ack"], ack["status"], ack["reason"]) == ("command", "rejected", code)


def test_broker_drops_commands_that_expire_while_the_checkpoint_is_away(
        config: GateEdgeConfig, central: CentralSim) -> None:
    """MQTT 5 message expiry: the persistent session queues commands for an absent checkpoint,
    but the broker discards one whose expiry passed before the checkpoint came back."""
    delivered: list[LaneCommand] = []
    svc = SyncService(config, on_command=delivered.append)
    svc.start()
    assert svc.link is not None and svc.link.wait_connected(10)
    # the empty cache's start-up snapshot is in before the stop (else the restart asks again
    # and the second answer is refused as not newer)
    assert support.wait_start_snapshot(config)
    svc.stop()                                            # session stays at the broker (expiry 2 d)
    short = central.send_command(SITE, "in-1", "hold", ttl_s=1)
    kept = central.send_command(SITE, "in-1", "mode", mode="manual", ttl_s=60)
    time.sleep(2.2)
    svc = SyncService(config, on_command=delivered.append)
    svc.start()
    try:
        assert support.wait_until(lambda: len(delivered) == 1, 10)
        time.sleep(0.5)
        assert [(c.nonce, c.command, c.mode) for c in delivered] == [(kept, "mode", "manual")]
        assert short not in {c.nonce for c in delivered}
        assert svc.downlink is not None and not any(k.startswith("rejected") for k in svc.downlink.counts)
    finally:
        svc.stop()
