"""The council's own settings and branding: one row, edited by administrators."""

from __future__ import annotations

import re

from peewee import BigIntegerField, BlobField, BooleanField, CharField, IntegerField, TextField

from app.db import BaseModel
from app.domain import audit
from app.domain.errors import DomainError

HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
PHASES = ("alpha", "beta", "live")
MAX_LOGO_BYTES = 200_000
MAX_BASKET_ITEMS = 50


class CouncilSettings(BaseModel):
    council_name = CharField(max_length=120, default="Demo Borough Council")
    service_name = CharField(max_length=120, default="Pay the council")
    brand_colour = CharField(max_length=7, default="#1d70b8")
    phase = CharField(max_length=10, default="beta")
    contact_email = CharField(max_length=320, default="")
    contact_phone = CharField(max_length=40, default="")
    website_url = CharField(max_length=300, default="")
    accessibility_contact = TextField(default="")
    logo_png = BlobField(null=True)
    logo_content_type = CharField(max_length=40, default="")
    logo_version = IntegerField(default=0)
    demo_mode = BooleanField(default=False)
    # How many things a citizen can pay for in one card payment.
    basket_max_items = IntegerField(default=10)
    # Refunds above this need a senior finance officer's approval (pence; £500 by default).
    refund_approval_pence = BigIntegerField(default=50_000)
    # Printed on VAT receipts: the council's postal address and VAT registration number.
    postal_address = TextField(default="")
    vat_registration_number = CharField(max_length=20, default="")

    @classmethod
    def current(cls) -> CouncilSettings:
        settings = cls.select().order_by(cls.id).first()
        if settings is None:
            settings = cls.create()
        return settings

    def as_audit(self) -> dict:
        return {
            "council_name": self.council_name,
            "service_name": self.service_name,
            "brand_colour": self.brand_colour,
            "phase": self.phase,
            "contact_email": self.contact_email,
            "contact_phone": self.contact_phone,
            "website_url": self.website_url,
            "accessibility_contact": self.accessibility_contact,
            "refund_approval_pence": self.refund_approval_pence,
            "postal_address": self.postal_address,
            "vat_registration_number": self.vat_registration_number,
            "logo_version": self.logo_version,
            "basket_max_items": self.basket_max_items,
        }


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def contrast_with_white(hex_colour: str) -> float:
    """WCAG contrast ratio of white text on this background colour."""
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * _linear(r) + 0.7152 * _linear(g) + 0.0722 * _linear(b)
    return 1.05 / (luminance + 0.05)


def validate_brand_colour(value: str) -> str:
    value = (value or "").strip()
    if not HEX_COLOUR.match(value):
        raise DomainError("Enter the brand colour as a hex code, like #1d70b8", "brand_colour")
    if contrast_with_white(value) < 4.5:
        raise DomainError(
            "Choose a darker brand colour: white text on it must have a contrast ratio of at least 4.5 to 1",
            "brand_colour",
        )
    return value.lower()


def detect_image_type(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


def update_settings(actor, changes: dict, *, logo: bytes | None = None, ip_address: str = "") -> CouncilSettings:
    settings = CouncilSettings.current()
    before = settings.as_audit()
    if "brand_colour" in changes:
        changes["brand_colour"] = validate_brand_colour(changes["brand_colour"])
    if "basket_max_items" in changes:
        value = changes["basket_max_items"]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_BASKET_ITEMS:
            raise DomainError(f"Enter a number of payments from 1 to {MAX_BASKET_ITEMS}", "basket_max_items")
    if "refund_approval_pence" in changes:
        value = changes["refund_approval_pence"]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10_000_000:
            raise DomainError("Enter an amount from £0 to £100,000", "refund_approval_pence")
    if "vat_registration_number" in changes:
        number = (changes["vat_registration_number"] or "").upper().replace(" ", "")
        if number and not re.fullmatch(r"(GB)?(\d{9}|\d{12}|GD\d{3}|HA\d{3})", number):
            raise DomainError("Enter a VAT registration number like GB123456789", "vat_registration_number")
        changes["vat_registration_number"] = number
    if "phase" in changes and changes["phase"] not in PHASES:
        raise DomainError("Select the phase of the service", "phase")
    for key, value in changes.items():
        setattr(settings, key, value)
    if logo is not None:
        kind = detect_image_type(logo)
        if kind is None:
            raise DomainError("The logo must be a PNG or JPEG image", "logo")
        if len(logo) > MAX_LOGO_BYTES:
            raise DomainError("The logo must be smaller than 200KB", "logo")
        settings.logo_png = logo
        settings.logo_content_type = kind
        settings.logo_version += 1
    settings.save()
    b, a = audit.changes(before, settings.as_audit())
    if a:
        audit.record(
            "settings.update",
            actor=actor,
            object_type="council_settings",
            object_id=settings.id,
            summary="Changed council settings",
            before=b,
            after=a,
            ip_address=ip_address,
        )
    return settings
