"""Refunds: full or partial, with a reason, approved by a second person above a limit.

A refund is asked for against one ledger entry. What can still be refunded is the entry's
amount less everything already taken off it (refunds, reversals and journals that correct
it) and less refunds asked for but not yet done, so two refunds can never together exceed
the payment. Refunds above the council's approval limit wait for a senior finance officer
who is not the person who asked.

Once approved (or at once, under the limit):
- a card payment taken through GOV.UK Pay is refunded through GOV.UK Pay's refunds API
  (with `refund_amount_available`, so a refund made elsewhere in the meantime is refused
  rather than doubled); the ledger entry is posted when GOV.UK Pay says it succeeded;
- anything else is recorded for the finance team to pay by BACS: the ledger entry is
  posted at once and the refund shows as "to pay by BACS".
The refund's ledger entry is negative, source "refund", and `corrects` the original.
"""

from __future__ import annotations

import secrets

from peewee import BigAutoField, BigIntegerField, CharField, DateTimeField, ForeignKeyField, IntegrityError, TextField

from app.db import BaseModel, database, is_postgres, utcnow
from app.domain import audit, ledger
from app.domain.council import CouncilSettings
from app.domain.errors import DomainError
from app.domain.funds import visible_fund_ids
from app.domain.money import format_pence
from app.domain.users import Permission, User

STATUSES = {
    "awaiting_approval": "Awaiting approval",
    "rejected": "Rejected",
    "submitted": "Sent to GOV.UK Pay",
    "succeeded": "Refunded",
    "to_pay_by_bacs": "To pay by BACS",
    "failed": "Failed",
}
OPEN = ("awaiting_approval", "submitted")
# Money that came in. Journal and transfer lines only move it inside the council: a refund of
# money a journal moved is asked for on the payment it came from (whose refundable amount the
# journal has already reduced), so that a card payment is refunded to the card.
REFUNDABLE_SOURCES = ("payment", "staff_payment", "import", "suspense_allocation", "adjustment")
MAX_REASON = 500


class Refund(BaseModel):
    id = BigAutoField()
    reference = CharField(max_length=20, unique=True)
    submission_key = CharField(max_length=120, unique=True)
    entry = ForeignKeyField(ledger.LedgerEntry, backref="refunds", on_delete="RESTRICT")
    amount_pence = BigIntegerField()
    reason = TextField()
    route = CharField(max_length=10)  # card (GOV.UK Pay) | bacs
    status = CharField(max_length=20, index=True)
    requested_by = ForeignKeyField(User, backref="+", on_delete="RESTRICT")
    requested_at = DateTimeField(default=utcnow)
    decided_by = ForeignKeyField(User, null=True, backref="+", on_delete="RESTRICT")
    decided_at = DateTimeField(null=True)
    decision_note = TextField(default="")
    provider_refund_id = CharField(max_length=255, default="")
    refund_entry = ForeignKeyField(ledger.LedgerEntry, null=True, backref="+", on_delete="RESTRICT")
    last_error = TextField(default="")

    @property
    def status_name(self) -> str:
        return STATUSES.get(self.status, self.status)


def approval_limit_pence() -> int:
    return CouncilSettings.current().refund_approval_pence


def refundable_pence(entry: ledger.LedgerEntry) -> int:
    """What can still be refunded: the entry less everything taken off it or on its way off."""
    taken_off = sum(e.amount_pence for e in ledger.LedgerEntry.linked(entry) if e.amount_pence < 0)
    pending = sum(r.amount_pence for r in Refund.select().where((Refund.entry == entry) & Refund.status.in_(OPEN)))
    return max(0, entry.amount_pence + taken_off - pending)


def card_payment_of(entry: ledger.LedgerEntry):
    """The GOV.UK Pay payment this entry came from, or None."""
    from app.domain.payments import PaymentItem

    item = PaymentItem.get_or_none(PaymentItem.ledger_entry == entry)
    return item.payment if item is not None and item.payment.provider_payment_id else None


def _lock(model, row_id):
    query = model.select().where(model.id == row_id)
    return query.for_update().get() if is_postgres() else query.get()


def request_refund(
    entry: ledger.LedgerEntry, actor: User, amount_pence: int, reason: str, *, submission_key: str, ip_address: str = ""
) -> tuple[Refund, bool]:
    """Ask for a refund. Returns (refund, created); the same submission key returns the first."""
    existing = Refund.get_or_none(Refund.submission_key == submission_key)
    if existing is not None:
        return existing, False
    if not actor.can(Permission.REQUEST_REFUNDS) or entry.fund_id not in visible_fund_ids(actor):
        raise DomainError("You cannot refund this payment", "amount")
    if entry.amount_pence <= 0 or entry.source not in REFUNDABLE_SOURCES:
        raise DomainError("Only a payment can be refunded: refund the payment this came from", "amount")
    if not isinstance(amount_pence, int) or isinstance(amount_pence, bool) or amount_pence <= 0:
        raise DomainError("Enter an amount more than £0.00", "amount")
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Enter the reason for the refund", "reason")
    if len(reason) > MAX_REASON:
        raise DomainError(f"The reason must be {MAX_REASON} characters or fewer", "reason")
    route = "card" if card_payment_of(entry) is not None else "bacs"
    try:
        with ledger.write_transaction():
            _lock(ledger.LedgerEntry, entry.id)  # serialises refunds of the same entry
            available = refundable_pence(entry)
            if amount_pence > available:
                raise DomainError(f"You can refund up to {format_pence(available)}", "amount")
            needs_approval = amount_pence > approval_limit_pence()
            refund = Refund.create(
                reference=f"RFD-{secrets.token_hex(4).upper()}",
                submission_key=submission_key,
                entry=entry,
                amount_pence=amount_pence,
                reason=reason,
                route=route,
                status="awaiting_approval" if needs_approval else "submitted",
                requested_by=actor,
            )
            audit.record(
                "refund.request",
                actor=actor,
                object_type="refund",
                object_id=refund.reference,
                summary=f"Asked for a refund of {format_pence(amount_pence)} on receipt {entry.receipt_reference}",
                ip_address=ip_address,
            )
    except IntegrityError:
        existing = Refund.get_or_none(Refund.submission_key == submission_key)
        if existing is None:
            raise
        return existing, False
    return refund, True


