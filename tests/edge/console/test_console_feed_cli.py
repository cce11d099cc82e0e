"""The live lane feed (publish from any thread, fan-out, overflow) and the users/console CLI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from typer.testing import CliRunner

from edge.cli import app as cli
from edge.console.feed import FeedEvent, LaneFeed
from edge.console.users import Users
from edge.domain.model import (
    Decision,
    Outcome,
    Passage,
    PassageReads,
    PlateRead,
    ReasonCode,
    utcnow,
)
from edge.store import audit
from edge.store.records import Records
from tests.edge.console.console_site import make_site

T = TypeVar("T")


def _run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run in a fresh thread: Playwright's sync API keeps a loop in the main thread."""
    box: list[T] = []
    worker = threading.Thread(target=lambda: box.append(asyncio.run(coro_fn())))
    worker.start()
    worker.join(30)
    assert box, "scenario failed (see the thread's traceback above)"
    return box[0]


def _passage(lane: str = "in-1") -> Passage:
    reads = PassageReads(lane=lane, tractor=(PlateRead(lane=lane, text="51C12345",
                                                       confidence=0.97, crop_ref="c.png"),))
    return Passage(lane=lane, reads=reads, decision=Decision(
        outcome=Outcome.REFER, reasons=(ReasonCode.SEAL_MISSING,)))


def test_feed_fans_out_publishes_from_other_threads() -> None:
    feed = LaneFeed([("in-1", "Import lane 1"), ("in-2", "Import lane 2")])

    async def scenario() -> list[FeedEvent]:
        got: list[FeedEvent] = []
        async with feed.subscription() as first, feed.subscription() as second:
            assert feed.subscriber_count() == 2
            passage = _passage()
            worker = threading.Thread(target=feed.publish_passage, args=(passage,))
            worker.start()
            worker.join()
            feed.update_lane("in-2", state="fault", barrier="up", faults=("loop stuck on",))
            for _ in range(3):
                got.append(await asyncio.wait_for(first.get(), 2))
            assert (await asyncio.wait_for(second.get(), 2)).kind == "lane"
        assert feed.subscriber_count() == 0
        return got

    events = _run(scenario)
    assert [e.kind for e in events] == ["lane", "passage", "lane"]
    assert events[0].data["plate"] == "51C12345" and events[0].data["outcome"] == "refer"
    assert events[0].data["reasons"] == ["SEAL_MISSING"]
    assert events[2].data["faults"] == ["loop stuck on"]
    lane = feed.lane("in-2")
    assert lane is not None and lane.state == "fault" and lane.name == "Import lane 2"


def test_slow_page_gets_a_resync_instead_of_blocking_the_daemon() -> None:
    feed = LaneFeed([("in-1", "")])

    async def scenario() -> list[str]:
        async with feed.subscription() as queue:
            for i in range(LaneFeed.QUEUE_SIZE + 5):
                feed.update_lane("in-1", state="idle" if i % 2 else "deciding")
            await asyncio.sleep(0.05)  # let the queued deliveries run
            kinds = []
            while not queue.empty():
                kinds.append(queue.get_nowait().kind)
            return kinds

    kinds = _run(scenario)
    assert "resync" in kinds and len(kinds) <= LaneFeed.QUEUE_SIZE


def test_users_add_reads_password_from_stdin_and_never_defaults(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    runner = CliRunner()
    cfg = tmp_path / "cli.yaml"
    cfg.write_text((tmp_path / "gate-edge.yaml").read_text(encoding="utf-8").replace(
        "dir: ./var/demo", f"dir: {site.cfg.storage.dir}"), encoding="utf-8")
    ok = runner.invoke(cli, ["users", "add", "lan.nguyen", "--role", "officer", "-c", str(cfg)],
                       input="a-long-passphrase\n")
    assert ok.exit_code == 0, ok.output
    empty = runner.invoke(cli, ["users", "add", "minh", "--role", "officer", "-c", str(cfg)],
                          input="\n")
    assert empty.exit_code != 0 and "at least 10 characters" in empty.output
    dup = runner.invoke(cli, ["users", "add", "lan.nguyen", "--role", "admin", "-c", str(cfg)],
                        input="another-passphrase\n")
    assert dup.exit_code != 0 and "already exists" in dup.output
    role = runner.invoke(cli, ["users", "add", "tuan", "--role", "boss", "-c", str(cfg)],
                         input="another-passphrase\n")
    assert role.exit_code != 0
    weak = runner.invoke(cli, ["users", "passwd", "lan.nguyen", "-c", str(cfg)], input="lan.nguyen-x1\n")
    assert weak.exit_code != 0 and "user name" in weak.output
    changed = runner.invoke(cli, ["users", "passwd", "lan.nguyen", "-c", str(cfg)],
                            input="another-passphrase\n")
    assert changed.exit_code == 0, changed.output
    listed = runner.invoke(cli, ["users", "list", "-c", str(cfg)])
    assert "lan.nguyen\tofficer" in listed.output
    records = Records.open(site.cfg.storage.records_path)
    try:
        users = Users(records.db)
        user = users.get("lan.nguyen")
        assert user is not None and user.role.value == "officer"
        stored = records.db.execute(
            "SELECT password_hash FROM console_users WHERE name='lan.nguyen'").fetchone()[0]
        assert stored.startswith("$argon2id$") and "a-long-passphrase" not in stored
        ok = users.authenticate("lan.nguyen", "another-passphrase", utcnow(), max_failures=5,
                                lockout=timedelta(minutes=1))
        assert ok.user is not None and ok.user.session_epoch == 1
        assert users.get("minh") is None
        assert [r.subject for r in audit.records(records.db) if r.action == "user.add"] == [
            "user:lan.nguyen"]
    finally:
        records.close()


def test_console_command_is_registered() -> None:
    result = CliRunner().invoke(cli, ["console", "--help"])
    assert result.exit_code == 0 and "without the daemon" in result.output
