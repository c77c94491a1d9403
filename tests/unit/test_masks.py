"""The mask language (spec/reference-validation.md §2): symbols, escapes, exact length, ASCII
only, and plain-words reasons that name the first wrong character."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import DomainError
from app.domain.references.masks import DIGITS, FREE_TEXT, LETTERS, compile_mask


@pytest.mark.parametrize(
    ("mask", "good", "bad"),
    [
        ("BJ#######@", ["BJ12345673"], ["BX12345673", "BJ1234567", "BJ123456733", "BJ1234567B"]),
        ("FP#######@", ["FP1234567A"], ["FP12345678X"]),
        ("########@", ["123456780"], ["12345678", "1234567800", "12345678X"]),
        ("ALS/####/####", ["ALS/2024/0001"], ["ALS-2024-0001", "ALS/2024/001", "ALS/20A4/0001"]),
        ("?##########", ["M1234567890", "71234567890"], ["-1234567890", "M123456789"]),
        ("#*****", ["1AB/-9", "9 /-AZ"], ["A12345", "1AB_-9"]),
        ("$$$#######", ["ABC1234567"], ["AB11234567", "ÀBC1234567"]),
    ],
)
def test_masks_from_the_spec(mask, good, bad):
    compiled = compile_mask(mask, check_characters=DIGITS + "A")
    for reference in good:
        assert compiled.matches(reference), reference
        assert compiled.check(reference) is None
    for reference in bad:
        assert not compiled.matches(reference), reference
        assert compiled.check(reference) is not None


def test_length_must_equal_the_mask_length():
    mask = compile_mask("BJ#######@")
    short = mask.check("BJ123")
    assert short.position is None
    assert short.message == "The reference must be 10 characters long (it has 5)"
    # LocalGov IMS checked only over the reference's length, so a short reference passed.
    assert not mask.matches("BJ1")
    assert mask.check("BJ123456789").message == "The reference must be 10 characters long (it has 11)"


def test_the_first_wrong_character_is_named_in_plain_words():
    mask = compile_mask("BJ#######@")
    failure = mask.check("BJ12A45B73")
    assert failure.position == 5
    assert failure.message == "Character 5 must be a digit (0 to 9), not “A”"
    assert mask.check("XJ12345673").message == "Character 1 must be “B”, not “X”"
    assert compile_mask("$$#").check("A12").message == "Character 2 must be a letter (A to Z), not “1”"
    assert compile_mask("??").check("A-").message == "Character 2 must be a letter or a digit, not “-”"
    assert compile_mask("**").check("A_").message == "Character 2 must be a letter, a digit, a space, / or -, not “_”"
    assert compile_mask("#@").check("1A").message == "Character 2 must be the check character, not “A”"


def test_the_check_position_accepts_the_configured_check_characters():
    assert not compile_mask("#@").matches("1A")
    mask = compile_mask("#@", check_characters=DIGITS + "A")
    assert mask.matches("1A") and mask.matches("19")
    assert mask.check_index == 1
    assert compile_mask("@###").check_index == 0
    assert compile_mask("####").check_index is None


def test_escapes_make_symbols_literal():
    mask = compile_mask(r"\#\@\$##\\")
    assert mask.length == 6
    assert mask.matches("#@$12\\")
    assert not mask.matches("1A$12\\")
    assert mask.check_index is None


def test_literal_letters_are_upper_case_because_references_are():
    mask = compile_mask("bj#")
    assert mask.matches("BJ1")
    assert not mask.matches("bj1")


def test_letters_are_ascii_only():
    mask = compile_mask("$")
    assert not mask.matches("É")
    assert mask.check("É").message == "Character 1 must be a letter (A to Z), not “É”"
    assert not compile_mask("#").matches("٣")  # an Arabic-Indic digit is not 0-9


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        ("", "Enter a mask"),
        ("##\\", "ends with"),
        ("#@#@", "only one check character"),
        ("#" * 41, "40 characters or fewer"),
        ("## ##", "cannot contain spaces"),
        ("##\\ ", "cannot contain spaces"),
        ("#é#", "ASCII"),
    ],
)
def test_unusable_masks_are_refused(mask, message):
    with pytest.raises(DomainError, match=message) as caught:
        compile_mask(mask)
    assert caught.value.field == "mask"


def test_a_mask_describes_itself_for_administrators():
    assert compile_mask("BJ#######@").describe() == "“BJ”, then 7 digits, then a check character"
    assert compile_mask("$$$#").describe() == "3 letters, then a digit"
    assert compile_mask("#").describe() == "A digit"
    assert compile_mask("ALS/####/####").describe() == "“ALS/”, then 4 digits, then “/”, then 4 digits"


SYMBOL_CHARS = {"#": DIGITS, "$": LETTERS, "?": LETTERS + DIGITS, "*": FREE_TEXT, "@": DIGITS}
masks = st.lists(st.sampled_from(["#", "$", "?", "*", "A", "/", "Z", "7", "\\#"]), min_size=1, max_size=20).map("".join)


@st.composite
def mask_and_match(draw):
    mask = draw(masks)
    chars = []
    i = 0
    while i < len(mask):
        if mask[i] == "\\":
            chars.append(mask[i + 1])
            i += 2
            continue
        pool = SYMBOL_CHARS.get(mask[i], mask[i])
        chars.append(draw(st.sampled_from(pool)))
        i += 1
    return mask, "".join(chars)


@given(mask_and_match())
def test_a_reference_built_from_a_mask_matches_it(case):
    mask, reference = case
    compiled = compile_mask(mask)
    assert compiled.matches(reference)
    assert compiled.check(reference) is None


@given(mask_and_match(), st.data())
def test_one_wrong_character_is_reported_at_its_position(case, data):
    mask, reference = case
    compiled = compile_mask(mask)
    index = data.draw(st.integers(0, len(reference) - 1))
    allowed = compiled.positions[index].allowed
    outside = [c for c in LETTERS + DIGITS + " /-_.é" if c not in allowed]
    wrong = data.draw(st.sampled_from(outside))
    corrupted = reference[:index] + wrong + reference[index + 1 :]
    failure = compiled.check(corrupted)
    assert failure is not None
    assert failure.position == index + 1
    assert failure.message.startswith(f"Character {index + 1} must be")


@given(masks, st.text(LETTERS + DIGITS + " /-#@$", max_size=22))
def test_the_fast_matcher_and_the_explanation_always_agree(mask, reference):
    compiled = compile_mask(mask)
    assert compiled.matches(reference) == (compiled.explain(reference) is None)
