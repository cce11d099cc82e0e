"""The manifest cache: pre-cleared declarations and the hotlist, indexed for the matcher.

Every key the matcher looks up (plate, folded plate, container, seal, declaration number,
hotlist value) has its own index, so a lookup is a handful of B-tree probes (bench:
``benchmarks/bench_manifest_cache.py``). Upserts are keyed by declaration number and only a
newer ``version`` replaces a row: an old batch replayed late never overwrites newer data.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import sqlite_utils

from edge.domain.model import (
    Channel,
    DeclaredSeal,
    HotlistEntry,
    HotlistKind,
    Manifest,
    ManifestStatus,
    SealType,
    Trader,
    normalize_hotlist_value,
)
from edge.domain.plates import fold_confusables
from edge.store.db import Migration, connect, from_iso, iso, migrate

log = logging.getLogger(__name__)

_CHUNK = 500  # keeps IN (...) lists under SQLite's host-parameter limit


# One secondary index per key the matcher looks up. Kept apart from the table definitions so a
# bulk load into an empty cache can build them once, sorted, after the data is in.
SECONDARY_INDEXES: dict[str, str] = {
    # (folded, plate) serves both the exact lookup (folded = f(p) AND plate = p) and the
    # confusable-folded lookup (folded = f(read)).
    "idx_manifest_plates_folded_plate":
        "CREATE INDEX IF NOT EXISTS idx_manifest_plates_folded_plate ON manifest_plates(folded, plate)",
    "idx_manifest_containers_container":
        "CREATE INDEX IF NOT EXISTS idx_manifest_containers_container ON manifest_containers(container)",
    "idx_manifest_seals_seal":
        "CREATE INDEX IF NOT EXISTS idx_manifest_seals_seal ON manifest_seals(seal_id)",
    "idx_manifests_mrn":
        "CREATE INDEX IF NOT EXISTS idx_manifests_mrn ON manifests(transit_mrn) "
        "WHERE transit_mrn IS NOT NULL",
}


def _m001_manifests(db: sqlite_utils.Database) -> None:
    db.executescript("""
        CREATE TABLE manifests (
            id INTEGER PRIMARY KEY,
            declaration_no TEXT NOT NULL UNIQUE,
            version INTEGER NOT NULL,
            transit_mrn TEXT,
            channel TEXT NOT NULL,
            status TEXT NOT NULL,
            tractor_plate TEXT NOT NULL,
            trailer_plate TEXT,
            trader_tax_code TEXT NOT NULL,
            trader_name TEXT NOT NULL,
            trader_aeo INTEGER NOT NULL,
            gates TEXT NOT NULL,
            lanes TEXT NOT NULL,
            valid_from TEXT NOT NULL,
            valid_until TEXT NOT NULL
        );
        -- Child tables are clustered by manifest (WITHOUT ROWID, primary key first): appends
        -- stay sequential and loading a manifest's children is one range scan. Each key the
        -- matcher looks up has one secondary index.
        CREATE TABLE manifest_plates (
            manifest_id INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            plate TEXT NOT NULL,
            folded TEXT NOT NULL,
            PRIMARY KEY (manifest_id, role)
        ) WITHOUT ROWID;
        CREATE TABLE manifest_containers (
            manifest_id INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            container TEXT NOT NULL,
            PRIMARY KEY (manifest_id, position)
        ) WITHOUT ROWID;
        CREATE TABLE manifest_seals (
            manifest_id INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            seal_id TEXT NOT NULL,
            type TEXT NOT NULL,
            container TEXT,
            PRIMARY KEY (manifest_id, position)
        ) WITHOUT ROWID;
    """)
    for sql in SECONDARY_INDEXES.values():
        db.execute(sql)


def _m002_hotlist_meta(db: sqlite_utils.Database) -> None:
    db.executescript("""
        CREATE TABLE hotlist (
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            reason TEXT NOT NULL,
            action TEXT NOT NULL,
            expires_at TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (kind, value)
        );
        CREATE TABLE cache_meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
    """)


def _m003_hotlist_folded(db: sqlite_utils.Database) -> None:
    # Plates on the hotlist are also found through their confusable-folded form, so that an
    # OCR slip (29C8B888 for 29C88888) cannot carry a wanted truck past the gate.
    db.execute("ALTER TABLE hotlist ADD COLUMN folded TEXT")
    for value, in db.execute("SELECT value FROM hotlist WHERE kind = 'plate'").fetchall():
        db.execute("UPDATE hotlist SET folded = ? WHERE kind = 'plate' AND value = ?",
                   [fold_confusables(value), value])
    db.execute("CREATE INDEX idx_hotlist_folded ON hotlist(folded) WHERE folded IS NOT NULL")


CACHE_MIGRATIONS = (
    Migration("0001_manifests_and_keys", _m001_manifests),
    Migration("0002_hotlist_and_cache_meta", _m002_hotlist_meta),
    Migration("0003_hotlist_folded_plates", _m003_hotlist_folded),
)


@dataclass
class UpsertResult:
    """What a batch did to the cache."""

    inserted: int = 0
    replaced: int = 0
    stale: int = 0

    def __iadd__(self, other: UpsertResult) -> UpsertResult:
        self.inserted += other.inserted
        self.replaced += other.replaced
        self.stale += other.stale
        return self


class ManifestRows(NamedTuple):
    """One manifest flattened into the rows it occupies; plain tuples pickle cheaply."""

    declaration_no: str
    version: int
    manifest: tuple[Any, ...]
    plates: list[tuple[str, str, str]]
    containers: list[tuple[int, str]]
    seals: list[tuple[int, str, str, str | None]]


def manifest_rows(m: Manifest) -> ManifestRows:
    """Flatten a validated manifest into its table rows (without the row id)."""
    plates = [("tractor", m.tractor_plate, fold_confusables(m.tractor_plate))]
    if m.trailer_plate:
        plates.append(("trailer", m.trailer_plate, fold_confusables(m.trailer_plate)))
    return ManifestRows(
        m.declaration_no, m.version,
        (m.declaration_no, m.version, m.transit_mrn, m.channel.value, m.status.value,
         m.tractor_plate, m.trailer_plate, m.trader.tax_code, m.trader.name, int(m.trader.aeo),
         _json_list(m.gates), _json_list(m.lanes), iso(m.valid_from), iso(m.valid_until)),
        plates,
        list(enumerate(m.containers)),
        [(i, s.seal_id, s.type.value, s.container) for i, s in enumerate(m.seals)],
    )


def _json_list(values: tuple[str, ...]) -> str:
    return json.dumps(list(values)) if values else "[]"


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class ManifestCache:
    """Read/write access to ``cache.db``; one instance per thread."""

    def __init__(self, db: sqlite_utils.Database, path: Path | None = None) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path | str, *, readonly: bool = False,
             check_same_thread: bool = True) -> ManifestCache:
        """Open (creating and migrating if needed) the cache file."""
        path = Path(path)
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        db = connect(path, "NORMAL", readonly=readonly, check_same_thread=check_same_thread)
        cache = cls(db, path)
        if not readonly:
            migrate(db, path, CACHE_MIGRATIONS)
            cache.ensure_indexes()
        return cache

    def ensure_indexes(self) -> list[str]:
        """Create any missing secondary index (after a bulk load that was interrupted)."""
        present = {r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()}
        missing = [name for name in SECONDARY_INDEXES if name not in present]
        if missing:
            started = time.perf_counter()
            with self.db.atomic():
                for name in missing:
                    self.db.execute(SECONDARY_INDEXES[name])
            log.info("built cache index(es) %s in %.1f s", ", ".join(missing),
                     time.perf_counter() - started)
        return missing

    @contextmanager
    def bulk_load(self) -> Iterator[bool]:
        """Load an *empty* cache without its secondary indexes, then build them sorted.

        Inserting a million random plate/container/seal keys into live B-trees costs more
        than the rest of the import; building each index once at the end is a sort. Yields
        whether the fast path is taken (only when the cache is empty). If the process dies
        before the end, :meth:`open` rebuilds the missing indexes.
        """
        if self.count() > 0:
            yield False
            return
        with self.db.atomic():
            for name in SECONDARY_INDEXES:
                self.db.execute(f"DROP INDEX IF EXISTS {name}")
        try:
            yield True
        finally:
            self.ensure_indexes()

    def close(self) -> None:
        """Close the connection (checkpointing the WAL where possible)."""
        self.db.close()

    # -- writing ---------------------------------------------------------------------------
    def upsert_manifests(self, manifests: Sequence[Manifest]) -> UpsertResult:
        """Insert or replace by (declaration_no, version) in one transaction."""
        with self.db.atomic():
            return self._upsert(manifests)

    def upsert_rows(self, batch: Sequence[ManifestRows]) -> UpsertResult:
        """Like :meth:`upsert_manifests` for rows flattened by import workers."""
        with self.db.atomic():
            return self.write_rows(batch)

    def replace_all(self, manifests: Iterable[Manifest | ManifestRows],
                    meta: dict[str, str] | None = None) -> int:
        """Swap the whole cache for a snapshot, atomically: readers see old or new, never half.

        Takes manifests or rows already flattened by :func:`manifest_rows` (in a worker process).
        """
        count = 0
        with self.db.atomic():
            for table in ("manifest_plates", "manifest_containers", "manifest_seals", "manifests"):
                self.db.execute(f"DELETE FROM {table}")
            batch: list[Manifest | ManifestRows] = []
            for manifest in manifests:
                batch.append(manifest)
                if len(batch) >= 5000:
                    count += self._upsert(batch).inserted
                    batch = []
            if batch:
                count += self._upsert(batch).inserted
            for key, value in (meta or {}).items():
                self._set_meta(key, value)
        return count

    def _upsert(self, manifests: Sequence[Manifest | ManifestRows]) -> UpsertResult:
        return self.write_rows([m if isinstance(m, ManifestRows) else manifest_rows(m)
                                for m in manifests])

    def write_rows(self, batch: Sequence[ManifestRows]) -> UpsertResult:
        """Upsert pre-flattened manifests (see :func:`manifest_rows`); caller owns the transaction.

        Import workers flatten and validate in other processes; this is the single writer.
        """
        result = UpsertResult()
        # Within one batch the highest version of a declaration wins.
        latest: dict[str, ManifestRows] = {}
        for rows in batch:
            seen = latest.get(rows.declaration_no)
            if seen is not None:
                result.stale += 1  # one of the two is superseded within the batch
            if seen is None or rows.version > seen.version:
                latest[rows.declaration_no] = rows
        existing: dict[str, tuple[int, int]] = {}
        for chunk in _chunks(list(latest)):
            marks = ",".join("?" * len(chunk))
            found = self.db.execute(
                f"SELECT declaration_no, id, version FROM manifests WHERE declaration_no IN ({marks})",
                list(chunk),
            ).fetchall()
            existing.update({row[0]: (row[1], row[2]) for row in found})
        to_write: list[ManifestRows] = []
        replaced_ids: list[int] = []
        for decl, rows in latest.items():
            prior = existing.get(decl)
            if prior is None:
                to_write.append(rows)
                result.inserted += 1
            elif rows.version > prior[1]:
                to_write.append(rows)
                replaced_ids.append(prior[0])
                result.replaced += 1
            else:
                result.stale += 1
        for chunk in _chunks(replaced_ids):
            marks = ",".join("?" * len(chunk))
            for table in ("manifest_plates", "manifest_containers", "manifest_seals"):
                self.db.execute(f"DELETE FROM {table} WHERE manifest_id IN ({marks})", list(chunk))
        if not to_write:
            return result
        conn = self.db.conn
        conn.executemany(
            """INSERT INTO manifests (declaration_no, version, transit_mrn, channel, status,
                   tractor_plate, trailer_plate, trader_tax_code, trader_name, trader_aeo,
                   gates, lanes, valid_from, valid_until)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT(declaration_no) DO UPDATE SET
                   version=excluded.version, transit_mrn=excluded.transit_mrn,
                   channel=excluded.channel, status=excluded.status,
                   tractor_plate=excluded.tractor_plate, trailer_plate=excluded.trailer_plate,
                   trader_tax_code=excluded.trader_tax_code, trader_name=excluded.trader_name,
                   trader_aeo=excluded.trader_aeo, gates=excluded.gates, lanes=excluded.lanes,
                   valid_from=excluded.valid_from, valid_until=excluded.valid_until
               WHERE excluded.version > manifests.version""",
            [rows.manifest for rows in to_write],
        )
        ids: dict[str, int] = {}
        for chunk in _chunks([rows.declaration_no for rows in to_write]):
            marks = ",".join("?" * len(chunk))
            found = self.db.execute(
                f"SELECT declaration_no, id FROM manifests WHERE declaration_no IN ({marks})",
                list(chunk),
            ).fetchall()
            ids.update(dict(found))
        plates: list[tuple[int, str, str, str]] = []
        containers: list[tuple[int, int, str]] = []
        seals: list[tuple[int, int, str, str, str | None]] = []
        for rows in to_write:
            mid = ids[rows.declaration_no]
            plates.extend((mid, *p) for p in rows.plates)
            containers.extend((mid, *c) for c in rows.containers)
            seals.extend((mid, *x) for x in rows.seals)
        conn.executemany("INSERT INTO manifest_plates VALUES (?,?,?,?)", plates)
        conn.executemany("INSERT INTO manifest_containers VALUES (?,?,?)", containers)
        conn.executemany("INSERT INTO manifest_seals VALUES (?,?,?,?,?)", seals)
        return result

    def upsert_hotlist(self, entries: Iterable[HotlistEntry], now: datetime) -> int:
        """Add or update hotlist entries (``ON CONFLICT DO UPDATE``, never a delete+insert)."""
        rows = [(e.kind.value, e.value, e.reason, e.action,
                 iso(e.expires_at) if e.expires_at else None, iso(now),
                 fold_confusables(e.value) if e.kind is HotlistKind.PLATE else None)
                for e in entries]
        with self.db.atomic():
            self.db.conn.executemany(
                """INSERT INTO hotlist (kind, value, reason, action, expires_at, updated_at, folded)
                   VALUES (?,?,?,?,?,?,?)
                   ON CONFLICT(kind, value) DO UPDATE SET reason=excluded.reason,
                       action=excluded.action, expires_at=excluded.expires_at,
                       updated_at=excluded.updated_at, folded=excluded.folded""",
                rows,
            )
        return len(rows)

    def remove_hotlist(self, kind: HotlistKind, value: str) -> bool:
        """Delete one entry; True if it existed."""
        with self.db.atomic():
            cur = self.db.execute("DELETE FROM hotlist WHERE kind=? AND value=?",
                                  [kind.value, normalize_hotlist_value(kind, value)])
        return cur.rowcount > 0

    def set_meta(self, **values: str) -> None:
        """Record cache metadata (seq, version, signed_at, source) in one transaction."""
        with self.db.atomic():
            for key, value in values.items():
                self._set_meta(key, value)

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO cache_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            [key, value],
        )

    # -- reading ---------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        """All cache metadata."""
        return dict(self.db.execute("SELECT key, value FROM cache_meta").fetchall())

    def signed_at(self) -> datetime | None:
        """When the newest applied batch was signed by the centre (cache freshness)."""
        value = self.meta().get("signed_at")
        return from_iso(value) if value else None

    def count(self) -> int:
        """Number of manifests held."""
        return int(self.db.execute("SELECT count(*) FROM manifests").fetchone()[0])

    def _load(self, ids: Iterable[int]) -> list[Manifest]:
        ids = list(dict.fromkeys(ids))
        loaded = self._load_map(ids)
        return [loaded[i] for i in ids if i in loaded]

    def _load_map(self, ids: list[int]) -> dict[int, Manifest]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT * FROM manifests WHERE id IN ({marks})", ids).fetchall()
        containers: dict[int, list[str]] = {i: [] for i in ids}
        for mid, container in self.db.execute(
            f"SELECT manifest_id, container FROM manifest_containers WHERE manifest_id IN ({marks})"
            " ORDER BY manifest_id, position", ids,
        ).fetchall():
            containers[mid].append(container)
        seals: dict[int, list[DeclaredSeal]] = {i: [] for i in ids}
        for mid, seal_id, kind, container in self.db.execute(
            f"SELECT manifest_id, seal_id, type, container FROM manifest_seals"
            f" WHERE manifest_id IN ({marks}) ORDER BY manifest_id, position", ids,
        ).fetchall():
            seals[mid].append(DeclaredSeal.model_construct(seal_id=seal_id, type=SealType(kind),
                                                           container=container))
        out: dict[int, Manifest] = {}
        for row in rows:
            (mid, decl, version, mrn, channel, status, tractor, trailer, tax, name, aeo, gates,
             lanes, valid_from, valid_until) = row
            # Rows were validated on the way in; constructing without re-validation keeps
            # lookups well under the 1 ms p99 budget.
            out[mid] = Manifest.model_construct(
                declaration_no=decl, version=version, transit_mrn=mrn, channel=Channel(channel),
                status=ManifestStatus(status), tractor_plate=tractor, trailer_plate=trailer,
                containers=tuple(containers[mid]), seals=tuple(seals[mid]),
                trader=Trader.model_construct(tax_code=tax, name=name, aeo=bool(aeo)),
                gates=tuple(json.loads(gates)), lanes=tuple(json.loads(lanes)),
                valid_from=from_iso(valid_from), valid_until=from_iso(valid_until),
            )
        return out

    def by_declaration(self, declaration_no: str) -> Manifest | None:
        """The manifest with this declaration number, or the only one with this transit MRN."""
        found = self.by_reference(declaration_no)
        return found[0] if len(found) == 1 else None

    def by_reference(self, reference: str) -> list[Manifest]:
        """Manifests with this declaration number or transit MRN (an MRN may be shared)."""
        rows = self.db.execute(
            "SELECT id FROM manifests WHERE declaration_no = ? UNION "
            "SELECT id FROM manifests WHERE transit_mrn = ?",
            [reference, reference],
        ).fetchall()
        return self._load(r[0] for r in rows)

    def by_plate(self, plate: str, role: str | None = None) -> list[Manifest]:
        """Manifests whose tractor (or trailer) plate is exactly ``plate`` (normalized)."""
        sql = "SELECT manifest_id FROM manifest_plates WHERE folded = ? AND plate = ?"
        args = [fold_confusables(plate), plate]
        if role:
            sql += " AND role = ?"
            args.append(role)
        return self._load(r[0] for r in self.db.execute(sql, args).fetchall())

    def by_folded_plate(self, folded: str, role: str | None = None) -> list[tuple[Manifest, str]]:
        """Manifests whose plate folds to ``folded``, with the plate that matched."""
        sql = "SELECT manifest_id, plate FROM manifest_plates WHERE folded = ?"
        args = [folded]
        if role:
            sql += " AND role = ?"
            args.append(role)
        rows = self.db.execute(sql, args).fetchall()
        loaded = self._load_map(list({mid for mid, _ in rows}))
        return [(loaded[mid], plate) for mid, plate in rows if mid in loaded]

    def by_container(self, container: str) -> list[Manifest]:
        """Manifests declaring this container."""
        rows = self.db.execute(
            "SELECT manifest_id FROM manifest_containers WHERE container = ?", [container]
        ).fetchall()
        return self._load(r[0] for r in rows)

    def by_seal(self, seal_id: str) -> list[Manifest]:
        """Manifests declaring this seal."""
        rows = self.db.execute(
            "SELECT manifest_id FROM manifest_seals WHERE seal_id = ?", [seal_id]
        ).fetchall()
        return self._load(r[0] for r in rows)

    def hotlist_hits(self, kind: HotlistKind, values: Iterable[str], now: datetime
                     ) -> list[HotlistEntry]:
        """Live hotlist entries of ``kind`` naming any of ``values``."""
        norm = list({normalize_hotlist_value(kind, v) for v in values if v})
        return self._live_hotlist("kind = ? AND value", [kind.value], norm, now)

    def hotlist_plate_folded_hits(self, folded: Iterable[str], now: datetime) -> list[HotlistEntry]:
        """Live plate entries whose folded form is one of ``folded``."""
        keys = list({f for f in folded if f})
        return self._live_hotlist("kind = 'plate' AND folded", [], keys, now)

    def _live_hotlist(self, column: str, args: list[str], keys: list[str], now: datetime
                      ) -> list[HotlistEntry]:
        """Unexpired entries where ``column IN keys`` (``column`` is a fixed SQL fragment)."""
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        rows = self.db.execute(
            f"SELECT kind, value, reason, action, expires_at FROM hotlist "
            f"WHERE {column} IN ({marks}) AND (expires_at IS NULL OR expires_at > ?)",
            [*args, *keys, iso(now)],
        ).fetchall()
        return _hotlist_entries(rows)

    def hotlist(self) -> list[HotlistEntry]:
        """Every hotlist entry, expired ones included (the console shows them greyed)."""
        rows = self.db.execute(
            "SELECT kind, value, reason, action, expires_at FROM hotlist ORDER BY kind, value"
        ).fetchall()
        return _hotlist_entries(rows)


def _hotlist_entries(rows: Iterable[tuple[Any, ...]]) -> list[HotlistEntry]:
    """Rows (kind, value, reason, action, expires_at) as entries; validated when stored."""
    return [HotlistEntry.model_construct(kind=HotlistKind(k), value=v, reason=r, action=a,
                                         expires_at=from_iso(e) if e else None)
            for k, v, r, a, e in rows]
