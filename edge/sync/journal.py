"""Alarms, acks and command nonces: written to ``records.db`` with their audit row, atomically.

Everything the sync component reports to the centre goes through the outbox (STYLE.md §6), in
the same transaction as the audit row that records it, so the evidence and the report can never
disagree after a crash. Command nonces need no table of their own: an accepted command leaves
an audit row with subject ``command:<nonce>``, which is indexed, so "seen before?" is one probe
and survives restarts exactly as long as the audit log does (i.e. for ever).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ulid import ULID

from edge.domain.model import utcnow
from edge.store import audit, outbox
from edge.store.db import iso
from edge.store.records import Records
from edge.sync.topics import Topics

log = logging.getLogger(__name__)

ACTOR = "gate-edge/sync"


class SyncJournal:
    """The sync component's writer into ``records.db`` (its own connection, any one thread)."""

    def __init__(self, records: Records, topics: Topics, *, alarm_interval_s: float = 60.0) -> None:
        self.records = records
        self.db = records.db
        self.topics = topics
        self.alarm_interval_s = alarm_interval_s
        self._last_alarm: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def alarm(self, code: str, message: str, *, severity: str = "warning",
              detail: Mapping[str, Any] | None = None, at: datetime | None = None) -> bool:
        """Audit and queue an alarm; at most one per ``code`` per interval goes up.

        Returns True if an alarm was queued (False: suppressed by the rate limit, counted and
        reported with the next one of that code).
        """
        now_mono = time.monotonic()
        with self._lock:
            last = self._last_alarm.get(code)
            if last is not None and now_mono - last < self.alarm_interval_s:
                self._suppressed[code] = self._suppressed.get(code, 0) + 1
                return False
            self._last_alarm[code] = now_mono
            suppressed = self._suppressed.pop(code, 0)
        at = at or utcnow()
        body = {"alarm": code, "severity": severity, "message": message, "at": iso(at),
                "detail": dict(detail or {}), "suppressed_since_last": suppressed}
        with self.db.atomic():
            audit.append(self.db, at=at, actor=ACTOR, action="alarm.raised", subject=f"alarm:{code}",
                         reason_code=code, detail={"message": message, **dict(detail or {})})
            outbox.enqueue(self.db, topic=self.topics.alarms, kind="alarm", payload=body,
                           idempotency_key=f"alarm:{code}:{ULID()}", at=at)
        return True

    def ack_batch(self, stream: str, seq: int, version: int | None, result: Mapping[str, Any],
                  at: datetime | None = None) -> None:
        """Queue the acknowledgement of an applied batch (idempotent per stream and seq)."""
        at = at or utcnow()
        body = {"ack": stream, "seq": seq, "version": version, "status": "applied",
                "at": iso(at), "result": dict(result)}
        with self.db.atomic():
            outbox.enqueue(self.db, topic=self.topics.acks, kind="ack", payload=body,
                           idempotency_key=f"ack:{stream}:{seq}", at=at)

    def command_seen(self, nonce: str) -> bool:
        """True if a command with this nonce was already accepted or rejected."""
        row = self.db.execute("SELECT 1 FROM audit WHERE subject = ? LIMIT 1",
                              [f"command:{nonce}"]).fetchone()
        return row is not None

    def record_command(self, nonce: str, lane: str, command: Mapping[str, Any], *, accepted: bool,
                       reason: str | None = None, message: str = "",
                       at: datetime | None = None) -> None:
        """Audit a command and queue its ack, in one transaction (the nonce is now used)."""
        at = at or utcnow()
        status = "accepted" if accepted else "rejected"
        detail = {"lane": lane, "command": command.get("command"), "mode": command.get("mode"),
                  "passage_id": command.get("passage_id"), "kid": command.get("kid"),
                  "message": message}
        body = {"ack": "command", "nonce": nonce, "lane": lane, "status": status,
                "reason": reason, "message": message, "at": iso(at)}
        with self.db.atomic():
            audit.append(self.db, at=at, actor=ACTOR, action=f"command.{status}",
                         subject=f"command:{nonce}", reason_code=reason, detail=detail)
            outbox.enqueue(self.db, topic=self.topics.acks, kind="ack", payload=body,
                           idempotency_key=f"ack:command:{nonce}", at=at)
