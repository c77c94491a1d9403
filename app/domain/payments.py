"""Card payments through GOV.UK Pay: baskets, attempts, outcomes, and recovery.

A **payment** is one attempt to pay for a basket of one or more items (fund + reference +
amount) with one GOV.UK Pay payment for the total. Money must appear in the ledger exactly
once however the outcome reaches us, so there is one way in for every path:

- the citizen's return (`GET /pay/return/<token>`),
- a signed webhook from GOV.UK Pay,
- the recovery job, which re-checks every unfinished payment with backoff,
- a member of staff pressing "Check status now".

Each of them calls `refresh_payment()`, which GETs the payment from GOV.UK Pay (never
trusting a webhook body or a search) and hands the state to `apply_remote_state()`. That
function finishes a payment at most once: a conditional UPDATE (`... WHERE finished_at IS
NULL`) under a row lock picks one winner, and only the winner posts the items and queues
the receipt. The ledger postings are also idempotent on `govuk-pay:<reference>:<item>`, so
even a bug here could not post twice.

Statuses (ours, for people): created → in progress → paid | failed | cancelled | expired.
GOV.UK Pay's own status and code are kept beside them, with a history row per check.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from peewee import (
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    IntegrityError,
    TextField,
)

from app.db import BaseModel, database, is_postgres, utcnow
from app.domain import ledger
from app.domain.council import CouncilSettings
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.methods import MethodOfPayment
from app.domain.money import format_pence
from app.domain.offices import Office
from app.domain.outbox import OutboxMessage, store_email
from app.domain.references import validate_reference
from app.domain.users import User
from app.integrations.govuk_pay.client import PayBadRequest, PayError, PayNotFound

log = logging.getLogger(__name__)

STATUSES = {
    "created": "Not started",
    "in_progress": "In progress",
    "succeeded": "Paid",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "expired": "Expired",
}
FINISHED = frozenset({"succeeded", "failed", "cancelled", "expired"})
TAG_COLOURS = {
    "created": "grey",
    "in_progress": "blue",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "expired": "orange",
}
SOURCES = {
    "citizen": "Citizen",
    "return": "Citizen returned from GOV.UK Pay",
    "webhook": "GOV.UK Pay webhook",
    "job": "Status check job",
    "staff": "Staff check",
    "api": "API",
}
CHANNELS = {
    "web": "Online (citizen)",
    "api": "Online (another council system)",
    "telephone": "Telephone (card details keyed by staff)",
}

# GOV.UK Pay's hard limit on one payment (spec §2).
MAX_PAYMENT_PENCE = 10_000_000
DEFAULT_MAX_ITEMS = 10
# GOV.UK Pay expires an unfinished payment 90 minutes after creation (spec §4).
PAY_EXPIRY = dt.timedelta(minutes=90)
MAX_DESCRIPTION = 255
MAX_EMAIL = 254


class Payment(BaseModel):
    id = BigAutoField()
    # Ours: sent to GOV.UK Pay as `reference`, quoted to citizens, used in ledger keys.
    reference = CharField(max_length=20, unique=True)
    # What made this attempt: a submitted basket, a "try again", or an API caller's key.
    # Unique, so the same submission (double click, back button, retried API call) finds it.
    submission_key = CharField(max_length=120, unique=True)
    channel = CharField(max_length=10, default="web")
    pay_account = CharField(max_length=40)
    method = ForeignKeyField(MethodOfPayment, on_delete="RESTRICT")
    status = CharField(max_length=20, default="created", index=True)
    amount_pence = BigIntegerField()
    description = CharField(max_length=MAX_DESCRIPTION)
    email = CharField(max_length=320, default="")
    payer_name = CharField(max_length=200, default="")
    payer_address = TextField(default="")
    language = CharField(max_length=2, default="en")
    # Unguessable, per attempt, the only thing in our return URL (spec §12).
    return_token = CharField(max_length=64, unique=True)
    provider_payment_id = CharField(max_length=255, null=True, unique=True)
    provider_status = CharField(max_length=20, default="")
    provider_code = CharField(max_length=10, default="")
    provider_message = CharField(max_length=255, default="")
    provider_id = CharField(max_length=255, default="")
    card_brand = CharField(max_length=40, default="")
    card_last_digits = CharField(max_length=4, default="")
    card_first_digits = CharField(max_length=6, default="")
    cardholder_name = CharField(max_length=255, default="")
    fee_pence = BigIntegerField(null=True)
    captured_date = DateField(null=True)
    settled_date = DateField(null=True)
    created_at = DateTimeField(default=utcnow, index=True)
    updated_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)
    # The recovery job's schedule: unfinished payments are checked when this passes.
    next_check_at = DateTimeField(null=True, index=True)
    checks = IntegerField(default=0)
    last_error = TextField(default="")
    # For baskets made through the API: where to send the citizen afterwards.
    return_url = TextField(default="")
    cancel_url = TextField(default="")
    api_key_id = BigIntegerField(null=True)
    retry_of = ForeignKeyField("self", null=True, backref="retries", on_delete="RESTRICT")
    receipt_message_id = BigIntegerField(null=True)
    # Telephone payments: keyed by a member of staff on GOV.UK Pay's page (MOTO), at an office.
    moto = BooleanField(default=False)
    taken_by = ForeignKeyField(User, null=True, backref="+", on_delete="RESTRICT")
    office = ForeignKeyField(Office, null=True, backref="+", on_delete="RESTRICT")

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def status_name(self) -> str:
        return STATUSES.get(self.status, self.status)

    @property
    def tag_colour(self) -> str:
        return TAG_COLOURS.get(self.status, "grey")

    @property
    def channel_name(self) -> str:
        return CHANNELS.get(self.channel, self.channel)

    @property
    def outcome(self) -> str:
        """What happened, for the citizen's page: paid, declined, expired, cancelled, error, in_progress."""
        if self.status == "succeeded":
            return "paid"
        if self.status == "expired":
            return "expired"
        if self.status == "cancelled":
            return "cancelled_by_service" if self.provider_code == "P0040" else "cancelled"
        if self.status == "failed":
            return "declined" if self.provider_code == "P0010" else "error"
        return "in_progress"

    def ordered_items(self):
        return self.items.order_by(PaymentItem.position)


