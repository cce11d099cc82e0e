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
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from pydantic import ValidationError

from edge.domain.model import Manifest
from edge.domain.plates import PlateGrammar, default_grammars, plate_problems
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
        if err["type"] == "timezone_aware":
            msg += "; write the offset, e.g. 2026-11-23T08:00:00+07:00"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


_YES = {"1", "true", "yes", "y"}
_NO = {"0", "false", "no", "n", ""}


def _split(value: str) -> list[str]:
    return [v for v in (x.strip() for x in value.replace(";", " ").replace(",", " ").split()) if v]


def csv_row_to_record(row: dict[str, str]) -> dict[str, Any]:
    """Map a CSV row (columns CSV_COLUMNS) onto the JSON record shape."""
    missing = [c for c in ("declaration_no", "channel", "status", "tractor_plate") if not row.get(c)]
    if missing:
        raise ValueError(f"missing column value(s): {', '.join(missing)}")
    extra = row.get(None)  # type: ignore[call-overload]
    if extra:
        raise ValueError(f"{len(extra)} value(s) more than the header has columns: {extra!r}")
    version = (row.get("version") or "1").strip()
    if not version.isdigit():
        raise ValueError(f"version: {version!r} is not a whole number")
    aeo = (row.get("trader_aeo") or "no").strip().lower()
    if aeo not in _YES | _NO:
        raise ValueError(f"trader_aeo: {aeo!r} is not yes/no (also accepted: true/false, 1/0)")
    seals = []
    for item in _split(row.get("seals", "") or ""):
        seal_id, _, kind = item.partition(":")
        seals.append({"seal_id": seal_id, "type": kind or "bolt"})
    return {
        "declaration_no": row["declaration_no"],
        "version": int(version),
        "transit_mrn": row.get("transit_mrn") or None,
        "channel": row["channel"],
        "status": row["status"],
        "tractor_plate": row["tractor_plate"],
        "trailer_plate": row.get("trailer_plate") or None,
        "containers": _split(row.get("containers", "") or ""),
        "seals": seals,
        "trader": {"tax_code": row.get("trader_tax_code", ""), "name": row.get("trader_name", ""),
                   "aeo": aeo in _YES},
        "gates": _split(row.get("gates", "") or ""),
        "lanes": _split(row.get("lanes", "") or ""),
        "valid_from": row.get("valid_from", ""),
        "valid_until": row.get("valid_until", ""),
    }


def _checked(number: int, manifest: Manifest, grammars: Sequence[PlateGrammar]
             ) -> Manifest | ImportIssue:
    problems = plate_problems(manifest.tractor_plate, manifest.trailer_plate, grammars)
    if problems:
        return ImportIssue(number, manifest.declaration_no, "; ".join(problems))
    return manifest


def parse_jsonl(stream: Iterable[str | bytes], first_line: int = 1,
                grammars: Sequence[PlateGrammar] | None = None
                ) -> Iterator[tuple[int, Manifest | ImportIssue]]:
    """Yield (line number, Manifest or the reason it was rejected); blank/# lines skipped.

    Lines may be bytes, so that one line that is not UTF-8 is reported on its own instead of
    stopping the file.
    """
    grammars = grammars if grammars is not None else default_grammars()
    for number, raw in enumerate(stream, start=first_line):
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield number, ImportIssue(number, None, f"not UTF-8 text: byte 0x{raw[exc.start]:02x}"
                                          f" at column {exc.start + 1}; save the file as UTF-8")
                continue
        else:
            line = raw
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            yield number, _checked(number, Manifest.model_validate_json(text), grammars)
        except ValidationError as exc:
            decl = None
            try:
                obj = json.loads(text)
                decl = str(obj.get("declaration_no")) if isinstance(obj, dict) else None
            except (ValueError, RecursionError):  # pydantic reported it; only the number is lost
                pass
            errors = exc.errors()
            if errors and errors[0]["type"] == "json_invalid":
                yield number, ImportIssue(number, None, f"bad JSON: {errors[0]['msg']}")
            else:
                yield number, ImportIssue(number, decl, describe_validation_error(exc))


def _validate_chunk(chunk: tuple[int, list[bytes], Sequence[PlateGrammar]]
                    ) -> tuple[int, list[ManifestRows], list[ImportIssue]]:
    """Worker side of a parallel import: validate and flatten, return plain tuples."""
    first, lines, grammars = chunk
    rows: list[ManifestRows] = []
    issues: list[ImportIssue] = []
    read = 0
    for _, item in parse_jsonl(lines, first, grammars):
        read += 1
        if isinstance(item, ImportIssue):
            issues.append(item)
        else:
            rows.append(manifest_rows(item))
    return read, rows, issues


