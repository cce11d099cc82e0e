"""gate-controller CLI: config loading with located errors, and bench commands over IPC."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gate_controller.cli import app, load_board
from gate_controller.yamlconfig import ConfigError
from simulators.relay_board import RelayBoardServer
from tests.gate_controller.conftest import InProcessController

runner = CliRunner()

YAML = """\
site: HUUNGHI
lanes:
  - id: L1
relay_boards:
  - name: board1
    lane: L1
    port: /dev/gate-relay-1
    baudrate: 115200
  - name: board2
    lane: L2
    port: /dev/gate-relay-2
    baudrate: 14400
"""


def test_load_board_reads_only_its_entry(tmp_path: Path) -> None:
    path = tmp_path / "gate-edge.yaml"
    path.write_text(YAML)
    cfg = load_board(path, "board1")
    assert cfg.port == "/dev/gate-relay-1" and cfg.slave_id == 1
    assert cfg.socket_path() == "/run/gate-edge/controller-board1.sock"


def test_bad_board_entry_is_located(tmp_path: Path) -> None:
    path = tmp_path / "gate-edge.yaml"
    path.write_text(YAML)
    with pytest.raises(ConfigError) as info:
        load_board(path, "board2")
    issue = info.value.issues[0]
    assert issue.key == "relay_boards[1].baudrate" and issue.line == 12
    assert "115200" in issue.fix


def test_unknown_board_lists_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "gate-edge.yaml"
    path.write_text(YAML)
    result = runner.invoke(app, ["run", "-c", str(path), "-b", "board9"])
    assert result.exit_code == 2
    assert "no board named 'board9'" in result.output and "board1, board2" in result.output


def test_status_and_officer_commands(controller: InProcessController,
                                     sim: RelayBoardServer) -> None:
    sock = str(controller.socket)
    result = runner.invoke(app, ["status", "--socket", sock])
    assert result.exit_code == 0 and '"state": "idle"' in result.output
    result = runner.invoke(app, ["open", "--socket", sock, "--officer", "o7",
                                 "--reason", "bench test"])
    assert result.exit_code == 0, result.output
    assert sim.wait_for(lambda s: s["arm"] == 1.0, 5)
    result = runner.invoke(app, ["close", "--socket", sock, "--officer", "o7",
                                 "--reason", "bench test"])
    assert result.exit_code == 0, result.output
    assert sim.wait_for(lambda s: s["arm"] == 0.0, 5)
    result = runner.invoke(app, ["reset", "--socket", sock, "--officer", "o7", "--reason", "x"])
    assert result.exit_code == 1 and "not_in_fault" in result.output


def test_status_without_controller(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--socket", str(tmp_path / "none.sock")])
    assert result.exit_code == 1 and "cannot reach gate-controller" in result.output


def test_example_config_boards_load() -> None:
    repo = Path(__file__).resolve().parents[2]
    cfg = load_board(repo / "config" / "gate-edge.example.yaml", "board1")
    assert cfg.lane == "in-1" and cfg.timing.clear_settle_s == 1.5
    assert load_board(repo / "config" / "gate-edge.example.yaml", "board2").slave_id == 2


def test_mode_manual_and_back(controller: InProcessController) -> None:
    sock = str(controller.socket)
    result = runner.invoke(app, ["mode", "manual", "--socket", sock, "--officer", "o7",
                                 "--reason", "barrier maintenance"])
    assert result.exit_code == 0, result.output
    assert '"state": "manual"' in result.output
    result = runner.invoke(app, ["mode", "auto", "--socket", sock, "--officer", "o7",
                                 "--reason", "done"])
    assert result.exit_code == 0 and '"state": "idle"' in result.output
    result = runner.invoke(app, ["mode", "sideways", "--socket", sock, "--officer", "o7",
                                 "--reason", "x"])
    assert result.exit_code != 0
