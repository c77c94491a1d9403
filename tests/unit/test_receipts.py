"""Receipt references: unique by construction, not sequential-looking, and self-checking.

The check character is Luhn mod N with N = 32 over the Crockford alphabet.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import DomainError
from app.domain.ledger import (
    CROCKFORD,
    _encode,
    _luhn_mod_n_check,
    is_valid_receipt_reference,
    make_receipt_reference,
    normalise_receipt_reference,
    receipt_number_of,
    scramble_receipt_number,
    unscramble_receipt_number,
)

LIMIT = 32**8 - 1
numbers = st.integers(min_value=0, max_value=LIMIT)
ALLOWED = set(CROCKFORD) | {"-"}
# Luhn mod N misses a swap of neighbours whose values are 0 and N - 1 (for Luhn mod 10,
# 0 <-> 9); in the Crockford alphabet that is "0" <-> "Z". Nothing else is missed.
LUHN_MOD_32_BLIND_SPOT = {("0", "Z"), ("Z", "0")}


def compact(reference: str) -> str:
    return reference.replace("-", "")


def valid_compact_with(position: int, a: str, b: str, base: str = "777777777") -> str:
    """A valid 9-character reference: `base` with `a` at `position` and `b` just after it.

    The pair may include the check character. One other character (the first, or the
    third when the pair is at the start) is changed until the check comes out right; one
    of its 32 values always works, since Luhn mod N catches every single substitution.
    """
    free = 2 if position == 0 else 0
    for filler in CROCKFORD:
        chars = list(base)
        chars[free] = filler
        chars[position], chars[position + 1] = a, b
        candidate = "".join(chars)
        if is_valid_receipt_reference(candidate):
            return candidate
    raise AssertionError(f"no valid reference with {a}{b} at {position}")


def transposition_is_detected(reference: str, position: int) -> bool:
    a, b = reference[position], reference[position + 1]
    swapped = reference[:position] + b + a + reference[position + 2 :]
    return not is_valid_receipt_reference(swapped)


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
def test_pairwise_tables_give_the_plain_encoding_and_luhn_check(n):
    # make_receipt_reference works two digits at a time from tables; this is the long way round.
    digits = _encode(scramble_receipt_number(n))
    assert make_receipt_reference(n) == f"{digits[:4]}-{digits[4:]}-{_luhn_mod_n_check(digits)}"


@given(numbers)
def test_reference_shape_and_round_trip(n):
    reference = make_receipt_reference(n)
    assert len(reference) == 11
    assert reference[4] == "-" and reference[9] == "-"
    assert all(c in CROCKFORD for c in compact(reference))
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
def test_references_use_only_crockford_characters_and_hyphens(n):
    assert set(make_receipt_reference(n)) <= ALLOWED


def test_check_characters_are_all_32_crockford_characters_and_nothing_else():
    checks = {make_receipt_reference(n)[-1] for n in range(1, 5001)}
    assert checks == set(CROCKFORD)
    assert not checks & set("*~$=UILO")


@pytest.mark.parametrize(
    ("digits", "check"),
    [
        # Worked by hand, from the right, doubling M, Q, 9 and K and folding doubles of 32
        # or more into their two base-32 digits: M 20*2=40 -> 1+8=9, 2, Q 23*2=46 -> 1+14=15,
        # T 26, 9 18, X 29, K 19*2=38 -> 1+6=7, 4. Total 110 = 3*32 + 14; 32 - 14 = 18 = J.
        ("4KX9TQ2M", "J"),
        ("00000000", "0"),
        ("00000001", "Y"),  # 1 doubled is 2; 32 - 2 = 30
        ("0000000Z", "1"),  # Z (31) doubled is 62 = 1*32 + 30 -> 1 + 30 = 31
        ("000000Z0", "1"),  # the blind spot: swapping 0 and Z keeps the same check
    ],
)
def test_check_character_is_luhn_mod_32(digits, check):
    reference = f"{digits[:4]}-{digits[4:]}-{check}"
    assert normalise_receipt_reference(reference) == reference
    assert make_receipt_reference(receipt_number_of(reference)) == reference


@given(numbers)
def test_check_catches_every_single_substitution(n):
    reference = compact(make_receipt_reference(n))
    assert len(reference) == 9
    for position, original in enumerate(reference):
        for replacement in CROCKFORD:
            if replacement == original:
                continue
            typo = reference[:position] + replacement + reference[position + 1 :]
            assert not is_valid_receipt_reference(typo), (reference, typo)


@given(numbers)
def test_check_catches_every_adjacent_transposition_but_the_blind_spot(n):
    reference = compact(make_receipt_reference(n))
    for position in range(len(reference) - 1):
        a, b = reference[position], reference[position + 1]
        if a == b:
            continue
        detected = transposition_is_detected(reference, position)
        assert detected == ((a, b) not in LUHN_MOD_32_BLIND_SPOT), (reference, position)


@given(numbers, st.integers(min_value=0, max_value=7), st.sampled_from(sorted(LUHN_MOD_32_BLIND_SPOT)))
def test_the_blind_spot_is_missed_wherever_it_falls(n, position, pair):
    # Put "0Z" or "Z0" into a real reference; swapping them gives another valid reference.
    reference = valid_compact_with(position, *pair, base=compact(make_receipt_reference(n)))
    assert not transposition_is_detected(reference, position)


@pytest.mark.parametrize("position", range(8))
def test_undetected_transpositions_are_exactly_the_documented_blind_spot(position):
    # Exhaustive: every ordered pair of different characters at every neighbouring pair of
    # the 9 significant characters (the last pair is the final digit and the check).
    undetected = {
        (a, b)
        for a in CROCKFORD
        for b in CROCKFORD
        if a != b and not transposition_is_detected(valid_compact_with(position, a, b), position)
    }
    assert undetected == LUHN_MOD_32_BLIND_SPOT


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
        # Crockford's mod-37 extra check symbols are no longer check characters.
        "0000-0000-*",
        "0000-0000-~",
        "0000-0000-$",
        "0000-0000-=",
        "0000-0000-U",
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
