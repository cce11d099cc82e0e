"""Reason codes every officer action carries, and the check of the reason fields of a form.

Codes are machine-readable for post-clearance audit; labels are what the officer picks from.
"""

from __future__ import annotations

from enum import StrEnum

NOTE_MAX = 500


class ActionReason(StrEnum):
    """Why an officer acted; every console action carries one (DESIGN-NOTES §9)."""

    DOCUMENTS_CHECKED = "DOCUMENTS_CHECKED"
    PLATE_CHECKED_VISUALLY = "PLATE_CHECKED_VISUALLY"
    SEALS_CHECKED = "SEALS_CHECKED"
    DECLARATION_SCANNED = "DECLARATION_SCANNED"
    OCR_MISREAD = "OCR_MISREAD"
    SUPERVISOR_INSTRUCTION = "SUPERVISOR_INSTRUCTION"
    INSPECTION_REQUIRED = "INSPECTION_REQUIRED"
    SUSPECTED_IRREGULARITY = "SUSPECTED_IRREGULARITY"
    EQUIPMENT_FAULT = "EQUIPMENT_FAULT"
    INTELLIGENCE_REPORT = "INTELLIGENCE_REPORT"
    ENTERED_IN_ERROR = "ENTERED_IN_ERROR"
    IDENTITY_CONFIRMED = "IDENTITY_CONFIRMED"
    OTHER = "OTHER"


REASON_LABELS: dict[ActionReason, str] = {
    ActionReason.DOCUMENTS_CHECKED: "Documents checked by the officer",
    ActionReason.PLATE_CHECKED_VISUALLY: "Plate checked by eye at the lane",
    ActionReason.SEALS_CHECKED: "Seals checked by hand",
    ActionReason.DECLARATION_SCANNED: "Declaration barcode scanned / typed",
    ActionReason.OCR_MISREAD: "Camera misread the plate",
    ActionReason.SUPERVISOR_INSTRUCTION: "On a supervisor's instruction",
    ActionReason.INSPECTION_REQUIRED: "Physical inspection required",
    ActionReason.SUSPECTED_IRREGULARITY: "Suspected irregularity",
    ActionReason.EQUIPMENT_FAULT: "Equipment fault at the lane",
    ActionReason.INTELLIGENCE_REPORT: "Intelligence report",
    ActionReason.ENTERED_IN_ERROR: "Entry made in error",
    ActionReason.IDENTITY_CONFIRMED: "Identity confirmed in person",
    ActionReason.OTHER: "Other (explain in the note)",
}


def check_reason(value: str | None, note: str | None, errors: dict[str, str]) -> tuple[str, str]:
    """The reason code and note of an action; problems go into ``errors`` by field name."""
    note = (note or "").strip()
    code = ""
    try:
        code = ActionReason(value or "").value
    except ValueError:
        errors["reason_code"] = "choose a reason code from the list"
    if len(note) > NOTE_MAX:
        errors["note"] = f"note is longer than {NOTE_MAX} characters"
    elif code == ActionReason.OTHER and not note:
        errors["note"] = "reason OTHER needs a note saying why"
    return code, note
