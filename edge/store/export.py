"""Post-clearance-audit bundles: one period's passages, evidence and audit chain, signed.

A customs auditor months later must be able to check, without trusting the gate or whoever
carried the file, that the bundle is what the checkpoint recorded: every file is listed with its
SHA-256 in ``manifest.json``, the manifest is signed with the site's Ed25519 key (the same RFC
8785 + Ed25519 scheme as everything the site sends up, ``edge/sync/signing.py``), and the audit
rows come with the hash of the row before the first one, so the chain can be re-walked inside
the bundle and joined to the next bundle or to the live file. docs/audit-bundle.md is the
format specification; :mod:`edge.store.bundle` checks a bundle.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.domain.model import utcnow
from edge.store import audit
from edge.store.bundle import (
    AUDIT_FILE,
    EVIDENCE_DIR,
    FORMAT,
    MANIFEST,
    PASSAGES_FILE,
    evidence_names,
    safe_member,
)
from edge.store.db import iso
from edge.store.records import Records
from edge.sync.signing import canonical, sign

log = logging.getLogger(__name__)


class ExportError(ValueError):
    """The bundle cannot be made; the message says why and what to do."""


@dataclass
class ExportResult:
    """What went into a bundle (printed by the CLI, audited in records.db)."""

    path: Path
    passages: int
    audit_rows: int
    evidence_files: int
    manifest_sha256: str
    signed_by: str | None
    problems: list[str] = field(default_factory=list)


def export_bundle(records_path: Path, evidence_dir: Path, out: Path, *, site: str,
                  since: datetime, until: datetime | None = None,
                  key: Ed25519PrivateKey | None = None, kid: str = "",
                  actor: str = "cli") -> ExportResult:
    """Write the bundle of passages started in ``[since, until)`` to ``out`` (a zip file).

    Evidence files that are missing or no longer match the hash recorded with their passage
    are still listed, with their status, so the auditor sees the gap instead of a silent hole.
    The export itself is then audited in ``records.db`` (after the exported rows).
    """
    until = until or utcnow()
    if until <= since:
        raise ExportError(f"--until {iso(until)} is not after --since {iso(since)}")
    # Members go into the zip as they are made; the manifest, naming them all, comes last.
    records = Records.open(records_path)
    try:
        passages, refs = _passages(records, since, until)
        rows, chain = _audit_rows(records, since, until)
        files: dict[str, dict[str, Any]] = {}
        with _atomic_zip(out) as zf:
            _put(zf, PASSAGES_FILE, b"".join(_line(p) for p in passages), files)
            _put(zf, AUDIT_FILE, b"".join(_line(r) for r in rows), files)
            evidence, problems = _evidence(refs, evidence_dir, zf, files)
            manifest: dict[str, Any] = {
                "format": FORMAT, "site": site, "created_at": iso(utcnow()), "created_by": actor,
                "period": {"since": iso(since), "until": iso(until)},
                "counts": {"passages": len(passages), "audit_rows": len(rows),
                           "evidence_files": sum(1 for e in evidence
                                                 if e["status"] == "included")},
                "audit": chain, "evidence": evidence, "files": dict(sorted(files.items())),
            }
            if key is not None:
                manifest = sign(manifest, key, kid)
            manifest_bytes = canonical(manifest)
            _put(zf, MANIFEST, manifest_bytes, None)
        result = ExportResult(out, len(passages), len(rows), manifest["counts"]["evidence_files"],
                              _sha256(manifest_bytes), kid if key is not None else None, problems)
        records.audit_event(actor=actor, action="passages.export", subject=f"bundle:{out.name}",
                            reason_code="POST_CLEARANCE_AUDIT",
                            detail={"since": iso(since), "until": iso(until),
                                    "passages": result.passages, "audit_rows": result.audit_rows,
                                    "manifest_sha256": result.manifest_sha256,
                                    "signed_by": result.signed_by, "problems": problems})
    finally:
        records.close()
    log.info("audit bundle %s: %d passages, %d audit rows, %d evidence files", out,
             result.passages, result.audit_rows, result.evidence_files)
    return result


def _line(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _passages(records: Records, since: datetime, until: datetime
              ) -> tuple[list[dict[str, Any]], list[tuple[str, str, str | None]]]:
    """Passages of the period with their decision history; and (passage, file, sha256) refs."""
    ids = [r[0] for r in records.db.execute(
        "SELECT id FROM passages WHERE started_at >= ? AND started_at < ? ORDER BY started_at, id",
        [iso(since), iso(until)])]
    out: list[dict[str, Any]] = []
    refs: list[tuple[str, str, str | None]] = []
    for pid in ids:
        row = records.passage(pid)
        if row is None:   # deleted between the two queries; nothing to export
            continue
        out.append({"id": row.id, "lane": row.lane, "started_at": row.started_at,
                    "ended_at": row.ended_at, "tractor_plate": row.tractor_plate,
                    "trailer_plate": row.trailer_plate, "declaration_no": row.declaration_no,
                    "outcome": row.outcome, "reasons": row.reasons, "reads": row.reads,
                    "decision": row.decision, "decisions": records.decisions(row.id),
                    "barrier_events": row.barrier_events, "evidence": row.evidence})
        refs.extend((row.id, name, sha) for name, sha in evidence_names(out[-1]))
    return out, refs


def _audit_rows(records: Records, since: datetime, until: datetime
                ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every audit row from the first of the period to the last, with no gap (ids contiguous).

    The whole chain up to the last exported row is verified first: signing a bundle over a
    chain that is already broken would vouch for tampered rows.
    """
    first, last = records.db.execute(
        "SELECT min(id), max(id) FROM audit WHERE at >= ? AND at < ?",
        [iso(since), iso(until)]).fetchone()
    check = audit.verify(records.db)
    if not check.ok and (first is None or check.first_bad_id is None
                         or check.first_bad_id <= last):
        raise ExportError(f"the audit chain in records.db is broken ({check.problem}); run "
                          "'gate-edge audit verify' and report it before exporting")
    if first is None:
        return [], {"first_id": None, "last_id": None, "anchor_prev_hash": None,
                    "last_hash": None}
    rows = audit.records(records.db, after_id=first - 1, limit=last - first + 1)
    docs = [{"id": r.id, "at": r.at, "actor": r.actor, "action": r.action, "subject": r.subject,
             "reason_code": r.reason_code, "detail": r.detail, "prev_hash": r.prev_hash,
             "hash": r.hash} for r in rows]
    return docs, {"first_id": first, "last_id": last, "anchor_prev_hash": rows[0].prev_hash,
                  "last_hash": rows[-1].hash}


