"""Two faults of the machine itself against the whole simulated gate: a full disk, a clock jump.

The disk is real: gate-edge's ``storage.dir`` (cache.db, records.db, evidence/) sits on a small
tmpfs of its own, and a filler file eats its free space while trucks arrive. The clock is
real too, as far as gate-edge can tell: ``gate-edge run`` starts under libfaketime, and the
test moves its wall clock (``CLOCK_REALTIME``, what a wrong NTP step or an operator's
``date -s`` moves) while it runs; ``CLOCK_MONOTONIC`` is left alone, as a real clock step
leaves it.

After each fault, as in ``test_gate_faults``: every truck has exactly one passage, the centre
received each once with a gap-free ``seq``, the audit chain verifies, and the board saw no
collision and no arm coming down on a vehicle.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.central.broker import Mosquitto
from tests.edge.daemon.gate import DECLARATION, REPO, TRUCK, Gate, decision, gate
from tests.edge.sync import support
from tests.reliability import disk
from tests.reliability.disk import fill, free_mb, truncate_wal

pytestmark = [pytest.mark.slow, pytest.mark.reliability, pytest.mark.timeout(300)]

# The storage filesystem: records.db and cache.db with their WAL files need well under 2 MB
# here; the rest is room for evidence images until the filler takes it. min_free_mb may not
# be set below 10, so "low but not zero" is somewhere under 10 MB free.
DISK_MB = 24
MIN_FREE_MB = 10


@pytest.fixture
def durable_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "durable", persistence=True) as mosq:
        yield mosq


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_MB mounted for this test only; unmounted (lazily if busy) at the end."""
    try:
        with disk.small_disk(tmp_path / "disk", DISK_MB) as path:
            yield path
    except disk.DiskUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def disk_lane(tmp_path: Path, small_disk: Path, durable_broker: Mosquitto,
              keys: support.Keys) -> Iterator[Gate]:
    yield from gate(tmp_path, durable_broker, keys, storage_dir=small_disk / "gate-edge",
                    min_free_mb=MIN_FREE_MB)


def rows(lane: Gate) -> list[tuple[str, str | None, str | None, str]]:
    with sqlite3.connect(lane.records_path, timeout=10) as db:
        return db.execute("SELECT id, outcome, ended_at, evidence FROM passages ORDER BY rowid"
                          ).fetchall()


def evidence_files(lane: Gate) -> list[Path]:
    return sorted((lane.storage / "evidence").rglob("*.jpg"))


