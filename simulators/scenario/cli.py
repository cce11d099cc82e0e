"""``gate-sim scenario FILE``: start the lab, play the scenario, print what the gate did.

Exit status: 0 every expectation held, 1 some did not, 2 the scenario file or the lab is
broken (the message says which part and shows the end of its log).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gate_controller.yamlconfig import ConfigError
from simulators.scenario.lab import Lab, LabError
from simulators.scenario.model import load_scenario
from simulators.scenario.runner import ScenarioResult, ScenarioRunner

log = logging.getLogger(__name__)

_STYLE = {"open": "bold green", "refer": "bold yellow", "hold": "bold red"}


def results_table(result: ScenarioResult) -> Table:
    """One row per truck: expected and actual decision, reasons, barrier, verdict."""
    table = Table(title=f"Scenario '{result.name}'", show_lines=True)
    for col in ("#", "truck", "lane", "plate read", "decision", "reasons", "barrier", "result"):
        table.add_column(col)
    for out in result.trucks:
        decision = out.decision or "-"
        style = _STYLE.get(decision, "")
        barrier = ("opened" if out.opened else "shut") + (
            ", passed" if out.passed else ", turned back" if out.passed is False else "")
        if out.tailgating:
            barrier += ", TAILGATING"
        verdict = "[green]✓[/]" if out.ok else "[red]✗ " + escape("; ".join(out.problems)) + "[/]"
        table.add_row(str(out.index + 1), escape(out.truck.name), out.truck.lane,
                      ", ".join(dict.fromkeys(out.plates_read)) or "-",
                      f"[{style}]{decision.upper()}[/]" if style else decision,
                      "\n".join(out.reasons) or "-", barrier, verdict)
    return table


def print_result(console: Console, result: ScenarioResult, *, kept: bool = True) -> None:
    """The table, the centre's tally and the overall verdict."""
    console.print(results_table(result))
    gaps = f", outbox seq gaps {result.seq_gaps[:10]}" if result.seq_gaps else ", no seq gaps"
    console.print(f"centre received {result.received_passages} passage(s){gaps}")
    for line in result.fault_log:
        console.print(f"  fault: {line}", markup=False, highlight=False)
    for line in result.lane_faults:   # what gate-controller reported, injected or not
        console.print(f"  lane fault: {line}", markup=False, highlight=False)
    for problem in result.problems:
        console.print(f"[red]problem: {escape(problem)}[/]")
    passed = sum(t.ok for t in result.trucks)
    verdict = "[bold green]PASS[/]" if result.ok else "[bold red]FAIL[/]"
    console.print(f"{verdict}: {passed}/{len(result.trucks)} truck(s) as expected; "
                  + (f"logs and results.json in {result.lab_dir}" if kept
                     else "use --keep DIR to keep the logs and results.json"))


def scenario(
    file: Path = typer.Argument(..., help="scenario YAML (see docs/scenarios.md)"),
    keep: Path | None = typer.Option(
        None, "--keep", help="lab directory to keep (logs, config, records); default: a "
                             "temporary one removed at the end"),
    console_port: int | None = typer.Option(
        None, "--console-port", min=1, max=65535, help="officer console port (default: free one)"),
    speed: float = typer.Option(
        1.0, "--speed", min=0.1, max=10,
        help="timeline pace: 2 plays arrivals and faults twice as fast (trucks still drive at "
             "their own speed)"),
) -> None:
    """Start a whole simulated checkpoint and drive a scenario's trucks through it.

    Example: gate-sim scenario config/scenarios/one-truck.yaml --keep /tmp/lab

    Starts Mosquitto, the central simulator, per lane a relay board with its gate-controller,
    a camera and seal readers, then gate-edge run; plays the timeline; compares what the
    gate did with each truck's 'expect'. Exit status 0 when every expectation held.
    """
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)   # progress lines show up live in a pipe
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        loaded = load_scenario(file)
    except ConfigError as exc:
        typer.echo(exc.render(), err=True)
        raise typer.Exit(2) from None
    with tempfile.TemporaryDirectory(prefix="gate-lab-") as tmp:
        workdir = keep or Path(tmp)
        try:
            result = run_in_lab(loaded, workdir, console, console_port=console_port, speed=speed,
                                kept=keep is not None)
        except LabError as exc:
            console.print(f"[red]lab failed to start:[/] {exc}", markup=False, highlight=False)
            raise typer.Exit(2) from None
    if not result.ok:
        raise typer.Exit(1)


def run_in_lab(loaded: object, workdir: Path, console: Console, *, console_port: int | None = None,
               speed: float = 1.0, kept: bool = True) -> ScenarioResult:
    """Start the lab, run the scenario, print and save the results, stop the lab."""
    from simulators.scenario.model import LoadedScenario

    assert isinstance(loaded, LoadedScenario)
    console.print(f"starting the lab for '{loaded.spec.name}' in {workdir} ...")
    with Lab(loaded, workdir, console_port=console_port) as lab:
        console.print(f"lab up: console {lab.console_url}, logs in {workdir / 'logs'}")
        result = ScenarioRunner(lab, speed=speed, echo=console.print).run()
    (workdir / "results.json").write_text(json.dumps(result.as_dict(), indent=2,
                                                     ensure_ascii=False), encoding="utf-8")
    print_result(console, result, kept=kept)
    return result
