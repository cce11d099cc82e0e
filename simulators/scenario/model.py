"""The scenario file: a checkpoint's layout, its documents, timed trucks, faults and expectations.

One file is both a demo and an end-to-end test (issue 9): the runner drives every truck through
the simulated hardware and compares what the gate did with each truck's ``expect``. The format
is documented with a full example in docs/scenarios.md.

Loading goes through the project's YAML loader (``gate_controller.yamlconfig``), so a mistake is
reported as ``file:line:col key: message`` with a fix, like a gate-edge config error.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge.domain import iso6346
from edge.domain.model import (
    HotlistEntry,
    Manifest,
    Outcome,
    ReasonCode,
    SealStatus,
    SealType,
    normalize_seal_id,
)
from edge.domain.plates import VN_TRAILER, classify, default_grammars, normalize_plate
from gate_controller.signals import FaultCode
from gate_controller.yamlconfig import (
    ConfigError,
    ConfigIssue,
    issues_from_validation,
    mark_of,
    read_yaml,
)

_GRAMMARS = default_grammars()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSpec(_Strict):
    """The simulated checkpoint (written into the generated gate-edge config)."""

    code: str = Field("HUUNGHI", pattern=r"^[A-Z0-9]{2,12}$",
                      description="checkpoint code used in MQTT topics")
    name: str = Field("Hữu Nghị (Lạng Sơn) — simulated", min_length=1,
                      description="name shown in the officer console")


class LaneSpec(_Strict):
    """One lane of the lab: a relay board + gate-controller, one camera, seal readers."""

    id: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="lane id, e.g. in-1")
    name: str = Field("", description="label shown to officers")
    direction: Literal["inbound", "outbound"] = Field("inbound", description="traffic direction")
    aeo_priority: bool = Field(False, description="only AEO traders pass automatically here")
    eseal_reader: bool = Field(True, description="the lane has an RFID e-seal reader")
    bolt_scanner: bool = Field(True, description="the lane has a bolt-seal barcode scanner")


def _default_lanes() -> list[LaneSpec]:
    return [LaneSpec(id="in-1", name="Import lane 1"), LaneSpec(id="in-2", name="Import lane 2")]


class SealSpec(_Strict):
    """A seal on the truck, as the lane's reader will report it."""

    id: str = Field(..., description="seal id as encoded in the e-seal or printed on the bolt")
    type: SealType = Field(SealType.BOLT, description="e-seal (RFID reader) or bolt (barcode)")
    status: Literal["intact", "opened", "tampered"] = Field(
        "intact", description="what the e-seal reports (bolt seals cannot report a status)")
    battery: int | None = Field(None, ge=0, le=100, description="e-seal battery percent")

    @field_validator("id")
    @classmethod
    def _seal_id(cls, value: str) -> str:
        seal = normalize_seal_id(value)
        if not 4 <= len(seal) <= 32 or not all(c.isascii() and (c.isalnum() or c == "-")
                                              for c in seal):
            raise ValueError("a seal id has 4-32 characters A-Z, 0-9 or '-'")
        return seal


class MotionSpec(_Strict):
    """How the truck drives through the lane (the relay-board simulator's vehicle)."""

    speed_mps: float = Field(3.0, ge=0.5, le=15, description="driving speed, m/s")
    length_m: float = Field(16.5, ge=4, le=25, description="vehicle length, m (semi-trailer 16.5)")
    start_distance_m: float = Field(20.0, ge=8, le=60,
                                    description="where the front starts, metres before the arm")
    stops: list[tuple[float, float]] = Field(
        default_factory=list,
        description="stop-and-go: [front position m (arm at 0, negative before it), seconds]")
    turn_back_after_s: float | None = Field(
        None, gt=0, le=300,
        description="the driver reverses out after waiting this long at a closed barrier; "
                    "default: the scenario's defaults.turn_back_after_s")
    tailgate_follower: bool = Field(
        False, description="a second, unregistered vehicle follows close behind (TAILGATING)")
    follower_length_m: float = Field(8.0, ge=4, le=25, description="length of the tailgater, m")
    follower_speed_mps: float | None = Field(
        None, ge=0.5, le=15,
        description="speed of the tailgater; default two thirds of the truck's: it starts 0.5 m "
                    "behind and falls back, so the photocell sees the gap between the two "
                    "however late gate-controller polls on a busy machine")


