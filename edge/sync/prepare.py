"""The checks of a down message that need no state: size, topic, JSON, signature, site, type, body.

For a batch of 1,000 declarations they are most of the cost (JSON, Ed25519 over ~400 kB,
pydantic validation of every declaration, flattening each into its table rows), and they
depend on nothing the cache holds, so the pipeline (``pipeline.py``) runs them in a worker
process while the downlink writes the previous batch. Everything that depends on state -- seq,
version, replay, nonces, snapshot staging, the clock -- runs afterwards, one message at a time
and in arrival order, in :meth:`edge.sync.downlink.Downlink.apply`.

Validation is never skipped because a batch is signed: a bug at the centre must not poison the
cache. A body that fails validation is not rejected here but carried as ``body_error``, so the
downlink reports exactly what it reported before the checks moved: a replayed or out-of-order
batch is rejected as such even if its content is also bad.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from edge.domain.model import HotlistEntry, HotlistKind, Manifest, normalize_hotlist_value
from edge.store.cache import ManifestRows, manifest_rows
from edge.store.db import from_iso
from edge.sync.signing import KeyRing, SignatureError
from edge.sync.topics import Topics

# The members that hold the bulk of a message; the rest (the header) travels with the result.
_BULK = ("items", "manifests", "hotlist", "removed")


class Rejected(Exception):
    """A message that must not be applied; ``code`` is the machine-readable reason."""

    def __init__(self, code: str, message: str, *, alarm: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.alarm = alarm

    def __reduce__(self) -> tuple[Any, ...]:
        # keyword-only ``alarm`` would be lost by Exception's default pickling (worker → writer)
        return _rejected, (self.code, self.message, self.alarm)


def _rejected(code: str, message: str, alarm: bool) -> Rejected:
    return Rejected(code, message, alarm=alarm)


@dataclass
class Prepared:
    """A message that passed every stateless check, with its body validated and flattened."""

    kind: str                        # manifests | hotlist | snapshot | command
    lane: str | None                 # commands only
    doc: dict[str, Any]              # the signed message without its bulky members
    kid: str                         # the key that signed it
    signed_at: datetime | None       # batches and snapshots
    manifests: list[ManifestRows] = field(default_factory=list)
    hotlist: list[HotlistEntry] = field(default_factory=list)
    removed: list[tuple[HotlistKind, str]] = field(default_factory=list)
    body_error: Rejected | None = None   # raised by the downlink after its seq checks


class Preparer:
    """Stateless, so it pickles into worker processes (the key ring travels as raw keys)."""

    def __init__(self, topics: Topics, keys: KeyRing, max_payload_bytes: int) -> None:
        self.topics = topics
        self.keys = keys
        self.max_payload_bytes = max_payload_bytes

    def prepare(self, topic: str, payload: bytes) -> Prepared:
        """Check one message as far as possible without state; raises :class:`Rejected`."""
        if len(payload) > self.max_payload_bytes:
            raise Rejected("PAYLOAD_TOO_LARGE",
                           f"{len(payload)} bytes > limit {self.max_payload_bytes}")
        kind, lane = self._kind_of(topic)
        verified = self.keys.loads_verified(payload)
        doc, kid = verified if verified is not None else self._parse_and_verify(payload)
        if doc.get("site") != self.topics.site:
            raise Rejected("WRONG_SITE", f"signed for site {doc.get('site')!r}, this is "
                                         f"{self.topics.site!r}")
        if doc.get("type") != kind:
            raise Rejected("WRONG_TYPE", f"a {doc.get('type')!r} message on the {kind} topic")
        if kind == "command":
            return Prepared(kind, lane, doc, kid, None)
        prepared = Prepared(kind, None, {k: v for k, v in doc.items() if k not in _BULK}, kid,
                            time_of(doc, "signed_at"))
        try:
            if kind == "manifests":
                prepared.manifests = manifest_rows_of(_list(doc, "items", None))
            elif kind == "hotlist":
                prepared.hotlist = hotlist_of(_list(doc, "items", None))
                prepared.removed = _removals(doc.get("removed", []))
            else:   # snapshot
                prepared.manifests = manifest_rows_of(_list(doc, "manifests", []))
                prepared.hotlist = hotlist_of(_list(doc, "hotlist", []))
        except Rejected as rej:
            prepared.manifests, prepared.hotlist, prepared.removed = [], [], []
            prepared.body_error = rej
        return prepared

    def _parse_and_verify(self, payload: bytes) -> tuple[dict[str, Any], str]:
        """The general path: any JSON layout, and the precise reason when something is wrong."""
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Rejected("MALFORMED_JSON", f"not JSON: {exc}") from None
        except RecursionError:   # "[[[[..." a few KB long exhausts the parser's stack
            raise Rejected("MALFORMED_JSON", "JSON nested too deeply") from None
        if not isinstance(doc, dict):
            raise Rejected("MALFORMED_JSON", f"expected a JSON object, got {type(doc).__name__}")
        try:
            return doc, self.keys.verify(doc)
        except SignatureError as exc:
            raise Rejected(exc.code, str(exc)) from None

    def _kind_of(self, topic: str) -> tuple[str, str | None]:
        t = self.topics
        if topic == t.manifests:
            return "manifests", None
        if topic == t.hotlist:
            return "hotlist", None
        if topic == t.snapshot:
            return "snapshot", None
        lane = t.lane_of_command(topic)
        if lane is not None:
            return "command", lane
        raise Rejected("WRONG_TOPIC", "not a topic of this checkpoint", alarm=False)


def time_of(doc: dict[str, Any], key: str) -> datetime:
    """An aware ISO 8601 member, or INVALID_BATCH."""
    value = doc.get(key)
    try:
        ts = from_iso(value) if isinstance(value, str) else None
    except ValueError:
        ts = None
    if ts is None or ts.tzinfo is None:
        raise Rejected("INVALID_BATCH", f"'{key}' must be an ISO 8601 time with offset")
    return ts


# One adapter for the whole list: about 20% faster than validating item by item.
_MANIFESTS = TypeAdapter(list[Manifest])
_HOTLIST = TypeAdapter(list[HotlistEntry])


def manifest_rows_of(items: list[Any]) -> list[ManifestRows]:
    """Validate declarations (all of them: one bad one rejects the batch) and flatten them."""
    return [manifest_rows(m) for m in _validate(_MANIFESTS, items, "item")]


def hotlist_of(items: list[Any]) -> list[HotlistEntry]:
    """Validate hotlist entries."""
    return _validate(_HOTLIST, items, "hotlist item")


def _validate(adapter: TypeAdapter[list[Any]], items: list[Any], what: str) -> list[Any]:
    try:
        return adapter.validate_python(items)
    except ValidationError as exc:
        first = exc.errors()[0]
        index, *rest = first["loc"] or ("?",)
        where = ".".join(str(p) for p in rest)
        raise Rejected("INVALID_BATCH", f"{what} {index}: {where}: {first['msg']}") from None


def _removals(items: Any) -> list[tuple[HotlistKind, str]]:
    if not isinstance(items, list):
        raise Rejected("INVALID_BATCH", "'removed' must be a list")
    out = []
    for item in items:
        try:
            kind = HotlistKind(item["kind"])
            out.append((kind, normalize_hotlist_value(kind, str(item["value"]))))
        except (KeyError, TypeError, ValueError):
            raise Rejected("INVALID_BATCH", f"bad hotlist removal {item!r}") from None
    return out


def _list(doc: dict[str, Any], key: str, default: list[Any] | None) -> list[Any]:
    value = doc.get(key, default)
    if not isinstance(value, list):
        raise Rejected("INVALID_BATCH", f"'{key}' must be a list")
    return value
