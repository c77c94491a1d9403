"""Reference rules for the demo council, so testers can try valid and invalid references at once.

The arithmetic follows spec/reference-validation.md §4 (demo configurations A–D, G and a
Luhn sundry invoice). Business rates show chained formats: a new 9-digit format from
April 2025 and the old 10-digit one, staff only with a warning, until March 2027.

`seed_demo_reference_rules()` is idempotent: check-digit configurations are created only
if their code is missing, formats only for a fund that has none, account holders only
for a fund with no account list. When it first gives a fund its formats it also updates
the fund's hint text to describe them (audited like any change).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random

from app.db import database
from app.domain.configuration import change_config
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.references.accounts import AccountHolder, load_account_holders_csv
from app.domain.references.checkdigits import CheckDigitConfig
from app.domain.references.masks import DIGITS, LETTERS
from app.domain.references.rules import (
    CompiledFormat,
    ReferenceFormat,
    _uk_today,
    add_format,
    compiled_rule,
    create_check_digit_config,
)

# code, name, values, notes for administrators
CHECK_DIGIT_CONFIGS = [
    (
        "ACADEMY10",
        "Council tax and business rates (modulus 10)",
        {
            "algorithm": "weighted_sum",
            "modulus": 10,
            "weights": "3,7,1,3,7,1,3,7,0",
            "subtract_from_modulus": True,
            "result_substitutions": {"10": "0"},
        },
        "As issued by the revenues system: weights 3-7-1, subtract from 10, 10 becomes 0.",
    ),
    (
        "PCN11",
        "Penalty charge notices (modulus 11)",
        {
            "algorithm": "weighted_sum",
            "modulus": 11,
            "weights": "9,8,7,6,5,4,3,2,1,0",
            "subtract_from_modulus": False,
            "prefix_substitutions": {"BJ": "05"},
            "result_substitutions": {"10": "A"},
        },
        "BJ counts as 05; a result of 10 is written A.",
    ),
    (
        "RENT10",
        "Housing rents (modulus 10)",
        {
            "algorithm": "weighted_sum",
            "modulus": 10,
            "weights": "0,0,9,7,1,4,6,3,2,8,0",
            "subtract_from_modulus": True,
            "result_substitutions": {"10": "0"},
        },
        "The first two digits are not weighted.",
    ),
    (
        "LIBCARD",
        "Library cards (library card scheme)",
        {
            "algorithm": "library_card",
            "modulus": 10,
            "weights": "2,0,2,0,2,0,2,0,2,0,2,0,2",
            "result_substitutions": {"10": "0"},
        },
        "14-digit barcodes; the same as Luhn for this length.",
    ),
    ("LUHN", "Luhn", {"algorithm": "luhn"}, "Sundry invoices from the finance system."),
]

NEW_NNDR_FROM = dt.date(2025, 4, 1)
OLD_NNDR_UNTIL = dt.date(2027, 3, 31)

# fund code -> formats, tried in this order ("check_digit" is a configuration code)
FORMATS: dict[str, list[dict]] = {
    "CTAX": [
        {
            "label": "Council tax account number",
            "min_length": 9,
            "max_length": 9,
            "character_type": "numeric",
            "mask": "5#######@",
            "check_digit": "ACADEMY10",
            "example": "512345677",
            "known_bad": "512345678\n612345677\n51234567",
        }
    ],
    "NNDR": [
        {
            "label": "Business rates account number",
            "effective_from": NEW_NNDR_FROM,
            "min_length": 9,
            "max_length": 9,
            "character_type": "numeric",
            "mask": "1#######@",
            "check_digit": "ACADEMY10",
            "example": "102345676",
            "known_bad": "102345677",
        },
        {
            "label": "Old business rates account number (before April 2025)",
            "effective_to": OLD_NNDR_UNTIL,
            "public": False,
            "min_length": 10,
            "max_length": 10,
            "character_type": "numeric",
            "pattern": "55[0-9]{8}",
            "example": "5512345678",
            "known_bad": "5612345678",
            "staff_warning": (
                "This is an old business rates reference. Ask the customer for the 9-digit reference "
                "on their latest bill; old references are accepted until 31 March 2027."
            ),
        },
    ],
    "HRENT": [
        {
            "label": "Rent account number",
            "min_length": 11,
            "max_length": 11,
            "character_type": "numeric",
            "mask": "6#########@",
            "check_digit": "RENT10",
            "example": "61234567892",
            "known_bad": "61234567893",
        }
    ],
    "PCN": [
        {
            "label": "Penalty charge notice number",
            "min_length": 10,
            "max_length": 10,
            "character_type": "alphanumeric",
            "mask": "BJ#######@",
            "check_digit": "PCN11",
            "example": "BJ12345673",
            "known_good": "BJ 1234567 3",
            "known_bad": "BJ12345674\nDB12345673",
        }
    ],
    "LIB": [
        {
            "label": "Library card number",
            "min_length": 14,
            "max_length": 14,
            "character_type": "numeric",
            "mask": "2############@",
            "check_digit": "LIBCARD",
            "example": "21234000567891",
            "known_bad": "21234000567892\n21234000567819",
        }
    ],
    "SUNDRY": [
        {
            "label": "Invoice number",
            "min_length": 10,
            "max_length": 10,
            "character_type": "alphanumeric",
            "pattern": "INV[0-9]{7}",
            "check_digit": "LUHN",
            "example": "INV1234566",
            "known_bad": "INV1234567\nINV1243566",
        }
    ],
    "TWASTE": [
        {
            "label": "Customer number",
            "min_length": 6,
            "max_length": 6,
            "character_type": "alphanumeric",
            "mask": "C#####",
            "example": "C10001",
        }
    ],
}

HINTS = {
    "CTAX": "It is 9 digits, starts with 5 and is at the top of your bill",
    "NNDR": "It is 9 digits, starts with 1 and is at the top of your bill",
    "HRENT": "It is 11 digits, starts with 6 and is on your rent card",
    "PCN": "It is 10 characters, starts with BJ, like BJ12345673, and is on the notice",
    "LIB": "It is the 14 digit number on the back of your card",
    "SUNDRY": "It starts with INV, like INV1234566, and is at the top of your invoice",
    "TWASTE": "It starts with C, like C10001, and is on your invoice",
}
MUST_EXIST = {"TWASTE"}

ACCOUNT_HOLDER_COLUMNS = (
    "fund",
    "reference",
    "name",
    "address_line_1",
    "address_line_2",
    "postcode",
    "balance",
    "on_stop_message",
    "stop_channels",
)
_CLOSED = "This account is closed. Call the commercial waste team on 01234 567892."
_REVIEW = "Please call the rent team on 01234 567891 before paying: this account is being reviewed."
ACCOUNT_HOLDERS = [
    ("TWASTE", "C10001", "The Corner Café Ltd", "12 Market Street", "Demo Borough", "DB1 1AB", "240.00", "", ""),
    ("TWASTE", "C10002", "Hollis & Sons Bakers", "3 Mill Lane", "Demo Borough", "DB1 4CD", "1,120.50", "", ""),
    ("TWASTE", "C10003", "Riverside Dental Practice", "Riverside House", "Demo Borough", "DB2 2EF", "0.00", "", ""),
    ("TWASTE", "C10004", "Greenway Garage", "Unit 4 Greenway Estate", "Demo Borough", "DB3 1GH", "560.00", "", ""),
    ("TWASTE", "C10005", "Old Mill Hotel", "Old Mill Road", "Demo Borough", "DB2 5JK", "2,310.75", _CLOSED, "all"),
    ("TWASTE", "C10006", "Kumar Convenience Store", "88 High Street", "Demo Borough", "DB1 2LM", "-35.00", "", ""),
    ("TWASTE", "C10007", "St Anne's Primary School", "School Lane", "Demo Borough", "DB4 1NP", "890.00", "", ""),
    ("TWASTE", "C10008", "Blue Door Florist", "5 Church Walk", "Demo Borough", "DB1 3QR", "120.00", "", ""),
    ("HRENT", "61234567892", "Jordan Price", "Flat 2 Elm Court", "Demo Borough", "DB5 1ST", "412.60", "", ""),
    ("HRENT", "61000000012", "Priya Shah", "14 Ash Grove", "Demo Borough", "DB5 2UV", "0.00", "", ""),
    ("HRENT", "61000000024", "Tom Fletcher", "22 Beech Road", "Demo Borough", "DB5 3WX", "1,250.00", _REVIEW, "public"),
]


def _config_ids() -> dict[str, int]:
    for code, name, values, notes in CHECK_DIGIT_CONFIGS:
        if CheckDigitConfig.by_code(code) is None:
            create_check_digit_config(None, {"code": code, "name": name, "description": notes, **values})
    return {c.code: c.id for c in CheckDigitConfig.select()}


def seed_demo_reference_rules() -> None:
    """Give the demo funds realistic reference rules and a few account holders (idempotent)."""
    with database.atomic():
        configs = _config_ids()
        funds = {f.code: f for f in Fund.select()}
        for code, formats in FORMATS.items():
            fund = funds.get(code)
            if fund is None or ReferenceFormat.select().where(ReferenceFormat.fund == fund.id).exists():
                continue
            # First time only, so a tester's later edits to the fund survive a re-run.
            changes = {"reference_hint": HINTS[code]}
            if code in MUST_EXIST:
                changes["account_must_exist"] = True
            change_config(fund, None, changes)
            for values in formats:
                values = dict(values)
                if values.get("check_digit"):
                    values["check_digit"] = configs[values["check_digit"]]
                add_format(fund, None, values)
        wanted = {row[0] for row in ACCOUNT_HOLDERS}
        loaded = {
            f.code for f in Fund.select(Fund.code).join(AccountHolder).where(Fund.code.in_(sorted(wanted))).distinct()
        }
        missing = {code for code in wanted if code in funds} - loaded
        if missing:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(ACCOUNT_HOLDER_COLUMNS)
            writer.writerows(row for row in ACCOUNT_HOLDERS if row[0] in missing)
            buffer.seek(0)
            load_account_holders_csv(None, buffer, None, file_name="demo-account-holders.csv")


# ---------------------------------------------------------------------------
# Making valid references (demo ledger, tests, benchmarks)
# ---------------------------------------------------------------------------

_ALPHANUMERIC = LETTERS + DIGITS


def generate_reference(fmt: CompiledFormat, rng: random.Random, *, attempts: int = 5000) -> str:
    """A random reference that passes `fmt` (built from its mask, or from its example with
    the digits changed); the check character is worked out, never guessed."""
    for _ in range(attempts):
        if fmt.mask is not None:
            chars = []
            for position in fmt.mask.positions:
                if position.symbol == "":
                    chars.append(position.literal)
                elif position.symbol == "#" or position.symbol == "@":
                    chars.append(rng.choice(DIGITS))
                elif position.symbol == "$":
                    chars.append(rng.choice(LETTERS))
                else:
                    chars.append(rng.choice(_ALPHANUMERIC))
        elif fmt.example:
            chars = [rng.choice(DIGITS) if c in DIGITS else c for c in fmt.example]
        else:
            length = rng.randint(fmt.min_length or 8, fmt.max_length or fmt.min_length or 10)
            pool = {"alpha": LETTERS, "alphanumeric": _ALPHANUMERIC}.get(fmt.character_type, DIGITS)
            chars = [rng.choice(pool) for _ in range(length)]
        if fmt.check is not None:
            position = len(chars) - 1 if fmt.check_position is None else fmt.check_position
            expected = fmt.check("".join(chars)).expected
            if expected is None:
                continue  # a "never issued" result: try other digits
            chars[position] = expected
        reference = "".join(chars)
        if fmt.passes(reference):
            return reference
    raise DomainError(f"Could not make a reference that passes the format “{fmt.label}”")


def generate_valid_reference(
    fund_code: str, rng: random.Random, *, on: dt.date | None = None, channel: str = "public"
) -> str:
    """A reference the fund accepts on `channel` today (or `on`): for a fund whose accounts
    must exist, one of its accounts that is not on stop."""
    fund = Fund.by_code(fund_code)
    if fund is None:
        raise DomainError(f"There is no fund with the code {fund_code}")
    if fund.account_must_exist:
        references = [
            a.reference
            for a in AccountHolder.select(AccountHolder.reference)
            .where((AccountHolder.fund == fund.id) & (AccountHolder.on_stop_message == ""))
            .order_by(AccountHolder.reference)
        ]
        if not references:
            raise DomainError(f"{fund.name} has no accounts to pay")
        return rng.choice(references)
    rule = compiled_rule(fund)
    formats = rule.active_formats(on or _uk_today(), channel)
    if not formats:
        return str(rng.randint(10_000_000, 99_999_999))
    return generate_reference(formats[0], rng)