def decide(refund: Refund, actor: User, approve: bool, note: str = "", *, ip_address: str = "") -> Refund:
    """Approve or reject a refund awaiting approval. The person who asked cannot decide."""
    if not actor.can(Permission.APPROVE):
        raise DomainError("Only a senior finance officer can approve refunds")
    if refund.requested_by_id == actor.id:
        raise DomainError("You asked for this refund, so someone else must approve it")
    if refund.entry.fund_id not in visible_fund_ids(actor):
        raise DomainError("You cannot approve refunds for this fund")
    if not approve and not (note or "").strip():
        raise DomainError("Enter why you are rejecting the refund", "note")
    with database.atomic():
        changed = (
            Refund.update(
                status="submitted" if approve else "rejected",
                decided_by=actor,
                decided_at=utcnow(),
                decision_note=(note or "").strip()[:MAX_REASON],
            )
            .where((Refund.id == refund.id) & (Refund.status == "awaiting_approval"))
            .execute()
        )
        if not changed:
            raise DomainError("This refund has already been decided")
        audit.record(
            "refund.approve" if approve else "refund.reject",
            actor=actor,
            object_type="refund",
            object_id=refund.reference,
            summary=f"{'Approved' if approve else 'Rejected'} refund {refund.reference}",
            ip_address=ip_address,
        )
    return Refund.get_by_id(refund.id)


def _post_refund(refund: Refund) -> ledger.LedgerEntry:
    entry = refund.entry
    result = ledger.post(
        ledger.PostingRequest(
            idempotency_key=f"refund:{refund.reference}",
            fund=entry.fund,
            account_reference=entry.account_reference,
            amount_pence=-refund.amount_pence,
            method=entry.method,
            source="refund",
            user=refund.requested_by,
            narrative=f"Refund {refund.reference}: {refund.reason}"[: ledger.MAX_NARRATIVE_LENGTH],
            payer_name=entry.payer_name,
            payer_email=entry.payer_email,
            source_reference=refund.reference,
            corrects=entry,
            money_already_taken=True,
        )
    )
    return result.entry


def carry_out(refund: Refund, client_for=None) -> Refund:
    """Do an approved (or under-limit) refund: GOV.UK Pay for card payments, else record for BACS.

    Safe to call again: a card refund is created at GOV.UK Pay only while none is recorded,
    and the ledger posting is idempotent on the refund's reference.
    """
    from app.integrations.govuk_pay.client import PayError, PayRefundMismatch

    refund = Refund.get_by_id(refund.id)
    if refund.status != "submitted" or refund.refund_entry_id:
        return refund
    if refund.route == "bacs":
        with ledger.write_transaction():
            posted = _post_refund(refund)
            Refund.update(status="to_pay_by_bacs", refund_entry=posted).where(Refund.id == refund.id).execute()
        return Refund.get_by_id(refund.id)
    payment = card_payment_of(refund.entry)
    client = client_for(payment.pay_account)
    try:
        if not refund.provider_refund_id:
            remote = client.get_payment(payment.provider_payment_id)
            summary = remote.refund_summary
            if summary is None or summary.status != "available" or summary.amount_available < refund.amount_pence:
                status = summary.status if summary else "unknown"
                Refund.update(status="failed", last_error=f"GOV.UK Pay will not refund this payment ({status})").where(
                    Refund.id == refund.id
                ).execute()
                return Refund.get_by_id(refund.id)
            made = client.create_refund(
                payment.provider_payment_id,
                amount_pence=refund.amount_pence,
                refund_amount_available=summary.amount_available,
            )
            Refund.update(provider_refund_id=made.refund_id).where(Refund.id == refund.id).execute()
            refund = Refund.get_by_id(refund.id)
            status = made.status
        else:
            status = client.get_refund(payment.provider_payment_id, refund.provider_refund_id).status
    except PayRefundMismatch:
        Refund.update(last_error="Another refund changed what GOV.UK Pay can refund: try again").where(
            Refund.id == refund.id
        ).execute()
        return Refund.get_by_id(refund.id)
    except PayError as error:
        Refund.update(last_error=f"Could not reach GOV.UK Pay: {error.code or error.status} {error.description}").where(
            Refund.id == refund.id
        ).execute()
        return Refund.get_by_id(refund.id)
    if status == "success":
        with ledger.write_transaction():
            posted = _post_refund(refund)
            Refund.update(status="succeeded", refund_entry=posted, last_error="").where(
                (Refund.id == refund.id) & (Refund.status == "submitted")
            ).execute()
    elif status == "error":
        Refund.update(status="failed", last_error="GOV.UK Pay could not refund the card").where(
            Refund.id == refund.id
        ).execute()
    return Refund.get_by_id(refund.id)


def open_card_refunds():
    return Refund.select().where((Refund.status == "submitted") & (Refund.route == "card"))
