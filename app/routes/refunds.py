"""Refunds: ask (from a transaction), approve or reject (a second person above the limit), track.

Rules live in app/domain/refunds.py; card refunds go through GOV.UK Pay's refunds API.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, url_for

from app.access import requires
from app.domain import refunds
from app.domain.errors import DomainError
from app.domain.funds import visible_fund_ids
from app.domain.ledger import LedgerEntry
from app.domain.refunds import Refund
from app.domain.users import Permission
from app.forms.refunds import DecisionForm, RefundForm
from app.routes import client_ip

bp = Blueprint("refunds", __name__)


def _entry(receipt: str) -> LedgerEntry:
    entry = LedgerEntry.by_receipt(receipt)
    if entry is None or entry.fund_id not in visible_fund_ids(g.user):
        abort(404)
    return entry


def _refund(reference: str) -> Refund:
    refund = Refund.get_or_none(Refund.reference == (reference or "").upper())
    if refund is None or refund.entry.fund_id not in visible_fund_ids(g.user):
        abort(404)
    return refund


def _client_for(name: str):
    return current_app.extensions["govuk_pay"].client(name)


@bp.route("/transactions/<receipt>/refund", methods=["GET", "POST"])
@requires(Permission.REQUEST_REFUNDS)
def ask(receipt: str):
    entry = _entry(receipt)
    form = RefundForm()
    if not form.submission_key.data:
        form.submission_key.data = secrets.token_urlsafe(18)
    available = refunds.refundable_pence(entry)
    if form.validate_on_submit():
        try:
            refund, _created = refunds.request_refund(
                entry,
                g.user,
                form.amount.data,
                form.reason.data,
                submission_key=f"refund:{form.submission_key.data}",
                ip_address=client_ip(),
            )
        except DomainError as error:
            target = form.reason if error.field == "reason" else form.amount
            target.errors = list(target.errors) + [error.message]
        else:
            if refund.status == "submitted":
                refund = refunds.carry_out(refund, _client_for)
            flash(f"Refund {refund.reference}: {refund.status_name.lower()}", "success")
            return redirect(url_for("refunds.view", refund_reference=refund.reference))
    return render_template(
        "refunds/ask.html",
        form=form,
        entry=entry,
        available=available,
        card=refunds.card_payment_of(entry) is not None,
        limit=refunds.approval_limit_pence(),
    )


@bp.get("/refunds")
@requires(Permission.VIEW_LEDGER)
def list_refunds():
    fund_ids = sorted(visible_fund_ids(g.user)) or [0]
    query = Refund.select().join(LedgerEntry, on=(Refund.entry == LedgerEntry.id)).where(LedgerEntry.fund.in_(fund_ids))
    waiting = list(query.where(Refund.status == "awaiting_approval").order_by(Refund.requested_at))
    recent = list(query.where(Refund.status != "awaiting_approval").order_by(Refund.requested_at.desc()).limit(50))
    return render_template("refunds/list.html", waiting=waiting, recent=recent)


@bp.route("/refunds/<refund_reference>", methods=["GET", "POST"])
@requires(Permission.VIEW_LEDGER)
def view(refund_reference: str):
    refund = _refund(refund_reference)
    form = DecisionForm()
    can_decide = (
        refund.status == "awaiting_approval" and g.user.can(Permission.APPROVE) and refund.requested_by_id != g.user.id
    )
    if can_decide and form.validate_on_submit():
        try:
            refund = refunds.decide(
                refund, g.user, form.decision.data == "approve", form.note.data or "", ip_address=client_ip()
            )
        except DomainError as error:
            target = form.note if error.field == "note" else form.decision
            target.errors = list(target.errors) + [error.message]
        else:
            if refund.status == "submitted":
                refund = refunds.carry_out(refund, _client_for)
            flash(f"Refund {refund.reference}: {refund.status_name.lower()}", "success")
            return redirect(url_for("refunds.view", refund_reference=refund.reference))
    return render_template("refunds/view.html", refund=refund, form=form, can_decide=can_decide)
