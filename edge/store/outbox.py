"""The outbox: everything that must reach the centre is written here first.

A passage, alarm or ack is enqueued in the same SQLite transaction as the state it reports,
so a crash can never leave a passage recorded but unreported (or the reverse). The sync
component publishes rows in ``seq`` order with QoS 1 and marks a row sent only after PUBACK;
rows survive restarts and broker outages. ``seq`` is gap-free per site because it is the
table's rowid and rows are never deleted before the centre has acknowledged them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from edge.store.db import iso


@dataclass(frozen=True)
class OutboxItem:
    """One message waiting for (or past) delivery."""

    seq: int
    topic: str
    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    created_at: str
    sent_at: str | None
    attempts: int


def create_table(db: sqlite_utils.Database) -> None:
    """Schema, used by the records migrations."""
    db.executescript("""
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            topic TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            idempotency_key TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            sent_at TEXT,
            attempts INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX idx_outbox_unsent ON outbox(seq) WHERE sent_at IS NULL;
    """)


def enqueue(db: sqlite_utils.Database, *, topic: str, kind: str, payload: dict[str, Any],
            idempotency_key: str, at: datetime) -> int:
    """Queue one message inside the caller's transaction; returns its ``seq``.

    Enqueuing the same idempotency key twice returns the first row's seq instead of a
    duplicate, so a retried operation cannot report the same thing twice.
    """
    if not db.conn.in_transaction:
        raise RuntimeError("outbox.enqueue must run inside the transaction of the state it reports")
    row = db.execute("SELECT seq FROM outbox WHERE idempotency_key = ?", [idempotency_key]).fetchone()
    if row:
        return int(row[0])
    cur = db.execute(
        "INSERT INTO outbox (topic, kind, payload, idempotency_key, created_at) VALUES (?,?,?,?,?)",
        [topic, kind, json.dumps(payload, ensure_ascii=False, sort_keys=True), idempotency_key,
         iso(at)],
    )
    return int(cur.lastrowid or 0)


def _item(row: tuple[Any, ...]) -> OutboxItem:
    return OutboxItem(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], row[7])


def pending(db: sqlite_utils.Database, limit: int = 500, after_seq: int = 0) -> list[OutboxItem]:
    """Unsent rows in seq order."""
    rows = db.execute(
        "SELECT seq, topic, kind, payload, idempotency_key, created_at, sent_at, attempts "
        "FROM outbox WHERE sent_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
        [after_seq, limit],
    ).fetchall()
    return [_item(r) for r in rows]


def mark_sent(db: sqlite_utils.Database, seqs: list[int], at: datetime) -> None:
    """Mark rows delivered (after PUBACK)."""
    with db.atomic():
        db.conn.executemany("UPDATE outbox SET sent_at = ? WHERE seq = ? AND sent_at IS NULL",
                            [(iso(at), s) for s in seqs])


def depth(db: sqlite_utils.Database) -> int:
    """How many rows still wait for delivery (a health figure and a metric)."""
    return int(db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])


def note_attempt(db: sqlite_utils.Database, first_seq: int, last_seq: int) -> None:
    """Count one more delivery attempt for the unsent rows in [first_seq, last_seq].

    A row whose attempts keep rising while the link is up is one the broker keeps refusing
    (an ACL or quota problem), which the health page can point at.
    """
    with db.atomic():
        db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE seq BETWEEN ? AND ? "
                   "AND sent_at IS NULL", [first_seq, last_seq])
