"""Officer console latency over a real socket: live lane update (feed -> SSE -> client) and API.

Builds a throw-away checkpoint from config/demo (real SQLite files, real argon2 account), serves
the console with uvicorn on a free loopback port and measures:
- SSE: time from ``LaneFeed.update_lane`` in the daemon to the rendered card arriving at a
  streaming HTTP client (what an officer's page waits for);
- API: GET /api/v1/referrals and GET /lanes (page render) round trips.

Run: python benchmarks/console_latency.py
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.cli.match_cmd import decide_for, reads_from_json  # noqa: E402
from edge.config import load_config  # noqa: E402
from edge.console import LaneFeed, create_app, serve  # noqa: E402
from edge.console.users import Users  # noqa: E402
from edge.domain.model import HotlistEntry, Passage  # noqa: E402
from edge.store.cache import ManifestCache  # noqa: E402
from edge.store.db import iso  # noqa: E402
from edge.store.manifest_import import import_file  # noqa: E402
from edge.store.records import Records  # noqa: E402

DEMO = REPO / "config" / "demo"
PASSWORD = "measure-pass-1"


def build(tmp: Path):  # type: ignore[no-untyped-def]
    cfg = load_config(DEMO / "gate-edge.demo.yaml")
    cfg = cfg.model_copy(update={
        "storage": cfg.storage.model_copy(update={"dir": tmp}),
        "console": cfg.console.model_copy(update={"secure_cookies": False}),
    })
    cache, records = ManifestCache.open(cfg.storage.cache_path), Records.open(
        cfg.storage.records_path)
    import_file(cache, DEMO / "manifests.jsonl")
    now = datetime.now(UTC)
    cache.upsert_hotlist([HotlistEntry.model_validate_json(x) for x in
                          (DEMO / "hotlist.jsonl").read_text().splitlines()
                          if x.strip() and not x.startswith("#")], now)
    cache.set_meta(signed_at=iso(now))
    Users(records.db).add("bench", "supervisor", PASSWORD, now)
    trucks = [json.loads(x) for x in (DEMO / "trucks.jsonl").read_text().splitlines()
              if x.strip() and not x.startswith("#")]
    for _ in range(20):  # 200 passages
        for truck in trucks:
            reads = reads_from_json(truck)
            records.save_passage(Passage(lane=reads.lane, reads=reads,
                                         decision=decide_for(cfg, cache, reads)))
    cache.close()
    records.close()
    return cfg


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp:
        cfg = build(Path(tmp))
        feed = LaneFeed((lane.id, lane.name) for lane in cfg.lanes)
        app = create_app(cfg, feed=feed, session_secret="b" * 48)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = serve(app, "127.0.0.1", port)
        thread = threading.Thread(target=asyncio.run, args=(server.serve(),), daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=10) as client:
                r = client.post("/api/v1/session", json={"username": "bench", "password": PASSWORD})
                r.raise_for_status()
                api, page = [], []
                waiting = len(client.get("/api/v1/referrals").json())
                for _ in range(200):
                    t0 = time.perf_counter()
                    client.get("/api/v1/referrals").raise_for_status()
                    api.append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    client.get("/lanes").raise_for_status()
                    page.append((time.perf_counter() - t0) * 1000)
                sse = measure_sse(client, feed)
        finally:
            server.should_exit = True
            thread.join(10)
    print(f"GET /api/v1/referrals (200 passages, {waiting} waiting): p50 {statistics.median(api):.1f} ms,"
          f" p95 {pct(api, 95):.1f} ms")
    print(f"GET /lanes page render: p50 {statistics.median(page):.1f} ms, p95 {pct(page, 95):.1f} ms")
    print(f"lane update feed -> SSE client ({len(sse)} events): p50 {statistics.median(sse):.1f} ms,"
          f" p95 {pct(sse, 95):.1f} ms")
    print(json.dumps({"bench": "console_latency", "sse_p95_ms": round(pct(sse, 95), 1),
                      "target_sse_p95_ms": 100, "api_referrals_p95_ms": round(pct(api, 95), 1),
                      "target_api_p95_ms": 200, "lanes_page_p95_ms": round(pct(page, 95), 1),
                      "target_page_p95_ms": 200}))


def measure_sse(client: httpx.Client, feed: LaneFeed, n: int = 100) -> list[float]:
    sent: dict[str, float] = {}
    got: list[float] = []
    ready = threading.Event()

    def reader() -> None:
        with client.stream("GET", "/events", timeout=30) as stream:
            for line in stream.iter_lines():
                if line.startswith("event: hello"):
                    ready.set()
                if line.startswith("data:") and "bench-" in line:
                    marker = line.split("bench-", 1)[1].split("\\u", 1)[0].split("<", 1)[0]
                    key = "bench-" + "".join(ch for ch in marker if ch.isdigit())
                    if key in sent:
                        got.append((time.perf_counter() - sent[key]) * 1000)
                if len(got) >= n:
                    return

    worker = threading.Thread(target=reader, daemon=True)
    worker.start()
    ready.wait(10)
    for i in range(n):
        key = f"bench-{i}"
        sent[key] = time.perf_counter()
        feed.update_lane("in-1", state="deciding", faults=(key,))
        time.sleep(0.02)
    worker.join(15)
    return got


if __name__ == "__main__":
    main()
