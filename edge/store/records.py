"""Evidence records: passages, decisions, the outbox and the audit chain in ``records.db``.

Writes that belong together (a decision, its audit row, its outbox message) happen in one
transaction here, so the evidence is complete or absent, never half-written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from edge.domain.model import Decision, Passage, PassageReads, utcnow
from edge.store import audit, outbox
from edge.store.db import Migration, connect, from_iso, iso, migrate


def _m001_passages(db: sqlite_utils.Database) -> None:
    db.executescript("""
        CREATE TABLE passages (
            id TEXT PRIMARY KEY,
            lane TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            tractor_plate TEXT,
            trailer_plate TEXT,
            declaration_no TEXT,
            outcome TEXT,
            reasons TEXT NOT NULL DEFAULT '[]',
            reads TEXT NOT NULL,
            decision TEXT,
            barrier_events TEXT NOT NULL DEFAULT '[]',
            evidence TEXT NOT NULL DEFAULT '[]',
            updated_at TEXT NOT NULL
        );
        CREATE INDEX idx_passages_lane_started ON passages(lane, started_at);
        CREATE INDEX idx_passages_started ON passages(started_at);
        CREATE INDEX idx_passages_plate ON passages(tractor_plate);
        CREATE INDEX idx_passages_outcome ON passages(outcome, started_at);
        CREATE TABLE decisions (
            id INTEGER PRIMARY KEY,
            passage_id TEXT NOT NULL REFERENCES passages(id),
            decided_at TEXT NOT NULL,
            outcome TEXT NOT NULL,
            reasons TEXT NOT NULL,
            decided_by TEXT NOT NULL,
            doc TEXT NOT NULL
        );
        CREATE INDEX idx_decisions_passage ON decisions(passage_id);
    """)


def _m002_outbox(db: sqlite_utils.Database) -> None:
    outbox.create_table(db)


def _m003_audit(db: sqlite_utils.Database) -> None:
    audit.create_table(db)


def _m004_console_users(db: sqlite_utils.Database) -> None:
    # Officer console accounts (edge/console/users.py). Here, not in the console package, so
    # every opener of records.db knows every migration the file may carry.
    db.executescript("""
        CREATE TABLE console_users (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('officer', 'supervisor', 'admin')),
            password_hash TEXT NOT NULL,
            failed_logins INTEGER NOT NULL DEFAULT 0,
            locked_until TEXT,
            session_epoch INTEGER NOT NULL DEFAULT 0,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
    """)


RECORDS_MIGRATIONS = (
    Migration("0001_passages_and_decisions", _m001_passages),
    Migration("0002_outbox", _m002_outbox),
    Migration("0003_audit_chain", _m003_audit),
    Migration("0004_console_users", _m004_console_users),
)


@dataclass(frozen=True)
class PassageRow:
    """A passage as listed by the console and the API."""

    id: str
    lane: str
    started_at: str
    ended_at: str | None
    tractor_plate: str | None
    trailer_plate: str | None
    declaration_no: str | None
    outcome: str | None
    reasons: list[str]
    reads: dict[str, Any]
    decision: dict[str, Any] | None
    barrier_events: list[dict[str, Any]]
    evidence: list[dict[str, Any]]


class Records:
    """Access to ``records.db``. One writer per process; readers may open their own."""

    def __init__(self, db: sqlite_utils.Database, path: Path | None = None) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path | str, *, readonly: bool = False,
             check_same_thread: bool = True) -> Records:
        """Open (creating and migrating if needed) the records file."""
        path = Path(path)
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        db = connect(path, "FULL", readonly=readonly, check_same_thread=check_same_thread)
        if not readonly:
            migrate(db, path, RECORDS_MIGRATIONS)
        return cls(db, path)

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def save_passage(self, passage: Passage, *, actor: str = "gate-edge",
                     publish_topic: str | None = None) -> None:
        """Insert or update a passage; a new decision adds a decision row, audit and outbox.

        All in one transaction: if the process dies here, either everything about this
        decision is on disk or nothing is.
        """
        now = utcnow()
        reads = passage.reads
        decision = passage.decision
        tractor = reads.tractor[0].text if reads.tractor else None
        trailer = reads.trailer[0].text if reads.trailer else None
        with self.db.atomic():
            self.db.execute(
                """INSERT INTO passages (id, lane, started_at, ended_at, tractor_plate,
                       trailer_plate, declaration_no, outcome, reasons, reads, decision,
                       barrier_events, evidence, updated_at)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(id) DO UPDATE SET ended_at=excluded.ended_at,
                       tractor_plate=excluded.tractor_plate, trailer_plate=excluded.trailer_plate,
                       declaration_no=excluded.declaration_no, outcome=excluded.outcome,
                       reasons=excluded.reasons, reads=excluded.reads, decision=excluded.decision,
                       barrier_events=excluded.barrier_events, evidence=excluded.evidence,
                       updated_at=excluded.updated_at""",
                [passage.id, passage.lane, iso(passage.started_at),
                 iso(passage.ended_at) if passage.ended_at else None, tractor, trailer,
                 decision.declaration_no if decision else None,
                 decision.outcome.value if decision else None,
                 json.dumps([r.value for r in decision.reasons] if decision else []),
                 reads.model_dump_json(), decision.model_dump_json() if decision else None,
                 json.dumps(list(passage.barrier_events), default=str),
                 json.dumps(list(passage.evidence)), iso(now)],
            )
            if decision is not None and not self._has_decision(passage.id, decision):
                self._add_decision(passage, decision, actor, publish_topic, now)

    def close_passage(self, passage_id: str, *, ended_at: datetime,
                      barrier_events: Sequence[Mapping[str, Any]],
                      evidence: Sequence[Mapping[str, str]] | None = None,
                      reads: PassageReads | None = None) -> None:
        """The truck left: record when, what the barrier did and what was read meanwhile.

        Only these columns change: an officer's decision taken in the console while the truck
        waited (its own decision row and outcome) is never overwritten by the lane.
        """
        sets = ["ended_at = ?", "barrier_events = ?", "updated_at = ?"]
        args: list[Any] = [iso(ended_at), json.dumps(list(barrier_events), default=str),
                           iso(utcnow())]
        if evidence is not None:
            sets.append("evidence = ?")
            args.append(json.dumps(list(evidence)))
        if reads is not None:
            sets.append("reads = ?")
            args.append(reads.model_dump_json())
        with self.db.atomic():
            self.db.execute(f"UPDATE passages SET {', '.join(sets)} WHERE id = ?",
                            [*args, passage_id])

    def revise_decision(self, passage_id: str, decision: Decision, *, replaces: Decision,
                        action: str, detail: Mapping[str, Any], actor: str = "gate-edge",
                        publish_topic: str | None = None) -> Passage | None:
        """A later decision for a decided passage, recorded as an officer's decision is.

        The passage's outcome becomes ``decision``, which gets its own decision row, audit row
        and outbox message (``save_passage``); the earlier decision stays in ``decisions``, the
        audit chain and the centre's history. ``action`` (what made the change, with
        ``detail`` and the previous outcome) is audited beside it, all in one transaction.
        Returns the passage as now stored, or None (nothing written) if its decision is no
        longer ``replaces``: an officer decided meanwhile, and that is never overwritten.
        """
        with self.db.atomic():
            row = self.passage(passage_id)
            current = Decision.model_validate(row.decision) if row and row.decision else None
            if row is None or current is None or (current.decided_at, current.decided_by) != (
                    replaces.decided_at, replaces.decided_by):
                return None
            passage = stored_passage(row, decision=decision)
            self.save_passage(passage, actor=actor, publish_topic=publish_topic)
            audit.append(self.db, at=decision.decided_at, actor=actor, action=action,
                         subject=f"passage:{passage_id}",
                         reason_code=decision.reasons[0].value if decision.reasons else None,
                         detail={"lane": row.lane, **detail,
                                 "previous": {"outcome": row.outcome, "reasons": row.reasons}})
        return passage

    def _has_decision(self, passage_id: str, decision: Decision) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM decisions WHERE passage_id = ? AND decided_at = ? AND decided_by = ?",
            [passage_id, iso(decision.decided_at), decision.decided_by],
        ).fetchone()
        return row is not None

    def _add_decision(self, passage: Passage, decision: Decision, actor: str,
                      publish_topic: str | None, now: datetime) -> None:
        doc = json.loads(decision.model_dump_json())
        self.db.execute(
            "INSERT INTO decisions (passage_id, decided_at, outcome, reasons, decided_by, doc) "
            "VALUES (?,?,?,?,?,?)",
            [passage.id, iso(decision.decided_at), decision.outcome.value,
             json.dumps([r.value for r in decision.reasons]), decision.decided_by,
             json.dumps(doc, sort_keys=True)],
        )
        audit.append(self.db, at=decision.decided_at, actor=decision.decided_by
                     if decision.decided_by != "auto" else actor,
                     action=f"decision.{decision.outcome.value}", subject=f"passage:{passage.id}",
                     reason_code=decision.reasons[0].value if decision.reasons else None,
                     detail={"lane": passage.lane, "declaration_no": decision.declaration_no,
                             "reasons": [r.value for r in decision.reasons]})
        if publish_topic:
            key = f"passage:{passage.id}:decision:{iso(decision.decided_at)}"
            outbox.enqueue(self.db, topic=publish_topic, kind="passage", at=now,
                           idempotency_key=key,
                           payload={"passage_id": passage.id, "lane": passage.lane,
                                    "started_at": iso(passage.started_at),
                                    "reads": json.loads(passage.reads.model_dump_json()),
                                    "decision": doc})

    def audit_event(self, *, actor: str, action: str, subject: str,
                    reason_code: str | None = None, detail: dict[str, Any] | None = None,
                    at: datetime | None = None) -> audit.AuditRecord:
        """Record an action that changes no other table (a login, a failed login, an export)."""
        with self.db.atomic():
            return audit.append(self.db, at=at or utcnow(), actor=actor, action=action,
                                subject=subject, reason_code=reason_code, detail=detail)

    def passage(self, passage_id: str) -> PassageRow | None:
        """One passage by id, or None."""
        row = self.db.execute("SELECT * FROM passages WHERE id = ?", [passage_id]).fetchone()
        return _row(row) if row else None

    def passages(self, *, lane: str | None = None, outcome: str | None = None,
                 since: datetime | None = None, limit: int = 100) -> list[PassageRow]:
        """Newest first, filtered."""
        sql, args = "SELECT * FROM passages WHERE 1=1", []
        if lane:
            sql += " AND lane = ?"
            args.append(lane)
        if outcome:
            sql += " AND outcome = ?"
            args.append(outcome)
        if since:
            sql += " AND started_at >= ?"
            args.append(iso(since))
        sql += " ORDER BY started_at DESC, id DESC LIMIT ?"
        args.append(str(limit))
        return [_row(r) for r in self.db.execute(sql, args).fetchall()]

    def decisions(self, passage_id: str) -> list[dict[str, Any]]:
        """Every decision of a passage, automatic and by officers, in order."""
        rows = self.db.execute(
            "SELECT doc FROM decisions WHERE passage_id = ? ORDER BY id", [passage_id]
        ).fetchall()
        return [json.loads(r[0]) for r in rows]


def _row(row: tuple[Any, ...]) -> PassageRow:
    return PassageRow(
        id=row[0], lane=row[1], started_at=row[2], ended_at=row[3], tractor_plate=row[4],
        trailer_plate=row[5], declaration_no=row[6], outcome=row[7], reasons=json.loads(row[8]),
        reads=json.loads(row[9]), decision=json.loads(row[10]) if row[10] else None,
        barrier_events=json.loads(row[11]), evidence=json.loads(row[12]),
    )


def reads_of(row: PassageRow) -> PassageReads:
    """The typed reads of a stored passage."""
    return PassageReads.model_validate(row.reads)


def stored_passage(row: PassageRow, *, decision: Decision | None,
                   reads: PassageReads | None = None) -> Passage:
    """A stored passage as a ``Passage`` with a new decision (and reads), ready to save again.

    Times, barrier events and evidence are kept as stored: a revised decision changes the
    decision, never what the barrier did or which images prove it.
    """
    return Passage(id=row.id, lane=row.lane, started_at=from_iso(row.started_at),
                   ended_at=from_iso(row.ended_at) if row.ended_at else None,
                   reads=reads if reads is not None else reads_of(row), decision=decision,
                   barrier_events=tuple(row.barrier_events), evidence=tuple(row.evidence))
