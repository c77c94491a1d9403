"""Payments taken by staff: cash, cheque, postal order and bank transfer, at a counter or by post.

A staff payment is a small basket (one payer, one method, one or more lines of fund +
reference + amount) posted to the ledger in one transaction through `ledger.post_many`.
Every line passes the fund's reference rule on the staff channel (every check, with reasons;
accounts on stop need an override), and only funds of the member of staff's fund groups can
be paid. The `StaffPayment` row keeps what is about the payment as a whole: who, where, the
method and, for a cheque, its details (needed when a cheque is returned unpaid).

Telephone card payments are different: the money is taken by GOV.UK Pay, not by the member of
staff, so they are recorded as a GOV.UK Pay payment (app/domain/payments.py) with the MOTO flag,
the member of staff and the office, and reach the ledger the way every card payment does: when
GOV.UK Pay says it succeeded (return, webhook or status job), never before.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from peewee import BigAutoField, CharField, DateTimeField, ForeignKeyField, IntegrityError, TextField

from app.db import BaseModel, utcnow
from app.domain import audit, ledger
from app.domain.errors import DomainError
from app.domain.funds import Fund, visible_fund_ids
from app.domain.methods import MethodOfPayment
from app.domain.money import format_pence
from app.domain.offices import Office
from app.domain.references import validate_reference
from app.domain.users import User

# Methods a member of staff records here; card payments need GOV.UK Pay.
STAFF_CHANNELS = ("cash", "cheque", "postal_order", "bank_transfer")
# Card details given over the telephone, keyed by staff on GOV.UK Pay's page (MOTO).
TELEPHONE_CARD = "telephone_card"
MAX_LINES = 10
SORT_CODE = re.compile(r"^\d{6}$")
ACCOUNT_NUMBER = re.compile(r"^\d{6,8}$")
CHEQUE_NUMBER = re.compile(r"^\d{6}$")


class StaffPayment(BaseModel):
    id = BigAutoField()
    reference = CharField(max_length=20, unique=True)  # also each entry's group_reference
    submission_key = CharField(max_length=120, unique=True)
    method = ForeignKeyField(MethodOfPayment, on_delete="RESTRICT")
    office = ForeignKeyField(Office, null=True, on_delete="RESTRICT")
    user = ForeignKeyField(User, on_delete="RESTRICT")
    payer_name = CharField(max_length=200, default="")
    payer_email = CharField(max_length=320, default="")
    payer_address = TextField(default="")
    cheque_number = CharField(max_length=6, default="")
    sort_code = CharField(max_length=6, default="")
    account_number = CharField(max_length=8, default="")
    drawer = CharField(max_length=200, default="")
    created_at = DateTimeField(default=utcnow)

    @property
    def sort_code_display(self) -> str:
        s = self.sort_code
        return f"{s[:2]}-{s[2:4]}-{s[4:]}" if len(s) == 6 else s

    def entries(self):
        return (
            ledger.LedgerEntry.select()
            .where(ledger.LedgerEntry.group_reference == self.reference)
            .order_by(ledger.LedgerEntry.id)
        )


@dataclass
class StaffLine:
    fund: Fund
    reference: str
    amount_pence: int
    narrative: str = ""


@dataclass
class ChequeDetails:
    number: str
    sort_code: str
    account_number: str
    drawer: str


class StaffPaymentInvalid(DomainError):
    """What is wrong, by form field name ("lines-0-reference", "sort_code" …)."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(next(iter(errors.values())), next(iter(errors)))
        self.errors = errors


def staff_methods() -> list[MethodOfPayment]:
    return list(
        MethodOfPayment.select()
        .where(
            (MethodOfPayment.enabled == True)  # noqa: E712
            & (MethodOfPayment.staff_can_use == True)  # noqa: E712
            & MethodOfPayment.channel.in_((*STAFF_CHANNELS, TELEPHONE_CARD))
        )
        .order_by(MethodOfPayment.name)
    )


def digits(value: str) -> str:
    return re.sub(r"[\s-]", "", value or "")


def check_cheque(cheque: ChequeDetails | None) -> dict[str, str]:
    errors: dict[str, str] = {}
    if cheque is None:
        return {"cheque_number": "Enter the cheque number"}
    if not CHEQUE_NUMBER.match(digits(cheque.number)):
        errors["cheque_number"] = "Enter the cheque number: 6 digits, like 000123"
    if not SORT_CODE.match(digits(cheque.sort_code)):
        errors["sort_code"] = "Enter a valid sort code like 309430"
    if not ACCOUNT_NUMBER.match(digits(cheque.account_number)):
        errors["account_number"] = "Enter a valid account number like 00733445"
    if not (cheque.drawer or "").strip():
        errors["drawer"] = "Enter the name of the account holder on the cheque"
    return errors


def check_lines(
    lines: list[StaffLine], *, method: MethodOfPayment, actor: User, stop_override=None
) -> tuple[list, dict]:
    """Every line's validation result, and errors by field name ("lines-<n>-reference" …)."""
    errors: dict[str, str] = {}
    results = []
    visible = visible_fund_ids(actor)
    seen: set[tuple[int, str]] = set()
    if not lines:
        errors["lines-0-fund"] = "Enter at least one payment: the fund, reference and amount"
    if len(lines) > MAX_LINES:
        errors["lines-0-fund"] = f"A payment can have up to {MAX_LINES} lines"
    for n, line in enumerate(lines):
        if line.fund.id not in visible:
            errors[f"lines-{n}-fund"] = f"Line {n + 1}: you cannot take payments for {line.fund.name}"
            results.append(None)
            continue
        result = validate_reference(
            line.fund, line.reference, line.amount_pence, channel="staff", method=method, stop_override=stop_override
        )
        results.append(result)
        for field, message in result.errors.items():
            errors.setdefault(f"lines-{n}-{'amount' if field == 'amount' else 'reference'}", f"Line {n + 1}: {message}")
        key = (line.fund.id, result.reference)
        if result.valid and key in seen:
            errors[f"lines-{n}-reference"] = f"Line {n + 1}: {result.reference} is already in this payment"
        seen.add(key)
    return results, errors