class PaymentItem(BaseModel):
    id = BigAutoField()
    payment = ForeignKeyField(Payment, backref="items", on_delete="RESTRICT")
    position = IntegerField()
    fund = ForeignKeyField(Fund, on_delete="RESTRICT")
    account_reference = CharField(max_length=40)
    amount_pence = BigIntegerField()
    ledger_entry = ForeignKeyField(ledger.LedgerEntry, null=True, on_delete="RESTRICT")

    class Meta:
        indexes = ((("payment", "position"), True),)


class PaymentEvent(BaseModel):
    """One row per status check or change: the history staff see."""

    id = BigAutoField()
    payment = ForeignKeyField(Payment, backref="events", on_delete="RESTRICT")
    occurred_at = DateTimeField(default=utcnow)
    source = CharField(max_length=20)
    status = CharField(max_length=20)
    provider_status = CharField(max_length=20, default="")
    provider_code = CharField(max_length=10, default="")
    note = TextField(default="")

    @property
    def source_name(self) -> str:
        return SOURCES.get(self.source, self.source)

    @property
    def status_name(self) -> str:
        return STATUSES.get(self.status, self.status)


class WebhookMessage(BaseModel):
    """Each GOV.UK Pay webhook message, once: deliveries are at-least-once and unordered."""

    id = BigAutoField()
    message_id = CharField(max_length=255, unique=True)
    pay_account = CharField(max_length=40)
    event_type = CharField(max_length=60, default="")
    resource_id = CharField(max_length=255, default="", index=True)
    received_at = DateTimeField(default=utcnow)
    processed_at = DateTimeField(null=True)
    outcome = CharField(max_length=200, default="")


# ---------------------------------------------------------------------------
# Baskets
# ---------------------------------------------------------------------------


@dataclass
class BasketLine:
    fund: Fund
    reference: str
    amount_pence: int


@dataclass
class LineCheck:
    reference: str  # normalised
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.errors


class BasketInvalid(DomainError):
    """The basket cannot be paid as it is: `problems` lists what to fix, item by item."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message, None)
        self.problems = problems or [message]


def online_method() -> MethodOfPayment | None:
    """The method citizens' card payments are recorded under (the first enabled online card method)."""
    return (
        MethodOfPayment.select()
        .where((MethodOfPayment.channel == "online_card") & (MethodOfPayment.enabled == True))  # noqa: E712
        .order_by(MethodOfPayment.id)
        .first()
    )


