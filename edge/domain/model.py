"""The customs domain: what a truck brings to the gate and what the gate decides.

Names follow DESIGN-NOTES §3 so that code, logs, the console and the centre speak of the same
things. Models are pydantic so the same class validates an imported manifest file, an MQTT
batch and an API request, and every rejection names the field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime as PydanticAwareDatetime
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from ulid import ULID

from edge.domain import iso6346
from edge.domain.declarations import is_declaration_no, is_transit_mrn, normalize_reference
from edge.domain.plates import PLATE_SEPARATORS, is_plain_plate, normalize_plate


def utcnow() -> datetime:
    """Aware UTC now; every timestamp in gate-edge is aware."""
    return datetime.now(UTC)


def new_passage_id() -> str:
    """Passage ids are ULIDs: unique per checkpoint and sortable by time of creation."""
    return str(ULID())


# pydantic's AwareDatetime checks the offset in compiled code (a naive timestamp is the
# 'timezone_aware' error, which error messages turn into "write e.g. ...+07:00").
AwareDatetime = PydanticAwareDatetime


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Channel(StrEnum):
    """Customs risk channel of a declaration."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class ManifestStatus(StrEnum):
    """Only ``released`` may pass automatically."""

    CLEARED = "cleared"
    RELEASED = "released"
    HELD = "held"
    CANCELLED = "cancelled"


class SealType(StrEnum):
    """Electronic (ISO 18185) or mechanical bolt seal (ISO 17712)."""

    ESEAL = "e-seal"
    BOLT = "bolt"


class SealStatus(StrEnum):
    """What a reader says of a seal's integrity."""

    INTACT = "intact"
    OPENED = "opened"
    TAMPERED = "tampered"
    UNKNOWN = "unknown"


SEAL_ID_PATTERN = r"^[A-Z0-9][A-Z0-9\-]{3,31}$"
_SEAL_CLEAN = re.compile(r"^[A-Z0-9-]+\Z")


def normalize_seal_id(text: str) -> str:
    """Seal ids compare uppercase without spaces."""
    return "".join(text.split()).upper()


class DeclaredSeal(_Model):
    """A seal the declaration says is on a container."""

    seal_id: str = Field(..., description="seal number as printed / encoded", pattern=SEAL_ID_PATTERN)
    type: SealType = Field(SealType.BOLT, description="e-seal (RFID) or bolt (barcode)")
    container: str | None = Field(None, description="container the seal closes, if known")

    @field_validator("seal_id", mode="before")
    @classmethod
    def _norm(cls, value: str) -> str:
        if isinstance(value, str) and not _SEAL_CLEAN.match(value):
            return normalize_seal_id(value)
        return value


class Trader(_Model):
    """The declarant; AEO traders may be routed to priority lanes."""

    tax_code: str = Field(..., min_length=10, max_length=14, pattern=r"^[0-9]{10}(-?[0-9]{3})?$",
                          description="Vietnamese enterprise tax code (10 or 13 digits)")
    name: str = Field(..., min_length=1, max_length=200, description="registered name")
    aeo: bool = Field(False, description="Authorised Economic Operator")


