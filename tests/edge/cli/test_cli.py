from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from edge.cli import app
from edge.store.cache import ManifestCache
from tests.conftest import REPO
from tests.factories import manifest

runner = CliRunner()
DEMO = REPO / "config" / "demo"


def good_line(decl: str = "105123456780", **over: object) -> str:
    return manifest(declaration_no=decl, **over).model_dump_json()


def test_help_teaches_with_examples() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "gate-edge demo" in result.output
    result = runner.invoke(app, ["manifests", "import", "--help"])
    assert "Examples" in result.output and "--signed-at" in result.output


def test_import_reports_bad_lines_and_imports_the_rest(tmp_path: Path) -> None:
    bad_container = json.loads(good_line("105123456782"))
    bad_container["containers"] = ["CSQU3054384"]
    bad_plate = json.loads(good_line("105123456783"))
    bad_plate["tractor_plate"] = "--"
    missing = json.loads(good_line("105123456784"))
    del missing["status"]
    lines = [
        good_line(),
        "{not json",
        json.dumps(bad_container),
        json.dumps(bad_plate),
        json.dumps(missing),
        good_line("105123456781", tractor_plate="29C73804"),
    ]
    src = tmp_path / "m.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    db = tmp_path / "cache.db"
    result = runner.invoke(app, ["manifests", "import", str(src), "--cache", str(db), "-q"])
    assert result.exit_code == 3
    out = result.output
    assert "6 record(s) read, 2 new" in out and "4 rejected" in out
    assert "line 2: bad JSON" in out
    assert "line 3 105123456782: containers: container 'CSQU3054384' is not a valid ISO 6346 " \
           "number (check digit should be 3)" in out
    assert "line 4 105123456783: tractor_plate: plate has no letters or digits" in out
    assert "line 5 105123456784: status: Field required" in out
    cache = ManifestCache.open(db)
    try:
        assert cache.count() == 2
    finally:
        cache.close()


def test_import_csv(tmp_path: Path) -> None:
    src = tmp_path / "m.csv"
    src.write_text(
        "declaration_no,version,channel,status,tractor_plate,trailer_plate,containers,seals,"
        "trader_tax_code,trader_name,trader_aeo,valid_from,valid_until\n"
        "105123456780,1,green,released,51C-123.45,51R-012.34,MSKU1234565,VNS1234567:bolt,"
        "0301234567,Sai Gon Trans,yes,2026-01-01T00:00:00+07:00,2027-01-01T00:00:00+07:00\n"
        "105123456781,1,green,released,51C-123.46,,TGHU7654321,,0301234567,X,no,"
        "2026-01-01T00:00:00+07:00,2027-01-01T00:00:00+07:00\n", encoding="utf-8")
    db = tmp_path / "cache.db"
    result = runner.invoke(app, ["manifests", "import", str(src), "--cache", str(db)])
    assert result.exit_code == 3 and "1 new" in result.output
    assert "line 3 105123456781: containers" in result.output
    result = runner.invoke(app, ["manifests", "show", "105123456780", "--cache", str(db)])
    shown = json.loads(result.output)
    assert shown["trader"]["aeo"] is True and shown["seals"][0]["seal_id"] == "VNS1234567"


def test_import_csv_with_unknown_column(tmp_path: Path) -> None:
    src = tmp_path / "m.csv"
    src.write_text("declaration_no,colour\n105123456780,red\n", encoding="utf-8")
    result = runner.invoke(app, ["manifests", "import", str(src), "--cache", str(tmp_path / "c.db")])
    assert result.exit_code == 3 and "unknown CSV column(s) ['colour']" in result.output


def test_match_prints_decision_json(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    runner.invoke(app, ["manifests", "import", str(DEMO / "manifests.jsonl"), "--cache", str(db),
                        "--signed-at", "2026-11-23T06:00:00+07:00"])
    reads = {"lane": "in-1", "at": "2026-11-23T08:00:00+07:00",
             "tractor": [{"text": "51C12345", "confidence": 0.97}],
             "trailer": [{"text": "51R01234", "confidence": 0.95}],
             "containers": [{"text": "MSKU1234565"}],
             "seals": [{"reader": "bolt-1", "seal_id": "VNS1234567", "status": "intact"}]}
    result = runner.invoke(app, ["match", "-", "-c", str(DEMO / "gate-edge.demo.yaml"),
                                 "--cache", str(db)], input=json.dumps(reads))
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert decision["outcome"] == "open" and decision["declaration_no"] == "105123456780"
    bad = runner.invoke(app, ["match", "-", "-c", str(DEMO / "gate-edge.demo.yaml"),
                              "--cache", str(db)], input='{"lane": "in-1", "tractor": [{"text": 5}]}')
    assert bad.exit_code == 2 and "reads rejected: tractor.0" in bad.output


def test_validate_config_exit_codes(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["validate-config", str(REPO / "config" / "gate-edge.example.yaml")])
    assert ok.exit_code == 0 and "OK" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: {code: X}\n", encoding="utf-8")
    result = runner.invoke(app, ["validate-config", str(bad)])
    assert result.exit_code == 1 and "bad.yaml:1:8: site.code" in result.output


def test_demo_runs_end_to_end_as_a_user_would() -> None:
    proc = subprocess.run([sys.executable, "-m", "edge", "demo"], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "audit chain: 10 record(s), verified" in proc.stdout
    assert "HOTLIST_PLATE" in proc.stdout and "✗" not in proc.stdout
