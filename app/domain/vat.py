"""VAT codes with effective-dated rates, and the VAT split of a VAT-inclusive amount.

Amounts taken by the council are VAT-inclusive. The VAT in a gross amount at rate r is
    gross × r / (1 + r)
computed exactly with Decimal and rounded to the nearest penny, halves away from zero
(ROUND_HALF_UP) — HMRC allows rounding per line to the nearest penny. net = gross − vat,
so the parts always add up to the amount paid.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from peewee import DateField, DecimalField, ForeignKeyField

from app.db import BaseModel, database
from app.domain import audit
from app.domain.configuration import ConfigModel
from app.domain.errors import DomainError
from app.domain.money import round_half_up_to_pence


class VatCode(ConfigModel):
    audit_type = "vat_code"

    def rate_on(self, day: dt.date) -> Decimal:
        rate = (
            VatRate.select()
            .where((VatRate.vat_code == self) & (VatRate.effective_from <= day))
            .order_by(VatRate.effective_from.desc())
            .first()
        )
        if rate is None:
            raise DomainError(f"VAT code {self.code} has no rate in force on {day:%-d %B %Y}")
        return rate.rate

    def rates(self):
        return self.vat_rates.order_by(VatRate.effective_from.desc())

    def current_rate_text(self, today: dt.date | None = None) -> str:
        from app.db import utcnow
        from app.domain.ukdates import business_date

        try:
            return format_rate(self.rate_on(today or business_date(utcnow())))
        except DomainError:
            return "No rate in force"


class VatRate(BaseModel):
    vat_code = ForeignKeyField(VatCode, backref="vat_rates", on_delete="RESTRICT")
    # A fraction, e.g. 0.2000 for 20%. Decimal, never float.
    rate = DecimalField(max_digits=6, decimal_places=4, auto_round=False)
    effective_from = DateField()

    class Meta:
        indexes = ((("vat_code", "effective_from"), True),)


def format_rate(rate: Decimal) -> str:
    """0.2000 -> '20%', 0.1750 -> '17.5%'."""
    percent = (rate * 100).normalize()
    return f"{percent:f}%"


def parse_percentage(text: str) -> Decimal:
    cleaned = (text or "").strip().rstrip("%").strip()
    if not cleaned:
        raise DomainError("Enter the VAT rate as a percentage", "rate")
    try:
        percent = Decimal(cleaned)
    except Exception as exc:
        raise DomainError("Enter the VAT rate as a number, like 20 or 17.5", "rate") from exc
    if not percent.is_finite() or percent < 0 or percent > 100:
        raise DomainError("Enter a VAT rate between 0 and 100", "rate")
    if percent != percent.quantize(Decimal("0.01")):
        raise DomainError("Enter a VAT rate with no more than 2 decimal places", "rate")
    return (percent / 100).quantize(Decimal("0.0001"))


def add_rate(vat_code: VatCode, actor, rate: Decimal, effective_from: dt.date, *, ip_address: str = "") -> VatRate:
    if VatRate.get_or_none((VatRate.vat_code == vat_code) & (VatRate.effective_from == effective_from)):
        raise DomainError(
            f"VAT code {vat_code.code} already has a rate from {effective_from:%-d %B %Y}", "effective_from"
        )
    with database.atomic():
        item = VatRate.create(vat_code=vat_code, rate=rate, effective_from=effective_from)
        audit.record(
            "vat_rate.create",
            actor=actor,
            object_type="vat_code",
            object_id=vat_code.id,
            summary=f"Added rate {format_rate(rate)} from {effective_from.isoformat()} to {vat_code.code}",
            after={"rate": str(rate), "effective_from": effective_from.isoformat()},
            ip_address=ip_address,
        )
    return item


@dataclass(frozen=True)
class VatSplit:
    gross_pence: int
    vat_pence: int
    net_pence: int
    rate: Decimal


def split_vat(gross_pence: int, rate: Decimal) -> VatSplit:
    """Split a VAT-inclusive amount. Works for negative amounts (refunds) symmetrically."""
    if not isinstance(gross_pence, int):
        raise TypeError("gross_pence must be an int")
    if not isinstance(rate, Decimal):
        raise TypeError("rate must be a Decimal")
    if rate == 0:
        return VatSplit(gross_pence, 0, gross_pence, rate)
    vat = round_half_up_to_pence(Decimal(gross_pence) * rate / (1 + rate))
    return VatSplit(gross_pence, vat, gross_pence - vat, rate)
