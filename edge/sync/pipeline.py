"""Down messages in a pipeline: a worker process prepares the next batch while the last is written.

A batch of 1,000 declarations costs about 90 µs per declaration on one core: JSON, the
Ed25519 check, pydantic validation and flattening (``prepare.py``, no state needed) and the
SQLite upsert with its seq and ack (``Downlink.apply``, needs the cache). Done one after the
other on paho's thread that is ~11,000 declarations/s; with the stateless half in a worker
process for the *next* message while this thread writes the current one, both cores work
(benchmarks/bench_outbox.py).

Order and "acknowledged only once committed" are kept:

* ``submit`` (paho's thread) appends to one FIFO; a single writer thread takes entries in
  arrival order, waits for its preparation (worker or inline) and applies it, so seq, replay,
  snapshot staging and nonce checks see messages exactly in the order the broker sent them.
* The link runs with manual acknowledgements: the PUBACK for a message is sent by ``on_done``
  after ``apply`` has committed (or rejected) it, as before when the apply ran inside
  ``on_message``. A crash before that leaves the message unacknowledged and the broker
  delivers it again (a QoS 1 duplicate, recognised by seq and signature digest).
* Small messages (commands, hotlist changes, heartbeats) are prepared inline by the writer:
  a round trip to the worker would cost more than it saves.
* If the worker process dies, its messages are prepared inline and a new worker is started
  for the next large message; nothing is lost or reordered.
* If the daemon dies (SIGKILL), the worker notices within ~0.5 s and exits
  (``edge/parent_watch.py``) instead of living on as an orphan.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from edge.logging_setup import configure_logging
from edge.parent_watch import exit_when_parent_gone
from edge.sync.downlink import Downlink, Handled
from edge.sync.prepare import Prepared, Preparer, Rejected

log = logging.getLogger(__name__)

# Below this, preparing inline is cheaper than pickling to and from a worker (~150 declarations).
MIN_WORKER_BYTES = 64 * 1024

_worker_preparer: Preparer | None = None


def _init_worker(preparer: Preparer, parent_pid: int, log_level: int) -> None:
    """Worker start: ``parent_pid`` is the daemon's pid, taken in the daemon (parent_watch.py)."""
    global _worker_preparer
    # A spawned child starts with no logging set up; stderr goes to the daemon's journal.
    configure_logging(log_level)
    exit_when_parent_gone(parent_pid, "downlink worker")
    _worker_preparer = preparer
    # A 1,000-declaration batch allocates ~50,000 short-lived objects (JSON values, models,
    # rows) and no reference cycles; the default threshold (700) would run ~70 young
    # collections per batch. Collecting every 100,000 allocations instead saves ~18 % of the
    # worker's time and still bounds what waits for a collection. Only in this process: the
    # daemon's own collector settings are left alone.
    gc.set_threshold(100_000, 20, 100)


def _prepare_in_worker(topic: str, payload: bytes) -> Prepared | Rejected:
    """Worker side: a rejection is returned, not raised (no traceback to pickle and log)."""
    assert _worker_preparer is not None
    try:
        return _worker_preparer.prepare(topic, payload)
    except Rejected as rej:
        return rej


def _warm_up() -> bool:
    return True


@dataclass
class _Entry:
    topic: str
    payload: bytes
    token: Any
    future: Future[Prepared | Rejected] | None
    pool: ProcessPoolExecutor | None = None