def citizen_funds() -> list[Fund]:
    return list(
        Fund.select()
        .where((Fund.enabled == True) & (Fund.shown_to_citizens == True) & (Fund.is_suspense == False))  # noqa: E712
        .order_by(Fund.name)
    )


def max_basket_items() -> int:
    return CouncilSettings.current().basket_max_items or DEFAULT_MAX_ITEMS


def check_line(
    fund: Fund,
    reference: str,
    amount_pence: int | None,
    *,
    method: MethodOfPayment | None,
    others: Iterable[BasketLine] = (),
    channel: str = "public",
) -> LineCheck:
    """Every check one basket line must pass, with messages for the field that failed.

    The fund's whole reference rule (format, check digit, account, stop) and the fund and
    method limits, then the basket's own rules: the same reference for the same fund only
    once, and every item taken by the same GOV.UK Pay account (one payment goes to one
    account, so mixing would charge one account for another's money).
    """
    result = validate_reference(fund, reference, amount_pence, channel=channel, method=method)
    errors = dict(result.errors)
    others = list(others)
    if "fund" not in errors and others and others[0].fund.pay_account != fund.pay_account:
        errors["fund"] = (
            f"{fund.name} has to be paid separately from {others[0].fund.name}. "
            "Pay for what is in your basket first, then make another payment"
        )
    if "reference" not in errors and result.reference:
        for line in others:
            if line.fund.id == fund.id and line.reference == result.reference:
                errors["reference"] = (
                    f"You have already added {fund.name.lower()} {fund.reference_label.lower()} "
                    f"{result.reference} to this payment"
                )
                break
    return LineCheck(result.reference, errors)


def check_basket(lines: list[BasketLine], *, method: MethodOfPayment | None, channel: str = "public") -> None:
    """Re-check the whole basket at checkout (spec: validate on every path, again at checkout)."""
    if not lines:
        raise BasketInvalid("Add at least one payment")
    limit = max_basket_items()
    problems: list[str] = []
    if len(lines) > limit:
        problems.append(f"You can pay for up to {limit} things at once")
    if method is None:
        problems.append("Online card payments are not available at the moment")
    for index, line in enumerate(lines):
        check = check_line(
            line.fund, line.reference, line.amount_pence, method=method, others=lines[:index], channel=channel
        )
        for message in check.errors.values():
            problems.append(f"Payment {index + 1} ({line.fund.name}): {message}")
    total = sum(line.amount_pence for line in lines)
    if total > MAX_PAYMENT_PENCE:
        problems.append(f"The total must be {format_pence(MAX_PAYMENT_PENCE)} or less. Make separate payments")
    if problems:
        raise BasketInvalid(problems[0], problems)


def describe(lines: list[BasketLine]) -> str:
    """What the payer sees on GOV.UK Pay's page: the first item, and how many more."""
    first = f"{lines[0].fund.name} {lines[0].reference}"
    if len(lines) > 1:
        more = len(lines) - 1
        first += f" and {more} other payment{'s' if more > 1 else ''}"
    # GOV.UK Pay's firewall refuses < > " \ and | in descriptions (spec §1).
    cleaned = "".join(ch for ch in first if ch not in '<>"\\|')
    return cleaned[:MAX_DESCRIPTION]


_REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O or U


def _new_reference() -> str:
    body = "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(8))
    return f"PAY-{body[:4]}-{body[4:]}"


