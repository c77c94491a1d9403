"""Money: integer pence inside, `Decimal` pounds at the edges, never float."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from app.domain.errors import DomainError

PENCE_PER_POUND = 100
_AMOUNT = re.compile(r"^-?\d+(\.\d{1,2})?$")
# Thousands separators must be in the right places: 1,234 or 12,345,678
_GROUPED = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d{1,2})?$")


def parse_pounds(text: str, *, allow_negative: bool = False) -> int:
    """Parse what a person types ("£1,234.50", "1234.5", "12") into integer pence.

    Raises DomainError with a GOV.UK-style message when the text is not an amount
    of money in pounds and pence.
    """
    cleaned = (text or "").strip().replace(" ", "")
    if not cleaned:
        raise DomainError("Enter an amount")
    negative = cleaned.startswith("-")
    if negative:
        cleaned = cleaned[1:]
    if cleaned.startswith("£"):
        cleaned = cleaned[1:]
    if cleaned.startswith("-"):  # "£-5"
        negative, cleaned = True, cleaned[1:]
    if "," in cleaned:
        if not _GROUPED.match(cleaned):
            raise DomainError("Enter an amount in pounds and pence, like £1,234.50")
        cleaned = cleaned.replace(",", "")
    if not _AMOUNT.match(cleaned):
        if re.match(r"^\d+\.\d{3,}$", cleaned):
            raise DomainError("Enter an amount with no more than 2 decimal places, like £12.50")
        raise DomainError("Enter an amount in pounds and pence, like £1,234.50")
    try:
        pounds = Decimal(cleaned)
    except InvalidOperation as exc:  # pragma: no cover - the pattern guards this
        raise DomainError("Enter an amount in pounds and pence, like £1,234.50") from exc
    pence = int(pounds * PENCE_PER_POUND)
    if negative:
        if not allow_negative:
            raise DomainError("Enter an amount greater than £0")
        pence = -pence
    return pence


def pence_to_decimal(pence: int) -> Decimal:
    return (Decimal(pence) / PENCE_PER_POUND).quantize(Decimal("0.01"))


def format_pence(pence: int | None, *, symbol: bool = True) -> str:
    """1234567 -> '£12,345.67'; -50 -> '-£0.50'."""
    if pence is None:
        return ""
    sign = "-" if pence < 0 else ""
    pounds, rem = divmod(abs(int(pence)), PENCE_PER_POUND)
    return f"{sign}{'£' if symbol else ''}{pounds:,}.{rem:02d}"


def round_half_up_to_pence(amount: Decimal) -> int:
    """Round a Decimal number of pence to a whole penny, halves away from zero."""
    return int(amount.quantize(Decimal("1"), rounding=ROUND_HALF_UP))
