from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edge.domain.model import Manifest
from edge.domain.plates import (
    CN_PLATE,
    VN_COMMERCIAL,
    VN_ONE_ROW,
    VN_SERIES_LETTERS,
    VN_TRAILER,
    VN_TWO_ROW,
    classify,
    default_grammars,
    fold_confusables,
    folded_match_allowed,
    grammar_from_spec,
    is_plain_plate,
    normalize_plate,
    rank_candidates,
)

GRAMMARS = default_grammars()


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("51F-123.45", "51F12345"), ("59-X1 123.45", "59X112345"), (" 29c 738.04 ", "29C73804"),
     ("30Đ-012.34", "30D01234"), ("皖A·00E66", "皖A00E66")],
)
def test_normalize(raw: str, normalized: str) -> None:
    assert normalize_plate(raw) == normalized


def test_fold_maps_confusables_to_one_key() -> None:
    assert fold_confusables("51F1Z345") == fold_confusables("51F12345") == "51F12345"
    assert fold_confusables("O8S") == fold_confusables("0B5") == "085"


@pytest.mark.parametrize(
    ("plate", "grammar", "printed"),
    [
        ("51F12345", VN_ONE_ROW, "51F-123.45"),
        ("29C7380", VN_ONE_ROW, "29C-7380"),
        ("51LD12345", VN_ONE_ROW, "51LD-123.45"),
        ("59X112345", VN_TWO_ROW, "59X1 123.45"),
        ("29C73804", VN_TWO_ROW, "29C 738.04"),
        ("51R01234", VN_TRAILER, "51R-012.34"),
        ("皖A00E66", CN_PLATE, "皖A00E66"),
        ("粤BD12345", CN_PLATE, "粤BD12345"),
        ("桂A6789挂", CN_PLATE, "桂A6789挂"),
    ],
)
def test_valid_plates_of_each_grammar(plate: str, grammar, printed: str) -> None:  # type: ignore[no-untyped-def]
    assert grammar.matches(plate)
    assert grammar.format(plate) == printed


@pytest.mark.parametrize(
    ("plate", "why"),
    [
        ("51W12345", "W is never a VN series letter"),
        ("51O12345", "O is never a VN series letter"),
        ("5AF12345", "province code is two digits"),
        ("51F123", "too few digits"),
        ("51F1234567", "too many digits"),
        ("51FZ2345", "letters only in the series"),
    ],
)
def test_invalid_vn_plates(plate: str, why: str) -> None:
    assert not any(g.matches(plate) for g in (VN_ONE_ROW, VN_TWO_ROW, VN_TRAILER)), why


@pytest.mark.parametrize("plate", ["皖I00E66", "皖A0E66", "XA00E66", "皖皖00E66"])
def test_invalid_cn_plates(plate: str) -> None:
    assert not CN_PLATE.matches(plate)


def test_trailer_series_is_classified_as_trailer() -> None:
    assert classify("51R-012.34", GRAMMARS).name == "VN-trailer"  # type: ignore[union-attr]
    assert classify("51F-123.45", GRAMMARS).name == "VN-1row"  # type: ignore[union-attr]
    assert classify("59X1 123.45", GRAMMARS, rows=2).name == "VN-2row"  # type: ignore[union-attr]


def test_yellow_plate_is_commercial() -> None:
    assert classify("51C12345", GRAMMARS, colour="yellow") is VN_COMMERCIAL
    assert classify("51C12345", GRAMMARS, colour="white") is VN_ONE_ROW


def test_split_rows_of_two_row_plates() -> None:
    assert VN_TWO_ROW.split_rows("59X112345") == ["59X1", "12345"]
    assert VN_TWO_ROW.split_rows("29C73804") == ["29C", "73804"]


def test_data_driven_grammar_from_config() -> None:
    laos = grammar_from_spec("LA", "LA", ["@@ 9999", "@@/9999"], "ABCDEFGHKLMNPRSTVXYZ")
    cambodia = grammar_from_spec("KH", "KH", ["9@-9999", "9@@-9999"], "ABCDEFGHKLMNPRSTVXYZ")
    assert laos.matches("KP 1234") and laos.rows == frozenset({1, 2})
    assert cambodia.matches("2A-1234") and cambodia.matches("2AB-1234")
    assert not cambodia.matches("KP1234")
    with pytest.raises(ValueError, match="provinces"):
        grammar_from_spec("X", "XX", ["^9999"], "AB")