def create_payment(
    lines: list[BasketLine],
    *,
    submission_key: str,
    method: MethodOfPayment | None,
    channel: str = "web",
    email: str = "",
    payer_name: str = "",
    payer_address: str = "",
    language: str = "en",
    return_url: str = "",
    cancel_url: str = "",
    api_key_id: int | None = None,
    retry_of: Payment | None = None,
    validation_channel: str = "public",
    taken_by: User | None = None,
    office: Office | None = None,
) -> tuple[Payment, bool]:
    """Record a payment for a basket (not yet at GOV.UK Pay). Returns (payment, created).

    The same `submission_key` always returns the first payment made with it: a second
    press of "Pay", the back button or a retried API call never makes a second payment.
    """
    existing = Payment.get_or_none(Payment.submission_key == submission_key)
    if existing is not None:
        return existing, False
    check_basket(lines, method=method, channel=validation_channel)
    email = (email or "").strip()
    if len(email) > MAX_EMAIL:
        raise DomainError("Email address must be 254 characters or fewer", "email")
    try:
        with database.atomic():
            payment = Payment.create(
                reference=_new_reference(),
                submission_key=submission_key,
                channel=channel,
                pay_account=lines[0].fund.pay_account or "default",
                method=method,
                amount_pence=sum(line.amount_pence for line in lines),
                description=describe(lines),
                email=email,
                payer_name=(payer_name or "")[:200],
                payer_address=payer_address or "",
                language=language,
                return_token=secrets.token_urlsafe(32),
                return_url=return_url,
                cancel_url=cancel_url,
                api_key_id=api_key_id,
                retry_of=retry_of,
                moto=channel == "telephone",
                taken_by=taken_by,
                office=office,
            )
            for position, line in enumerate(lines, start=1):
                PaymentItem.create(
                    payment=payment,
                    position=position,
                    fund=line.fund,
                    account_reference=line.reference,
                    amount_pence=line.amount_pence,
                )
            source = {"web": "citizen", "telephone": "staff"}.get(channel, "api")
            _event(payment, source, note="Basket submitted")
    except IntegrityError:
        # A racing request with the same submission key got there first: use its payment.
        existing = Payment.get_or_none(Payment.submission_key == submission_key)
        if existing is None:
            raise
        return existing, False
    return payment, True


def lines_of(payment: Payment) -> list[BasketLine]:
    return [BasketLine(item.fund, item.account_reference, item.amount_pence) for item in payment.ordered_items()]


def retry_payment(payment: Payment) -> tuple[Payment, bool]:
    """A new attempt for the same basket after a failure (GOV.UK Pay cannot retry a payment)."""
    if payment.status not in {"failed", "cancelled", "expired"}:
        raise DomainError("This payment cannot be tried again")
    return create_payment(
        lines_of(payment),
        submission_key=f"retry:{payment.reference}",
        method=payment.method if payment.method.enabled else online_method(),
        channel=payment.channel,
        email=payment.email,
        payer_name=payment.payer_name,
        payer_address=payment.payer_address,
        language=payment.language,
        return_url=payment.return_url,
        cancel_url=payment.cancel_url,
        api_key_id=payment.api_key_id,
        retry_of=payment,
    )


# ---------------------------------------------------------------------------
# Talking to GOV.UK Pay
# ---------------------------------------------------------------------------


class PaymentServiceUnavailable(DomainError):
    """GOV.UK Pay could not be reached or refused the request; no money was taken."""


class PaymentRefused(PaymentServiceUnavailable):
    """GOV.UK Pay refused to create the payment (a 4xx): asking again cannot help; the payment is failed."""


def _event(payment: Payment, source: str, *, remote=None, note: str = "") -> PaymentEvent:
    state = getattr(remote, "state", None)
    return PaymentEvent.create(
        payment=payment,
        source=source,
        status=payment.status,
        provider_status=(state.status if state else payment.provider_status) or "",
        provider_code=(state.code if state else "") or "",
        note=note[:2000],
    )


def _metadata(payment: Payment) -> dict:
    items = list(payment.ordered_items())
    funds = ",".join(dict.fromkeys(item.fund.code for item in items))
    ledger_codes = ",".join(dict.fromkeys(item.fund.ledger_code for item in items if item.fund.ledger_code))
    data = {"ims_reference": payment.reference, "fund_codes": funds[:100], "items": len(items)}
    if ledger_codes:
        data["ledger_codes"] = ledger_codes[:100]
    if payment.channel in ("api", "telephone"):
        data["channel"] = payment.channel
    return data


def _billing_address(payment: Payment) -> dict | None:
    lines = [line.strip() for line in payment.payer_address.splitlines() if line.strip()]
    if not lines:
        return None
    # Stored as: line 1, line 2 (optional), town, postcode: the last two are town and postcode.
    postcode = lines[-1] if len(lines) >= 2 else ""
    town = lines[-2] if len(lines) >= 3 else ""
    rest = lines[: len(lines) - (2 if len(lines) >= 3 else 1)]
    address = {"line1": rest[0] if rest else "", "country": "GB"}
    if len(rest) > 1:
        address["line2"] = ", ".join(rest[1:])[:255]
    if town:
        address["city"] = town[:255]
    if postcode:
        address["postcode"] = postcode[:25]
    return address


