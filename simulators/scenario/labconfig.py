"""The gate-edge YAML the lab writes for its simulated devices (an ordinary config file).

Written as text with comments rather than dumped from the model, so an engineer can open
``<lab dir>/gate-edge.yaml`` next to config/gate-edge.example.yaml and see the same layout:
what the lab changes is only where each device is (ptys, loopback ports) and the keys.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulators.scenario.lab import Lab


#: frames per second the camera simulators render and the readers analyse: every frame is read,
#: none is decoded only to be dropped, and no backlog builds up in the stream's socket buffer
CAMERA_FPS = 2


def _q(value: object) -> str:
    """A YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(str(value), ensure_ascii=False)


def gate_edge_config(lab: Lab, *, broker_port: int) -> str:
    """The config text for ``gate-edge run`` and the lab's gate-controllers."""
    spec = lab.spec
    lines = [
        "# Written by the scenario lab (simulators/scenario/lab.py) for "
        f"{lab.scenario.path.name}.",
        "# Every device is a simulator on this machine: ptys under dev/, loopback ports.",
        "site:",
        f"  code: {spec.site.code}",
        f"  name: {_q(spec.site.name)}",
        "  country: VN",
        "  neighbour: CN",
        "lanes:",
    ]
    for rig in lab.rigs.values():
        lane = rig.lane
        readers = [f"eseal-{lane.id}"] * bool(rig.eseal_link) + [f"bolt-{lane.id}"] * bool(
            rig.bolt_link)
        lines += [
            f"  - id: {lane.id}",
            f"    name: {_q(lane.name or lane.id)}",
            f"    direction: {lane.direction}",
            f"    relay_board: {rig.board}",
            f"    cameras: [cam-{lane.id}-front, cam-{lane.id}-rear]",
            f"    seal_readers: [{', '.join(readers)}]",
            f"    aeo_priority: {str(lane.aeo_priority).lower()}",
        ]
    lines.append("cameras:")
    for rig in lab.rigs.values():
        for view, role in (("front", "tractor"), ("rear", "container")):
            lines += [
                f"  - name: cam-{rig.lane.id}-{view}",
                "    type: http-mjpeg",
                f"    url: {rig.camera_url}/{view}.mjpg",
                f"    role: {role}",
                f"    max_fps: {CAMERA_FPS}",
                f"    idle_fps: {CAMERA_FPS}           # read while the truck rolls in (pre-roll)",
                "    reconnect_min: 0.5",
                "    reconnect_max: 2",
            ]
    lines.append("seal_readers:")
    for rig in lab.rigs.values():
        if rig.eseal_link:
            lines += [f"  - name: eseal-{rig.lane.id}", "    type: eseal",
                      f"    port: {_q(rig.eseal_link)}", "    reconnect_max_s: 2"]
        if rig.bolt_link:
            lines += [f"  - name: bolt-{rig.lane.id}", "    type: barcode",
                      f"    port: {_q(rig.bolt_link)}", "    reconnect_max_s: 2"]
    lines.append("relay_boards:")
    for rig in lab.rigs.values():
        lines += [
            f"  - name: {rig.board}",
            f"    lane: {rig.lane.id}",
            f"    port: {_q(rig.relay_link)}",
            "    baudrate: 115200",
            "    slave_id: 1",
            "    timeout_s: 1.0               # the board is a Python process sharing a busy CPU",
            f"    ipc_socket: {_q(rig.controller_socket)}",
        ]
    lines += [
        "plate_reader:",
        "  threads: 1                   # every camera has its own reader process; 2 cores here",
        "passages:",
        "  deadline: 10s                # generous: the lab shares 2 cores with everything",
        "  trailer_wait: 5s",
        "mqtt:",
        "  enabled: true",
        "  brokers:",
        f"    - {{host: 127.0.0.1, port: {broker_port}, tls: false}}   # loopback lab broker",
        "  central_keys:",
        f"    - {{id: {lab_central_kid()}, public_key: {_q(lab.central_key.public_b64)}}}",
        "  site_key:",
        f"    id: {lab.site_kid}",
        f"    private_key_file: {_q(lab.site_key.private_path)}",
        "  backoff_min: 0.2s",
        "  backoff_max: 2s",
        "  connect_timeout: 3s",
        "  keepalive: 5s",
        "  resync_timeout: 3s",
        "storage:",
        f"  dir: {_q(lab.storage_dir)}",
        "  min_free_mb: 10",
        "console:",
        "  enabled: true",
        "  host: 127.0.0.1",
        f"  port: {lab.console_port}",
        "  secure_cookies: false        # plain HTTP on loopback in the lab",
        "",
    ]
    return "\n".join(lines)


def lab_central_kid() -> str:
    """Key id the lab's central simulator signs with."""
    from simulators.scenario.lab import CENTRAL_KID

    return CENTRAL_KID
