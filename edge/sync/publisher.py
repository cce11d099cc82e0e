"""Drains the SQLite outbox to the broker: in seq order, QoS 1, sent only after PUBACK.

Runs in its own thread with its own connection to ``records.db``. Rows are handed to paho in
seq order, at most ``window`` unacknowledged at a time (paho itself keeps ``max_inflight`` on
the wire and retransmits with DUP after a reconnect). ``on_publish`` only appends the (mid, ok)
pair to a deque — paho calls it with its message lock held, so it must not take ours — and this
thread turns PUBACKs into ``sent_at`` in batched transactions. A PUBACK with a failure reason
(e.g. 0x87 not authorized, 0x97 quota exceeded) leaves the row unsent and it is retried after a
delay. After a restart every unsent row is sent again, so the centre may see a message twice:
that is why each carries an idempotency key (at-least-once + de-duplication = exactly-once
effect, MQTT 5 §4.3.2).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.domain.model import utcnow
from edge.store import outbox
from edge.store.outbox import OutboxItem
from edge.store.records import Records
from edge.sync.link import MqttLink
from edge.sync.signing import sign_bytes

log = logging.getLogger(__name__)


def envelope(site: str, item: OutboxItem) -> dict[str, Any]:
    """The signed part of an up message (docs/protocols.md, "Up: outbox messages")."""
    return {"type": item.kind, "site": site, "seq": item.seq,
            "idempotency_key": item.idempotency_key, "created_at": item.created_at,
            "body": item.payload}


class OutboxPublisher:
    """One thread that keeps the outbox empty whenever the link is up."""

    def __init__(self, records_path: Path, link: MqttLink, *, site: str, key: Ed25519PrivateKey,
                 kid: str, window: int = 1000, batch: int = 500, poll_s: float = 0.25,
                 retry_delay_s: float = 5.0) -> None:
        self.records_path = records_path
        self.link = link
        self.site = site
        self.key = key
        self.kid = kid
        self.window = window
        self.batch = batch
        self.poll_s = poll_s
        self.retry_delay_s = retry_delay_s
        self._acks: collections.deque[tuple[int, bool, str]] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0
        self.acked = 0
        self.failed = 0
        self.depth = 0
        link.add_publish_listener(self._on_publish)
        link.add_state_listener(lambda up: self._wake.set())

    def start(self) -> None:
        """Start draining in the background."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current step; unacked rows stay in the outbox for next time."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def notify(self) -> None:
        """Something was enqueued: look now instead of at the next poll (thread-safe)."""
        self._wake.set()

    def _on_publish(self, mid: int, ok: bool, reason: str) -> None:
        self._acks.append((mid, ok, reason))
        self._wake.set()

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        """Keep draining; an unexpected error (a locked or full disk...) restarts the loop.

        Restarting from the first unsent row may publish some rows twice; the idempotency key
        makes that harmless, whereas a dead publisher would silently stop all reporting.
        """
        while not self._stop.is_set():
            try:
                records = Records.open(self.records_path)
            except Exception:
                log.exception("outbox publisher cannot open %s; retrying", self.records_path)
                self._stop.wait(self.retry_delay_s)
                continue
            try:
                self._loop(records)
            except Exception:
                log.exception("outbox publisher failed; rows stay queued, restarting in %.0f s",
                              self.retry_delay_s)
                self._stop.wait(self.retry_delay_s)
            finally:
                records.close()

    def _loop(self, records: Records) -> None:
        db = records.db
        inflight: dict[int, int] = {}          # mid -> seq
        unacked: set[int] = set()              # seqs handed to paho, PUBACK not yet seen
        retry: list[tuple[float, int]] = []    # (not before, seq) after a failed PUBACK
        cursor = 0
        last_depth_check = 0.0
        while not self._stop.is_set():
            self._settle(db, inflight, unacked, retry)
            now = time.monotonic()
            if now - last_depth_check > 1.0:
                self.depth = outbox.depth(db)
                last_depth_check = now
            if not self.link.connected.is_set():
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            room = self.window - len(unacked)
            due = [seq for t, seq in retry if t <= now]
            if due and room > 0:
                retry[:] = [(t, s) for t, s in retry if s not in due]
                items = [i for i in (_one(db, s) for s in due[:room]) if i is not None]
                self._publish(items, inflight, unacked)
                continue
            if room <= 0:
                self._wake.wait(0.05)
                self._wake.clear()
                continue
            items = outbox.pending(db, limit=min(room, self.batch), after_seq=cursor)
            if not items:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            outbox.note_attempt(db, items[0].seq, items[-1].seq)
            cursor = self._publish(items, inflight, unacked) or cursor
        self._settle(db, inflight, unacked, retry)

    def _publish(self, items: list[OutboxItem], inflight: dict[int, int], unacked: set[int]) -> int:
        last = 0
        for item in items:
            payload = sign_bytes(envelope(self.site, item), self.key, self.kid)
            info = self.link.publish(item.topic, payload, qos=1)
            inflight[info.mid] = item.seq
            unacked.add(item.seq)
            self.published += 1
            last = item.seq
        return last

    def _settle(self, db: Any, inflight: dict[int, int], unacked: set[int],
                retry: list[tuple[float, int]]) -> None:
        """Turn collected PUBACKs into ``sent_at`` (one transaction for all of them)."""
        done: list[int] = []
        while self._acks:
            mid, ok, reason = self._acks.popleft()
            seq = inflight.pop(mid, None)
            if seq is None:
                continue
            unacked.discard(seq)
            if ok:
                done.append(seq)
            else:
                self.failed += 1
                log.error("broker refused outbox row %d: %s; retrying in %.0f s", seq, reason,
                          self.retry_delay_s)
                retry.append((time.monotonic() + self.retry_delay_s, seq))
        if done:
            outbox.mark_sent(db, done, _now())
            self.acked += len(done)


def _one(db: Any, seq: int) -> OutboxItem | None:
    items = outbox.pending(db, limit=1, after_seq=seq - 1)
    return items[0] if items and items[0].seq == seq else None


def _now() -> datetime:
    return utcnow()