def start_payment(payment: Payment, client, return_url: str) -> str:
    """Create (or find) the payment at GOV.UK Pay and return the URL to send the payer to.

    Creates carry our reference as the Idempotency-Key, so asking again after a timeout
    returns the same GOV.UK Pay payment rather than making a second one. If the payment
    already exists there and can still be paid, a fresh `next_url` is fetched (each is
    single-use); if it has finished, `PaymentServiceUnavailable` is not raised — the caller
    shows the outcome instead (this returns "").
    """
    if payment.finished:
        return ""
    if payment.provider_payment_id:
        try:
            remote = client.get_payment(payment.provider_payment_id)
        except PayError as error:
            _note_error(payment, "citizen", error)
            raise PaymentServiceUnavailable(_unavailable_message()) from error
        apply_remote_state(payment, remote, source="citizen")
        payment = Payment.get_by_id(payment.id)
        return "" if payment.finished else (remote.next_url or "")
    try:
        remote = client.create_payment(
            amount_pence=payment.amount_pence,
            reference=payment.reference,
            description=payment.description,
            return_url=return_url,
            idempotency_key=payment.reference,
            email=payment.email or None,
            metadata=_metadata(payment),
            language=payment.language,
            cardholder_name=payment.payer_name or None,
            billing_address=_billing_address(payment),
            moto=payment.moto,
        )
    except PayBadRequest as error:
        # Our request was refused (e.g. an amount the card processor will not take).
        # Nothing can make it succeed, so finish it now rather than retrying for ever.
        log.error("GOV.UK Pay refused to create payment %s: %s %s", payment.reference, error.code, error.description)
        with database.atomic():
            Payment.update(
                status="failed",
                provider_code=error.code or "",
                provider_message=(error.description or "")[:255],
                finished_at=utcnow(),
                updated_at=utcnow(),
                last_error=f"GOV.UK Pay refused the payment: {error.code} {error.description}",
            ).where((Payment.id == payment.id) & Payment.finished_at.is_null()).execute()
            _event(Payment.get_by_id(payment.id), "citizen", note=f"GOV.UK Pay refused the payment ({error.code})")
        raise PaymentRefused(
            "Sorry, we could not start this payment. No money has been taken. Call us to pay instead"
        ) from error
    except PayError as error:
        _note_error(payment, "citizen", error)
        raise PaymentServiceUnavailable(_unavailable_message()) from error
    now = utcnow()
    with database.atomic():
        Payment.update(
            provider_payment_id=remote.payment_id,
            status="in_progress",
            provider_status=remote.state.status,
            updated_at=now,
            next_check_at=now + _check_delay(0),
            last_error="",
        ).where((Payment.id == payment.id) & Payment.finished_at.is_null()).execute()
        payment = Payment.get_by_id(payment.id)
        _event(payment, "citizen", remote=remote, note=f"Created at GOV.UK Pay as {remote.payment_id}")
    return remote.next_url or ""


def _unavailable_message() -> str:
    return "Sorry, the payment service is not available at the moment. No money has been taken. Try again later"


def _note_error(payment: Payment, source: str, error: PayError) -> None:
    """Record a failed call. The payment's status is left alone: an error is not an outcome."""
    now = utcnow()
    text = f"Could not reach GOV.UK Pay: {error.status or 'no response'} {error.code or ''} {error.description}".strip()
    with database.atomic():
        Payment.update(
            last_error=text[:2000],
            checks=Payment.checks + 1,
            updated_at=now,
            next_check_at=now + _check_delay(payment.checks + 1),
        ).where(Payment.id == payment.id).execute()
        _event(payment, source, note=text)


def _check_delay(checks: int) -> dt.timedelta:
    """Backoff for the recovery job: soon at first, then every half hour until finished."""
    schedule = (1, 2, 5, 10, 15, 30)
    return dt.timedelta(minutes=schedule[min(checks, len(schedule) - 1)])


_OUTCOMES = {
    ("success", None): "succeeded",
    ("failed", "P0020"): "expired",
    ("failed", "P0030"): "cancelled",
    ("cancelled", None): "cancelled",
    ("failed", None): "failed",
    ("error", None): "failed",
}


