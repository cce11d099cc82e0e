"""Licence-plate text: normalization, confusable folding and plate grammars.

Plates are compared in a normalized form (uppercase, no separators) and indexed in a
*confusable-folded* form so that an OCR read ``51F1Z345`` still finds ``51F12345``. Folding alone
would also let ``51F12345`` match a plate ``5IF12345`` that does not exist, so a folded match is
accepted only where the grammar says the read character is impossible at that position — only
then is it certainly a confusion (DESIGN-NOTES §4).

Grammars are templates, one character per position, rows separated by ``/``:
``9`` a digit, ``@`` a series letter of that grammar, ``*`` a series letter or a digit,
``^`` a province character; any other letter or digit stands for itself; ``-``, ``.`` and
spaces are separators and ignored. Vietnam follows Circular 58/2020/TT-BCA and
24/2023/TT-BCA (series letters never I, J, O, Q, W; series R reserved for trailers and
semi-trailers); China follows GA 36-2018 (province character, letter, 5 characters; 6 for
new-energy vehicles; no I or O). Laos, Cambodia and others are data, configured per site.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

# Each group folds to its first member. Only pairs that OCR really confuses on plates.
CONFUSABLE_GROUPS: tuple[str, ...] = ("0ODQ", "1IL", "2Z", "5S", "6G", "8B")
_FOLD = {ch: group[0] for group in CONFUSABLE_GROUPS for ch in group[1:]}
_FOLD_TABLE = str.maketrans(_FOLD)
_PARTNERS: dict[str, str] = {}
for _group in CONFUSABLE_GROUPS:
    for _ch in _group:
        _PARTNERS[_ch] = _group.replace(_ch, "")

DIGITS = "0123456789"
VN_SERIES_LETTERS = "ABCDEFGHKLMNPSTUVXYZ"  # no I J O Q W (Circular 58/2020); R is trailers only
CN_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
CN_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # GA 36-2018: no I, O
_SEPARATORS = "-. "
PLATE_SEPARATORS = " -.·/"
"""Characters that may separate groups on a written plate; everything else must be a letter or digit."""
_CLEAN = re.compile(r"^[A-Z0-9\u4e00-\u9fff]+\Z")  # NFKC leaves these unchanged
# The written form ("51C-123.45", "29C 888.88"): the same characters plus separators, none of
# which NFKC or upper() changes, so normalizing is just dropping the separators.
_WRITTEN = re.compile(r"^[A-Z0-9\u4e00-\u9fff][A-Z0-9\u4e00-\u9fff \-.·/]*\Z")
_DROP_SEPARATORS = str.maketrans("", "", PLATE_SEPARATORS)


def normalize_plate(text: str) -> str:
    """Uppercase, map Đ to D, drop separators and anything that is not a letter or digit.

    Non-Latin letters (a Chinese province character) are kept: they are part of the plate.
    """
    if _CLEAN.match(text):
        return text  # already normalized: the common case on the hot path
    if _WRITTEN.match(text):
        return text.translate(_DROP_SEPARATORS)  # as the centre writes it: "51C-123.45"
    text = unicodedata.normalize("NFKC", text).replace("Đ", "D").replace("đ", "D").upper()
    return "".join(ch for ch in text if ch.isalnum())


def is_normalized_plate(text: str) -> bool:
    """Already in normalized form (uppercase ASCII letters, digits, CJK), nothing to strip."""
    return _CLEAN.match(text) is not None


def is_plain_plate(text: str) -> bool:
    """Normalized, or written with separators only: nothing to check character by character.

    Such text starts with a letter or digit, so its normalized form is never empty.
    """
    return _CLEAN.match(text) is not None or _WRITTEN.match(text) is not None


def fold_confusables(text: str) -> str:
    """The folded form used as a secondary index key (``51F1Z345`` → ``51F12345``)."""
    return normalize_plate(text).translate(_FOLD_TABLE)


def dropped_one(short: str, full: str) -> bool:
    """Is ``short`` the plate ``full`` with one character missing (an edge cut off, a blur)?

    One camera watching one vehicle does read a plate's last digit away now and then, and the
    shorter text may still fit an older layout (51C1234 for 51C12345), so the grammar alone
    cannot reject it. Two such reads are one plate, not the two plates of PLATE_MISMATCH.
    """
    a, b = fold_confusables(short), fold_confusables(full)
    return len(b) == len(a) + 1 and any(b[:i] + b[i + 1:] == a for i in range(len(b)))


def confusable_partners(char: str) -> str:
    """Characters OCR mistakes ``char`` for (``"8"`` → ``"B"``)."""
    return _PARTNERS.get(char, "")


@dataclass(frozen=True)
class PlateGrammar:
    """A family of plate layouts that share a name, a country and character sets."""

    name: str
    country: str
    templates: tuple[str, ...]
    letters: str = VN_SERIES_LETTERS
    provinces: str = ""
    colours: tuple[str, ...] = ()
    description: str = ""
    _compiled: tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...] = field(
        init=False, repr=False, compare=False, default=()
    )
    _any: re.Pattern[str] = field(init=False, repr=False, compare=False,
                                  default=re.compile(r"(?!)"))

    def __post_init__(self) -> None:
        compiled, bodies = [], []
        for template in self.templates:
            classes = self._classes(template)
            regex = "".join(f"[{re.escape(c)}]" for c in classes)
            compiled.append((template, re.compile(f"^{regex}$"), classes))
            bodies.append(regex)
        object.__setattr__(self, "_compiled", tuple(compiled))
        # One alternation for "does it fit at all": a single match per grammar on the hot path
        # (import validation, the matcher) instead of one per layout.
        object.__setattr__(self, "_any", re.compile("^(?:" + "|".join(bodies) + ")$"))

    def _classes(self, template: str) -> tuple[str, ...]:
        out: list[str] = []
        for ch in template.replace("/", ""):
            if ch in _SEPARATORS:
                continue
            if ch == "9":
                out.append(DIGITS)
            elif ch == "@":
                out.append(self.letters)
            elif ch == "*":
                out.append(self.letters + DIGITS)
            elif ch == "^":
                if not self.provinces:
                    raise ValueError(f"grammar {self.name}: '^' used but no provinces given")
                out.append(self.provinces)
            elif ch.isalnum():
                out.append(ch)
            else:
                raise ValueError(f"grammar {self.name}: unknown template character {ch!r}")
        return tuple(out)

    @property
    def layouts(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """``(template, allowed characters per position)`` pairs, for grammar-constrained OCR."""
        return tuple((template, classes) for template, _, classes in self._compiled)

    @cached_property
    def rows(self) -> frozenset[int]:
        """Row counts this grammar's layouts have (1, 2 or both)."""
        return frozenset(t.count("/") + 1 for t in self.templates)

    def template_for(self, text: str) -> str | None:
        """The first template that ``text`` (normalized) fits, or None."""
        plate = normalize_plate(text)
        for template, regex, _ in self._compiled:
            if regex.match(plate):
                return template
        return None

    def matches(self, text: str) -> bool:
        """True when the normalized text fits one of the layouts."""
        return self._any.match(normalize_plate(text)) is not None

    def matches_normalized(self, plate: str) -> bool:
        """:meth:`matches` for text already normalized (skips the normalization)."""
        return self._any.match(plate) is not None

    def position_classes(self, text: str) -> tuple[str, ...] | None:
        """Allowed characters at each position, for the layout the text fits."""
        plate = normalize_plate(text)
        for _, regex, classes in self._compiled:
            if regex.match(plate):
                return classes
        return None

    def split_rows(self, text: str) -> list[str]:
        """Split a plate into its printed rows (``59X112345`` → ``['59X1', '12345']``)."""
        plate = normalize_plate(text)
        template = self.template_for(plate)
        if template is None:
            return [plate]
        rows, start = [], 0
        for row in template.split("/"):
            width = sum(1 for ch in row if ch not in _SEPARATORS)
            rows.append(plate[start:start + width])
            start += width
        return rows

    def format(self, text: str) -> str:
        """Printed form with separators (``51F12345`` → ``51F-123.45``)."""
        plate = normalize_plate(text)
        template = self.template_for(plate)
        if template is None:
            return plate
        out, i = [], 0
        for ch in template:
            if ch == "/":
                out.append(" ")
            elif ch in _SEPARATORS:
                out.append(ch)
            else:
                out.append(plate[i])
                i += 1
        return "".join(out)

    def repairs(self, text: str, max_fixes: int = 3) -> list[tuple[str, int]]:
        """Readings of ``text`` that fit this grammar after fixing impossible characters.

        Only characters that cannot stand at their position are replaced, and only by a
        confusable partner that can: ``51F1Z345`` → ``51F12345`` (Z cannot be a serial digit).
        Returns ``(text, number_of_fixes)`` pairs, best first.
        """
        plate = normalize_plate(text)
        found: dict[str, int] = {}
        for _, _, classes in self._compiled:
            if len(classes) != len(plate):
                continue
            fixed, fixes = [], 0
            for ch, allowed in zip(plate, classes, strict=True):
                if ch in allowed:
                    fixed.append(ch)
                    continue
                options = [p for p in confusable_partners(ch) if p in allowed]
                if len(options) != 1:
                    fixes = max_fixes + 1
                    break
                fixed.append(options[0])
                fixes += 1
            if fixes <= max_fixes:
                candidate = "".join(fixed)
                found[candidate] = min(fixes, found.get(candidate, fixes))
        return sorted(found.items(), key=lambda item: item[1])


