"""The systemd units, sysusers/tmpfiles entries and udev rules in systemd/, checked for real.

Static checks read the unit files the way systemd does (repeated keys, continuation lines) and
hold them against the code they start: the console scripts pyproject declares and the options
their CLIs accept, the credential names the config reads, the directories the config uses.
Where systemd's own tools are installed (Debian's ``systemd`` and ``udev`` packages), they judge
the files too: ``systemd-analyze verify`` and ``security --offline``, ``systemd-sysusers`` and
``systemd-tmpfiles`` on a scratch root, and ``udevadm test`` on a synthetic sysfs inside a
private mount namespace, so the udev rules are shown to name real FTDI, CH340 and Prolific
adapters, not merely to parse.
"""

from __future__ import annotations

import grp
import importlib
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer

from edge.config import load_config
from gate_controller.config import RelayBoardConfig
from tests.systemd import fake_sysfs

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
UNITS = ["gate-edge.service", "gate-controller@.service", "gate-sim@.service"]
VENV_BIN = "/opt/gate-edge/.venv/bin/"
EXAMPLE_CONFIG = REPO / "config" / "gate-edge.example.yaml"

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(text: str) -> Unit:
    """Sections -> (key, value) in file order; keys may repeat, as in systemd.syntax(7)."""
    sections: Unit = {}
    current: list[tuple[str, str]] | None = None
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        line, logical = logical + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def unit(name: str) -> Unit:
    return parse_unit((SYSTEMD / name).read_text(encoding="utf-8"))


def values(u: Unit, section: str, key: str) -> list[str]:
    return [v for k, v in u.get(section, []) if k == key]


def single(u: Unit, section: str, key: str) -> str:
    found = values(u, section, key)
    assert len(found) == 1, f"[{section}] {key}= given {len(found)} times"
    return found[0]


def seconds(text: str) -> float:
    """A systemd time span (90, 90s, 2min, 1min 30s) in seconds."""
    factors = {"": 1, "s": 1, "sec": 1, "ms": 0.001, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    for number, suffix in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text):
        total += float(number) * factors[suffix]
    return total


# -- static checks of the units ---------------------------------------------------------------

HARDENING = {
    "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "NoNewPrivileges": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "ProtectClock": "yes",
    "ProtectHostname": "yes", "RestrictNamespaces": "yes", "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "SystemCallArchitectures": "native",
    "DevicePolicy": "closed", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
}


@pytest.mark.parametrize("name", UNITS)
def test_every_unit_carries_the_required_hardening(name: str) -> None:
    u = unit(name)
    missing = {k: v for k, v in HARDENING.items() if values(u, "Service", k) != [v]}
    assert not missing, f"{name}: set exactly once: {missing}"
    assert single(u, "Service", "User") not in {"", "root", "0"}
    assert "DynamicUser" not in dict(u["Service"]), "dedicated users own the serial ports"
    assert "@system-service" in values(u, "Service", "SystemCallFilter")
    families = single(u, "Service", "RestrictAddressFamilies").split()
    assert set(families) <= {"AF_UNIX", "AF_INET", "AF_INET6"}, families
    # serial ports are granted by device class only, never /dev wholesale
    assert all(v.startswith(("char-", "/dev/ptmx")) for v in values(u, "Service", "DeviceAllow"))


def _allows_chown(u: Unit) -> bool:
    """Whether the unit's SystemCallFilter= (an allow list edited in order) leaves @chown in."""
    allowed = False
    for entry in values(u, "Service", "SystemCallFilter"):
        deny = entry.startswith("~")
        groups = set(entry.lstrip("~").split())
        if deny and groups & {"@chown", "@privileged"}:
            allowed = False
        elif not deny and groups & {"@chown", "@system-service"}:  # @system-service holds @chown
            allowed = True
    return allowed


@pytest.mark.parametrize("name", UNITS)
def test_commands_that_chown_are_not_blocked_by_the_syscall_filter(name: str) -> None:
    u = unit(name)
    commands = " ".join(v for k, v in u["Service"] if k.startswith("Exec"))
    if re.search(r"\bch(own|grp)\b", commands):
        assert _allows_chown(u), f"{name} runs chown/chgrp but its SystemCallFilter= removes @chown"


def _console_scripts() -> dict[str, str]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    scripts: dict[str, str] = pyproject["project"]["scripts"]
    return scripts


def _click_command(script: str) -> Any:
    """The script's click command (typer ≥ 0.22 ships its own copy of click: no click types here)."""
    module_name = _console_scripts()[script].split(":")[0]
    module = importlib.import_module(module_name)
    return typer.main.get_command(module.app)


