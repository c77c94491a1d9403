"""Taking a payment as staff: form → check (with the account holder and balance) → confirm → receipts.

The answers wait in the session between the form and the check page (app/routes/add_journey.py),
with a one-time key that becomes the payment's submission key, so confirming twice (double
click, two tabs, the back button) records the payment once.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, flash, g, redirect, render_template, session, url_for
from werkzeug.datastructures import MultiDict

from app.access import requires
from app.domain import staff_payments
from app.domain.funds import Fund, visible_funds
from app.domain.methods import MethodOfPayment
from app.domain.money import format_pence
from app.domain.offices import Office
from app.domain.staff_payments import ChequeDetails, StaffLine, StaffPaymentInvalid
from app.domain.users import Permission
from app.email import send_email
from app.forms.settings import ConfirmForm
from app.forms.staff_payments import StaffPaymentForm
from app.routes import client_ip
from app.routes.add_journey import answers_form, forget_answers, keep_answers

bp = Blueprint("staff_payments", __name__, url_prefix="/take-payment")
PENDING = "pending_staff_payment"
KEY = "pending_staff_payment_key"


def _prepare(form: StaffPaymentForm) -> None:
    methods = staff_payments.staff_methods()
    form.method.choices = [(m.code, m.name) for m in methods]
    form.office.choices = [("", "Select an office")] + [(o.code, o.name) for o in Office.enabled_items()]
    funds = [("", "Select a fund")] + [(f.code, f"{f.name} ({f.code})") for f in visible_funds(g.user) if f.enabled]
    for line in form.lines:
        line.form.fund.choices = funds


def _read(form: StaffPaymentForm):
    """The form's answers as domain values, and the field errors the form itself can find."""
    errors: dict[str, str] = {}
    method = MethodOfPayment.by_code(form.method.data or "")
    office = Office.by_code(form.office.data or "")
    lines: list[StaffLine] = []
    for n, entry in enumerate(form.lines):
        line = entry.form
        if line.is_blank():
            continue
        fund = Fund.by_code(line.fund.data or "")
        if fund is None:
            errors[f"lines-{n}-fund"] = f"Line {n + 1}: select the fund"
        if line.amount.parse_error:
            errors[f"lines-{n}-amount"] = f"Line {n + 1}: {line.amount.parse_error}"
        elif line.amount.data is None:
            errors[f"lines-{n}-amount"] = f"Line {n + 1}: enter the amount"
        if fund is not None and line.amount.data is not None:
            lines.append(StaffLine(fund, line.reference.data or "", line.amount.data, line.narrative.data or ""))
    cheque = ChequeDetails(
        form.cheque_number.data or "", form.sort_code.data or "", form.account_number.data or "", form.drawer.data or ""
    )
    return method, office, lines, cheque, errors


def _field(form: StaffPaymentForm, name: str):
    if name.startswith("lines-"):
        _, n, part = name.split("-", 2)
        return getattr(form.lines[int(n)].form, part)
    return getattr(form, name, None) or form.method


def _show_errors(form: StaffPaymentForm, errors: dict[str, str]) -> None:
    for name, message in errors.items():
        field = _field(form, name)
        field.errors = list(field.errors) + [message]


def _check(form: StaffPaymentForm):
    method, office, lines, cheque, errors = _read(form)
    results = []
    if not errors and method is not None:
        results, more = staff_payments.check_lines(lines, method=method, actor=g.user)
        errors.update(more)
        if method.channel == "cheque":
            errors.update(staff_payments.check_cheque(cheque))
    if not lines and not errors:
        errors["lines-0-fund"] = "Enter at least one payment: the fund, reference and amount"
    return method, office, lines, cheque, results, errors


@bp.route("", methods=["GET", "POST"])
@requires(Permission.TAKE_PAYMENTS)
def new_payment():
    form = answers_form(StaffPaymentForm, PENDING)
    _prepare(form)
    if form.validate_on_submit():
        *_, errors = _check(form)
        if errors:
            _show_errors(form, errors)
        else:
            keep_answers(PENDING)
            session[KEY] = secrets.token_urlsafe(24)
            return redirect(url_for("staff_payments.check_payment"))
    cheque_codes = {m.code for m in staff_payments.staff_methods() if m.channel == "cheque"}
    return render_template("staff_payments/form.html", form=form, cheque_codes=cheque_codes)


@bp.route("/check", methods=["GET", "POST"])
@requires(Permission.TAKE_PAYMENTS)
def check_payment():
    waiting = session.get(PENDING)
    if not waiting or not session.get(KEY):
        return redirect(url_for("staff_payments.new_payment"))
    form = StaffPaymentForm(formdata=MultiDict(waiting), meta={"csrf": False})
    _prepare(form)
    form.validate()
    method, office, lines, cheque, results, errors = _check(form)
    if errors or method is None:
        flash("Something has changed since you entered the payment: check it again", "info")
        return redirect(url_for("staff_payments.new_payment", change=1))
    confirm = ConfirmForm()
    if confirm.validate_on_submit():
        try:
            payment, _created = staff_payments.take_staff_payment(
                lines,
                method=method,
                actor=g.user,
                office=office,
                submission_key=f"staff:{session[KEY]}",
                payer_name=form.payer_name.data or "",
                payer_email=form.payer_email.data or "",
                payer_address=form.payer_address.data or "",
                cheque=cheque if method.channel == "cheque" else None,
                ip_address=client_ip(),
            )
        except StaffPaymentInvalid:
            flash("Something has changed since you entered the payment: check it again", "info")
            return redirect(url_for("staff_payments.new_payment", change=1))
        forget_answers(PENDING)
        session.pop(KEY, None)
        flash(f"Payment {payment.reference} recorded", "success")
        return redirect(url_for("staff_payments.view_payment", staff_reference=payment.reference))
    return render_template(
        "staff_payments/check.html",
        form=form,
        method=method,
        office=office,
        lines=list(zip(lines, results, strict=True)),
        total=sum(line.amount_pence for line in lines),
        cheque=cheque if method.channel == "cheque" else None,
        confirm=confirm,
    )


def _visible_payment(reference: str):
    payment = staff_payments.by_reference(reference)
    if payment is None:
        abort(404)
    visible = {f.id for f in visible_funds(g.user)}
    entries = list(payment.entries())
    if not any(entry.fund_id in visible for entry in entries):
        abort(404)
    return payment, entries


@bp.get("/<staff_reference>")
@requires(Permission.VIEW_LEDGER)
def view_payment(staff_reference: str):
    payment, entries = _visible_payment(staff_reference)
    return render_template(
        "staff_payments/view.html",
        payment=payment,
        entries=entries,
        total=sum(e.amount_pence for e in entries),
        confirm=ConfirmForm(),
    )


@bp.post("/<staff_reference>/email-receipt")
@requires(Permission.TAKE_PAYMENTS)
def email_receipt(staff_reference: str):
    payment, entries = _visible_payment(staff_reference)
    if ConfirmForm().validate_on_submit() and payment.payer_email:
        lines = [
            f"- {e.fund.name} {e.account_reference}: {format_pence(e.amount_pence)} (receipt {e.receipt_reference})"
            for e in entries
        ]
        send_email(
            to=payment.payer_email,
            subject=f"Your payment receipt {payment.reference}",
            body="Thank you for your payment.\n\n" + "\n".join(lines),
            purpose="receipt",
        )
        flash(f"Receipt sent to {payment.payer_email}", "success")
    return redirect(url_for("staff_payments.view_payment", staff_reference=payment.reference))
