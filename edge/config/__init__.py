"""gate-edge configuration: one YAML file per checkpoint, one module per section.

``load_config`` validates the whole file and then the references between sections (a lane
naming a camera that does not exist...), and reports every problem with its line, key and fix.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from edge.config.cameras import CameraConfig, ReaderConfig
from edge.config.console import ConsoleConfig
from edge.config.grammars import PlateGrammarConfig
from edge.config.lanes import LaneConfig
from edge.config.mqtt import MqttConfig
from edge.config.passages import PassageConfig
from edge.config.policy import PolicyConfig
from edge.config.seal_readers import SealReaderConfig
from edge.config.site import SiteConfig
from edge.config.storage import StorageConfig
from edge.config.types import Section
from edge.domain.plates import PlateGrammar, default_grammars, grammar_from_spec
from gate_controller.config import RelayBoardConfig
from gate_controller.yamlconfig import (
    ConfigError,
    ConfigIssue,
    issues_from_validation,
    mark_of,
    read_yaml,
)

__all__ = ["ConfigError", "ConfigIssue", "GateEdgeConfig", "load_config"]


class GateEdgeConfig(Section):
    """The whole checkpoint. See config/gate-edge.example.yaml for a commented example."""

    site: SiteConfig = Field(..., description="which checkpoint this is")
    lanes: list[LaneConfig] = Field(..., min_length=1, description="automated truck lanes")
    cameras: list[CameraConfig] = Field(default_factory=list, description="plate/container cameras")
    seal_readers: list[SealReaderConfig] = Field(default_factory=list,
                                                 description="e-seal readers and barcode scanners")
    relay_boards: list[RelayBoardConfig] = Field(default_factory=list,
                                                 description="Modbus RTU boards driving barriers")
    plate_reader: ReaderConfig = Field(default_factory=ReaderConfig,
                                       description="plate detector, OCR and multi-frame vote")
    passages: PassageConfig = Field(default_factory=PassageConfig,
                                    description="how long a lane waits for reads before deciding")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="link to the centre")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="files and retention")
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="matching rules")
    console: ConsoleConfig = Field(default_factory=ConsoleConfig, description="officer console")
    plate_grammars: list[PlateGrammarConfig] = Field(
        default_factory=list, description="extra plate layouts (Laos, Cambodia, ...)")

    @model_validator(mode="after")
    def _vote_sure_follows_policy(self) -> GateEdgeConfig:
        # The vote's "sure" is the matcher's LOW_CONFIDENCE line unless set on its own: a text
        # the vote calls sure must not be one the matcher refers as unsure.
        if "vote_sure" in self.plate_reader.model_fields_set:
            return self
        reader = self.plate_reader.model_copy(
            update={"vote_sure": self.policy.min_plate_confidence})
        return self.model_copy(update={"plate_reader": reader})

    def grammars(self) -> list[PlateGrammar]:
        """Built-in grammars plus the configured ones."""
        extra = [grammar_from_spec(g.name, g.country, g.templates, g.letters, g.provinces,
                                   g.colours, g.description) for g in self.plate_grammars]
        return [*default_grammars(), *extra]

    def lane(self, lane_id: str) -> LaneConfig:
        """The lane with this id (KeyError names the known lanes)."""
        for lane in self.lanes:
            if lane.id == lane_id:
                return lane
        raise KeyError(f"no lane {lane_id!r}; configured lanes: {[x.id for x in self.lanes]}")


def _cross_check(cfg: GateEdgeConfig) -> list[tuple[tuple[str | int, ...], str, str]]:
    """References between sections; returns (location, problem, fix) triples."""
    problems: list[tuple[tuple[str | int, ...], str, str]] = []

    def unique(section: str, names: Sequence[str], key: str) -> None:
        for name, n in Counter(names).items():
            if n > 1:
                idx = [i for i, x in enumerate(names) if x == name][1]
                problems.append(((section, idx, key), f"duplicate {key} {name!r}",
                                 f"give each entry of '{section}' its own {key}"))

    unique("lanes", [lane.id for lane in cfg.lanes], "id")
    unique("cameras", [c.name for c in cfg.cameras], "name")
    unique("seal_readers", [s.name for s in cfg.seal_readers], "name")
    unique("relay_boards", [b.name for b in cfg.relay_boards], "name")
    unique("plate_grammars", [g.name for g in cfg.plate_grammars], "name")
    cameras = {c.name for c in cfg.cameras}
    readers = {s.name for s in cfg.seal_readers}
    boards = {b.name: b for b in cfg.relay_boards}
    lanes = {lane.id for lane in cfg.lanes}
    for i, lane in enumerate(cfg.lanes):
        for j, cam in enumerate(lane.cameras):
            if cam not in cameras:
                problems.append((("lanes", i, "cameras", j), f"unknown camera {cam!r}",
                                 f"define it under 'cameras' or use one of {sorted(cameras)}"))
        for j, reader in enumerate(lane.seal_readers):
            if reader not in readers:
                problems.append((("lanes", i, "seal_readers", j), f"unknown seal reader {reader!r}",
                                 f"define it under 'seal_readers' or use one of {sorted(readers)}"))
        if lane.relay_board and lane.relay_board not in boards:
            problems.append((("lanes", i, "relay_board"), f"unknown relay board {lane.relay_board!r}",
                             f"define it under 'relay_boards' or use one of {sorted(boards)}"))
    for i, board in enumerate(cfg.relay_boards):
        if board.lane not in lanes:
            problems.append((("relay_boards", i, "lane"), f"unknown lane {board.lane!r}",
                             f"use one of the lane ids {sorted(lanes)}"))
    ports = Counter([b.port for b in cfg.relay_boards] + [s.port for s in cfg.seal_readers])
    for i, seal_reader in enumerate(cfg.seal_readers):
        if ports[seal_reader.port] > 1:
            problems.append((("seal_readers", i, "port"), f"port {seal_reader.port} is used twice",
                             "each serial device can be opened by one driver only"))
    if cfg.mqtt.enabled and not cfg.mqtt.brokers:
        problems.append((("mqtt",), "mqtt is enabled but no brokers are listed",
                         "add 'brokers: [{host: ..., port: 8883}]' or set 'enabled: false'"))
    # A metrics port that would silently go unused is a typo waiting to confuse someone.
    if cfg.console.metrics_port is not None and cfg.console.enabled:
        problems.append((("console", "metrics_port"),
                         "metrics_port is only used when the console is off",
                         f"remove it (the console serves /metrics on port {cfg.console.port}), "
                         "or set console.enabled: false"))
    elif cfg.console.metrics_port is not None and not cfg.console.metrics_enabled:
        problems.append((("console", "metrics_port"),
                         "metrics_port is set but metrics_enabled is false",
                         "remove metrics_port, or set console.metrics_enabled: true"))
    return problems


def load_config(path: Path | str) -> GateEdgeConfig:
    """Read, validate and cross-check a gate-edge YAML file; ConfigError lists every problem."""
    path = Path(path)
    data: Any = read_yaml(path)
    try:
        cfg = GateEdgeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(issues_from_validation(exc, GateEdgeConfig, data, str(path))) from None
    problems = _cross_check(cfg)
    if problems:
        issues = []
        for loc, message, fix in problems:
            line, col = mark_of(data, loc)
            key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
            issues.append(ConfigIssue(str(path), line, col, key, message, fix))
        raise ConfigError(issues)
    return cfg
