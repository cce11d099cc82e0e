"""The ``gate-sim`` command: hardware simulators speaking the real wire protocols.

Each simulator family registers its commands here with one line; the commands live in the
family's own package (STYLE.md §10).
"""

from __future__ import annotations

import logging

import typer

from simulators.seals import cli as seals_cli

app = typer.Typer(
    name="gate-sim",
    help=(
        "Simulated gate hardware on real wire protocols (pseudo-terminals, TCP, HTTP), so tests, "
        "demos and real devices exercise the same gate-edge code.\n\n"
        "  gate-sim seal-reader --link /tmp/seal-1        # RFID e-seal reader on a pty\n\n"
        "  gate-sim barcode-scanner --link /tmp/scan-1    # bolt-seal barcode scanner on a pty"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    log_level: str = typer.Option("WARNING", "--log-level", help="DEBUG shows every byte sent"),
) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


app.command("seal-reader")(seals_cli.seal_reader)
app.command("barcode-scanner")(seals_cli.barcode_scanner)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