def _line_chunks(stream: BinaryIO, size: int) -> Iterator[tuple[int, list[bytes]]]:
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
                          progress: Callable[[int], None] | None = None,
                          grammars: Sequence[PlateGrammar] | None = None) -> ImportSummary:
    """Validate in ``workers`` processes while this process is the single SQLite writer.

    JSON parsing and validation cost more than the inserts, so on a 2-core gate PC two
    validators keep the writer busy; batches are written in file order, one transaction each.
    """
    summary = ImportSummary()
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds SQLite
    grammars = tuple(grammars if grammars is not None else default_grammars())
    with path.open("rb") as stream, \
            ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: deque[Future[tuple[int, list[ManifestRows], list[ImportIssue]]]] = deque()
        chunks = _line_chunks(stream, batch_size)

        def drain_one() -> None:
            read, rows, issues = pending.popleft().result()
            summary.read += read
            summary.rejected.extend(issues)
            for issue in issues:
                log.info("manifest line %d rejected: %s", issue.line, issue.reason)
            if rows:
                summary.written += cache.upsert_rows(rows)
            if progress:
                progress(len(rows))

        for chunk in chunks:
            pending.append(pool.submit(_validate_chunk, (*chunk, grammars)))
            if len(pending) >= workers * 2:
                drain_one()
        while pending:
            drain_one()
    return summary


def parse_csv(stream: TextIO, grammars: Sequence[PlateGrammar] | None = None
              ) -> Iterator[tuple[int, Manifest | ImportIssue]]:
    """Yield (line number, Manifest or reason) for a CSV file with a header row."""
    grammars = grammars if grammars is not None else default_grammars()
    reader = csv.DictReader(stream)
    unknown = set(reader.fieldnames or ()) - set(CSV_COLUMNS)
    if unknown:
        yield 1, ImportIssue(1, None, f"unknown CSV column(s) {sorted(unknown)}; "
                             f"expected {', '.join(CSV_COLUMNS)}")
        return
    for row in reader:
        number = reader.line_num
        try:
            yield number, _checked(number, Manifest.model_validate(csv_row_to_record(row)), grammars)
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
            log.info("manifest line %d rejected: %s", item.line, item.reason)
            continue
        batch.append(item)
        if len(batch) >= batch_size:
            flush()
    flush()
    return summary


PARALLEL_MIN_BYTES = 8_000_000
BULK_CACHE_KIB = 128 * 1024


def import_file(cache: ManifestCache, path: Path, batch_size: int = 5000,
                progress: Callable[[int], None] | None = None,
                workers: int | None = None,
                grammars: Sequence[PlateGrammar] | None = None) -> ImportSummary:
    """Import a .jsonl/.json or .csv manifest file.

    Large JSON-lines files are validated by worker processes (``workers``; default: one per
    CPU, at most 4); small files and CSV are imported in this process.
    """
    large = path.stat().st_size >= PARALLEL_MIN_BYTES
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if large else 0
    if large:
        # A bigger page cache while bulk loading keeps the pages that random keys touch (the
        # declaration-number index, or every index when the cache was not empty) in memory.
        cache.db.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
        # Checkpoint rarely while bulk loading: a page changed by many batches is copied back
        # into the database once instead of once per 1,000 WAL pages (~10 us/manifest at 1M).
        cache.db.execute("PRAGMA wal_autocheckpoint=100000")
    try:
        with cache.bulk_load() if large else nullcontext(False):
            if detect_format(path) == "csv":
                return import_records(cache, _csv_records(path, grammars), batch_size, progress)
            if workers > 1:
                return import_jsonl_parallel(cache, path, workers, batch_size, progress, grammars)
            with path.open("rb") as stream:
                return import_records(cache, parse_jsonl(stream, 1, grammars), batch_size,
                                      progress)
    finally:
        if large:
            cache.db.execute(f"PRAGMA cache_size=-{DEFAULT_CACHE_KIB}")
            cache.db.execute("PRAGMA wal_autocheckpoint=1000")
            cache.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _csv_records(path: Path, grammars: Sequence[PlateGrammar] | None
                 ) -> Iterator[tuple[int, Manifest | ImportIssue]]:
    """CSV needs the whole file as text: a file that is not UTF-8 is one issue, named by line."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        yield line, ImportIssue(line, None, f"not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                                "save the file as 'CSV UTF-8'")
        return
    yield from parse_csv(io.StringIO(text, newline=""), grammars)


def import_text(cache: ManifestCache, text: str, fmt: str = "jsonl",
                grammars: Sequence[PlateGrammar] | None = None) -> ImportSummary:
    """Import from a string (tests, the API)."""
    if fmt == "csv":
        return import_records(cache, parse_csv(io.StringIO(text), grammars))
    return import_records(cache, parse_jsonl(io.StringIO(text), 1, grammars))
