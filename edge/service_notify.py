"""Tell systemd how gate-edge is doing: READY, STATUS, STOPPING and the watchdog.

``gate-edge.service`` is ``Type=notify`` with ``WatchdogSec=``: systemd starts the lanes' clock
only once the daemon says ``READY=1`` (the cache is open, gate-controller reachable, the console
listening), shows our ``STATUS=`` line in ``systemctl status``, and kills and restarts the daemon
when ``WATCHDOG=1`` stops arriving. The watchdog is fed by :class:`HealthWatchdog` only while every
health check passes, so a daemon whose event loop is alive but whose lanes are wedged (a stuck
camera worker, a dead SQLite writer) is restarted too, not just one that hangs outright.

The protocol is the one of ``sd_notify(3)``: newline-separated ``KEY=VALUE`` assignments in one
datagram to the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the
abstract namespace). It is written here (20 lines) rather than through the ``sdnotify`` package,
which swallows send errors silently and knows nothing of ``WATCHDOG_PID``/``WATCHDOG_USEC``.
Outside systemd (tests, ``gate-edge demo``, a shell) there is no ``$NOTIFY_SOCKET`` and every
call is a no-op.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: a health check returns None when healthy, else a short reason an operator can act on
HealthCheck = Callable[[], str | Awaitable[str | None] | None]

_NOTIFY_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
# systemd reads one datagram of at most a few KiB; a STATUS line is shown on one terminal line
_MAX_STATUS = 400


def _socket_address(value: str) -> str | None:
    """The ``sendto`` address for ``$NOTIFY_SOCKET``, or None if it is not one we can use.

    ``sd_notify(3)``: an absolute path names a socket in the file system, a leading ``@`` one in
    Linux's abstract namespace (sent with a leading NUL byte). systemd ≥ 254 also passes
    ``vsock:`` addresses to virtual machines; gate-edge never runs in one.
    """
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def _one_line(text: str) -> str:
    """A STATUS value: a newline would start a new assignment, so it becomes a space."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_STATUS else flat[: _MAX_STATUS - 1] + "…"