def test_folded_match_only_where_grammar_rules_out_the_read() -> None:
    # Z cannot be a serial digit: the read must be 2.
    assert folded_match_allowed("51F1Z345", "51F12345", GRAMMARS)
    # I cannot be a province digit.
    assert folded_match_allowed("5IF12345", "51F12345", GRAMMARS)
    # 8 is a valid digit, so a read 8 where the plate has B... B is not allowed there anyway,
    # but a read B where a digit 8 stands is a confusion.
    assert folded_match_allowed("59X1123B5", "59X112385", GRAMMARS)
    # A real different plate: 5 vs S at a series position where S is a valid letter.
    assert not folded_match_allowed("51S12345", "51512345", GRAMMARS)
    # Not even the same folded key.
    assert not folded_match_allowed("51F12346", "51F12345", GRAMMARS)


def test_rank_prefers_grammar_fits_and_repairs_impossible_characters() -> None:
    ranked = rank_candidates([("51F1Z345", 0.9), ("51W12345", 0.95)], GRAMMARS)
    assert ranked[0].text == "51F12345"
    assert ranked[0].grammar == "VN-1row" and ranked[0].fixes == 1
    assert ranked[-1].grammar is None  # W cannot be repaired into a VN series


def test_rank_repairs_two_row_with_row_hint() -> None:
    ranked = rank_candidates([("S9X112345", 0.9)], GRAMMARS, rows=2)
    assert ranked[0].text == "59X112345" and ranked[0].grammar == "VN-2row"


vn_plates = st.builds(
    lambda prov, series, digits: f"{prov:02d}{series}{digits}",
    st.integers(min_value=11, max_value=99),
    st.sampled_from(list(VN_SERIES_LETTERS)),
    st.from_regex(r"\A[0-9]{5}\Z"),
)


@given(vn_plates)
def test_vn_round_trip_format_normalize(plate: str) -> None:
    grammar = classify(plate, GRAMMARS)
    assert grammar is not None
    assert normalize_plate(grammar.format(plate)) == plate
    assert fold_confusables(plate) == fold_confusables(grammar.format(plate))


@given(vn_plates, st.integers(min_value=3, max_value=7))
def test_confusing_a_serial_digit_is_always_repaired(plate: str, pos: int) -> None:
    swap = {"0": "O", "1": "I", "2": "Z", "5": "S", "6": "G", "8": "B"}
    if plate[pos] not in swap:
        return
    misread = plate[:pos] + swap[plate[pos]] + plate[pos + 1:]
    assert folded_match_allowed(misread, plate, GRAMMARS)
    assert rank_candidates([(misread, 0.9)], GRAMMARS)[0].text == plate


cn_plates = st.builds(
    lambda prov, letter, tail: prov + letter + tail,
    st.sampled_from(list("京沪粤桂皖云")), st.sampled_from(list("ABCDEFGHJKLMNPQRSTUVWXYZ")),
    st.from_regex(r"\A[A-HJ-NP-Z0-9]{5,6}\Z"),
)


@given(cn_plates)
def test_cn_round_trip(plate: str) -> None:
    assert classify(plate, GRAMMARS) is CN_PLATE
    assert normalize_plate(f" {plate[0]}{plate[1]}·{plate[2:]} ") == plate


def _normalize_the_long_way(text: str) -> str:
    """normalize_plate without its fast paths (the definition they must agree with)."""
    text = unicodedata.normalize("NFKC", text).replace("Đ", "D").replace("đ", "D").upper()
    return "".join(ch for ch in text if ch.isalnum())


@given(st.text(alphabet="0123456789ABCDEFGHKLMNPRSTUVXYZabcđĐ皖京 -.·/_", max_size=14))
def test_normalize_fast_paths_agree_with_the_definition(text: str) -> None:
    assert normalize_plate(text) == _normalize_the_long_way(text)


@given(st.text(alphabet="0123456789ABCDEFGHKLMNPRSTUVXYZa皖 -.·/_", max_size=14))
def test_manifest_plate_validator_fast_path_changes_nothing(text: str) -> None:
    """A plate the fast path lets through is stored exactly as the full check would store it."""
    if is_plain_plate(text):
        base = {"declaration_no": "300000000001", "channel": "green", "status": "released",
                "trader": {"tax_code": "0101234567", "name": "T"},
                "valid_from": "2026-01-01T00:00:00+07:00", "valid_until": "2027-01-01T00:00:00+07:00"}
        expected = _normalize_the_long_way(text)
        try:
            stored = Manifest.model_validate({**base, "tractor_plate": text}).tractor_plate
        except ValidationError:
            stored = None
        assert stored == (expected if 4 <= len(expected) <= 16 else None)
