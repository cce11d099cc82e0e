"""The hash-chained audit log: every decision and officer action, tamper-evident.

Each row stores the SHA-256 of the previous row's hash followed by its own canonical JSON
(RFC 8785), so changing, deleting or reordering any row breaks every hash after it. Post-
clearance audit verifies the chain with ``gate-edge audit verify``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785
import sqlite_utils

from edge.store.db import iso

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditRecord:
    """One audit row as stored."""

    id: int
    at: str
    actor: str
    action: str
    subject: str
    reason_code: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainCheck:
    """Result of verifying the chain."""

    ok: bool
    rows: int
    first_bad_id: int | None = None
    problem: str = ""


def row_hash(prev_hash: str, at: str, actor: str, action: str, subject: str,
             reason_code: str | None, detail: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the canonical JSON of this row's content."""
    body = rfc8785.dumps({"at": at, "actor": actor, "action": action, "subject": subject,
                          "reason_code": reason_code, "detail": detail})
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + body).hexdigest()


def create_table(db: sqlite_utils.Database) -> None:
    """Schema, used by the records migrations."""
    db.executescript("""
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT NOT NULL,
            reason_code TEXT,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE
        );
        CREATE INDEX idx_audit_subject ON audit(subject);
        CREATE INDEX idx_audit_at ON audit(at);
    """)


def append(db: sqlite_utils.Database, *, at: datetime, actor: str, action: str, subject: str,
           reason_code: str | None = None, detail: dict[str, Any] | None = None) -> AuditRecord:
    """Append one row. Call inside the transaction that makes the change it records."""
    if not db.conn.in_transaction:
        raise RuntimeError("audit.append must run inside the transaction it records")
    detail = detail or {}
    last = db.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    prev = last[0] if last else GENESIS
    at_text = iso(at)
    digest = row_hash(prev, at_text, actor, action, subject, reason_code, detail)
    cur = db.execute(
        "INSERT INTO audit (at, actor, action, subject, reason_code, detail, prev_hash, hash) "
        "VALUES (?,?,?,?,?,?,?,?)",
        [at_text, actor, action, subject, reason_code,
         json.dumps(detail, ensure_ascii=False, sort_keys=True), prev, digest],
    )
    return AuditRecord(int(cur.lastrowid or 0), at_text, actor, action, subject, reason_code,
                       detail, prev, digest)


def _from_row(row: tuple[Any, ...]) -> AuditRecord:
    return AuditRecord(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]),
                       row[7], row[8])


def records(db: sqlite_utils.Database, *, after_id: int = 0, limit: int = 1000,
            subject: str | None = None) -> list[AuditRecord]:
    """Rows in chain order, paged by id."""
    sql = "SELECT * FROM audit WHERE id > ?"
    args: list[Any] = [after_id]
    if subject:
        sql += " AND subject = ?"
        args.append(subject)
    sql += " ORDER BY id LIMIT ?"
    args.append(limit)
    return [_from_row(r) for r in db.execute(sql, args).fetchall()]


def verify(db: sqlite_utils.Database) -> ChainCheck:
    """Walk the whole chain; report the first row whose hash does not follow."""
    prev = GENESIS
    count = 0
    for row in db.execute("SELECT * FROM audit ORDER BY id"):
        rec = _from_row(row)
        count += 1
        if rec.prev_hash != prev:
            return ChainCheck(False, count, rec.id,
                              f"row {rec.id}: prev_hash does not match row before it "
                              "(a row was deleted or reordered)")
        expected = row_hash(prev, rec.at, rec.actor, rec.action, rec.subject, rec.reason_code,
                            rec.detail)
        if expected != rec.hash:
            return ChainCheck(False, count, rec.id,
                              f"row {rec.id}: content does not match its hash (row was altered)")
        prev = rec.hash
    return ChainCheck(True, count)