def _parse_cli(script: str, argv: list[str]) -> list[str]:
    """Walk ``argv`` down the script's real click command tree, parsing options as it would."""
    command = _click_command(script)
    ctx = command.make_context(script, list(argv), resilient_parsing=False)
    path = []
    while hasattr(command, "get_command"):  # a group
        # a group keeps the sub-command's name and arguments unparsed (click renamed the
        # attribute to _protected_args in 8.2)
        protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])
        pending = [*protected, *ctx.args]
        assert pending, f"{script}: no sub-command in {argv}"
        sub_name, rest = pending[0], pending[1:]
        sub = command.get_command(ctx, sub_name)
        if sub is None:
            raise LookupError(f"{script} has no sub-command {sub_name!r}")
        path.append(sub_name)
        ctx = sub.make_context(sub_name, rest, parent=ctx, resilient_parsing=False)
        command = sub
    return path


@pytest.mark.parametrize("name", UNITS)
def test_exec_start_is_a_declared_console_script_with_valid_arguments(name: str) -> None:
    exec_start = single(unit(name), "Service", "ExecStart")
    argv = shlex.split(exec_start.replace("%i", "board1"))
    assert argv[0].startswith(VENV_BIN), argv[0]
    script = argv[0].removeprefix(VENV_BIN)
    assert script in _console_scripts(), f"{script} is not in [project.scripts]"
    if script == "gate-sim":
        assert argv[1:] == ["$GATE_SIM_ARGS"]  # checked per instance file below
        return
    try:
        path = _parse_cli(script, argv[1:])
    except LookupError as exc:
        if argv[1:2] == ["run"] and script == "gate-edge":
            pytest.skip(f"waiting for the daemon's 'gate-edge run' (issue 9 part 1): {exc}")
        raise
    assert path == ["run"]


@pytest.mark.parametrize("name", ["gate-edge.service", "gate-controller@.service"])
def test_notify_units_have_a_watchdog(name: str) -> None:
    u = unit(name)
    assert single(u, "Service", "Type") == "notify"
    assert single(u, "Service", "NotifyAccess") == "main"
    assert seconds(single(u, "Service", "WatchdogSec")) > 0
    assert single(u, "Service", "Restart") == "always"


def test_gate_edge_stops_gracefully() -> None:
    u = unit("gate-edge.service")
    assert single(u, "Service", "KillSignal") == "SIGTERM"
    assert single(u, "Service", "KillMode") == "mixed"
    # long enough for the truck under the arm to clear and the passage to be written
    assert seconds(single(u, "Service", "TimeoutStopSec")) >= 60
    # bad command line (2) or configuration (78, EX_CONFIG): no restart loop
    assert set(single(u, "Service", "RestartPreventExitStatus").split()) == {"2", "78"}


def test_gate_edge_and_controllers_start_and_stop_in_order_but_independently() -> None:
    edge, controller = unit("gate-edge.service"), unit("gate-controller@.service")
    assert "gate-edge.service" in " ".join(values(controller, "Unit", "Before"))
    coupling = ("Requires", "Requisite", "BindsTo", "PartOf", "Upholds", "Conflicts", "PropagatesStopTo")
    for key in coupling:
        assert not any("gate-controller" in v for v in values(edge, "Unit", key)), key
        assert not any("gate-edge.service" in v for v in values(controller, "Unit", key)), key


def test_credentials_are_the_names_the_config_reads() -> None:
    cfg = load_config(EXAMPLE_CONFIG)
    assert cfg.mqtt.tls.key_file is not None and cfg.mqtt.site_key is not None
    wanted = {str(cfg.mqtt.tls.key_file), str(cfg.mqtt.site_key.private_key_file),
              cfg.console.session_secret_credential}
    loaded = {}
    for value in values(unit("gate-edge.service"), "Service", "LoadCredential"):
        cred_id, _, source = value.partition(":")
        loaded[cred_id] = source
    assert set(loaded) == wanted
    assert all(src.startswith("/etc/credstore/") for src in loaded.values()), loaded


def test_encrypted_credentials_drop_in_replaces_every_plain_credential() -> None:
    plain = {v.partition(":")[0] for v in values(unit("gate-edge.service"), "Service", "LoadCredential")}
    drop_in = unit("gate-edge-credentials-encrypted.conf")
    assert values(drop_in, "Service", "LoadCredential") == [""]
    assert drop_in["Service"][0] == ("LoadCredential", "")  # the reset comes first
    encrypted = values(drop_in, "Service", "LoadCredentialEncrypted")
    assert {v.partition(":")[0] for v in encrypted} == plain
    assert all(v.partition(":")[2].startswith("/etc/credstore.encrypted/") for v in encrypted)