class TruckExpect(_Strict):
    """What the gate must do with this truck; the runner checks every key given."""

    decision: Outcome = Field(..., description="open, refer or hold")
    reasons: list[ReasonCode] = Field(
        default_factory=list,
        description="reason codes that must all be in the decision (others may be there too)")
    no_other_reasons: bool = Field(
        False, description="true: the decision's reasons must be exactly 'reasons'")
    barrier_opens: bool | None = Field(
        None, description="the arm rises for this truck; default: true exactly for 'open'")
    passes: bool | None = Field(
        None, description="the truck crosses the arm line; default: same as barrier_opens")
    tailgating: bool | None = Field(
        None, description="gate-controller reports TAILGATING on this passage; default: "
                          "true exactly when the truck has a tailgate_follower")
    plate_read: bool = Field(
        True, description="the tractor plate the gate read must be this truck's plate")

    def opens(self) -> bool:
        """Whether the arm must rise."""
        return self.decision is Outcome.OPEN if self.barrier_opens is None else self.barrier_opens

    def crosses(self) -> bool:
        """Whether the truck must pass the arm."""
        return self.opens() if self.passes is None else self.passes


class TruckSpec(_Strict):
    """One truck arriving at one lane at a given time."""

    name: str = Field(..., min_length=1, max_length=80, description="shown in the results table")
    at: float = Field(..., ge=0, le=3600, description="arrival time, seconds after the start")
    lane: str = Field(..., description="lane id (from 'lanes')")
    tractor_plate: str = Field(..., description="plate painted on the tractor (VN or CN)")
    trailer_plate: str | None = Field(None, description="plate on the trailer's rear (VN series R)")
    containers: list[str] = Field(default_factory=list, max_length=2,
                                  description="ISO 6346 numbers painted on the doors")
    seals: list[SealSpec] = Field(default_factory=list, description="seals the readers will see")
    condition: Literal["daylight", "dusk", "rain", "glare", "blur"] = Field(
        "daylight", description="camera conditions while the truck is filmed")
    motion: MotionSpec = Field(default_factory=MotionSpec, description="how the truck drives")
    expect: TruckExpect = Field(..., description="what the gate must do")

    @field_validator("tractor_plate", "trailer_plate")
    @classmethod
    def _plate(cls, value: str | None) -> str | None:
        if value is None:
            return None
        plate = normalize_plate(value)
        if classify(plate, _GRAMMARS) is None:
            raise ValueError(f"{value!r} fits no plate grammar ("
                             + ", ".join(g.name for g in _GRAMMARS) + ")")
        return plate

    @field_validator("containers")
    @classmethod
    def _containers(cls, value: list[str]) -> list[str]:
        out = [iso6346.normalize_container(c) for c in value]
        for code in out:
            if not iso6346.is_well_formed(code):
                raise ValueError(f"{code!r} is not an ISO 6346 container number "
                                 "(owner code, category U/J/Z, 6 digits, check digit)")
        return out

    def camera_condition(self) -> str:
        """The camera simulator's name for the condition."""
        return "motion_blur" if self.condition == "blur" else self.condition

    def camera_truck(self, duration_s: float, approach_s: float | None = None) -> dict[str, Any]:
        """The JSON body for the camera simulator's ``POST /trucks``.

        ``approach_s``: when the truck reaches the stop line (full size in the picture); it
        then stays there until ``duration_s`` is over.
        """
        body: dict[str, Any] = {
            "tractor_plate": self.tractor_plate, "trailer_plate": self.trailer_plate,
            "containers": list(self.containers), "condition": self.camera_condition(),
            "duration_s": round(duration_s, 2)}
        if approach_s is not None:
            body["approach_s"] = round(min(approach_s, duration_s), 2)
        return body


class _Fault(_Strict):
    at: float = Field(..., ge=0, le=3600, description="seconds after the start")


class BrokerOutage(_Fault):
    """The MQTT broker stops and comes back on the same port (WAN or broker outage)."""

    kind: Literal["broker_outage"] = Field(..., description="broker stop, then start")
    duration_s: float = Field(..., gt=0, le=3600, description="how long the broker is down")


