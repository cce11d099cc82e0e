from __future__ import annotations

from edge.config import GateEdgeConfig
from edge.config.reference import render
from tests.conftest import REPO


def test_configuration_reference_is_up_to_date() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render(GateEdgeConfig), (
        "docs/configuration.md is stale: run python -m edge.config.reference > docs/configuration.md")


def test_every_config_field_has_a_description() -> None:
    text = render(GateEdgeConfig)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows and all(not line.rstrip().endswith("|  |") for line in rows), [
        line for line in rows if line.rstrip().endswith("|  |")]
