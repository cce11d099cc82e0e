"""Opening SQLite files the way gate-edge needs them: WAL, named migrations, backup first.

gate-edge keeps two files (DESIGN-NOTES §8). ``cache.db`` holds what the centre sent (manifests,
hotlist) and can be rebuilt from a snapshot, so it runs ``synchronous=NORMAL``. ``records.db``
holds evidence (passages, decisions, outbox, audit) that must survive a power cut, so it runs
``synchronous=FULL``. Migrations are named, applied in order and recorded in the same
transaction as the change, and the file is backed up before any migration touches existing data.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import sqlite_utils

log = logging.getLogger(__name__)

DEFAULT_CACHE_KIB = 64 * 1024
MigrationFn = Callable[[sqlite_utils.Database], None]


@dataclass(frozen=True)
class Migration:
    """One schema step; ``name`` is recorded and never reused."""

    name: str
    apply: MigrationFn


class MigrationError(RuntimeError):
    """A migration failed; the file is unchanged and the backup is named in the message."""


class Database(sqlite_utils.Database):
    """A sqlite-utils database whose outermost ``atomic()`` block is ``BEGIN IMMEDIATE``.

    Several connections write records.db (the lane runtime, the sync journal, the console).
    A deferred transaction that reads first (the next outbox ``seq``, the audit chain head) and
    writes second fails with SQLITE_BUSY_SNAPSHOT, without waiting, when another connection
    committed in between; taking the write lock up front makes it wait its turn instead.
    """

    readonly = False

    @contextlib.contextmanager
    def atomic(self) -> Iterator[sqlite_utils.Database]:
        """One transaction holding the write lock from its start; nested blocks: savepoints."""
        if self.conn.in_transaction or self.readonly:
            with super().atomic() as db:
                yield db
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise


def connect(
    path: Path | str,
    synchronous: Literal["NORMAL", "FULL"],
    *,
    readonly: bool = False,
    check_same_thread: bool = True,
) -> sqlite_utils.Database:
    """Open one connection with the pragmas every gate-edge connection needs."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10,
                               check_same_thread=check_same_thread)
    else:
        conn = sqlite3.connect(str(path), timeout=10, check_same_thread=check_same_thread)
    db = Database(conn)
    db.readonly = readonly
    if not readonly:
        db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=10000")
    # 64 MiB of page cache: index pages of a million-manifest cache stay in memory.
    db.execute(f"PRAGMA cache_size=-{DEFAULT_CACHE_KIB}")
    db.execute("PRAGMA temp_store=MEMORY")
    return db


def applied_migrations(db: sqlite_utils.Database) -> list[str]:
    """Names of migrations already applied, in order."""
    if "_migrations" not in db.table_names():
        return []
    return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY id").fetchall()]


def backup(db: sqlite_utils.Database, path: Path) -> Path:
    """Online backup next to the file (sqlite3 backup API: consistent even under WAL)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.bak-{stamp}")
    dest = sqlite3.connect(str(target))
    try:
        db.conn.backup(dest)
    finally:
        dest.close()
    return target


def migrate(db: sqlite_utils.Database, path: Path | None, migrations: Sequence[Migration]) -> list[str]:
    """Apply the pending migrations in order; return the names applied.

    Each migration and its ``_migrations`` row commit together, so a crash mid-way leaves the
    file at the last complete step. An existing file with data is backed up first.
    """
    with db.atomic():
        db.execute(
            "CREATE TABLE IF NOT EXISTS _migrations ("
            "id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)"
        )
    done = set(applied_migrations(db))
    known = {m.name for m in migrations}
    unknown = done - known
    if unknown:
        raise MigrationError(
            f"{path}: database has migrations this gate-edge does not know ({sorted(unknown)}); "
            "it was written by a newer version — upgrade gate-edge or restore a backup"
        )
    pending = [m for m in migrations if m.name not in done]
    if not pending:
        return []
    backup_path: Path | None = None
    if path is not None and done:
        backup_path = backup(db, path)
        log.info("backed up %s to %s before migrating", path, backup_path)
    for migration in pending:
        try:
            with db.atomic():
                migration.apply(db)
                db.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                    [migration.name, datetime.now(UTC).isoformat()],
                )
        except sqlite3.Error as exc:
            where = f" (backup: {backup_path})" if backup_path else ""
            raise MigrationError(f"{path}: migration {migration.name} failed: {exc}{where}") from exc
        log.info("applied migration %s to %s", migration.name, path)
    return [m.name for m in pending]


def iso(ts: datetime) -> str:
    """Timestamps are stored as UTC ISO-8601 text so they sort and compare as strings."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime; gate-edge stores aware timestamps only")
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def from_iso(text: str) -> datetime:
    """Inverse of :func:`iso`."""
    return datetime.fromisoformat(text)
