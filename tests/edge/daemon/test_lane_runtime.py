"""The lane runtime on its own: real SQLite files, no devices (the lane has no relay board).

These pin what must hold whatever the devices do: a save that fails is retried and recorded
once; a truck that leaves before its decision is still recorded, even when the file cannot
be written as it leaves; a refer only for reads that
are still missing waits for them until the deadline.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edge.config import GateEdgeConfig
from edge.console.feed import LaneFeed
from edge.daemon.evidence import EvidenceStore
from edge.daemon.lane import LaneRuntime
from edge.daemon.store import DaemonStore
from edge.domain.model import ContainerRead, PlateRead, utcnow
from edge.lanes.assembly import Read
from edge.store.cache import ManifestCache
from edge.store.records import Records
from tests import factories


def config(tmp: Path, **passages: Any) -> GateEdgeConfig:
    return GateEdgeConfig.model_validate({
        "site": {"code": "HUUNGHI", "name": "Huu Nghi"},
        "lanes": [{"id": "in-1", "direction": "inbound"}],
        "storage": {"dir": str(tmp / "var")},
        "passages": {"settle": "100ms", "deadline": "2s", "trailer_wait": "1s", **passages},
    })


def plate(text: str = "51C12345") -> PlateRead:
    return PlateRead(lane="in-1", camera="cam-front", text=text, confidence=0.97,
                     grammar="VN-1ROW")


async def until(check: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.05)


def rows(tmp: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(tmp / "var" / "records.db") as db:
        return db.execute("SELECT p.id, p.outcome, p.barrier_events FROM passages p "
                          "ORDER BY started_at").fetchall()


def decisions(tmp: Path) -> int:
    with sqlite3.connect(tmp / "var" / "records.db") as db:
        return int(db.execute("SELECT count(*) FROM decisions").fetchone()[0])


def with_cleared_truck(cfg: GateEdgeConfig, **policy: Any) -> GateEdgeConfig:
    """A fresh cache holding the factory's released declaration; policy overrides applied."""
    cache = ManifestCache.open(cfg.storage.cache_path)
    cache.upsert_manifests([factories.manifest()])
    cache.set_meta(signed_at=utcnow().isoformat())
    cache.close()
    return cfg.model_copy(update={"policy": cfg.policy.model_copy(update=policy)})


async def started(tmp: Path, cfg: GateEdgeConfig) -> tuple[LaneRuntime, DaemonStore, LaneFeed]:
    store = DaemonStore(cfg)
    await store.open()
    feed = LaneFeed([("in-1", "Lane 1")])
    lane = LaneRuntime(cfg.lanes[0], cfg, store=store, feed=feed,
                       evidence=EvidenceStore(cfg.storage.evidence_dir, 10))
    await lane.start()
    return lane, store, feed


def test_a_failed_save_is_retried_and_recorded_once(tmp_path: Path) -> None:
    async def main() -> None:
        cfg = config(tmp_path)
        lane, store, feed = await started(tmp_path, cfg)
        try:
            assert store.records is not None
            store.records.db.conn.close()           # the file cannot be written for a while
            lane.on_event({"event": "vehicle_present", "event_id": "E1"})
            lane.add_read(plate())
            await until(lambda: (feed.lane("in-1") or feed.lanes()[0]).reasons
                        == ("SAVE_FAILED",))
            assert lane.pending()                   # not decided: nothing was recorded
            store.records = Records.open(cfg.storage.records_path, check_same_thread=False)
            await until(lambda: lane.decided == 1)
        finally:
            await lane.stop()
            await store.close()

    asyncio.run(main())
    [(_, outcome, _)] = rows(tmp_path)
    assert outcome == "refer"                       # no manifest in the empty cache
    assert decisions(tmp_path) == 1


