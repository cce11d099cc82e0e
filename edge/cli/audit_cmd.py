"""``gate-edge audit ...``: check the tamper-evident audit chain of a records file."""

from __future__ import annotations

from pathlib import Path

import typer

from edge.cli.common import CONFIG_OPTION, load_or_exit
from edge.store import audit
from edge.store.records import Records

app = typer.Typer(help="Post-clearance audit: verify the hash-chained audit log and exported bundles.",
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


@app.command("verify-bundle")
def verify_bundle_cmd(
    bundle: Path = typer.Argument(..., help="bundle made by 'gate-edge passages export'"),
    pubkey: str | None = typer.Option(
        None, "--pubkey", help="the site's Ed25519 public key: a .pub file, base64 or PEM "
                               "(as 'gate-edge keys public' prints it)"),
    allow_unsigned: bool = typer.Option(False, "--allow-unsigned",
                                        help="accept a bundle exported without --signed"),
) -> None:
    """Check a post-clearance-audit bundle made by 'gate-edge passages export'.

    It checks the signature, every file's SHA-256, the audit chain inside the bundle, and each
    evidence image against the hash recorded with its passage.

    Exit status 0 when all holds, 1 naming every problem found (missing, added or altered
    files, broken chain, bad signature), 2 when the key cannot be read.

    Example: gate-edge audit verify-bundle HUUNGHI-2026-11.zip --pubkey site-signing.key.pub
    """
    from edge.store.bundle import verify_bundle
    from edge.sync.signing import load_public_key

    key = None
    if pubkey is not None:
        source = Path(pubkey)
        try:
            text = source.read_text(encoding="utf-8") if source.is_file() else pubkey
            key = load_public_key(text)
        except (OSError, ValueError) as exc:
            typer.echo(f"error: --pubkey: {exc}", err=True)
            raise typer.Exit(2) from None
    elif not allow_unsigned:
        typer.echo("error: give --pubkey to check the signature (or --allow-unsigned)", err=True)
        raise typer.Exit(2)
    if not bundle.is_file():
        typer.echo(f"error: {bundle} does not exist", err=True)
        raise typer.Exit(2)
    check = verify_bundle(bundle, key, require_signature=not allow_unsigned)
    for warning in check.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if check.ok:
        who = f"signed by {check.signed_by}" if check.signed_by else "unsigned"
        typer.echo(f"{bundle}: bundle verified ({who}): {check.counts['passages']} passage(s), "
                   f"{check.counts['audit_rows']} audit row(s), "
                   f"{check.counts['evidence_files']} evidence file(s)")
        return
    typer.echo(f"{bundle}: {len(check.problems)} problem(s):", err=True)
    for problem in check.problems:
        typer.echo(f"  - {problem}", err=True)
    raise typer.Exit(1)
