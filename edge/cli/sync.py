"""``gate-edge keys ...``: Ed25519 signing keys for the link with the centre."""

from __future__ import annotations

from pathlib import Path

import typer

from edge.cli.common import fail
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