class RelayBoardFault(_Fault):
    """A fault of a lane's relay board (simulators/relay_board/control.py)."""

    kind: Literal["relay_board"] = Field(..., description="relay-board fault")
    lane: str = Field(..., description="lane whose board is hit")
    fault: Literal["no_response", "crc_errors", "garbage", "late_answers", "stuck_loop",
                   "arm_jam", "relay_stuck", "limit_stuck_down", "power_loss"] = Field(
        ..., description="fault name of the relay-board simulator")
    target: bool | float | str = Field(
        True, description="loop or coil name, or a probability 0-1 for crc_errors/garbage/late_answers")
    duration_s: float | None = Field(None, gt=0, le=3600,
                                     description="clear it after this long; null: never")


class SealNoise(_Fault):
    """Line noise on a seal reader's serial line (the driver must resynchronize)."""

    kind: Literal["seal_noise"] = Field(..., description="garbage bytes on a seal reader")
    lane: str = Field(..., description="lane of the reader")
    reader: Literal["eseal", "bolt"] = Field("eseal", description="which reader of the lane")
    bytes: int = Field(64, ge=1, le=100_000, description="how many noise bytes")


class CameraCut(_Fault):
    """A lane's camera stream dies (process stopped) and comes back on the same port."""

    kind: Literal["camera_cut"] = Field(..., description="camera stream cut")
    lane: str = Field(..., description="lane whose camera goes dark")
    duration_s: float = Field(..., gt=0, le=3600, description="how long the stream is gone")


Fault = Annotated[BrokerOutage | RelayBoardFault | SealNoise | CameraCut,
                  Field(discriminator="kind")]


class Defaults(_Strict):
    """Settings that apply to every truck unless it says otherwise."""

    turn_back_after_s: float = Field(
        20.0, gt=0, le=300,
        description="a truck left waiting at a closed barrier this long reverses out (as an "
                    "officer would wave it to the inspection bay), freeing the lane")
    seal_lead_s: float = Field(
        1.5, ge=0, le=30,
        description="seals are read this long before the truck reaches the entry loop")
    camera_tail_s: float = Field(
        8.0, ge=1, le=60, description="the camera keeps the truck in view this long after the "
                                      "truck reaches the entry loop")
    settle_s: float = Field(
        45.0, ge=1, le=600,
        description="after the last truck, how long to wait for passages to reach the centre")


class Scenario(_Strict):
    """A complete lab run; see docs/scenarios.md."""

    name: str = Field(..., min_length=1, max_length=80, description="scenario name")
    description: str = Field("", description="what the scenario shows")
    site: SiteSpec = Field(default_factory=SiteSpec, description="the simulated checkpoint")
    lanes: list[LaneSpec] = Field(default_factory=_default_lanes, min_length=1, max_length=4,
                                  description="lanes of the lab (default: in-1, in-2 inbound)")
    declarations: str | list[dict[str, Any]] = Field(
        default_factory=list,
        description="pre-cleared declarations: a list (format of docs/manifest-format.md) or "
                    "the path of a JSON-lines file, relative to the scenario file")
    hotlist: str | list[dict[str, Any]] = Field(
        default_factory=list,
        description="hotlist entries: a list ({kind, value, reason, action}) or a JSON-lines path")
    defaults: Defaults = Field(default_factory=Defaults, description="settings for every truck")
    trucks: list[TruckSpec] = Field(..., min_length=1, description="trucks, with their times")
    faults: list[Fault] = Field(default_factory=list, description="faults, with their times")
    expect_lane_faults: list[FaultCode] = Field(
        default_factory=list,
        description="gate-controller fault codes the scenario provokes (e.g. ARM_TRAVEL_TIMEOUT "
                    "after an arm_jam); each must be reported, and any other lane fault fails "
                    "the run: a lane in fault waits for an officer")

    def lane_ids(self) -> list[str]:
        """Ids of the lab's lanes."""
        return [lane.id for lane in self.lanes]

    def duration_s(self) -> float:
        """When the last truck arrives or the last fault ends."""
        ends = [t.at for t in self.trucks]
        for fault in self.faults:
            ends.append(fault.at + (getattr(fault, "duration_s", None) or 0.0))
        return max(ends)



