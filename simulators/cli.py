"""The ``gate-sim`` command: hardware and central-system simulators on real wire protocols."""

from __future__ import annotations

import typer

from edge.logging_setup import configure_logging
from simulators.central.cli import central

app = typer.Typer(name="gate-sim", help="Simulators for gate-edge: each speaks the real protocol "
                                        "(Modbus RTU, serial, MJPEG over HTTP, MQTT 5).",
                  no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  pretty_exceptions_enable=False)


@app.callback()
def _root(log_level: str = typer.Option("WARNING", "--log-level", envvar="GATE_SIM_LOG",
                                        help="DEBUG, INFO, WARNING...")) -> None:
    configure_logging(log_level)


app.command("central")(central)


def main() -> None:
    """Console-script entry point."""
    app()
