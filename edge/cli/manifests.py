"""``gate-edge manifests ...`` and ``gate-edge hotlist ...``: the local cache by hand.

Normally the centre keeps the cache current over MQTT; these commands seed a new checkpoint,
load a USB-stick export during a long outage, and let an engineer look inside.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from edge.cli.common import CONFIG_OPTION, fail, load_or_exit
from edge.domain.model import HotlistEntry
from edge.domain.plates import PlateGrammar, default_grammars
from edge.matching.matcher import CLOCK_SKEW
from edge.store.cache import ManifestCache
from edge.store.db import iso
from edge.store.manifest_import import describe_validation_error, detect_format, import_file

app = typer.Typer(help="Import and inspect pre-cleared declarations in the local cache.",
                  no_args_is_help=True)
hotlist_app = typer.Typer(help="Import and list hotlist entries (plates, containers, seals, "
                          "traders that must be stopped).", no_args_is_help=True)

CACHE_OPTION = typer.Option(
    None, "--cache", help="cache.db to use instead of the one under the config's storage.dir.")


def open_cache(config: Path | None, cache: Path | None, *, readonly: bool = False) -> ManifestCache:
    """The cache named by --cache, else the configured one.

    Commands that only look (``show``, ``stats``, ``match``) open it read-only and refuse a
    path that does not exist, so a typo never creates an empty cache that answers NO_MANIFEST.
    """
    if cache is None:
        cache = load_or_exit(config).storage.cache_path
    if readonly and not cache.is_file():
        raise fail(f"no cache at {cache}; check --cache / storage.dir, or import manifests first")
    return ManifestCache.open(cache, readonly=readonly)


def _grammars(config: Path | None, cache: Path | None) -> list[PlateGrammar]:
    """Plate grammars for import checks: the config's when one is given, else the built-in ones."""
    if cache is not None and config is None and not os.environ.get("GATE_EDGE_CONFIG"):
        return default_grammars()
    return load_or_exit(config).grammars()


@app.command("import")
def import_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                help="declarations as JSON lines (.jsonl) or CSV (.csv)"),
    config: Path | None = CONFIG_OPTION,
    cache: Path | None = CACHE_OPTION,
    batch_size: int = typer.Option(5000, min=1, help="manifests per transaction"),
    signed_at: datetime | None = typer.Option(
        None, "--signed-at",
        help="treat the cache as fresh as of this time (ISO 8601 with offset); only for files "
             "exported and signed by the centre, otherwise the gate refers trucks as CACHE_STALE"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Import declarations; bad lines are reported with their line number and skipped.

    \b
    Examples:
      gate-edge manifests import declarations.jsonl -c /etc/gate-edge/gate-edge.yaml
      gate-edge manifests import export.csv --cache /var/lib/gate-edge/cache.db \\
          --signed-at 2026-11-23T06:00:00+07:00

    The format (one JSON object per line, or CSV with a header) is in docs/manifest-format.md.
    Exit status 0 if every line imported, 3 if some lines were rejected.
    """
    if signed_at is not None:
        if signed_at.tzinfo is None:
            raise fail("--signed-at needs a UTC offset, e.g. 2026-11-23T06:00:00+07:00")
        if signed_at > datetime.now(UTC) + CLOCK_SKEW:
            raise fail(f"--signed-at {signed_at.isoformat()} is in the future; give the time the "
                       "centre signed the export")
    grammars = _grammars(config, cache)
    store = open_cache(config, cache)
    console = Console(stderr=True)
    try:
        total_bytes = file.stat().st_size
        with Progress(TextColumn("importing {task.fields[name]}"), BarColumn(),
                      TextColumn("{task.completed:,} manifests"), TimeElapsedColumn(),
                      console=console, disable=quiet or total_bytes < 200_000) as progress:
            task = progress.add_task("import", total=None, name=file.name)
            summary = import_file(store, file, batch_size,
                                  progress=lambda n: progress.advance(task, n), grammars=grammars)
        if signed_at is not None:
            store.set_meta(signed_at=iso(signed_at), source=f"file:{file.name}")
    finally:
        store.close()
    w = summary.written
    typer.echo(f"{file} ({detect_format(file)}): {summary.read} record(s) read, "
               f"{w.inserted} new, {w.replaced} replaced by a newer version, "
               f"{w.stale} older or equal version ignored, {len(summary.rejected)} rejected")
    for issue in summary.rejected[:50]:
        decl = f" {issue.declaration_no}" if issue.declaration_no else ""
        typer.echo(f"  line {issue.line}{decl}: {issue.reason}", err=True)
    if len(summary.rejected) > 50:
        typer.echo(f"  ... and {len(summary.rejected) - 50} more", err=True)
    if summary.rejected:
        raise typer.Exit(3)


@app.command("show")
def show_cmd(
    declaration_no: str = typer.Argument(..., help="12-digit declaration number or transit MRN"),
    config: Path | None = CONFIG_OPTION,
    cache: Path | None = CACHE_OPTION,
) -> None:
    """Print one cached declaration as JSON.

    Example: gate-edge manifests show 105123456780 -c gate-edge.yaml
    """
    store = open_cache(config, cache, readonly=True)
    try:
        manifest = store.by_declaration(declaration_no)
    finally:
        store.close()
    if manifest is None:
        raise fail(f"declaration {declaration_no} is not in the cache", 1)
    typer.echo(manifest.model_dump_json(indent=2))


@app.command("stats")
def stats_cmd(config: Path | None = CONFIG_OPTION, cache: Path | None = CACHE_OPTION) -> None:
    """How many declarations are cached and how fresh the cache is."""
    store = open_cache(config, cache, readonly=True)
    try:
        meta = store.meta()
        count = store.count()
    finally:
        store.close()
    signed = meta.get("signed_at")
    age = ""
    if signed:
        delta = datetime.now(UTC) - datetime.fromisoformat(signed)
        age = f" ({delta.total_seconds() / 3600:.1f} h ago)"
    typer.echo(f"manifests: {count:,}\nsigned_at: {signed or 'never'}{age}\n"
               f"seq: {meta.get('seq', '-')}\nsource: {meta.get('source', '-')}")


@hotlist_app.command("import")
def hotlist_import(
    file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                help="hotlist entries, one JSON object per line"),
    config: Path | None = CONFIG_OPTION,
    cache: Path | None = CACHE_OPTION,
) -> None:
    """Add or update hotlist entries from a JSON-lines file.

    \b
    Each line:
    {"kind": "plate|container|seal|trader", "value": "...", "reason": "...",
     "action": "hold|refer", "expires_at": "2026-12-31T00:00:00+07:00"}

    Example: gate-edge hotlist import alerts.jsonl -c gate-edge.yaml
    """
    entries, bad = [], 0
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            entries.append(HotlistEntry.model_validate_json(line))
        except ValidationError as exc:
            bad += 1
            typer.echo(f"  line {number}: {describe_validation_error(exc)}", err=True)
    store = open_cache(config, cache)
    try:
        store.upsert_hotlist(entries, datetime.now(UTC))
    finally:
        store.close()
    typer.echo(f"{file}: {len(entries)} hotlist entr(ies) stored, {bad} rejected")
    if bad:
        raise typer.Exit(3)


@hotlist_app.command("list")
def hotlist_list(config: Path | None = CONFIG_OPTION, cache: Path | None = CACHE_OPTION) -> None:
    """Print every hotlist entry as JSON lines."""
    store = open_cache(config, cache, readonly=True)
    try:
        for entry in store.hotlist():
            typer.echo(json.dumps(entry.model_dump(mode="json"), ensure_ascii=False))
    finally:
        store.close()