def status_for(remote_status: str, code: str | None) -> str:
    """Our status for GOV.UK Pay's status and code (spec §3, §12)."""
    if remote_status in {"created", "started", "submitted", "capturable"}:
        return "in_progress"
    return _OUTCOMES.get((remote_status, code)) or _OUTCOMES.get((remote_status, None)) or "in_progress"


@dataclass
class Applied:
    payment: Payment
    finished_now: bool = False  # this call finished the payment (and, if paid, posted it)
    receipt: OutboxMessage | None = None


def apply_remote_state(payment: Payment, remote, *, source: str) -> Applied:
    """Bring our payment up to date with GOV.UK Pay's view of it (`remote`, from a GET).

    Safe to call from any number of processes at once: the payment row is locked (SQLite:
    the write lock; PostgreSQL: FOR UPDATE), and only the call that moves it from
    unfinished to finished posts to the ledger and queues the receipt.
    """
    with ledger.write_transaction():
        query = Payment.select().where(Payment.id == payment.id)
        if is_postgres():
            query = query.for_update()
        current = query.get()
        if remote.amount != current.amount_pence or remote.reference != current.reference:
            # Never post money we did not ask for (anchor weakness: callback amount unchecked).
            note = (
                f"GOV.UK Pay reports {format_pence(remote.amount)} for {remote.reference!r}; "
                f"expected {format_pence(current.amount_pence)} for {current.reference!r}. "
                "Not posted: check this payment"
            )
            log.error("Payment %s: %s", current.reference, note)
            Payment.update(last_error=note, updated_at=utcnow()).where(Payment.id == current.id).execute()
            _event(current, source, remote=remote, note=note)
            return Applied(Payment.get_by_id(current.id))
        if current.finished:
            _event(current, source, remote=remote, note="Already finished")
            return Applied(current)

        now = utcnow()
        state = remote.state
        new_status = status_for(state.status, state.code)
        details = _remote_details(remote)
        if new_status not in FINISHED:
            Payment.update(
                status="in_progress",
                provider_status=state.status,
                updated_at=now,
                checks=Payment.checks + 1,
                next_check_at=now + _check_delay(current.checks + 1),
                last_error="",
                **details,
            ).where(Payment.id == current.id).execute()
            current = Payment.get_by_id(current.id)
            _event(current, source, remote=remote)
            return Applied(current)

        won = (
            Payment.update(
                status=new_status,
                provider_status=state.status,
                provider_code=state.code or "",
                provider_message=(state.message or "")[:255],
                finished_at=now,
                updated_at=now,
                next_check_at=None,
                checks=Payment.checks + 1,
                last_error="",
                **details,
            )
            .where((Payment.id == current.id) & Payment.finished_at.is_null())
            .execute()
        )
        current = Payment.get_by_id(current.id)
        if not won:
            _event(current, source, remote=remote, note="Already finished")
            return Applied(current)
        receipt = None
        if new_status == "succeeded":
            _post_items(current, remote)
            receipt = _store_receipt(current)
        _event(current, source, remote=remote, note=_outcome_note(current))
        return Applied(current, True, receipt)


def _remote_details(remote) -> dict:
    details: dict = {}
    card = remote.card_details
    if card is not None:
        details.update(
            card_brand=(card.card_brand or "")[:40],
            card_last_digits=(card.last_digits_card_number or "")[:4],
            card_first_digits=(card.first_digits_card_number or "")[:6],
            cardholder_name=(card.cardholder_name or "")[:255],
        )
    if remote.provider_id:
        details["provider_id"] = remote.provider_id[:255]
    if remote.fee is not None:
        details["fee_pence"] = remote.fee
    settlement = remote.settlement_summary
    if settlement is not None:
        if settlement.captured_date:
            details["captured_date"] = settlement.captured_date
        if settlement.settled_date:
            details["settled_date"] = settlement.settled_date
    return details


def _outcome_note(payment: Payment) -> str:
    return {
        "paid": "Paid",
        "declined": "Card declined",
        "expired": "Expired (not completed within 90 minutes)",
        "cancelled": "Cancelled by the payer",
        "cancelled_by_service": "Cancelled by the council",
        "error": "GOV.UK Pay reported a technical error; no money was taken",
    }.get(payment.outcome, payment.status_name)


