"""Manifest cache at checkpoint scale: ingest, cold open, match latency, memory, size.

Generates N realistic declarations (VN and CN tractor plates, VN trailers, 1-3 containers with
valid ISO 6346 numbers, 1-3 seals), imports them through the same code as
``gate-edge manifests import`` (JSON parse, validation, batched upserts), reopens the cache cold,
then matches passages through ``edge.matching.matcher.decide``: exact plates, OCR-confused
plates that only the folded index finds, and trucks with no declaration.

    python benchmarks/bench_manifest_cache.py              # 1,000,000 manifests, 100,000 matches
    python benchmarks/bench_manifest_cache.py --count 100000 --matches 20000

Targets (issue 3): ingest >= 20,000 manifests/s, match p99 <= 1 ms, cold open <= 2 s.
The last line is JSON with the headline figures and their targets.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.config.policy import PolicyConfig
from edge.domain.iso6346 import check_digit
from edge.domain.model import ContainerRead, PassageReads, PlateRead, SealRead, SealStatus
from edge.domain.plates import CN_PROVINCES, default_grammars
from edge.matching.matcher import decide
from edge.store.cache import ManifestCache
from edge.store.manifest_import import import_file

OWNERS = ["MSK", "TGH", "CSQ", "HLX", "OOL", "TCN", "CAI", "SEG", "MSC", "CMA", "EGH", "YML"]
CONFUSE = {"0": "O", "1": "I", "2": "Z", "5": "S", "6": "G", "8": "B"}


def vn_plate(rng: random.Random, trailer: bool = False) -> str:
    series = "R" if trailer else rng.choice("CDEFGH")
    return f"{rng.randint(11, 99)}{series}{rng.randint(0, 99999):05d}"


def cn_plate(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    tail = "".join(rng.choice("0123456789" + letters) for _ in range(5))
    return rng.choice(CN_PROVINCES) + rng.choice(letters) + tail


def container(rng: random.Random) -> str:
    body = rng.choice(OWNERS) + "U" + f"{rng.randint(0, 999999):06d}"
    return body + str(check_digit(body))


Truck = tuple[str, str | None, list[str], list[str]]


def generate(path: Path, count: int, seed: int) -> list[Truck]:
    """Write ``count`` JSON lines; return (tractor, trailer, containers, seals) for matching."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    plates: list[Truck] = []
    used: set[str] = set()
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            while True:
                tractor = cn_plate(rng) if rng.random() < 0.3 else vn_plate(rng)
                if tractor not in used:
                    used.add(tractor)
                    break
            trailer = vn_plate(rng, trailer=True) if rng.random() < 0.8 else None
            containers = [container(rng) for _ in range(rng.randint(1, 3))]
            seals = [{"seal_id": f"VNS{rng.randint(0, 9_999_999):07d}",
                      "type": rng.choice(["bolt", "e-seal"]), "container": c} for c in containers]
            record = {
                "declaration_no": f"{105_000_000_000 + i:012d}", "version": 1,
                "channel": rng.choice(["green", "green", "green", "yellow", "red"]),
                "status": rng.choice(["released"] * 8 + ["cleared", "held"]),
                "tractor_plate": tractor, "trailer_plate": trailer, "containers": containers,
                "seals": seals,
                "trader": {"tax_code": f"{rng.randint(100_000_000, 999_999_999):010d}",
                           "name": f"Trader {rng.randint(1, 20000)}", "aeo": rng.random() < 0.1},
                "valid_from": start.isoformat(),
                "valid_until": (start + timedelta(days=rng.randint(30, 90))).isoformat(),
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            plates.append((tractor, trailer, containers, [x["seal_id"] for x in seals]))
    return plates


def confuse(plate: str, rng: random.Random) -> str | None:
    """Swap one serial digit for its look-alike letter, as OCR does."""
    positions = [i for i, ch in enumerate(plate) if i >= 3 and ch in CONFUSE]
    if not positions:
        return None
    i = rng.choice(positions)
    return plate[:i] + CONFUSE[plate[i]] + plate[i + 1:]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="manifests to generate")
    parser.add_argument("--matches", type=int, default=100_000, help="passages to match")
    parser.add_argument("--seed", type=int, default=6346)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    args = parser.parse_args()

    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-cache-"))
    work.mkdir(parents=True, exist_ok=True)
    src, db_path = work / "manifests.jsonl", work / "cache.db"
    for p in (db_path, db_path.with_suffix(".db-wal"), db_path.with_suffix(".db-shm")):
        p.unlink(missing_ok=True)
    print(f"machine: {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, work dir {work}")

    t0 = time.perf_counter()
    plates = generate(src, args.count, args.seed)
    print(f"generated {args.count:,} manifests in {time.perf_counter() - t0:.1f} s "
          f"({src.stat().st_size / 1e6:.0f} MB of JSON lines)")

    cache = ManifestCache.open(db_path)
    t0 = time.perf_counter()
    summary = import_file(cache, src, batch_size=10_000)
    ingest_s = time.perf_counter() - t0
    cache.set_meta(signed_at=datetime.now(UTC).isoformat())
    cache.close()
    ingest_rate = summary.written.inserted / ingest_s
    print(f"ingest: {summary.written.inserted:,} in {ingest_s:.1f} s = {ingest_rate:,.0f} manifests/s"
          f" ({len(summary.rejected)} rejected)")

    t0 = time.perf_counter()
    cache = ManifestCache.open(db_path)
    cache.by_plate(plates[0][0])
    cold_open_s = time.perf_counter() - t0
    print(f"cold open + first lookup: {cold_open_s * 1000:.0f} ms")

    rng = random.Random(args.seed + 1)
    grammars = default_grammars()
    policy = PolicyConfig()
    now = datetime.now(UTC)
    kinds = {"exact": [], "folded": [], "miss": []}  # type: dict[str, list[float]]
    outcomes: dict[str, int] = {}
    for _ in range(args.matches):
        tractor, trailer, containers, seals = rng.choice(plates)
        roll = rng.random()
        kind, text = "exact", tractor
        if roll < 0.2:
            confused = confuse(tractor, rng)
            if confused:
                kind, text = "folded", confused
        elif roll < 0.4:
            kind, text = "miss", vn_plate(rng).replace("C", "K", 1)
        reads = PassageReads.model_construct(
            lane="in-1", gate=None, declaration_no=None, tailgating=False, at=now,
            tractor=(PlateRead.model_construct(lane="in-1", text=text, confidence=0.95,
                                               candidates=()),),
            trailer=(PlateRead.model_construct(lane="in-1", text=trailer, confidence=0.95,
                                               candidates=()),) if trailer else (),
            containers=tuple(ContainerRead.model_construct(
                lane="in-1", text=c, confidence=1.0, check_digit_ok=True) for c in containers),
            seals=tuple(SealRead.model_construct(lane="in-1", reader="r", seal_id=x,
                                                 status=SealStatus.INTACT, malformed=False)
                        for x in seals),
        )
        t0 = time.perf_counter()
        decision = decide(reads, cache, policy, grammars, site="HUUNGHI")
        kinds[kind].append((time.perf_counter() - t0) * 1000)
        outcomes[decision.outcome.value] = outcomes.get(decision.outcome.value, 0) + 1
    cache.close()
    all_ms = [v for values in kinds.values() for v in values]
    for kind, values in kinds.items():
        if values:
            print(f"match {kind:6s}: n={len(values):,} p50={statistics.median(values):.3f} ms "
                  f"p99={percentile(values, 99):.3f} ms")
    p50, p99 = statistics.median(all_ms), percentile(all_ms, 99)
    print(f"match all   : n={len(all_ms):,} p50={p50:.3f} ms p99={p99:.3f} ms; outcomes {outcomes}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_mb = sum(p.stat().st_size for p in work.glob("cache.db*")) / 1e6
    print(f"peak RSS: {rss_mb:.0f} MB; database size: {size_mb:.0f} MB")
    print(json.dumps({
        "bench": "manifest_cache", "manifests": args.count, "matches": len(all_ms),
        "ingest_per_s": round(ingest_rate), "target_ingest_per_s": 20000,
        "match_p50_ms": round(p50, 3), "match_p99_ms": round(p99, 3), "target_match_p99_ms": 1.0,
        "cold_open_s": round(cold_open_s, 3), "target_cold_open_s": 2.0,
        "peak_rss_mb": round(rss_mb), "db_mb": round(size_mb),
    }))


if __name__ == "__main__":
    main()
