"""``gate-edge passages export``: the signed post-clearance-audit bundle of a period."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from edge.cli.common import CONFIG_OPTION, fail, load_or_exit
from edge.config.mqtt import credential_path
from edge.store.export import ExportError, export_bundle
from edge.sync.signing import load_private_key

app = typer.Typer(help="Passages: export them for post-clearance audit.", no_args_is_help=True)


def parse_time(text: str, option: str) -> datetime:
    """An ISO 8601 time with an offset; without one the hour would be a guess."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise fail(f"{option} {text!r} is not an ISO 8601 time; e.g. "
                   "2026-11-23T00:00:00+07:00") from None
    if value.tzinfo is None:
        raise fail(f"{option} {text!r} has no UTC offset; add one, e.g. {text}+07:00 "
                   "(Vietnam) or Z (UTC)")
    return value


@app.command("export")
def export(
    since: str = typer.Option(..., "--since", help="first passage start to include, ISO 8601 "
                                                   "with offset, e.g. 2026-11-01T00:00:00+07:00"),
    until: str | None = typer.Option(None, "--until", help="end of the period (exclusive); "
                                                           "default: now"),
    out: Path = typer.Option(..., "--out", "-o", help="bundle to write (a .zip file)"),
    signed: bool = typer.Option(False, "--signed", help="sign the manifest with the site key "
                                                        "(mqtt.site_key, or --key)"),
    key: Path | None = typer.Option(None, "--key", help="Ed25519 private key (PEM) instead of "
                                                        "mqtt.site_key.private_key_file"),
    kid: str | None = typer.Option(None, "--kid", help="key id to record with --key "
                                                       "(default: mqtt.site_key.id or the file "
                                                       "name)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing bundle file"),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Write passages, their evidence images and the audit rows of a period into one zip.

    Every file is listed with its SHA-256 in manifest.json; with --signed the manifest is
    signed with the checkpoint's Ed25519 key. Check a bundle with 'gate-edge audit
    verify-bundle'. Format: docs/audit-bundle.md. The export is recorded in the audit log.

    Example: gate-edge passages export --since 2026-11-01T00:00:00+07:00
    --until 2026-12-01T00:00:00+07:00 --signed --out HUUNGHI-2026-11.zip -c gate-edge.yaml
    """
    if out.exists() and not overwrite:
        raise fail(f"{out} exists; a bundle already handed out is evidence: choose another name "
                   "or give --overwrite")
    cfg = load_or_exit(config)
    start = parse_time(since, "--since")
    end = parse_time(until, "--until") if until else None
    private = None
    key_id = ""
    if signed or key is not None:
        site_key = cfg.mqtt.site_key
        if key is not None:
            path, key_id = key, kid or key.stem
        elif site_key is not None:
            path, key_id = credential_path(site_key.private_key_file), kid or site_key.id
        else:
            raise fail("--signed needs a key: set mqtt.site_key in the config or give --key")
        try:
            private = load_private_key(path)
        except ValueError as exc:
            raise fail(str(exc)) from None
    records_path = cfg.storage.records_path
    if not records_path.is_file():
        raise fail(f"{records_path} does not exist (storage.dir in the config)")
    try:
        result = export_bundle(records_path, cfg.storage.evidence_dir, out, site=cfg.site.code,
                               since=start, until=end, key=private, kid=key_id)
    except ExportError as exc:
        raise fail(str(exc), 1) from None
    for problem in result.problems:
        typer.echo(f"warning: {problem}", err=True)
    signed_text = f"signed by key {result.signed_by}" if result.signed_by else "NOT signed"
    typer.echo(f"{out}: {result.passages} passage(s), {result.audit_rows} audit row(s), "
               f"{result.evidence_files} evidence file(s), {signed_text}; manifest SHA-256 "
               f"{result.manifest_sha256}")
