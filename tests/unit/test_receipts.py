"""Receipt references: unique by construction, not sequential-looking, and self-checking."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import DomainError
from app.domain.ledger import (
    CHECK_SYMBOLS,
    CROCKFORD,
    is_valid_receipt_reference,
    make_receipt_reference,
    normalise_receipt_reference,
    receipt_number_of,
    scramble_receipt_number,
    unscramble_receipt_number,
)

LIMIT = 32**8 - 1
numbers = st.integers(min_value=0, max_value=LIMIT)


def compact(reference: str) -> str:
    return reference.replace("-", "")


@given(numbers)
def test_scramble_has_an_inverse_so_it_is_a_bijection(n):
    x = scramble_receipt_number(n)
    assert 0 <= x <= LIMIT
    assert unscramble_receipt_number(x) == n
    assert scramble_receipt_number(unscramble_receipt_number(n)) == n


@given(st.sets(numbers, min_size=2, max_size=200))
def test_distinct_numbers_give_distinct_references(sample):
    assert len({make_receipt_reference(n) for n in sample}) == len(sample)


def test_first_hundred_thousand_are_distinct():
    refs = {make_receipt_reference(n) for n in range(1, 100_001)}
    assert len(refs) == 100_000


def test_consecutive_numbers_do_not_look_sequential():
    changed = [
        sum(
            a != b
            for a, b in zip(compact(make_receipt_reference(n)), compact(make_receipt_reference(n + 1)), strict=True)
        )
        for n in range(1, 1001)
    ]
    # Random 9-character strings differ in about 8.7 places; a counter would differ in 1 or 2.
    assert sum(changed) / len(changed) > 7
    assert min(changed) >= 3


@given(numbers)
def test_reference_shape_and_round_trip(n):
    reference = make_receipt_reference(n)
    assert len(reference) == 11
    assert reference[4] == "-" and reference[9] == "-"
    assert all(c in CROCKFORD for c in compact(reference)[:8])
    assert reference[-1] in CHECK_SYMBOLS
    assert is_valid_receipt_reference(reference)
    assert normalise_receipt_reference(reference) == reference
    assert receipt_number_of(reference) == n


@given(numbers)
def test_tolerates_how_people_type_it(n):
    reference = make_receipt_reference(n)
    variants = [
        reference.lower(),
        compact(reference),
        compact(reference).lower(),
        f"  {reference[:4]} {reference[5:9]} {reference[-1]}  ",
        reference.replace("1", "I"),
        reference.replace("1", "l"),
        reference.replace("1", "L"),
        reference.replace("0", "O"),
        reference.replace("0", "o"),
    ]
    for variant in variants:
        assert is_valid_receipt_reference(variant), variant
        assert normalise_receipt_reference(variant) == reference


@given(numbers)
def test_check_catches_every_single_substitution(n):
    reference = compact(make_receipt_reference(n))
    for position, original in enumerate(reference):
        for replacement in CHECK_SYMBOLS:
            if replacement == original:
                continue
            typo = reference[:position] + replacement + reference[position + 1 :]
            assert not is_valid_receipt_reference(typo), (reference, typo)


@given(numbers)
def test_check_catches_every_adjacent_transposition(n):
    reference = compact(make_receipt_reference(n))
    for position in range(len(reference) - 1):
        a, b = reference[position], reference[position + 1]
        if a == b:
            continue
        swapped = reference[:position] + b + a + reference[position + 2 :]
        assert not is_valid_receipt_reference(swapped), (reference, swapped)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "ABC",
        "0000-0000",
        "0000-0000-00",
        "0000-0000-0-0",
        "UUUU-UUUU-U",
        "****-****-*",
        "0000_0000_0",
        None,
        123,
    ],
)
def test_refuses_what_is_not_a_reference(text):
    assert not is_valid_receipt_reference(text)
    with pytest.raises(DomainError):
        normalise_receipt_reference(text)


def test_messages_are_for_people():
    with pytest.raises(DomainError, match="^Enter a receipt reference$"):
        normalise_receipt_reference(" ")
    reference = make_receipt_reference(42)
    wrong_check = next(c for c in CROCKFORD if c != reference[-1])
    with pytest.raises(DomainError, match="one of the characters is wrong"):
        normalise_receipt_reference(reference[:-1] + wrong_check)


@pytest.mark.parametrize("n", [-1, LIMIT + 1, True, 1.0])
def test_receipt_numbers_out_of_range_are_refused(n):
    with pytest.raises(ValueError):
        make_receipt_reference(n)
