"""``gate-sim``: hardware simulators that speak the real wire protocols."""

from __future__ import annotations

import typer

from simulators.relay_board.cli import relay_board

app = typer.Typer(help="Simulators of the gate's hardware and of the central customs system.",
                  no_args_is_help=True, add_completion=False)


@app.callback()
def _group() -> None:
    """Hardware simulators on real wire protocols (pty, TCP, HTTP, MQTT)."""


app.command("relay-board")(relay_board)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