def test_directories_agree_with_the_config_and_the_controller() -> None:
    cfg = load_config(EXAMPLE_CONFIG)
    edge, controller = unit("gate-edge.service"), unit("gate-controller@.service")
    assert Path("/var/lib") / single(edge, "Service", "StateDirectory") == cfg.storage.dir
    sock = Path(RelayBoardConfig.model_fields["ipc_socket"].default)
    assert sock.parent == Path("/run") / single(controller, "Service", "RuntimeDirectory")
    # gate-edge must not own /run/gate-edge: stopping it would delete the controllers' sockets
    assert values(edge, "Service", "RuntimeDirectory") == []
    tmpfiles = (SYSTEMD / "gate-edge.tmpfiles.conf").read_text(encoding="utf-8")
    assert re.search(r"^d\s+/run/gate-edge\s+0770\s+gate-controller\s+gate-edge", tmpfiles, re.M)


def test_unit_users_are_created_by_sysusers() -> None:
    sysusers = (SYSTEMD / "gate-edge.sysusers.conf").read_text(encoding="utf-8")
    users = set(re.findall(r"^u\s+(\S+)", sysusers, re.M))
    groups = set(re.findall(r"^g\s+(\S+)", sysusers, re.M)) | {"dialout"}
    for name in UNITS:
        u = unit(name)
        assert single(u, "Service", "User") in users
        assert single(u, "Service", "Group") in groups
        assert set(" ".join(values(u, "Service", "SupplementaryGroups")).split()) <= groups


# -- gate-sim instance files ------------------------------------------------------------------

SIM_CONFS = sorted((SYSTEMD / "gate-sim").glob("*.conf"))


def _env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


@pytest.mark.parametrize("conf", SIM_CONFS, ids=[p.stem for p in SIM_CONFS])
def test_gate_sim_instances_parse_against_the_real_cli(conf: Path, tmp_path: Path) -> None:
    env = _env_file(conf)
    argv = env["GATE_SIM_ARGS"].split()  # systemd splits $VAR on white space, no quoting
    # files the bench keeps in /etc/gate-sim (keys) must exist for the CLI to accept them
    staged = []
    for arg in argv:
        for found in re.findall(r"/etc/gate-sim/[\w.-]+", arg):
            (tmp_path / Path(found).name).write_text("", encoding="ascii")
        staged.append(arg.replace("/etc/gate-sim/", f"{tmp_path}/"))
    [command] = _parse_cli("gate-sim", staged)
    own_dir = f"/run/gate-sim/{conf.stem}/"  # RuntimeDirectory=gate-sim/%i
    options = dict(zip(argv[1::2], argv[2::2], strict=False))
    for option in ("--link", "--control"):
        if option in options:
            assert options[option].startswith(own_dir), (option, options[option])
    if command in {"relay-board", "seal-reader", "barcode-scanner"}:
        assert env.get("GATE_SIM_PORT") == options["--link"], "ExecStartPost shares this pty"
        # stdin is /dev/null under systemd: without a control socket the simulator ends at EOF
        assert "--control" in options


def test_gate_sim_hands_its_pty_to_group_gate_edge(tmp_path: Path) -> None:
    """ExecStartPost= really makes the simulator's pty openable by the other gate users.

    Run as systemd would: ``$$`` unescaped to ``$``, the instance's environment set. The group
    is swapped for this process's own (there is no gate-edge group on a CI machine).
    """
    post = single(unit("gate-sim@.service"), "Service", "ExecStartPost")
    shell, flag, script = shlex.split(post.replace("$$", "$"))
    assert (shell, flag) == ("/bin/sh", "-c")
    group = grp.getgrgid(os.getgid()).gr_name
    script = script.replace("chgrp gate-edge", f"chgrp {group}")
    master, slave = os.openpty()
    try:
        link = tmp_path / "port"
        link.symlink_to(os.ttyname(slave))
        os.chmod(os.ttyname(slave), 0o620)
        env = {"GATE_SIM_PORT": str(link), "PATH": "/usr/bin:/bin"}
        done = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True,
                              timeout=30, check=False)
        assert done.returncode == 0, done
        st = os.stat(os.ttyname(slave))
        assert (st.st_mode & 0o777, st.st_gid) == (0o660, os.getgid())
        # instances without a serial port (camera, central) skip the step
        none = subprocess.run(["/bin/sh", "-c", script], env={"PATH": "/usr/bin:/bin"}, timeout=30,
                              check=False)
        assert none.returncode == 0
    finally:
        os.close(master)
        os.close(slave)


def test_there_is_an_instance_example_of_every_serial_simulator() -> None:
    commands = {_env_file(p)["GATE_SIM_ARGS"].split()[0] for p in SIM_CONFS}
    assert {"relay-board", "seal-reader", "barcode-scanner", "camera", "central"} <= commands


# -- systemd's own tools ----------------------------------------------------------------------

def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian package "
                    f"{'udev' if name == 'udevadm' else 'systemd'})")
    return path