class ServiceNotifier:
    """sd_notify for gate-edge: READY/STATUS/STOPPING/WATCHDOG; a no-op outside systemd.

    Sending never raises: a service manager that went away must not take the gate down with it.
    The first failed send is logged at WARNING, repeats at DEBUG until a send succeeds again.
    """

    def __init__(self, env: Mapping[str, str] | None = None, *, unset_environment: bool = False) -> None:
        """Read ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID`` (os.environ by default).

        ``unset_environment=True`` removes them from ``os.environ`` afterwards, as
        ``sd_notify(unset_environment=1)`` does, so child processes (camera workers, the demo's
        gate-controllers) do not inherit the socket and send READY=1 on our behalf.
        """
        source: Mapping[str, str] = os.environ if env is None else env
        raw = source.get("NOTIFY_SOCKET", "")
        self._address = _socket_address(raw) if raw else None
        if raw and self._address is None:
            log.warning("ignoring NOTIFY_SOCKET=%r: not an absolute path or @abstract name", raw)
        self._watchdog_usec = self._parse_watchdog(source)
        self._sock: socket.socket | None = None
        self._failing = False
        self.enabled: bool = self._address is not None
        if unset_environment:
            for name in _NOTIFY_VARS:
                os.environ.pop(name, None)

    @staticmethod
    def _parse_watchdog(source: Mapping[str, str]) -> int | None:
        """``WATCHDOG_USEC`` if the watchdog is meant for this process (``WATCHDOG_PID``)."""
        usec_text = source.get("WATCHDOG_USEC", "")
        if not usec_text:
            return None
        try:
            usec = int(usec_text)
        except ValueError:
            log.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", usec_text)
            return None
        if usec <= 0:
            return None
        pid_text = source.get("WATCHDOG_PID", "")
        if pid_text:
            try:
                pid = int(pid_text)
            except ValueError:
                log.warning("ignoring WATCHDOG_PID=%r: not a process id", pid_text)
                return None
            if pid != os.getpid():
                # inherited from a parent that systemd watches; feeding it is the parent's job
                return None
        return usec

    # -- the messages ---------------------------------------------------------------------
    def ready(self, status: str = "") -> None:
        """Start-up finished: lanes may run; systemd starts units ordered after us now."""
        self._send("READY=1", status)

    def status(self, text: str) -> None:
        """One line shown by ``systemctl status gate-edge`` (e.g. lanes up, outbox depth)."""
        self._send(f"STATUS={_one_line(text)}")

    def stopping(self, status: str = "") -> None:
        """Shutdown began (SIGTERM): systemd shows 'deactivating' while the passage finishes."""
        self._send("STOPPING=1", status)

    def reloading(self, status: str = "") -> None:
        """Configuration reload began; send :meth:`ready` when it is done."""
        self._send("RELOADING=1", status)

    def extend_timeout(self, seconds: float) -> None:
        """Ask for more time in the current start or stop phase (``EXTEND_TIMEOUT_USEC``).

        Useful while a migration runs at start, or while the last truck clears the lane at stop,
        so ``TimeoutStartSec``/``TimeoutStopSec`` need not be set for the worst case.
        """
        self._send(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}")

    def watchdog(self, status: str = "") -> None:
        """Feed the watchdog (with a STATUS line in the same datagram, if given).

        WATCHDOG=1 is sent only when the watchdog is meant for this process; a status alone is
        still sent.
        """
        if self._watchdog_usec is not None:
            self._send("WATCHDOG=1", status)
        elif status:
            self.status(status)

    def watchdog_interval(self) -> float | None:
        """How often to feed the watchdog: half of ``WatchdogSec=``, as ``sd_watchdog_enabled(3)`` advises.

        None when systemd set no watchdog, or set it for another process (``WATCHDOG_PID``).
        """
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    # -- the wire -------------------------------------------------------------------------
    def _send(self, first: str, status: str = "") -> None:
        if self._address is None:
            return
        lines = [first]
        if status:
            lines.append(f"STATUS={_one_line(status)}")
        payload = "\n".join(lines).encode("utf-8")
        try:
            if self._sock is None:
                # non-blocking: a full receive queue in PID 1 must never stall the event loop
                # (systemd raises net.unix.max_dgram_qlen to 512, so EAGAIN means PID 1 is
                # stuck); the next WATCHDOG=1 comes half a watchdog period later anyway
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "cannot notify systemd at %s (%s): %s", self._printable_address(),
                    first.split("=", 1)[0], exc)
            self._failing = True
            return
        if self._failing:
            log.info("notifying systemd works again")
            self._failing = False

    def _printable_address(self) -> str:
        address = self._address or ""
        return "@" + address[1:] if address.startswith("\0") else address

    def close(self) -> None:
        """Close the datagram socket (further sends reopen it)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class HealthWatchdog:
    """Feeds the watchdog only while every registered check passes.

    Issue 9: 'the watchdog fed only while health checks pass'. Each round runs every check; when
    all pass it sends ``WATCHDOG=1`` and a STATUS summary, otherwise it sends no WATCHDOG and a
    STATUS naming the failing checks, so that after ``WatchdogSec=`` of continuous failure systemd
    kills and restarts gate-edge (gate-controller keeps the barriers safe meanwhile). Checks
    must be quick: a synchronous one runs on the event loop, an ``async`` one is given at most
    half a round. A check that raises counts as failing.

    Register as ``checks`` only what a restart cures: a task that died, a camera worker or the
    SQLite writer that stopped making progress. A broker outage, a camera that is off-line or a
    full disk are not cured by a restart; as checks they would restart gate-edge every
    ``WatchdogSec`` until systemd's start limit leaves it stopped. Give those as ``advisories``:
    they show in STATUS ("degraded") and the log, and the watchdog is still fed.
    """

    #: round length when systemd set no watchdog: checks still run, for STATUS and the log
    DEFAULT_INTERVAL = 10.0
    #: an unchanged failure is logged at WARNING again after this many seconds, else DEBUG
    REPEAT_WARNING_AFTER = 60.0

    def __init__(
        self,
        notifier: ServiceNotifier,
        checks: Mapping[str, HealthCheck],
        *,
        advisories: Mapping[str, HealthCheck] | None = None,
        interval: float | None = None,
        summary: Callable[[], str] | None = None,
    ) -> None:
        """Watch ``checks`` (name -> check); ``summary`` adds a healthy STATUS line's detail.

        ``advisories`` are reported but never hold back the watchdog. ``interval`` overrides the
        round length (default: half of ``WatchdogSec=``, else :attr:`DEFAULT_INTERVAL`).
        """
        self.notifier = notifier
        self.checks = dict(checks)
        self.advisories = dict(advisories or {})
        self.interval = interval or notifier.watchdog_interval() or self.DEFAULT_INTERVAL
        self.summary = summary
        #: failing check name -> reason, as of the last round (empty: healthy)
        self.failures: dict[str, str] = {}
        #: failing advisory name -> reason, as of the last round
        self.degraded: dict[str, str] = {}
        self.rounds = 0
        self._warned_at: float | None = None
        self._warned_failures: dict[str, str] = {}
        self._unhealthy_since: float | None = None

    @property
    def healthy(self) -> bool:
        """True when every check passed in the last round (advisories do not count)."""
        return not self.failures

    async def run(self) -> None:
        """Check and feed every interval until cancelled (the daemon's stop() cancels it)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.check_once()
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))

    async def check_once(self) -> dict[str, str]:
        """Run one round: checks, then WATCHDOG=1 + STATUS or STATUS alone; return the failures."""
        failures = await self._run_all(self.checks)
        degraded = await self._run_all(self.advisories)
        if degraded != self.degraded:
            for name, reason in degraded.items():
                if self.degraded.get(name) != reason:
                    log.warning("degraded (watchdog still fed): %s: %s", name, reason)
            for name in self.degraded.keys() - degraded.keys():
                log.info("%s recovered", name)
        self.failures, self.degraded = failures, degraded
        self.rounds += 1
        if failures:
            self.notifier.status(self._failure_status(failures))
            self._log_failures(failures)
        else:
            self.notifier.watchdog(self._healthy_status())
            self._log_recovery()
        return failures

    async def _run_all(self, checks: Mapping[str, HealthCheck]) -> dict[str, str]:
        failures: dict[str, str] = {}
        for name, check in checks.items():
            reason = await self._run_check(name, check)
            if reason is not None:
                failures[name] = reason
        return failures

    async def _run_check(self, name: str, check: HealthCheck) -> str | None:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, timeout=self.interval / 2)
        except TimeoutError:
            return f"no answer within {self.interval / 2:.1f} s"
        except Exception as exc:  # a broken check is a failed check, never a dead watchdog
            log.debug("health check %s raised", name, exc_info=True)
            return f"check raised {type(exc).__name__}: {exc}"
        return None if result is None else str(result)

    def _healthy_status(self) -> str:
        detail = ""
        if self.summary is not None:
            try:
                detail = self.summary()
            except Exception as exc:
                detail = f"(summary failed: {type(exc).__name__})"
        if self.degraded:
            parts = "; ".join(f"{name}: {reason}" for name, reason in self.degraded.items())
            head = f"degraded ({len(self.checks)} checks pass): {parts}"
        else:
            head = f"healthy ({len(self.checks)} checks pass)"
        return f"{head}: {detail}" if detail else head

    @staticmethod
    def _failure_status(failures: Mapping[str, str]) -> str:
        parts = "; ".join(f"{name}: {reason}" for name, reason in failures.items())
        return f"UNHEALTHY, watchdog not fed: {parts}"

    def _log_failures(self, failures: dict[str, str]) -> None:
        now = time.monotonic()
        if self._unhealthy_since is None:
            self._unhealthy_since = now
        changed = failures != self._warned_failures
        overdue = self._warned_at is None or now - self._warned_at >= self.REPEAT_WARNING_AFTER
        if changed or overdue:
            log.warning("health check failed, watchdog not fed (unhealthy for %.0f s): %s",
                        now - self._unhealthy_since, self._failure_status(failures))
            self._warned_at = now
            self._warned_failures = dict(failures)
        else:
            log.debug("still unhealthy: %s", failures)

    def _log_recovery(self) -> None:
        if self._unhealthy_since is not None:
            log.warning("health checks pass again after %.0f s; feeding the watchdog",
                        time.monotonic() - self._unhealthy_since)
        self._unhealthy_since = None
        self._warned_at = None
        self._warned_failures = {}


