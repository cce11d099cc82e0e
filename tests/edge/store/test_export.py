"""Post-clearance-audit bundles on real SQLite files: export, verify, and tampering with every
part of a bundle (as a carrier would, and as an insider holding the site key would)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from edge.cli import app
from edge.domain.model import Decision, Outcome, Passage, PassageReads, PlateRead
from edge.store import audit
from edge.store.bundle import verify_bundle
from edge.store.export import ExportError, export_bundle
from edge.store.records import Records
from edge.sync.signing import canonical, generate_key, load_private_key, sign
from tests.edge.console.console_site import Site, make_site

runner = CliRunner()
KID = "HUUNGHI-2026"


def _site(tmp: Path) -> tuple[Site, Path, Path]:
    """A checkpoint with demo passages and evidence, a site key and a config file naming both."""
    site = make_site(tmp)
    key = generate_key(tmp / "keys" / "site-signing.key")
    cfg = tmp / "gate-edge.yaml"
    text = cfg.read_text(encoding="utf-8").replace("dir: ./var/demo", f"dir: {tmp / 'var'}")
    text = text.replace("  enabled: false\n", "  enabled: false\n  site_key: {id: " + KID
                        + f", private_key_file: {key.private_path}}}\n", 1)
    cfg.write_text(text, encoding="utf-8")
    return site, cfg, key.public_path


def _export(cfg: Path, out: Path, *extra: str) -> Any:
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    return runner.invoke(app, ["passages", "export", "--since", since, "--out", str(out),
                               "-c", str(cfg), *extra])


def _verify(bundle: Path, pub: Path, *extra: str) -> Any:
    return runner.invoke(app, ["audit", "verify-bundle", str(bundle), "--pubkey", str(pub),
                               *extra])


def test_export_and_verify_round_trip(tmp_path: Path) -> None:
    site, cfg, pub = _site(tmp_path)
    out = tmp_path / "bundle.zip"
    r = _export(cfg, out, "--signed")
    assert r.exit_code == 0, r.output
    assert f"{len(site.passages)} passage(s)" in r.output and f"signed by key {KID}" in r.output
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        passages = [json.loads(x) for x in zf.read("passages.jsonl").splitlines()]
        rows = [json.loads(x) for x in zf.read("audit.jsonl").splitlines()]
        for name, meta in manifest["files"].items():
            assert hashlib.sha256(zf.read(name)).hexdigest() == meta["sha256"]
    assert names == {"manifest.json", *manifest["files"]}
    assert {p["id"] for p in passages} == {p.id for p in site.passages}
    with_images = [p for p in site.passages if p.evidence]
    assert manifest["counts"]["evidence_files"] == len(with_images) > 0
    assert all(f"evidence/{p.evidence[0]['file']}" in names for p in with_images)
    assert all(p["decisions"] for p in passages if p["outcome"])
    assert manifest["audit"]["anchor_prev_hash"] == audit.GENESIS == rows[0]["prev_hash"]
    assert [r["id"] for r in rows] == list(range(rows[0]["id"], rows[-1]["id"] + 1))
    assert manifest["kid"] == KID and manifest["site"] == "HUUNGHI"
    ok = _verify(out, pub)
    assert ok.exit_code == 0, ok.output
    assert "bundle verified (signed by HUUNGHI-2026)" in ok.output
    records = site.open_records()
    try:
        exports = [x for x in audit.records(records.db) if x.action == "passages.export"]
        assert len(exports) == 1 and exports[0].detail["passages"] == len(site.passages)
        assert audit.verify(records.db).ok
    finally:
        records.close()
    refused = _export(cfg, out, "--signed")
    assert refused.exit_code == 2 and "exists" in refused.output
    assert _verify(out, pub).exit_code == 0                  # the first bundle is untouched
    again = tmp_path / "again.zip"    # the export row itself lies after the first bundle's
    assert _export(cfg, again, "--signed").exit_code == 0
    assert json.loads(zipfile.ZipFile(again).read("manifest.json"))["counts"]["audit_rows"] \
        == len(rows) + 1


def _save(records: Records, at: datetime, plate: str) -> str:
    reads = PassageReads(lane="in-1", at=at,
                         tractor=(PlateRead(lane="in-1", text=plate, confidence=0.9,
                                            frame_time=at),))
    passage = Passage(lane="in-1", started_at=at, reads=reads,
                      decision=Decision(outcome=Outcome.OPEN, decided_at=at))
    records.save_passage(passage)
    return passage.id


def test_period_selects_passages_and_a_gapless_chain_slice(records: Records,
                                                           tmp_path: Path) -> None:
    day = datetime(2026, 11, 20, tzinfo=UTC)
    ids = [_save(records, day + timedelta(hours=h), f"51C{h:05d}") for h in range(6)]
    records.audit_event(actor="olga", action="login.ok", subject="user:olga",
                        at=day + timedelta(hours=2, minutes=30))   # between passages
    assert records.path is not None
    key = Ed25519PrivateKey.generate()
    out = tmp_path / "slice.zip"
    result = export_bundle(records.path, tmp_path / "evidence", out, site="HUUNGHI",
                           since=day + timedelta(hours=2), until=day + timedelta(hours=4),
                           key=key, kid="k1")
    # rows 3-4 are the period's decisions, row 7 its login (written later, with an earlier
    # time); the slice keeps rows 5-6 between them so the chain has no gap
    assert (result.passages, result.audit_rows) == (2, 5)
    with zipfile.ZipFile(out) as zf:
        passages = [json.loads(x) for x in zf.read("passages.jsonl").splitlines()]
        rows = [json.loads(x) for x in zf.read("audit.jsonl").splitlines()]
    assert [p["id"] for p in passages] == ids[2:4]
    assert [r["id"] for r in rows] == [3, 4, 5, 6, 7]
    assert rows[0]["prev_hash"] != audit.GENESIS        # anchored to the row before the period
    assert verify_bundle(out, key.public_key()).ok
    with pytest.raises(ExportError, match="not after"):
        export_bundle(records.path, tmp_path, tmp_path / "x.zip", site="HUUNGHI", since=day,
                      until=day)


def test_export_refuses_a_broken_chain(records: Records, tmp_path: Path) -> None:
    day = datetime(2026, 11, 20, tzinfo=UTC)
    for h in range(3):
        _save(records, day + timedelta(hours=h), f"51C{h:05d}")
    records.db.execute("UPDATE audit SET actor = 'mallory' WHERE id = 2")
    records.db.conn.commit()
    assert records.path is not None
    with pytest.raises(ExportError, match="broken"):
        export_bundle(records.path, tmp_path, tmp_path / "b.zip", site="HUUNGHI",
                      since=day, until=day + timedelta(days=1))
    assert not (tmp_path / "b.zip").exists()


# -- tampering ------------------------------------------------------------------------------------
Members = dict[str, bytes]


def _rewrite(bundle: Path, out: Path, change: Callable[[Members], object], *,
             resign: Ed25519PrivateKey | None = None, rehash: bool = False) -> Path:
    """Copy a bundle with ``change`` applied; optionally fix the manifest's hashes and re-sign
    it (an insider who holds a key)."""
    with zipfile.ZipFile(bundle) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    change(members)
    if rehash or resign is not None:
        manifest = json.loads(members["manifest.json"])
        if rehash:
            manifest["files"] = {n: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)}
                                 for n, d in members.items() if n != "manifest.json"}
        if resign is not None:
            manifest = sign(manifest, resign, manifest.get("kid", KID))
        members["manifest.json"] = canonical(manifest)
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def _first_evidence(m: Members) -> str:
    return next(n for n in m if n.startswith("evidence/"))


def _edit_jsonl(name: str, index: int, edit: Callable[[dict[str, Any]], None]
                ) -> Callable[[Members], object]:
    def change(m: Members) -> None:
        lines = [json.loads(x) for x in m[name].splitlines()]
        edit(lines[index])
        m[name] = b"".join(json.dumps(x, sort_keys=True).encode() + b"\n" for x in lines)
    return change


def _drop_jsonl(name: str, index: int) -> Callable[[Members], object]:
    def change(m: Members) -> None:
        lines = m[name].splitlines(keepends=True)
        del lines[index]
        m[name] = b"".join(lines)
    return change


def _manifest_edit(edit: Callable[[dict[str, Any]], None]) -> Callable[[Members], object]:
    def change(m: Members) -> None:
        doc = json.loads(m["manifest.json"])
        edit(doc)
        m["manifest.json"] = json.dumps(doc).encode()
    return change


def _set(doc: dict[str, Any], key: str, value: Any) -> None:
    doc[key] = value


INSIDER = "insider"   # re-hash and re-sign with the real site key
CASES: list[tuple[str, Callable[[Members], object], str | None, str]] = [
    ("evidence image replaced",
     lambda m: m.update({_first_evidence(m): b"\x89PNG another truck"}), None, "was altered"),
    ("evidence image removed", lambda m: m.pop(_first_evidence(m)), None,
     "listed in the manifest but missing"),
    ("file added", lambda m: m.update({"evidence/extra.png": b"\x89PNG"}), None,
     "not in the manifest (added)"),
    ("passage decision edited",
     _edit_jsonl("passages.jsonl", 0, lambda p: _set(p, "outcome", "open")), None, "was altered"),
    ("passage dropped", _drop_jsonl("passages.jsonl", 0), None, "passages.jsonl was altered"),
    ("manifest edited, signature kept",
     _manifest_edit(lambda d: _set(d, "site", "LAOBAO")), None, "does not verify"),
    ("manifest signature stripped",
     _manifest_edit(lambda d: d.pop("sig")), None, "not signed"),
    ("evidence replaced by an insider with the key",
     lambda m: m.update({_first_evidence(m): b"\x89PNG another truck"}), INSIDER,
     "does not match the SHA-256 recorded with the passage"),
    ("audit row altered by an insider",
     _edit_jsonl("audit.jsonl", 1, lambda r: _set(r, "actor", "mallory")), INSIDER,
     "row 2 was altered"),
    ("audit row deleted by an insider", _drop_jsonl("audit.jsonl", 2), INSIDER,
     "rows missing or reordered"),
    ("audit rows cut off at the end by an insider", _drop_jsonl("audit.jsonl", -1), INSIDER,
     "last_hash"),
    ("manifest counts changed by an insider",
     _manifest_edit(lambda d: d["counts"].update(passages=1)), INSIDER, "manifest counts 1"),
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("bundle")
    _, cfg, pub = _site(tmp)
    out = tmp / "bundle.zip"
    assert _export(cfg, out, "--signed").exit_code == 0
    return out, pub, tmp / "keys" / "site-signing.key"


@pytest.mark.parametrize(("label", "change", "who", "needle"), CASES, ids=[c[0] for c in CASES])
def test_tampering_with_each_part_is_named(label: str, change: Callable[[Members], object],
                                           who: str | None, needle: str,
                                           exported: tuple[Path, Path, Path],
                                           tmp_path: Path) -> None:
    bundle, pub, private = exported
    key = load_private_key(private) if who == INSIDER else None
    bad = _rewrite(bundle, tmp_path / "bad.zip", change, resign=key, rehash=key is not None)
    r = _verify(bad, pub)
    assert r.exit_code == 1, r.output
    assert needle in r.output, r.output
    assert "problem(s)" in r.output


def test_other_key_unsigned_and_garbage(exported: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bundle, pub, _ = exported
    forged = _rewrite(bundle, tmp_path / "forged.zip", lambda m: None,
                      resign=Ed25519PrivateKey.generate())
    r = _verify(forged, pub)
    assert r.exit_code == 1 and "does not verify with the given public key" in r.output
    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"PK\x03\x04 truncated")
    r = _verify(not_zip, pub)
    assert r.exit_code == 1 and "not a readable zip" in r.output
    slip = _rewrite(bundle, tmp_path / "slip.zip", lambda m: m.update({"../../etc/cron.d/x": b"x"}))
    r = _verify(slip, pub)
    assert r.exit_code == 1 and "unsafe file name" in r.output
    no_manifest = _rewrite(bundle, tmp_path / "nm.zip", lambda m: m.pop("manifest.json"))
    r = _verify(no_manifest, pub)
    assert r.exit_code == 1 and "manifest.json is missing" in r.output
    r = runner.invoke(app, ["audit", "verify-bundle", str(bundle), "--pubkey", "not-a-key"])
    assert r.exit_code == 2 and "--pubkey" in r.output


def test_unsigned_export_and_missing_evidence_are_reported(tmp_path: Path) -> None:
    site, cfg, pub = _site(tmp_path)
    gone = site.passages[0].evidence[0]["file"]
    (site.evidence / gone).unlink()
    out = tmp_path / "unsigned.zip"
    r = _export(cfg, out)
    assert r.exit_code == 0 and "NOT signed" in r.output
    assert f"evidence file {gone!r} is missing" in r.output
    r = _verify(out, pub)
    assert r.exit_code == 1 and "not signed" in r.output
    r = runner.invoke(app, ["audit", "verify-bundle", str(out), "--allow-unsigned"])
    assert r.exit_code == 0, r.output
    assert "was missing at export time" in r.output and "bundle verified (unsigned)" in r.output


def test_times_need_an_offset(tmp_path: Path) -> None:
    _, cfg, _ = _site(tmp_path)
    r = runner.invoke(app, ["passages", "export", "--since", "2026-11-01T00:00:00", "--out",
                            str(tmp_path / "x.zip"), "-c", str(cfg)])
    assert r.exit_code == 2 and "no UTC offset" in r.output
    r = runner.invoke(app, ["passages", "export", "--since", "yesterday", "--out",
                            str(tmp_path / "x.zip"), "-c", str(cfg)])
    assert r.exit_code == 2 and "not an ISO 8601 time" in r.output


def test_evidence_in_day_folders_is_exported_and_nothing_outside_is_read(
        records: Records, tmp_path: Path) -> None:
    day = datetime(2026, 11, 20, tzinfo=UTC)
    evidence = tmp_path / "evidence"
    (evidence / "2026-11-20").mkdir(parents=True)
    image = b"\xff\xd8\xff\xe0 plate crop"
    (evidence / "2026-11-20" / "plate-01A.jpg").write_bytes(image)
    (tmp_path / "outside.jpg").write_bytes(b"not evidence")
    reads = PassageReads(lane="in-1", at=day)
    passage = Passage(lane="in-1", started_at=day, reads=reads,
                      decision=Decision(outcome=Outcome.REFER, decided_at=day),
                      evidence=({"file": "2026-11-20/plate-01A.jpg", "kind": "plate",
                                 "sha256": hashlib.sha256(image).hexdigest()},
                                {"file": "../outside.jpg", "kind": "plate"}))
    records.save_passage(passage)
    assert records.path is not None
    key = Ed25519PrivateKey.generate()
    out = tmp_path / "day.zip"
    result = export_bundle(records.path, evidence, out, site="HUUNGHI", since=day,
                           until=day + timedelta(hours=1), key=key, kid="k1")
    assert result.evidence_files == 1
    assert result.problems == [f"passage {passage.id}: evidence file '../outside.jpg' is missing"]
    with zipfile.ZipFile(out) as zf:
        assert zf.read("evidence/2026-11-20/plate-01A.jpg") == image
        assert not any("outside" in n for n in zf.namelist())
    check = verify_bundle(out, key.public_key())
    assert check.ok, check.problems
    assert check.warnings == [f"passage {passage.id}: evidence '../outside.jpg' was missing at "
                              "export time"]
