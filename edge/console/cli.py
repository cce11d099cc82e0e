"""``gate-edge users ...`` and ``gate-edge console``: accounts and the stand-alone console.

There is no default account: an installation starts with ``gate-edge users add NAME --role
admin``; the password is prompted (twice, hidden) or read from stdin for provisioning scripts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from edge.cli.common import CONFIG_OPTION, fail, load_or_exit
from edge.console.users import Role, UserError, Users
from edge.domain.model import utcnow
from edge.store.records import Records

users_app = typer.Typer(help="Officer console accounts (stored in records.db).",
                        no_args_is_help=True)

RECORDS_OPTION = typer.Option(None, "--records", help="records.db (default: storage.dir from "
                                                       "the config)")


def _records(config: Path | None, records: Path | None) -> Records:
    path = records or load_or_exit(config).storage.records_path
    return Records.open(path)


@users_app.command("add")
def add(
    name: str = typer.Argument(..., help="login name: lowercase letters, digits, . _ -"),
    role: Role = typer.Option(..., "--role", help="officer, supervisor or admin"),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="read the password from the first line of stdin"),
    config: Path | None = CONFIG_OPTION,
    records: Path | None = RECORDS_OPTION,
) -> None:
    """Create a console account; the password is prompted, never defaulted.

    Example: gate-edge users add lan.nguyen --role officer -c /etc/gate-edge/gate-edge.yaml
    """
    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    store = _records(config, records)
    try:
        Users(store.db).add(name, role, password, utcnow())
        store.audit_event(actor="cli", action="user.add", subject=f"user:{name}",
                          reason_code="ACCOUNT_CREATED", detail={"role": role.value})
    except UserError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
    typer.echo(f"user {name} ({role.value}) created")


@users_app.command("passwd")
def passwd(
    name: str = typer.Argument(..., help="account whose password to replace"),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="read the password from the first line of stdin"),
    config: Path | None = CONFIG_OPTION,
    records: Path | None = RECORDS_OPTION,
) -> None:
    """Set a new password; the user's open sessions end (audited)."""
    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    store = _records(config, records)
    try:
        users = Users(store.db)
        if users.get(name) is None:
            raise fail(f"no user {name!r}")
        users.set_password(name, password, utcnow())
        store.audit_event(actor="cli", action="user.passwd", subject=f"user:{name}",
                          reason_code="PASSWORD_CHANGED")
    except UserError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
    typer.echo(f"password of {name} replaced; their sessions are ended")


@users_app.command("list")
def list_users(config: Path | None = CONFIG_OPTION, records: Path | None = RECORDS_OPTION) -> None:
    """Show accounts, roles and lockouts."""
    store = _records(config, records)
    try:
        for user in Users(store.db).all():
            locked = f" locked until {user.locked_until:%Y-%m-%d %H:%M} UTC" if user.locked_at(
                utcnow()) else ""
            typer.echo(f"{user.name}\t{user.role.value}{locked}")
    finally:
        store.close()


@users_app.command("unlock")
def unlock(name: str = typer.Argument(..., help="account to unlock"),
           config: Path | None = CONFIG_OPTION, records: Path | None = RECORDS_OPTION) -> None:
    """Clear a lockout after too many failed logins (audited)."""
    store = _records(config, records)
    try:
        if not Users(store.db).unlock(name, utcnow()):
            raise fail(f"no user {name!r}")
        store.audit_event(actor="cli", action="user.unlock", subject=f"user:{name}",
                          reason_code="LOCKOUT_CLEARED")
    finally:
        store.close()
    typer.echo(f"{name} unlocked")


def console(
    config: Path | None = CONFIG_OPTION,
    host: str | None = typer.Option(None, "--host", help="listen address (default: console.host)"),
    port: int | None = typer.Option(None, "--port", help="listen port (default: console.port)"),
) -> None:
    """Serve the officer console over the configured stores, without the daemon.

    It shows what is in cache.db and records.db and picks up passages other processes write
    (e.g. `gate-edge demo --keep DIR`). Barrier commands need the daemon and are refused here.

    Example: gate-edge console -c config/demo/gate-edge.demo.yaml --port 8080
    """
    import asyncio
    import contextlib

    from edge.console.app import create_app, serve

    cfg = load_or_exit(config)
    console_cfg = cfg.console
    try:
        app = create_app(cfg, watch_records=True)
    except ValueError as exc:  # a session secret that is too short
        raise fail(str(exc)) from None
    bind_host = host or console_cfg.host
    bind_port = port or console_cfg.port
    scheme = "https" if console_cfg.tls_certfile else "http"
    typer.echo(f"officer console on {scheme}://{bind_host}:{bind_port}/ (Ctrl+C stops)")
    server = serve(app, bind_host, bind_port, certfile=console_cfg.tls_certfile,
                   keyfile=console_cfg.tls_keyfile)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve())
