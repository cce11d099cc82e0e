"""Customs declaration numbers and transit MRNs.

A Vietnamese customs declaration (VNACCS/VCIS) is numbered with 12 digits. Transit movements
under the ASEAN Customs Transit System carry a Movement Reference Number laid out as in the EU's
NCTS: 2 digits of year, 2-letter country, 12 characters, a procedure letter and a check character
computed with the ISO 6346 algorithm (EU Customs Data Model, MRN rule R0070 / C0240).
"""

from __future__ import annotations

import re

from edge.domain.iso6346 import weighted_check_digit

_DECLARATION = re.compile(r"^[0-9]{12}$")
_MRN = re.compile(r"^[0-9]{2}[A-Z]{2}[A-Z0-9]{12}[A-Z][0-9]$")


def normalize_reference(text: str) -> str:
    """Uppercase and drop spaces/dashes: scanned barcodes and typed numbers differ in these."""
    return re.sub(r"[\s\-/.]", "", text).upper()


def is_declaration_no(text: str) -> bool:
    """A VN customs declaration number: exactly 12 digits."""
    return bool(_DECLARATION.match(normalize_reference(text)))


def mrn_check_character(body17: str) -> str:
    """Check character of the first 17 characters of an MRN."""
    return str(weighted_check_digit(body17))


def is_transit_mrn(text: str) -> bool:
    """An 18-character MRN whose last character matches its check character."""
    mrn = normalize_reference(text)
    return bool(_MRN.match(mrn)) and mrn_check_character(mrn[:17]) == mrn[17]
