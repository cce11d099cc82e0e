"""``gate-edge demo``: a checkpoint's decisions on sample trucks, from a fresh cache.

This is the first thing a new engineer runs. It builds a throw-away cache and records file,
imports the sample declarations and hotlist from ``config/demo/``, passes each sample truck
through the real matcher, records every decision with its audit row, verifies the audit chain
and prints what the gate decided and why. Later parts of gate-edge (simulated hardware, the
officer console, MQTT) join this same command as they land.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from edge.cli.common import fail
from edge.cli.match_cmd import decide_for, reads_from_json
from edge.config import ConfigError, GateEdgeConfig, load_config
from edge.domain.model import HotlistEntry, Passage
from edge.store import audit
from edge.store.cache import ManifestCache
from edge.store.db import iso
from edge.store.manifest_import import import_file
from edge.store.records import Records

REPO_DEMO_DIR = Path(__file__).resolve().parents[2] / "config" / "demo"
_STYLE = {"open": "bold green", "refer": "bold yellow", "hold": "bold red"}


def demo(
    data: Path = typer.Option(REPO_DEMO_DIR, "--data", help="directory with the demo files"),
    keep: Path | None = typer.Option(
        None, "--keep", help="write cache.db and records.db here instead of a temporary dir"),
) -> None:
    """Run sample trucks through the gate's matcher and show each decision with its reasons.

    Example: gate-edge demo

    Uses config/demo/gate-edge.demo.yaml, manifests.jsonl, hotlist.jsonl and trucks.jsonl.
    Exit status 0 when every truck got the decision the sample file expects.
    """
    for name in ("gate-edge.demo.yaml", "manifests.jsonl", "hotlist.jsonl", "trucks.jsonl"):
        if not (data / name).is_file():
            raise fail(f"demo file {data / name} is missing; run from a gate-edge checkout or "
                       "pass --data DIR")
    try:
        cfg = load_config(data / "gate-edge.demo.yaml")
    except ConfigError as exc:
        raise fail(exc.render()) from None
    # Wide enough for the decision table when piped to a file or a CI log.
    console = Console(width=None if sys.stdout.isatty() else 140)
    with tempfile.TemporaryDirectory(prefix="gate-edge-demo-") as tmp:
        workdir = keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = cfg.model_copy(update={"storage": cfg.storage.model_copy(update={"dir": workdir})})
        cache = ManifestCache.open(cfg.storage.cache_path)
        records = Records.open(cfg.storage.records_path)
        try:
            mismatches = _run(console, cfg, cache, records, data)
        finally:
            cache.close()
            records.close()
    if mismatches:
        raise typer.Exit(1)


def _run(console: Console, cfg: GateEdgeConfig, cache: ManifestCache, records: Records,
         data: Path) -> int:
    summary = import_file(cache, data / "manifests.jsonl")
    now = datetime.now(UTC)
    hot = [HotlistEntry.model_validate_json(line)
           for line in (data / "hotlist.jsonl").read_text(encoding="utf-8").splitlines()
           if line.strip() and not line.startswith("#")]
    cache.upsert_hotlist(hot, now)
    cache.set_meta(signed_at=iso(now), source="demo")
    console.print(f"[bold]gate-edge demo[/] — checkpoint {cfg.site.code} ({cfg.site.name}), "
                  f"lanes {', '.join(lane.id for lane in cfg.lanes)}")
    console.print(f"cache: {summary.written.inserted} declarations, {len(hot)} hotlist entr(ies); "
                  f"records in {cfg.storage.dir}\n")
    table = Table(title="Decisions", show_lines=True)
    for col in ("truck", "lane", "plate read", "decision", "reasons", "expected"):
        table.add_column(col)
    mismatches = 0
    for line in (data / "trucks.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        truck = json.loads(line)
        reads = reads_from_json(truck)
        decision = decide_for(cfg, cache, reads)
        passage = Passage(lane=reads.lane, reads=reads, decision=decision, ended_at=reads.at)
        records.save_passage(passage)
        ok = decision.outcome.value == truck.get("expect")
        mismatches += not ok
        plate = reads.tractor[0].text if reads.tractor else "-"
        if decision.plate_match == "folded":
            plate += f" → {decision.matched_plate}"
        table.add_row(truck.get("name", "?"), reads.lane, plate,
                      f"[{_STYLE[decision.outcome.value]}]{decision.outcome.value.upper()}[/]",
                      "\n".join(r.value for r in decision.reasons) or "-",
                      "✓" if ok else f"✗ expected {truck.get('expect')}")
    console.print(table)
    check = audit.verify(records.db)
    console.print(f"audit chain: {check.rows} record(s), "
                  f"{'verified' if check.ok else 'BROKEN: ' + check.problem}")
    if mismatches:
        console.print(f"[bold red]{mismatches} truck(s) did not get the expected decision[/]")
    return mismatches + (0 if check.ok else 1)
