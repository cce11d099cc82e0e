"""Checking a post-clearance-audit bundle (docs/audit-bundle.md), as an auditor's tool would.

The check trusts nothing inside the zip but the public key given to it: the signature covers
the manifest, the manifest covers every file by SHA-256, and the audit rows are re-hashed one by
one. Every problem is collected (not just the first), so a damaged bundle tells the auditor
exactly which parts can still be relied on.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.store.audit import row_hash
from edge.sync.signing import KID, SIG, canonical

FORMAT = "gate-edge-audit-bundle/1"
MANIFEST = "manifest.json"
PASSAGES_FILE = "passages.jsonl"
AUDIT_FILE = "audit.jsonl"
EVIDENCE_DIR = "evidence/"
MAX_MEMBER_BYTES = 512 * 1024 * 1024   # a zip bomb stops here, not in the auditor's memory


def evidence_names(passage: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    """(file name, recorded SHA-256 or None) of every evidence file a passage references.

    Listed evidence first, then plate crops the reads point at; each name once.
    """
    seen: set[str] = set()
    for entry in passage.get("evidence") or []:
        if not isinstance(entry, dict):
            continue
        name = str(entry.get("file") or entry.get("path") or entry.get("name") or "")
        sha = entry.get("sha256")
        if name and name not in seen:
            seen.add(name)
            yield name, sha if isinstance(sha, str) else None
    reads = passage.get("reads") or {}
    for key in ("tractor", "trailer", "containers"):
        for read in reads.get(key) or []:
            ref = read.get("crop_ref") if isinstance(read, dict) else None
            if ref and str(ref) not in seen:
                seen.add(str(ref))
                yield str(ref), None


def safe_member(name: str) -> bool:
    """A zip member name that cannot escape a directory it is extracted into."""
    parts = name.split("/")
    return (bool(name) and not name.startswith("/") and "\\" not in name and "\x00" not in name
            and ".." not in parts and "" not in parts[:-1] and ":" not in parts[0])


@dataclass
class BundleCheck:
    """Outcome of :func:`verify_bundle`: ``ok`` when ``problems`` is empty."""

    path: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    signed_by: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


def verify_bundle(path: Path, public_key: Ed25519PublicKey | None,
                  *, require_signature: bool = True) -> BundleCheck:
    """Check signature, file hashes, audit chain and evidence of a bundle; collect problems."""
    check = BundleCheck(path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        check.problems.append(f"not a readable zip file: {exc}")
        return check
    with zf:
        members, texts = _read_members(zf, check)
    members.pop(MANIFEST, None)
    raw = texts.get(MANIFEST)
    if raw is None:
        check.problems.append(f"{MANIFEST} is missing: nothing in the bundle can be checked")
        return check
    try:
        manifest = json.loads(raw)
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        check.problems.append(f"{MANIFEST} is not a JSON object: {exc}")
        return check
    _check_signature(manifest, public_key, require_signature, check)
    if manifest.get("format") != FORMAT:
        check.problems.append(f"unknown format {manifest.get('format')!r} (expected {FORMAT})")
        return check
    _check_files(manifest, members, check)
    passages = _jsonl(texts.get(PASSAGES_FILE), PASSAGES_FILE, check)
    rows = _jsonl(texts.get(AUDIT_FILE), AUDIT_FILE, check)
    counts = manifest.get("counts") or {}
    for label, items in (("passages", passages), ("audit_rows", rows)):
        if items is not None and counts.get(label) != len(items):
            check.problems.append(f"manifest counts {counts.get(label)} {label}, the bundle "
                                  f"holds {len(items)}")
    if rows is not None:
        _check_chain(rows, manifest.get("audit") or {}, check)
    if passages is not None:
        _check_evidence(passages, manifest, members, check)
    check.counts = {"passages": len(passages or []), "audit_rows": len(rows or []),
                    "evidence_files": sum(1 for m in members if m.startswith(EVIDENCE_DIR))}
    return check


def _read_members(zf: zipfile.ZipFile, check: BundleCheck
                  ) -> tuple[dict[str, str], dict[str, bytes]]:
    """SHA-256 of every member, and the bytes of the few JSON members the checks parse.

    Members are hashed as they stream out, so a month of images never sits in memory.
    """
    hashes: dict[str, str] = {}
    texts: dict[str, bytes] = {}
    for info in zf.infolist():
        name = info.filename
        if info.is_dir():
            continue
        if not safe_member(name):
            check.problems.append(f"unsafe file name in the zip: {name!r}")
            continue
        if name in hashes:
            check.problems.append(f"file {name} appears twice in the zip")
            continue
        if info.file_size > MAX_MEMBER_BYTES:
            check.problems.append(f"file {name} is {info.file_size} bytes, beyond any bundle")
            continue
        keep = name in (MANIFEST, PASSAGES_FILE, AUDIT_FILE)
        digest = hashlib.sha256()
        chunks: list[bytes] = []
        try:
            with zf.open(info) as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
                    if keep:
                        chunks.append(chunk)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:   # CRC error, truncated data
            check.problems.append(f"file {name} cannot be read from the zip: {exc}")
            continue
        hashes[name] = digest.hexdigest()
        if keep:
            texts[name] = b"".join(chunks)
    return hashes, texts


def _check_signature(manifest: dict[str, Any], key: Ed25519PublicKey | None, required: bool,
                     check: BundleCheck) -> None:
    sig, kid = manifest.get(SIG), manifest.get(KID)
    if sig is None:
        (check.problems if required else check.warnings).append(
            f"{MANIFEST} is not signed (exported without --signed)")
        return
    if key is None:
        check.warnings.append("signature not checked: no public key given")
        return
    try:
        signature = base64.b64decode(str(sig), validate=True)
        key.verify(signature, canonical({k: v for k, v in manifest.items() if k != SIG}))
    except (binascii.Error, ValueError, TypeError, InvalidSignature):
        check.problems.append(f"signature of {MANIFEST} does not verify with the given public "
                              f"key (key id in the bundle: {kid!r}): the manifest was altered "
                              "or signed by another key")
        return
    check.signed_by = str(kid)


def _check_files(manifest: dict[str, Any], members: dict[str, str], check: BundleCheck) -> None:
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        check.problems.append(f"{MANIFEST} has no 'files' table")
        return
    for name in sorted(listed):
        meta = listed[name] if isinstance(listed[name], dict) else {}
        digest = members.get(name)
        if digest is None:
            check.problems.append(f"file {name} is listed in the manifest but missing")
        elif digest != meta.get("sha256"):
            check.problems.append(f"file {name} was altered: its SHA-256 differs from the "
                                  "manifest")
    for name in sorted(set(members) - set(listed)):
        check.problems.append(f"file {name} is in the zip but not in the manifest (added)")
    for required in (PASSAGES_FILE, AUDIT_FILE):
        if required not in listed:
            check.problems.append(f"the manifest does not list {required}")


def _jsonl(data: bytes | None, name: str, check: BundleCheck) -> list[dict[str, Any]] | None:
    if data is None:
        return None
    out: list[dict[str, Any]] = []
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        try:
            doc = json.loads(line)
        except ValueError as exc:
            check.problems.append(f"{name} line {number} is not JSON: {exc}")
            return None
        if not isinstance(doc, dict):
            check.problems.append(f"{name} line {number} is not a JSON object")
            return None
        out.append(doc)
    return out


def _check_chain(rows: list[dict[str, Any]], head: dict[str, Any], check: BundleCheck) -> None:
    """Re-hash every row; the first must follow the signed anchor, ids must have no gap."""
    if not rows:
        if head.get("first_id") is not None:
            check.problems.append(f"{AUDIT_FILE} is empty but the manifest names rows "
                                  f"{head.get('first_id')}..{head.get('last_id')}")
        return
    prev = head.get("anchor_prev_hash")
    prev_id: int | None = None
    for row in rows:
        rid = row.get("id")
        if prev_id is not None and rid != prev_id + 1:
            check.problems.append(f"audit chain: row {rid} follows row {prev_id} (rows missing "
                                  "or reordered)")
        if row.get("prev_hash") != prev:
            check.problems.append(f"audit chain: row {rid} does not follow the row before it "
                                  "(prev_hash differs)")
        try:
            expected = row_hash(str(row["prev_hash"]), row["at"], row["actor"], row["action"],
                                row["subject"], row["reason_code"], row["detail"])
        except (KeyError, TypeError, ValueError) as exc:
            check.problems.append(f"audit chain: row {rid} is incomplete ({exc})")
            return
        if expected != row.get("hash"):
            check.problems.append(f"audit chain: row {rid} was altered (its content does not "
                                  "match its hash)")
        prev = row.get("hash")
        prev_id = rid if isinstance(rid, int) else None
    if rows[0].get("id") != head.get("first_id") or rows[-1].get("id") != head.get("last_id"):
        check.problems.append(f"audit chain: the bundle holds rows {rows[0].get('id')}.."
                              f"{rows[-1].get('id')}, the manifest names {head.get('first_id')}.."
                              f"{head.get('last_id')}")
    if rows[-1].get("hash") != head.get("last_hash"):
        check.problems.append("audit chain: the last row's hash differs from the manifest's "
                              "last_hash (rows cut off or altered at the end)")


def _check_evidence(passages: list[dict[str, Any]], manifest: dict[str, Any],
                    members: dict[str, str], check: BundleCheck) -> None:
    """Each included image must match the hash recorded with its passage at the lane."""
    listed = {(e.get("passage_id"), e.get("name")): e for e in manifest.get("evidence") or []
              if isinstance(e, dict)}
    for passage in passages:
        pid = passage.get("id")
        for name, recorded in evidence_names(passage):
            entry = listed.get((pid, name))
            if entry is None:
                check.problems.append(f"passage {pid}: evidence {name!r} is not accounted for "
                                      "in the manifest")
                continue
            if entry.get("status") != "included":
                check.warnings.append(f"passage {pid}: evidence {name!r} was "
                                      f"{entry.get('status')} at export time")
                continue
            digest = members.get(str(entry.get("member")))
            if digest is None:
                continue   # reported by the file check
            if recorded is not None and digest != recorded:
                check.problems.append(f"passage {pid}: evidence {name!r} does not match the "
                                      "SHA-256 recorded with the passage")


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a bundle (for tools that only want to show it)."""
    with zipfile.ZipFile(path) as zf:
        doc: dict[str, Any] = json.loads(zf.read(MANIFEST))
    return doc
