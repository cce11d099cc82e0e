"""The ``gate-sim`` command: hardware and central-system simulators on real wire protocols.

Each simulator family registers its commands here with one line; the commands live in the
family's own package (STYLE.md §10).
"""

from __future__ import annotations

import typer

from edge.logging_setup import configure_logging
from simulators.camera import cli as camera_cli
from simulators.central.cli import central
from simulators.relay_board.cli import relay_board
from simulators.scenario.cli import scenario
from simulators.seals import cli as seals_cli

app = typer.Typer(
    name="gate-sim",
    help=(
        "Simulated gate hardware and central system on their real wire protocols (pseudo-terminals, "
        "Modbus RTU, HTTP, MQTT 5), so tests, demos and real devices exercise the same gate-edge "
        "code.\n\n\b\n"
        "  gate-sim seal-reader --link /tmp/seal-1        # RFID e-seal reader on a pty\n"
        "  gate-sim barcode-scanner --link /tmp/scan-1    # bolt-seal barcode scanner on a pty\n"
        "  gate-sim central --help                        # the central customs system over MQTT\n"
        "  gate-sim relay-board --link /tmp/relay1 --control /tmp/relay1.ctl  # barrier board"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    log_level: str = typer.Option("WARNING", "--log-level", envvar="GATE_SIM_LOG",
                                  help="DEBUG shows every byte and message sent"),
) -> None:
    configure_logging(log_level)


app.command("seal-reader")(seals_cli.seal_reader)
app.command("barcode-scanner")(seals_cli.barcode_scanner)
app.command("central")(central)
app.command("relay-board")(relay_board)
app.command("camera")(camera_cli.camera)
app.command("scenario")(scenario)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
