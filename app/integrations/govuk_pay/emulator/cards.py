"""Checking what a payer typed on the card page, with GOV.UK-style error messages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from app.integrations.govuk_pay.emulator.core import DEBIT_CARDS

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
NOT_ACCEPTED_BRANDS = {"Maestro"}

# (field name, element id the error summary links to), in page order.
FIELDS = (
    ("card_number", "card-number"),
    ("expiry", "expiry-month"),
    ("cardholder_name", "cardholder-name"),
    ("cvc", "cvc"),
    ("address_line1", "address-line1"),
    ("address_city", "address-city"),
    ("address_postcode", "address-postcode"),
    ("email", "email"),
)


def luhn_valid(number: str) -> bool:
    total = 0
    for index, digit in enumerate(reversed(number)):
        value = int(digit)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def card_brand(number: str) -> str | None:
    """The card scheme from the number's leading digits (None when unknown)."""
    prefix2, prefix4, prefix6 = int(number[:2]), int(number[:4]), int(number[:6])
    if number.startswith(("5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763")):
        return "Maestro"
    if number.startswith(("34", "37")):
        return "American Express"
    if number.startswith("4"):
        return "Visa"
    if 51 <= prefix2 <= 55 or 2221 <= prefix4 <= 2720:
        return "Mastercard"
    if 3528 <= prefix4 <= 3589:
        return "JCB"
    if number.startswith(("6011", "65")) or 644 <= int(number[:3]) <= 649 or 622126 <= prefix6 <= 622925:
        return "Discover"
    if number.startswith(("36", "38", "39")) or 300 <= int(number[:3]) <= 305:
        return "Diners Club"
    return None


@dataclass
class CardForm:
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    number: str = ""
    brand: str | None = None

    @property
    def error_list(self) -> list[dict[str, str]]:
        return [{"text": self.errors[name], "href": f"#{anchor}"} for name, anchor in FIELDS if name in self.errors]

    def card_details(self, country: str) -> dict[str, Any]:
        v = self.values
        return {
            "last_digits_card_number": self.number[-4:],
            "first_digits_card_number": self.number[:6],
            "cardholder_name": v["cardholder_name"],
            "expiry_date": f"{int(v['expiry_month']):02d}/{v['expiry_year'][-2:]}",
            "billing_address": {
                "line1": v["address_line1"],
                "line2": v["address_line2"] or None,
                "postcode": v["address_postcode"],
                "city": v["address_city"],
                "country": country,
            },
            "card_brand": self.brand,
            "card_type": "debit" if self.number in DEBIT_CARDS else "credit",
        }


FORM_FIELDS = (
    "card_number",
    "expiry_month",
    "expiry_year",
    "cardholder_name",
    "cvc",
    "address_line1",
    "address_line2",
    "address_city",
    "address_postcode",
    "email",
)


def check_card_form(form: dict[str, str], today: date) -> CardForm:
    values = {name: (form.get(name) or "").strip() for name in FORM_FIELDS}
    result = CardForm(values=values)
    errors = result.errors

    number = re.sub(r"[\s-]", "", values["card_number"])
    if not number:
        errors["card_number"] = "Enter your card number"
    elif not number.isdigit() or not 12 <= len(number) <= 19 or not luhn_valid(number):
        errors["card_number"] = "Card number is not correct"
    else:
        brand = card_brand(number)
        if brand is None:
            errors["card_number"] = "Card number is not correct"
        elif brand in NOT_ACCEPTED_BRANDS:
            errors["card_number"] = f"{brand} cards are not accepted. Enter the details of a different card"
        result.number, result.brand = number, brand

    month, year = values["expiry_month"], values["expiry_year"]
    if not month or not year:
        errors["expiry"] = "Enter the expiry date"
    elif not (month.isdigit() and 1 <= int(month) <= 12 and year.isdigit() and len(year) in (2, 4)):
        errors["expiry"] = "Enter a real expiry date, for example 03 29"
    else:
        full_year = int(year) + 2000 if len(year) == 2 else int(year)
        if (full_year, int(month)) < (today.year, today.month):
            errors["expiry"] = "Card has expired"
        else:
            values["expiry_year"] = str(full_year)

    if not values["cardholder_name"]:
        errors["cardholder_name"] = "Enter the name as it appears on the card"
    elif len(values["cardholder_name"]) > 255:
        errors["cardholder_name"] = "Name on card must be 255 characters or fewer"

    cvc_length = 4 if result.brand == "American Express" else 3
    if not values["cvc"]:
        errors["cvc"] = "Enter the card security code"
    elif not (values["cvc"].isdigit() and len(values["cvc"]) == cvc_length):
        errors["cvc"] = f"Card security code must be {cvc_length} digits"

    if not values["address_line1"]:
        errors["address_line1"] = "Enter the first line of your billing address"
    if not values["address_city"]:
        errors["address_city"] = "Enter your town or city"
    if not values["address_postcode"]:
        errors["address_postcode"] = "Enter your postcode"
    elif len(values["address_postcode"]) > 25:
        errors["address_postcode"] = "Postcode must be 25 characters or fewer"
    if values["email"] and (len(values["email"]) > 254 or not EMAIL.fullmatch(values["email"])):
        errors["email"] = "Enter an email address in the correct format, like name@example.com"
    return result
