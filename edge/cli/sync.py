"""``gate-edge keys ...`` and ``gate-edge sync ...``: keys and the link with the centre."""

from __future__ import annotations

from pathlib import Path

import typer

from edge.cli.common import CONFIG_OPTION, fail, load_or_exit, resolve_config_path
from edge.store import outbox
from edge.store.cache import ManifestCache
from edge.store.records import Records
from edge.sync.signing import generate_key, load_private_key, public_b64

keys_app = typer.Typer(help="Create and inspect the Ed25519 keys that sign MQTT messages.",
                       no_args_is_help=True)


@keys_app.command("generate")
def generate(
    path: Path = typer.Argument(..., help="where to write the private key (PEM, mode 0600); "
                                          "the public key goes to PATH.pub"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing key"),
) -> None:
    """Make a new key pair and print the public half for the other side's config.

    Example: gate-edge keys generate /etc/credstore/site-signing.key
    then give the printed public key to the centre, and point mqtt.site_key.private_key_file at
    the file (or load it with systemd LoadCredential= and write just its name).
    """
    try:
        made = generate_key(path, overwrite=overwrite)
    except FileExistsError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"private key: {made.private_path}\npublic key:  {made.public_path}\n{made.public_b64}")


@keys_app.command("public")
def public(path: Path = typer.Argument(..., exists=True, dir_okay=False,
                                       help="a private key made by 'keys generate'")) -> None:
    """Print the base64 public key of a private key file."""
    try:
        typer.echo(public_b64(load_private_key(path)))
    except ValueError as exc:
        raise fail(str(exc)) from None


sync_app = typer.Typer(help="The link with the centre: run it alone, or see how it stands.",
                       no_args_is_help=True)


@sync_app.command("status")
def status(config: Path | None = CONFIG_OPTION) -> None:
    """Print the cache's stream positions and freshness, and the outbox backlog.

    Example: gate-edge sync status -c /etc/gate-edge/gate-edge.yaml
    """
    cfg = load_or_exit(config)
    cache = ManifestCache.open(cfg.storage.cache_path)
    records = Records.open(cfg.storage.records_path)
    try:
        meta = cache.meta()
        depth = outbox.depth(records.db)
        oldest = records.db.execute(
            "SELECT min(created_at) FROM outbox WHERE sent_at IS NULL").fetchone()[0]
        last_sent = records.db.execute("SELECT max(sent_at) FROM outbox").fetchone()[0]
    finally:
        records.close()
        cache.close()
    typer.echo(f"manifests seq {meta.get('seq', '0')} (version {meta.get('version', '-')}), "
               f"hotlist seq {meta.get('hotlist_seq', '0')}, signed_at {meta.get('signed_at', 'never')}, "
               f"source {meta.get('source', '-')}")
    typer.echo(f"resync pending: {meta.get('resync_pending') or 'no'}")
    typer.echo(f"outbox: {depth} unsent (oldest {oldest or '-'}), last sent {last_sent or 'never'}")


@sync_app.command("run")
def run(config: Path | None = CONFIG_OPTION) -> None:
    """Run only the MQTT link until SIGTERM (drains the outbox, applies batches).

    Example: gate-edge sync run -c /etc/gate-edge/gate-edge.yaml
    """
    from edge.sync.__main__ import main as sync_main

    raise typer.Exit(sync_main(["-c", str(resolve_config_path(config)), "--log-level", "INFO"]))
