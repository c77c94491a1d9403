"""The demo council ("model office"): realistic configuration, users and a few months of income.

`flask seed-demo` runs this. It is idempotent: configuration is created only if its code
is missing, and ledger entries are posted with fixed idempotency keys, so running it
again changes nothing.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from app.db import database, utcnow
from app.domain.configuration import create_config
from app.domain.council import CouncilSettings
from app.domain.funds import Fund, FundGroup, set_group_funds
from app.domain.ledger import PostingRequest, post
from app.domain.methods import MethodOfPayment
from app.domain.offices import Office
from app.domain.references.demo import generate_valid_reference, seed_demo_reference_rules
from app.domain.suspense import seed_suspense
from app.domain.users import User, create_user
from app.domain.vat import VatCode, VatRate, add_rate

DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - published demo sign-in, demo mode only
DEMO_USERS = [
    ("admin@demo.example.gov.uk", "Asha Patel", ["system_administrator"], ["ALL"]),
    ("finance@demo.example.gov.uk", "Ben Carter", ["finance_officer"], ["REVS", "CORP", "PARKING"]),
    ("senior@demo.example.gov.uk", "Chloe Evans", ["senior_finance_officer"], ["ALL"]),
    ("auditor@demo.example.gov.uk", "Dev Sharma", ["auditor"], ["ALL"]),
    ("housing@demo.example.gov.uk", "Erin Walsh", ["finance_officer"], ["HOUSING"]),
]

VAT_CODES = [
    ("S", "Standard rate", [("2008-12-01", "0.15"), ("2010-01-01", "0.175"), ("2011-01-04", "0.20")]),
    ("Z", "Zero rate", [("1973-04-01", "0")]),
    ("E", "Exempt", [("1973-04-01", "0")]),
    ("O", "Outside the scope of VAT", [("1973-04-01", "0")]),
]

# code, name, vat, citizen, ledger, cost centre, reference label, hint, min, max, address, pay account
FUNDS = [
    (
        "CTAX",
        "Council tax",
        "O",
        True,
        "1001",
        "RV100",
        "Council tax account number",
        "It is 8 digits and is at the top of your bill",
        100,
        1_000_000,
        False,
        "default",
    ),
    (
        "NNDR",
        "Business rates",
        "O",
        True,
        "1002",
        "RV200",
        "Business rates account number",
        "It is 9 digits and is at the top of your bill",
        100,
        50_000_000,
        False,
        "default",
    ),
    (
        "HRENT",
        "Housing rent",
        "E",
        True,
        "2001",
        "HS100",
        "Rent account number",
        "It starts with HR and is on your rent card",
        100,
        500_000,
        False,
        "default",
    ),
    (
        "PCN",
        "Parking penalty charge notice",
        "O",
        True,
        "3001",
        "PK100",
        "Penalty charge notice number",
        "It is 2 letters and 8 numbers, like DB12345678, and is on the notice",
        100,
        20_000,
        False,
        "parking",
    ),
    (
        "LIB",
        "Library charges",
        "S",
        True,
        "4001",
        "LB100",
        "Library card number",
        "It is the 14 digit number on the back of your card",
        10,
        10_000,
        False,
        "default",
    ),
    (
        "SUNDRY",
        "Sundry invoice",
        "O",
        True,
        "5001",
        "FN100",
        "Invoice number",
        "It starts with INV and is at the top of your invoice",
        100,
        10_000_000,
        True,
        "default",
    ),
    (
        "TWASTE",
        "Commercial waste collection",
        "S",
        False,
        "5002",
        "WS100",
        "Customer number",
        "",
        100,
        2_000_000,
        True,
        "default",
    ),
    ("SUSP", "Suspense", "O", False, "9999", "FN999", "Reference", "", 1, None, False, "default"),
]

GROUPS = [
    ("REVS", "Revenues", ["CTAX", "NNDR"]),
    ("HOUSING", "Housing", ["HRENT"]),
    ("PARKING", "Parking", ["PCN"]),
    ("CORP", "Corporate income", ["LIB", "SUNDRY", "TWASTE", "SUSP"]),
    ("ALL", "All funds", ["CTAX", "NNDR", "HRENT", "PCN", "LIB", "SUNDRY", "TWASTE", "SUSP"]),
]

# code, name, channel, refundable, staff can use
METHODS = [
    ("WEB", "Online card payment", "online_card", True, False),
    ("TEL", "Telephone card payment", "telephone_card", True, True),
    ("CARD", "Card payment at a counter", "counter_card", True, True),
    ("CASH", "Cash", "cash", False, True),
    ("CHQ", "Cheque", "cheque", False, True),
    ("PO", "Postal order", "postal_order", False, True),
    ("BACS", "Bank transfer", "bank_transfer", False, True),
    ("ALLPAY", "allpay, Post Office or PayPoint", "allpay", False, False),
    ("DWP", "DWP deduction", "dwp", False, False),
    ("DD", "Direct Debit", "direct_debit", False, False),
    ("JNL", "Journal or transfer", "journal", False, True),
]

OFFICES = [
    ("TH", "Town Hall", "Town Hall, Market Street, Demo Borough, DB1 1AA"),
    ("CSC", "Customer Service Centre", "1 High Street, Demo Borough, DB1 2BB"),
    ("LIBC", "Central Library", "Library Square, Demo Borough, DB1 3CC"),
]

PAYERS = [
    "Aisha Khan",
    "Brian Murphy",
    "Catrin Jones",
    "Daniel Okafor",
    "Emma Smith",
    "Farid Hussain",
    "Grace Lee",
    "Harry Williams",
    "Isla Brown",
    "Jack Taylor",
    "Kiran Gill",
    "Laura Wilson",
]


def _amount(fund_code: str, rng: random.Random) -> int:
    ranges = {
        "CTAX": (5_000, 25_000),
        "NNDR": (20_000, 400_000),
        "HRENT": (8_000, 20_000),
        "PCN": (3_500, 7_000),
        "LIB": (50, 1_500),
        "SUNDRY": (2_500, 150_000),
        "TWASTE": (5_000, 60_000),
        "SUSP": (1_000, 30_000),
    }
    low, high = ranges[fund_code]
    return rng.randint(low, high)


def seed_configuration() -> None:
    settings = CouncilSettings.current()
    if not settings.demo_mode:
        settings.council_name = "Demo Borough Council"
        settings.service_name = "Pay Demo Borough Council"
        settings.brand_colour = "#005a8c"
        settings.phase = "beta"
        settings.contact_email = "income@demo.example.gov.uk"
        settings.contact_phone = "01234 567890"
        settings.website_url = "https://www.demo.example.gov.uk"
        settings.demo_mode = True
        settings.save()
    if not settings.postal_address:  # added after the first demo councils were seeded
        settings.postal_address = "Town Hall\nMarket Street\nDemo Borough\nDB1 1AA"
        settings.vat_registration_number = "GB123456789"
        settings.save()

    for code, name, rates in VAT_CODES:
        vat = VatCode.by_code(code) or create_config(VatCode, None, {"code": code, "name": name})
        for start, rate in rates:
            day = dt.date.fromisoformat(start)
            if not VatRate.get_or_none((VatRate.vat_code == vat) & (VatRate.effective_from == day)):
                add_rate(vat, None, Decimal(rate).quantize(Decimal("0.0001")), day)

    for code, name, vat, citizen, ledger, cost_centre, label, hint, minimum, maximum, address, pay_account in FUNDS:
        if Fund.by_code(code) is None:
            create_config(
                Fund,
                None,
                {
                    "code": code,
                    "name": name,
                    "vat_code": VatCode.by_code(vat).id,
                    "shown_to_citizens": citizen,
                    "ledger_code": ledger,
                    "cost_centre": cost_centre,
                    "reference_label": label,
                    "reference_hint": hint,
                    "minimum_pence": minimum,
                    "maximum_pence": maximum,
                    "address_required": address,
                    "pay_account": pay_account,
                    "is_suspense": code == "SUSP",
                    "description": "",
                },
            )

    for code, name, fund_codes in GROUPS:
        group = FundGroup.by_code(code) or create_config(FundGroup, None, {"code": code, "name": name})
        set_group_funds(group, None, [Fund.by_code(c).id for c in fund_codes])

    for code, name, channel, refundable, staff in METHODS:
        if MethodOfPayment.by_code(code) is None:
            create_config(
                MethodOfPayment,
                None,
                {
                    "code": code,
                    "name": name,
                    "channel": channel,
                    "refundable": refundable,
                    "staff_can_use": staff,
                    "minimum_pence": 1,
                    "maximum_pence": None,
                },
            )

    for code, name, address in OFFICES:
        if Office.by_code(code) is None:
            create_config(Office, None, {"code": code, "name": name, "address": address})

    for email, name, roles, groups in DEMO_USERS:
        if User.get_or_none(User.email == email) is None:
            user, _ = create_user(
                None,
                email=email,
                name=name,
                roles=roles,
                fund_group_ids=[FundGroup.by_code(g).id for g in groups],
                password=DEMO_PASSWORD,
            )
            user.must_change_password = False  # demo convenience: testers sign in straight away
            user.save()

    # Reference rules, check digits and a few account holders for the demo funds
    seed_demo_reference_rules()

    # Export templates every council starts with (idempotent: never changes one that exists)
    from app.domain.exports.templates import ensure_presets

    ensure_presets()

    # Built-in import templates (allpay, DWP, LocalGov IMS CSV, account holders) with demo defaults
    from app.domain.imports.templates import ensure_builtin_templates, set_demo_template_defaults

    ensure_builtin_templates()
    set_demo_template_defaults()


def seed_ledger(entries: int = 400, days: int = 90, seed: int = 2026) -> int:
    """Post `entries` payments over the last `days` days. Returns how many were new."""
    rng = random.Random(seed)  # noqa: S311 - repeatable demo data, not security
    funds = {f.code: f for f in Fund.select()}
    methods = {m.code: m for m in MethodOfPayment.select()}
    offices = list(Office.select())
    staff = User.get_or_none(User.email == "finance@demo.example.gov.uk")
    weights = [
        ("CTAX", 40),
        ("NNDR", 8),
        ("HRENT", 20),
        ("PCN", 12),
        ("LIB", 8),
        ("SUNDRY", 6),
        ("TWASTE", 4),
        ("SUSP", 2),
    ]
    channel_for = {
        "CTAX": ["WEB", "DD", "ALLPAY", "DWP", "TEL", "BACS"],
        "NNDR": ["BACS", "WEB", "DD", "CHQ"],
        "HRENT": ["ALLPAY", "DD", "WEB", "CASH", "DWP"],
        "PCN": ["WEB", "TEL", "CARD"],
        "LIB": ["CASH", "CARD", "WEB"],
        "SUNDRY": ["BACS", "WEB", "CHQ", "TEL"],
        "TWASTE": ["BACS", "DD", "TEL"],
        "SUSP": ["BACS", "ALLPAY"],
    }
    now = utcnow()
    created = 0
    codes = [c for c, _ in weights]
    cum = [w for _, w in weights]
    with database.atomic():
        for n in range(entries):
            fund_code = rng.choices(codes, weights=cum)[0]
            method_code = rng.choice(channel_for[fund_code])
            method = methods[method_code]
            taken_at = now - dt.timedelta(days=rng.randint(0, days), minutes=rng.randint(0, 600))
            by_staff = method.channel in {"telephone_card", "counter_card", "cash", "cheque"}
            result = post(
                PostingRequest(
                    idempotency_key=f"demo-seed-{seed}-{n}",
                    fund=funds[fund_code],
                    account_reference=generate_valid_reference(fund_code, rng),
                    amount_pence=_amount(fund_code, rng),
                    method=method,
                    source="staff_payment"
                    if by_staff
                    else ("payment" if method.channel == "online_card" else "import"),
                    taken_at=taken_at,
                    office=rng.choice(offices) if by_staff else None,
                    user=staff if by_staff else None,
                    payer_name=rng.choice(PAYERS),
                    narrative="Demo payment",
                )
            )
            created += int(result.created)
    created += seed_suspense()  # demo suspense items of every age and source (app/domain/suspense.py)
    return created
