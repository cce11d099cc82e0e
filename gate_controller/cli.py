"""``gate-controller``: run one board's controller, or talk to a running one.

``run`` reads only the ``relay_boards`` entry it needs from the gate-edge YAML and validates it
with RelayBoardConfig, so this process stays independent of ``edge``'s config.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from gate_controller.client import ControllerClient
from gate_controller.config import RelayBoardConfig
from gate_controller.yamlconfig import ConfigError, ConfigIssue, issues_from_validation, read_yaml

app = typer.Typer(help="Fail-safe barrier controller for one Modbus RTU relay board.",
                  no_args_is_help=True, add_completion=False)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="gate-edge YAML file")]
BoardOpt = Annotated[str, typer.Option("--board", "-b", help="name of the relay_boards entry")]
SocketOpt = Annotated[
    Path | None, typer.Option("--socket", help="IPC socket (default: from the config)")
]


def load_board(path: Path, name: str) -> RelayBoardConfig:
    """The ``relay_boards`` entry called ``name``, validated, with located errors."""
    data = read_yaml(path)
    boards = data.get("relay_boards") if isinstance(data, dict) else None
    if not isinstance(boards, list):
        raise ConfigError([ConfigIssue(str(path), None, None, "relay_boards",
                                       "no relay_boards list in the file",
                                       "add a relay_boards: list with one entry per board")])
    names = []
    for i, entry in enumerate(boards):
        entry_name = entry.get("name") if isinstance(entry, dict) else None
        names.append(str(entry_name))
        if entry_name == name:
            try:
                return RelayBoardConfig.model_validate(entry)
            except ValidationError as exc:
                raise ConfigError(issues_from_validation(exc, RelayBoardConfig, data, str(path),
                                                         ("relay_boards", i))) from None
    raise ConfigError([ConfigIssue(str(path), None, None, "relay_boards",
                                   f"no board named {name!r}",
                                   f"use one of: {', '.join(names) or '(none defined)'}")])


def _socket_for(config: Path | None, board: str | None, sock: Path | None) -> Path:
    if sock is not None:
        return sock
    if config is None or board is None:
        raise typer.BadParameter("give --socket, or --config and --board")
    try:
        return Path(load_board(config, board).socket_path())
    except ConfigError as exc:
        typer.echo(exc.render(), err=True)
        raise typer.Exit(2) from None


@app.command()
def run(
    config: ConfigOpt,
    board: BoardOpt,
    socket_path: SocketOpt = None,
    log_level: Annotated[str, typer.Option(help="DEBUG shows every Modbus frame in hex")] = "INFO",
) -> None:
    """Run the controller of one board until SIGTERM/SIGINT (what the systemd unit starts)."""
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_board(config, board)
    except ConfigError as exc:
        typer.echo(exc.render(), err=True)
        raise typer.Exit(2) from None
    from gate_controller.runtime import GateController

    asyncio.run(_serve(GateController(cfg, socket_path=socket_path, notify=_sd_notifier())))


async def _serve(controller: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await controller.serve_forever(stop)


def _sd_notifier() -> Any:
    try:
        import sdnotify
    except ImportError:  # pragma: no cover - declared dependency
        return None
    notifier = sdnotify.SystemdNotifier()
    return notifier.notify


def request(sock_path: Path, msg: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one message and return its reply (events arriving meanwhile are skipped)."""
    with ControllerClient(sock_path, timeout=timeout) as client:
        return client.request(msg)


@app.command()
def status(
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
    board: Annotated[str | None, typer.Option("--board", "-b")] = None,
    socket_path: SocketOpt = None,
) -> None:
    """Print the lane's state, barrier, faults and alarms as JSON."""
    sock = _socket_for(config, board, socket_path)
    try:
        answer = request(sock, {"v": 1, "type": "status"})
    except (OSError, TimeoutError) as exc:
        typer.echo(f"cannot reach gate-controller at {sock}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(answer.get("status", answer), indent=2))


def _officer(command: str, config: Path | None, board: str | None, sock: Path | None,
             officer: str, reason: str, passage_id: str | None = None) -> None:
    path = _socket_for(config, board, sock)
    msg: dict[str, Any] = {"v": 1, "type": "officer", "command": command, "officer": officer,
                           "reason": reason}
    if passage_id:
        msg["passage_id"] = passage_id
    try:
        answer = request(path, msg)
    except (OSError, TimeoutError) as exc:
        typer.echo(f"cannot reach gate-controller at {path}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(answer))
    if not answer.get("ok"):
        raise typer.Exit(1)


OfficerOpt = Annotated[str, typer.Option("--officer", help="your officer id (audited)")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="why (audited)")]
MaybeConfig = Annotated[Path | None, typer.Option("--config", "-c")]
MaybeBoard = Annotated[str | None, typer.Option("--board", "-b")]


@app.command("open")
def open_barrier(officer: OfficerOpt, reason: ReasonOpt, config: MaybeConfig = None,
                 board: MaybeBoard = None, socket_path: SocketOpt = None,
                 passage_id: Annotated[str | None, typer.Option()] = None) -> None:
    """Officer open (bench testing, emergencies): the arm rises, interlocks still apply."""
    _officer("open", config, board, socket_path, officer, reason, passage_id)


@app.command()
def close(officer: OfficerOpt, reason: ReasonOpt, config: MaybeConfig = None,
          board: MaybeBoard = None, socket_path: SocketOpt = None) -> None:
    """Officer close; refused while a loop or the photocell is occupied."""
    _officer("close", config, board, socket_path, officer, reason)


@app.command()
def reset(officer: OfficerOpt, reason: ReasonOpt, config: MaybeConfig = None,
          board: MaybeBoard = None, socket_path: SocketOpt = None) -> None:
    """Clear a fault once its cause is gone; the lane resumes from what the board shows."""
    _officer("reset", config, board, socket_path, officer, reason)


@app.command()
def mode(which: Annotated[str, typer.Argument(help="manual or auto")], officer: OfficerOpt,
         reason: ReasonOpt, config: MaybeConfig = None, board: MaybeBoard = None,
         socket_path: SocketOpt = None) -> None:
    """Switch the lane to manual (officer drives the arm) or back to auto."""
    if which not in ("manual", "auto"):
        raise typer.BadParameter("use 'manual' or 'auto'")
    _officer(which, config, board, socket_path, officer, reason)


@app.command()
def watch(config: MaybeConfig = None, board: MaybeBoard = None,
          socket_path: SocketOpt = None) -> None:
    """Print lane events as they happen (one JSON line each) until Ctrl-C."""
    path = _socket_for(config, board, socket_path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(path))
            for line in s.makefile("rb"):
                sys.stdout.write(line.decode())
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        typer.echo(f"cannot reach gate-controller at {path}: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