VN_ONE_ROW = PlateGrammar(
    "VN-1row", "VN", ("99@-9999", "99@-999.99", "99@@-999.99"),
    colours=("white", "blue"),
    description="Vietnamese long plate of cars and trucks (51F-123.45)",
)
VN_TWO_ROW = PlateGrammar(
    "VN-2row", "VN",
    ("99@/9999", "99@/999.99", "99@@/999.99", "99@9/999.99", "99@9/9999",
     # motorbike series R + digit (53-R8 / 8556): R is reserved for trailers on cars only
     "99R9/999.99", "99R9/9999",
     # electric motorbikes, series MĐ + digit (29-MD1 / 123.45)
     "99@@9/999.99"),
    colours=("white", "blue"),
    description="Vietnamese two-row plate: car/truck rear (29C / 738.04), motorbike (59X1 / 123.45)",
)
VN_TRAILER = PlateGrammar(
    "VN-trailer", "VN", ("99R-999.99", "99R/999.99", "99R-9999", "99R/9999"),
    colours=("white", "yellow"),
    description="Vietnamese trailer and semi-trailer plate, series R (51R-012.34)",
)
VN_FOREIGN = PlateGrammar(
    "VN-foreign", "VN",
    ("99NG-999.99", "99NN-999.99", "99QT-999.99", "99NG/999.99", "99NN/999.99", "99QT/999.99"),
    colours=("white",),
    description="Vietnamese plates of diplomatic missions (NG), foreign organisations and staff "
                "(NN) and international organisations (QT)",
)
VN_COMMERCIAL = PlateGrammar(
    "VN-commercial", "VN", VN_ONE_ROW.templates + VN_TWO_ROW.templates,
    colours=("yellow",),
    description="Vietnamese commercial transport plate: yellow background since 2020",
)
CN_PLATE = PlateGrammar(
    "CN", "CN", ("^@*****", "^@******", "^@****挂"),
    letters=CN_LETTERS, provinces=CN_PROVINCES,
    description="Chinese plate: province character, letter, 5 characters (6: new energy; "
                "trailers end in 挂)",
)


