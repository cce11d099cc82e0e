"""Input files that are hostile rather than mistyped: the commands name the problem, keep the
good records and never print a traceback (docs/robustness.md)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from edge.cli import app
from edge.store.cache import ManifestCache
from tests.conftest import REPO
from tests.factories import manifest

runner = CliRunner()
DEMO_CONFIG = REPO / "config" / "demo" / "gate-edge.demo.yaml"
DEEP = "[" * 20000 + "]" * 20000


def test_deeply_nested_manifest_line_is_rejected_alone(tmp_path: Path) -> None:
    good = manifest(declaration_no="105123456780").model_dump_json()
    other = manifest(declaration_no="105123456781").model_dump_json()
    src = tmp_path / "m.jsonl"
    src.write_text("\n".join([good, DEEP, '{"declaration_no": ' + DEEP + "}", other]) + "\n",
                   encoding="utf-8")
    db = tmp_path / "cache.db"
    result = runner.invoke(app, ["manifests", "import", str(src), "--cache", str(db), "-q"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 3 and "2 new" in result.output and "2 rejected" in result.output
    assert "line 2: bad JSON" in result.output and "line 3: bad JSON" in result.output
    cache = ManifestCache.open(db)
    try:
        assert cache.count() == 2
    finally:
        cache.close()


def test_empty_and_binary_manifest_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    r = runner.invoke(app, ["manifests", "import", str(empty), "--cache", str(tmp_path / "c.db")])
    assert isinstance(r.exception, SystemExit) or r.exception is None, r.exception
    assert r.exit_code == 0 and "0 record(s) read, 0 new" in r.output, r.output
    binary = tmp_path / "photo.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    r = runner.invoke(app, ["manifests", "import", str(binary), "--cache", str(tmp_path / "c.db")])
    assert isinstance(r.exception, SystemExit) or r.exception is None, r.exception
    assert r.exit_code != 0 and "line 1" in r.output and "not UTF-8" in r.output, r.output


def test_match_refuses_deep_nesting_with_a_message(tmp_path: Path) -> None:
    src = tmp_path / "reads.json"
    src.write_text(DEEP + "\n", encoding="utf-8")
    r = runner.invoke(app, ["match", str(src), "-c", str(DEMO_CONFIG)])
    assert isinstance(r.exception, SystemExit), r.exception
    assert r.exit_code == 2 and "line 1: bad JSON: nested too deeply" in r.output