class DownPipeline:
    """One writer thread applying messages in order; ``workers`` processes preparing ahead."""

    def __init__(self, downlink: Downlink, on_done: Callable[[Handled, Any], None], *,
                 workers: int = 1, min_worker_bytes: int = MIN_WORKER_BYTES) -> None:
        self.downlink = downlink
        self.on_done = on_done
        self.workers = workers
        self.min_worker_bytes = min_worker_bytes
        self._entries: deque[_Entry] = deque()
        self._cond = threading.Condition()
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._busy = False
        self._warm: Future[bool] | None = None
        self.prepared_in_worker = 0
        self.prepared_inline = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread; the worker process starts with the first large message.

        Most checkpoints see small messages most of the time (heartbeats, commands, a few
        amended declarations); a worker costs ~1 s of CPU to start and ~60 MB while it lives,
        so it is spawned when a batch large enough to need it arrives (:meth:`warm_up` to do
        it now).
        """
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="downlink-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the message being written; drop the rest unacknowledged (the broker keeps them)."""
        with self._cond:
            self._stopping = True
            dropped = len(self._entries)
            self._entries.clear()
            self._cond.notify_all()
        if dropped:
            log.info("stopping: %d received message(s) left unacknowledged for redelivery", dropped)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: never fork a process that holds SQLite connections and paho's threads.
        # os.getpid() here, in the daemon: the worker's own os.getppid() may already be init's.
        return ProcessPoolExecutor(max_workers=self.workers,
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker,
                                   initargs=(self.downlink.preparer, os.getpid(),
                                             logging.getLogger().getEffectiveLevel()))

    # -- input (paho's thread) -------------------------------------------------------------
    def submit(self, topic: str, payload: bytes, token: Any = None) -> None:
        """Queue one message; its preparation starts now if it goes to a worker."""
        future, pool = None, None
        if (self.workers > 0 and self.min_worker_bytes <= len(payload)
                <= self.downlink.limits.max_payload_bytes):
            future, pool = self._submit_to_worker(topic, payload)
        with self._cond:
            if self._stopping:
                return   # not acknowledged: the broker delivers it again after the restart
            self._entries.append(_Entry(topic, payload, token, future, pool))
            self._cond.notify_all()

    def _submit_to_worker(self, topic: str, payload: bytes
                          ) -> tuple[Future[Prepared | Rejected] | None, ProcessPoolExecutor | None]:
        with self._pool_lock:
            pool = self._pool
            try:
                if pool is None and not self._stopping:
                    pool = self._pool = self._new_pool()
                if pool is None:
                    return None, None
                return pool.submit(_prepare_in_worker, topic, payload), pool
            except (BrokenProcessPool, RuntimeError) as exc:
                log.error("downlink worker unavailable (%s); preparing inline", exc)
                if self._pool is pool:
                    self._pool = None
                return None, None

    def warm_up(self) -> None:
        """Start the worker process now rather than with the first large message."""
        with self._pool_lock:
            if self.workers > 0 and self._pool is None and not self._stopping:
                self._pool = self._new_pool()
            if self._pool is not None:
                self._warm = self._pool.submit(_warm_up)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the worker process started by :meth:`warm_up` answers (~1 s: imports)."""
        if self._warm is None:
            return True
        try:
            return self._warm.result(timeout)
        except Exception:
            return False

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every message submitted so far is handled (tests, benchmarks, shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._entries and not self._busy, timeout)

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (benchmarks read their CPU time)."""
        with self._pool_lock:
            processes = getattr(self._pool, "_processes", None) or {}
            return [p.pid for p in processes.values() if p.pid is not None]

    @property
    def depth(self) -> int:
        """Messages received but not yet handled."""
        return len(self._entries) + int(self._busy)

    # -- the writer --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._entries) or self._stopping)
                if self._stopping:
                    self._busy = False
                    self._cond.notify_all()
                    return
                entry = self._entries.popleft()
                self._busy = True
            try:
                handled = self.downlink.apply(entry.topic, len(entry.payload), self._prepared(entry))
            except Exception:   # a bug must not stop the downlink; the message is acked as before
                log.exception("applying a message from %s failed", entry.topic)
                handled = Handled("rejected", "INTERNAL_ERROR", "see the log")
            try:
                self.on_done(handled, entry.token)
            except Exception:
                log.exception("after-apply callback failed for a message from %s", entry.topic)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _prepared(self, entry: _Entry) -> Prepared | Rejected:
        if entry.future is not None:
            try:
                result = entry.future.result()
                self.prepared_in_worker += 1
                return result
            except Exception as exc:   # worker died (BrokenProcessPool), cancelled at shutdown
                log.error("downlink worker failed on a message from %s (%s: %s); preparing it "
                          "inline", entry.topic, type(exc).__name__, exc)
                if isinstance(exc, BrokenProcessPool) and entry.pool is not None:
                    with self._pool_lock:
                        if self._pool is entry.pool:   # not a new one started meanwhile
                            self._pool = None
                    entry.pool.shutdown(wait=False, cancel_futures=True)
        self.prepared_inline += 1
        try:
            return self.downlink.preparer.prepare(entry.topic, entry.payload)
        except Rejected as rej:
            return rej
