"""``gate-edge seals listen``: watch one seal reader, for commissioning and fault-finding.

A technician installing a reader wants to see, before the lane goes live, that the port, the
baud rate and the scanner's prefix settings are right. This runs the very driver and runtime
the daemon uses and prints each read as one JSON line; errors and alarms go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Literal

import typer

from edge.cli.common import CONFIG_OPTION, fail, load_or_exit
from edge.config.seal_readers import BarcodeScannerConfig, ESealReaderConfig
from edge.domain.model import SealRead
from edge.seals import ReaderAlarm, SerialSealReader
from edge.seals.drivers import ReaderConfig

app = typer.Typer(help="Seal readers: check a reader from the command line.", no_args_is_help=True,
                  add_completion=False, rich_markup_mode=None)


@app.command("listen")
def listen(
    reader: str | None = typer.Argument(None, help="name of a reader in the config's seal_readers"),
    config: Path | None = CONFIG_OPTION,
    port: str | None = typer.Option(None, help="read this port instead of a configured reader"),
    type_: Literal["eseal", "barcode"] = typer.Option("eseal", "--type", help="device family for --port"),
    baudrate: int = typer.Option(9600, help="baud rate for --port"),
    prefix: str = typer.Option("", help="barcode: prefix to strip (with --port)"),
    suffix: str = typer.Option("", help="barcode: suffix to strip (with --port)"),
    count: int = typer.Option(0, help="stop after this many reads (0: until Ctrl-C)"),
    seconds: float = typer.Option(0, help="stop after this many seconds (0: until Ctrl-C)"),
) -> None:
    """Print every read of one seal reader as a JSON line.

    Examples: gate-edge seals listen eseal-in1 -c /etc/gate-edge/gate-edge.yaml
              gate-edge seals listen --port /dev/ttyUSB0 --type barcode --prefix ']C0'
    """
    cfg = _reader_config(reader, config, port, type_, baudrate, prefix, suffix)
    stats = asyncio.run(_listen(cfg, count, seconds)).stats
    typer.echo(json.dumps({"reader": cfg.name, "reads": stats.reads, "errors": dict(stats.errors),
                           "bytes_in": stats.bytes_in, "connects": stats.connects}), err=True)


def _reader_config(reader: str | None, config: Path | None, port: str | None, type_: str,
                   baudrate: int, prefix: str, suffix: str) -> ReaderConfig:
    if port is not None:
        if type_ == "barcode":
            return BarcodeScannerConfig(type="barcode", name="cli", port=port, baudrate=baudrate,
                                        strip_prefix=prefix, strip_suffix=suffix)
        return ESealReaderConfig(type="eseal", name="cli", port=port, baudrate=baudrate)
    if reader is None:
        raise fail("name a configured reader, or give --port")
    gate = load_or_exit(config)
    for candidate in gate.seal_readers:
        if candidate.name == reader:
            return candidate
    raise fail(f"no seal reader {reader!r}; configured: {[r.name for r in gate.seal_readers]}")


async def _listen(cfg: ReaderConfig, count: int, seconds: float) -> SerialSealReader:
    done = asyncio.Event()
    seen = 0

    def on_read(read: SealRead) -> None:
        nonlocal seen
        if count and seen >= count:
            return  # the rest of the last batch, after we were told to stop
        seen += 1
        typer.echo(read.model_dump_json())
        if count and seen >= count:
            done.set()

    def on_alarm(alarm: ReaderAlarm) -> None:
        state = "RAISED" if alarm.active else "cleared"
        typer.echo(f"alarm {alarm.kind.value} {state}: {alarm.message}", err=True)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    lane = "cli"
    runtime = SerialSealReader(cfg, lane, on_read, on_alarm)
    await runtime.start()
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), seconds or None)
    finally:
        await runtime.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return runtime
