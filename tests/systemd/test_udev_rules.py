"""The udev rules of systemd/99-gate-edge.rules, checked statically and by the real udevadm.

There is no USB adapter on a build machine, so ``udevadm test`` runs against a synthetic sysfs
(tests/systemd/fake_sysfs.py) of FTDI, CH340 and Prolific adapters, bind-mounted over /sys in a
private mount namespace; the rules are shown to name the right adapters and leave others alone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.config import load_config
from tests.systemd import fake_sysfs
from tests.systemd.unitfiles import EXAMPLE_CONFIG, SYSTEMD, tool

RULES = SYSTEMD / "99-gate-edge.rules"
MATCH_KEYS = {"ACTION", "SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "KERNELS", "DRIVER", "DRIVERS",
              "ATTR", "ATTRS", "ENV", "TAG"}
ASSIGN_KEYS = {"SYMLINK", "GROUP", "MODE", "OWNER", "ENV", "TAG", "ATTR", "GOTO", "LABEL", "RUN"}
TOKEN = re.compile(r'\s*(?P<key>[A-Z_]+)(?:\{(?P<attr>[^}]+)\})?\s*(?P<op>==|!=|\+=|-=|:=|=)\s*'
                   r'"(?P<value>[^"]*)"\s*(?:,|$)')


def _rule_lines() -> list[str]:
    return [line for line in RULES.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_udev_rule_syntax() -> None:
    labels, gotos = set(), set()
    for line in _rule_lines():
        pos, tokens = 0, []
        while pos < len(line):
            m = TOKEN.match(line, pos)
            assert m, f"cannot parse at column {pos}: {line!r}"
            tokens.append(m)
            pos = m.end()
        for m in tokens:
            key, op = m["key"], m["op"]
            allowed = MATCH_KEYS if op in {"==", "!="} else ASSIGN_KEYS
            assert key in allowed, f"{key}{op} is not valid udev: {line!r}"
            if key == "LABEL":
                labels.add(m["value"])
            if key == "GOTO":
                gotos.add(m["value"])
        if any(m["key"] == "SYMLINK" for m in tokens):
            link = next(m["value"] for m in tokens if m["key"] == "SYMLINK")
            assert re.fullmatch(r"gate-(relay-\d+|eseal-[a-z0-9-]+|bolt-[a-z0-9-]+)", link), link
            assert any(m["key"] == "ENV" and m["attr"] == "GATE_EDGE_PORT" for m in tokens), line
    assert gotos and gotos <= labels


def test_every_port_of_the_example_config_has_a_udev_name() -> None:
    cfg = load_config(EXAMPLE_CONFIG)
    links = {f"/dev/{v}" for v in re.findall(r'SYMLINK\+="([^"]+)"', RULES.read_text(encoding="utf-8"))}
    ports = {str(board.port) for board in cfg.relay_boards} | {str(r.port) for r in cfg.seal_readers}
    assert ports <= links, ports - links


def test_drivers_of_the_named_adapters_are_loaded_at_boot() -> None:
    modules = set((SYSTEMD / "gate-edge.modules-load.conf").read_text(encoding="utf-8").split())
    vendor_driver = {"0403": "ftdi_sio", "1a86": "ch341", "067b": "pl2303", "10c4": "cp210x"}
    vendors = set(re.findall(r'ENV\{ID_VENDOR_ID\}=="([0-9a-f]{4})"', RULES.read_text(encoding="utf-8")))
    assert {"usbserial"} | {vendor_driver[v] for v in vendors} <= modules


ADAPTERS = {
    # the rules' own examples ...
    "gate-relay-1": fake_sysfs.UsbSerial("ttyUSB0", "0403", "6001", "1", "ftdi_sio", serial="A10KZ3N5",
                                         manufacturer="FTDI", product_name="FT232R USB UART"),
    "gate-relay-2": fake_sysfs.UsbSerial("ttyUSB1", "1a86", "7523", "2", "ch341",
                                         product_name="USB Serial"),
    "gate-eseal-in1": fake_sysfs.UsbSerial("ttyUSB2", "0403", "6010", "4", "ftdi_sio",
                                           serial="FT6Q2X9B", interface=0, product_name="Dual RS232-HS"),
    "gate-bolt-in1": fake_sysfs.UsbSerial("ttyUSB3", "0403", "6010", "4", "ftdi_sio",
                                          serial="FT6Q2X9B", interface=1, product_name="Dual RS232-HS"),
    "gate-bolt-in2": fake_sysfs.UsbSerial("ttyUSB4", "067b", "2303", "3.2", "pl2303",
                                          manufacturer="Prolific Technology Inc."),
    # ... and adapters that must get no gate name
    "other-ftdi": fake_sysfs.UsbSerial("ttyUSB5", "0403", "6001", "5", "ftdi_sio", serial="AB0XYZ12"),
    "ch340-moved": fake_sysfs.UsbSerial("ttyUSB6", "1a86", "7523", "3.4", "ch341"),
}
UDEV_SCRIPT = """
set -e
mount --bind "$FAKE_SYS" /sys
mount --bind "$RULES_DIR" /etc/udev/rules.d
mount --bind "$GROUP_FILE" /etc/group
mount --bind "$PASSWD_FILE" /etc/passwd
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev
for p in $SYSPATHS; do
    echo "@@@ device $p"
    udevadm test --action=add "$p" 2>&1
