"""What comes down from the centre: signed batches, snapshots and lane commands.

Every message passes the same gate before it touches anything: size, topic, JSON, signature,
site, type, clock. Only then does the stream logic run:

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
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import TypeAdapter, ValidationError

from edge.domain.model import HotlistEntry, HotlistKind, Manifest, normalize_hotlist_value, utcnow
from edge.store.cache import ManifestCache, UpsertResult
from edge.store.db import from_iso, iso
from edge.sync.journal import SyncJournal, immediate
from edge.sync.signing import KeyRing, SignatureError
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


class Rejected(Exception):
    """A message that must not be applied; ``code`` is the machine-readable reason."""

    def __init__(self, code: str, message: str, *, alarm: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.alarm = alarm


@dataclass
class _Staged:
    snapshot_id: str
    parts: int
    head: dict[str, Any]
    manifests: dict[int, list[Manifest]] = field(default_factory=dict)
    hotlist: dict[int, list[HotlistEntry]] = field(default_factory=dict)


@dataclass
class DownlinkLimits:
    """Bounds on what is accepted (from MqttConfig)."""

    max_payload_bytes: int = 4 * 1024 * 1024
    max_clock_skew: timedelta = timedelta(minutes=5)
    max_command_ttl: timedelta = timedelta(minutes=2)


class Downlink:
    """Verifies and applies down messages; called from the MQTT thread, one message at a time."""

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

    # -- entry -----------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> Handled:
        """Process one message; never raises for bad input (it is rejected and reported)."""
        try:
            result = self._handle(topic, payload)
        except Rejected as rej:
            log.warning("rejected message on %s: %s: %s", topic, rej.code, rej.message)
            if rej.alarm:
                self.journal.alarm(f"SYNC_{rej.code}", f"{topic}: {rej.message}",
                                   detail={"topic": topic, "bytes": len(payload)})
            self.counts[f"rejected:{rej.code}"] += 1   # last: counts mean "fully handled"
            return Handled("rejected", rej.code, rej.message)
        self.counts[result.status] += 1
        return result

    def _handle(self, topic: str, payload: bytes) -> Handled:
        if len(payload) > self.limits.max_payload_bytes:
            raise Rejected("PAYLOAD_TOO_LARGE",
                           f"{len(payload)} bytes > limit {self.limits.max_payload_bytes}")
        kind, lane = self._kind_of(topic)
        verified = self.keys.loads_verified(payload)
        if verified is not None:
            doc, kid = verified
        else:
            doc, kid = self._parse_and_verify(payload)
        if doc.get("site") != self.topics.site:
            raise Rejected("WRONG_SITE", f"signed for site {doc.get('site')!r}, this is "
                                         f"{self.topics.site!r}")
        if doc.get("type") != kind:
            raise Rejected("WRONG_TYPE", f"a {doc.get('type')!r} message on the {kind} topic")
        if kind == "command":
            return self._command(doc, lane or "", kid)
        signed_at = self._time(doc, "signed_at")
        if signed_at - self.clock() > self.limits.max_clock_skew:
            raise Rejected("SIGNED_IN_FUTURE", f"signed_at {iso(signed_at)} is in the future "
                                               "(clock skew beyond max_clock_skew)")
        if kind == "snapshot":
            return self._snapshot(doc, kid, signed_at)
        return self._batch(kind, doc, kid, signed_at)

    def _parse_and_verify(self, payload: bytes) -> tuple[dict[str, Any], str]:
        """The general path: any JSON layout, and the precise reason when something is wrong."""
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Rejected("MALFORMED_JSON", f"not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise Rejected("MALFORMED_JSON", f"expected a JSON object, got {type(doc).__name__}")
        try:
            return doc, self.keys.verify(doc)
        except SignatureError as exc:
            raise Rejected(exc.code, str(exc)) from None

    def _kind_of(self, topic: str) -> tuple[str, str | None]:
        t = self.topics
        if topic == t.manifests:
            return "manifests", None
        if topic == t.hotlist:
            return "hotlist", None
        if topic == t.snapshot:
            return "snapshot", None
        lane = t.lane_of_command(topic)
        if lane is not None:
            return "command", lane
        raise Rejected("WRONG_TOPIC", "not a topic of this checkpoint", alarm=False)

    @staticmethod
    def _time(doc: dict[str, Any], key: str) -> datetime:
        value = doc.get(key)
        try:
            ts = from_iso(value) if isinstance(value, str) else None
        except ValueError:
            ts = None
        if ts is None or ts.tzinfo is None:
            raise Rejected("INVALID_BATCH", f"'{key}' must be an ISO 8601 time with offset")
        return ts

    @staticmethod
    def _int(doc: dict[str, Any], key: str, low: int = 0) -> int:
        value = doc.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise Rejected("INVALID_BATCH", f"'{key}' must be an integer ≥ {low}")
        return value

    # -- batches ---------------------------------------------------------------------------
    def _batch(self, kind: str, doc: dict[str, Any], kid: str, signed_at: datetime) -> Handled:
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
        items = doc.get("items")
        if not isinstance(items, list):
            raise Rejected("INVALID_BATCH", "'items' must be a list")
        meta_update = {seq_key: str(seq), f"{seq_key}_digest": digest, version_key: str(version),
                       "source": f"mqtt:{kid}"}
        current_signed = meta.get("signed_at")
        if current_signed is None or from_iso(current_signed) < signed_at:
            meta_update["signed_at"] = iso(signed_at)
        if kind == "manifests":
            manifests = self._manifests(items)
            with immediate(self.cache.db):
                upsert = self.cache.upsert_manifests(manifests)
                self.cache.set_meta(**meta_update)
            result: dict[str, Any] = {"inserted": upsert.inserted, "replaced": upsert.replaced,
                                      "stale": upsert.stale}
        else:
            entries = self._hotlist(items)
            removed = self._removals(doc.get("removed", []))
            with immediate(self.cache.db):
                self.cache.upsert_hotlist(entries, self.clock())
                gone = sum(self.cache.remove_hotlist(k, v) for k, v in removed)
                self.cache.set_meta(**meta_update)
            result = {"upserted": len(entries), "removed": gone}
        self.journal.ack_batch(kind, seq, version, result)
        log.info("applied %s batch seq %d version %d (%s)", kind, seq, version, result)
        return Handled("applied")

    @staticmethod
    def _manifests(items: list[Any]) -> list[Manifest]:
        return _validate(_MANIFESTS, items, "item")

    @staticmethod
    def _hotlist(items: list[Any]) -> list[HotlistEntry]:
        return _validate(_HOTLIST, items, "hotlist item")

    @staticmethod
    def _removals(items: Any) -> list[tuple[HotlistKind, str]]:
        if not isinstance(items, list):
            raise Rejected("INVALID_BATCH", "'removed' must be a list")
        out = []
        for item in items:
            try:
                kind = HotlistKind(item["kind"])
                out.append((kind, normalize_hotlist_value(kind, str(item["value"]))))
            except (KeyError, TypeError, ValueError):
                raise Rejected("INVALID_BATCH", f"bad hotlist removal {item!r}") from None
        return out

    # -- snapshots -------------------------------------------------------------------------
    def _snapshot(self, doc: dict[str, Any], kid: str, signed_at: datetime) -> Handled:
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
        manifests = self._manifests(_list(doc, "manifests"))
        hotlist = self._hotlist(_list(doc, "hotlist"))
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
        staged.manifests[part] = manifests
        staged.hotlist[part] = hotlist
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
        with immediate(self.cache.db):
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


# One adapter for the whole list: about 20% faster than validating item by item.
_MANIFESTS = TypeAdapter(list[Manifest])
_HOTLIST = TypeAdapter(list[HotlistEntry])


def _validate(adapter: TypeAdapter[list[Any]], items: list[Any], what: str) -> list[Any]:
    try:
        return adapter.validate_python(items)
    except ValidationError as exc:
        first = exc.errors()[0]
        index, *rest = first["loc"] or ("?",)
        where = ".".join(str(p) for p in rest)
        raise Rejected("INVALID_BATCH", f"{what} {index}: {where}: {first['msg']}") from None


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise Rejected("INVALID_BATCH", f"'{key}' must be a list")
    return value


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


__all__ = ["Downlink", "DownlinkLimits", "Handled", "LaneCommand", "Rejected", "UpsertResult"]
