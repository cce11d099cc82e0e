"""``gate-edge audit ...``: check the tamper-evident audit chain of a records file."""

from __future__ import annotations

from pathlib import Path

import typer

from edge.cli.common import CONFIG_OPTION, load_or_exit
from edge.store import audit
from edge.store.records import Records

app = typer.Typer(help="Post-clearance audit: verify the hash-chained audit log.",
                  no_args_is_help=True)


@app.command("verify")
def verify_cmd(
    config: Path | None = CONFIG_OPTION,
    records: Path | None = typer.Option(
        None, "--records", help="records.db to check instead of the configured one"),
) -> None:
    """Walk the whole audit chain and report the first row that does not follow.

    Exit status 0 when every row's hash follows from the one before, 1 when a row was altered,
    deleted or reordered. Safe on a running gate: the file is opened read-only.

    Example: gate-edge audit verify -c /etc/gate-edge/gate-edge.yaml
    """
    path = records or load_or_exit(config).storage.records_path
    if not path.is_file():
        typer.echo(f"error: {path} does not exist", err=True)
        raise typer.Exit(2)
    store = Records.open(path, readonly=True)
    try:
        check = audit.verify(store.db)
    finally:
        store.close()
    if check.ok:
        typer.echo(f"{path}: audit chain verified, {check.rows} record(s)")
        return
    typer.echo(f"{path}: audit chain BROKEN at row {check.first_bad_id}: {check.problem}", err=True)
    raise typer.Exit(1)
