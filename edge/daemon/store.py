"""The daemon's stores, driven from one thread so the event loop never waits on SQLite.

Matching reads ``cache.db``; saving a decision writes ``records.db`` with ``synchronous=FULL``
(an fsync). Both run on a single worker thread, in the order the lanes ask: one connection
per file, no interleaved transactions, and a decision is on disk (with its audit row and its
outbox message) before gate-controller is asked to move anything.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import shutil
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from edge.config import GateEdgeConfig
from edge.config.lanes import LaneConfig
from edge.domain.model import Decision, Passage, PassageReads, utcnow
from edge.matching.matcher import decide
from edge.store import outbox
from edge.store.cache import ManifestCache
from edge.store.records import Records
from edge.sync.journal import SyncJournal
from edge.sync.topics import Topics

log = logging.getLogger(__name__)
T = TypeVar("T")


class DaemonStore:
    """Cache reader, records writer and alarm journal of the lanes (see module docstring)."""

    def __init__(self, cfg: GateEdgeConfig) -> None:
        self.cfg = cfg
        self.grammars = cfg.grammars()
        self.topics = Topics(cfg.site.code, cfg.mqtt.topic_prefix)
        # Passages go up only when a centre is configured; otherwise they stay local records.
        self.publish_topic = self.topics.passages if cfg.mqtt.enabled else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate-edge-store")
        self.cache: ManifestCache | None = None
        self.records: Records | None = None
        self.journal: SyncJournal | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        """Open (create, migrate) both files."""
        await self._run(self._open)

    def _open(self) -> None:
        storage = self.cfg.storage
        self.cache = ManifestCache.open(storage.cache_path, check_same_thread=False)
        self.records = Records.open(storage.records_path, check_same_thread=False)
        self.journal = SyncJournal(self.records, self.topics,
                                   alarm_interval_s=self.cfg.mqtt.alarm_interval.total_seconds())
        storage.evidence_dir.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        """Finish queued work, then close the files."""
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self.records is not None:
            self.records.close()
        if self.cache is not None:
            self.cache.close()

    def disk_full(self, exc: BaseException) -> str | None:
        """If ``exc`` (or what caused it) is a full disk: which one and what to free."""
        cause: BaseException | None = exc
        for _ in range(10):
            if cause is None:
                return None
            if (isinstance(cause, sqlite3.Error)
                    and getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL) or (
                    isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)):
                break
            cause = cause.__cause__ or cause.__context__
        else:
            return None
        storage = self.cfg.storage
        try:
            free = f"{shutil.disk_usage(storage.dir).free / 2**20:.1f} MB free"
        except OSError as err:
            free = f"free space unknown: {err}"
        return (f"the disk holding {storage.records_path} is full ({free}; {cause}). Free "
                f"space on that filesystem (df {storage.dir}), e.g. old evidence images under "
                f"{storage.evidence_dir}, or give it more room")

    # -- lane work ---------------------------------------------------------------------------
    async def decide(self, reads: PassageReads, lane: LaneConfig) -> Decision:
        """Match one passage against the cache (pure reads)."""
        return await self._run(self._decide, reads, lane)

    def _decide(self, reads: PassageReads, lane: LaneConfig) -> Decision:
        assert self.cache is not None
        return decide(reads, self.cache, self.cfg.policy, self.grammars,
                      site=self.cfg.site.code, lane=lane)

    async def save(self, passage: Passage, actor: str = "gate-edge") -> None:
        """Save a decided passage with its decision, audit row and outbox message (one commit)."""
        await self._run(self._save, passage, actor)

    def _save(self, passage: Passage, actor: str) -> None:
        assert self.records is not None
        self.records.save_passage(passage, actor=actor, publish_topic=self.publish_topic)

    async def revise(self, passage_id: str, decision: Decision, *, replaces: Decision,
                     action: str, detail: Mapping[str, Any]) -> Passage | None:
        """Record a later decision for a saved passage (``Records.revise_decision``)."""
        assert self.records is not None
        records = self.records
        return await self._run(lambda: records.revise_decision(
            passage_id, decision, replaces=replaces, action=action, detail=detail,
            publish_topic=self.publish_topic))

    async def close_passage(self, passage_id: str, *, ended_at: datetime,
                            barrier_events: Sequence[Mapping[str, Any]],
                            evidence: Sequence[Mapping[str, str]], reads: PassageReads) -> None:
        """Record how the passage ended (never touches its decisions)."""
        assert self.records is not None
        await self._run(lambda: self.records.close_passage(  # type: ignore[union-attr]
            passage_id, ended_at=ended_at, barrier_events=barrier_events, evidence=evidence,
            reads=reads))

    async def open_passage(self, lane: str, event_id: str) -> tuple[str, Decision] | None:
        """The decided, not yet ended passage of ``lane`` for the controller's ``event_id``."""
        return await self._run(self._open_passage, lane, event_id)

    def _open_passage(self, lane: str, event_id: str) -> tuple[str, Decision] | None:
        assert self.records is not None
        row = self.records.db.execute(
            "SELECT id, decision FROM passages WHERE lane = ? AND ended_at IS NULL "
            "AND decision IS NOT NULL AND instr(barrier_events, ?) > 0 "
            "ORDER BY started_at DESC LIMIT 1", [lane, json.dumps(event_id)]).fetchone()
        if row is None:
            return None
        return str(row[0]), Decision.model_validate_json(row[1])

    async def alarm(self, code: str, message: str, *, severity: str = "warning",
                    detail: Mapping[str, Any] | None = None) -> bool:
        """Audit an alarm and queue it for the centre (rate-limited per code)."""
        assert self.journal is not None
        journal = self.journal
        return await self._run(lambda: journal.alarm(code, message, severity=severity,
                                                     detail=detail, at=utcnow()))

    async def cache_signed_at(self) -> datetime | None:
        """When the newest applied manifest batch was signed (None: never)."""
        assert self.cache is not None
        return await self._run(self.cache.signed_at)

    async def outbox_depth(self) -> int:
        """Rows not yet acknowledged by the broker."""
        return await self._run(self._outbox_depth)

    def _outbox_depth(self) -> int:
        assert self.records is not None
        return outbox.depth(self.records.db)