def _evidence(refs: list[tuple[str, str, str | None]], evidence_dir: Path,
              zf: zipfile.ZipFile, files: dict[str, dict[str, Any]]
              ) -> tuple[list[dict[str, Any]], list[str]]:
    """Copy each referenced image into the zip, one at a time (a month never sits in memory)."""
    base = evidence_dir.resolve()
    listed: list[dict[str, Any]] = []
    problems: list[str] = []
    for pid, name, recorded in refs:
        entry: dict[str, Any] = {"passage_id": pid, "name": name, "sha256": recorded}
        member = f"{EVIDENCE_DIR}{name}"
        listed.append(entry)
        if member in files:   # two passages may share one image
            found = files[member]["sha256"]
            if recorded is None or found == recorded:
                entry.update(status="included", member=member)
                continue
        data: bytes | None = None
        if safe_member(member):
            try:
                path = (base / name).resolve()
                if path.is_relative_to(base) and path.is_file():
                    data = path.read_bytes()
            except (OSError, ValueError):
                data = None
        if data is None:
            entry["status"] = "missing"
            problems.append(f"passage {pid}: evidence file {name!r} is missing")
        elif recorded is not None and _sha256(data) != recorded:
            entry["status"] = "hash_mismatch"
            entry["found_sha256"] = _sha256(data)
            problems.append(f"passage {pid}: evidence file {name!r} no longer matches the "
                            "SHA-256 recorded with the passage; not included")
        else:
            entry.update(status="included", member=member)
            if member not in files:
                _put(zf, member, data, files, compress=False)   # JPEG/PNG: already compressed
    return listed, problems


def _put(zf: zipfile.ZipFile, name: str, data: bytes, files: dict[str, dict[str, Any]] | None,
         *, compress: bool = True) -> None:
    zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if compress
                else zipfile.ZIP_STORED)
    if files is not None:
        files[name] = {"sha256": _sha256(data), "bytes": len(data)}


@contextlib.contextmanager
def _atomic_zip(out: Path) -> Iterator[zipfile.ZipFile]:
    """Write to a temporary file, rename when complete: a reader never sees half a bundle."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
            yield zf
        Path(tmp).replace(out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
