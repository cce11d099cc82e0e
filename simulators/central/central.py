"""The central customs system, simulated: the reference implementation of the centre's side.

It speaks exactly docs/protocols.md ("MQTT topics and payloads") over a real broker:

* down: signs and publishes manifest and hotlist batches with per-site, per-stream ``seq``;
  answers a resync request with a (possibly multi-part) snapshot of everything it has sent;
  sends signed lane commands with MQTT 5 message expiry, ``not_after`` and a nonce;
* up: receives passages, alarms and acks, verifies each signature against the site's public
  key, de-duplicates by idempotency key, tracks the outbox ``seq`` per site and reports gaps,
  and can export what it received as JSON lines.

Thread-safety: receiving runs on paho's thread, publishing on the caller's; a lock guards the
shared state.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from ulid import ULID

from edge.sync.link import Broker, LinkSettings, MqttLink, TlsFiles
from edge.sync.signing import KeyRing, SignatureError, sign_bytes
from edge.sync.topics import Topics, central_filters

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass
class SiteState:
    """What the centre has sent to, and received from, one checkpoint."""

    manifest_seq: int = 0
    hotlist_seq: int = 0
    version: int = 0
    hotlist_version: int = 0
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    hotlist: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    received: dict[str, dict[str, Any]] = field(default_factory=dict)   # idempotency key -> msg
    seqs: set[int] = field(default_factory=set)
    duplicates: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    resync_requests: int = 0
    status: dict[str, Any] | None = None

    def gaps(self) -> list[int]:
        """Outbox seqs missing below the highest one received."""
        if not self.seqs:
            return []
        top = max(self.seqs)
        return [s for s in range(1, top + 1) if s not in self.seqs]


class CentralSim:
    """A small but faithful centre for one or more checkpoints."""

    def __init__(self, brokers: Sequence[Broker], *, key: Ed25519PrivateKey, kid: str,
                 edge_keys: Mapping[str, KeyRing], prefix: str = "", client_id: str = "central-sim",
                 snapshot_part_size: int = 2000, export_path: Path | None = None,
                 tls: TlsFiles | None = None, answer_resync: bool = True) -> None:
        self.key = key
        self.kid = kid
        self.edge_keys = edge_keys
        self.prefix = prefix
        self.snapshot_part_size = snapshot_part_size
        #: False: count resync requests but send no snapshot (a centre that is slow to answer)
        self.answer_resync = answer_resync
        self.export_path = export_path
        self.sites: dict[str, SiteState] = defaultdict(SiteState)
        self.rejected: Counter[str] = Counter()
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._export = export_path.open("a", encoding="utf-8") if export_path else None
        self.link = MqttLink(LinkSettings(client_id=client_id, brokers=brokers, backoff_min_s=0.2,
                                          backoff_max_s=2.0, tls=tls,
                                          subscriptions=[(f, 1) for f in central_filters(prefix)]),
                             on_message=self._on_message)

    def start(self, wait: float = 10.0) -> CentralSim:
        """Connect; returns once subscribed (or raises TimeoutError)."""
        self.link.start()
        if not self.link.wait_connected(wait):
            raise TimeoutError(f"central simulator could not connect: {self.link.last_error}")
        return self

    def stop(self) -> None:
        """Disconnect and close the export file."""
        self.link.stop()
        if self._export is not None:
            self._export.close()
            self._export = None

    def topics(self, site: str) -> Topics:
        """The topic names of one site."""
        return Topics(site, self.prefix)

    # -- down --------------------------------------------------------------------------------
    def _publish(self, topic: str, body: dict[str, Any], *, expiry_s: int | None = None) -> bytes:
        payload = sign_bytes(body, self.key, self.kid)
        props = None
        if expiry_s is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = expiry_s
        self.link.publish(topic, payload, qos=1, properties=props)
        return payload

    def publish_manifests(self, site: str, items: Iterable[dict[str, Any]], *,
                          signed_at: datetime | None = None, lose: bool = False) -> dict[str, Any]:
        """Sign and send the next manifest batch of ``site``; returns the body sent.

        ``lose=True`` is fault injection: the batch consumes its seq and enters the centre's
        state but never reaches the broker, as if a bridge had dropped it.
        """
        items = list(items)
        with self.lock:
            st = self.sites[site]
            st.manifest_seq += 1
            st.version += 1
            for item in items:
                prior = st.manifests.get(item["declaration_no"])
                if prior is None or item.get("version", 1) > prior.get("version", 1):
                    st.manifests[item["declaration_no"]] = item
            body = {"type": "manifests", "site": site, "seq": st.manifest_seq,
                    "version": st.version, "signed_at": _iso(signed_at or _now()), "items": items}
        if not lose:
            self._publish(self.topics(site).manifests, body)
        return body

    def publish_hotlist(self, site: str, items: Iterable[dict[str, Any]],
                        removed: Iterable[dict[str, str]] = ()) -> dict[str, Any]:
        """Sign and send the next hotlist batch of ``site``."""
        items, removed = list(items), list(removed)
        with self.lock:
            st = self.sites[site]
            st.hotlist_seq += 1
            st.hotlist_version += 1
            for item in items:
                st.hotlist[(item["kind"], item["value"])] = item
            for gone in removed:
                st.hotlist.pop((gone["kind"], gone["value"]), None)
            body = {"type": "hotlist", "site": site, "seq": st.hotlist_seq,
                    "version": st.hotlist_version, "signed_at": _iso(_now()), "items": items,
                    "removed": removed}
        self._publish(self.topics(site).hotlist, body)
        return body

    def publish_snapshot(self, site: str, request_id: str | None = None) -> int:
        """Send everything ``site`` should hold, in parts; returns the number of parts."""
        with self.lock:
            st = self.sites[site]
            manifests = list(st.manifests.values())
            hotlist = list(st.hotlist.values())
            head = {"type": "snapshot", "site": site, "seq": st.manifest_seq,
                    "hotlist_seq": st.hotlist_seq, "version": st.version,
                    "hotlist_version": st.hotlist_version, "signed_at": _iso(_now()),
                    "snapshot_id": str(ULID()), "request_id": request_id}
        size = self.snapshot_part_size
        chunks = [manifests[i:i + size] for i in range(0, len(manifests), size)] or [[]]
        for number, chunk in enumerate(chunks, start=1):
            body = {**head, "part": number, "parts": len(chunks), "manifests": chunk,
                    "hotlist": hotlist if number == 1 else []}
            self._publish(self.topics(site).snapshot, body)
        log.info("snapshot for %s: %d manifests in %d part(s)", site, len(manifests), len(chunks))
        return len(chunks)

    def send_command(self, site: str, lane: str, command: str, *, mode: str | None = None,
                     passage_id: str | None = None, reason: str | None = None,
                     ttl_s: int = 60) -> str:
        """Sign and send a lane command with a fresh nonce; returns the nonce."""
        nonce = str(ULID())
        now = _now()
        body = {"type": "command", "site": site, "lane": lane, "command": command, "mode": mode,
                "passage_id": passage_id, "reason": reason, "nonce": nonce,
                "issued_at": _iso(now), "not_after": _iso(now + timedelta(seconds=ttl_s))}
        self._publish(self.topics(site).command(lane), body, expiry_s=ttl_s)
        return nonce

    def publish_raw(self, topic: str, payload: bytes, *, expiry_s: int | None = None) -> None:
        """Send bytes as they are (tests of tampered, unsigned and malformed messages)."""
        props = None
        if expiry_s is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = expiry_s
        self.link.publish(topic, payload, qos=1, properties=props)

    # -- up ----------------------------------------------------------------------------------
    def _reject(self, topic: str, code: str, message: str) -> None:
        with self.lock:
            self.rejected[code] += 1
        log.warning("rejected up message on %s: %s: %s", topic, code, message)

    def _on_message(self, topic: str, payload: bytes, message: Any) -> None:
        parts = topic[len(self.prefix):].split("/")
        if len(parts) != 4 or parts[:2] != ["edge", "v1"]:
            self._reject(topic, "WRONG_TOPIC", "not an edge/v1/{site}/{kind} topic")
            return
        site, leaf = parts[2], parts[3]
        try:
            doc = json.loads(payload)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            self._reject(topic, "MALFORMED_JSON", str(exc))
            return
        ring = self.edge_keys.get(site)
        if ring is None:
            self._reject(topic, "UNKNOWN_SITE", f"no public key configured for site {site!r}")
            return
        try:
            ring.verify(doc)   # the site's own ring: a key of site A cannot speak for site B
        except SignatureError as exc:
            self._reject(topic, exc.code, str(exc))
            return
        if doc.get("site") != site:
            self._reject(topic, "WRONG_SITE", f"message of {doc.get('site')!r} on {site}'s topic")
            return
        if leaf == "resync":
            self._resync(site, doc)
            return
        if leaf == "status":
            with self.lock:
                self.sites[site].status = doc
            return
        self._outbox_message(site, leaf, doc)

    def _outbox_message(self, site: str, leaf: str, doc: dict[str, Any]) -> None:
        key, seq = doc.get("idempotency_key"), doc.get("seq")
        if not isinstance(key, str) or not isinstance(seq, int):
            self._reject(leaf, "INVALID", "up message without idempotency_key and seq")
            return
        with self.changed:
            st = self.sites[site]
            if key in st.received:
                st.duplicates += 1
                return
            st.received[key] = doc
            st.seqs.add(seq)
            st.by_kind[str(doc.get("type"))] += 1
            if self._export is not None:
                self._export.write(json.dumps({"site": site, "topic": leaf, **doc},
                                              ensure_ascii=False) + "\n")
            self.changed.notify_all()

    def _resync(self, site: str, doc: dict[str, Any]) -> None:
        with self.lock:
            self.sites[site].resync_requests += 1
        log.info("resync request from %s: %s", site, doc.get("reason"))
        if self.answer_resync:
            self.publish_snapshot(site, request_id=str(doc.get("request_id")))

    # -- queries ---------------------------------------------------------------------------
    def wait_for(self, site: str, count: int, timeout: float, kind: str | None = None) -> bool:
        """Block until ``count`` distinct messages (of ``kind``) from ``site`` arrived."""
        def enough() -> bool:
            st = self.sites[site]
            return (st.by_kind[kind] if kind else len(st.received)) >= count
        with self.changed:
            return self.changed.wait_for(enough, timeout)

    def messages(self, site: str, kind: str | None = None) -> list[dict[str, Any]]:
        """Distinct messages received from ``site`` in seq order."""
        with self.lock:
            docs = list(self.sites[site].received.values())
        return sorted((d for d in docs if kind is None or d.get("type") == kind),
                      key=lambda d: int(d["seq"]))

    def report(self) -> dict[str, Any]:
        """Per-site counts, duplicates and gaps (what ``gate-sim central`` prints)."""
        with self.lock:
            return {
                "sites": {
                    site: {"received": len(st.received), "duplicates": st.duplicates,
                           "by_kind": dict(st.by_kind), "max_seq": max(st.seqs, default=0),
                           "gaps": st.gaps()[:100], "gap_count": len(st.gaps()),
                           "resync_requests": st.resync_requests,
                           "manifest_seq": st.manifest_seq, "hotlist_seq": st.hotlist_seq,
                           "status": (st.status or {}).get("state")}
                    for site, st in sorted(self.sites.items())},
                "rejected": dict(self.rejected),
            }
