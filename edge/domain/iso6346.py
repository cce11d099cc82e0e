"""ISO 6346 container numbers: validation, check digit and OCR repair.

A container number is an owner code (3 letters), an equipment category (U freight container,
J detachable equipment, Z trailer/chassis), a 6-digit serial and a check digit
(ISO 6346:1995 Annex A). OCR confuses letters and digits that look alike, so a read that fails
its check digit is repaired by trying confusable substitutions; a repair is kept only if exactly
one candidate passes, because two passing candidates mean we cannot know which is right.
"""

from __future__ import annotations

import re

_FORMAT = re.compile(r"^[A-Z]{3}[UJZ][0-9]{6}[0-9]$")

# Letter values skip multiples of 11 (11, 22, 33), ISO 6346 Annex A.
_LETTER_VALUES: dict[str, int] = {}
_value = 10
for _letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    if _value % 11 == 0:
        _value += 1
    _LETTER_VALUES[_letter] = _value
    _value += 1

# What OCR mistakes for what, in both directions, split by the class each side belongs to.
_AS_DIGIT = {"O": "0", "D": "0", "Q": "0", "I": "1", "L": "1", "Z": "2", "S": "5",
             "G": "6", "B": "8", "T": "7", "A": "4"}
_AS_LETTER = {"0": "OD", "1": "IL", "2": "Z", "5": "S", "6": "G", "8": "B", "7": "T", "4": "A"}
_LOOKALIKE_DIGITS = {"0": "8", "8": "06", "6": "8", "5": "6", "1": "7", "7": "1", "3": "8"}
_LOOKALIKE_LETTERS = {"O": "DQ", "D": "O", "Q": "O", "U": "V", "V": "U", "M": "N", "N": "M",
                      "I": "L", "L": "I", "E": "F", "F": "E", "C": "G", "G": "C"}


_VALUES = {**{d: int(d) for d in "0123456789"}, **_LETTER_VALUES}
_NOT_CODE = re.compile(r"[^A-Z0-9]")


def char_value(char: str) -> int:
    """Numeric value of one character for the check-digit sum."""
    try:
        return _VALUES[char]
    except KeyError:
        raise ValueError(f"{char!r} cannot appear in an ISO 6346 code") from None


def weighted_check_digit(body: str) -> int:
    """Σ value·2^position mod 11 mod 10: ISO 6346's algorithm, also used by EU/ASEAN MRNs."""
    try:
        total = sum(_VALUES[c] << i for i, c in enumerate(body))
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]!r} cannot appear in an ISO 6346 code") from None
    return total % 11 % 10


def normalize_container(text: str) -> str:
    """Uppercase and drop spaces, dashes and dots as painted on container doors."""
    return _NOT_CODE.sub("", text.upper())


def check_digit(code10: str) -> int:
    """Check digit of the first ten characters (owner, category, serial)."""
    code10 = normalize_container(code10)[:10]
    if len(code10) != 10:
        raise ValueError("an ISO 6346 code has 10 characters before the check digit")
    return weighted_check_digit(code10)


def is_well_formed(code: str) -> bool:
    """Shape only: 3 letters, U/J/Z, 7 digits; the check digit is not verified."""
    return bool(_FORMAT.match(normalize_container(code)))


def is_normalized(code: str) -> bool:
    """Well-formed and already normalized (no spaces, dashes or lower case)."""
    return _FORMAT.match(code) is not None


def is_valid(code: str) -> bool:
    """Shape and check digit both right."""
    if not _FORMAT.match(code):
        code = normalize_container(code)
        if not _FORMAT.match(code):
            return False
    return weighted_check_digit(code[:10]) == ord(code[10]) - 48


_CATEGORY = {"U": "U", "J": "J", "Z": "Z", "V": "U", "2": "Z", "I": "J", "1": "J"}


def _class_fix(pos: int, char: str) -> str | None:
    """The character of the right class a read at ``pos`` certainly was, or None if unknown."""
    if pos < 3:
        return char if char.isalpha() else (_AS_LETTER.get(char, "")[:1] or None)
    if pos == 3:
        return _CATEGORY.get(char)
    return char if char.isdigit() else _AS_DIGIT.get(char)


def repair(read: str) -> str | None:
    """Return the valid code a read certainly stands for, or None.

    Only characters of the wrong class for their position are replaced (a letter among the
    serial digits, a digit in the owner code): those are certainly OCR confusions. A wrong
    digit for another digit cannot be located by a check digit — it detects one error but
    cannot say which character it was, and among the look-alike substitutions one passes by
    chance about one time in ten — so such reads are left for the matcher, which may take a
    read one look-alike away from a *declared* container (:func:`one_lookalike_apart`).
    """
    text = normalize_container(read)
    if len(text) != 11:
        return None
    if is_valid(text):
        return text
    fixed = [_class_fix(i, c) for i, c in enumerate(text)]
    if any(c is None for c in fixed):
        return None
    forced = "".join(c for c in fixed if c is not None)
    if forced != text and is_valid(forced):
        return forced
    return None


def one_lookalike_apart(read: str, code: str) -> bool:
    """True when ``read`` differs from ``code`` in one position, by a look-alike character."""
    read, code = normalize_container(read), normalize_container(code)
    if len(read) != len(code):
        return False
    diffs = [(r, c) for r, c in zip(read, code, strict=True) if r != c]
    if len(diffs) != 1:
        return False
    got, want = diffs[0]
    return _looks_alike(got, want) or _looks_alike(want, got)


def _looks_alike(a: str, b: str) -> bool:
    return (b in _LOOKALIKE_DIGITS.get(a, "") or b in _LOOKALIKE_LETTERS.get(a, "")
            or _AS_DIGIT.get(a) == b or b in _AS_LETTER.get(a, ""))
