"""GateMetrics: what a Prometheus scraper reads back after the daemon's calls.

Every check parses the real exposition with prometheus_client's own parsers (the text format
Prometheus scrapes, and OpenMetrics for scrapers that ask for it), so names, labels, types
and values are checked as a scraper sees them.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from edge.metrics import (
    LATENCY_BUCKETS,
    MAX_LABEL_LENGTH,
    MAX_LABEL_VALUES,
    OTHER,
    RECENT_PER_LANE,
    GateMetrics,
    percentile,
)


def scrape(metrics: GateMetrics) -> dict[str, list[Sample]]:
    """Samples by family name, parsed from the text format the console serves."""
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {f.name: list(f.samples) for f in text_string_to_metric_families(body.decode())}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


def test_each_daemon_has_its_own_registry() -> None:
    a, b = GateMetrics("HN01", ["in-1"]), GateMetrics("HN01", ["in-1"])  # same names: no clash
    a.observe_decision("in-1", "open", [])
    assert value(scrape(a)["gate_edge_decisions"], "gate_edge_decisions_total",
                 lane="in-1", outcome="open") == 1
    assert value(scrape(b)["gate_edge_decisions"], "gate_edge_decisions_total",
                 lane="in-1", outcome="open") == 0
    registry = CollectorRegistry()
    c = GateMetrics("LC02", registry=registry, process_metrics=False)
    assert c.registry is registry
    assert registry.get_sample_value("gate_edge_site_info", {"site": "LC02"}) == 1


def test_configured_lanes_export_zero_series_before_any_truck() -> None:
    m = GateMetrics("HN01", ["in-1", "out-1"])
    fams = scrape(m)
    for lane in ("in-1", "out-1"):
        assert value(fams["gate_edge_lane_decision_latency_seconds"],
                     "gate_edge_lane_decision_latency_seconds_count", lane=lane) == 0
        for outcome in ("open", "refer", "hold"):
            assert value(fams["gate_edge_decisions"], "gate_edge_decisions_total",
                         lane=lane, outcome=outcome) == 0
    assert [lane for lane in m.lanes()] == ["in-1", "out-1"]


def test_lane_latency_histogram_buckets_sum_and_count() -> None:
    m = GateMetrics("HN01", ["in-1"])
    observed = (0.012, 0.18, 0.22, 0.29, 0.31, 4.2, 7.5)
    for seconds in observed:
        m.observe_lane_latency("in-1", seconds)
    samples = scrape(m)["gate_edge_lane_decision_latency_seconds"]
    name = "gate_edge_lane_decision_latency_seconds"
    bucket = {float(s.labels["le"]): s.value for s in samples
              if s.name == f"{name}_bucket" and s.labels["lane"] == "in-1"}
    assert sorted(bucket) == [*LATENCY_BUCKETS, math.inf]
    assert bucket[0.01] == 0 and bucket[0.025] == 1
    assert bucket[0.25] == 3 and bucket[0.3] == 4 and bucket[0.4] == 5
    assert bucket[5.0] == 6 and bucket[math.inf] == 7  # 7.5 s only in +Inf
    assert value(samples, f"{name}_count", lane="in-1") == 7
    assert value(samples, f"{name}_sum", lane="in-1") == pytest.approx(sum(observed))


def test_decisions_reasons_and_trigger_to_decision_time() -> None:
    m = GateMetrics("HN01", ["in-1", "in-2"])
    m.observe_decision("in-1", "open", [], seconds=0.08)
    m.observe_decision("in-1", "refer", ["PLATE_MISMATCH", "SEAL_MISSING"], seconds=0.15)
    m.observe_decision("in-2", "hold", ("HOTLIST_PLATE",))
    m.observe_decision("in-1", "refer", ["PLATE_MISMATCH"])
    fams = scrape(m)
    dec = fams["gate_edge_decisions"]
    assert value(dec, "gate_edge_decisions_total", lane="in-1", outcome="open") == 1
    assert value(dec, "gate_edge_decisions_total", lane="in-1", outcome="refer") == 2
    assert value(dec, "gate_edge_decisions_total", lane="in-2", outcome="hold") == 1
    reasons = fams["gate_edge_decision_reasons"]
    assert value(reasons, "gate_edge_decision_reasons_total", lane="in-1",
                 reason="PLATE_MISMATCH") == 2
    assert value(reasons, "gate_edge_decision_reasons_total", lane="in-1",
                 reason="SEAL_MISSING") == 1
    assert value(reasons, "gate_edge_decision_reasons_total", lane="in-2",
                 reason="HOTLIST_PLATE") == 1
    t2d = fams["gate_edge_trigger_to_decision_seconds"]
    assert value(t2d, "gate_edge_trigger_to_decision_seconds_count", lane="in-1") == 2
    assert value(t2d, "gate_edge_trigger_to_decision_seconds_sum", lane="in-1") == \
        pytest.approx(0.23)
    assert value(t2d, "gate_edge_trigger_to_decision_seconds_count", lane="in-2") == 0
    # the decision time is not the loop-to-coil latency: that histogram stays empty
    assert value(fams["gate_edge_lane_decision_latency_seconds"],
                 "gate_edge_lane_decision_latency_seconds_count", lane="in-1") == 0


def test_reads_serial_errors_rejected_input() -> None:
    m = GateMetrics("HN01")
    for _ in range(3):
        m.count_read("in-1", "plate", "cam-in-1-front")
    m.count_read("in-1", "container", "cam-in-1-side")
    m.count_read("in-1", "seal", "seal-in-1")
    m.count_serial_error("seal-in-1", "crc")
    m.count_serial_error("seal-in-1", "crc")
    m.count_serial_error("relay-1", "timeout")
    m.count_rejected_input("mqtt", "bad_signature")
    m.count_rejected_input("ipc", "not_json")
    fams = scrape(m)
    reads = fams["gate_edge_reads"]
    assert value(reads, "gate_edge_reads_total", lane="in-1", kind="plate",
                 device="cam-in-1-front") == 3
    assert value(reads, "gate_edge_reads_total", lane="in-1", kind="container",
                 device="cam-in-1-side") == 1
    assert value(reads, "gate_edge_reads_total", lane="in-1", kind="seal", device="seal-in-1") == 1
    errs = fams["gate_edge_serial_errors"]
    assert value(errs, "gate_edge_serial_errors_total", device="seal-in-1", kind="crc") == 2
    assert value(errs, "gate_edge_serial_errors_total", device="relay-1", kind="timeout") == 1
    rej = fams["gate_edge_rejected_inputs"]
    assert value(rej, "gate_edge_rejected_inputs_total", interface="mqtt",
                 reason="bad_signature") == 1
    assert value(rej, "gate_edge_rejected_inputs_total", interface="ipc", reason="not_json") == 1


def test_gauges_outbox_cache_devices_broker() -> None:
    m = GateMetrics("HN01")
    fams = scrape(m)
    assert math.isnan(value(fams["gate_edge_cache_age_seconds"], "gate_edge_cache_age_seconds"))
    assert value(fams["gate_edge_broker_connected"], "gate_edge_broker_connected") == 0
    m.set_outbox_depth(42)
    m.set_cache_age(125.5)
    m.set_device_up("cam-in-1-front", "camera", True)
    m.set_device_up("seal-in-1", "e-seal reader", False)
    m.set_broker_connected(True)
    fams = scrape(m)
    assert value(fams["gate_edge_outbox_depth"], "gate_edge_outbox_depth") == 42
    assert value(fams["gate_edge_cache_age_seconds"], "gate_edge_cache_age_seconds") == 125.5
    up = fams["gate_edge_device_up"]
    assert value(up, "gate_edge_device_up", device="cam-in-1-front", kind="camera") == 1
    assert value(up, "gate_edge_device_up", device="seal-in-1", kind="e-seal reader") == 0
    assert value(fams["gate_edge_broker_connected"], "gate_edge_broker_connected") == 1
    m.set_cache_age(None)  # snapshot dropped: back to "no data", not a fresh-looking 0
    m.set_device_up("seal-in-1", "e-seal reader", True)
    m.set_broker_connected(False)
    fams = scrape(m)
    assert math.isnan(value(fams["gate_edge_cache_age_seconds"], "gate_edge_cache_age_seconds"))
    assert value(fams["gate_edge_device_up"], "gate_edge_device_up", device="seal-in-1",
                 kind="e-seal reader") == 1
    assert value(fams["gate_edge_broker_connected"], "gate_edge_broker_connected") == 0


def test_types_and_help_follow_prometheus_conventions() -> None:
    body, _ = GateMetrics("HN01", ["in-1"], process_metrics=False).render()
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    expected = {
        "gate_edge_lane_decision_latency_seconds": "histogram",
        "gate_edge_trigger_to_decision_seconds": "histogram",
        "gate_edge_decisions": "counter", "gate_edge_decision_reasons": "counter",
        "gate_edge_reads": "counter", "gate_edge_serial_errors": "counter",
        "gate_edge_rejected_inputs": "counter", "gate_edge_outbox_depth": "gauge",
        "gate_edge_cache_age_seconds": "gauge", "gate_edge_device_up": "gauge",
        "gate_edge_broker_connected": "gauge", "gate_edge_site_info": "gauge",
    }
    assert {name: f.type for name, f in fams.items()} == expected
    assert all(f.documentation for f in fams.values())
    # counters are exposed with the _total suffix, and without the _created gauges that
    # would double the series count
    assert all(s.name.endswith("_total") for f in fams.values() if f.type == "counter"
               for s in f.samples)
    assert b"_created" not in body


def test_process_metrics_for_the_rss_budget() -> None:
    fams = scrape(GateMetrics("HN01"))
    rss = value(fams["process_resident_memory_bytes"], "process_resident_memory_bytes")
    assert rss > 10 * 2**20  # this very Python process, read from /proc at scrape time


def test_openmetrics_for_scrapers_that_ask() -> None:
    m = GateMetrics("HN01", ["in-1"], process_metrics=False)
    m.observe_lane_latency("in-1", 0.2)
    m.set_cache_age(None)
    body, content_type = m.render("application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert content_type.startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    fams = {f.name: f for f in om_families(text)}
    hist = fams["gate_edge_lane_decision_latency_seconds"]
    assert value(hist.samples, "gate_edge_lane_decision_latency_seconds_count", lane="in-1") == 1
    assert math.isnan(value(fams["gate_edge_cache_age_seconds"].samples,
                            "gate_edge_cache_age_seconds"))
    # a plain Prometheus Accept header still gets the classic text format
    body, content_type = m.render("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    assert content_type.startswith("text/plain") and b"# EOF" not in body


def test_bad_durations_are_dropped_not_recorded(caplog: pytest.LogCaptureFixture) -> None:
    m = GateMetrics("HN01", ["in-1"])
    with caplog.at_level(logging.WARNING, logger="edge.metrics"):
        for bad in (-0.5, math.nan, math.inf, "fast"):
            m.observe_lane_latency("in-1", bad)  # type: ignore[arg-type]
        m.observe_decision("in-1", "open", [], seconds=-1)
    fams = scrape(m)
    assert value(fams["gate_edge_lane_decision_latency_seconds"],
                 "gate_edge_lane_decision_latency_seconds_count", lane="in-1") == 0
    assert value(fams["gate_edge_trigger_to_decision_seconds"],
                 "gate_edge_trigger_to_decision_seconds_count", lane="in-1") == 0
    assert value(fams["gate_edge_decisions"], "gate_edge_decisions_total",
                 lane="in-1", outcome="open") == 1  # the decision itself still counts
    assert m.recent_latencies() == []
    assert sum("not recorded" in r.getMessage() for r in caplog.records) == 5


def test_label_values_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    m = GateMetrics("HN01", process_metrics=False)
    with caplog.at_level(logging.WARNING, logger="edge.metrics"):
        for i in range(MAX_LABEL_VALUES + 50):  # a peer sending garbage with changing reasons
            m.count_rejected_input("mqtt", f"junk-{i}")
    m.count_rejected_input("mqtt", "junk-0")  # a value seen before keeps its own series
    m.count_rejected_input("serial", "x" * 500 + "\x00\x1b")
    samples = scrape(m)["gate_edge_rejected_inputs"]
    reasons = {s.labels["reason"] for s in samples if s.name.endswith("_total")}
    assert len(reasons) == MAX_LABEL_VALUES + 1  # junk-0..junk-199 and "other"
    assert value(samples, "gate_edge_rejected_inputs_total", interface="mqtt", reason=OTHER) == 50
    assert value(samples, "gate_edge_rejected_inputs_total", interface="mqtt",
                 reason="junk-0") == 2
    assert value(samples, "gate_edge_rejected_inputs_total", interface="serial",
                 reason=OTHER) == 1  # over the cap too
    assert sum("distinct values" in r.getMessage() for r in caplog.records) == 1  # logged once
    m2 = GateMetrics("HN01", process_metrics=False)
    m2.count_serial_error("seal-1", "x" * 500)
    m2.count_serial_error("seal-1", "bad\x00kind\n")
    kinds = sorted(s.labels["kind"] for s in scrape(m2)["gate_edge_serial_errors"]
                   if s.name.endswith("_total"))
    assert kinds == ["bad?kind?", "x" * MAX_LABEL_LENGTH]


def test_recent_latencies_ring_buffer_per_lane() -> None:
    m = GateMetrics("HN01", ["in-1", "in-2"])
    t0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    for i in range(RECENT_PER_LANE + 20):
        m.observe_lane_latency("in-1", 0.1 + i / 10000, at=t0 + timedelta(seconds=10 * i))
    m.observe_lane_latency("in-2", 0.9, at=t0 + timedelta(seconds=15))
    in1 = m.recent_latencies("in-1")
    assert len(in1) == RECENT_PER_LANE  # a busy lane cannot push a quiet one out
    assert in1[0] == (t0 + timedelta(seconds=200), "in-1", pytest.approx(0.102))
    assert in1[-1][2] == pytest.approx(0.1 + (RECENT_PER_LANE + 19) / 10000)
    assert m.recent_latencies("in-2") == [(t0 + timedelta(seconds=15), "in-2", 0.9)]
    assert m.recent_latencies("nowhere") == []
    merged = m.recent_latencies()
    assert len(merged) == RECENT_PER_LANE + 1
    assert [p[0] for p in merged] == sorted(p[0] for p in merged)
    assert merged[0][1] == "in-2"  # 08:00:15 is older than every kept in-1 point
    # the histogram keeps everything; the ring only the chart's window
    assert value(scrape(m)["gate_edge_lane_decision_latency_seconds"],
                 "gate_edge_lane_decision_latency_seconds_count", lane="in-1") == RECENT_PER_LANE + 20


def test_latency_summary_percentiles() -> None:
    m = GateMetrics("HN01", ["in-1", "in-2"])
    values = [0.1 + 0.01 * i for i in range(100)]  # 0.10 .. 1.09 s
    for v in reversed(values):
        m.observe_lane_latency("in-1", v)
    summary = {s.lane: s for s in m.latency_summary()}
    s1 = summary["in-1"]
    assert s1.count == 100
    assert s1.p50_seconds == pytest.approx(0.595)   # between the 50th and 51st value
    assert s1.p95_seconds == pytest.approx(1.0405)
    assert s1.max_seconds == pytest.approx(1.09)
    assert s1.last_at is not None
    assert summary["in-2"].count == 0 and summary["in-2"].p95_seconds is None


def test_percentile_definition() -> None:
    assert percentile([1.0], 95) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_calls_from_many_threads_lose_nothing() -> None:
    m = GateMetrics("HN01", ["in-1"])
    per_thread, threads = 2000, 4

    def work(n: int) -> None:
        for i in range(per_thread):
            m.observe_lane_latency("in-1", 0.2)
            m.observe_decision("in-1", "open", [])
            m.count_read("in-1", "plate", f"cam-{n}")
            if i % 100 == 0:
                m.recent_latencies()
                m.render()

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    fams = scrape(m)
    assert value(fams["gate_edge_lane_decision_latency_seconds"],
                 "gate_edge_lane_decision_latency_seconds_count", lane="in-1") == per_thread * threads
    assert value(fams["gate_edge_decisions"], "gate_edge_decisions_total", lane="in-1",
                 outcome="open") == per_thread * threads
    assert sum(s.value for s in fams["gate_edge_reads"] if s.name == "gate_edge_reads_total") == \
        per_thread * threads
    assert len(m.recent_latencies("in-1")) == RECENT_PER_LANE
