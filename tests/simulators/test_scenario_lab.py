"""The lab's devices without gate-edge: every process starts healthy, the runner's truck reaches
the real gate-controller through the relay-board simulator, and everything stops afterwards."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.request import urlopen

import pytest

from edge.config import load_config
from simulators.relay_board.control import ControlClient
from simulators.scenario.lab import Lab
from simulators.scenario.model import CameraCut, RelayBoardFault, SealNoise, load_scenario
from simulators.scenario.runner import ScenarioRunner

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_lab_devices_start_in_order_and_stop(tmp_path: Path) -> None:
    loaded = load_scenario(REPO / "config" / "scenarios" / "one-truck.yaml")
    faults = [RelayBoardFault(at=0.5, kind="relay_board", lane="in-1", fault="crc_errors",
                              target=0.2, duration_s=1.0),
              SealNoise(at=1.0, kind="seal_noise", lane="in-1", reader="bolt", bytes=32),
              CameraCut(at=1.5, kind="camera_cut", lane="in-1", duration_s=1.0)]
    defaults = loaded.spec.defaults.model_copy(update={"turn_back_after_s": 2.0, "settle_s": 30.0})
    spec = loaded.spec.model_copy(update={"faults": faults, "defaults": defaults})
    loaded = loaded.model_copy(update={"spec": spec})
    with Lab(loaded, tmp_path / "lab", start_edge=False) as lab:
        cfg = load_config(lab.config_path)       # what gate-edge run would be given
        assert [lane.id for lane in cfg.lanes] == ["in-1"]
        assert cfg.relay_boards[0].port == str(lab.rigs["in-1"].relay_link)
        assert [s.name for s in cfg.seal_readers] == ["bolt-in-1"]     # eseal_reader: false
        pids = [p.proc.pid for rig in lab.rigs.values() for p in rig.processes.values()
                if p.proc is not None]
        assert lab.central is not None and lab.central.proc is not None
        pids.append(lab.central.proc.pid)
        assert lab.broker_proc is not None and lab.broker_proc.proc is not None
        pids.append(lab.broker_proc.proc.pid)
        assert len(pids) == 6 and all(_alive(pid) for pid in pids)
        camera_pid = lab.rigs["in-1"].processes["camera"].proc.pid  # type: ignore[union-attr]
        result = ScenarioRunner(lab).run()
        rig = lab.rigs["in-1"]
        client = ControlClient(rig.relay_control)
        state = client.call("state")["state"]
        client.close()
        # the controller polls every 50 ms: one second at p=0.2 corrupts some answers, then clear
        assert state["faults"] == {} and state["garbled"] > 0
        # the camera was cut (its process replaced) and answers again on the same port
        assert not _alive(camera_pid)
        assert rig.processes["camera"].proc is not None and urlopen(rig.camera_url + "/state")
    assert [f.split(" ", 1)[1] for f in result.fault_log] == [
        "in-1 relay crc_errors on", "bolt-in-1 noise", "in-1 relay crc_errors off",
        "camera in-1 cut", "camera in-1 back"]
    (truck,) = result.trucks
    # Nobody decided (no gate-edge): the controller saw the truck, kept the arm down, and the
    # driver reversed out; the runner reports exactly that.
    assert truck.event_id is not None and not truck.opened and truck.passed is False
    assert "the centre received no decision for this truck" in truck.problems
    assert "barrier never opened" in truck.problems and not result.ok
    assert not any(_alive(pid) for pid in pids)
    assert not (tmp_path / "lab" / "run" / "relay-in-1.ctl").exists()
    assert lab.broker_proc is not None and lab.broker_proc.proc is None   # stopped
