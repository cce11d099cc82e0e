"""Scenario files: the shipped ones load, and every mistake is reported with its line and a fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edge.domain.model import Outcome
from gate_controller.yamlconfig import ConfigError
from simulators.scenario.model import TruckExpect, load_scenario
from simulators.scenario.runner import (
    TruckOutcome,
    _compare,
    judge_lane_faults,
    pair_events,
    time_to_entry_loop,
)

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "config" / "scenarios"

DECLARATION = """\
  - declaration_no: "105123456780"
    channel: green
    status: released
    tractor_plate: 51C-123.45
    trailer_plate: 51R-012.34
    containers: [MSKU1234565]
    seals: [{seal_id: VNS1234567, type: bolt}]
    trader: {tax_code: "0301234567", name: "Sai Gon Trans", aeo: true}
    valid_from: "2026-01-01T00:00:00+07:00"
    valid_until: "2030-12-31T23:59:59+07:00"
"""

TRUCK = """\
  - name: cleared truck
    at: 0
    lane: in-1
    tractor_plate: 51C-123.45
    trailer_plate: 51R-012.34
    containers: [MSKU1234565]
    seals: [{id: VNS1234567, type: bolt}]
    expect: {decision: open}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_scenario(path)
    return [issue.render() for issue in caught.value.issues]


@pytest.mark.parametrize("name", ["demo.yaml", "one-truck.yaml", "outage.yaml"])
def test_shipped_scenarios_load(name: str) -> None:
    loaded = load_scenario(SCENARIOS / name)
    assert loaded.spec.trucks and loaded.declarations
    lanes = loaded.spec.lane_ids()
    assert all(t.lane in lanes for t in loaded.spec.trucks)


def test_demo_covers_what_issue_9_lists() -> None:
    demo = load_scenario(SCENARIOS / "demo.yaml").spec
    reasons = {r.value for t in demo.trucks for r in t.expect.reasons}
    assert {"TRAILER_MISMATCH", "SEAL_TAMPERED", "HOTLIST_PLATE", "NOT_RELEASED"} <= reasons
    assert any(t.motion.tailgate_follower for t in demo.trucks)
    assert any(not t.tractor_plate.isascii() for t in demo.trucks)      # a Chinese plate
    assert any(f.kind == "broker_outage" for f in demo.faults)
    assert len(demo.lanes) == 2


