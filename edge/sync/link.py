"""The MQTT 5 connection: persistent session, failover, jittered back-off, birth and last will.

paho-mqtt's own network thread (``loop_start``) carries the traffic, so publishing from another
thread is safe and the asyncio loop never blocks. paho's built-in reconnect only knows one host
and backs off without jitter, so it is switched off (``reconnect_on_failure=False``) and a small
supervisor thread owns the connection instead: it walks the broker list, waits with *equal
jitter* back-off (half fixed, half random, so a hundred checkpoints coming back after a central
outage do not reconnect in lock-step) and starts paho's thread for each session.

Every reason code is checked (MQTT 5 §3.2.2.2): a refused CONNACK is logged with its reason and
the link is never marked connected; SUBACK codes ≥ 0x80 are errors; on_publish hands the PUBACK
reason code to the listener so the outbox marks a row sent only after a *successful* PUBACK.
Subscriptions are renewed in ``on_connect`` whether or not the broker kept the session, because
a broker that lost its state (restart without persistence) says so only through
``session_present`` and renewing is harmless when it did not.
"""

from __future__ import annotations

import contextlib
import logging
import random
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes, "mqtt.MQTTMessage"], None]
PublishListener = Callable[[int, bool, str], None]


@dataclass(frozen=True)
class Broker:
    """One broker of the failover list."""

    host: str
    port: int
    tls: bool = False


