"""``gate-edge demo``: a whole simulated checkpoint, trucks driving through it, the console open.

This is the first thing a new engineer runs. It starts the scenario lab
(``simulators/scenario/``): Mosquitto, the central customs simulator, two relay boards with
their gate-controllers, camera and seal-reader simulators and ``gate-edge run`` itself; creates
a fresh officer login for the console; plays ``config/scenarios/demo.yaml`` (a cleared truck,
a wrong trailer, a tampered seal, a hotlisted plate, a declaration not released, a tailgater, a
Chinese truck and a broker outage); prints what the gate decided for each truck; and keeps the
checkpoint running for the console until Ctrl-C, then stops every part in reverse order.

``--offline`` keeps the first demo: sample reads through the matcher alone, no processes.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

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

REPO = Path(__file__).resolve().parents[2]
REPO_DEMO_DIR = REPO / "config" / "demo"
DEMO_SCENARIO = REPO / "config" / "scenarios" / "demo.yaml"
OFFICER = "officer.demo"
_STYLE = {"open": "bold green", "refer": "bold yellow", "hold": "bold red"}


def demo(
    offline: bool = typer.Option(
        False, "--offline", help="no processes: sample reads through the matcher only (seconds)"),
    scenario: Path = typer.Option(DEMO_SCENARIO, "--scenario",
                                  help="scenario to play (docs/scenarios.md)"),
    exit_when_done: bool = typer.Option(
        False, "--exit-when-done", help="stop once the scenario is judged (CI, tests) instead of "
                                        "keeping the checkpoint up for the console"),
    console_port: int | None = typer.Option(
        None, "--console-port", min=1, max=65535,
        help="officer console port (default 8080, or a free one if 8080 is taken)"),
    speed: float = typer.Option(1.0, "--speed", min=0.1, max=10,
                                help="timeline pace (2: arrivals and faults twice as fast)"),
    data: Path = typer.Option(REPO_DEMO_DIR, "--data", help="--offline: directory with the demo files"),
    keep: Path | None = typer.Option(
        None, "--keep", help="keep the lab (logs, config, records) or --offline's databases here "
                             "instead of a temporary directory"),
) -> None:
    """Start a simulated checkpoint, drive trucks through it, and open the officer console.

    Example: gate-edge demo

    Prints the console URL and a fresh officer login, plays config/scenarios/demo.yaml
    (2-3 minutes), prints each truck's decision and whether it was the expected one, then
    keeps running for the console until Ctrl-C. Exit status 0 when every truck got what the
    scenario expects. 'gate-edge demo --offline' runs sample reads through the matcher only.
    """
    if offline:
        _offline(data, keep)
        return
    _live(scenario, keep=keep, console_port=console_port or _default_port(), speed=speed,
          exit_when_done=exit_when_done)


def _default_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", 8080))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _live(scenario: Path, *, keep: Path | None, console_port: int, speed: float,
          exit_when_done: bool) -> None:
    from gate_controller.yamlconfig import ConfigError as ScenarioError
    from simulators.scenario.cli import print_result
    from simulators.scenario.lab import Lab, LabError
    from simulators.scenario.model import load_scenario
    from simulators.scenario.runner import ScenarioRunner

    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        raise fail(exc.render()) from None
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)   # progress lines show up live in a pipe
    console = Console(width=None if sys.stdout.isatty() else 160)
    # SIGTERM (systemd, CI, kill) stops the lab in order, exactly like Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    ok = False
    with tempfile.TemporaryDirectory(prefix="gate-edge-demo-") as tmp:
        workdir = (keep or Path(tmp)).resolve()
        console.print(f"[bold]gate-edge demo[/] — '{loaded.spec.name}': {loaded.spec.description}")
        console.print(f"starting the simulated checkpoint in {workdir} (about 20 s) ...")
        try:
            with Lab(loaded, workdir, console_port=console_port) as lab:
                password = create_officer(lab.storage_dir / "records.db")
                console.print(f"\n[bold]officer console:[/] {lab.console_url}\n"
                              f"[bold]login:[/] {OFFICER}   [bold]password:[/] {password}\n")
                result = ScenarioRunner(lab, speed=speed, echo=console.print).run()
                (workdir / "results.json").write_text(
                    json.dumps(result.as_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
                print_result(console, result, kept=keep is not None)
                ok = result.ok
                if not exit_when_done:
                    console.print(f"\nthe checkpoint keeps running: {lab.console_url} "
                                  f"(login {OFFICER}); press Ctrl-C to stop everything")
                    threading.Event().wait()
        except LabError as exc:
            console.print(f"lab failed to start: {exc}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("stopping every part of the checkpoint ...")
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    console.print("stopped.")
    if not ok:
        raise typer.Exit(1)


def create_officer(records_path: Path) -> str:
    """A fresh officer account with a random password (printed once, never stored in clear)."""
    from edge.console.users import Role, UserError, Users
    from edge.domain.model import utcnow

    store = Records.open(records_path)
    try:
        users = Users(store.db)
        while True:
            password = secrets.token_urlsafe(12)
            try:
                if users.get(OFFICER) is None:
                    users.add(OFFICER, Role.OFFICER, password, utcnow())
                else:   # a kept lab directory from an earlier run
                    users.set_password(OFFICER, password, utcnow())
            except UserError:
                continue   # a random password that happens to fail the strength rules
            break
        store.audit_event(actor="demo", action="user.add", subject=f"user:{OFFICER}",
                          reason_code="ACCOUNT_CREATED", detail={"role": Role.OFFICER.value})
    finally:
        store.close()
    return password


def _offline(data: Path, keep: Path | None) -> None:
    """Sample reads through the matcher (config/demo/): decisions and the audit chain, no I/O."""
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