class Manifest(_Model):
    """A pre-cleared declaration as held in the local cache."""

    declaration_no: str = Field(..., description="VN customs declaration number, 12 digits")
    version: int = Field(1, ge=1, le=2**63 - 1, description="newer versions replace older ones")
    transit_mrn: str | None = Field(None, description="transit MRN (18 chars with check char)")
    channel: Channel = Field(..., description="green, yellow or red")
    status: ManifestStatus = Field(..., description="cleared, released, held or cancelled")
    tractor_plate: str = Field(..., min_length=4, max_length=16, description="tractor/truck plate")
    trailer_plate: str | None = Field(None, max_length=16, description="trailer plate if any")
    containers: tuple[str, ...] = Field((), max_length=8, description="ISO 6346 numbers")
    seals: tuple[DeclaredSeal, ...] = Field((), max_length=16, description="declared seals")
    trader: Trader = Field(..., description="declarant")
    gates: tuple[str, ...] = Field((), description="checkpoints allowed; empty means any")
    lanes: tuple[str, ...] = Field((), description="lanes allowed; empty means any")
    valid_from: AwareDatetime = Field(..., description="start of validity (aware timestamp)")
    valid_until: AwareDatetime = Field(..., description="end of validity (aware timestamp)")

    @field_validator("declaration_no", mode="before")
    @classmethod
    def _declaration(cls, value: object) -> object:
        if isinstance(value, int):
            value = f"{value:012d}"
        if isinstance(value, str) and len(value) == 12 and value.isascii() and value.isdigit():
            return value  # the usual form: nothing to normalize
        if isinstance(value, str):
            value = normalize_reference(value)
            if not is_declaration_no(value):
                raise ValueError("a declaration number has exactly 12 digits")
        return value

    @field_validator("transit_mrn", mode="before")
    @classmethod
    def _mrn(cls, value: object) -> object:
        if isinstance(value, str) and value.strip():
            value = normalize_reference(value)
            if not is_transit_mrn(value):
                raise ValueError("not a valid transit MRN (18 characters, last one a check digit)")
            return value
        return None if value in ("", None) else value

    @field_validator("tractor_plate", "trailer_plate", mode="before")
    @classmethod
    def _plate(cls, value: object) -> object:
        if isinstance(value, str) and is_plain_plate(value):
            # the usual forms ("51C12345", "51C-123.45"): nothing to check character by character
            return normalize_plate(value)
        if isinstance(value, str):
            odd = sorted({ch for ch in value if not (ch.isalnum() or ch in PLATE_SEPARATORS)})
            if odd:
                raise ValueError(f"plate {value!r} contains {''.join(odd)!r}; only letters, "
                                 "digits, spaces, '-', '.' and '·' belong on a plate")
            plate = normalize_plate(value)
            if value.strip() and not plate:
                raise ValueError("plate has no letters or digits")
            return plate or None
        return value

    @field_validator("containers", mode="before")
    @classmethod
    def _containers(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            out = []
            for item in value:
                code = str(item)
                if not iso6346.is_valid(code):
                    code = iso6346.normalize_container(code)
                    expected = ""
                    if iso6346.is_well_formed(code):
                        expected = f" (check digit should be {iso6346.check_digit(code)})"
                    raise ValueError(f"container {item!r} is not a valid ISO 6346 number{expected}")
                out.append(code if iso6346.is_normalized(code) else iso6346.normalize_container(code))
            return tuple(out)
        return value

    @model_validator(mode="after")
    def _window(self) -> Manifest:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self

    def is_valid_at(self, when: datetime) -> bool:
        """Within its validity window."""
        return self.valid_from <= when <= self.valid_until


class HotlistKind(StrEnum):
    """What a hotlist entry names."""

    PLATE = "plate"
    CONTAINER = "container"
    SEAL = "seal"
    TRADER = "trader"


class HotlistEntry(_Model):
    """Intelligence that stops a truck: hold (arm stays shut, alarm) or refer to an officer."""

    kind: HotlistKind = Field(..., description="plate, container, seal or trader")
    value: str = Field(..., min_length=1, max_length=64, description="the plate/number/tax code")
    reason: str = Field(..., min_length=1, max_length=500, description="why it is listed")
    action: Literal["hold", "refer"] = Field("hold", description="hold or refer")
    expires_at: AwareDatetime | None = Field(None, description="no longer applies after this")

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("value"), str):
            try:
                value = normalize_hotlist_value(data.get("kind", ""), data["value"])
            except ValueError:
                return data  # the kind itself is wrong; pydantic reports it
            return {**data, "value": value}
        return data


def normalize_hotlist_value(kind: HotlistKind | str, value: str) -> str:
    """The form hotlist values are stored and looked up in, per kind."""
    kind = HotlistKind(kind)
    if kind is HotlistKind.PLATE:
        return normalize_plate(value)
    if kind is HotlistKind.CONTAINER:
        return iso6346.normalize_container(value)
    if kind is HotlistKind.SEAL:
        return normalize_seal_id(value)
    return "".join(ch for ch in value if ch.isalnum())


class PlateCandidate(_Model):
    """One reading the OCR and grammar produced, with its confidence 0..1."""

    text: str
    confidence: float = Field(..., ge=0, le=1)
    grammar: str | None = None


class PlateRead(_Model):
    """A (voted) plate reading of one vehicle at one lane."""

    lane: str
    camera: str = "manual"
    role: Literal["tractor", "trailer"] = "tractor"
    text: str
    confidence: float = Field(..., ge=0, le=1)
    candidates: tuple[PlateCandidate, ...] = ()
    grammar: str | None = None
    colour: str | None = None
    bbox: tuple[int, int, int, int] | None = None
    frames: int = Field(1, ge=1, description="how many frames agreed on this text")
    frame_time: AwareDatetime = Field(default_factory=utcnow)
    crop_ref: str | None = None

    @field_validator("text", mode="after")
    @classmethod
    def _norm(cls, value: str) -> str:
        return normalize_plate(value)


class ContainerRead(_Model):
    """A container number read from a rear/side camera (or typed by an officer)."""

    lane: str
    camera: str = "manual"
    text: str
    confidence: float = Field(1.0, ge=0, le=1)
    repaired_from: str | None = Field(None, description="raw OCR text when a repair was applied")
    check_digit_ok: bool = True
    frame_time: AwareDatetime = Field(default_factory=utcnow)
    crop_ref: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _repair(cls, data: object) -> object:
        """A raw read is checked and, where exactly one repair passes, repaired (ISO 6346)."""
        if not isinstance(data, dict) or "check_digit_ok" in data or not isinstance(
                data.get("text"), str):
            return data
        raw = iso6346.normalize_container(data["text"])
        if iso6346.is_valid(raw):
            return {**data, "text": raw, "check_digit_ok": True}
        fixed = iso6346.repair(raw)
        if fixed is not None:
            return {**data, "text": fixed, "repaired_from": raw, "check_digit_ok": True}
        return {**data, "text": raw, "check_digit_ok": False}


