"""The process writing records.db killed with SIGKILL mid-transaction, again and again.

A power cut or an OOM kill can land anywhere in a save: before BEGIN, between the passage row
and its outbox row, inside COMMIT. SQLite's WAL with ``synchronous=FULL`` must make each save
all-or-nothing: after every kill the file passes ``integrity_check``, every passage the writer
reported as committed is there with its audit row and its outbox message, the outbox ``seq`` has
no gap, the audit chain verifies, and the next writer simply continues.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.store import audit
from edge.store.records import Records

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]

WRITER = """
import sys, time
from edge.domain.model import Decision, Outcome, Passage, PassageReads, PlateRead
from edge.store.records import Records
from edge.sync.topics import Topics

path, start, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
records = Records.open(path)
topic = Topics("HUUNGHI").passages


def passage(i):
    reads = PassageReads(lane="in-1", tractor=(PlateRead(lane="in-1", text=f"51C{i:05d}",
                                                         confidence=0.93),))
    return Passage(lane="in-1", reads=reads, decision=Decision(outcome=Outcome.OPEN))


if mode == "stream":         # one save after another; the id is printed once committed
    i = start
    while True:
        p = passage(i)
        records.save_passage(p, publish_topic=topic)
        print(p.id, flush=True)
        i += 1
else:                        # fifty saves in one open transaction, then wait to be killed
    with records.db.atomic():
        for i in range(start, start + 50):
            records.save_passage(passage(i), publish_topic=topic)
        print("in-transaction", flush=True)
        time.sleep(60)
"""


def _writer(path: Path, start: int, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(start), mode],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _collect(proc: subprocess.Popen[str], into: list[str]) -> None:
    for line in proc.stdout or ():
        into.append(line.strip())


def _check(path: Path, committed: list[str]) -> int:
    """Everything the writers reported is there, whole; returns the number of passages."""
    records = Records.open(path)
    try:
        db = records.db
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = {row[0] for row in db.execute("SELECT id FROM passages")}
        assert set(committed) <= ids, f"lost after a kill: {sorted(set(committed) - ids)[:5]}"
        seqs = [row[0] for row in db.execute("SELECT seq FROM outbox ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1)), "outbox seq has a gap"
        outboxed = {row[0] for row in db.execute(
            "SELECT json_extract(payload, '$.passage_id') FROM outbox "
            "WHERE kind = 'passage'")}
        assert outboxed == ids, "a passage without its outbox message, or the reverse"
        audited = {row[0].removeprefix("passage:") for row in db.execute("SELECT subject FROM audit")}
        assert ids <= audited, "a passage without its audit row"
        chain = audit.verify(db)
        assert chain.ok, chain.problem
        return len(ids)
    finally:
        records.close()


def test_writer_killed_at_random_points_loses_and_tears_nothing(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    rng = random.Random(7)
    committed: list[str] = []
    start = before = 0
    for _round in range(12):
        proc = _writer(path, start, "stream")
        lines: list[str] = []
        reader = threading.Thread(target=_collect, args=(proc, lines), daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while not lines and time.monotonic() < deadline:   # the writer is up and writing
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        reader.join(5)
        committed.extend(lines)
        count = _check(path, committed)
        # each save is whole or absent: at most one more than printed (killed after COMMIT,
        # before its print)
        assert count - before in (len(lines), len(lines) + 1)
        before = count
        start += 10_000
    assert len(committed) > 12      # the writers did write between the kills


def test_writer_killed_inside_an_open_transaction_leaves_none_of_it(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    proc = _writer(path, 0, "stream")
    first = proc.stdout.readline().strip() if proc.stdout else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    before = _check(path, [first])
    proc = _writer(path, 10_000, "transaction")
    assert proc.stdout is not None and proc.stdout.readline().strip() == "in-transaction"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert _check(path, [first]) == before    # the 50 uncommitted saves are gone, all of them
    proc = _writer(path, 20_000, "stream")    # and the next writer continues the same file
    assert proc.stdout is not None
    again = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert _check(path, [first, again]) >= before + 1
