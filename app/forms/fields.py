"""Fields shared by many forms."""

from __future__ import annotations

import datetime as dt

from govuk_frontend_wtf.wtforms_widgets import GovDateInput, GovTextInput
from wtforms import DateField, StringField
from wtforms.validators import StopValidation, ValidationError

from app.domain.errors import DomainError
from app.domain.money import format_pence, parse_pounds


class MoneyField(StringField):
    """Accepts what people type ("£1,234.50") and yields integer pence in `.data`."""

    widget = GovTextInput()

    def __init__(
        self,
        label=None,
        validators=None,
        *,
        optional: bool = False,
        allow_negative: bool = False,
        required_message: str | None = None,
        **kwargs,
    ):
        super().__init__(label, validators, **kwargs)
        self.required_message = required_message or f"Enter the {self.label.text[0].lower() + self.label.text[1:]}"
        self.optional = optional
        self.allow_negative = allow_negative
        self.raw_text = ""
        self.parse_error: str | None = None

    def process_formdata(self, valuelist):
        self.raw_text = (valuelist[0] if valuelist else "") or ""
        self.parse_error = None
        if not self.raw_text.strip():
            self.data = None
            return
        try:
            self.data = parse_pounds(self.raw_text, allow_negative=self.allow_negative)
        except DomainError as exc:
            self.data = None
            self.parse_error = exc.message

    def process_data(self, value):
        self.data = value
        self.raw_text = format_pence(value, symbol=False).replace(",", "") if value is not None else ""

    def _value(self):
        return self.raw_text

    def pre_validate(self, form):
        if self.parse_error:
            raise ValidationError(self.required_message if self.parse_error == "Enter an amount" else self.parse_error)
        if self.data is None and not self.optional:
            raise ValidationError(self.required_message)


def strip_filter(value):
    return value.strip() if isinstance(value, str) else value


class UkDateField(DateField):
    """A GOV.UK date input (day, month, year boxes) with GOV.UK messages instead of WTForms' own."""

    widget = GovDateInput()

    def __init__(self, label=None, validators=None, **kwargs):
        kwargs.setdefault("format", "%d %m %Y")
        super().__init__(label, validators, **kwargs)

    def process_formdata(self, valuelist):
        name = self.label.text[0].lower() + self.label.text[1:]
        if len(valuelist or []) != 3:
            # The GOV.UK widget needs exactly day, month and year to redisplay; anything else is not a date.
            self.raw_data = None
            self.data = None
            if valuelist:
                raise ValueError(f"The {name} must be a real date")
            return
        parts = [p.strip() for p in valuelist]
        if not any(parts):
            self.data = None
            return
        if not all(parts):
            missing = [n for n, p in zip(("day", "month", "year"), parts, strict=False) if not p]
            self.data = None
            raise ValueError(f"The {name} must include a {' and '.join(missing)}")
        try:
            day, month, year = (int(p) for p in parts)
            if year < 1900 or year > 2200:
                raise ValueError
            self.data = dt.date(year, month, day)
        except ValueError:
            self.data = None
            raise ValueError(f"The {name} must be a real date") from None


class WholeNumberField(StringField):
    """A whole number typed as text, with our own message for anything else (never WTForms' default)."""

    widget = GovTextInput()

    def __init__(self, label=None, validators=None, *, invalid_message: str, **kwargs):
        super().__init__(label, validators, **kwargs)
        self.invalid_message = invalid_message
        self.raw_text = ""

    def process_formdata(self, valuelist):
        self.raw_text = ((valuelist[0] if valuelist else "") or "").strip()
        text = self.raw_text.replace(",", "")
        self.data = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None

    def process_data(self, value):
        self.data = value
        self.raw_text = "" if value is None else str(value)

    def _value(self):
        return self.raw_text

    def pre_validate(self, form):
        if self.raw_text and self.data is None:
            raise StopValidation(self.invalid_message)  # stop: range checks mean nothing without a number
