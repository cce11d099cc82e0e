"""``gate-edge match``: what would the gate decide for these reads?"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from edge.cli.common import CONFIG_OPTION, fail, load_or_exit
from edge.cli.manifests import CACHE_OPTION, open_cache
from edge.config import GateEdgeConfig
from edge.domain.model import Decision, PassageReads
from edge.matching.matcher import decide
from edge.store.cache import ManifestCache
from edge.store.manifest_import import describe_validation_error


def reads_from_json(obj: Any) -> PassageReads:
    """Accept a PassageReads object, or ``{"reads": {...}}``; nested reads inherit the lane."""
    if isinstance(obj, dict) and "reads" in obj:
        obj = obj["reads"]
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object with at least 'lane'")
    lane = obj.get("lane")
    filled = dict(obj)
    for key in ("tractor", "trailer", "containers", "seals"):
        value = obj.get(key, []) or []
        if not isinstance(value, list):
            raise ValueError(f"'{key}' must be a list of reads, got {type(value).__name__}")
        items = []
        for item in value:
            item = dict(item) if isinstance(item, dict) else item
            if isinstance(item, dict):
                item.setdefault("lane", lane)
                if key == "trailer":
                    item.setdefault("role", "trailer")
            items.append(item)
        if key in obj:
            filled[key] = items
    return PassageReads.model_validate(filled)


def decide_for(cfg: GateEdgeConfig, cache: ManifestCache, reads: PassageReads) -> Decision:
    """Run the matcher with the config's policy, grammars, site and lane."""
    lane = next((x for x in cfg.lanes if x.id == reads.lane), None)
    return decide(reads, cache, cfg.policy, cfg.grammars(), site=cfg.site.code, lane=lane)


def match(
    file: Path = typer.Argument(Path("-"), help="reads as JSON or JSON lines; '-' reads stdin"),
    config: Path | None = CONFIG_OPTION,
    cache: Path | None = CACHE_OPTION,
) -> None:
    """Print the decision (JSON, one line per input object) for the reads of a passage.

    \b
    Input:
      {"lane": "in-1", "tractor": [{"text": "51C12345", "confidence": 0.97}],
       "trailer": [...], "containers": [{"text": "MSKU1234565"}],
       "seals": [{"reader": "bolt-1", "seal_id": "VNS1234567", "status": "intact"}]}

    \b
    Example:
      echo '{"lane":"in-1","tractor":[{"text":"51C12345","confidence":0.97}]}' \\
          | gate-edge match -c gate-edge.yaml

    Exit status 0 when every input was decided, 2 when an input was malformed.
    """
    cfg = load_or_exit(config)
    text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    stripped = text.strip()
    if not stripped:
        raise fail("no input: give reads as JSON on stdin or as a file")
    try:
        objects = [json.loads(stripped)]
    except (json.JSONDecodeError, RecursionError):
        objects = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                objects.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise fail(f"line {number}: bad JSON: {exc.msg} at column {exc.colno}") from None
            except RecursionError:
                raise fail(f"line {number}: bad JSON: nested too deeply") from None
    items = objects[0] if len(objects) == 1 and isinstance(objects[0], list) else objects
    if not items:
        raise fail("no reads in the input (an empty list)")
    lanes = {lane.id for lane in cfg.lanes}
    store = open_cache(None, cache or cfg.storage.cache_path, readonly=True)
    bad = False
    try:
        for obj in items:
            try:
                reads = reads_from_json(obj)
                if reads.lane not in lanes:
                    raise ValueError(f"lane {reads.lane!r} is not configured; lanes: {sorted(lanes)}")
            except ValidationError as exc:
                typer.echo(f"error: reads rejected: {describe_validation_error(exc)}", err=True)
                bad = True
                continue
            except ValueError as exc:
                typer.echo(f"error: reads rejected: {exc}", err=True)
                bad = True
                continue
            typer.echo(decide_for(cfg, store, reads).model_dump_json())
    finally:
        store.close()
    if bad:
        raise typer.Exit(2)
