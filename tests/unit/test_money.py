"""Money parsing and formatting: what people type becomes exact integer pence."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import DomainError
from app.domain.money import format_pence, parse_pounds, pence_to_decimal

FORMAT_MESSAGE = "Enter an amount in pounds and pence, like £1,234.50"


@pytest.mark.parametrize(
    ("text", "pence"),
    [
        ("£1,234.50", 123450),
        ("1234.5", 123450),
        ("12", 1200),
        (" 12.00 ", 1200),
        ("£0.01", 1),
        ("0.1", 10),
        ("1,234,567.89", 123456789),
        ("£ 12.50", 1250),
    ],
)
def test_parse_pounds_accepts_what_people_type(text, pence):
    assert parse_pounds(text) == pence


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,23.00", FORMAT_MESSAGE),
        ("12.345", "Enter an amount with no more than 2 decimal places, like £12.50"),
        ("abc", FORMAT_MESSAGE),
        ("", "Enter an amount"),
        ("   ", "Enter an amount"),
        ("£", FORMAT_MESSAGE),
        ("-5", "Enter an amount greater than £0"),
        ("£-5", "Enter an amount greater than £0"),
        ("12.", FORMAT_MESSAGE),
        ("1e3", FORMAT_MESSAGE),
    ],
)
def test_parse_pounds_refuses_with_a_message(text, message):
    with pytest.raises(DomainError) as caught:
        parse_pounds(text)
    assert caught.value.message == message


def test_parse_pounds_none_is_empty():
    with pytest.raises(DomainError, match="^Enter an amount$"):
        parse_pounds(None)


@pytest.mark.parametrize(("text", "pence"), [("-5", -500), ("-£1,234.50", -123450), ("£-0.50", -50)])
def test_parse_pounds_negative_when_allowed(text, pence):
    assert parse_pounds(text, allow_negative=True) == pence


@pytest.mark.parametrize(
    ("pence", "text"),
    [
        (0, "£0.00"),
        (1, "£0.01"),
        (1234567, "£12,345.67"),
        (-50, "-£0.50"),
        (100000000, "£1,000,000.00"),
        (None, ""),
    ],
)
def test_format_pence(pence, text):
    assert format_pence(pence) == text


def test_format_pence_without_symbol():
    assert format_pence(123450, symbol=False) == "1,234.50"


@given(st.integers(min_value=0, max_value=10**12))
def test_format_then_parse_round_trips(pence):
    assert parse_pounds(format_pence(pence)) == pence
    assert parse_pounds(format_pence(pence, symbol=False)) == pence


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_format_then_parse_round_trips_negative(pence):
    assert parse_pounds(format_pence(pence), allow_negative=True) == pence


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_pence_to_decimal_is_exact(pence):
    pounds = pence_to_decimal(pence)
    assert pounds * 100 == pence
    assert pounds.as_tuple().exponent == -2