class SealRead(_Model):
    """A seal seen by an RFID e-seal reader or a bolt-seal barcode scanner."""

    lane: str
    reader: str
    seal_id: str
    kind: SealType = SealType.BOLT
    status: SealStatus = SealStatus.UNKNOWN
    manufacturer: str | None = None
    battery: int | None = Field(None, ge=0, le=100)
    malformed: bool = Field(False, description="id failed validation; kept so the officer sees it")
    count: int = Field(1, ge=1, description="duplicates within the window collapsed into one")
    read_at: AwareDatetime = Field(default_factory=utcnow)
    raw: str | None = None


class ReasonCode(StrEnum):
    """Machine-readable reasons a truck was not opened automatically (DESIGN-NOTES §3)."""

    NO_MANIFEST = "NO_MANIFEST"
    AMBIGUOUS_MANIFEST = "AMBIGUOUS_MANIFEST"
    NOT_RELEASED = "NOT_RELEASED"
    MANIFEST_CANCELLED = "MANIFEST_CANCELLED"
    CHANNEL_REVIEW = "CHANNEL_REVIEW"
    OUTSIDE_VALIDITY = "OUTSIDE_VALIDITY"
    WRONG_GATE = "WRONG_GATE"
    WRONG_LANE = "WRONG_LANE"
    NOT_AEO_LANE = "NOT_AEO_LANE"
    PLATE_NOT_READ = "PLATE_NOT_READ"
    PLATE_MISMATCH = "PLATE_MISMATCH"
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    TRAILER_NOT_READ = "TRAILER_NOT_READ"
    TRAILER_MISMATCH = "TRAILER_MISMATCH"
    CONTAINER_MISSING = "CONTAINER_MISSING"
    CONTAINER_UNEXPECTED = "CONTAINER_UNEXPECTED"
    CONTAINER_CHECK_DIGIT = "CONTAINER_CHECK_DIGIT"
    SEAL_MISSING = "SEAL_MISSING"
    SEAL_UNEXPECTED = "SEAL_UNEXPECTED"
    SEAL_TAMPERED = "SEAL_TAMPERED"
    SEAL_MALFORMED = "SEAL_MALFORMED"
    SEAL_STATUS_UNKNOWN = "SEAL_STATUS_UNKNOWN"
    HOTLIST_PLATE = "HOTLIST_PLATE"
    HOTLIST_CONTAINER = "HOTLIST_CONTAINER"
    HOTLIST_SEAL = "HOTLIST_SEAL"
    HOTLIST_TRADER = "HOTLIST_TRADER"
    CACHE_STALE = "CACHE_STALE"
    TAILGATING = "TAILGATING"
    # Set by the lane, not the matcher: gate-controller refused the open token because its
    # clock and gate-edge's disagree (token from the future, expired, before its start).
    CLOCK_SKEW = "CLOCK_SKEW"


class Outcome(StrEnum):
    """What the lane does: open the arm, call an officer, or hold and raise an alarm."""

    OPEN = "open"
    REFER = "refer"
    HOLD = "hold"


class Decision(_Model):
    """The gate's answer for one passage, with every reason that applied."""

    outcome: Outcome
    reasons: tuple[ReasonCode, ...] = ()
    declaration_no: str | None = None
    manifest_version: int | None = None
    matched_plate: str | None = None
    plate_match: Literal["exact", "folded", "declaration", "none"] = "none"
    priority: bool = Field(False, description="AEO trader: priority handling")
    details: tuple[str, ...] = Field((), description="human-readable notes for the officer")
    decided_at: AwareDatetime = Field(default_factory=utcnow)
    decided_by: str = Field("auto", description="'auto' or the officer's user name")


class PassageReads(_Model):
    """Everything read for one truck at one lane; the matcher's input."""

    lane: str
    gate: str | None = None
    tractor: tuple[PlateRead, ...] = ()
    trailer: tuple[PlateRead, ...] = ()
    containers: tuple[ContainerRead, ...] = ()
    seals: tuple[SealRead, ...] = ()
    declaration_no: str | None = None
    tailgating: bool = False
    at: AwareDatetime = Field(default_factory=utcnow)


class Passage(_Model):
    """One truck's visit to a lane: reads, decision, barrier events, officer actions, evidence."""

    id: str = Field(default_factory=new_passage_id)
    lane: str
    started_at: AwareDatetime = Field(default_factory=utcnow)
    ended_at: AwareDatetime | None = None
    reads: PassageReads
    decision: Decision | None = None
    barrier_events: tuple[dict[str, object], ...] = ()
    evidence: tuple[dict[str, str], ...] = Field((), description="files with their SHA-256")