# -- ready-made checks ------------------------------------------------------------------------

def task_alive(task: asyncio.Task[Any]) -> Callable[[], str | None]:
    """A check that fails once ``task`` (a lane loop, the SQLite writer) has ended.

    Such tasks run for the daemon's life; one that returned or raised left its part of the gate
    dead, which a restart cures.
    """

    def check() -> str | None:
        if not task.done():
            return None
        if task.cancelled():
            return f"task {task.get_name()} was cancelled"
        exc = task.exception()
        if exc is not None:
            return f"task {task.get_name()} died: {type(exc).__name__}: {exc}"
        return f"task {task.get_name()} returned"

    return check


def progressing(last_progress: Callable[[], float | None], max_age: float, what: str,
                clock: Callable[[], float] = time.monotonic) -> Callable[[], str | None]:
    """A check that fails when ``last_progress()`` (a ``clock()`` time) is older than ``max_age``.

    For parts that make progress on their own whatever the traffic, e.g. a camera worker that
    decodes frames or the SQLite writer's loop turn; None (nothing yet) counts as fine until
    ``max_age`` has passed since the check was made, which gives the part its start-up time.
    """
    created = clock()

    def check() -> str | None:
        last = last_progress()
        age = clock() - (created if last is None else last)
        if age <= max_age:
            return None
        return f"no {what} for {age:.0f} s (limit {max_age:.0f} s)"

    return check
