"""What the console does, shared by the HTML pages and the JSON API so both behave the same.

Every method here is blocking (SQLite) and is called from FastAPI's worker threads, never from
the event loop (STYLE §5). One connection per file is shared behind a lock: the console is a
light reader and an occasional writer, and SQLite serializes writers anyway.

An officer action is written before it takes effect: the new decision, its audit row and the
outbox message for the centre commit in one transaction, then the barrier command goes out and
its answer is audited too. If the command cannot be delivered, the record says so.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from ulid import ULID

from edge.config import GateEdgeConfig
from edge.console.errors import Conflict, FieldErrors, Forbidden, NotFound
from edge.console.feed import CommandResult, LaneFeed, OfficerCommand
from edge.console.reasons import ActionReason, check_reason
from edge.console.users import LoginResult, Permission, Role, User, Users, allowed
from edge.domain.declarations import is_declaration_no, is_transit_mrn, normalize_reference
from edge.domain.model import (
    Decision,
    HotlistEntry,
    HotlistKind,
    Manifest,
    Outcome,
    PlateRead,
    normalize_hotlist_value,
    utcnow,
)
from edge.domain.plates import classify, normalize_plate
from edge.matching.matcher import decide
from edge.store import audit, outbox
from edge.store.audit import AuditRecord, ChainCheck
from edge.store.cache import ManifestCache
from edge.store.records import PassageRow, Records, reads_of, stored_passage

log = logging.getLogger(__name__)

Action = Literal["release", "hold", "plate", "declaration"]


@dataclass(frozen=True)
class ActionOutcome:
    """The result of an officer action, for the page and the API."""

    passage_id: str
    outcome: str
    reasons: tuple[str, ...]
    command: CommandResult | None
    message: str


def is_pending(row: PassageRow) -> bool:
    """Waiting for an officer: a referral, or an automatic hold nobody has looked at yet."""
    decided_by = (row.decision or {}).get("decided_by", "auto")
    return row.outcome == Outcome.REFER or (row.outcome == Outcome.HOLD and decided_by == "auto")


class ConsoleService:
    """The console's access to the stores, the feed and the barrier commands."""

    def __init__(self, cfg: GateEdgeConfig, records_path: Path, cache_path: Path,
                 evidence_dir: Path, feed: LaneFeed,
                 send_command: Callable[[OfficerCommand], CommandResult]) -> None:
        self.cfg = cfg
        self.evidence_dir = evidence_dir
        self.feed = feed
        self._send_command = send_command
        self._lock = threading.RLock()
        self._paths = (records_path, cache_path)
        self._open = False
        self.open()
        self.grammars = cfg.grammars()
        self.passage_topic = f"edge/v1/{cfg.site.code}/passages"

    def open(self) -> None:
        """Open (or reopen after :meth:`close`) both files; migrations run here."""
        with self._lock:
            if self._open:
                return
            self.records = Records.open(self._paths[0], check_same_thread=False)
            self.cache = ManifestCache.open(self._paths[1], check_same_thread=False)
            self.users = Users(self.records.db)
            self._open = True

    def close(self) -> None:
        """Close both files (the app's shutdown); :meth:`open` reopens them."""
        with self._lock:
            if self._open:
                self.records.close()
                self.cache.close()
                self._open = False

    # -- accounts -------------------------------------------------------------------------------
    def login(self, name: str, password: str, client: str) -> LoginResult:
        """Check a login and audit it, successful or not."""
        console = self.cfg.console
        now = utcnow()
        with self._lock:
            result = self.users.authenticate(name, password, now,
                                             max_failures=console.max_failed_logins,
                                             lockout=console.lockout)
            subject = f"user:{name[:64]}"
            if result.user is not None:
                self.records.audit_event(actor=name, action="login.ok", subject=subject,
                                         detail={"client": client}, at=now)
            else:
                self.records.audit_event(actor=name[:64] or "-", action="login.failed",
                                         subject=subject, reason_code="BAD_CREDENTIALS",
                                         detail={"client": client, "problem": result.problem},
                                         at=now)
                if result.locked_now:
                    self.records.audit_event(actor="gate-edge", action="user.locked",
                                             subject=subject, reason_code="TOO_MANY_FAILURES",
                                             detail={"client": client}, at=now)
        return result

    def login_throttled(self, name: str, client: str) -> None:
        """A login refused by the per-address rate limit is audited too."""
        with self._lock:
            self.records.audit_event(actor=name[:64] or "-", action="login.throttled",
                                     subject=f"user:{name[:64]}", reason_code="RATE_LIMITED",
                                     detail={"client": client})

    def logout(self, user: User) -> None:
        """End every session of the user (cookies carry the session epoch) and audit it."""
        with self._lock:
            self.users.end_sessions(user.name, utcnow())
            self.records.audit_event(actor=user.name, action="logout", subject=f"user:{user.name}")

    def user(self, name: str) -> User | None:
        """The account behind a session."""
        with self._lock:
            return self.users.get(name)

    def list_users(self) -> list[User]:
        """Every account."""
        with self._lock:
            return self.users.all()

    def unlock_user(self, actor: User, name: str, reason_code: str | None, note: str | None
                    ) -> None:
        """Admin clears a lockout."""
        _require(actor, Permission.MANAGE_USERS)
        errors: dict[str, str] = {}
        code, note = check_reason(reason_code, note, errors)
        if errors:
            raise FieldErrors(errors)
        with self._lock:
            if not self.users.unlock(name, utcnow()):
                raise NotFound(f"no user {name!r}")
            self.records.audit_event(actor=actor.name, action="user.unlock", subject=f"user:{name}",
                                     reason_code=code, detail={"note": note})

    # -- passages and referrals -----------------------------------------------------------------
    def passages(self, *, lane: str | None = None, outcome: str | None = None,
                 limit: int = 50) -> list[PassageRow]:
        """Newest passages."""
        with self._lock:
            return self.records.passages(lane=lane, outcome=outcome, limit=limit)

    def passage(self, passage_id: str) -> PassageRow:
        """One passage; NotFound if the id is unknown."""
        with self._lock:
            row = self.records.passage(passage_id)
        if row is None:
            raise NotFound(f"no passage {passage_id!r}")
        return row

    def passage_detail(self, passage_id: str) -> dict[str, Any]:
        """Everything the passage page shows: reads, manifest, decisions, timeline, evidence."""
        row = self.passage(passage_id)
        with self._lock:
            decisions = self.records.decisions(passage_id)
            timeline = audit.records(self.records.db, subject=f"passage:{passage_id}")
            manifest = self.cache.by_declaration(row.declaration_no) if row.declaration_no else None
        return {"passage": row, "decisions": decisions, "timeline": timeline,
                "manifest": manifest, "evidence": self._evidence(row), "pending": is_pending(row)}

    def _evidence(self, row: PassageRow) -> list[dict[str, Any]]:
        """Evidence files with their SHA-256 checked against the passage row."""
        items: list[dict[str, Any]] = []
        for entry in row.evidence:
            name = str(entry.get("file") or entry.get("path") or entry.get("name") or "")
            if not name:
                continue
            path = self.evidence_file(row, name)
            expected = entry.get("sha256")
            actual = hashlib.sha256(path.read_bytes()).hexdigest() if path else None
            items.append({"name": name, "kind": entry.get("kind", ""), "exists": path is not None,
                          "sha256": expected,
                          "intact": None if expected is None or actual is None
                          else actual == expected})
        return items

    def crop_refs(self, row: PassageRow) -> set[str]:
        """File names a passage's reads point at (plate crops)."""
        refs: set[str] = set()
        for key in ("tractor", "trailer", "containers"):
            for read in row.reads.get(key, []) or []:
                if isinstance(read, dict) and read.get("crop_ref"):
                    refs.add(str(read["crop_ref"]))
        return refs

    def evidence_file(self, row: PassageRow, name: str) -> Path | None:
        """The file if this passage references it and it lies inside the evidence directory."""
        listed = {str(e.get("file") or e.get("path") or e.get("name") or "") for e in row.evidence}
        if not name or "\x00" in name or name not in listed | self.crop_refs(row):
            return None
        base = self.evidence_dir.resolve()
        try:  # resolve() follows symlinks, so a link out of the directory is caught below
            path = (base / name).resolve()
            inside = path.is_relative_to(base) and path.is_file()
        except (OSError, ValueError):  # a name the file system cannot even look up
            return None
        return path if inside else None

    def referrals(self, limit: int = 200) -> list[PassageRow]:
        """Passages waiting for an officer, oldest first (first come, first served)."""
        with self._lock:
            rows = (self.records.passages(outcome=Outcome.REFER, limit=limit)
                    + self.records.passages(outcome=Outcome.HOLD, limit=limit))
        return sorted((r for r in rows if is_pending(r)), key=lambda r: r.started_at)

    def act(self, user: User, passage_id: str, action: Action, *, reason_code: str | None,
            note: str | None = None, plate: str | None = None,
            declaration_no: str | None = None) -> ActionOutcome:
        """Release, hold, correct the plate or identify by declaration number; audited."""
        _require(user, Permission.DECIDE_REFERRAL)
        row = self.passage(passage_id)
        errors: dict[str, str] = {}
        code, note = check_reason(reason_code, note, errors)
        if action == "plate":
            plate = self._check_plate(plate, errors)
        elif action == "declaration":
            declaration_no = self._check_declaration(declaration_no, errors)
        if errors:
            raise FieldErrors(errors)
        if not is_pending(row):
            by = (row.decision or {}).get("decided_by", "auto")
            raise Conflict(f"passage {passage_id} is not waiting for an officer "
                           f"(decision {row.outcome} by {by})")
        if row.outcome == Outcome.HOLD and action == "release" and not allowed(
                user.role, Permission.RELEASE_HOLD):
            raise Forbidden("a hold (hotlist hit) can only be released by a supervisor")
        now = utcnow()
        old = Decision.model_validate(row.decision) if row.decision else Decision(
            outcome=Outcome.REFER)
        reads = reads_of(row)
        detail: dict[str, Any] = {"lane": row.lane, "note": note,
                                  "previous": {"outcome": row.outcome, "reasons": row.reasons}}
        if action == "release":
            new = old.model_copy(update={"outcome": Outcome.OPEN, "decided_by": user.name,
                                         "decided_at": now, "details": (
                                             *old.details, f"released by {user.name}: {code}")})
        elif action == "hold":
            new = old.model_copy(update={"outcome": Outcome.HOLD, "decided_by": user.name,
                                         "decided_at": now, "details": (
                                             *old.details, f"held by {user.name}: {code}")})
        else:
            if action == "plate":
                assert plate is not None
                grammar = classify(plate, self.grammars)
                detail["plate"] = {"from": [r.text for r in reads.tractor], "to": plate}
                manual = PlateRead(lane=row.lane, camera="manual", text=plate, confidence=1.0,
                                   grammar=grammar.name if grammar else None, frame_time=now)
                reads = reads.model_copy(update={"tractor": (manual,), "at": now})
                note_text = f"plate entered by {user.name}: {plate}"
            else:
                detail["declaration_no"] = declaration_no
                reads = reads.model_copy(update={"declaration_no": declaration_no, "at": now})
                note_text = f"declaration {declaration_no} entered by {user.name}"
            with self._lock:
                lane = next((x for x in self.cfg.lanes if x.id == row.lane), None)
                matched = decide(reads, self.cache, self.cfg.policy, self.grammars,
                                 site=self.cfg.site.code, lane=lane)
            new = matched.model_copy(update={"decided_by": user.name, "decided_at": now,
                                             "details": (*matched.details, note_text)})
        command_id = str(ULID())
        detail["command_id"] = command_id
        detail["outcome"] = new.outcome.value
        with self._lock, self.records.db.atomic():
            # Re-read inside a write transaction: another officer (or the daemon adding barrier
            # events) may have changed the passage since it was shown; never overwrite that.
            fresh = self.records.passage(passage_id)
            if fresh is None or fresh.decision != row.decision:
                raise Conflict(f"passage {passage_id} was changed meanwhile; reload and decide "
                               "again")
            passage = stored_passage(fresh, decision=new, reads=reads)
            self.records.save_passage(passage, actor=user.name, publish_topic=self.passage_topic)
            self.records.audit_event(actor=user.name, action=f"officer.{action}",
                                     subject=f"passage:{row.id}", reason_code=code, detail=detail,
                                     at=now)
        self.feed.publish_passage(passage)
        result: CommandResult | None = None
        if new.outcome in (Outcome.OPEN, Outcome.HOLD):
            command = OfficerCommand(
                command_id=command_id, lane=row.lane, passage_id=row.id,
                action="open" if new.outcome == Outcome.OPEN else "keep_closed",
                user=user.name, reason_code=code, note=note, at=now)
            try:
                result = self._send_command(command)
            except Exception as exc:  # the decision is on record; the barrier must not guess
                log.exception("officer command %s for lane %s failed", command_id, row.lane)
                result = CommandResult(False, f"command failed: {exc}")
            with self._lock:
                self.records.audit_event(
                    actor=user.name, action=f"barrier.{command.action}", subject=f"passage:{row.id}",
                    reason_code=code, detail={"lane": row.lane, "command_id": command_id,
                                              "accepted": result.accepted, "detail": result.detail})
        message = f"passage {row.id}: {new.outcome.value.upper()}"
        if new.reasons and new.outcome != Outcome.OPEN:
            message += " (" + ", ".join(r.value for r in new.reasons) + ")"
        if result is not None:
            message += ("; barrier command accepted" if result.accepted
                        else f"; barrier command NOT delivered: {result.detail}")
        return ActionOutcome(row.id, new.outcome.value, tuple(r.value for r in new.reasons),
                             result, message)

    def _check_plate(self, text: str | None, errors: dict[str, str]) -> str | None:
        plate = normalize_plate(text or "")
        if not plate:
            errors["plate"] = "type the plate as printed, e.g. 51C-123.45"
            return None
        if classify(plate, self.grammars) is None:
            guesses: dict[str, str] = {}
            for g in self.grammars:  # one printed form per distinct repair, first grammar wins
                for fixed, _ in g.repairs(plate, max_fixes=2)[:1]:
                    guesses.setdefault(fixed, g.format(fixed))
            shown = list(guesses.values())[:3]
            guess = f"Did you mean {' or '.join(shown)}? " if shown else ""
            examples = "; ".join(g.description for g in self.grammars if g.description)
            errors["plate"] = (f"{plate} fits no known plate layout. {guess}Expected one of: "
                               f"{examples}. Check for O/0, I/1, B/8 mix-ups.")
            return None
        return plate

    def _check_declaration(self, text: str | None, errors: dict[str, str]) -> str | None:
        ref = normalize_reference(text or "")
        if not (is_declaration_no(ref) or is_transit_mrn(ref)):
            errors["declaration_no"] = ("a declaration number has 12 digits (a transit MRN 18 "
                                        "characters with a check character)")
            return None
        with self._lock:
            found = self.cache.by_declaration(ref)
        if found is None:
            errors["declaration_no"] = (f"declaration {ref} is not in the local cache; check the "
                                        "number or the cache age on the health page")
            return None
        return ref

    # -- manifests and hotlist ------------------------------------------------------------------
    def search_manifests(self, query: str, limit: int = 50) -> list[Manifest]:
        """By declaration number, MRN, plate, container or seal; newest first when empty."""
        q = normalize_reference(query or "")[:64]
        with self._lock:
            if not q:
                ids = [r[0] for r in self.cache.db.execute(
                    "SELECT declaration_no FROM manifests ORDER BY id DESC LIMIT ?", [limit])]
                return [m for m in (self.cache.by_declaration(i) for i in ids) if m is not None]
            found: dict[str, Manifest] = {}
            one = self.cache.by_declaration(q)
            if one is not None:
                found[one.declaration_no] = one
            for m in (self.cache.by_plate(normalize_plate(q)) + self.cache.by_container(q)
                      + self.cache.by_seal(q)):
                found.setdefault(m.declaration_no, m)
        return list(found.values())[:limit]

    def manifest(self, declaration_no: str) -> Manifest:
        """One manifest; NotFound otherwise."""
        with self._lock:
            found = self.cache.by_declaration(normalize_reference(declaration_no)[:64])
        if found is None:
            raise NotFound(f"no declaration {declaration_no!r} in the local cache")
        return found

    def hotlist(self) -> list[HotlistEntry]:
        """Every entry, expired ones included."""
        with self._lock:
            return self.cache.hotlist()

    def hotlist_add(self, user: User, data: dict[str, Any], reason_code: str | None,
                    note: str | None) -> HotlistEntry:
        """Supervisor adds or updates an entry; audited."""
        _require(user, Permission.EDIT_HOTLIST)
        errors: dict[str, str] = {}
        code, note = check_reason(reason_code, note, errors)
        entry: HotlistEntry | None = None
        try:
            entry = HotlistEntry.model_validate({k: v for k, v in data.items() if v not in ("",
                                                                                        None)})
        except ValidationError as exc:
            for err in exc.errors():
                name = str(err["loc"][0]) if err["loc"] else "value"
                errors.setdefault(name, err["msg"])
        if entry is not None and not entry.value:
            errors["value"] = "value has no letters or digits"
        if errors or entry is None:
            raise FieldErrors(errors)
        now = utcnow()
        with self._lock:
            self.cache.upsert_hotlist([entry], now)
            self.records.audit_event(
                actor=user.name, action="hotlist.add", subject=f"hotlist:{entry.kind}:{entry.value}",
                reason_code=code, detail={"note": note, "action": entry.action,
                                          "reason": entry.reason,
                                          "expires_at": entry.expires_at.isoformat()
                                          if entry.expires_at else None}, at=now)
        return entry

    def hotlist_remove(self, user: User, kind: str, value: str, reason_code: str | None,
                       note: str | None) -> None:
        """Supervisor removes an entry; audited."""
        _require(user, Permission.EDIT_HOTLIST)
        errors: dict[str, str] = {}
        code, note = check_reason(reason_code, note, errors)
        try:
            hk = HotlistKind(kind)
        except ValueError:
            errors["kind"] = "kind must be plate, container, seal or trader"
        if errors:
            raise FieldErrors(errors)
        with self._lock:
            if not self.cache.remove_hotlist(hk, value):
                raise NotFound(f"no hotlist entry {kind}:{value}")
            stored = normalize_hotlist_value(hk, value)
            self.records.audit_event(actor=user.name, action="hotlist.remove",
                                     subject=f"hotlist:{hk.value}:{stored}", reason_code=code,
                                     detail={"note": note})

    # -- audit and health -----------------------------------------------------------------------
    def audit_rows(self, *, before_id: int | None = None, limit: int = 100,
                   subject: str | None = None) -> list[AuditRecord]:
        """Newest first, paged backwards by id."""
        sql = "SELECT id FROM audit WHERE 1=1"
        args: list[Any] = []
        if before_id is not None:
            sql += " AND id < ?"
            args.append(before_id)
        if subject:
            sql += " AND subject = ?"
            args.append(subject)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            ids = [r[0] for r in self.records.db.execute(sql, args)]
            if not ids:
                return []
            rows = audit.records(self.records.db, after_id=min(ids) - 1, limit=len(ids),
                                 subject=subject)
        return sorted((r for r in rows if r.id in set(ids)), key=lambda r: -r.id)

    def verify_audit(self, user: User) -> ChainCheck:
        """Walk the whole chain (supervisors)."""
        _require(user, Permission.VERIFY_AUDIT)
        with self._lock:
            return audit.verify(self.records.db)

    def health(self) -> dict[str, Any]:
        """Devices, broker, cache age, outbox depth, audit size."""
        now = utcnow()
        with self._lock:
            signed = self.cache.signed_at()
            manifests = self.cache.count()
            hotlist = len(self.cache.hotlist())
            depth = outbox.depth(self.records.db)
            audit_rows = int(self.records.db.execute("SELECT count(*) FROM audit").fetchone()[0])
        max_age = self.cfg.policy.max_cache_age
        age = (now - signed) if signed else None
        broker = self.feed.broker()
        return {
            "checked_at": now.isoformat(),
            "site": self.cfg.site.code,
            "cache": {"signed_at": signed.isoformat() if signed else None,
                      "age_seconds": int(age.total_seconds()) if age is not None else None,
                      "max_age_seconds": int(max_age.total_seconds()),
                      "fresh": age is not None and age <= max_age,
                      "manifests": manifests, "hotlist_entries": hotlist},
            "outbox": {"depth": depth},
            "audit": {"rows": audit_rows},
            "broker": None if broker is None else {"connected": broker.ok, "detail": broker.detail,
                                                   "updated_at": broker.updated_at.isoformat()},
            "devices": [{"name": d.name, "kind": d.kind, "ok": d.ok, "detail": d.detail,
                         "updated_at": d.updated_at.isoformat()} for d in self.feed.devices()],
            "lanes": [{"lane": s.lane, "state": s.state, "barrier": s.barrier,
                       "faults": list(s.faults)} for s in self.feed.lanes()],
            "live_pages": self.feed.subscriber_count(),
        }

    def storage_figures(self) -> tuple[int, float | None]:
        """Outbox depth and cache age in seconds (None: never synced), for /metrics.

        The stand-alone console has no daemon to report them, so it reads them from the files
        at each scrape; two cheap queries, unlike ``health()``.
        """
        with self._lock:
            signed = self.cache.signed_at()
            depth = outbox.depth(self.records.db)
        return depth, (utcnow() - signed).total_seconds() if signed else None

    def latest_changes(self, since: str) -> list[tuple[PassageRow, str]]:
        """Passages written after ``since`` with their updated_at, oldest first (watcher)."""
        with self._lock:
            rows = self.records.db.execute(
                "SELECT id, updated_at FROM passages WHERE updated_at > ? ORDER BY updated_at "
                "LIMIT 200", [since]).fetchall()
            found = [(self.records.passage(r[0]), str(r[1])) for r in rows]
        return [(r, at) for r, at in found if r is not None]

    def newest_update(self) -> str:
        """The newest passages.updated_at (or '' for an empty file)."""
        with self._lock:
            row = self.records.db.execute("SELECT max(updated_at) FROM passages").fetchone()
        return str(row[0] or "")


def _require(user: User, permission: Permission) -> None:
    if not allowed(user.role, permission):
        raise Forbidden(f"role {user.role.value} may not {permission.value}")


def now_utc() -> datetime:
    """For templates: the server's idea of now."""
    return utcnow()


__all__ = [
    "ActionOutcome",
    "ActionReason",
    "Conflict",
    "ConsoleService",
    "FieldErrors",
    "Forbidden",
    "NotFound",
    "Role",
    "is_pending",
]
