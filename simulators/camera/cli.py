"""Command line of the camera simulator (`gate-sim camera`, or `python -m simulators.camera`)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import typer

from simulators.camera.server import CameraServer, load_scenario

log = logging.getLogger(__name__)


def camera(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8554, help="TCP port (0: any free port)"),
    scenario: Path = typer.Option(None, help="JSON/YAML list of trucks to drive through"),
    size: str = typer.Option("1280x720", help="frame size WIDTHxHEIGHT, e.g. 1920x1080"),
    fps: float = typer.Option(5.0, min=0.5, max=30, help="frames rendered per second"),
    real_crops: bool = typer.Option(
        False, help="composite real VN plate crops from ../shared/data when a truck's plate "
                    "text has one (falls back to drawn plates)"),
) -> None:
    """Serve simulated truck frames as MJPEG: /front.mjpg, /rear.mjpg; POST /trucks to add.

    Example: gate-sim camera --port 8554 --scenario trucks.json
    then: curl -X POST localhost:8554/trucks -d '{"tractor_plate": "51C12345"}'
    """
    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError as exc:
        raise typer.BadParameter("write the size as WIDTHxHEIGHT, e.g. 1280x720") from exc
    crops = _real_crops() if real_crops else {}
    server = CameraServer(host, port, size=(w, h), fps=fps, crops=crops)
    if scenario is not None:
        try:
            for run in load_scenario(scenario):
                server.sim.add(run)
        except (OSError, ValueError, KeyError) as exc:
            raise typer.BadParameter(f"scenario {scenario}: {exc}") from exc
    server.start()
    typer.echo(f"camera simulator on {server.url}/front.mjpg and {server.url}/rear.mjpg")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _real_crops() -> dict[str, object]:
    try:
        from training.dataset import data_root, training_crops
    except ImportError:
        return {}
    import random

    root = data_root()
    if root is None:
        log.warning("../shared/data not found; drawing every plate")
        return {}
    return dict(training_crops(root, 200, random.Random(3)))


def main() -> None:
    """Entry point for `python -m simulators.camera`."""
    typer.run(camera)
