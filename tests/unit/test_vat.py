"""The VAT split of a VAT-inclusive amount: exact, rounded to the penny, halves away from zero."""

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.vat import parse_percentage, split_vat

TWENTY = Decimal("0.2000")


@pytest.mark.parametrize(
    ("gross", "rate", "vat"),
    [
        (12000, TWENTY, 2000),  # £120.00 at 20% → £20.00
        (100, TWENTY, 17),  # £1.00 at 20% → 16.67p → 17p
        (1, TWENTY, 0),  # 0.17p
        (3, TWENTY, 1),  # exactly 0.5p rounds up
        (9, TWENTY, 2),  # exactly 1.5p rounds up
        (15, TWENTY, 3),  # exactly 2.5p rounds up, not to even
        (11750, Decimal("0.175"), 1750),  # £117.50 at 17.5%
        (2100, Decimal("0.05"), 100),  # £21.00 at 5%
        (12345, Decimal(0), 0),
        (0, TWENTY, 0),
    ],
)
def test_worked_examples(gross, rate, vat):
    split = split_vat(gross, rate)
    assert split.vat_pence == vat
    assert split.net_pence == gross - vat
    assert split.gross_pence == gross
    assert split.rate == rate


@pytest.mark.parametrize("gross", [1, 3, 9, 15, 100, 12000, 99999])
def test_negative_amounts_split_symmetrically(gross):
    positive = split_vat(gross, TWENTY)
    negative = split_vat(-gross, TWENTY)
    assert negative.vat_pence == -positive.vat_pence
    assert negative.net_pence == -positive.net_pence


def test_refuses_float_and_non_decimal_rate():
    with pytest.raises(TypeError):
        split_vat(12.5, TWENTY)
    with pytest.raises(TypeError):
        split_vat(100, 0.2)


def _exact_vat(gross: int, rate: Decimal) -> int:
    """Independent reference: exact rational arithmetic, halves rounded away from zero."""
    r = Fraction(rate)
    vat = Fraction(gross) * r / (1 + r)
    magnitude = abs(vat)
    whole = magnitude.numerator // magnitude.denominator
    if magnitude - whole >= Fraction(1, 2):
        whole += 1
    return whole if vat >= 0 else -whole


rates = st.decimals(min_value=0, max_value=1, places=4, allow_nan=False, allow_infinity=False)
amounts = st.integers(min_value=-(10**12), max_value=10**12)


@given(amounts, rates)
def test_parts_add_up_and_vat_is_never_more_than_the_amount(gross, rate):
    split = split_vat(gross, rate)
    assert split.vat_pence + split.net_pence == gross
    assert abs(split.vat_pence) <= abs(gross)
    assert isinstance(split.vat_pence, int) and isinstance(split.net_pence, int)


@given(amounts, rates)
def test_matches_exact_rounding(gross, rate):
    assert split_vat(gross, rate).vat_pence == _exact_vat(gross, rate)


@given(amounts, rates)
def test_symmetric_for_refunds(gross, rate):
    assert split_vat(-gross, rate).vat_pence == -split_vat(gross, rate).vat_pence


@pytest.mark.parametrize(("text", "rate"), [("20", Decimal("0.2")), ("17.5%", Decimal("0.175")), ("0", Decimal(0))])
def test_parse_percentage(text, rate):
    assert parse_percentage(text) == rate