def _post_items(payment: Payment, remote) -> None:
    settlement = remote.settlement_summary
    taken_at = getattr(settlement, "capture_submit_time", None) or utcnow()
    for item in payment.ordered_items():
        result = ledger.post(
            ledger.PostingRequest(
                idempotency_key=f"govuk-pay:{payment.reference}:{item.position}",
                fund=item.fund,
                account_reference=item.account_reference,
                amount_pence=item.amount_pence,
                method=payment.method,
                source="payment",
                taken_at=taken_at,
                narrative=f"GOV.UK Pay {payment.provider_payment_id}"[: ledger.MAX_NARRATIVE_LENGTH],
                payer_name=(payment.cardholder_name or payment.payer_name)[: ledger.MAX_PAYER_NAME_LENGTH],
                payer_email=payment.email,
                payer_address=payment.payer_address,
                source_reference=payment.reference,
                group_reference=payment.reference,
                money_already_taken=True,
                user=payment.taken_by,
                office=payment.office,
            )
        )
        if item.ledger_entry_id != result.entry.id:
            PaymentItem.update(ledger_entry=result.entry).where(PaymentItem.id == item.id).execute()


def receipt_text(payment: Payment) -> tuple[str, str]:
    council = CouncilSettings.current()
    lines = [
        f"Thank you for your payment to {council.council_name}.",
        "",
        f"Payment reference: {payment.reference}",
        f"Total paid: {format_pence(payment.amount_pence)}",
        "",
    ]
    for item in payment.ordered_items():
        receipt = item.ledger_entry.receipt_reference if item.ledger_entry_id else ""
        lines.append(
            f"- {item.fund.name}, {item.fund.reference_label.lower()} {item.account_reference}: "
            f"{format_pence(item.amount_pence)} (receipt {receipt})"
        )
    if payment.card_last_digits:
        lines += ["", f"Paid by card ending {payment.card_last_digits}."]
    lines += ["", "Keep this e-mail as your receipt."]
    if council.contact_phone or council.contact_email:
        contact = " or ".join(x for x in (council.contact_phone, council.contact_email) if x)
        lines.append(f"If you have a question about this payment, contact us on {contact}.")
    return f"Your payment to {council.council_name}: {payment.reference}", "\n".join(lines)


def _store_receipt(payment: Payment) -> OutboxMessage | None:
    if not payment.email:
        return None
    # Stored only: the caller (web request or job) queues delivery through Notify after commit.
    subject, body = receipt_text(payment)
    message = store_email(to=payment.email, subject=subject, body=body, purpose="receipt")
    Payment.update(receipt_message_id=message.id).where(Payment.id == payment.id).execute()
    return message


def refresh_payment(payment: Payment, client, *, source: str) -> Applied:
    """Ask GOV.UK Pay for the payment's state and apply it. Errors are recorded, never outcomes."""
    if payment.finished:
        return Applied(payment)
    if not payment.provider_payment_id:
        return _settle_never_started(payment, source)
    try:
        remote = client.get_payment(payment.provider_payment_id)
    except PayNotFound as error:
        _note_error(payment, source, error)
        return Applied(Payment.get_by_id(payment.id))
    except PayError as error:
        _note_error(payment, source, error)
        return Applied(Payment.get_by_id(payment.id))
    return apply_remote_state(payment, remote, source=source)


def _settle_never_started(payment: Payment, source: str) -> Applied:
    """A payment we never managed to create at GOV.UK Pay: the payer never saw a card page.

    Once GOV.UK Pay would have expired it anyway, it is finished as expired; before that it
    stays, because the citizen may still press "Pay" again (same submission, same key).
    """
    if utcnow() - payment.created_at < PAY_EXPIRY:
        Payment.update(next_check_at=utcnow() + _check_delay(5)).where(Payment.id == payment.id).execute()
        return Applied(Payment.get_by_id(payment.id))
    with database.atomic():
        won = (
            Payment.update(status="expired", finished_at=utcnow(), updated_at=utcnow(), next_check_at=None)
            .where((Payment.id == payment.id) & Payment.finished_at.is_null())
            .execute()
        )
        current = Payment.get_by_id(payment.id)
        if won:
            _event(current, source, note="Never reached GOV.UK Pay; no money was taken")
    return Applied(current, bool(won))


