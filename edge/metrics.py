"""Prometheus metrics of one gate-edge daemon, and the recent lane latencies the console charts.

One :class:`GateMetrics` per daemon, on its own ``CollectorRegistry``: the process-wide default
registry would mix series of every daemon, console and test built in one process. The daemon
calls the ``observe_*``/``count_*``/``set_*`` methods from its event loop and from device
threads; ``prometheus_client`` metrics are thread-safe, and the only state added here (the
latency ring buffers and the label guard) sits behind one lock held for microseconds.

Naming follows the Prometheus conventions: base units (seconds), ``_total`` on counters, one
``gate_edge_`` prefix. Labels only ever carry lane ids, device names, read kinds and reason
codes: a bounded set on a real checkpoint. Because some of them come from the outside world
(a reason a malformed MQTT message was rejected, say), each label keeps at most
``MAX_LABEL_VALUES`` distinct values; later ones are counted under ``other`` and logged once,
so a flood of garbage cannot grow the scrape without bound.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    gc_collector,
    platform_collector,
    process_collector,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, choose_encoder, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: Loop trigger to barrier-open coil on a healthy lane is ~0.1-0.3 s (target p95 ≤ 300 ms,
#: issue 9); a stuck camera or a slow relay board pushes it to seconds. Buckets are dense around
#: the target so ``histogram_quantile`` resolves the p95 to within ~50 ms, and reach 5 s.
LATENCY_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4,
                                      0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
#: The p95 target of loop trigger -> barrier-open coil (issue 9, benchmarks/bench_lane_latency).
LATENCY_TARGET_P95_SECONDS = 0.3
#: Latencies kept per lane for the console chart and the p50/p95 on the health page.
RECENT_PER_LANE = 500
#: Distinct values one label may take before further ones are folded into ``other``.
MAX_LABEL_VALUES = 200
#: Longest label value kept; longer ones are cut (a label is a name, not a message).
MAX_LABEL_LENGTH = 64
OTHER = "other"
#: Labelled children kept for fast lookup (more than a checkpoint's real label combinations).
MAX_CACHED_CHILDREN = 5000

OUTCOMES = ("open", "refer", "hold")
READ_KINDS = ("plate", "trailer_plate", "container", "seal")


@dataclass(frozen=True)
class LaneLatency:
    """p50/p95 of one lane's recent loop-to-coil latencies (the health page and its JSON)."""

    lane: str
    count: int
    p50_seconds: float | None
    p95_seconds: float | None
    max_seconds: float | None
    last_at: datetime | None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` (0..100) of an ascending, non-empty sequence.

    The same definition as numpy's default, so the console agrees with the benchmark script.
    """
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    pos = (len(sorted_values) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


class _LabelGuard:
    """Caps the distinct values of each label so garbage input cannot explode the scrape."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: dict[str, set[str]] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, label: str, value: object) -> str:
        text = str(value)
        if len(text) > MAX_LABEL_LENGTH:
            text = text[:MAX_LABEL_LENGTH]
        if not text.isprintable():
            text = "".join(c if c.isprintable() else "?" for c in text)
        seen = self._seen.get(label)
        if seen is not None and text in seen:  # the hot path: no lock for a known value
            return text
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if text in seen:
                return text
            if len(seen) < self.limit:
                seen.add(text)
                return text
            if label not in self._warned:
                self._warned.add(label)
                log.warning("metrics label %r has %d distinct values; counting %r and later "
                            "new values as %r", label, self.limit, text, OTHER)
        return OTHER


class _WithoutCreated:
    """The registry as scraped: without the ``*_created`` series of counters and histograms.

    In the classic text format they are exported as extra gauges that double the series count
    and that Prometheus has no use for (``rate()`` handles counter resets itself). Filtering
    here rather than with ``disable_created_metrics()`` keeps that process-wide switch alone.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        """Every family of the registry, minus its ``_created`` samples."""
        for family in self.registry.collect():
            if family.type in ("counter", "histogram", "summary", "gaugehistogram"):
                created = family.name + "_created"
                family.samples = [s for s in family.samples if s.name != created]
            yield family


class GateMetrics:
    """One per daemon; its own CollectorRegistry (never the global one: tests build many)."""

    def __init__(self, site: str, lanes: Iterable[str] = (),
                 registry: CollectorRegistry | None = None, *,
                 process_metrics: bool = True) -> None:
        """Create every metric, with zero-valued series for the configured lanes.

        Pre-creating the lane series lets ``rate()`` and alerts see a lane that has not yet
        served a truck (absent series look like "no data", not "zero"). ``process_metrics``
        adds the standard process_*/python_* series (RSS, CPU, open files) to this registry.
        """
        self.site = site
        self.registry = registry if registry is not None else CollectorRegistry()
        self._scraped = _WithoutCreated(self.registry)
        self._label = _LabelGuard(MAX_LABEL_VALUES)
        self._lock = threading.Lock()
        self._recent: dict[str, deque[tuple[datetime, float]]] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        reg = self.registry
        self.info = Info("gate_edge_site", "the checkpoint this daemon serves", registry=reg)
        self.info.info({"site": site})
        self.lane_latency = Histogram(
            "gate_edge_lane_decision_latency_seconds",
            "loop trigger (vehicle on the entry loop) to the barrier-open coil write, per lane",
            ["lane"], buckets=LATENCY_BUCKETS, registry=reg)
        self.decision_latency = Histogram(
            "gate_edge_trigger_to_decision_seconds",
            "loop trigger to the matcher's decision (open, refer or hold), per lane",
            ["lane"], buckets=LATENCY_BUCKETS, registry=reg)
        self.decisions = Counter(
            "gate_edge_decisions", "decisions taken, by lane and outcome (open|refer|hold)",
            ["lane", "outcome"], registry=reg)
        self.reasons = Counter(
            "gate_edge_decision_reasons",
            "reason codes on decisions that did not open automatically (one per reason)",
            ["lane", "reason"], registry=reg)
        self.reads = Counter(
            "gate_edge_reads", "reads delivered to the matcher, by lane, kind and device "
            "(kind: plate|trailer_plate|container|seal)", ["lane", "kind", "device"], registry=reg)
        self.serial_errors = Counter(
            "gate_edge_serial_errors", "errors on serial links (timeouts, CRC, garbage, unplug), "
            "by device and kind", ["device", "kind"], registry=reg)
        self.rejected_input = Counter(
            "gate_edge_rejected_inputs", "malformed input refused (MQTT, serial, IPC, frames), by "
            "interface and reason", ["interface", "reason"], registry=reg)
        self.outbox_depth = Gauge(
            "gate_edge_outbox_depth", "messages in the SQLite outbox waiting for the centre's PUBACK",
            registry=reg)
        self.cache_age = Gauge(
            "gate_edge_cache_age_seconds", "age of the signed manifest/hotlist snapshot in the "
            "local cache; NaN when none was ever received", registry=reg)
        self.cache_age.set(math.nan)
        self.device_up = Gauge(
            "gate_edge_device_up", "1 while a device (camera, seal reader, relay board) works, "
            "else 0", ["device", "kind"], registry=reg)
        self.broker_connected = Gauge(
            "gate_edge_broker_connected", "1 while the MQTT link to the centre is up, else 0",
            registry=reg)
        if process_metrics:
            process_collector.ProcessCollector(registry=reg)
            platform_collector.PlatformCollector(registry=reg)
            gc_collector.GCCollector(registry=reg)
        for lane in lanes:
            self._add_lane(lane)

    def _add_lane(self, lane: str) -> str:
        lane = self._label("lane", lane)
        self.lane_latency.labels(lane)
        self.decision_latency.labels(lane)
        for outcome in OUTCOMES:
            self.decisions.labels(lane, outcome)
        with self._lock:
            self._recent.setdefault(lane, deque(maxlen=RECENT_PER_LANE))
        return lane

    def _child(self, metric: Any, guards: tuple[str, ...], *values: str) -> Any:
        """The labelled child of ``metric``, its label values passed through the guard.

        Children are cached by the raw values: the guard's answer for a value never changes
        (its sets only grow), and the cache halves the cost of the per-truck calls. The cache
        is bounded like the labels, so garbage values cannot grow it either.
        """
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*(self._label(g, v) for g, v in zip(guards, values, strict=True)))
            if len(self._children) < MAX_CACHED_CHILDREN:
                self._children[key] = child
        return child

    @staticmethod
    def _seconds(what: str, lane: str, seconds: float) -> float | None:
        """A duration fit to observe, or None (logged): a bad clock must not poison the sums."""
        try:
            value = float(seconds)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value < 0:
            log.warning("%s of lane %s is %r; not recorded", what, lane, seconds,
                        extra={"lane": lane})
            return None
        return value

    # -- lanes and decisions ----------------------------------------------------------------------
    def observe_lane_latency(self, lane: str, seconds: float, *, at: datetime | None = None
                             ) -> None:
        """Loop trigger -> barrier-open coil for one truck; also kept for the console chart."""
        value = self._seconds("loop-to-coil latency", lane, seconds)
        if value is None:
            return
        lane = self._label("lane", lane)
        self._child(self.lane_latency, ("lane",), lane).observe(value)
        when = at or datetime.now(UTC)
        with self._lock:
            ring = self._recent.get(lane)
            if ring is None:
                ring = self._recent[lane] = deque(maxlen=RECENT_PER_LANE)
            ring.append((when, value))

    def observe_decision(self, lane: str, outcome: str, reasons: Iterable[str],
                         seconds: float | None = None) -> None:
        """Count a decision and its reasons; ``seconds`` is loop trigger -> decision, if known."""
        self._child(self.decisions, ("lane", "outcome"), lane, outcome).inc()
        for reason in reasons:
            self._child(self.reasons, ("lane", "reason"), lane, reason).inc()
        if seconds is not None:
            value = self._seconds("trigger-to-decision time", lane, seconds)
            if value is not None:
                self._child(self.decision_latency, ("lane",), lane).observe(value)

    def count_read(self, lane: str, kind: str, device: str) -> None:
        """One read delivered (kind: plate|trailer_plate|container|seal)."""
        self._child(self.reads, ("lane", "kind", "device"), lane, kind, device).inc()

    # -- devices, link, storage -------------------------------------------------------------------
    def count_serial_error(self, device: str, kind: str) -> None:
        """One error on a serial link (kind e.g. timeout, crc, garbage, unplugged)."""
        self._child(self.serial_errors, ("device", "error_kind"), device, kind).inc()

    def set_outbox_depth(self, rows: int) -> None:
        """Messages waiting in the outbox (alert when it keeps growing: the centre is away)."""
        self.outbox_depth.set(max(0, int(rows)))

    def set_cache_age(self, seconds: float | None) -> None:
        """Age of the signed snapshot; None (never synced) exports NaN, not a misleading 0."""
        self.cache_age.set(math.nan if seconds is None else float(seconds))

    def set_device_up(self, name: str, kind: str, up: bool) -> None:
        """A camera, seal reader or relay board went up or down."""
        self._child(self.device_up, ("device", "device_kind"), name, kind).set(1 if up else 0)

    def set_broker_connected(self, connected: bool) -> None:
        """The MQTT link came up (CONNACK success) or went down."""
        self.broker_connected.set(1 if connected else 0)

    def count_rejected_input(self, interface: str, reason: str) -> None:
        """Malformed MQTT message, serial frame, IPC line or camera frame that was refused."""
        self._child(self.rejected_input, ("interface", "rejected_reason"), interface,
                    reason).inc()

    def register(self, collector: Collector) -> None:
        """Add a scrape-time collector (e.g. ``edge.seals.metrics.SealReaderCollector``)."""
        self.registry.register(collector)

    # -- the console's view -----------------------------------------------------------------------
    def lanes(self) -> list[str]:
        """Lanes known so far (configured or observed), in first-seen order."""
        with self._lock:
            return list(self._recent)

    def recent_latencies(self, lane: str | None = None) -> list[tuple[datetime, str, float]]:
        """The last ``RECENT_PER_LANE`` loop-to-coil latencies per lane, oldest first."""
        with self._lock:
            if lane is not None:
                ring = self._recent.get(lane)
                return [(at, lane, s) for at, s in ring] if ring else []
            points = [(at, name, s) for name, ring in self._recent.items() for at, s in ring]
        points.sort(key=lambda p: p[0])
        return points

    def latency_summary(self) -> list[LaneLatency]:
        """p50/p95/max of each lane's recent latencies (None where a lane has none yet)."""
        with self._lock:
            copies = {lane: list(ring) for lane, ring in self._recent.items()}
        out = []
        for lane, points in copies.items():
            values = sorted(s for _, s in points)
            if not values:
                out.append(LaneLatency(lane, 0, None, None, None, None))
                continue
            out.append(LaneLatency(lane, len(values), percentile(values, 50),
                                   percentile(values, 95), values[-1],
                                   max(at for at, _ in points)))
        return out

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """(body, content type) for ``GET /metrics``.

        Without ``accept``: the Prometheus text format 0.0.4 (``generate_latest``), which every
        Prometheus-compatible scraper reads. With the scraper's Accept header, a scraper that
        asks for OpenMetrics gets OpenMetrics.
        """
        if accept:
            encoder, content_type = choose_encoder(accept)
            return encoder(self._scraped), content_type
        return generate_latest(self._scraped), CONTENT_TYPE_LATEST
