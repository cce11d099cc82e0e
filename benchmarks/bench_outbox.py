"""Outbox drain rate to a real Mosquitto at QoS 1, and manifest batch apply rate.

1. Drain: 100,000 events wait in the outbox (as after a long outage); the publisher signs each
   (Ed25519 over RFC 8785 JSON), publishes at QoS 1 and marks rows sent after PUBACK. A separate
   consumer *process* subscribes at the broker and counts distinct seqs, so "0 lost" is
   measured at the far side, not assumed. Target ≥ 5,000 events/s.
2. Apply: signed batches of 1,000 declarations go through the edge's full down path (size,
   JSON, signature, site, seq, pydantic validation, SQLite upsert, seq meta, ack in the outbox).
   Target ≥ 20,000 manifests/s.

Run: python benchmarks/bench_outbox.py [--events 100000] [--manifests 50000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ulid import ULID

from edge.store import outbox
from edge.store.cache import ManifestCache
from edge.store.records import Records
from edge.sync.downlink import Downlink, Handled
from edge.sync.journal import SyncJournal
from edge.sync.link import Broker, LinkSettings, MqttLink
from edge.sync.pipeline import DownPipeline
from edge.sync.publisher import OutboxPublisher
from edge.sync.signing import KeyRing, sign_bytes
from edge.sync.topics import Topics
from simulators.central import data
from simulators.central.broker import Mosquitto

SITE = "HUUNGHI"
RECEIVE_MAXIMUM = 16   # what the edge announces in CONNECT (edge/sync/link.py)


def _consumer(port: int, expected: int, ready: mp.Event, out: mp.Queue) -> None:  # type: ignore[type-arg]
    seqs: set[int] = set()
    messages = 0
    done = mp.Event()
    last = [time.monotonic()]

    def on_message(topic: str, payload: bytes, message: object) -> None:
        nonlocal messages
        messages += 1
        seqs.add(json.loads(payload)["seq"])
        last[0] = time.monotonic()
        if len(seqs) >= expected:
            done.set()

    link = MqttLink(LinkSettings(client_id="bench-consumer", brokers=[Broker("127.0.0.1", port)],
                                 subscriptions=[(f"edge/v1/{SITE}/#", 1)]), on_message=on_message)
    link.start()
    link.wait_connected(10)
    ready.set()
    while not done.wait(1.0):
        if time.monotonic() - last[0] > 30:
            break
    link.stop()
    out.put({"distinct": len(seqs), "messages": messages, "last_at": last[0]})


def bench_drain(workdir: Path, events: int) -> dict[str, float]:
    records = Records.open(workdir / "records.db")
    topics = Topics(SITE)
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    for start in range(0, events, 5000):
        with records.db.atomic():
            for i in range(start, min(events, start + 5000)):
                outbox.enqueue(records.db, topic=topics.passages, kind="passage", at=now,
                               idempotency_key=f"passage:{i}",
                               payload={"passage_id": str(ULID()), "lane": "in-1",
                                        "reads": {"tractor": [{"text": f"51C{i:05d}",
                                                               "confidence": 0.93}]},
                                        "decision": {"outcome": "open", "reasons": []}})
    print(f"queued {events:,} events in {time.perf_counter() - t0:.1f} s (the 'outage')")
    records.close()
    with Mosquitto(workdir / "mosquitto") as broker:
        ctx = mp.get_context("spawn")
        ready, out = ctx.Event(), ctx.Queue()
        consumer = ctx.Process(target=_consumer, args=(broker.port, events, ready, out))
        consumer.start()
        ready.wait(20)
        link = MqttLink(LinkSettings(client_id=f"gate-edge-{SITE}",
                                     brokers=[Broker("127.0.0.1", broker.port)]))
        publisher = OutboxPublisher(workdir / "records.db", link, site=SITE,
                                    key=Ed25519PrivateKey.generate(), kid="bench")
        link.start()
        link.wait_connected(10)
        t0, cpu0 = time.perf_counter(), time.process_time()
        publisher.start()
        check = Records.open(workdir / "records.db", readonly=True)
        while outbox.depth(check.db) > 0:
            time.sleep(0.2)
        drained = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        check.close()
        publisher.stop()
        link.stop()
        result = out.get(timeout=120)
        consumer.join(30)
    rate = events / drained
    lost = events - result["distinct"]
    print(f"drained {events:,} events in {drained:.1f} s: {rate:,.0f} events/s "
          f"(PUBACKed and marked sent); consumer saw {result['distinct']:,} distinct "
          f"({result['messages']:,} messages), lost {lost}")
    print(f"  edge process CPU: {cpu:.1f} s = {events / cpu:,.0f} events per CPU-second "
          "(roughly the wall-clock rate when a core is free)")
    return {"drain_events_per_s": round(rate, 1), "drain_events_per_cpu_s": round(events / cpu, 1),
            "lost": lost}


def bench_apply(workdir: Path, total: int, batch: int = 1000, workers: int = 1,
                window: int = RECEIVE_MAXIMUM) -> dict[str, float]:
    key = Ed25519PrivateKey.generate()
    cache = ManifestCache.open(workdir / "cache.db", check_same_thread=False)
    records = Records.open(workdir / "records-apply.db", check_same_thread=False)
    topics = Topics(SITE)
    downlink = Downlink(topics=topics, keys=KeyRing({"central-1": key.public_key()}), cache=cache,
                        journal=SyncJournal(records, topics), lanes={"in-1"})
    items = data.generate(total)
    signed_at = datetime.now(UTC).isoformat()
    payloads = [sign_bytes({"type": "manifests", "site": SITE, "seq": n + 1, "version": n + 1,
                            "signed_at": signed_at, "items": items[s:s + batch]}, key, "central-1")
                for n, s in enumerate(range(0, total, batch))]
    del items
    # As the service runs it: paho's thread submits, the pipeline's writer applies in order, a
    # worker process prepares ahead; at most `window` unacknowledged messages, as the broker
    # sends at most Receive Maximum of them before PUBACKs come back.
    in_flight = threading.Semaphore(window)
    results: list[Handled] = []

    def on_done(handled: Handled, token: object) -> None:
        results.append(handled)
        in_flight.release()

    pipeline = DownPipeline(downlink, on_done, workers=workers)
    pipeline.start()
    pipeline.warm_up()
    pipeline.wait_ready(60)   # the worker is up, as in a daemon that has seen a batch before
    workers_cpu0 = sum(_cpu_seconds(pid) for pid in pipeline.worker_pids())
    t0, cpu0 = time.perf_counter(), time.process_time()
    for payload in payloads:
        in_flight.acquire()
        pipeline.submit(topics.manifests, payload)
    pipeline.join()
    elapsed = time.perf_counter() - t0
    writer_cpu = time.process_time() - cpu0
    worker_cpu = sum(_cpu_seconds(pid) for pid in pipeline.worker_pids()) - workers_cpu0
    cpu = writer_cpu + worker_cpu
    pipeline.stop()
    assert all(r.status == "applied" for r in results) and len(results) == len(payloads), results
    applied = cache.count()
    cache.close()
    records.close()
    rate = applied / elapsed
    print(f"applied {applied:,} manifests in {len(payloads)} signed batches in {elapsed:.2f} s: "
          f"{rate:,.0f} manifests/s (verify + validate + upsert + ack; {workers} worker "
          f"process(es), {pipeline.prepared_in_worker} batches prepared there)")
    print(f"  CPU: writer process {writer_cpu:.2f} s, worker(s) {worker_cpu:.2f} s = "
          f"{applied / cpu:,.0f} manifests per CPU-second (the rate one free core would give); "
          f"with a core each: at most {applied / max(writer_cpu, worker_cpu / max(1, workers)):,.0f}/s")
    return {"apply_manifests_per_s": round(rate, 1), "apply_manifests_per_cpu_s": round(applied / cpu, 1),
            "apply_workers": workers}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (Linux /proc), for the worker's share."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--manifests", type=int, default=50_000)
    parser.add_argument("--apply-workers", type=int, default=1,
                        help="worker processes preparing batches (0: all in the writer thread)")
    parser.add_argument("--only", choices=("drain", "apply"), help="run one half only")
    args = parser.parse_args()
    drain: dict[str, float] = {}
    apply: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        workdir = Path(tmp)
        if args.only != "apply":
            drain = bench_drain(workdir, args.events)
        if args.only != "drain":
            apply = bench_apply(workdir, args.manifests, workers=args.apply_workers)
    print(json.dumps({"bench": "outbox", "events": args.events, **drain,
                      "target_drain_events_per_s": 5000, "target_lost": 0, **apply,
                      "target_apply_manifests_per_s": 20000}))


if __name__ == "__main__":
    main()