_SPECIFIC = ("VN-trailer", "VN-foreign")


def default_grammars() -> list[PlateGrammar]:
    """Grammars built into gate-edge; sites add Laos, Cambodia and others from config."""
    return [VN_ONE_ROW, VN_TWO_ROW, VN_TRAILER, VN_FOREIGN, CN_PLATE]


def classify(text: str, grammars: Sequence[PlateGrammar], colour: str | None = None,
             rows: int | None = None) -> PlateGrammar | None:
    """The grammar a plate belongs to, preferring one whose colour and row count agree."""
    plate = normalize_plate(text)
    if colour == "yellow" and VN_COMMERCIAL.matches(plate) and not VN_TRAILER.matches(plate):
        return VN_COMMERCIAL
    fitting = [g for g in grammars if g.matches_normalized(plate)]
    if rows is not None:
        by_rows = [g for g in fitting if rows in g.rows]
        fitting = by_rows or fitting
    if not fitting:
        return None
    # The trailer and foreign grammars are more specific than the general VN layouts.
    fitting.sort(key=lambda g: g.name not in _SPECIFIC)
    return fitting[0]


def folded_match_allowed(read: str, plate: str, grammars: Sequence[PlateGrammar]) -> bool:
    """May a read that folds to the same key as ``plate`` be taken as ``plate``?

    Yes when every differing character of the read is a confusable partner of the plate's
    character *and* cannot stand at that position under the plate's grammar: then the read
    character must be an OCR confusion, not a different plate.
    """
    read_n, plate_n = normalize_plate(read), normalize_plate(plate)
    if read_n == plate_n:
        return True
    if len(read_n) != len(plate_n) or fold_confusables(read_n) != fold_confusables(plate_n):
        return False
    if any(g.matches(read_n) for g in grammars):
        # The read is a well-formed plate of its own (51L0-123.45 vs 51LD-123.45): it may be
        # a different vehicle, so it is never folded into the declared one.
        return False
    grammar = classify(plate_n, grammars)
    if grammar is None:
        return False
    # A character is a confusion only if no layout of the plate's length allows it there.
    allowed_at: list[set[str]] = [set() for _ in plate_n]
    for _, _, classes in grammar._compiled:
        if len(classes) == len(plate_n):
            for i, chars in enumerate(classes):
                allowed_at[i].update(chars)
    for got, want, possible in zip(read_n, plate_n, allowed_at, strict=True):
        if got != want and (got in possible or got not in confusable_partners(want)):
            return False
    return True


