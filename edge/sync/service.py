"""The sync component as the daemon starts it: link, downlink, outbox publisher, resync.

``start()`` is the readable ordered list (STYLE.md §1) and ``stop()`` undoes it in reverse.
Everything here runs in threads (paho's network thread, the outbox publisher, a one-second
housekeeping tick), so the asyncio daemon calls ``await service.astart()`` / ``astop()`` and is
never blocked; verified lane commands come back into the event loop through
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ulid import ULID

from edge.config import GateEdgeConfig
from edge.config.mqtt import MqttConfig, credential_path
from edge.domain.model import utcnow
from edge.store.cache import ManifestCache
from edge.store.db import iso
from edge.store.records import Records
from edge.sync.downlink import Downlink, DownlinkLimits, Handled, LaneCommand
from edge.sync.journal import SyncJournal
from edge.sync.link import AckToken, Broker, LinkSettings, MqttLink, TlsFiles
from edge.sync.pipeline import DownPipeline
from edge.sync.publisher import OutboxPublisher
from edge.sync.signing import KeyRing, load_private_key, sign_bytes
from edge.sync.topics import Topics

log = logging.getLogger(__name__)

CommandHandler = Callable[[LaneCommand], Any]
# Down messages received but not yet applied and acknowledged, at most (MQTT 5 Receive Maximum):
# enough to keep the pipeline full, few enough that a burst of 4 MB batches stays in bounds.
RECEIVE_MAXIMUM = 16


def link_settings(mqtt: MqttConfig, site: str, *, subscriptions: list[tuple[str, int]],
                  will: tuple[str, bytes] | None = None,
                  birth: Callable[[], tuple[str, bytes]] | None = None,
                  manual_ack: bool = False) -> LinkSettings:
    """Translate the YAML section into the link's settings (secrets read from their files)."""
    password = None
    if mqtt.password_file is not None:
        password = credential_path(mqtt.password_file).read_text(encoding="utf-8").strip()
    tls = mqtt.tls
    return LinkSettings(
        client_id=mqtt.resolved_client_id(site),
        brokers=[Broker(b.host, b.port, b.use_tls) for b in mqtt.brokers],
        keepalive_s=max(5, int(mqtt.keepalive.total_seconds())),
        session_expiry_s=int(mqtt.session_expiry.total_seconds()),
        connect_timeout_s=mqtt.connect_timeout.total_seconds(),
        backoff_min_s=mqtt.backoff_min.total_seconds(),
        backoff_max_s=mqtt.backoff_max.total_seconds(),
        max_inflight=mqtt.max_inflight,
        tls=TlsFiles(tls.ca_file, tls.cert_file,
                     credential_path(tls.key_file) if tls.key_file else None,
                     tls.insecure_skip_hostname_check),
        username=mqtt.username, password=password, subscriptions=subscriptions,
        will=will, birth=birth, manual_ack=manual_ack,
        receive_maximum=RECEIVE_MAXIMUM if manual_ack else None)


@dataclass
class SyncHealth:
    """What the console's health page and /metrics show."""

    connected: bool
    broker: str | None
    last_error: str
    outbox_depth: int
    published: int
    acked: int
    resync_pending: bool
    rejected: dict[str, int]


