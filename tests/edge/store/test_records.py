from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from edge.domain.model import Decision, Outcome, Passage, ReasonCode, utcnow
from edge.store import audit, outbox
from edge.store.db import applied_migrations
from edge.store.records import RECORDS_MIGRATIONS, Records
from tests.factories import NOW, reads


def _passage(outcome: Outcome = Outcome.OPEN) -> Passage:
    decision = Decision(outcome=outcome, reasons=() if outcome is Outcome.OPEN
                        else (ReasonCode.SEAL_MISSING,), declaration_no="105123456780",
                        decided_at=NOW)
    return Passage(lane="in-1", reads=reads(), decision=decision, started_at=NOW)


def test_records_uses_full_sync_and_all_migrations(records: Records) -> None:
    assert records.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert applied_migrations(records.db) == [m.name for m in RECORDS_MIGRATIONS]


def test_decision_writes_passage_audit_and_outbox_together(records: Records) -> None:
    passage = _passage(Outcome.REFER)
    records.save_passage(passage, publish_topic="edge/v1/HUUNGHI/passages")
    row = records.passage(passage.id)
    assert row is not None and row.outcome == "refer" and row.reasons == ["SEAL_MISSING"]
    assert row.tractor_plate == "51C12345"
    assert [d["outcome"] for d in records.decisions(passage.id)] == ["refer"]
    [entry] = audit.records(records.db)
    assert entry.action == "decision.refer" and entry.subject == f"passage:{passage.id}"
    [item] = outbox.pending(records.db)
    assert item.payload["passage_id"] == passage.id and item.kind == "passage"
    # Saving the same passage again (e.g. barrier events added) adds no second decision.
    records.save_passage(passage.model_copy(update={"ended_at": NOW}),
                         publish_topic="edge/v1/HUUNGHI/passages")
    assert len(records.decisions(passage.id)) == 1
    assert outbox.depth(records.db) == 1
    assert records.passage(passage.id).ended_at is not None  # type: ignore[union-attr]


def test_officer_decision_is_a_second_decision(records: Records) -> None:
    passage = _passage(Outcome.REFER)
    records.save_passage(passage)
    officer = Decision(outcome=Outcome.OPEN, decided_by="officer.nguyen", decided_at=NOW.replace(minute=5))
    records.save_passage(passage.model_copy(update={"decision": officer}))
    assert [d["decided_by"] for d in records.decisions(passage.id)] == ["auto", "officer.nguyen"]
    assert [r.actor for r in audit.records(records.db)] == ["gate-edge", "officer.nguyen"]


def test_revised_decision_replaces_the_outcome_and_keeps_the_first(records: Records) -> None:
    """A refused open token turned into a referral: recorded like an officer's decision."""
    passage = _passage(Outcome.OPEN)
    topic = "edge/v1/HUUNGHI/passages"
    records.save_passage(passage, publish_topic=topic)
    assert passage.decision is not None
    refer = passage.decision.model_copy(update={
        "outcome": Outcome.REFER, "reasons": (ReasonCode.CLOCK_SKEW,),
        "decided_at": NOW.replace(second=30)})
    revised = records.revise_decision(passage.id, refer, replaces=passage.decision,
                                      action="barrier.open_refused",
                                      detail={"error": "token_from_future"},
                                      publish_topic=topic)
    assert revised is not None and revised.decision == refer
    row = records.passage(passage.id)
    assert row is not None and row.outcome == "refer" and row.reasons == ["CLOCK_SKEW"]
    assert revised.started_at == passage.started_at and row.reads == json.loads(
        passage.reads.model_dump_json())
    assert [d["outcome"] for d in records.decisions(passage.id)] == ["open", "refer"]
    assert [(r.action, r.reason_code) for r in audit.records(records.db)] == [
        ("decision.open", None), ("decision.refer", "CLOCK_SKEW"),
        ("barrier.open_refused", "CLOCK_SKEW")]
    assert audit.records(records.db)[-1].detail["previous"] == {"outcome": "open", "reasons": []}
    assert [m.payload["decision"]["outcome"] for m in outbox.pending(records.db)] == [
        "open", "refer"]
    assert audit.verify(records.db).ok
    # an officer decided meanwhile: nothing written, their decision stands
    officer = refer.model_copy(update={"outcome": Outcome.HOLD, "decided_by": "officer.tran",
                                       "decided_at": NOW.replace(minute=5)})
    records.save_passage(passage.model_copy(update={"decision": officer}))
    assert records.revise_decision(passage.id, refer, replaces=passage.decision,
                                   action="barrier.open_refused", detail={}) is None
    assert records.passage(passage.id).outcome == "hold"  # type: ignore[union-attr]
    assert len(records.decisions(passage.id)) == 3 and outbox.depth(records.db) == 2


