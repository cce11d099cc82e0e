"""Prometheus view of the seal readers (DESIGN-NOTES §11: serial errors on ``/metrics``).

A custom collector reads each reader's ``ReaderStats`` at scrape time, so the port threads keep
plain counters and there is no second copy of the numbers to drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from edge.seals.health import AlarmKind
from edge.seals.reader import SerialSealReader


class SealReaderCollector:
    """Register with ``REGISTRY.register(SealReaderCollector(lambda: service.readers))``."""

    def __init__(self, readers: Callable[[], Sequence[SerialSealReader]]) -> None:
        self._readers = readers

    def collect(self) -> Iterable[Metric]:
        """Counters and gauges per reader, labelled with reader name and lane."""
        labels = ["reader", "lane"]
        reads = CounterMetricFamily("gate_seal_reader_reads", "seal reads delivered", labels=labels)
        errors = CounterMetricFamily("gate_seal_reader_errors", "malformed frames/lines by kind",
                                     labels=[*labels, "kind"])
        rx = CounterMetricFamily("gate_seal_reader_received_bytes", "bytes read from the port",
                                 labels=labels)
        reconnects = CounterMetricFamily("gate_seal_reader_disconnects", "times the port vanished",
                                         labels=labels)
        connected = GaugeMetricFamily("gate_seal_reader_connected", "1 while the port is open",
                                      labels=labels)
        alarm = GaugeMetricFamily("gate_seal_reader_alarm", "1 while the alarm is raised",
                                  labels=[*labels, "alarm"])
        for reader in self._readers():
            key = [reader.name, reader.lane]
            stats = reader.stats
            reads.add_metric(key, stats.reads)
            for kind, n in sorted(stats.errors.items()):
                errors.add_metric([*key, kind], n)
            rx.add_metric(key, stats.bytes_in)
            reconnects.add_metric(key, stats.disconnects)
            connected.add_metric(key, 1 if stats.connected else 0)
            for kind in AlarmKind:
                alarm.add_metric([*key, kind.value], 1 if kind in stats.alarms else 0)
        yield from (reads, errors, rx, reconnects, connected, alarm)