class SyncService:
    """Owns the MQTT link of one checkpoint."""

    def __init__(self, cfg: GateEdgeConfig, *, on_command: CommandHandler | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not cfg.mqtt.enabled:
            raise ValueError("mqtt.enabled is false: the checkpoint runs without a centre")
        if not cfg.mqtt.brokers:
            raise ValueError("mqtt.brokers is empty; nothing to connect to")
        self.cfg = cfg
        self.mqtt = cfg.mqtt
        self.topics = Topics(cfg.site.code, cfg.mqtt.topic_prefix)
        self._on_command = on_command
        self._loop = loop
        self.keys = KeyRing.from_config((k.id, k.public_key) for k in cfg.mqtt.central_keys)
        self.site_key: Ed25519PrivateKey | None = None
        self.site_kid = ""
        if cfg.mqtt.site_key is not None:
            self.site_key = load_private_key(credential_path(cfg.mqtt.site_key.private_key_file))
            self.site_kid = cfg.mqtt.site_key.id
        self.cache: ManifestCache | None = None
        self.records: Records | None = None
        self.link: MqttLink | None = None
        self.downlink: Downlink | None = None
        self.pipeline: DownPipeline | None = None
        self.publisher: OutboxPublisher | None = None
        self._resync_lock = threading.Lock()
        self._resync: tuple[str, str, float] | None = None   # (request id, reason, sent monotonic)
        self._resync_have: dict[str, int] = {}   # stream positions when the request was made
        self._tick_stop = threading.Event()
        self._tick: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Open the stores, then the link, then the publisher (blocking calls: use astart)."""
        storage = self.cfg.storage
        if not self.keys:
            log.error("no central_keys configured: every manifest batch will be rejected")
        self.cache = ManifestCache.open(storage.cache_path, check_same_thread=False)
        self.records = Records.open(storage.records_path, check_same_thread=False)
        journal = SyncJournal(self.records, self.topics,
                              alarm_interval_s=self.mqtt.alarm_interval.total_seconds())
        self.downlink = Downlink(
            topics=self.topics, keys=self.keys, cache=self.cache, journal=journal,
            lanes={lane.id for lane in self.cfg.lanes},
            limits=DownlinkLimits(self.mqtt.max_payload_bytes, self.mqtt.max_clock_skew,
                                  self.mqtt.max_command_ttl),
            request_resync=self.request_resync, on_command=self._deliver_command)
        self.pipeline = DownPipeline(self.downlink, self._handled, workers=self.mqtt.apply_workers)
        meta = self.cache.meta()
        if meta.get("resync_pending"):
            self._resync = (meta["resync_pending"], "pending before restart", 0.0)
            self._resync_have = _have(meta)
        elif not any(int(meta.get(seq_key, "0") or 0) for seq_key, _ in Downlink.STREAMS.values()):
            # A new or wiped cache: without a snapshot it would refer every truck until the
            # centre happens to publish a batch (and then see a seq gap). Ask at first connect.
            request_id = str(ULID())
            self._resync = (request_id, "empty cache at start", 0.0)
            self._resync_have = _have(meta)
            self.cache.set_meta(resync_pending=request_id)
        # A crash between committing a batch (cache.db) and queueing its ack (records.db) would
        # leave the batch unacknowledged; the ack's idempotency key makes re-queueing harmless.
        for stream, (seq_key, version_key) in Downlink.STREAMS.items():
            if int(meta.get(seq_key, "0") or 0) > 0:
                journal.ack_batch(stream, int(meta[seq_key]), int(meta.get(version_key, "0") or 0),
                                  {"reconciled_at_start": True})
        self.link = MqttLink(link_settings(
            self.mqtt, self.cfg.site.code,
            subscriptions=[(t, 1) for t in self.topics.down_subscriptions()],
            will=(self.topics.status, self._status("offline", "connection lost")),
            birth=lambda: (self.topics.status, self._status("online", "connected")),
            manual_ack=True),
            on_message=self._on_message)
        self.link.add_state_listener(self._on_link_state)
        if self.site_key is not None:
            self.publisher = OutboxPublisher(storage.records_path, self.link, site=self.cfg.site.code,
                                             key=self.site_key, kid=self.site_kid,
                                             window=self.mqtt.publish_window)
            self.publisher.start()
        else:
            log.error("mqtt.site_key is not configured: passages stay in the outbox, unsent")
        self.pipeline.start()
        self.link.start()
        self._tick_stop.clear()
        self._tick = threading.Thread(target=self._housekeeping, name="sync-housekeeping", daemon=True)
        self._tick.start()

    def stop(self) -> None:
        """Reverse of start: tick, publisher, pipeline, link (with a retained 'offline'), stores."""
        self._tick_stop.set()
        if self._tick is not None:
            self._tick.join(5)
        if self.publisher is not None:
            self.publisher.stop()
        if self.pipeline is not None:
            self.pipeline.stop()   # before the link, so the PUBACK of the last applied batch goes
        if self.link is not None:
            self.link.stop(final=(self.topics.status, self._status("offline", "shutdown")))
        if self.records is not None:
            self.records.close()
        if self.cache is not None:
            self.cache.close()

    async def astart(self) -> None:
        """Start from the event loop without blocking it."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """Stop from the event loop without blocking it."""
        await asyncio.to_thread(self.stop)

    def notify_outbox(self) -> None:
        """Tell the publisher a row was enqueued (call after saving a passage)."""
        if self.publisher is not None:
            self.publisher.notify()

    def health(self) -> SyncHealth:
        """A snapshot of the link's state for health checks and metrics."""
        link, pub = self.link, self.publisher
        broker = f"{link.broker.host}:{link.broker.port}" if link and link.broker else None
        rejected = {k.split(":", 1)[1]: v for k, v in (self.downlink.counts if self.downlink else {}).items()
                    if k.startswith("rejected:")}
        return SyncHealth(bool(link and link.connected.is_set()), broker, link.last_error if link else "",
                          pub.depth if pub else -1, pub.published if pub else 0,
                          pub.acked if pub else 0, self._resync is not None, rejected)

    # -- callbacks -------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes, message: Any) -> None:
        assert self.pipeline is not None and self.link is not None
        self.pipeline.submit(topic, payload, self.link.ack_token(message))

    def _handled(self, result: Handled, token: AckToken | None) -> None:
        """After a message is applied or rejected (pipeline's writer thread): PUBACK it."""
        if result.status == "applied" and result.code == "SNAPSHOT":
            with self._resync_lock:
                self._resync = None
        if self.link is not None:
            self.link.ack(token)
        if self.publisher is not None:
            self.publisher.notify()   # an ack or alarm may have been queued

    def _deliver_command(self, command: LaneCommand) -> None:
        if self._on_command is None:
            log.warning("lane command %s for %s accepted but no handler is wired", command.command,
                        command.lane)
            return
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_command, command)
        else:
            self._on_command(command)

    def _on_link_state(self, up: bool) -> None:
        if up and self._resync is not None:
            self._send_resync()

    # -- resync ----------------------------------------------------------------------------
    def request_resync(self, reason: str) -> None:
        """Ask the centre for a snapshot (called by the downlink on a seq gap)."""
        assert self.cache is not None
        with self._resync_lock:
            if self._resync is not None:
                return   # one outstanding request is enough; the housekeeping tick repeats it
            request_id = str(ULID())
            self._resync = (request_id, reason, 0.0)
        # Runs on the pipeline's writer, the only user of the cache connection: the housekeeping thread
        # reuses the positions read here instead of touching the connection itself.
        self._resync_have = _have(self.cache.meta())
        self.cache.set_meta(resync_pending=request_id)
        self._send_resync()

    def _send_resync(self) -> None:
        """Publish the request directly, not through the outbox.

        It is regenerated from state, so losing one loses nothing, and it must not queue behind
        an outage's backlog of passages.
        """
        link = self.link
        with self._resync_lock:
            if self._resync is None or link is None or not link.connected.is_set():
                return
            request_id, reason, _ = self._resync
            self._resync = (request_id, reason, time.monotonic())
        body = {"type": "resync", "site": self.cfg.site.code, "request_id": request_id,
                "reason": reason, "at": iso(utcnow()), "have": dict(self._resync_have)}
        link.publish(self.topics.resync, self._signed(body), qos=1)
        log.warning("requested a snapshot from the centre (%s)", reason)

    def _housekeeping(self) -> None:
        timeout = self.mqtt.resync_timeout.total_seconds()
        while not self._tick_stop.wait(1.0):
            pending = self._resync
            if pending is not None and time.monotonic() - pending[2] > timeout:
                self._send_resync()

    # -- helpers ---------------------------------------------------------------------------
    def _signed(self, body: dict[str, Any]) -> bytes:
        if self.site_key is None:
            import json
            return json.dumps(body).encode()
        return sign_bytes(body, self.site_key, self.site_kid)

    def _status(self, state: str, reason: str) -> bytes:
        return self._signed({"type": "status", "site": self.cfg.site.code, "state": state,
                             "reason": reason, "at": iso(utcnow()),
                             "client_id": self.mqtt.resolved_client_id(self.cfg.site.code)})


def _have(meta: dict[str, str]) -> dict[str, int]:
    """The stream positions a resync request reports."""
    return {k: int(meta.get(k, "0") or 0) for k in ("seq", "hotlist_seq", "version")}