done
"""


@pytest.fixture(scope="module")
def udev_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``udevadm test`` of every adapter, in a mount namespace whose /sys is the fake tree.

    /dev and /run are private tmpfs mounts there: udevadm 252's ``test`` really creates the
    links and its database, and must not touch the host's.
    """
    udevadm = tool("udevadm")
    tmp_path = tmp_path_factory.mktemp("udev")
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare not installed (Debian package util-linux)")
    probe = subprocess.run([unshare, "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here (needs root): {probe.stderr.strip()}")
    sys_root = tmp_path / "sys"
    fake_sysfs.build(sys_root, list(ADAPTERS.values()))
    rules_dir = tmp_path / "rules.d"
    rules_dir.mkdir()
    shutil.copy(RULES, rules_dir)
    group_file = tmp_path / "group"
    group_file.write_text(Path("/etc/group").read_text(encoding="utf-8") + "gate-edge:x:64123:\n",
                          encoding="utf-8")
    passwd_file = tmp_path / "passwd"
    passwd_file.write_text(Path("/etc/passwd").read_text(encoding="utf-8")
                           + "gate-controller:x:64124:64123::/:/usr/sbin/nologin\n", encoding="utf-8")
    syspaths = {name: "/sys/" + a.syspath() for name, a in ADAPTERS.items()}
    syspaths["latency"] = "/sys/" + ADAPTERS["gate-relay-1"].usb_serial_path()
    env = {"FAKE_SYS": str(sys_root), "RULES_DIR": str(rules_dir), "GROUP_FILE": str(group_file),
           "PASSWD_FILE": str(passwd_file),
           "SYSPATHS": " ".join(syspaths.values()), "PATH": str(Path(udevadm).parent) + ":/usr/bin:/bin",
           # sd-device refuses a /sys that is not sysfs unless told this is a test (systemd's own
           # test suite does the same)
           "SYSTEMD_DEVICE_VERIFY_SYSFS": "0"}
    result = subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c", UDEV_SCRIPT],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out: dict[str, str] = {}
    for name, syspath in syspaths.items():
        start = result.stdout.index(f"@@@ device {syspath}\n")
        end = result.stdout.find("@@@ device ", start + 4)
        out[name] = result.stdout[start:end if end >= 0 else None]
    out["__sysfs__"] = str(sys_root)
    return out


def _devlinks(log: str) -> set[str]:
    found = re.search(r"^DEVLINKS=(.*)$", log, re.M)
    return set(found.group(1).split()) if found else set()


def test_udevadm_names_each_adapter(udev_run: dict[str, str]) -> None:
    for name in ("gate-relay-1", "gate-relay-2", "gate-eseal-in1", "gate-bolt-in1", "gate-bolt-in2"):
        log = udev_run[name]
        assert "99-gate-edge.rules" in log and "Invalid" not in log and "Unknown" not in log, log
        gate_links = {link for link in _devlinks(log) if link.startswith("/dev/gate-")}
        assert gate_links == {f"/dev/{name}"}, (name, log)
        if name.startswith("gate-relay-"):
            # only gate-controller may open a relay board: gate-edge never writes coils itself
            assert re.search(r"99-gate-edge\.rules:\d+ OWNER 64124", log), log
            assert re.search(r"99-gate-edge\.rules:\d+ MODE 0600", log), log
            assert "GROUP 64123" not in log
        else:
            assert re.search(r"99-gate-edge\.rules:\d+ GROUP 64123", log), log
            assert re.search(r"99-gate-edge\.rules:\d+ MODE 0660", log), log
            assert "OWNER 64124" not in log
        assert "ID_MM_DEVICE_IGNORE=1" in log and re.search(r"^TAGS=.*:systemd:", log, re.M)


def test_udevadm_leaves_other_adapters_alone(udev_run: dict[str, str]) -> None:
    for name in ("other-ftdi", "ch340-moved"):
        log = udev_run[name]
        assert not any(link.startswith("/dev/gate-") for link in _devlinks(log)), log
        assert "GATE_EDGE_PORT" not in log and "64123" not in log and "64124" not in log, log
        # the system's own stable names are still there to find it by
        assert any(link.startswith("/dev/serial/by-path/") for link in _devlinks(log)), log


def test_udevadm_sets_the_ftdi_latency_timer(udev_run: dict[str, str]) -> None:
    # udevadm test only simulates attribute writes, and says which it would make
    port = ADAPTERS["gate-relay-1"].usb_serial_path()
    assert re.search(rf"99-gate-edge\.rules:\d+ ATTR '/sys/{re.escape(port)}/latency_timer' writing '1'",
                     udev_run["latency"]), udev_run["latency"]