def test_a_truck_that_leaves_undecided_is_still_recorded(tmp_path: Path) -> None:
    async def main() -> None:
        cfg = config(tmp_path, deadline="30s")
        lane, store, _ = await started(tmp_path, cfg)
        try:
            lane.on_event({"event": "vehicle_present", "event_id": "E1"})
            await asyncio.sleep(0.3)                # no plate: nothing is due before 30 s
            lane.on_event({"event": "cleared", "event_id": "E1", "passed": False})
            await until(lambda: bool(rows(tmp_path)) and rows(tmp_path)[0][1] is not None)
            await asyncio.sleep(0.3)
        finally:
            await lane.stop()
            await store.close()

    asyncio.run(main())
    [(_, outcome, events)] = rows(tmp_path)
    assert outcome == "refer"
    assert "left_before_decision" in [e["event"] for e in json.loads(events)]


def test_a_truck_that_leaves_while_nothing_can_be_saved_is_recorded_later(
        tmp_path: Path) -> None:
    async def main() -> None:
        cfg = config(tmp_path, deadline="30s")
        lane, store, _ = await started(tmp_path, cfg)
        try:
            assert store.records is not None
            store.records.db.conn.close()           # the file cannot be written for a while
            lane.on_event({"event": "vehicle_present", "event_id": "E1"})
            await asyncio.sleep(0.3)
            lane.on_event({"event": "cleared", "event_id": "E1", "passed": False})
            await asyncio.sleep(2.5)                # a few failed tries; nothing was lost
            assert lane._decisions                  # still trying
            store.records = Records.open(cfg.storage.records_path, check_same_thread=False)
            await until(lambda: bool(rows(tmp_path)) and "left_before_decision" in
                        rows(tmp_path)[0][2])
        finally:
            await lane.stop()
            await store.close()

    asyncio.run(main())
    [(_, outcome, _)] = rows(tmp_path)
    assert outcome == "refer"
    assert decisions(tmp_path) == 1


TRAILER = PlateRead(lane="in-1", camera="cam-rear", role="trailer", text="51R01234",
                    confidence=0.95, grammar="VN-2ROW")
CONTAINER = ContainerRead(lane="in-1", camera="cam-rear", text="MSKU1234565", confidence=0.93)


@pytest.mark.parametrize(("early", "late"), [
    # the container comes into the rear camera's view late
    ([plate("51C12345"), TRAILER], CONTAINER),
    # the camera's vote first finds the plate unsure (far away, the recognizers disagreeing,
    # confidence capped below policy.min_plate_confidence); more frames make it sure
    ([plate("51C12345").model_copy(update={"confidence": 0.79}), TRAILER, CONTAINER],
     plate("51C12345")),
], ids=["container-late", "plate-unsure-first"])
def test_a_refer_for_a_read_still_missing_or_unsure_waits_for_it(
        tmp_path: Path, early: list[Read], late: Read) -> None:
    """Referring before the deadline would send a cleared truck to an officer for nothing."""
    async def main() -> None:
        cfg = with_cleared_truck(config(tmp_path, deadline="10s"), require_seal_read=False)
        lane, store, _ = await started(tmp_path, cfg)
        try:
            lane.on_event({"event": "vehicle_present", "event_id": "E1"})
            for read in early:
                lane.add_read(read)
            await asyncio.sleep(1.0)                # settled, but a read is missing or unsure
            assert lane.decided == 0 and lane.pending()
            lane.add_read(late)
            await until(lambda: lane.decided == 1)
        finally:
            await lane.stop()
            await store.close()

    asyncio.run(main())
    [(_, outcome, _)] = rows(tmp_path)
    assert outcome == "open"


def test_a_plate_that_stays_unsure_is_referred_at_the_deadline(tmp_path: Path) -> None:
    async def main() -> None:
        cfg = with_cleared_truck(config(tmp_path, deadline="2s"))
        lane, store, _ = await started(tmp_path, cfg)
        try:
            lane.on_event({"event": "vehicle_present", "event_id": "E1"})
            lane.add_read(plate("51C12345").model_copy(update={"confidence": 0.6}))
            await until(lambda: lane.decided == 1)
        finally:
            await lane.stop()
            await store.close()

    asyncio.run(main())
    [(_, outcome, _)] = rows(tmp_path)
    assert outcome == "refer"
    with sqlite3.connect(tmp_path / "var" / "records.db") as db:
        [reasons] = db.execute("SELECT reasons FROM decisions").fetchone()
    assert "LOW_CONFIDENCE" in reasons
