from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.domain import iso6346
from edge.domain.declarations import is_declaration_no, is_transit_mrn, mrn_check_character


@pytest.mark.parametrize(
    "code",
    # Published examples: CSQU3054383 (ISO 6346 standard's example), and carriers' real numbers.
    ["CSQU3054383", "MSKU1234565", "TGHU7654320", "HLXU1122330", "TCNU9988772"],
)
def test_valid_codes(code: str) -> None:
    assert iso6346.is_valid(code)
    assert iso6346.check_digit(code[:10]) == int(code[10])


def test_check_digit_of_published_example() -> None:
    assert iso6346.check_digit("CSQU305438") == 3


@pytest.mark.parametrize(
    ("code", "why"),
    [("CSQU3054384", "wrong check digit"), ("CSQX3054383", "category must be U/J/Z"),
     ("CS1U3054383", "owner code letters"), ("CSQU305438", "too short")],
)
def test_invalid_codes(code: str, why: str) -> None:
    assert not iso6346.is_valid(code), why


def test_repair_of_a_letter_among_digits() -> None:
    assert iso6346.repair("CSQU3O54383") == "CSQU3054383"
    assert iso6346.repair("C5QU3054383") == "CSQU3054383"
    assert iso6346.repair("MSKU1Z34565") == "MSKU1234565"


def test_repair_refuses_digit_for_digit_errors() -> None:
    # A check digit detects one wrong digit but cannot locate it: never "repaired".
    assert iso6346.repair("CSQU3054388") is None
    assert iso6346.repair("MSKU1134565") is None
    assert iso6346.repair("XXXX") is None


def test_one_lookalike_apart() -> None:
    assert iso6346.one_lookalike_apart("MSKU1284565", "MSKU1234565")  # 8 for 3
    assert iso6346.one_lookalike_apart("MSKU1Z34565", "MSKU1234565")
    assert not iso6346.one_lookalike_apart("MSKU1134565", "MSKU1234565")  # 1 for 2
    assert not iso6346.one_lookalike_apart("MSKU1284566", "MSKU1234565")  # two changes


codes = st.builds(
    lambda owner, cat, serial: owner + cat + serial + str(iso6346.check_digit(owner + cat + serial)),
    st.from_regex(r"\A[A-Z]{3}\Z"), st.sampled_from("UJZ"), st.from_regex(r"\A[0-9]{6}\Z"),
)


@given(codes)
def test_generated_codes_validate_and_any_single_digit_change_is_caught(code: str) -> None:
    assert iso6346.is_valid(code)
    wrong = code[:10] + str((int(code[10]) + 1) % 10)
    assert not iso6346.is_valid(wrong)


@given(codes, st.integers(min_value=4, max_value=9))
def test_letter_for_digit_misreads_are_always_repaired_to_the_true_code(code: str, pos: int) -> None:
    swap = {"0": "O", "1": "I", "2": "Z", "5": "S", "6": "G", "8": "B"}
    misread = code[:pos] + swap.get(code[pos], code[pos]) + code[pos + 1:]
    assert iso6346.repair(misread) == code


@given(codes, st.integers(min_value=4, max_value=10), st.sampled_from("0123456789"))
def test_repair_never_invents_a_different_container(code: str, pos: int, digit: str) -> None:
    misread = code[:pos] + digit + code[pos + 1:]
    if misread != code and iso6346.is_valid(misread):
        return  # a check digit cannot catch this misread (mod 11 mod 10 maps 10 to 0)
    assert iso6346.repair(misread) in (None, code)


def test_declaration_numbers() -> None:
    assert is_declaration_no("105123456780")
    assert is_declaration_no("1051-2345-6780")
    assert not is_declaration_no("10512345678")
    assert not is_declaration_no("10512345678A")


def test_transit_mrn_check_character() -> None:
    body = "26VN000012345678T"
    assert is_transit_mrn(body + mrn_check_character(body))
    wrong = str((int(mrn_check_character(body)) + 1) % 10)
    assert not is_transit_mrn(body + wrong)
    assert not is_transit_mrn("26VN00001234")
