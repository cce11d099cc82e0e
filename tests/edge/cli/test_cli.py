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


def test_offline_demo_runs_end_to_end_as_a_user_would() -> None:
    proc = subprocess.run([sys.executable, "-m", "edge", "demo", "--offline"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "audit chain: 10 record(s), verified" in proc.stdout
    assert "HOTLIST_PLATE" in proc.stdout and "✗" not in proc.stdout


def test_audit_verify_detects_tampering(tmp_path: Path) -> None:
    import sqlite3

    from edge.store.records import Records

    path = tmp_path / "records.db"
    store = Records.open(path)
    for i in range(3):
        store.audit_event(actor="officer.tran", action="login", subject=f"user:{i}")
    store.close()
    ok = runner.invoke(app, ["audit", "verify", "--records", str(path)])
    assert ok.exit_code == 0 and "verified, 3 record(s)" in ok.output
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE audit SET actor = 'someone.else' WHERE id = 2")
    bad = runner.invoke(app, ["audit", "verify", "--records", str(path)])
    assert bad.exit_code == 1 and "BROKEN at row 2" in bad.output


def test_import_rejects_plates_that_fit_no_grammar_or_the_wrong_role(tmp_path: Path) -> None:
    lines = [
        good_line("105123456790", tractor_plate="ABCDEFG"),
        good_line("105123456791", tractor_plate="51R01234", trailer_plate=None),
        good_line("105123456792", trailer_plate="29C12345"),
        json.dumps({**json.loads(good_line("105123456793")), "tractor_plate": "51C-123.45💥"}),
        good_line("105123456794", tractor_plate="80QT12345", trailer_plate=None),
    ]
    src = tmp_path / "m.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["manifests", "import", str(src), "--cache", str(tmp_path / "c.db")])
    out = result.output
    assert result.exit_code == 3 and "1 new" in out and "4 rejected" in out
    assert "line 1 105123456790: tractor_plate 'ABCDEFG' fits no plate grammar" in out
    assert "line 2 105123456791: tractor_plate '51R01234' is a trailer plate" in out
    assert "line 3 105123456792: trailer_plate '29C12345' is not a VN trailer plate" in out
    assert "line 4 105123456793: tractor_plate: plate '51C-123.45💥' contains '💥'" in out


def test_one_line_that_is_not_utf8_is_reported_alone(tmp_path: Path) -> None:
    src = tmp_path / "m.jsonl"
    src.write_bytes(good_line().encode() + b"\n" + b'{"declaration_no": "\xff"}\n'
                    + good_line("105123456781", tractor_plate="29C73804").encode() + b"\n")
    result = runner.invoke(app, ["manifests", "import", str(src), "--cache", str(tmp_path / "c.db")])
    assert result.exit_code == 3 and "2 new" in result.output
    assert "line 2: not UTF-8 text: byte 0xff at column 21" in result.output


def test_csv_with_bom_extra_values_and_bad_cells(tmp_path: Path) -> None:
    header = ("declaration_no,version,channel,status,tractor_plate,containers,trader_tax_code,"
              "trader_name,trader_aeo,valid_from,valid_until\n")
    row = "{decl},{version},green,released,51C-123.45,MSKU1234565,0301234567,X,{aeo},{vf},{vu}{extra}\n"
    vf, vu = "2026-01-01T00:00:00+07:00", "2027-01-01T00:00:00+07:00"
    body = (row.format(decl="105123456780", version=1, aeo="yes", vf=vf, vu=vu, extra="")
            + row.format(decl="105123456781", version="two", aeo="no", vf=vf, vu=vu, extra="")
            + row.format(decl="105123456782", version=1, aeo="maybe", vf=vf, vu=vu, extra="")
            + row.format(decl="105123456783", version=1, aeo="no", vf=vf, vu=vu, extra=",surplus"))
    src = tmp_path / "m.csv"
    src.write_bytes("\ufeff".encode() + (header + body).encode())
    result = runner.invoke(app, ["manifests", "import", str(src), "--cache", str(tmp_path / "c.db")])
    out = result.output
    assert result.exit_code == 3 and "1 new" in out and "3 rejected" in out
    assert "line 3 105123456781: version: 'two' is not a whole number" in out
    assert "line 4 105123456782: trader_aeo: 'maybe' is not yes/no" in out
    assert "line 5 105123456783: 1 value(s) more than the header has columns" in out


def test_signed_at_is_checked_before_anything_is_written(tmp_path: Path) -> None:
    src = tmp_path / "m.jsonl"
    src.write_text(good_line() + "\n", encoding="utf-8")
    db = tmp_path / "c.db"
    future = runner.invoke(app, ["manifests", "import", str(src), "--cache", str(db),
                                 "--signed-at", "2099-01-01T00:00:00+00:00"])
    naive = runner.invoke(app, ["manifests", "import", str(src), "--cache", str(db),
                                "--signed-at", "2026-11-23T06:00:00"])
    assert future.exit_code == 2 and "in the future" in future.output
    assert naive.exit_code == 2 and "needs a UTC offset" in naive.output
    assert not db.exists()


def test_looking_commands_never_create_a_cache(tmp_path: Path) -> None:
    typo = tmp_path / "cahce.db"
    for args in (["manifests", "show", "105123456780"], ["manifests", "stats"], ["hotlist", "list"]):
        result = runner.invoke(app, [*args, "--cache", str(typo)])
        assert result.exit_code == 2 and "no cache at" in result.output
    result = runner.invoke(app, ["match", "-", "-c", str(DEMO / "gate-edge.demo.yaml"),
                                 "--cache", str(typo)], input='{"lane": "in-1"}')
    assert result.exit_code == 2 and "no cache at" in result.output
    assert not typo.exists()


def test_match_rejects_empty_input_wrong_shapes_and_unknown_lanes(tmp_path: Path) -> None:
    db = tmp_path / "cache.db"
    runner.invoke(app, ["manifests", "import", str(DEMO / "manifests.jsonl"), "--cache", str(db)])
    base = ["match", "-", "-c", str(DEMO / "gate-edge.demo.yaml"), "--cache", str(db)]
    empty = runner.invoke(app, base, input="[]")
    assert empty.exit_code == 2 and "empty list" in empty.output
    shape = runner.invoke(app, base, input='{"lane": "in-1", "tractor": 5}')
    assert shape.exit_code == 2 and "'tractor' must be a list of reads" in shape.output
    lane = runner.invoke(app, base, input='{"lane": "in-9"}')
    assert lane.exit_code == 2 and "lane 'in-9' is not configured" in lane.output


def test_validate_config_never_shows_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: {code: HUUNGHI, name: X}\nlanes: [{id: in-1, direction: inbound}]\n"
                   "mqtt: {enabled: false}\npolicy: {max_cache_age: 99999999999d}\n"
                   "plate_grammars: [{name: XX, country: XX, templates: ['^9999']}]\n",
                   encoding="utf-8")
    result = runner.invoke(app, ["validate-config", str(bad)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "far too long a duration" in result.output
    assert "'provinces' is empty" in result.output
    ctrl = tmp_path / "ctrl.yaml"
    ctrl.write_bytes(b"site:\n  code: \x07HUUNGHI\n")
    result = runner.invoke(app, ["validate-config", str(ctrl)])
    assert result.exit_code == 1 and "YAML" in result.output
