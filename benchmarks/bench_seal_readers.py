"""Seal readers: how fast frames are parsed, and how long a read takes through a real pty.

    python benchmarks/bench_seal_readers.py [--frames 50000] [--samples 300]

Parse: a stream of e-seal frames (10 % of them preceded by line noise) decoded from memory in
4 KiB slices, once by the frame decoder alone and once by the driver down to ``SealRead``s;
likewise barcode lines. Latency: the e-seal simulator writes one frame to a pseudo-terminal,
the serial runtime (its thread, pyserial, the driver, ``call_soon_threadsafe``) delivers the
``SealRead`` on the asyncio loop; measured write -> callback. A real reader at 9600 baud needs
~45 ms just to clock a 43-byte frame out, so the pty figure is gate-edge's own share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.config.seal_readers import BarcodeScannerConfig, ESealReaderConfig
from edge.domain.model import SealRead, utcnow
from edge.seals.drivers import create_driver
from edge.seals.protocol import Frame, FrameDecoder
from edge.seals.reader import SerialSealReader
from simulators.seals import ESealReaderSimulator
from simulators.seals.wire import barcode_line, eseal_frame, eseal_payload

CHUNK = 4096


def eseal_stream(n: int, rng: random.Random) -> bytes:
    parts = []
    for i in range(n):
        if rng.random() < 0.1:
            parts.append(bytes(rng.choice(range(3, 256)) for _ in range(8)))
        parts.append(eseal_frame(eseal_payload(f"SEAL{i:07d}", "IOT"[i % 3], rdr="R1", mfr="ACME",
                                               bat=i % 101, ts="20261123T082501Z")))
    return b"".join(parts)


def best_of(runs: int, fn: Callable[[], None]) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def parse_bench(n: int) -> dict[str, float]:
    rng = random.Random(5)
    stream = eseal_stream(n, rng)
    chunks = [stream[i:i + CHUNK] for i in range(0, len(stream), CHUNK)]
    print(f"e-seal stream: {n:,} frames, {len(stream) / 1e6:.1f} MB")

    def decode_only() -> None:
        dec = FrameDecoder()
        frames = sum(1 for c in chunks for x in dec.feed(c) if isinstance(x, Frame))
        assert frames == n, frames

    cfg = ESealReaderConfig(type="eseal", name="bench", port="/dev/null")
    now = utcnow()

    def to_reads() -> None:
        driver = create_driver(cfg, "in-1")
        reads = sum(len(driver.feed(c, now).reads) for c in chunks)
        assert reads == n, reads

    lines = b"".join(barcode_line(f"EU{i:07d}", "]C0") for i in range(n))
    line_chunks = [lines[i:i + CHUNK] for i in range(0, len(lines), CHUNK)]
    bcfg = BarcodeScannerConfig(type="barcode", name="bench", port="/dev/null", strip_prefix="]C0")

    def barcode_reads() -> None:
        driver = create_driver(bcfg, "in-1")
        reads = sum(len(driver.feed(c, now).reads) for c in line_chunks)
        assert reads == n, reads

    decode_s = best_of(3, decode_only)
    reads_s = best_of(3, to_reads)
    barcode_s = best_of(3, barcode_reads)
    out = {"decode": n / decode_s, "eseal_reads": n / reads_s, "barcode_reads": n / barcode_s,
           "mb_per_s": len(stream) / decode_s / 1e6}
    print(f"frame decoder    : {out['decode']:>10,.0f} frames/s ({out['mb_per_s']:.1f} MB/s)")
    print(f"e-seal driver    : {out['eseal_reads']:>10,.0f} SealReads/s (decode + fields + pydantic)")
    print(f"barcode driver   : {out['barcode_reads']:>10,.0f} SealReads/s")
    return out


async def latency_bench(samples: int) -> list[float]:
    lat: list[float] = []
    with ESealReaderSimulator(seed=1) as sim:
        cfg = ESealReaderConfig(type="eseal", name="bench", port=sim.path)
        arrived: asyncio.Queue[tuple[float, SealRead]] = asyncio.Queue()
        reader = SerialSealReader(cfg, "in-1", lambda r: arrived.put_nowait((time.perf_counter(), r)))
        await reader.start()
        try:
            while not reader.stats.connected:
                await asyncio.sleep(0.01)
            for i in range(samples + 10):
                t0 = time.perf_counter()
                sim.read(f"LAT{i:06d}", "I", bat=90)
                t1, read = await asyncio.wait_for(arrived.get(), 5)
                assert read.seal_id == f"LAT{i:06d}"
                if i >= 10:  # warm-up
                    lat.append((t1 - t0) * 1000)
                await asyncio.sleep(0.005)
        finally:
            await reader.stop()
    return lat


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=50_000)
    ap.add_argument("--samples", type=int, default=300)
    args = ap.parse_args()
    parse = parse_bench(args.frames)
    lat = asyncio.run(latency_bench(args.samples))
    p50, p95, p99 = statistics.median(lat), percentile(lat, 95), percentile(lat, 99)
    print(f"pty read latency : n={len(lat)} p50={p50:.2f} ms p95={p95:.2f} ms p99={p99:.2f} ms "
          f"max={max(lat):.2f} ms")
    print(json.dumps({
        "bench": "seal_readers",
        "decode_frames_per_s": round(parse["decode"]), "target_decode_frames_per_s": 50000,
        "eseal_reads_per_s": round(parse["eseal_reads"]), "target_eseal_reads_per_s": 20000,
        "barcode_reads_per_s": round(parse["barcode_reads"]), "target_barcode_reads_per_s": 20000,
        "pty_latency_p50_ms": round(p50, 2), "pty_latency_p95_ms": round(p95, 2),
        "target_pty_latency_p95_ms": 20,
    }))


if __name__ == "__main__":
    main()