def due_for_check(now: dt.datetime | None = None, limit: int = 500):
    now = now or utcnow()
    return (
        Payment.select()
        .where(Payment.finished_at.is_null() & (Payment.next_check_at.is_null() | (Payment.next_check_at <= now)))
        .order_by(Payment.next_check_at.asc(nulls="first"), Payment.id)
        .limit(limit)
    )


@dataclass
class RecoveryReport:
    checked: int = 0
    finished: int = 0
    errors: int = 0


def recover_payments(
    client_for: Callable[[str], object],
    *,
    now: dt.datetime | None = None,
    limit: int = 500,
    on_receipt: Callable[[OutboxMessage], None] | None = None,
) -> RecoveryReport:
    """Re-check every unfinished payment that is due (the citizen may never come back).

    `on_receipt` is called with each receipt stored, after its payment's transaction, so the
    caller can hand it to the e-mail queue.
    """
    report = RecoveryReport()
    for payment in list(due_for_check(now, limit)):
        report.checked += 1
        try:
            client = client_for(payment.pay_account)
        except KeyError:
            log.error("Payment %s: no API key for GOV.UK Pay account %r", payment.reference, payment.pay_account)
            report.errors += 1
            continue
        try:
            applied = refresh_payment(payment, client, source="job")
        except Exception:  # one bad payment must not stop the rest being checked
            log.exception("Recovery of payment %s failed", payment.reference)
            report.errors += 1
            continue
        if applied.finished_now:
            report.finished += 1
        if applied.receipt is not None and on_receipt is not None:
            on_receipt(applied.receipt)
    return report


# ---------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------


class WebhookRejected(DomainError):
    pass


def receive_webhook(body: bytes, account_name: str) -> tuple[WebhookMessage, bool]:
    """Store a verified webhook message once. Returns (message, new). Verify the signature first."""
    import json

    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise WebhookRejected("The body is not JSON") from error
    if not isinstance(data, dict):
        raise WebhookRejected("The body is not a JSON object")
    message_id = data.get("webhook_message_id") or data.get("id")
    if not isinstance(message_id, str) or not message_id or len(message_id) > 255:
        raise WebhookRejected("The message has no webhook_message_id")
    resource_id = data.get("resource_id") or ""
    event_type = data.get("event_type") or ""
    existing = WebhookMessage.get_or_none(WebhookMessage.message_id == message_id)
    if existing is not None:
        return existing, False
    try:
        with database.atomic():
            message = WebhookMessage.create(
                message_id=message_id,
                pay_account=account_name,
                event_type=str(event_type)[:60],
                resource_id=str(resource_id)[:255],
            )
    except IntegrityError:
        return WebhookMessage.get(WebhookMessage.message_id == message_id), False
    return message, True


def process_webhook(
    message: WebhookMessage,
    client_for: Callable[[str], object],
    on_receipt: Callable[[OutboxMessage], None] | None = None,
) -> str:
    """Apply a webhook by re-reading the payment from GOV.UK Pay (never its body: it may be stale)."""
    if message.processed_at is not None:
        return message.outcome
    payment = Payment.get_or_none(
        (Payment.provider_payment_id == message.resource_id) & (Payment.pay_account == message.pay_account)
    )
    if payment is None:
        outcome = "Not a payment made by this service"
    elif payment.finished:
        outcome = f"Payment {payment.reference} already {payment.status_name.lower()}"
    else:
        applied = refresh_payment(payment, client_for(payment.pay_account), source="webhook")
        if applied.receipt is not None and on_receipt is not None:
            on_receipt(applied.receipt)
        outcome = f"Payment {payment.reference}: {applied.payment.status_name.lower()}"
    WebhookMessage.update(processed_at=utcnow(), outcome=outcome[:200]).where(WebhookMessage.id == message.id).execute()
    return outcome


# ---------------------------------------------------------------------------
# Looking payments up
# ---------------------------------------------------------------------------


def by_return_token(token: str) -> Payment | None:
    if not isinstance(token, str) or not (20 <= len(token) <= 64):
        return None
    return Payment.get_or_none(Payment.return_token == token)


def by_reference(reference: str) -> Payment | None:
    text = (reference or "").strip().upper()
    if not text.startswith("PAY-") and len(text) == 8:
        text = f"PAY-{text[:4]}-{text[4:]}"
    return Payment.get_or_none(Payment.reference == text)