@pytest.fixture
def units_with_stub_binaries(tmp_path: Path) -> Path:
    """Copies of the units whose ExecStart points at stub scripts, plus the lab drop-ins.

    ``systemd-analyze verify`` insists that the ExecStart binary exists; the venv lives in
    /opt/gate-edge only on an installed PC, so stubs stand in for the console scripts.
    """
    stub_bin = tmp_path / "bin"
    stub_bin.mkdir()
    for script in _console_scripts():
        stub = stub_bin / script
        stub.write_text("#!/bin/sh\nexit 0\n", encoding="ascii")
        stub.chmod(0o755)
    out = tmp_path / "units"
    out.mkdir()
    for name in UNITS:
        text = (SYSTEMD / name).read_text(encoding="utf-8").replace(VENV_BIN, f"{stub_bin}/")
        (out / name).write_text(text, encoding="utf-8")
    shutil.copytree(SYSTEMD / "lab", out, dirs_exist_ok=True)  # the *.service.d drop-ins
    shutil.copy(SYSTEMD / "gate-edge-credentials-encrypted.conf", out / "gate-edge.service.d")
    # instances, as systemctl would start them
    shutil.copy(out / "gate-controller@.service", out / "gate-controller@board1.service")
    shutil.copy(out / "gate-sim@.service", out / "gate-sim@board1.service")
    shutil.copytree(out / "gate-controller@.service.d", out / "gate-controller@board1.service.d")
    return out


def test_systemd_analyze_verify_is_silent(units_with_stub_binaries: Path) -> None:
    analyze = _tool("systemd-analyze")
    names = ["gate-edge.service", "gate-controller@board1.service", "gate-sim@board1.service"]
    result = subprocess.run([analyze, "verify", "--man=no", *names], cwd=units_with_stub_binaries,
                            capture_output=True, text=True, timeout=60, check=False)
    # verify exits 0 even for unknown keys or bad values; any line it prints is a problem
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result


def test_systemd_analyze_verify_catches_a_broken_unit(units_with_stub_binaries: Path) -> None:
    """The test above would notice a mistake: a misspelt key and value are reported."""
    analyze = _tool("systemd-analyze")
    broken = units_with_stub_binaries / "gate-edge.service"
    broken.write_text(broken.read_text(encoding="utf-8").replace(
        "ProtectSystem=strict", "ProtectSystem=stricter\nProtectSytem=strict"), encoding="utf-8")
    result = subprocess.run([analyze, "verify", "--man=no", "gate-edge.service"],
                            cwd=units_with_stub_binaries, capture_output=True, text=True,
                            timeout=60, check=False)
    assert "ProtectSytem" in result.stderr and "stricter" in result.stderr


@pytest.mark.parametrize("name", ["gate-edge.service", "gate-controller@board1.service",
                                  "gate-sim@board1.service"])
def test_security_exposure_is_low(units_with_stub_binaries: Path, name: str) -> None:
    analyze = _tool("systemd-analyze")
    result = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", name],
                            cwd=units_with_stub_binaries, capture_output=True, text=True,
                            timeout=60, check=False)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    # systemd's scale: 0 (locked down) .. 10 (unsafe); below 2.5 it says "OK"
    assert float(found.group(1)) <= 2.5, result.stdout


def test_sysusers_and_tmpfiles_on_a_scratch_root(tmp_path: Path) -> None:
    sysusers, tmpfiles = _tool("systemd-sysusers"), _tool("systemd-tmpfiles")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "group").write_text("root:x:0:\ndialout:x:20:\n", encoding="ascii")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n", encoding="ascii")
    for cmd in ([sysusers, f"--root={root}", str(SYSTEMD / "gate-edge.sysusers.conf")],
                [tmpfiles, f"--root={root}", "--create", str(SYSTEMD / "gate-edge.tmpfiles.conf")]):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result
    passwd = {line.split(":")[0]: line.split(":") for line in
              (root / "etc/passwd").read_text(encoding="ascii").splitlines()}
    group = {line.split(":")[0]: line.split(":") for line in
             (root / "etc/group").read_text(encoding="ascii").splitlines()}
    gid = group["gate-edge"][2]
    assert {passwd[u][3] for u in ("gate-edge", "gate-controller", "gate-sim")} == {gid}
    assert passwd["gate-edge"][5] == "/var/lib/gate-edge"
    # only the controller may open serial ports udev has not named; gate-edge reads its seals
    assert group["dialout"][3].split(",") == ["gate-controller"]
    run_dir = (root / "run/gate-edge").stat()
    assert (run_dir.st_mode & 0o7777, run_dir.st_uid, str(run_dir.st_gid)) == (
        0o770, int(passwd["gate-controller"][2]), gid)
    assert (root / "etc/credstore").stat().st_mode & 0o777 == 0o700


# -- udev rules -------------------------------------------------------------------------------

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
    udevadm = _tool("udevadm")
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