def take_staff_payment(
    lines: list[StaffLine],
    *,
    method: MethodOfPayment,
    actor: User,
    office: Office | None,
    submission_key: str,
    payer_name: str = "",
    payer_email: str = "",
    payer_address: str = "",
    cheque: ChequeDetails | None = None,
    ip_address: str = "",
) -> tuple[StaffPayment, bool]:
    """Record a staff payment: all its lines in the ledger, or nothing. Returns (payment, created).

    The same `submission_key` (the form's one-time key) returns the first payment: pressing
    the button twice, or two tabs, never takes the money twice.
    """
    existing = StaffPayment.get_or_none(StaffPayment.submission_key == submission_key)
    if existing is not None:
        return existing, False
    if method is None or not method.enabled or not method.staff_can_use or method.channel not in STAFF_CHANNELS:
        raise StaffPaymentInvalid({"method": "Select how the payer paid"})
    results, errors = check_lines(lines, method=method, actor=actor)
    if method.channel == "cheque":
        errors.update(check_cheque(cheque))
    if errors:
        raise StaffPaymentInvalid(errors)
    reference = f"STF-{secrets.token_hex(4).upper()}"
    try:
        with ledger.write_transaction():
            payment = StaffPayment.create(
                reference=reference,
                submission_key=submission_key,
                method=method,
                office=office,
                user=actor,
                payer_name=payer_name.strip()[:200],
                payer_email=payer_email.strip()[:320],
                payer_address=payer_address.strip(),
                cheque_number=digits(cheque.number) if cheque and method.channel == "cheque" else "",
                sort_code=digits(cheque.sort_code) if cheque and method.channel == "cheque" else "",
                account_number=digits(cheque.account_number) if cheque and method.channel == "cheque" else "",
                drawer=cheque.drawer.strip()[:200] if cheque and method.channel == "cheque" else "",
            )
            ledger.post_many(
                [
                    ledger.PostingRequest(
                        idempotency_key=f"staff:{reference}:{n}",
                        fund=line.fund,
                        account_reference=result.reference,
                        amount_pence=line.amount_pence,
                        method=method,
                        source="staff_payment",
                        office=office,
                        user=actor,
                        narrative=line.narrative.strip()[: ledger.MAX_NARRATIVE_LENGTH],
                        payer_name=payment.payer_name,
                        payer_email=payment.payer_email,
                        payer_address=payment.payer_address,
                        source_reference=reference,
                    )
                    for n, (line, result) in enumerate(zip(lines, results, strict=True), start=1)
                ],
                group_reference=reference,
            )
            audit.record(
                "payment.staff",
                actor=actor,
                object_type="staff_payment",
                object_id=reference,
                summary=f"Took a {method.name.lower()} payment of {format_pence(sum(x.amount_pence for x in lines))} "
                f"in {len(lines)} line{'s' if len(lines) > 1 else ''}",
                ip_address=ip_address,
            )
    except IntegrityError:
        existing = StaffPayment.get_or_none(StaffPayment.submission_key == submission_key)
        if existing is None:
            raise
        return existing, False
    return payment, True


def start_telephone_payment(
    lines: list[StaffLine],
    *,
    method: MethodOfPayment,
    actor: User,
    office: Office | None,
    submission_key: str,
    payer_name: str = "",
    payer_email: str = "",
    payer_address: str = "",
    ip_address: str = "",
):
    """Record a telephone card payment, to be keyed on GOV.UK Pay's page. Returns the Payment.

    Nothing reaches the ledger here: the payment's entries are posted, with this member of
    staff and office, when GOV.UK Pay reports it succeeded. The same `submission_key` returns
    the first payment (a second press of the button never makes a second payment).
    """
    from app.domain import payments

    if method is None or not method.enabled or not method.staff_can_use or method.channel != TELEPHONE_CARD:
        raise StaffPaymentInvalid({"method": "Select how the payer paid"})
    existing = payments.Payment.get_or_none(payments.Payment.submission_key == submission_key)
    if existing is not None:
        return existing
    results, errors = check_lines(lines, method=method, actor=actor)
    accounts = {line.fund.pay_account or "default" for line in lines}
    if len(accounts) > 1:
        errors.setdefault("lines-0-fund", "Take a separate telephone payment for each GOV.UK Pay account's funds")
    if errors:
        raise StaffPaymentInvalid(errors)
    basket = [
        payments.BasketLine(line.fund, result.reference, line.amount_pence)
        for line, result in zip(lines, results, strict=True)
    ]
    try:
        payment, created = payments.create_payment(
            basket,
            submission_key=submission_key,
            method=method,
            channel="telephone",
            email=payer_email,
            payer_name=payer_name,
            payer_address=payer_address,
            validation_channel="staff",
            taken_by=actor,
            office=office,
        )
    except payments.BasketInvalid as error:
        raise StaffPaymentInvalid({"lines-0-reference": error.message}) from error
    if created:
        audit.record(
            "payment.telephone",
            actor=actor,
            object_type="payment",
            object_id=payment.reference,
            summary=f"Started a telephone card payment of {format_pence(payment.amount_pence)}",
            ip_address=ip_address,
        )
    return payment


def by_reference(reference: str) -> StaffPayment | None:
    return StaffPayment.get_or_none(StaffPayment.reference == (reference or "").strip().upper())
