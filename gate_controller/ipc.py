r"""Gate-controller IPC: the JSON-lines messages exchanged with gate-edge over a Unix socket.

Byte-exact description in docs/protocols.md (section "Gate-controller IPC"). Every line is one
UTF-8 JSON object terminated by ``\\n``; inbound messages are validated strictly (unknown keys
and unknown types are errors) so a typo in gate-edge is answered with a reason instead of being
half-understood by the component that moves the barrier.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gate_controller.lane import Decision, OfficerCommand

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 65536
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


class ProtocolError(Exception):
    """An inbound line that cannot be used; ``code`` is sent back in the error reply."""

    def __init__(self, code: str, message: str, msg_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.msg_id = msg_id


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = Field(default=1, description="protocol version; only 1 exists")
    id: str | None = Field(default=None, pattern=ID_PATTERN,
                           description="sender's message id, echoed in the reply")


class HeartbeatMsg(_Msg):
    """gate-edge is alive; send at least every heartbeat_timeout_s / 3."""

    type: Literal["heartbeat"] = Field(description="message type")
    sender: str | None = Field(default=None, max_length=64, description="who is alive (gate-edge)")


class DecisionMsg(_Msg):
    """gate-edge's decision for the vehicle announced by a vehicle_present event."""

    type: Literal["decision"] = Field(description="message type")
    action: Literal["open", "refer", "hold"] = Field(description="what gate-edge decided")
    event_id: str = Field(pattern=ID_PATTERN, description="event_id of the vehicle_present")
    passage_id: str = Field(pattern=ID_PATTERN, description="gate-edge's passage id (ULID)")
    token: str | None = Field(default=None, max_length=128, description="one-shot open token")
    issued_at: float | None = Field(default=None, description="token issue time, unix seconds")
    reasons: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=32, description="machine-readable reason codes"
    )

    def to_decision(self) -> Decision:
        """The lane-level value object."""
        return Decision(self.action, self.event_id, self.passage_id, self.token, self.issued_at,
                        tuple(self.reasons))


class OfficerMsg(_Msg):
    """An officer's action; gate-edge authenticates the officer before relaying it."""

    type: Literal["officer"] = Field(description="message type")
    command: Literal["open", "close", "manual", "auto", "reset", "silence"] = Field(
        description="what the officer wants"
    )
    officer: str = Field(min_length=1, max_length=64, description="officer's user id")
    reason: str = Field(min_length=1, max_length=200, description="why (kept in the audit)")
    passage_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="passage concerned"
    )

    def to_command(self) -> OfficerCommand:
        """The lane-level value object."""
        return OfficerCommand(self.command, self.officer, self.reason, self.passage_id)


class StatusMsg(_Msg):
    """Ask for the lane's state; the reply carries it."""

    type: Literal["status"] = Field(description="message type")


Inbound = Annotated[HeartbeatMsg | DecisionMsg | OfficerMsg | StatusMsg,
                    Field(discriminator="type")]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Inbound)
KNOWN_TYPES = ("heartbeat", "decision", "officer", "status")


def parse_line(line: bytes) -> HeartbeatMsg | DecisionMsg | OfficerMsg | StatusMsg:
    """Decode and validate one inbound line; raises ProtocolError naming the problem."""
    if len(line) > MAX_LINE_BYTES:
        raise ProtocolError("line_too_long", f"line longer than {MAX_LINE_BYTES} bytes")
    try:
        data = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolError("bad_encoding", "line is not UTF-8") from None
    except ValueError as exc:
        raise ProtocolError("bad_json", f"not JSON: {exc}") from None
    except RecursionError:  # "[[[[..." well within MAX_LINE_BYTES exhausts the parser's stack
        raise ProtocolError("bad_json", "not JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ProtocolError("not_object", "each line must be one JSON object")
    msg_id = data.get("id") if isinstance(data.get("id"), str) else None
    kind = data.get("type")
    if kind not in KNOWN_TYPES:
        raise ProtocolError("unknown_type",
                            f"unknown message type {kind!r}; known: {', '.join(KNOWN_TYPES)}",
                            msg_id)
    try:
        msg: HeartbeatMsg | DecisionMsg | OfficerMsg | StatusMsg = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "(message)"
        raise ProtocolError("invalid", f"{where}: {first['msg']}", msg_id) from None
    return msg


def encode(obj: dict[str, Any]) -> bytes:
    r"""One outbound line: compact JSON, keys in insertion order, ``\\n`` terminated."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def utc_ts(wall: float) -> str:
    """RFC 3339 UTC timestamp with milliseconds, e.g. 2026-11-23T12:00:00.123Z."""
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def reply(msg_id: str | None, ok: bool, **fields: Any) -> dict[str, Any]:
    """A reply object (``ok`` false replies carry ``error`` and ``message``)."""
    return {"v": PROTOCOL_VERSION, "type": "reply", "id": msg_id, "ok": ok, **fields}