class LoadedScenario(BaseModel):
    """A validated scenario with its documents read and checked (the runner's input)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    path: Path
    spec: Scenario
    declarations: list[dict[str, Any]]
    hotlist: list[dict[str, Any]]


def load_scenario(path: Path | str) -> LoadedScenario:
    """Read and validate a scenario file; ConfigError lists every problem with its line."""
    path = Path(path)
    data: Any = read_yaml(path)
    try:
        spec = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(issues_from_validation(exc, Scenario, data, str(path))) from None
    issues = _cross_check(spec, data, str(path))
    declarations, more = _documents(path, data, "declarations", spec.declarations, Manifest)
    hotlist, more2 = _documents(path, data, "hotlist", spec.hotlist, HotlistEntry)
    issues += more + more2
    if issues:
        raise ConfigError(issues)
    return LoadedScenario(path=path, spec=spec, declarations=declarations, hotlist=hotlist)


def _issue(data: Any, file: str, loc: tuple[str | int, ...], message: str, fix: str) -> ConfigIssue:
    line, col = mark_of(data, loc)
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return ConfigIssue(file, line, col, key, message, fix)


def _cross_check(spec: Scenario, data: Any, file: str) -> list[ConfigIssue]:
    """References between sections, which single fields cannot check."""
    issues: list[ConfigIssue] = []
    lanes = spec.lane_ids()
    for dup, n in Counter(lanes).items():
        if n > 1:
            issues.append(_issue(data, file, ("lanes", lanes.index(dup, lanes.index(dup) + 1),
                                              "id"), f"duplicate lane id {dup!r}",
                                 "give every lane its own id"))
    for i, truck in enumerate(spec.trucks):
        if truck.lane not in lanes:
            issues.append(_issue(data, file, ("trucks", i, "lane"), f"unknown lane {truck.lane!r}",
                                 f"use one of {lanes}"))
            continue
        lane = spec.lanes[lanes.index(truck.lane)]
        if truck.trailer_plate and classify(truck.trailer_plate, _GRAMMARS) not in (
                VN_TRAILER, None) and truck.trailer_plate[0].isascii():
            issues.append(_issue(data, file, ("trucks", i, "trailer_plate"),
                                 f"{truck.trailer_plate!r} is not a VN trailer plate",
                                 "VN trailers carry series R, e.g. 51R01234"))
        for j, seal in enumerate(truck.seals):
            has = lane.eseal_reader if seal.type is SealType.ESEAL else lane.bolt_scanner
            if not has:
                issues.append(_issue(data, file, ("trucks", i, "seals", j, "type"),
                                     f"lane {lane.id} has no reader for {seal.type.value} seals",
                                     "set eseal_reader/bolt_scanner: true on the lane"))
            if seal.type is SealType.BOLT and seal.status != SealStatus.INTACT.value:
                issues.append(_issue(data, file, ("trucks", i, "seals", j, "status"),
                                     "a bolt seal's barcode cannot report a status",
                                     "remove 'status', or make it an e-seal"))
    for i, fault in enumerate(spec.faults):
        lane_id: str | None = getattr(fault, "lane", None)
        if lane_id is not None and lane_id not in lanes:
            issues.append(_issue(data, file, ("faults", i, "lane"), f"unknown lane {lane_id!r}",
                                 f"use one of {lanes}"))
        if isinstance(fault, SealNoise) and lane_id in lanes:
            lane = spec.lanes[lanes.index(lane_id)]
            if not (lane.eseal_reader if fault.reader == "eseal" else lane.bolt_scanner):
                issues.append(_issue(data, file, ("faults", i, "reader"),
                                     f"lane {lane_id} has no {fault.reader} reader",
                                     "pick a reader the lane has"))
    return issues


def _documents(path: Path, data: Any, key: str, value: str | list[dict[str, Any]],
               model: type[BaseModel]) -> tuple[list[dict[str, Any]], list[ConfigIssue]]:
    """Declarations or hotlist entries, inline or from a JSON-lines file, each validated."""
    import json

    issues: list[ConfigIssue] = []
    records: list[dict[str, Any]] = []
    if isinstance(value, str):
        file = (path.parent / value).resolve()
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            return [], [_issue(data, str(path), (key,), f"cannot read {file}: {exc.strerror}",
                               "give a path relative to the scenario file")]
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                record = json.loads(line)
                model.model_validate(record)
            except ValueError as exc:   # JSON and pydantic errors alike
                issues.append(ConfigIssue(str(file), number, None, key, _first_line(exc),
                                          "see docs/manifest-format.md"))
                continue
            records.append(record)
        return records, issues
    for i, record in enumerate(value):
        try:
            model.model_validate(record)
        except ValidationError as exc:
            issues += issues_from_validation(exc, model, data, str(path), (key, i))
            continue
        records.append(dict(record))
    return records, issues


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]
