"""``gate-edge keys`` and ``gate-edge sync status`` as a gate engineer runs them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.cli import app
from edge.store.cache import ManifestCache
from tests.edge.sync import support


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures the root logger (handlers on the runner's stderr); undo it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_keys_generate_and_public(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["keys", "generate", str(tmp_path / "site.key")])
    assert out.exit_code == 0, out.output
    pub = out.output.strip().splitlines()[-1]
    again = runner.invoke(app, ["keys", "public", str(tmp_path / "site.key")])
    assert again.output.strip() == pub
    refused = runner.invoke(app, ["keys", "generate", str(tmp_path / "site.key")])
    assert refused.exit_code == 2 and "refusing to overwrite" in refused.output


def test_sync_status_shows_streams_and_backlog(tmp_path: Path) -> None:
    keys = support.make_keys(tmp_path / "keys")
    cfg_path = support.write_config(tmp_path, [1883], keys)
    cfg = support.load(cfg_path)
    cache = ManifestCache.open(cfg.storage.cache_path)
    cache.set_meta(seq="7", version="7", signed_at="2026-11-23T06:00:00+00:00", source="mqtt:c")
    cache.close()
    support.save_passages(cfg.storage.records_path, 3)
    out = CliRunner().invoke(app, ["sync", "status", "-c", str(cfg_path)])
    assert out.exit_code == 0, out.output
    assert "manifests seq 7" in out.output and "outbox: 3 unsent" in out.output
