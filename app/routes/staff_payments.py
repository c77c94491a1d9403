"""Taking a payment as staff: form → check (with the account holder and balance) → confirm → receipts.

The answers wait in the session between the form and the check page (app/routes/add_journey.py),
with a one-time key that becomes the payment's submission key, so confirming twice (double
click, two tabs, the back button) records the payment once.
"""

from __future__ import annotations

import logging
import secrets

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from werkzeug.datastructures import MultiDict

from app.access import requires
from app.domain import payments, staff_payments
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
log = logging.getLogger(__name__)


@bp.before_request
def allow_redirects_to_govuk_pay():
    # Confirming a telephone card payment is answered with a redirect to GOV.UK Pay's card page.
    g.form_action_origins = [current_app.config["GOVUK_PAY_PAGE_ORIGIN"]]


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
    return render_template("staff_payments/form.html", form=form)


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
    if confirm.validate_on_submit() and method.channel == staff_payments.TELEPHONE_CARD:
        return _start_telephone_payment(form, method, office, lines)
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


def _start_telephone_payment(form: StaffPaymentForm, method, office, lines):
    """Record the telephone payment and send the member of staff to GOV.UK Pay to key the card."""
    try:
        payment = staff_payments.start_telephone_payment(
            lines,
            method=method,
            actor=g.user,
            office=office,
            submission_key=f"staff:{session[KEY]}",
            payer_name=form.payer_name.data or "",
            payer_email=form.payer_email.data or "",
            payer_address=form.payer_address.data or "",
            ip_address=client_ip(),
        )
    except StaffPaymentInvalid as error:
        flash(f"Something has changed since you entered the payment: {error.message}", "info")
        return redirect(url_for("staff_payments.new_payment", change=1))
    forget_answers(PENDING)
    session.pop(KEY, None)
    return _go_to_card_page(payment)


def _gateway_client(payment):
    try:
        return current_app.extensions["govuk_pay"].client(payment.pay_account)
    except KeyError:
        log.error("No GOV.UK Pay API key for account %r (payment %s)", payment.pay_account, payment.reference)
        return None


def _go_to_card_page(payment):
    client = _gateway_client(payment)
    if client is None:
        flash("Card payments are not available at the moment: take the payment another way", "info")
        return redirect(url_for("payments.attempt", reference=payment.reference))
    base = current_app.config.get("PUBLIC_BASE_URL") or request.host_url.rstrip("/")
    return_url = base + url_for("staff_payments.card_return", telephone_token=payment.return_token)
    try:
        next_url = payments.start_payment(payment, client, return_url)
    except (payments.PaymentServiceUnavailable, payments.PaymentRefused) as error:
        flash(error.message, "info")
        return redirect(url_for("payments.attempt", reference=payment.reference))
    if not next_url:
        return redirect(url_for("staff_payments.card_return", telephone_token=payment.return_token))
    return redirect(next_url, code=303)


@bp.get("/card/<telephone_token>")
@requires(Permission.TAKE_PAYMENTS)
def card_return(telephone_token: str):
    """GOV.UK Pay's return URL for a telephone payment: bring the payment up to date and show it.

    A GET that can record the outcome, as the citizen's return does: it only asks GOV.UK Pay
    (idempotently, as the webhook and the status job also do); nothing in the request decides it.
    """
    payment = payments.by_return_token(telephone_token)
    if payment is None or payment.channel != "telephone":
        abort(404)
    client = _gateway_client(payment)
    if client is not None and not payment.finished:
        payment = payments.refresh_payment(payment, client, source="staff").payment
    if payment.status == "succeeded":
        flash(f"Telephone payment {payment.reference} taken: {format_pence(payment.amount_pence)}", "success")
    elif payment.finished:
        flash(f"Telephone payment {payment.reference} was not taken: {payment.status_name.lower()}", "info")
    return redirect(url_for("payments.attempt", reference=payment.reference))


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
