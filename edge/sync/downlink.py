"""What comes down from the centre: signed batches, snapshots and lane commands.

Every message passes the same gate before it touches anything: size, topic, JSON, signature,
site, type, body validation (``prepare.py``: no state needed, so a worker process may do it),
then the clock. Only then does the stream logic run, one message at a time in arrival order:

* Manifest and hotlist batches carry a per-stream ``seq``. The next one (last + 1) is applied
  together with its new ``seq`` in ONE cache transaction, so a crash can never leave data
  applied but its seq not (or the reverse). The same seq again with the same signature is a
  QoS 1 redelivery and is ignored quietly; anything else at or below the last seq is a replay or
  out of order, rejected with an alarm. A seq *gap* means batches were lost (a broker lost the
  session, the checkpoint was offline beyond the session expiry): the batch is not applied and a
  resync is requested; the answering snapshot replaces the cache atomically.
* Snapshots may come in parts (one MQTT message each, each signed); parts are staged in memory
  and swapped in only when all have arrived.
* Lane commands carry a nonce, ``issued_at`` and a signed ``not_after`` (on top of the MQTT 5
  message expiry the broker enforces). Accepted and rejected commands are audited and acked.

A rejection is logged with its reason, counted, and, where it matters for security or for the
freshness of the cache, raised as an alarm (rate-limited per reason by the journal).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from edge.domain.model import HotlistEntry, utcnow
from edge.store.cache import ManifestCache, ManifestRows, UpsertResult
from edge.store.db import from_iso, iso
from edge.sync.journal import SyncJournal
from edge.sync.prepare import Prepared, Preparer, Rejected, time_of
from edge.sync.signing import KeyRing
from edge.sync.topics import Topics

log = logging.getLogger(__name__)

Status = Literal["applied", "duplicate", "rejected", "gap", "staged", "command"]
COMMANDS = ("open", "hold", "mode")
MODES = ("auto", "manual", "closed")


@dataclass(frozen=True)
class Handled:
    """What became of one down message (returned for tests, metrics and the logs)."""

    status: Status
    code: str = ""
    message: str = ""


@dataclass(frozen=True)
class LaneCommand:
    """A verified command for one lane, handed to the gate controller client."""

    lane: str
    command: str
    nonce: str
    issued_at: datetime
    not_after: datetime
    kid: str
    mode: str | None = None
    passage_id: str | None = None
    reason: str | None = None


@dataclass
class _Staged:
    snapshot_id: str
    parts: int
    head: dict[str, Any]
    manifests: dict[int, list[ManifestRows]] = field(default_factory=dict)
    hotlist: dict[int, list[HotlistEntry]] = field(default_factory=dict)


@dataclass
class DownlinkLimits:
    """Bounds on what is accepted (from MqttConfig)."""

    max_payload_bytes: int = 4 * 1024 * 1024
    max_clock_skew: timedelta = timedelta(minutes=5)
    max_command_ttl: timedelta = timedelta(minutes=2)


class Downlink:
    """Verifies and applies down messages, one at a time (one thread: the MQTT or the pipeline's)."""

    STREAMS: ClassVar[dict[str, tuple[str, str]]] = {
        "manifests": ("seq", "version"), "hotlist": ("hotlist_seq", "hotlist_version")}

    def __init__(self, *, topics: Topics, keys: KeyRing, cache: ManifestCache, journal: SyncJournal,
                 lanes: set[str], limits: DownlinkLimits | None = None,
                 request_resync: Callable[[str], None] | None = None,
                 on_command: Callable[[LaneCommand], None] | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.topics = topics
        self.keys = keys
        self.cache = cache
        self.journal = journal
        self.lanes = lanes
        self.limits = limits or DownlinkLimits()
        self.request_resync = request_resync or (lambda reason: None)
        self.on_command = on_command
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self._staged: _Staged | None = None
        self.preparer = Preparer(topics, keys, self.limits.max_payload_bytes)

    # -- entry -----------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> Handled:
        """Process one message start to end; never raises for bad input (it is rejected and reported)."""
        try:
            prepared: Prepared | Rejected = self.preparer.prepare(topic, payload)
        except Rejected as rej:
            prepared = rej
        return self.apply(topic, len(payload), prepared)

    def apply(self, topic: str, size: int, prepared: Prepared | Rejected) -> Handled:
        """Second half of :meth:`handle`: the stateful checks and the write, in arrival order.

        ``prepared`` is what :meth:`Preparer.prepare` returned or raised for the message,
        possibly in a worker process (``pipeline.py``).
        """
        try:
            if isinstance(prepared, Rejected):
                raise prepared
            result = self._apply(prepared)
        except Rejected as rej:
            log.warning("rejected message on %s: %s: %s", topic, rej.code, rej.message)
            if rej.alarm:
                self.journal.alarm(f"SYNC_{rej.code}", f"{topic}: {rej.message}",
                                   detail={"topic": topic, "bytes": size})
            self.counts[f"rejected:{rej.code}"] += 1   # last: counts mean "fully handled"
            return Handled("rejected", rej.code, rej.message)
        self.counts[result.status] += 1
        return result

    def _apply(self, prepared: Prepared) -> Handled:
        if prepared.kind == "command":
            return self._command(prepared.doc, prepared.lane or "", prepared.kid)
        assert prepared.signed_at is not None
        signed_at = prepared.signed_at
        if signed_at - self.clock() > self.limits.max_clock_skew:
            raise Rejected("SIGNED_IN_FUTURE", f"signed_at {iso(signed_at)} is in the future "
                                               "(clock skew beyond max_clock_skew)")
        if prepared.kind == "snapshot":
            return self._snapshot(prepared)
        return self._batch(prepared)

    @staticmethod
    def _time(doc: dict[str, Any], key: str) -> datetime:
        return time_of(doc, key)

    @staticmethod
    def _int(doc: dict[str, Any], key: str, low: int = 0) -> int:
        value = doc.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise Rejected("INVALID_BATCH", f"'{key}' must be an integer ≥ {low}")
        return value

    # -- batches ---------------------------------------------------------------------------
    def _batch(self, prepared: Prepared) -> Handled:
        kind, doc, kid = prepared.kind, prepared.doc, prepared.kid
        assert prepared.signed_at is not None
        signed_at = prepared.signed_at
        seq_key, version_key = self.STREAMS[kind]
        seq = self._int(doc, "seq", 1)
        version = self._int(doc, "version", 0)
        digest = hashlib.sha256(str(doc["sig"]).encode()).hexdigest()[:32]
        meta = self.cache.meta()
        last = int(meta.get(seq_key, "0"))
        if seq == last and meta.get(f"{seq_key}_digest") == digest:
            log.info("%s batch seq %d delivered again (QoS 1 duplicate); ignored", kind, seq)
            return Handled("duplicate", "DUPLICATE", f"seq {seq} already applied")
        if seq == last:
            raise Rejected("REPLAYED", f"{kind} seq {seq} was already applied with other content")
        if seq < last:
            raise Rejected("OUT_OF_ORDER", f"{kind} seq {seq} is older than the last applied {last}")
        if version < int(meta.get(version_key, "0")):
            raise Rejected("OUT_OF_ORDER", f"{kind} version {version} is older than the cached "
                                           f"{meta.get(version_key)}")
        if seq != last + 1:
            message = f"{kind} seq {seq} after {last}: {seq - last - 1} batch(es) missing"
            log.warning("%s; requesting a snapshot", message)
            self.journal.alarm("SYNC_SEQ_GAP", message, detail={"stream": kind, "have": last,
                                                                "got": seq})
            self.request_resync(message)
            return Handled("gap", "SEQ_GAP", message)
        if prepared.body_error is not None:
            raise prepared.body_error
        meta_update = {seq_key: str(seq), f"{seq_key}_digest": digest, version_key: str(version),
                       "source": f"mqtt:{kid}"}
        current_signed = meta.get("signed_at")
        if current_signed is None or from_iso(current_signed) < signed_at:
            meta_update["signed_at"] = iso(signed_at)
        if kind == "manifests":
            with self.cache.db.atomic():
                upsert = self.cache.write_rows(prepared.manifests)
                self.cache.set_meta(**meta_update)
            result: dict[str, Any] = {"inserted": upsert.inserted, "replaced": upsert.replaced,
                                      "stale": upsert.stale}
        else:
            entries, removed = prepared.hotlist, prepared.removed
            with self.cache.db.atomic():
                self.cache.upsert_hotlist(entries, self.clock())
                gone = sum(self.cache.remove_hotlist(k, v) for k, v in removed)
                self.cache.set_meta(**meta_update)
            result = {"upserted": len(entries), "removed": gone}
        self.journal.ack_batch(kind, seq, version, result)
        log.info("applied %s batch seq %d version %d (%s)", kind, seq, version, result)
        return Handled("applied")

    # -- snapshots -------------------------------------------------------------------------
    def _snapshot(self, prepared: Prepared) -> Handled:
        doc, kid = prepared.doc, prepared.kid
        assert prepared.signed_at is not None
        signed_at = prepared.signed_at
        seq = self._int(doc, "seq", 0)
        hotlist_seq = self._int(doc, "hotlist_seq", 0)
        part = self._int(doc, "part", 1)
        parts = self._int(doc, "parts", 1)
        snapshot_id = doc.get("snapshot_id")
        if not isinstance(snapshot_id, str) or not snapshot_id or part > parts:
            raise Rejected("INVALID_BATCH", "snapshot needs 'snapshot_id' and 1 ≤ part ≤ parts")
        meta = self.cache.meta()
        have = int(meta.get("seq", "0"))
        if seq < have or (seq == have and not meta.get("resync_pending")):
            raise Rejected("OUT_OF_ORDER", f"snapshot at seq {seq} is not newer than the cache "
                                           f"(seq {have}) and none was requested")
        have_hotlist = int(meta.get("hotlist_seq", "0"))
        if hotlist_seq < have_hotlist:
            # A snapshot replaces the whole hotlist: an old one replayed would silently drop
            # every entry added since (the manifest seq alone does not show its age).
            raise Rejected("OUT_OF_ORDER", f"snapshot at hotlist_seq {hotlist_seq} is older than "
                                           f"the cached hotlist (hotlist_seq {have_hotlist})")
        if prepared.body_error is not None:
            raise prepared.body_error
        head = {"seq": seq, "hotlist_seq": hotlist_seq, "version": self._int(doc, "version", 0),
                "hotlist_version": self._int(doc, "hotlist_version", 0), "parts": parts,
                "signed_at": iso(signed_at), "kid": kid}
        staged = self._staged
        if staged is None or staged.snapshot_id != snapshot_id:
            staged = self._staged = _Staged(snapshot_id, parts, head)
        elif {k: v for k, v in staged.head.items() if k != "signed_at"} != {
                k: v for k, v in head.items() if k != "signed_at"}:
            self._staged = None
            raise Rejected("INVALID_BATCH", f"snapshot {snapshot_id} parts disagree on seq/version")
        staged.manifests[part] = prepared.manifests
        staged.hotlist[part] = prepared.hotlist
        if len(staged.manifests) < staged.parts:
            return Handled("staged", "", f"snapshot {snapshot_id} part {part}/{parts}")
        self._staged = None
        return self._apply_snapshot(staged)

    def _apply_snapshot(self, staged: _Staged) -> Handled:
        head = staged.head
        manifests = [m for p in sorted(staged.manifests) for m in staged.manifests[p]]
        hotlist = [h for p in sorted(staged.hotlist) for h in staged.hotlist[p]]
        meta = {"seq": str(head["seq"]), "hotlist_seq": str(head["hotlist_seq"]),
                "version": str(head["version"]), "hotlist_version": str(head["hotlist_version"]),
                "signed_at": head["signed_at"], "source": f"mqtt-snapshot:{head['kid']}",
                "resync_pending": "", "seq_digest": "", "hotlist_seq_digest": ""}
        with self.cache.db.atomic():
            count = self.cache.replace_all(manifests, meta)
            # The cache module has no "replace hotlist"; the snapshot owns the whole table.
            self.cache.db.execute("DELETE FROM hotlist")
            self.cache.upsert_hotlist(hotlist, self.clock())
        self.journal.ack_batch("snapshot", head["seq"], head["version"],
                               {"manifests": count, "hotlist": len(hotlist),
                                "snapshot_id": staged.snapshot_id})
        log.info("snapshot %s applied: %d manifests, %d hotlist entries, seq %d",
                 staged.snapshot_id, count, len(hotlist), head["seq"])
        return Handled("applied", "SNAPSHOT", f"{count} manifests")

    # -- commands --------------------------------------------------------------------------
    def _command(self, doc: dict[str, Any], topic_lane: str, kid: str) -> Handled:
        lane = doc.get("lane")
        if lane != topic_lane:
            raise Rejected("WRONG_LANE", f"command for lane {lane!r} on the topic of {topic_lane!r}")
        if lane not in self.lanes:
            raise Rejected("WRONG_LANE", f"no lane {lane!r} at this checkpoint")
        nonce = doc.get("nonce")
        if not isinstance(nonce, str) or not 8 <= len(nonce) <= 128:
            raise Rejected("INVALID_COMMAND", "'nonce' must be a string of 8-128 characters")
        if self.journal.command_seen(nonce):
            raise Rejected("REPLAYED", f"command nonce {nonce} was already used")
        issued_at = self._time(doc, "issued_at")
        not_after = self._time(doc, "not_after")
        now = self.clock()
        problem: tuple[str, str] | None = None
        command = doc.get("command")
        mode = doc.get("mode")
        if command not in COMMANDS:
            problem = ("INVALID_COMMAND", f"unknown command {command!r}; expected one of {COMMANDS}")
        elif command == "mode" and mode not in MODES:
            problem = ("INVALID_COMMAND", f"mode must be one of {MODES}")
        elif now > not_after:
            problem = ("COMMAND_EXPIRED", f"not_after {iso(not_after)} has passed")
        elif issued_at - now > self.limits.max_clock_skew:
            problem = ("SIGNED_IN_FUTURE", f"issued_at {iso(issued_at)} is in the future")
        elif not_after - issued_at > self.limits.max_command_ttl:
            problem = ("COMMAND_TTL_TOO_LONG", f"valid for {not_after - issued_at}, longer than "
                                               f"{self.limits.max_command_ttl}")
        if problem is not None:
            self.journal.record_command(nonce, lane, doc, accepted=False, reason=problem[0],
                                        message=problem[1])
            raise Rejected(problem[0], problem[1], alarm=problem[0] != "COMMAND_EXPIRED")
        self.journal.record_command(nonce, lane, doc, accepted=True)
        cmd = LaneCommand(lane=lane, command=str(command), nonce=nonce, issued_at=issued_at,
                          not_after=not_after, kid=kid, mode=mode if isinstance(mode, str) else None,
                          passage_id=_opt_str(doc.get("passage_id")), reason=_opt_str(doc.get("reason")))
        log.info("command %s accepted for lane %s (nonce %s)", command, lane, nonce,
                 extra={"lane": lane})
        if self.on_command is not None:
            self.on_command(cmd)
        return Handled("command", str(command))


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


__all__ = ["Downlink", "DownlinkLimits", "Handled", "LaneCommand", "Rejected", "UpsertResult"]