def test_defaults_give_two_inbound_lanes(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ntrucks:\n" + TRUCK)
    spec = load_scenario(path).spec
    assert spec.lane_ids() == ["in-1", "in-2"]
    assert spec.trucks[0].tractor_plate == "51C12345"   # normalized for the camera
    assert spec.trucks[0].expect.opens() and spec.trucks[0].expect.crosses()


def test_unknown_key_is_located_with_the_allowed_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ntrucks:\n" + TRUCK + "    colour: red\n")
    (msg,) = problems(path)
    assert "s.yaml:11:5: trucks[0].colour" in msg
    assert "allowed keys here:" in msg and "tractor_plate" in msg


def test_plate_outside_every_grammar_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ntrucks:\n" + TRUCK.replace("51C-123.45", "ABC-1"))
    (msg,) = problems(path)
    assert "s.yaml:6:5: trucks[0].tractor_plate" in msg and "fits no plate grammar" in msg


def test_unknown_lane_and_bad_fault_are_located(tmp_path: Path) -> None:
    text = ("name: x\ntrucks:\n" + TRUCK.replace("lane: in-1", "lane: in-9")
            + "faults:\n  - {at: 5, kind: camera_cut, lane: in-7, duration_s: 3}\n")
    msgs = problems(write(tmp_path, text))
    assert any("s.yaml:5:5: trucks[0].lane: unknown lane 'in-9'" in m for m in msgs)
    assert any("faults[0].lane: unknown lane 'in-7'" in m for m in msgs)
    text = "name: x\ntrucks:\n" + TRUCK + "faults:\n  - {at: 5, kind: earthquake}\n"
    (msg,) = problems(write(tmp_path, text))
    assert "s.yaml:12" in msg and "faults[0]" in msg and "broker_outage" in msg


def test_bolt_seal_cannot_report_a_status(tmp_path: Path) -> None:
    text = "name: x\ntrucks:\n" + TRUCK.replace("type: bolt}", "type: bolt, status: tampered}")
    (msg,) = problems(write(tmp_path, text))
    assert "trucks[0].seals[0].status" in msg and "make it an e-seal" in msg


def test_inline_declaration_errors_point_into_the_scenario(tmp_path: Path) -> None:
    text = ("name: x\ndeclarations:\n" + DECLARATION.replace("MSKU1234565", "MSKU1234566")
            + "trucks:\n" + TRUCK)
    (msg,) = problems(write(tmp_path, text))
    assert "s.yaml:8:5: declarations[0].containers" in msg and "check digit" in msg


def test_declarations_file_errors_name_file_and_line(tmp_path: Path) -> None:
    good = (SCENARIOS / "demo-declarations.jsonl").read_text(encoding="utf-8").splitlines()
    records = [line for line in good if line.startswith("{")]
    (tmp_path / "d.jsonl").write_text("\n".join([records[0], '{"declaration_no": 5}', "{oops"]),
                                      encoding="utf-8")
    msgs = problems(write(tmp_path, "name: x\ndeclarations: d.jsonl\ntrucks:\n" + TRUCK))
    assert len(msgs) == 2
    assert msgs[0].startswith(f"{tmp_path / 'd.jsonl'}:2: declarations")
    assert msgs[1].startswith(f"{tmp_path / 'd.jsonl'}:3: declarations")
    missing = problems(write(tmp_path, "name: x\ndeclarations: nope.jsonl\ntrucks:\n" + TRUCK))
    assert "s.yaml:2:1: declarations: cannot read" in missing[0]


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, "name: x\ntrucks: [\n"))
    assert "s.yaml:" in msg and "YAML syntax error" in msg


def test_seals_are_read_before_the_entry_loop() -> None:
    truck = load_scenario(SCENARIOS / "one-truck.yaml").spec.trucks[0]
    assert time_to_entry_loop(truck) == pytest.approx((20.0 - 6.0) / 3.0)
    stop = truck.model_copy(update={"motion": truck.motion.model_copy(
        update={"stops": [(-12.0, 2.0), (-1.0, 9.0)]})})
    assert time_to_entry_loop(stop) == pytest.approx(14.0 / 3.0 + 2.0)  # only stops before it


def test_compare_names_every_mismatch() -> None:
    truck = load_scenario(SCENARIOS / "one-truck.yaml").spec.trucks[0]
    good = TruckOutcome(0, truck, event_id="E1", passage_id="P1", decision="open", reasons=[],
                        plates_read=["51C12345"], opened=True, passed=True)
    _compare(good)
    assert good.ok, good.problems
    refer = truck.model_copy(update={"expect": TruckExpect(decision=Outcome.REFER,
                                                           reasons=["SEAL_TAMPERED"])})
    bad = TruckOutcome(0, refer, event_id="E1", passage_id="P1", decision="open", reasons=[],
                       plates_read=["51C12845"], opened=True, passed=True, tailgating=True)
    _compare(bad)
    text = "; ".join(bad.problems)
    for expected in ("decision open, expected refer", "reasons lack SEAL_TAMPERED",
                     "tractor plate read as 51C12845", "barrier opened", "truck passed the arm",
                     "TAILGATING reported"):
        assert expected in text
    other = truck.model_copy(update={"name": "the truck before", "tractor_plate": "29C73804",
                                     "trailer_plate": "29R04567"})
    mixed = TruckOutcome(0, truck, event_id="E1", passage_id="P1", decision="open",
                         plates_read=["51C12345"], trailers_read=["29R04567"], opened=True,
                         passed=True)
    _compare(mixed, [other, truck])
    assert mixed.problems == ["read 29R04567 of truck 'the truck before' attached to this passage"]
    lost = TruckOutcome(0, truck)
    _compare(lost)
    assert "never reported this truck" in lost.problems[0]
    assert "no decision" in lost.problems[1]