def test_failed_transaction_leaves_nothing_half_written(records: Records,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(outbox, "enqueue", boom)
    passage = _passage()
    with pytest.raises(sqlite3.OperationalError):
        records.save_passage(passage, publish_topic="t")
    assert records.passage(passage.id) is None
    assert audit.records(records.db) == []


def test_outbox_is_idempotent_and_gap_free(records: Records) -> None:
    with records.db.atomic():
        seqs = [outbox.enqueue(records.db, topic="t", kind="alarm", payload={"n": i},
                               idempotency_key=f"k{i}", at=NOW) for i in range(5)]
        again = outbox.enqueue(records.db, topic="t", kind="alarm", payload={"n": 0},
                               idempotency_key="k0", at=NOW)
    assert seqs == list(range(seqs[0], seqs[0] + 5)) and again == seqs[0]
    outbox.mark_sent(records.db, seqs[:2], NOW)
    assert [i.seq for i in outbox.pending(records.db)] == seqs[2:]
    with pytest.raises(RuntimeError, match="inside the transaction"):
        outbox.enqueue(records.db, topic="t", kind="x", payload={}, idempotency_key="z", at=NOW)


def test_audit_chain_verifies_and_detects_tampering(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    store = Records.open(path)
    for i in range(5):
        store.audit_event(actor="officer.le", action="login", subject=f"user:{i}", at=NOW)
    assert audit.verify(store.db).ok
    store.close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE audit SET detail = ? WHERE id = 3", [json.dumps({"forged": True})])
    store = Records.open(path)
    check = audit.verify(store.db)
    assert not check.ok and check.first_bad_id == 3 and "altered" in check.problem
    store.close()
    with sqlite3.connect(path) as raw:
        raw.execute("DELETE FROM audit WHERE id = 3")
    store = Records.open(path)
    check = audit.verify(store.db)
    assert not check.ok and check.first_bad_id == 4 and "deleted" in check.problem
    store.close()


def test_two_writers_never_fail_on_a_stale_snapshot(tmp_path: Path) -> None:
    """The lane runtime and the sync journal write records.db from two connections at once.

    Both read (outbox seq, audit head) before they write; a deferred transaction would fail
    with "database is locked" the moment the other committed in between. Every write must
    land, and the outbox seq must stay gap-free.
    """
    import threading

    path = tmp_path / "records.db"
    Records.open(path).close()
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        rec = Records.open(path, check_same_thread=False)
        try:
            for i in range(60):
                with rec.db.atomic():
                    rec.db.execute("SELECT count(*) FROM outbox").fetchone()
                    outbox.enqueue(rec.db, topic="t", kind="passage", payload={"i": i},
                                   idempotency_key=f"{name}:{i}", at=utcnow())
        except BaseException as exc:
            errors.append(exc)
        finally:
            rec.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("lane", "sync")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    rec = Records.open(path)
    seqs = [r[0] for r in rec.db.execute("SELECT seq FROM outbox ORDER BY seq").fetchall()]
    rec.close()
    assert seqs == list(range(seqs[0], seqs[0] + 120))
