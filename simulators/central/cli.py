"""``gate-sim central``: run the simulated central customs system against a real broker."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path

import typer

from edge.sync.link import Broker
from edge.sync.signing import KeyRing, load_private_key, load_public_key
from simulators.central import data
from simulators.central.central import CentralSim

log = logging.getLogger(__name__)


def _broker(text: str) -> Broker:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(f"{text!r}: write HOST:PORT, e.g. 127.0.0.1:1883")
    return Broker(host, int(port), tls=False)


def _edge_keys(specs: list[str]) -> dict[str, KeyRing]:
    rings: dict[str, KeyRing] = {}
    for spec in specs:
        site, sep, rest = spec.partition("=")
        kid, sep2, key = rest.partition(":")
        if not sep or not sep2:
            raise typer.BadParameter(f"{spec!r}: write SITE=KID:PUBKEY (base64 or a .pub file)")
        text = Path(key).read_text(encoding="ascii") if Path(key).exists() else key
        try:
            rings.setdefault(site, KeyRing()).add(kid, load_public_key(text))
        except ValueError as exc:
            raise typer.BadParameter(f"{spec!r}: {exc}") from None
    return rings


def central(
    broker: list[str] = typer.Option(["127.0.0.1:1883"], "--broker", "-b",
                                     help="HOST:PORT of the (central) broker; repeat for failover"),
    site: str = typer.Option(..., "--site", "-s", help="checkpoint code, e.g. HUUNGHI"),
    key: Path = typer.Option(..., "--key", exists=True, dir_okay=False,
                             help="centre's Ed25519 private key (PEM) from 'gate-edge keys generate'"),
    kid: str = typer.Option("central-1", "--kid", help="key id written into every batch"),
    edge_key: list[str] = typer.Option(
        [], "--edge-key", help="SITE=KID:PUBKEY of a checkpoint's signing key (base64 or .pub "
                               "file); repeat for several sites or rotated keys"),
    manifests: Path | None = typer.Option(None, "--manifests", exists=True, dir_okay=False,
                                          help="JSON-lines declarations to publish at start"),
    hotlist: Path | None = typer.Option(None, "--hotlist", exists=True, dir_okay=False,
                                        help="JSON-lines hotlist entries to publish at start"),
    generate: int = typer.Option(0, "--generate", min=0, help="also publish N synthetic declarations"),
    batch_size: int = typer.Option(500, "--batch-size", min=1, help="declarations per batch"),
    heartbeat: float = typer.Option(
        300.0, "--heartbeat", min=0,
        help="seconds between empty signed batches that keep the edge's cache fresh (0: none)"),
    export: Path | None = typer.Option(None, "--export", help="append every distinct up message "
                                                              "received to this JSON-lines file"),
    duration: float = typer.Option(0.0, "--duration", min=0, help="stop after N seconds (0: Ctrl-C)"),
    prefix: str = typer.Option("", "--topic-prefix", help="same as mqtt.topic_prefix at the edge"),
    command: list[str] = typer.Option(
        [], "--command", help="LANE=open|hold|mode:auto|mode:manual|mode:closed, sent once at "
                              "start with a 60 s validity; repeat for several"),
) -> None:
    """Simulated central customs system: publishes batches, answers resyncs, receives passages.

    Signs and publishes manifest and hotlist batches, answers resync requests with snapshots,
    receives and verifies passages, alarms and acks, de-duplicates them and reports seq gaps.

    Example (after 'gate-edge keys generate central.key' and a checkpoint key site.key):

        gate-sim central -b 127.0.0.1:1883 -s HUUNGHI --key central.key \\
            --edge-key HUUNGHI=site-1:site.key.pub --manifests config/demo/manifests.jsonl \\
            --export received.jsonl

    Prints a JSON report (received, duplicates, seq gaps per site, rejections) when it stops.
    """
    sim = CentralSim([_broker(b) for b in broker], key=load_private_key(key), kid=kid,
                     edge_keys=_edge_keys(edge_key), prefix=prefix, export_path=export)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        sim.start()
    except TimeoutError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        records = list(data.read_jsonl(manifests)) if manifests else []
        records += data.generate(generate)
        for start in range(0, len(records), batch_size):
            sim.publish_manifests(site, records[start:start + batch_size])
        if hotlist:
            sim.publish_hotlist(site, list(data.read_jsonl(hotlist)))
        typer.echo(f"published {len(records)} declaration(s) to {site}", err=True)
        for spec in command:
            lane, _, action = spec.partition("=")
            verb, _, mode = action.partition(":")
            if not lane or verb not in ("open", "hold", "mode"):
                raise typer.BadParameter(f"{spec!r}: write LANE=open, LANE=hold or LANE=mode:manual")
            nonce = sim.send_command(site, lane, verb, mode=mode or None, ttl_s=60)
            typer.echo(f"sent {verb} to {site}/{lane} (nonce {nonce})", err=True)
        started = last_beat = time.monotonic()
        while not done.wait(0.5):
            now = time.monotonic()
            if duration and now - started >= duration:
                break
            if heartbeat and now - last_beat >= heartbeat:
                sim.publish_manifests(site, [])
                last_beat = now
    finally:
        sim.stop()
        typer.echo(json.dumps(sim.report(), ensure_ascii=False, indent=2))
