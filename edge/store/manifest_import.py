"""Importing manifest files (JSON lines or CSV) into the cache, batch by batch.

Used when a checkpoint is set up, when the link to the centre is down for long and a USB stick
of declarations is the fallback, and by the benchmarks. A bad line never stops the file: it is
reported with its line number and reason, and the rest imports. Each batch is one transaction,
so nothing half-written remains if the process dies. The format is in docs/manifest-format.md.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import multiprocessing
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from edge.domain.model import Manifest
from edge.store.cache import ManifestCache, ManifestRows, UpsertResult, manifest_rows
from edge.store.db import DEFAULT_CACHE_KIB

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "declaration_no", "version", "transit_mrn", "channel", "status", "tractor_plate",
    "trailer_plate", "containers", "seals", "trader_tax_code", "trader_name", "trader_aeo",
    "gates", "lanes", "valid_from", "valid_until",
)


@dataclass(frozen=True)
class ImportIssue:
    """One rejected line."""

    line: int
    declaration_no: str | None
    reason: str


@dataclass
class ImportSummary:
    """What an import did, for the CLI and the logs."""

    read: int = 0
    written: UpsertResult = field(default_factory=UpsertResult)
    rejected: list[ImportIssue] = field(default_factory=list)

    @property
    def rejected_by_reason(self) -> Counter[str]:
        """Rejections grouped by the first words of their reason."""
        return Counter(issue.reason.split(":")[0] for issue in self.rejected)


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each bad field: ``containers: container 'X' is not ... ; status: ...``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(record)"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def _split(value: str) -> list[str]:
    return [v for v in (x.strip() for x in value.replace(";", " ").replace(",", " ").split()) if v]


def csv_row_to_record(row: dict[str, str]) -> dict[str, Any]:
    """Map a CSV row (columns CSV_COLUMNS) onto the JSON record shape."""
    missing = [c for c in ("declaration_no", "channel", "status", "tractor_plate") if not row.get(c)]
    if missing:
        raise ValueError(f"missing column value(s): {', '.join(missing)}")
    seals = []
    for item in _split(row.get("seals", "") or ""):
        seal_id, _, kind = item.partition(":")
        seals.append({"seal_id": seal_id, "type": kind or "bolt"})
    return {
        "declaration_no": row["declaration_no"],
        "version": int(row.get("version") or 1),
        "transit_mrn": row.get("transit_mrn") or None,
        "channel": row["channel"],
        "status": row["status"],
        "tractor_plate": row["tractor_plate"],
        "trailer_plate": row.get("trailer_plate") or None,
        "containers": _split(row.get("containers", "") or ""),
        "seals": seals,
        "trader": {"tax_code": row.get("trader_tax_code", ""), "name": row.get("trader_name", ""),
                   "aeo": (row.get("trader_aeo") or "").strip().lower() in {"1", "true", "yes"}},
        "gates": _split(row.get("gates", "") or ""),
        "lanes": _split(row.get("lanes", "") or ""),
        "valid_from": row.get("valid_from", ""),
        "valid_until": row.get("valid_until", ""),
    }


def parse_jsonl(stream: Iterable[str], first_line: int = 1
                ) -> Iterator[tuple[int, Manifest | ImportIssue]]:
    """Yield (line number, Manifest or the reason it was rejected); blank/# lines skipped."""
    for number, line in enumerate(stream, start=first_line):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            yield number, Manifest.model_validate_json(text)
        except ValidationError as exc:
            decl = None
            try:
                obj = json.loads(text)
                decl = str(obj.get("declaration_no")) if isinstance(obj, dict) else None
            except ValueError:
                pass
            errors = exc.errors()
            if errors and errors[0]["type"] == "json_invalid":
                yield number, ImportIssue(number, None, f"bad JSON: {errors[0]['msg']}")
            else:
                yield number, ImportIssue(number, decl, describe_validation_error(exc))


def _validate_chunk(chunk: tuple[int, list[str]]) -> tuple[int, list[ManifestRows], list[ImportIssue]]:
    """Worker side of a parallel import: validate and flatten, return plain tuples."""
    first, lines = chunk
    rows: list[ManifestRows] = []
    issues: list[ImportIssue] = []
    read = 0
    for _, item in parse_jsonl(lines, first):
        read += 1
        if isinstance(item, ImportIssue):
            issues.append(item)
        else:
            rows.append(manifest_rows(item))
    return read, rows, issues


def _line_chunks(stream: TextIO, size: int) -> Iterator[tuple[int, list[str]]]:
    first, lines = 1, []
    for line in stream:
        lines.append(line)
        if len(lines) >= size:
            yield first, lines
            first += len(lines)
            lines = []
    if lines:
        yield first, lines


