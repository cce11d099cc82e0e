"""Post-clearance-audit bundle: export and verify a busy day of one checkpoint.

Huu Nghi clears up to 2,500 trucks a day; an auditor asks for a month at a time. This writes
``--passages`` decided passages (each with one ~20 KB plate-crop JPEG and its audit rows) into a
fresh records.db, then times ``export_bundle`` (signed) and ``verify_bundle`` on it.

Prints the figures and ends with one JSON line (target: a day's 2,500 passages exported and
verified in under 30 s each on this 2-core machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from edge.domain.model import Decision, Outcome, Passage, PassageReads, PlateRead  # noqa: E402
from edge.store.bundle import verify_bundle  # noqa: E402
from edge.store.export import export_bundle  # noqa: E402
from edge.store.records import Records  # noqa: E402

TARGET_S = 30.0


def fill(records: Records, evidence: Path, n: int, start: datetime) -> None:
    """``n`` passages a few seconds apart, one crop each, written as the daemon writes them."""
    day = start.strftime("%Y-%m-%d")
    (evidence / day).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        at = start + timedelta(seconds=30 * i)
        image = os.urandom(20_000)
        name = f"{day}/plate-{i:06d}.jpg"
        (evidence / name).write_bytes(image)
        plate = f"51C{i % 100000:05d}"
        reads = PassageReads(lane="in-1", at=at, tractor=(PlateRead(
            lane="in-1", text=plate, confidence=0.95, frame_time=at, crop_ref=name),))
        outcome = Outcome.OPEN if i % 10 else Outcome.REFER
        passage = Passage(lane="in-1", started_at=at, ended_at=at + timedelta(seconds=20),
                          reads=reads, decision=Decision(outcome=outcome, decided_at=at),
                          evidence=({"file": name, "kind": "plate",
                                     "sha256": hashlib.sha256(image).hexdigest()},))
        records.save_passage(passage)


def main() -> None:
    """Fill, export, verify, report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=2500)
    args = parser.parse_args()
    start = datetime(2026, 11, 20, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        records = Records.open(tmp / "records.db")
        t0 = time.perf_counter()
        try:
            fill(records, tmp / "evidence", args.passages, start)
        finally:
            records.close()
        fill_s = time.perf_counter() - t0
        key = Ed25519PrivateKey.generate()
        out = tmp / "bundle.zip"
        t0 = time.perf_counter()
        result = export_bundle(tmp / "records.db", tmp / "evidence", out, site="HUUNGHI",
                               since=start, until=start + timedelta(days=31), key=key,
                               kid="HUUNGHI-2026")
        export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        check = verify_bundle(out, key.public_key())
        verify_s = time.perf_counter() - t0
        size_mb = out.stat().st_size / 1e6
    assert check.ok, check.problems
    print(f"passages written:  {args.passages} in {fill_s:.1f} s (setup, not measured)")
    print(f"export (signed):   {export_s:.2f} s  ({result.passages} passages, "
          f"{result.audit_rows} audit rows, {result.evidence_files} images, {size_mb:.1f} MB)")
    print(f"verify:            {verify_s:.2f} s  ({args.passages / verify_s:.0f} passages/s)")
    print(json.dumps({"bench": "audit_bundle", "passages": args.passages,
                      "export_s": round(export_s, 2), "verify_s": round(verify_s, 2),
                      "bundle_mb": round(size_mb, 1), "target_export_s": TARGET_S,
                      "target_verify_s": TARGET_S}))


if __name__ == "__main__":
    main()
