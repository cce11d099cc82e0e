from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from edge.domain.model import HotlistEntry, HotlistKind
from edge.domain.plates import fold_confusables
from edge.store.cache import CACHE_MIGRATIONS, SECONDARY_INDEXES, ManifestCache
from edge.store.db import MigrationError, applied_migrations, connect, migrate
from tests.factories import NOW, manifest


def test_fresh_database_gets_every_migration_and_wal(tmp_path: Path) -> None:
    cache = ManifestCache.open(tmp_path / "cache.db")
    try:
        assert applied_migrations(cache.db) == [m.name for m in CACHE_MIGRATIONS]
        assert cache.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {r[0] for r in cache.db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        for key in ("idx_manifest_plates_folded_plate", "idx_manifest_containers_container",
                    "idx_manifest_seals_seal", "idx_manifests_mrn"):
            assert key in indexes
    finally:
        cache.close()
    assert not list(tmp_path.glob("cache.db.bak-*")), "a new file needs no backup"


def test_existing_database_is_backed_up_before_a_new_migration(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    db = connect(path, "NORMAL")
    migrate(db, path, CACHE_MIGRATIONS[:1])
    db.execute("INSERT INTO manifests (declaration_no, version, channel, status, tractor_plate, "
               "trader_tax_code, trader_name, trader_aeo, gates, lanes, valid_from, valid_until) "
               "VALUES ('105123456780',1,'green','released','51C12345','0301234567','x',0,'[]','[]',"
               "'2026-01-01','2027-01-01')")
    db.conn.commit()
    db.close()
    cache = ManifestCache.open(path)
    try:
        assert applied_migrations(cache.db) == [m.name for m in CACHE_MIGRATIONS]
        assert cache.count() == 1
    finally:
        cache.close()
    backups = list(tmp_path.glob("cache.db.bak-*"))
    assert len(backups) == 1
    with sqlite3.connect(backups[0]) as old:
        assert old.execute("SELECT count(*) FROM manifests").fetchone()[0] == 1
        assert old.execute("SELECT count(*) FROM _migrations").fetchone()[0] == 1


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    ManifestCache.open(path).close()
    db = connect(path, "NORMAL")
    db.execute("INSERT INTO _migrations (name, applied_at) VALUES ('9999_future', 'x')")
    db.conn.commit()
    db.close()
    with pytest.raises(MigrationError, match="newer version"):
        ManifestCache.open(path)


def test_upsert_newer_version_replaces_older_never(cache: ManifestCache) -> None:
    first = cache.upsert_manifests([manifest(version=2, status="cleared")])
    assert (first.inserted, first.replaced, first.stale) == (1, 0, 0)
    older = cache.upsert_manifests([manifest(version=1, status="released")])
    assert (older.inserted, older.replaced, older.stale) == (0, 0, 1)
    assert cache.by_declaration("105123456780").status == "cleared"  # type: ignore[union-attr]
    newer = cache.upsert_manifests([manifest(version=3, status="released",
                                             tractor_plate="51C-999.99", containers=[])])
    assert newer.replaced == 1
    m = cache.by_declaration("105123456780")
    assert m is not None and m.version == 3 and m.status == "released"
    # Child rows of the old version are gone: the old plate no longer finds it.
    assert cache.by_plate("51C12345") == []
    assert [x.declaration_no for x in cache.by_plate("51C99999")] == ["105123456780"]
    assert cache.by_container("MSKU1234565") == []


def test_same_batch_keeps_highest_version(cache: ManifestCache) -> None:
    result = cache.upsert_manifests([manifest(version=1), manifest(version=4), manifest(version=2)])
    assert result.inserted == 1 and result.stale == 2
    assert cache.by_declaration("105123456780").version == 4  # type: ignore[union-attr]


def test_lookups_by_every_key_round_trip_the_manifest(cache: ManifestCache) -> None:
    original = manifest(transit_mrn="26VN000012345678T2", gates=["HUUNGHI"], lanes=["in-1"])
    cache.upsert_manifests([original])
    for found in (cache.by_plate("51C12345", role="tractor"), cache.by_plate("51R01234"),
                  cache.by_container("MSKU1234565"), cache.by_seal("VNS1234567")):
        assert found == [original]
    assert cache.by_declaration("26VN000012345678T2") == original
    hits = cache.by_folded_plate(fold_confusables("51C1Z345"), role="tractor")
    assert [(m.declaration_no, plate) for m, plate in hits] == [("105123456780", "51C12345")]


def test_replace_all_swaps_atomically(cache: ManifestCache) -> None:
    cache.upsert_manifests([manifest()])
    other = manifest(declaration_no="105123456781", tractor_plate="29C73804", seals=[],
                     containers=[], trailer_plate=None)
    assert cache.replace_all([other], meta={"seq": "7"}) == 1
    assert cache.by_plate("51C12345") == []
    assert cache.count() == 1 and cache.meta()["seq"] == "7"


def test_hotlist_upsert_expiry_and_remove(cache: ManifestCache) -> None:
    entries = [
        HotlistEntry(kind=HotlistKind.PLATE, value="20C-111.22", reason="alert", action="hold"),
        HotlistEntry(kind=HotlistKind.CONTAINER, value="MSKU 123456 5", reason="x", action="refer",
                     expires_at=NOW - timedelta(hours=1)),
    ]
    cache.upsert_hotlist(entries, NOW)
    hits = cache.hotlist_hits(HotlistKind.PLATE, ["20C11122"], NOW)
    assert [(h.value, h.action) for h in hits] == [("20C11122", "hold")]
    assert cache.hotlist_hits(HotlistKind.CONTAINER, ["MSKU1234565"], NOW) == []  # expired
    # Updating an entry keeps one row (ON CONFLICT DO UPDATE).
    cache.upsert_hotlist([HotlistEntry(kind=HotlistKind.PLATE, value="20C11122", reason="new",
                                       action="refer")], NOW)
    assert [(h.reason, h.action) for h in cache.hotlist() if h.kind == "plate"] == [("new", "refer")]
    assert cache.remove_hotlist(HotlistKind.PLATE, "20C-111.22")
    assert not cache.remove_hotlist(HotlistKind.PLATE, "20C-111.22")


def test_meta_and_signed_at(cache: ManifestCache) -> None:
    assert cache.signed_at() is None
    cache.set_meta(signed_at=NOW.isoformat(), seq="3")
    assert cache.signed_at() == NOW
    assert cache.meta()["seq"] == "3"


def _index_names(cache: ManifestCache) -> set[str]:
    return {r[0] for r in cache.db.execute("SELECT name FROM sqlite_master WHERE type='index'")}


def test_bulk_load_builds_indexes_after_the_data(cache: ManifestCache) -> None:
    with cache.bulk_load() as fast:
        assert fast and "idx_manifest_plates_folded_plate" not in _index_names(cache)
        cache.upsert_manifests([manifest()])
    assert set(SECONDARY_INDEXES) <= _index_names(cache)
    assert [m.declaration_no for m in cache.by_plate("51C12345")] == ["105123456780"]
    with cache.bulk_load() as fast:  # not empty any more: indexes stay live
        assert not fast and set(SECONDARY_INDEXES) <= _index_names(cache)


def test_interrupted_bulk_load_is_healed_on_open(tmp_path: Path) -> None:
    cache = ManifestCache.open(tmp_path / "cache.db")
    with pytest.raises(KeyboardInterrupt), cache.bulk_load():
        cache.upsert_manifests([manifest()])
        # Simulate the process dying before the indexes are rebuilt:
        cache.ensure_indexes = lambda: []  # type: ignore[method-assign]
        raise KeyboardInterrupt
    cache.close()
    reopened = ManifestCache.open(tmp_path / "cache.db")
    try:
        assert set(SECONDARY_INDEXES) <= _index_names(reopened)
        assert reopened.by_container("MSKU1234565")[0].declaration_no == "105123456780"
    finally:
        reopened.close()