def import_jsonl_parallel(cache: ManifestCache, path: Path, workers: int, batch_size: int = 5000,
                          progress: Callable[[int], None] | None = None) -> ImportSummary:
    """Validate in ``workers`` processes while this process is the single SQLite writer.

    JSON parsing and validation cost more than the inserts, so on a 2-core gate PC two
    validators keep the writer busy; batches are written in file order, one transaction each.
    """
    summary = ImportSummary()
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds SQLite
    with path.open(encoding="utf-8") as stream, \
            ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: deque[Future[tuple[int, list[ManifestRows], list[ImportIssue]]]] = deque()
        chunks = _line_chunks(stream, batch_size)

        def drain_one() -> None:
            read, rows, issues = pending.popleft().result()
            summary.read += read
            summary.rejected.extend(issues)
            for issue in issues:
                log.warning("manifest line %d rejected: %s", issue.line, issue.reason)
            if rows:
                summary.written += cache.upsert_rows(rows)
            if progress:
                progress(len(rows))

        for chunk in chunks:
            pending.append(pool.submit(_validate_chunk, chunk))
            if len(pending) >= workers * 2:
                drain_one()
        while pending:
            drain_one()
    return summary


def parse_csv(stream: TextIO) -> Iterator[tuple[int, Manifest | ImportIssue]]:
    """Yield (line number, Manifest or reason) for a CSV file with a header row."""
    reader = csv.DictReader(stream)
    unknown = set(reader.fieldnames or ()) - set(CSV_COLUMNS)
    if unknown:
        yield 1, ImportIssue(1, None, f"unknown CSV column(s) {sorted(unknown)}; "
                             f"expected {', '.join(CSV_COLUMNS)}")
        return
    for row in reader:
        number = reader.line_num
        try:
            yield number, Manifest.model_validate(csv_row_to_record(row))
        except ValidationError as exc:
            yield number, ImportIssue(number, row.get("declaration_no"),
                                      describe_validation_error(exc))
        except ValueError as exc:
            yield number, ImportIssue(number, row.get("declaration_no"), str(exc))


def detect_format(path: Path) -> str:
    """``csv`` for .csv files, otherwise JSON lines."""
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def import_records(cache: ManifestCache, records: Iterable[tuple[int, Manifest | ImportIssue]],
                   batch_size: int = 5000,
                   progress: Callable[[int], None] | None = None) -> ImportSummary:
    """Write valid manifests in batches (one transaction each); collect the rejections."""
    summary = ImportSummary()
    batch: list[Manifest] = []

    def flush() -> None:
        if batch:
            summary.written += cache.upsert_manifests(batch)
            if progress:
                progress(len(batch))
            batch.clear()

    for _, item in records:
        summary.read += 1
        if isinstance(item, ImportIssue):
            summary.rejected.append(item)
            log.warning("manifest line %d rejected: %s", item.line, item.reason)
            continue
        batch.append(item)
        if len(batch) >= batch_size:
            flush()
    flush()
    return summary


PARALLEL_MIN_BYTES = 8_000_000
BULK_CACHE_KIB = 512 * 1024


def import_file(cache: ManifestCache, path: Path, batch_size: int = 5000,
                progress: Callable[[int], None] | None = None,
                workers: int | None = None) -> ImportSummary:
    """Import a .jsonl/.json or .csv manifest file.

    Large JSON-lines files are validated by worker processes (``workers``; default: one per
    CPU, at most 4); small files and CSV are imported in this process.
    """
    large = path.stat().st_size >= PARALLEL_MIN_BYTES
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if large else 0
    if large:
        # Random plate/container/seal keys touch index pages all over the file; a bigger page
        # cache for the duration of a bulk import keeps them in memory (~2x faster at 1M).
        cache.db.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
        # Checkpoint rarely while bulk loading: a page changed by many batches is copied back
        # into the database once instead of once per 1,000 WAL pages (~10 us/manifest at 1M).
        cache.db.execute("PRAGMA wal_autocheckpoint=100000")
    try:
        if workers > 1 and detect_format(path) == "jsonl":
            return import_jsonl_parallel(cache, path, workers, batch_size, progress)
        with path.open(encoding="utf-8", newline="") as stream:
            parser = parse_csv if detect_format(path) == "csv" else parse_jsonl
            return import_records(cache, parser(stream), batch_size, progress)
    finally:
        if large:
            cache.db.execute(f"PRAGMA cache_size=-{DEFAULT_CACHE_KIB}")
            cache.db.execute("PRAGMA wal_autocheckpoint=1000")
            cache.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def import_text(cache: ManifestCache, text: str, fmt: str = "jsonl") -> ImportSummary:
    """Import from a string (tests, the API)."""
    parser = parse_csv if fmt == "csv" else parse_jsonl
    return import_records(cache, parser(io.StringIO(text)))