@dataclass(frozen=True)
class RankedPlate:
    """One reading of a plate after grammar ranking."""

    text: str
    score: float
    grammar: str | None
    fixes: int


def rank_candidates(
    candidates: Iterable[tuple[str, float]],
    grammars: Sequence[PlateGrammar],
    rows: int | None = None,
    fix_penalty: float = 0.15,
) -> list[RankedPlate]:
    """Rank OCR candidates ``(text, confidence)``: fitting a grammar first, fewer fixes first.

    A candidate that fits no grammar as read is repaired position by position; each fix costs
    ``fix_penalty`` of confidence. Candidates that fit nothing even after repair are kept last
    with their grammar ``None`` so an officer still sees what was read.
    """
    best: dict[str, RankedPlate] = {}
    for raw, confidence in candidates:
        text = normalize_plate(raw)
        if not text:
            continue
        options: list[RankedPlate] = []
        grammar = classify(text, grammars, rows=rows)
        if grammar is not None:
            options.append(RankedPlate(text, confidence, grammar.name, 0))
        else:
            for g in grammars:
                if rows is not None and rows not in g.rows:
                    continue
                for fixed, fixes in g.repairs(text):
                    score = max(0.0, confidence - fix_penalty * fixes)
                    options.append(RankedPlate(fixed, score, g.name, fixes))
            if not options:
                options.append(RankedPlate(text, confidence * 0.5, None, 0))
        for option in options:
            current = best.get(option.text)
            if current is None or option.score > current.score:
                best[option.text] = option
    return sorted(best.values(), key=lambda r: (r.grammar is None, -r.score, r.fixes))


def grammar_from_spec(name: str, country: str, templates: Sequence[str], letters: str,
                      provinces: str = "", colours: Sequence[str] = (),
                      description: str = "") -> PlateGrammar:
    """Build a data-driven grammar (Laos, Cambodia, ...) from config values."""
    return PlateGrammar(name, country, tuple(templates), letters=letters, provinces=provinces,
                        colours=tuple(colours), description=description)


def plate_problems(tractor: str, trailer: str | None, grammars: Sequence[PlateGrammar]) -> list[str]:
    """Why a declaration's plates cannot be right, per the grammars (empty when they can).

    Grammars are compared by value, not identity: import workers receive pickled copies.
    """
    problems = []
    names = ", ".join(g.name for g in grammars)
    tractor_grammar = classify(tractor, grammars)
    if tractor_grammar is None:
        problems.append(f"tractor_plate {tractor!r} fits no plate grammar ({names}); foreign "
                        "layouts are added under plate_grammars in the config")
    elif tractor_grammar == VN_TRAILER:
        problems.append(f"tractor_plate {tractor!r} is a trailer plate (VN series R); "
                        "did the tractor and trailer plates swap?")
    if trailer:
        trailer_grammar = classify(trailer, grammars)
        if trailer_grammar is None:
            problems.append(f"trailer_plate {trailer!r} fits no plate grammar ({names})")
        elif trailer_grammar.country == "VN" and trailer_grammar != VN_TRAILER:
            problems.append(f"trailer_plate {trailer!r} is not a VN trailer plate "
                            "(trailers and semi-trailers carry series R, e.g. 51R-012.34)")
    return problems