def audit_verifies(lane: Gate) -> str:
    done = subprocess.run([sys.executable, "-m", "edge", "audit", "verify", "-c",
                           str(lane.config)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def assert_invariants(lane: Gate) -> None:
    snap = lane.board.snapshot()
    assert snap["collisions"] == [], snap
    assert snap["max_close_over_occupied_s"] == 0, snap


def assert_centre_complete(lane: Gate) -> None:
    report = lane.central.report()["sites"][support.SITE]
    assert report["gap_count"] == 0, report


def wait_log(lane: Gate, text: str, timeout: float = 40, process: str = "gate-edge") -> float:
    """Wait until a process's log holds ``text``; returns the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    while text not in lane.log(process):
        assert time.monotonic() < deadline, f"no {text!r} in:\n{lane.log(process)[-4000:]}"
        lane.check_alive()
        time.sleep(0.1)
    return time.monotonic()


# -- disk ------------------------------------------------------------------------------------

def started_on_a_full_disk(lane: Gate, disk_path: Path) -> Path:
    """The gate running with the lane's declaration, then its disk filled to the last byte."""
    lane.start_controller()
    lane.start_edge()
    lane.publish_declarations(DECLARATION)
    time.sleep(2)
    truncate_wal(lane.records_path)
    return fill(disk_path, 0)


def assert_nothing_lost(lane: Gate) -> None:
    """Audit chain intact, barrier invariants held, the centre got every passage, gap-free."""
    audit_verifies(lane)
    assert_invariants(lane)
    assert_centre_complete(lane)


def test_low_disk_stops_images_but_passages_are_recorded(disk_lane: Gate,
                                                         small_disk: Path) -> None:
    lane = disk_lane
    lane.start_controller()
    lane.start_edge()
    lane.publish_declarations(DECLARATION)
    time.sleep(2)
    before = evidence_files(lane)
    fill(small_disk, 4 * 2**20)          # 4 MB left: below min_free_mb, far from full
    left = free_mb(small_disk)
    assert 1 < left < MIN_FREE_MB, left
    lane.drive(TRUCK, seal="ES00012345")
    [msg] = lane.wait_passages(1)
    assert decision(msg)["outcome"] == "open", (decision(msg), lane.log("gate-edge")[-3000:])
    assert lane.board.wait_for(lambda s: len(s["passed"]) == 1, timeout=40)
    lane.wait_idle()
    assert "evidence images are no longer saved" in lane.log("gate-edge")
    assert evidence_files(lane) == before            # not one image since the disk got low
    [(_, outcome, ended, evidence)] = rows(lane)
    assert outcome == "open" and ended is not None
    assert evidence == "[]", evidence

    (small_disk / "filler").unlink()                 # space again: images come back
    lane.drive(next_truck(lane, tractor_plate="51C67890"), seal=None, turn_back_after_s=4.0)
    assert lane.board.wait_for(lambda s: len(s["turned_back"]) == 1, timeout=40)
    got = lane.wait_passages(2)
    assert [decision(m)["outcome"] for m in got] == ["open", "refer"]
    wait_log(lane, "saving evidence images again")
    assert len(evidence_files(lane)) > len(before)
    assert len(rows(lane)) == 2
    assert lane.board.snapshot()["open_rises"] == 1
    assert_nothing_lost(lane)


def test_full_disk_holds_the_barrier_until_the_passage_is_saved(disk_lane: Gate,
                                                               small_disk: Path) -> None:
    lane = disk_lane
    filler = started_on_a_full_disk(lane, small_disk)
    assert free_mb(small_disk) < 0.01
    lane.drive(TRUCK, seal="ES00012345")
    failed = wait_log(lane, "not saved: the disk holding")
    time.sleep(5)                                    # a few retries, all on a full disk
    lane.check_alive()
    snap = lane.board.snapshot()
    assert snap["open_rises"] == 0 and snap["arm"] < 0.02, snap
    assert lane.passages() == []
    assert rows(lane) == []
    said = lane.log("gate-edge")
    assert f"the disk holding {lane.records_path} is full" in said, said[-3000:]
    assert "barrier stays shut" in said and "Free space on that filesystem" in said

    filler.unlink()
    freed = time.monotonic()
    assert lane.board.wait_for(lambda s: s["open_rises"] == 1, timeout=20), lane.board.snapshot()
    opened = time.monotonic()
    [msg] = lane.wait_passages(1)
    assert decision(msg)["outcome"] == "open", (decision(msg), lane.log("gate-edge")[-3000:])
    assert lane.board.wait_for(lambda s: len(s["passed"]) == 1, timeout=40)
    lane.wait_idle()
    recovered = wait_log(lane, "failed tries")
    tries = lane.log("gate-edge").split("saved after ")[1].split(" failed tries")[0]
    print(f"\nbarrier shut {opened - failed:.1f} s after the first failed save "
          f"({tries} failed tries), rose {opened - freed:.1f} s after the disk was freed")
    assert recovered
    [(_, outcome, ended, _)] = rows(lane)
    assert outcome == "open" and ended is not None
    time.sleep(1)
    assert len(lane.passages()) == 1
    assert lane.board.snapshot()["open_rises"] == 1
    assert_nothing_lost(lane)


def test_truck_backing_out_while_the_disk_is_full_is_still_recorded(disk_lane: Gate,
                                                                   small_disk: Path) -> None:
    lane = disk_lane
    filler = started_on_a_full_disk(lane, small_disk)
    # The barrier stays shut, the driver gives up and backs out while nothing can be saved.
    lane.drive({**TRUCK, "duration_s": 25}, seal="ES00012345", turn_back_after_s=11.0)
    wait_log(lane, "not saved: the disk holding")
    assert lane.board.wait_for(lambda s: len(s["turned_back"]) == 1, timeout=40)
    lane.wait_idle()
    time.sleep(3)
    lane.check_alive()
    assert rows(lane) == [] and lane.passages() == []
    filler.unlink()
    [msg] = lane.wait_passages(1)            # was: never recorded, the truck lost
    wait_log(lane, "recorded after")
    [(_, outcome, ended, _)] = rows(lane)
    assert outcome == decision(msg)["outcome"] and ended is not None
    with sqlite3.connect(lane.records_path) as db:
        [(events,)] = db.execute("SELECT barrier_events FROM passages").fetchall()
    assert "left_before_decision" in events, events
    assert lane.board.snapshot()["open_rises"] == 0
    time.sleep(1)
    assert len(lane.passages()) == 1
    assert_nothing_lost(lane)


# -- clock -----------------------------------------------------------------------------------

def libfaketime() -> Path:
    """libfaketime.so.1 of Debian's ``libfaketime`` package (pulled in by ``faketime``)."""
    for lib in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
                "/usr/lib/faketime/libfaketime.so.1", "/usr/local/lib/faketime/libfaketime.so.1"):
        if Path(lib).is_file():
            return Path(lib)
    pytest.skip("libfaketime is not installed: install the Debian package `faketime` "
                "(apt-get install faketime; run.sh setup does) to move a process's clock")


SHIM = Path(__file__).with_name("faketime")


class FakeClock:
    """One wall clock, moved by writing libfaketime's timestamp file; ``env`` runs under it.

    ``+3d`` / ``-2h`` are offsets from the real time. Only ``CLOCK_REALTIME`` moves
    (``DONT_FAKE_MONOTONIC``): a real clock step does not move ``CLOCK_MONOTONIC`` either.
    The file is read again about once a second (``FAKETIME_CACHE_DURATION``, whole seconds): rereading it
    on every call (``FAKETIME_NO_CACHE``) costs 20 times a plain ``time.time()``.
    ``faketime/sitecustomize.py`` works around libfaketime's broken ``time.sleep``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.write("+0")
        self.env = {"LD_PRELOAD": str(libfaketime()), "FAKETIME_TIMESTAMP_FILE": str(path),
                    "FAKETIME_CACHE_DURATION": "1", "DONT_FAKE_MONOTONIC": "1",
                    "PYTHONPATH": f"{SHIM}{os.pathsep}{REPO}"}
        self.probe()

    def write(self, offset: str) -> None:
        tmp = self.path.with_suffix(".new")
        tmp.write_text(offset + "\n", encoding="ascii")
        tmp.replace(self.path)

    def set(self, offset: str) -> None:
        """Step the clock; returns once every process under it has reread the file."""
        self.write(offset)
        time.sleep(2.2)

    def probe(self) -> None:
        """The clock moves under a running Python, its monotonic clock and sleeps do not."""
        script = ("import time, threading, asyncio\n"
                  "w, m = time.time(), time.monotonic()\n"
                  "print('ready', flush=True)\n"
                  "time.sleep(2.5); threading.Event().wait(0.05)\n"
                  "asyncio.run(asyncio.sleep(0.05))\n"
                  "print(round(time.time() - w - (time.monotonic() - m)))\n")
        child = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, **self.env},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout is not None
        ready = child.stdout.readline()
        self.write("+1d")
        out, err = child.communicate(timeout=20)
        self.write("+0")
        if ready.strip() != "ready" or child.returncode != 0 or out.strip() != "86400":
            pytest.skip(f"libfaketime does not step a running Python's clock as expected "
                        f"(wall minus monotonic moved {out.strip()!r} s, not 86400; {err.strip()[-300:]})")


@pytest.fixture
def edge_clock(tmp_path: Path) -> FakeClock:
    return FakeClock(tmp_path / "edge-clock")


@pytest.fixture
def clock_lane(tmp_path: Path, durable_broker: Mosquitto, keys: support.Keys,
               edge_clock: FakeClock) -> Iterator[Gate]:
    yield from gate(tmp_path, durable_broker, keys, edge_env=edge_clock.env)


def seqs(lane: Gate) -> list[int]:
    with sqlite3.connect(lane.records_path, timeout=10) as db:
        return [r[0] for r in db.execute("SELECT seq FROM outbox ORDER BY seq")]


def alarms(lane: Gate, code: str) -> list[dict[str, Any]]:
    return [m["body"] for m in lane.central.messages(support.SITE, "alarm")
            if m["body"].get("alarm") == code]


def wait_alarm(lane: Gate, code: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not alarms(lane, code):
        assert time.monotonic() < deadline, lane.central.messages(support.SITE, "alarm")
        time.sleep(0.2)
    return alarms(lane, code)[-1]


def next_truck(lane: Gate, **changes: Any) -> dict[str, Any]:
    """The truck again (with ``changes``), once the camera shows an empty lane (no queued camera run).

    The camera simulator queues trucks; one queued behind the last, or following it with no
    gap, may be taken by the plate reader for the same vehicle and give no new read.
    """
    deadline = time.monotonic() + 30
    while "truck" in (state := lane.camera.sim.state()) or state["queued"]:
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    time.sleep(0.5)
    return {**TRUCK, **changes}


def assert_all_recorded_once(lane: Gate, outcomes: list[str],
                             sent: list[str] | None = None) -> None:
    """One passage per truck with ``outcomes``; the centre got ``sent`` (every decision)."""
    sent = sent or outcomes
    lane.wait_passages(len(sent))
    time.sleep(1)
    assert [decision(m)["outcome"] for m in lane.passages()] == sent
    assert [r[1] for r in rows(lane)] == outcomes
    assert all(r[2] is not None for r in rows(lane)), rows(lane)   # every ending recorded
    assert seqs(lane) == list(range(1, len(seqs(lane)) + 1))        # outbox seq gap-free
    assert_nothing_lost(lane)


def test_gate_edge_clock_stepped_days_ahead_then_back_loses_nothing(
        clock_lane: Gate, edge_clock: FakeClock) -> None:
    lane = clock_lane
    lane.start_controller()
    lane.start_edge()
    lane.publish_declarations(DECLARATION)
    time.sleep(2)

    edge_clock.set("+3d")                        # beyond policy.max_cache_age (1d)
    wait_log(lane, "the wall clock was stepped forward by 3 days")
    assert wait_alarm(lane, "CLOCK_STEP")["detail"]["step_s"] > 3 * 86400 - 5
    lane.drive(next_truck(lane), seal="ES00012345", turn_back_after_s=9.0)
    [first] = lane.wait_passages(1)
    # a stale cache refers at once, whatever else is still unread or unsure at that moment
    assert decision(first)["outcome"] == "refer", decision(first)
    assert "CACHE_STALE" in decision(first)["reasons"], decision(first)
    assert any("older than 1 day" in d for d in decision(first)["details"]), decision(first)
    assert lane.board.wait_for(lambda s: len(s["turned_back"]) == 1, timeout=40)
    lane.wait_idle()

    edge_clock.set("-2h")                        # back, past the real time: backwards
    wait_log(lane, "the wall clock was stepped back by 3 days, 2:00")
    lane.drive(next_truck(lane), seal="ES00012345", turn_back_after_s=9.0)
    second = lane.wait_passages(2)[1]
    # a stale cache refers at once, whatever else is still unread or unsure at that moment
    assert decision(second)["outcome"] == "refer", decision(second)
    assert "CACHE_STALE" in decision(second)["reasons"], decision(second)
    assert any("in the future" in d for d in decision(second)["details"]), decision(second)
    assert lane.board.wait_for(lambda s: len(s["turned_back"]) == 2, timeout=40)
    lane.wait_idle()

    edge_clock.set("+0")                         # the time source fixed: opens again
    lane.drive(next_truck(lane), seal="ES00012345")
    third = lane.wait_passages(3)[2]
    assert decision(third)["outcome"] == "open", decision(third)
    assert lane.board.wait_for(lambda s: len(s["passed"]) == 1, timeout=40)
    lane.wait_idle()
    assert lane.board.snapshot()["open_rises"] == 1
    assert_all_recorded_once(lane, ["refer", "refer", "open"])
    lane.check_alive()


def test_host_clock_stepped_back_after_start_still_opens(
        tmp_path: Path, durable_broker: Mosquitto, keys: support.Keys) -> None:
    # Both processes on one clock, as on one host: chrony steps a fast RTC back 4 minutes
    # after gate-controller started (inside the matcher's 5-minute skew allowance).
    host = FakeClock(tmp_path / "host-clock")
    for lane in gate(tmp_path, durable_broker, keys, edge_env=host.env,
                     controller_env=host.env):
        lane.start_controller()
        lane.start_edge()
        lane.publish_declarations(DECLARATION)
        time.sleep(2)
        host.set("-4m")
        wait_log(lane, "the wall clock was stepped back by 0:04:00")
        lane.drive(TRUCK, seal="ES00012345")
        [msg] = lane.wait_passages(1)
        assert decision(msg)["outcome"] == "open", decision(msg)
        # Was: token_before_start for every truck until gate-controller restarted.
        assert lane.board.wait_for(lambda s: len(s["passed"]) == 1, timeout=40), \
            (lane.board.snapshot(), lane.log("gate-edge")[-2000:])
        lane.wait_idle()
        assert "refused" not in lane.log("gate-edge")
        assert lane.board.snapshot()["open_rises"] == 1
        assert_all_recorded_once(lane, ["open"])


def test_gate_edge_clock_apart_from_the_controllers_refers_instead_of_opening(
        clock_lane: Gate, edge_clock: FakeClock) -> None:
    lane = clock_lane
    lane.start_controller()
    lane.start_edge()
    lane.publish_declarations(DECLARATION)
    time.sleep(2)
    # gate-edge alone an hour ahead: the cache is an hour old, well inside max_cache_age, so
    # the matcher opens; the controller, on the real time, refuses the token from the future.
    edge_clock.set("+1h")
    lane.drive(next_truck(lane), seal="ES00012345", turn_back_after_s=8.0)
    msg = lane.wait_passages(1)[0]
    assert decision(msg)["outcome"] == "open", decision(msg)
    wait_log(lane, "refused the open token")
    said = lane.log("gate-edge")
    assert "token_from_future" in said and "chronyc tracking" in said
    assert "truck is referred to an officer" in said
    # the referral is a second request, right after that log line
    wait_log(lane, "'event': 'referred'", timeout=10, process="gate-controller")
    assert "CLOCK_SKEW" in lane.log("gate-controller")
    assert wait_alarm(lane, "CLOCK_SKEW")["detail"]["error"] == "token_from_future"
    assert lane.board.wait_for(lambda s: len(s["turned_back"]) == 1, timeout=40)
    lane.wait_idle()
    assert lane.board.snapshot()["open_rises"] == 0
    with sqlite3.connect(lane.records_path) as db:
        [(pid, outcome, reasons, events)] = db.execute(
            "SELECT id, outcome, reasons, barrier_events FROM passages").fetchall()
        history = db.execute("SELECT outcome, reasons, decided_by FROM decisions WHERE "
                             "passage_id = ? ORDER BY id", [pid]).fetchall()
        sent = db.execute("SELECT payload FROM outbox WHERE kind = 'passage' ORDER BY seq"
                          ).fetchall()
        actions = [a for (a,) in db.execute("SELECT action FROM audit WHERE subject = ? "
                                            "ORDER BY id", [f"passage:{pid}"])]
    assert "token_from_future" in events and '"referred"' in events, events
    # was: still recorded (and sent) as opened, the barrier having stayed down
    assert (outcome, reasons) == ("refer", '["CLOCK_SKEW"]'), (outcome, reasons)
    assert history == [("open", "[]", "auto"), ("refer", '["CLOCK_SKEW"]', "auto")], history
    assert [json.loads(p)["decision"]["outcome"] for (p,) in sent] == ["open", "refer"]
    assert actions == ["decision.open", "decision.refer", "barrier.open_refused"], actions
    refer = lane.wait_passages(2)[1]
    assert refer["body"]["passage_id"] == pid == msg["body"]["passage_id"]
    assert decision(refer)["reasons"] == ["CLOCK_SKEW"], decision(refer)
    assert any("token_from_future" in d for d in decision(refer)["details"]), decision(refer)

    edge_clock.set("+0")
    lane.drive(next_truck(lane), seal="ES00012345")
    assert lane.board.wait_for(lambda s: len(s["passed"]) == 1, timeout=40)
    lane.wait_idle()
    assert lane.board.snapshot()["open_rises"] == 1
    assert_all_recorded_once(lane, ["refer", "open"], sent=["open", "refer", "open"])
