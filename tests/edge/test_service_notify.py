"""sd_notify and the health watchdog against a real AF_UNIX datagram socket, as systemd binds one.

No systemd here (DESIGN-NOTES §12), so each test plays the service manager: it binds a datagram
socket (in the file system, or in the abstract namespace, which ``NOTIFY_SOCKET=@name`` names
and container managers use), hands its address over as NOTIFY_SOCKET and reads what gate-edge
sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.service_notify import HealthWatchdog, ServiceNotifier, progressing, task_alive


@dataclass
class NotifySocket:
    """The service manager's end: a bound datagram socket and the NOTIFY_SOCKET value for it."""

    sock: socket.socket
    address: str

    def env(self, **extra: str) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.address, **extra}

    def messages(self) -> list[dict[str, str]]:
        """Every datagram waiting, each parsed into its KEY=VALUE assignments."""
        out: list[dict[str, str]] = []
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return out
            fields = dict(line.split("=", 1) for line in data.decode("utf-8").split("\n"))
            out.append(fields)


@pytest.fixture
def path_socket() -> Iterator[NotifySocket]:
    # a short directory: AF_UNIX paths are limited to 107 bytes, pytest's tmp_path can exceed it
    folder = Path(tempfile.mkdtemp(prefix="sdn-", dir="/tmp"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(folder / "notify"))
    sock.setblocking(False)
    try:
        yield NotifySocket(sock, str(folder / "notify"))
    finally:
        sock.close()
        shutil.rmtree(folder)


@pytest.fixture
def abstract_socket() -> Iterator[NotifySocket]:
    name = f"gate-edge-test/notify-{secrets.token_hex(6)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    try:
        yield NotifySocket(sock, "@" + name)
    finally:
        sock.close()


def test_ready_status_stopping_reach_a_path_socket(path_socket: NotifySocket) -> None:
    notifier = ServiceNotifier(path_socket.env())
    assert notifier.enabled
    notifier.ready("2 lanes up")
    notifier.status("outbox 3\nwaiting")  # a newline must not start a new assignment
    notifier.stopping("finishing passage 01JD...")
    notifier.extend_timeout(12.5)
    notifier.close()
    assert path_socket.messages() == [
        {"READY": "1", "STATUS": "2 lanes up"},
        {"STATUS": "outbox 3 waiting"},
        {"STOPPING": "1", "STATUS": "finishing passage 01JD..."},
        {"EXTEND_TIMEOUT_USEC": "12500000"},
    ]


def test_abstract_namespace_socket(abstract_socket: NotifySocket) -> None:
    notifier = ServiceNotifier(abstract_socket.env(WATCHDOG_USEC="4000000"))
    notifier.ready()
    notifier.watchdog()
    notifier.close()
    assert abstract_socket.messages() == [{"READY": "1"}, {"WATCHDOG": "1"}]
    assert notifier.watchdog_interval() == pytest.approx(2.0)


def test_nothing_sent_without_notify_socket(path_socket: NotifySocket) -> None:
    notifier = ServiceNotifier({"WATCHDOG_USEC": "2000000"})
    assert not notifier.enabled
    notifier.ready("up")
    notifier.status("x")
    notifier.watchdog()
    notifier.stopping()
    assert path_socket.messages() == []


def test_default_environment_is_os_environ(path_socket: NotifySocket,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", path_socket.address)
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = ServiceNotifier(unset_environment=True)
    # children (camera workers, the demo's gate-controllers) must not inherit the socket
    assert "NOTIFY_SOCKET" not in os.environ and "WATCHDOG_USEC" not in os.environ
    assert notifier.watchdog_interval() == pytest.approx(1.5)
    notifier.watchdog()
    assert path_socket.messages() == [{"WATCHDOG": "1"}]


def test_watchdog_pid_of_another_process_is_ignored(path_socket: NotifySocket) -> None:
    other = ServiceNotifier(path_socket.env(WATCHDOG_USEC="5000000", WATCHDOG_PID=str(os.getpid() + 1)))
    assert other.watchdog_interval() is None
    other.watchdog()
    assert path_socket.messages() == []
    own = ServiceNotifier(path_socket.env(WATCHDOG_USEC="5000000", WATCHDOG_PID=str(os.getpid())))
    assert own.watchdog_interval() == pytest.approx(2.5)
    own.watchdog()
    assert path_socket.messages() == [{"WATCHDOG": "1"}]


@pytest.mark.parametrize("env", [
    {"NOTIFY_SOCKET": "relative/notify"},
    {"NOTIFY_SOCKET": "@"},
])
def test_unusable_notify_socket_is_disabled_with_a_warning(env: dict[str, str],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edge.service_notify"):
        notifier = ServiceNotifier(env)
    assert not notifier.enabled
    assert "NOTIFY_SOCKET" in caplog.text


@pytest.mark.parametrize("usec", ["", "0", "-5", "soon"])
def test_no_watchdog_interval_without_a_valid_watchdog_usec(path_socket: NotifySocket, usec: str) -> None:
    assert ServiceNotifier(path_socket.env(WATCHDOG_USEC=usec)).watchdog_interval() is None


def test_a_vanished_service_manager_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    folder = Path(tempfile.mkdtemp(prefix="sdn-", dir="/tmp"))
    try:
        notifier = ServiceNotifier({"NOTIFY_SOCKET": str(folder / "gone")})
        with caplog.at_level(logging.DEBUG, logger="edge.service_notify"):
            notifier.ready()
            notifier.status("still here")
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, "the first failure warns, repeats go to DEBUG"
        assert str(folder / "gone") in warnings[0].getMessage()
        # the manager comes back (socket bound again): sends work again
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(folder / "gone"))
        sock.setblocking(False)
        try:
            notifier.status("back")
            assert sock.recv(1024) == b"STATUS=back"
        finally:
            sock.close()
    finally:
        shutil.rmtree(folder)


# -- HealthWatchdog --------------------------------------------------------------------------

class Flag:
    """A health check whose outcome the test sets, as a lane or the SQLite writer would report."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def __call__(self) -> str | None:
        return self.reason


def test_watchdog_fed_only_while_every_check_passes(path_socket: NotifySocket,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    notifier = ServiceNotifier(path_socket.env(WATCHDOG_USEC="2000000"))
    store, lanes = Flag(), Flag()
    guard = HealthWatchdog(notifier, {"store": store, "lanes": lanes}, summary=lambda: "2 lanes")

    async def rounds() -> list[list[dict[str, str]]]:
        seen = []
        await guard.check_once()
        seen.append(path_socket.messages())
        lanes.reason = "lane in-1: camera cam-in1-front silent for 30 s"
        await guard.check_once()
        seen.append(path_socket.messages())
        await guard.check_once()  # same failure again: no second WARNING
        seen.append(path_socket.messages())
        lanes.reason = None
        await guard.check_once()
        seen.append(path_socket.messages())
        return seen

    with caplog.at_level(logging.WARNING, logger="edge.service_notify"):
        healthy, failing, still_failing, recovered = asyncio.run(rounds())
    assert healthy == [{"WATCHDOG": "1", "STATUS": "healthy (2 checks pass): 2 lanes"}]
    assert failing == still_failing == [{
        "STATUS": "UNHEALTHY, watchdog not fed: lanes: lane in-1: camera cam-in1-front silent for 30 s"}]
    assert recovered == healthy
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "camera cam-in1-front silent" in warnings[0]
    assert "pass again" in warnings[1]
    assert guard.healthy and guard.rounds == 4


def test_a_check_that_raises_or_hangs_is_a_failure(path_socket: NotifySocket) -> None:
    notifier = ServiceNotifier(path_socket.env(WATCHDOG_USEC="2000000"))

    def broken() -> str | None:
        raise OSError("database is locked")

    async def hangs() -> str | None:
        await asyncio.sleep(10)
        return None

    guard = HealthWatchdog(notifier, {"store": broken, "controller": hangs}, interval=0.2)
    failures = asyncio.run(guard.check_once())
    assert failures == {"store": "check raised OSError: database is locked",
                        "controller": "no answer within 0.1 s"}
    [message] = path_socket.messages()
    assert "WATCHDOG" not in message
    assert "store: check raised OSError" in message["STATUS"]
    assert "controller: no answer" in message["STATUS"]


def test_async_checks_are_awaited(path_socket: NotifySocket) -> None:
    notifier = ServiceNotifier(path_socket.env(WATCHDOG_USEC="2000000"))

    async def controller_answers() -> str | None:
        await asyncio.sleep(0)
        return None

    guard = HealthWatchdog(notifier, {"controller": controller_answers})
    assert asyncio.run(guard.check_once()) == {}
    assert path_socket.messages()[0]["WATCHDOG"] == "1"


def test_run_feeds_every_interval_and_stops_when_cancelled(abstract_socket: NotifySocket) -> None:
    # WatchdogSec=0.1 s -> a round every 50 ms; half a second gives ~10 rounds
    notifier = ServiceNotifier(abstract_socket.env(WATCHDOG_USEC="100000"))
    check = Flag()
    guard = HealthWatchdog(notifier, {"check": check})
    assert guard.interval == pytest.approx(0.05)

    messages: list[dict[str, str]] = []

    async def main() -> None:
        async def manager() -> None:  # PID 1 drains its socket (the kernel queues only 10 here)
            while True:
                messages.extend(abstract_socket.messages())
                await asyncio.sleep(0.01)

        drain = asyncio.create_task(manager())
        task = asyncio.create_task(guard.run())
        await asyncio.sleep(0.3)
        check.reason = "broken"
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        drain.cancel()
        messages.extend(abstract_socket.messages())

    asyncio.run(main())
    feeds = [i for i, m in enumerate(messages) if m.get("WATCHDOG") == "1"]
    unhealthy = [i for i, m in enumerate(messages) if m.get("STATUS", "").startswith("UNHEALTHY")]
    assert len(feeds) >= 3 and len(unhealthy) >= 3
    assert max(feeds) < min(unhealthy), "no WATCHDOG=1 once the check failed"


def test_interval_without_systemd_watchdog_is_the_default() -> None:
    guard = HealthWatchdog(ServiceNotifier({}), {})
    assert guard.interval == HealthWatchdog.DEFAULT_INTERVAL


def test_advisories_show_as_degraded_but_keep_feeding(path_socket: NotifySocket,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    # a broker outage is not cured by a restart: it must not starve the watchdog
    notifier = ServiceNotifier(path_socket.env(WATCHDOG_USEC="2000000"))
    broker = Flag()
    guard = HealthWatchdog(notifier, {"writer": Flag()}, advisories={"mqtt": broker})
    broker.reason = "no broker reachable (mqtt1.customs.example:8883, mqtt2.customs.example:8883)"
    with caplog.at_level(logging.INFO, logger="edge.service_notify"):
        assert asyncio.run(guard.check_once()) == {}
        degraded = path_socket.messages()
        asyncio.run(guard.check_once())  # unchanged: logged once
        path_socket.messages()
        broker.reason = None
        asyncio.run(guard.check_once())
        recovered = path_socket.messages()
    assert degraded == [{"WATCHDOG": "1",
                         "STATUS": "degraded (1 checks pass): mqtt: no broker reachable "
                                   "(mqtt1.customs.example:8883, mqtt2.customs.example:8883)"}]
    assert recovered == [{"WATCHDOG": "1", "STATUS": "healthy (1 checks pass)"}]
    assert guard.healthy and guard.degraded == {}
    messages = [r.getMessage() for r in caplog.records]
    assert sum("degraded" in m for m in messages) == 1
    assert any("mqtt recovered" in m for m in messages)


def test_task_alive_reports_how_a_task_ended() -> None:
    async def main() -> list[str | None]:
        async def forever() -> None:
            await asyncio.sleep(3600)

        async def crashes() -> None:
            raise RuntimeError("database disk image is malformed")

        async def returns() -> None:
            return None

        running = asyncio.create_task(forever(), name="lane-in-1")
        crashed = asyncio.create_task(crashes(), name="store-writer")
        returned = asyncio.create_task(returns(), name="outbox")
        cancelled = asyncio.create_task(forever(), name="camera-cam-in1-front")
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.gather(crashed, returned, cancelled, return_exceptions=True)
        results = [task_alive(t)() for t in (running, crashed, returned, cancelled)]
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        return results

    assert asyncio.run(main()) == [
        None,
        "task store-writer died: RuntimeError: database disk image is malformed",
        "task outbox returned",
        "task camera-cam-in1-front was cancelled",
    ]


def test_progressing_fails_when_a_part_stops_making_progress() -> None:
    now = [1000.0]
    last: list[float | None] = [None]
    check = progressing(lambda: last[0], max_age=30, what="frames from cam-in1-front",
                        clock=lambda: now[0])
    now[0] += 20
    assert check() is None  # start-up grace: nothing yet, but not for long
    now[0] += 20
    assert check() == "no frames from cam-in1-front for 40 s (limit 30 s)"
    last[0] = now[0] - 1
    assert check() is None
    now[0] += 45
    assert check() == "no frames from cam-in1-front for 46 s (limit 30 s)"


def test_watchdog_with_status_is_one_datagram_and_status_alone_without_a_watchdog(
        path_socket: NotifySocket) -> None:
    ServiceNotifier(path_socket.env(WATCHDOG_USEC="2000000")).watchdog("2 lanes")
    ServiceNotifier(path_socket.env()).watchdog("2 lanes")
    assert path_socket.messages() == [{"WATCHDOG": "1", "STATUS": "2 lanes"}, {"STATUS": "2 lanes"}]
