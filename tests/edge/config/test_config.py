from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from edge.config import ConfigError, load_config
from tests.conftest import REPO

EXAMPLE = REPO / "config" / "gate-edge.example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate-edge.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [i.render() for i in info.value.issues]


MINIMAL = """\
site:
  code: HUUNGHI
  name: Huu Nghi
lanes:
  - id: in-1
    direction: inbound
mqtt:
  enabled: false
"""


def test_example_and_demo_configs_are_valid() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.site.code == "HUUNGHI" and [lane.id for lane in cfg.lanes] == ["in-1", "in-2"]
    assert cfg.policy.max_cache_age == timedelta(hours=6)
    assert [g.name for g in cfg.grammars()][-2:] == ["LA", "KH"]
    assert cfg.relay_boards[1].baudrate == 19200  # default filled in
    load_config(REPO / "config" / "demo" / "gate-edge.demo.yaml")


def test_minimal_config_uses_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.storage.records_path == Path("/var/lib/gate-edge/records.db")
    assert cfg.policy.auto_open_channels == ["green", "yellow"]


def test_the_votes_sure_line_follows_the_policy_unless_set(tmp_path: Path) -> None:
    """A text the camera's vote calls sure must not be one the matcher refers as unsure."""
    cfg = load_config(write(tmp_path, MINIMAL + "policy: {min_plate_confidence: 0.9}\n"))
    assert cfg.plate_reader.vote_sure == 0.9
    cfg = load_config(write(tmp_path, MINIMAL + "policy: {min_plate_confidence: 0.9}\n"
                                                "plate_reader: {vote_sure: 0.7}\n"))
    assert cfg.plate_reader.vote_sure == 0.7


def test_unknown_key_names_line_and_allowed_keys(tmp_path: Path) -> None:
    text = MINIMAL + "policy:\n  max_cache_ag: 6h\n"
    [msg] = errors(write(tmp_path, text))
    assert "gate-edge.yaml:10:3: policy.max_cache_ag" in msg
    assert "correct its spelling" in msg and "max_cache_age" in msg


def test_missing_key_and_bad_value_reported_together(tmp_path: Path) -> None:
    text = "site:\n  code: hn\nlanes:\n  - id: in-1\n    direction: sideways\nmqtt: {enabled: false}\n"
    msgs = errors(write(tmp_path, text))
    assert len(msgs) == 3
    joined = "\n".join(msgs)
    assert ":2:3: site.code" in joined and "String should match pattern" in joined
    assert "site.name" in joined and "add the key 'name'" in joined
    assert ":5:5: lanes[0].direction" in joined and "'inbound' or 'outbound'" in joined


def test_bad_duration_names_the_fix(tmp_path: Path) -> None:
    [msg] = errors(write(tmp_path, MINIMAL + "policy:\n  max_cache_age: six hours\n"))
    assert "policy.max_cache_age" in msg and "write e.g. 90s, 30m, 6h or 2d" in msg


def test_unknown_plugin_type(tmp_path: Path) -> None:
    text = MINIMAL + "cameras:\n  - name: c1\n    type: firewire\n    url: x\n"
    [msg] = errors(write(tmp_path, text))
    assert "cameras[0]" in msg and "'http-mjpeg'" in msg


def test_cross_references_are_checked_with_lines(tmp_path: Path) -> None:
    text = """\
site: {code: HUUNGHI, name: Huu Nghi}
lanes:
  - id: in-1
    direction: inbound
    relay_board: board9
    cameras: [nocam]
  - id: in-1
    direction: outbound
relay_boards:
  - {name: board1, lane: in-7, port: /dev/ttyUSB0}
mqtt: {enabled: true}
"""
    joined = "\n".join(errors(write(tmp_path, text)))
    assert ":7:5: lanes[1].id: duplicate id 'in-1'" in joined
    assert ":6:15: lanes[0].cameras[0]: unknown camera 'nocam'" in joined
    assert ":5:5: lanes[0].relay_board: unknown relay board 'board9'" in joined
    assert "relay_boards[0].lane: unknown lane 'in-7'" in joined
    assert "mqtt: mqtt is enabled but no brokers" in joined


def test_relay_board_coil_clash_is_rejected(tmp_path: Path) -> None:
    text = MINIMAL + ("relay_boards:\n  - name: b1\n    lane: in-1\n    port: /dev/x\n"
                      "    coils: {barrier_open: 0, barrier_close: 0}\n")
    [msg] = errors(write(tmp_path, text))
    assert "relay_boards[0].coils" in msg and "share one coil" in msg


def test_metrics_without_the_console_need_a_port_and_old_configs_stay_valid(
        tmp_path: Path) -> None:
    # a console section written before metrics_port existed: /metrics on the console as before
    cfg = load_config(write(tmp_path, MINIMAL + "console: {enabled: true, port: 8080, "
                                                "metrics_allow: [10.20.0.15]}\n"))
    assert cfg.console.metrics_port is None and cfg.console.metrics_served()
    # console off and no port: no metrics, as before (nothing new starts listening)
    cfg = load_config(write(tmp_path, MINIMAL + "console: {enabled: false}\n"))
    assert not cfg.console.metrics_served()
    cfg = load_config(write(tmp_path, MINIMAL + "console:\n  enabled: false\n"
                                                "  metrics_host: 0.0.0.0\n  metrics_port: 9108\n"))
    assert cfg.console.metrics_served()
    assert (cfg.console.metrics_host, cfg.console.metrics_port) == ("0.0.0.0", 9108)


def test_a_metrics_port_that_would_go_unused_is_an_error(tmp_path: Path) -> None:
    [msg] = errors(write(tmp_path, MINIMAL + "console:\n  port: 8443\n  metrics_port: 9108\n"))
    assert "gate-edge.yaml:11:3: console.metrics_port" in msg
    assert "only used when the console is off" in msg
    assert "serves /metrics on port 8443" in msg and "console.enabled: false" in msg
    [msg] = errors(write(tmp_path, MINIMAL + "console:\n  enabled: false\n"
                                             "  metrics_enabled: false\n  metrics_port: 9108\n"))
    assert "console.metrics_port" in msg and "set console.metrics_enabled: true" in msg
    [msg] = errors(write(tmp_path, MINIMAL + "console: {enabled: false, metrics_port: 80000}\n"))
    assert "console.metrics_port" in msg


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    [msg] = errors(write(tmp_path, "site:\n  code: [unclosed\nlanes: []\n"))
    assert "YAML syntax error" in msg and "gate-edge.yaml:3" in msg


def test_missing_file(tmp_path: Path) -> None:
    [msg] = errors(tmp_path / "nope.yaml")
    assert "file not found" in msg