@dataclass(frozen=True)
class TlsFiles:
    """Mutual-TLS material; ``None`` members fall back to the system defaults."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_hostname_check: bool = False


@dataclass
class LinkSettings:
    """Everything the link needs, independent of the YAML layout (the simulator reuses it)."""

    client_id: str
    brokers: Sequence[Broker]
    keepalive_s: int = 30
    session_expiry_s: int = 2 * 86400
    connect_timeout_s: float = 10.0
    backoff_min_s: float = 1.0
    backoff_max_s: float = 60.0
    max_inflight: int = 20
    tls: TlsFiles | None = None
    username: str | None = None
    password: str | None = None
    subscriptions: Sequence[tuple[str, int]] = ()
    will: tuple[str, bytes] | None = None
    birth: Callable[[], tuple[str, bytes]] | None = None
    clean_start: bool = False
    # Manual acknowledgement: the application sends each PUBACK (``ack``) once it has committed
    # the message, so a crash before that makes the broker deliver it again.
    manual_ack: bool = False
    # MQTT 5 Receive Maximum: the broker sends at most this many unacknowledged QoS 1 messages
    # (bounds what waits in memory while the application is still applying earlier ones).
    receive_maximum: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AckToken:
    """What ``ack`` needs to acknowledge one received message on the connection it came on."""

    mid: int
    qos: int
    connection: int


class LinkState(Enum):
    """Where the supervisor is."""

    STOPPED = "stopped"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    REFUSED = "refused"
    DISCONNECTED = "disconnected"


def backoff_delay(attempt: int, low: float, high: float, rng: random.Random | None = None) -> float:
    """Equal-jitter exponential back-off: in [cap/2, cap] with cap = min(high, low * 2**attempt)."""
    cap = min(high, low * (2 ** min(attempt, 30)))
    return cap / 2 + (rng or random).uniform(0, cap / 2)


class MqttLink:
    """One MQTT 5 client session towards a list of brokers."""

    def __init__(self, settings: LinkSettings, on_message: MessageHandler | None = None) -> None:
        if not settings.brokers:
            raise ValueError("no brokers configured")
        if len({b.tls for b in settings.brokers}) > 1:
            raise ValueError("mix of TLS and plain brokers; use one kind for every broker")
        self.settings = settings
        self._on_message = on_message
        self._publish_listeners: list[PublishListener] = []
        self._state_listeners: list[Callable[[bool], None]] = []
        self.io_lock = threading.RLock()
        self._sub_lock = threading.Lock()
        self._pending_subs: dict[int, str] = {}   # SUBSCRIBE packet id -> topic filter
        self.connected = threading.Event()
        self._session_over = threading.Event()
        self._connack = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = LinkState.STOPPED
        self.broker: Broker | None = None
        self.connects = 0
        self._connection = 0   # network connections attempted; acks are only valid on their own
        self.last_error = ""
        self._quiet = False
        self._client = self._make_client()

    # -- set-up ----------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id,
                             protocol=mqtt.MQTTv5, reconnect_on_failure=False,
                             manual_ack=s.manual_ack)
        client.max_inflight_messages_set(s.max_inflight)
        client.max_queued_messages_set(0)
        client.connect_timeout = s.connect_timeout_s
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.brokers[0].tls:
            tls = s.tls or TlsFiles()
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            client.tls_insecure_set(tls.insecure_skip_hostname_check)
        if s.will:
            client.will_set(s.will[0], s.will[1], qos=1, retain=True)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_subscribe = self._handle_subscribe
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        return client

    def add_publish_listener(self, listener: PublishListener) -> None:
        """Called from paho's thread with (mid, ok, reason) for every PUBACK of a QoS 1 publish."""
        self._publish_listeners.append(listener)

    def add_state_listener(self, listener: Callable[[bool], None]) -> None:
        """Called with True once connected and subscribed, False when the session ends."""
        self._state_listeners.append(listener)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the supervisor thread; returns at once (connection happens in the background)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._supervise, name=f"mqtt-{self.settings.client_id}",
                                        daemon=True)
        self._thread.start()

    def stop(self, final: tuple[str, bytes] | None = None, timeout: float = 5.0) -> None:
        """Publish ``final`` (retained, e.g. 'offline'), disconnect cleanly and join the threads.

        A clean DISCONNECT suppresses the last will, so ``final`` is how the centre learns the
        checkpoint went away on purpose.
        """
        self._stop.set()
        if final and self.connected.is_set():
            info = self._client.publish(final[0], final[1], qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=min(timeout, 2.0))
        with self.io_lock:
            self._client.disconnect()
        self._session_over.set()
        self._connack.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._client.loop_stop()
        self.connected.clear()
        self.state = LinkState.STOPPED

    def wait_connected(self, timeout: float) -> bool:
        """Block (not on the event loop!) until connected or ``timeout`` seconds pass."""
        return self.connected.wait(timeout)

    # -- the supervisor --------------------------------------------------------------------
    def _supervise(self) -> None:
        s = self.settings
        attempt = 0
        index = 0
        quiet = False  # log the first failure of a streak at WARNING, the rest at DEBUG
        while not self._stop.is_set():
            broker = s.brokers[index % len(s.brokers)]
            ok = self._session(broker, quiet)
            if self._stop.is_set():
                break
            if ok:
                attempt = 0
                quiet = False
            else:
                quiet = True
                index += 1
            delay = backoff_delay(attempt, s.backoff_min_s, s.backoff_max_s)
            attempt += 1
            log.debug("next connection attempt in %.1f s", delay)
            self._stop.wait(delay)

    def _session(self, broker: Broker, quiet: bool) -> bool:
        """Connect to one broker and stay until the session ends; True if CONNACK was accepted."""
        s = self.settings
        self.broker = broker
        self._quiet = quiet
        self.state = LinkState.CONNECTING
        self._connack.clear()
        self._session_over.clear()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = s.session_expiry_s
        if s.receive_maximum is not None:
            props.ReceiveMaximum = s.receive_maximum
        level = logging.DEBUG if quiet else logging.WARNING
        try:
            with self.io_lock:
                self._connection += 1
                self._client.connect(broker.host, broker.port, keepalive=s.keepalive_s,
                                     clean_start=s.clean_start, properties=props)
                self._client.loop_start()
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.last_error = f"{broker.host}:{broker.port}: {exc}"
            log.log(level, "cannot reach broker %s:%d: %s", broker.host, broker.port, exc)
            self.state = LinkState.DISCONNECTED
            return False
        if not self._connack.wait(s.connect_timeout_s) or self.state is not LinkState.CONNECTED:
            if self.state is LinkState.CONNECTING:
                self.last_error = f"{broker.host}:{broker.port}: no CONNACK within {s.connect_timeout_s}s"
                log.log(level, "broker %s:%d sent no CONNACK in time", broker.host, broker.port)
            with self.io_lock:
                self._client.disconnect()
            self._client.loop_stop()
            return False
        self._session_over.wait()
        # Not under io_lock: paho's thread may be inside a callback that publishes (takes it).
        self._client.loop_stop()
        return True

    # -- paho callbacks (paho's thread) ----------------------------------------------------
    def _handle_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                        reason_code: ReasonCode, properties: Properties | None) -> None:
        broker = self.broker
        where = f"{broker.host}:{broker.port}" if broker else "?"
        if reason_code.is_failure:
            self.state = LinkState.REFUSED
            self.last_error = f"{where}: CONNACK refused: {reason_code} ({reason_code.value:#04x})"
            log.error("broker %s refused the connection: %s (%#04x)", where, reason_code,
                      reason_code.value)
            self._connack.set()
            return
        self.connects += 1
        log.info("connected to %s as %s (session present: %s)", where, self.settings.client_id,
                 flags.session_present)
        self.state = LinkState.CONNECTED
        with self._sub_lock:
            self._pending_subs.clear()
            for topic, qos in self.settings.subscriptions:
                rc, mid = client.subscribe(topic, qos=qos)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
                    log.error("subscribe %s failed to send: %s", topic, mqtt.error_string(rc))
                else:
                    self._pending_subs[mid] = topic
            ready = not self._pending_subs
        if self.settings.birth:
            topic, payload = self.settings.birth()
            client.publish(topic, payload, qos=1, retain=True)
        if ready:
            self._ready()

    def _ready(self) -> None:
        """Connected *and* subscribed: only now can nothing sent to us be missed."""
        self.connected.set()
        self._connack.set()
        for listener in self._state_listeners:
            listener(True)

    def _handle_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
                           reason_code: ReasonCode, properties: Properties | None) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if self.state is LinkState.CONNECTING:
            # e.g. TLS 1.3: the broker rejects a missing client certificate after the handshake
            self.last_error = (f"{self.broker.host if self.broker else '?'}: connection closed "
                               f"before CONNACK ({reason_code})")
            log.log(logging.DEBUG if self._quiet else logging.WARNING, "%s", self.last_error)
        if self.state is not LinkState.REFUSED:
            self.state = LinkState.DISCONNECTED
        if was and not self._stop.is_set():
            self.last_error = f"disconnected: {reason_code}"
            log.warning("connection to %s lost: %s", self.broker.host if self.broker else "?",
                        reason_code)
        self._session_over.set()
        self._connack.set()
        if was:
            for listener in self._state_listeners:
                listener(False)

    def _handle_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                          reason_codes: list[ReasonCode], properties: Properties | None) -> None:
        with self._sub_lock:
            if mid not in self._pending_subs:
                return
            topic = self._pending_subs.pop(mid)
            ready = not self._pending_subs
        refused = [rc for rc in reason_codes if rc.is_failure]
        if refused:
            # Connected but deaf to (part of) what the centre sends, e.g. an ACL that lacks this
            # site's topics: never "ready". The session ends and the supervisor backs off and
            # tries the next broker, as after a refused CONNACK; passages stay in the outbox.
            broker = self.broker
            where = f"{broker.host}:{broker.port}" if broker else "?"
            rc = refused[0]
            self.state = LinkState.REFUSED
            self.last_error = (f"{where}: subscription to {topic} refused: {rc} ({rc.value:#04x}); "
                               "check the broker's ACL for this client")
            log.log(logging.DEBUG if self._quiet else logging.ERROR, "%s", self.last_error)
            self._connack.set()
            return
        if ready and self.state is LinkState.CONNECTED:
            self._ready()

    def _handle_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode,
                        properties: Properties | None) -> None:
        ok = not reason_code.is_failure
        for listener in self._publish_listeners:
            listener(mid, ok, str(reason_code))

    def _handle_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._on_message is None:
            return
        try:
            self._on_message(message.topic, bytes(message.payload), message)
        except Exception:  # a handler bug must not kill paho's thread (and the link with it)
            log.exception("handler failed on a message from %s", message.topic)

    # -- acknowledging (manual_ack) --------------------------------------------------------
    def ack_token(self, message: mqtt.MQTTMessage) -> AckToken | None:
        """Call in ``on_message``: what to pass to :meth:`ack` later (None: nothing to ack)."""
        if not self.settings.manual_ack or message.qos == 0:
            return None
        return AckToken(message.mid, message.qos, self._connection)

    def ack(self, token: AckToken | None) -> bool:
        """Send the PUBACK for a message once it is committed (thread-safe).

        Only on the connection the message came on: after a reconnect the broker redelivers
        every unacknowledged message and may reuse a packet id that was acknowledged since, so
        a late PUBACK for the old connection could acknowledge a *different*, not yet applied
        message (MQTT 5 §4.3.2, §4.4). The redelivered copy is acknowledged in its turn (the
        downlink recognises it as a QoS 1 duplicate). Returns whether a PUBACK was queued.
        """
        if token is None:
            return False
        with self.io_lock:
            if token.connection != self._connection:
                log.debug("message %d came on an earlier connection; the broker redelivers it",
                          token.mid)
                return False
            rc = self._client.ack(token.mid, token.qos)
        return rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    # -- publishing ------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                properties: Properties | None = None) -> mqtt.MQTTMessageInfo:
        """Hand one message to paho (thread-safe). QoS 1 messages survive reconnects in paho."""
        with self.io_lock:
            return self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
