"""Card payment attempts for staff: every attempt, its items and its status history.

Staff see a payment if any of its items is in one of their fund groups' funds.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from peewee import fn

from app.access import requires
from app.domain import payments
from app.domain.funds import visible_fund_ids
from app.domain.payments import Payment, PaymentEvent, PaymentItem
from app.domain.users import Permission
from app.email import queue_delivery
from app.forms.pay import ButtonForm
from app.forms.payments import PaymentFilterForm
from app.routes.paging import paginate, render_list
from app.routes.pay import gateway

bp = Blueprint("payments", __name__, url_prefix="/payments")


def _visible(query, fund_ids: set[int]):
    if not fund_ids:
        return query.where(Payment.id == 0)
    inner = PaymentItem.select(PaymentItem.payment).where(PaymentItem.fund.in_(sorted(fund_ids)))
    return query.where(Payment.id.in_(inner))


@bp.get("")
@requires(Permission.VIEW_LEDGER)
def attempts():
    form = PaymentFilterForm(request.args)
    valid = form.validate() if request.args else True
    query = _visible(Payment.select(), visible_fund_ids(g.user))
    if valid:
        text = (form.reference.data or "").upper().replace(" ", "")
        if text:
            by_item = PaymentItem.select(PaymentItem.payment).where(PaymentItem.account_reference == text)
            query = query.where(
                (Payment.reference == text)
                | (Payment.reference == f"PAY-{text[:4]}-{text[4:]}")
                | (Payment.provider_payment_id == (form.reference.data or "").strip())
                | Payment.id.in_(by_item)
            )
        if form.status.data in payments.STATUSES:
            query = query.where(Payment.status == form.status.data)
    counts = dict(
        _visible(Payment.select(Payment.status, fn.COUNT(Payment.id)), visible_fund_ids(g.user))
        .group_by(Payment.status)
        .tuples()
    )
    page = paginate(query.order_by(Payment.created_at.desc(), Payment.id.desc()))
    return render_list(
        "payments/list.html",
        "payments/_results.html",
        form=form,
        page=page,
        counts=counts,
        statuses=payments.STATUSES,
        has_errors=not valid,
    )


def _payment_or_404(reference: str) -> Payment:
    payment = payments.by_reference(reference)
    if payment is None:
        abort(404)
    fund_ids = visible_fund_ids(g.user)
    mine = PaymentItem.select().where((PaymentItem.payment == payment) & PaymentItem.fund.in_(sorted(fund_ids) or [0]))
    if not mine.exists():
        abort(404)  # outside the user's fund groups: not disclosed
    return payment


@bp.get("/<reference>")
@requires(Permission.VIEW_LEDGER)
def attempt(reference: str):
    payment = _payment_or_404(reference)
    events = list(payment.events.order_by(PaymentEvent.occurred_at.desc(), PaymentEvent.id.desc()))
    return render_template(
        "payments/attempt.html",
        payment=payment,
        items=list(payment.ordered_items()),
        events=events,
        retries=list(payment.retries.order_by(Payment.id)),
        button=ButtonForm(),
    )


@bp.post("/<reference>/check")
@requires(Permission.TAKE_PAYMENTS)
def check_now(reference: str):
    """Ask GOV.UK Pay now rather than waiting for the job (e.g. a citizen on the phone)."""
    payment = _payment_or_404(reference)
    if ButtonForm().validate_on_submit() and not payment.finished:
        try:
            client = gateway().client(payment.pay_account)
        except KeyError:
            flash(f"No GOV.UK Pay API key is set for the account {payment.pay_account}", "error")
        else:
            applied = payments.refresh_payment(payment, client, source="staff")
            queue_delivery(applied.receipt)
            flash(f"Checked with GOV.UK Pay: {applied.payment.status_name.lower()}", "success")
    return redirect(url_for("payments.attempt", reference=payment.reference))