def test_events_pair_with_trucks_in_order_unless_a_plate_says_otherwise() -> None:
    spec = load_scenario(SCENARIOS / "demo.yaml").spec
    lane = [(i, t) for i, t in enumerate(spec.trucks) if t.lane == "in-1"]
    plates = [t.tractor_plate for _, t in lane]
    events = [{"event": "vehicle_present", "event_id": f"E{k}"} for k in range(len(lane))]
    assert pair_events(lane, events, {}) == {k: f"E{k}" for k in range(len(lane))}
    # The controller never saw truck 0: the first event's passage read truck 1's plate.
    events = [{"event": "vehicle_present", "event_id": "E1"},
              {"event": "referred", "event_id": "E1", "passage_id": "P1"},
              {"event": "vehicle_present", "event_id": "E2"}]
    received = {"P1": {"reads": {"tractor": [{"text": plates[1]}]}}}
    assert pair_events(lane, events, received) == {1: "E1", 2: "E2"}


def test_speed_compresses_the_timeline_but_not_the_driving() -> None:
    from types import SimpleNamespace

    from simulators.scenario.runner import ScenarioRunner

    spec = load_scenario(SCENARIOS / "demo.yaml").spec
    lab = SimpleNamespace(spec=spec, rigs={lane: SimpleNamespace() for lane in spec.lane_ids()})
    plan = ScenarioRunner(lab, speed=2.0)._plan()  # type: ignore[arg-type]
    times = {a.what: a.at for a in plan}
    first = spec.trucks[0]
    assert times[f"in-1: truck '{first.name}' ({first.tractor_plate}) arrives"] == first.at / 2
    # seals are read a physical lead before the loop: driving time is not compressed
    lead = time_to_entry_loop(first) - spec.defaults.seal_lead_s
    assert times[f"in-1: seals of '{first.name}' read"] == pytest.approx(first.at / 2 + lead)
    outage = spec.faults[0]
    assert times["fault: MQTT broker stops"] == outage.at / 2
    assert times["fault cleared: MQTT broker back"] == (outage.at + outage.duration_s) / 2
    assert [a.at for a in plan] == sorted(a.at for a in plan)


def test_lane_faults_fail_the_run_unless_the_scenario_expects_them(tmp_path: Path) -> None:
    """A lane in fault waits for an officer: unprovoked, it is a failure of the run."""
    assert judge_lane_faults([], []) == []
    [msg] = judge_lane_faults([], [("in-1", "READBACK_MISMATCH")])
    assert "lane in-1 went into fault READBACK_MISMATCH" in msg and "expect_lane_faults" in msg
    assert judge_lane_faults(["ARM_TRAVEL_TIMEOUT"], [("in-2", "ARM_TRAVEL_TIMEOUT")]) == []
    assert judge_lane_faults(["LOOP_STUCK"], []) == [
        "expected lane fault LOOP_STUCK was never reported"]
    spec = load_scenario(write(tmp_path, "name: x\ntrucks:\n" + TRUCK
                               + "expect_lane_faults: [ARM_TRAVEL_TIMEOUT]\n")).spec
    assert spec.expect_lane_faults == ["ARM_TRAVEL_TIMEOUT"]
    (msg,) = problems(write(tmp_path, "name: x\ntrucks:\n" + TRUCK
                            + "expect_lane_faults: [ARM_BROKEN]\n"))
    assert "expect_lane_faults[0]" in msg and "LOOP_STUCK" in msg
