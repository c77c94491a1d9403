"""The hosted card pages at next_url: card details, confirm, and the outcome pages.

The journey mirrors GOV.UK Pay's: /secure/<token> spends the single-use token, remembers in
this browser's session cookie that it may act on the payment, and redirects to the card page.
Forms post and are CSRF-protected with Flask-WTF (the session-bound token in each form), so
another site cannot submit, confirm or cancel a payment in the payer's name even though the
payment id is in the URL. POST /secure (next_url_post) is exempt: it comes from the
service's own page, and the single-use token it carries is itself the secret.

Failure pages offer Continue (a link) back to return_url; with own_failure_pages they redirect
straight there. Confirm redirects to return_url with nothing appended.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for

from app.integrations.govuk_pay.emulator.cards import check_card_form

bp = Blueprint("pages", __name__)
MAX_PAYMENTS_IN_SESSION = 20

FAILURE_PAGES = {
    "P0010": (
        "Your payment has been declined",
        ["No money has been taken from your account.", "Go back to the service to try again with a different card."],
    ),
    "P0020": (
        "Your payment session has expired",
        ["No money has been taken from your account.", "Go back to the service to start your payment again."],
    ),
    "P0030": ("Your payment has been cancelled", ["No money has been taken from your account."]),
    "P0040": ("Your payment has been cancelled", ["The service cancelled this payment. No money has been taken."]),
    "P0050": (
        "We're experiencing technical problems",
        ["Your payment has not been completed: no money has been taken from your account.", "Please try again later."],
    ),
}


def _emulator():
    return current_app.extensions["govuk_pay_emulator"]


def csp_nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


@bp.after_request
def security_headers(response):
    # Chromium applies form-action to the redirect that follows a form POST, so a page whose
    # forms can end in a redirect to the service (confirm, cancel, decline with own failure
    # pages) must also allow return_url's origin.
    form_action = " ".join(filter(None, ["'self'", g.get("return_origin")]))
    nonce = csp_nonce()
    response.headers["Content-Security-Policy"] = "; ".join(
        [
            "default-src 'self'",
            f"script-src 'nonce-{nonce}'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            f"form-action {form_action}",
            "frame-ancestors 'none'",
        ]
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    # Same-origin only: the token in /secure/<token> must not leak to other sites (CSRF's
    # referrer check on https still gets what it needs).
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def _render(template: str, doc: dict[str, Any] | None = None, status: int = 200, **context):
    if doc is not None:
        g.return_origin = _origin(doc["return_url"])
    return render_template(f"govuk_pay_emulator/{template}", payment=doc, **context), status


def _message(title: str, paragraphs: list[str], doc: dict[str, Any] | None, status: int = 200, **extra):
    continue_url = doc["return_url"] if doc is not None else None
    return _render(
        "message.html", doc, status, page_title=title, paragraphs=paragraphs, continue_url=continue_url, **extra
    )


def _link_expired(doc: dict[str, Any] | None):
    paragraphs = [
        "The link you followed has already been used, or is not a payment link.",
        "Go back to the service you were using to check your payment or start again.",
    ]
    return _message("This link has expired", paragraphs, doc, status=400, continue_text="Go back to the service")


def _to_service(doc: dict[str, Any]):
    """Back to the service: return_url exactly as given, nothing appended."""
    return redirect(doc["return_url"], 302)


def _amount(pence: int) -> str:
    return f"£{Decimal(pence) / 100:,.2f}"


def _allow(payment_id: str) -> None:
    allowed = [p for p in session.get("payments", []) if p != payment_id]
    session["payments"] = (allowed + [payment_id])[-MAX_PAYMENTS_IN_SESSION:]


def _payment_for_this_browser(payment_id: str) -> dict[str, Any] | None:
    if payment_id not in session.get("payments", []):
        return None
    return _emulator().card_payment(payment_id)


def _route(doc: dict[str, Any]):
    """Where a payment in its current state belongs."""
    status = doc["status"]
    if status in ("created", "started"):
        return redirect(url_for(".card_details", payment_id=doc["payment_id"]), 303)
    if status == "submitted":
        return redirect(url_for(".confirm", payment_id=doc["payment_id"]), 303)
    if status in ("success", "capturable"):
        return _to_service(doc)
    if _emulator().settings.own_failure_pages:
        return _to_service(doc)
    title, paragraphs = FAILURE_PAGES[doc["code"]]
    return _message(title, paragraphs, doc)


# --- next_url ---------------------------------------------------------------------------------


def _open(token: str):
    outcome, doc = _emulator().open_token(token)
    if outcome != "ok":
        return _link_expired(doc)  # a used or unknown token changes nothing
    _allow(doc["payment_id"])
    return _route(doc)


@bp.get("/secure/<token>")
def secure(token: str):
    return _open(token)


@bp.post("/secure")
def secure_post():
    return _open(request.form.get("chargeTokenId", ""))


# --- card details -----------------------------------------------------------------------------


def _card_page(doc: dict[str, Any], form=None):
    if form is None:
        prefill = doc.get("prefill") or {}
        address = prefill.get("billing_address") or {}
        values = {
            "cardholder_name": prefill.get("cardholder_name") or "",
            "address_line1": address.get("line1") or "",
            "address_line2": address.get("line2") or "",
            "address_city": address.get("city") or "",
            "address_postcode": address.get("postcode") or "",
            "email": doc.get("email") or "",
        }
        errors, error_list = {}, []
    else:
        values, errors, error_list = form.values, form.errors, form.error_list
    return _render(
        "card_details.html",
        doc,
        page_title="Enter card details",
        amount=_amount(doc["amount"]),
        values=values,
        errors=errors,
        error_list=error_list,
        has_errors=bool(errors),
    )


@bp.route("/card_details/<payment_id>", methods=["GET", "POST"])
def card_details(payment_id: str):
    emulator = _emulator()
    doc = _payment_for_this_browser(payment_id)
    if doc is None:
        return _link_expired(None)
    if doc["status"] != "started":
        return _route(doc)
    if request.method == "GET":
        return _card_page(doc)
    form = check_card_form(request.form, emulator.now().date())
    if form.errors:
        return _card_page(doc, form)  # unaccepted brands end here too: no state change
    country = ((doc.get("prefill") or {}).get("billing_address") or {}).get("country") or "GB"
    doc = emulator.authorise(payment_id, form.number, form.card_details(country), form.values["email"] or None)
    return _route(doc)


@bp.route("/card_details/<payment_id>/confirm", methods=["GET", "POST"])
def confirm(payment_id: str):
    emulator = _emulator()
    doc = _payment_for_this_browser(payment_id)
    if doc is None:
        return _link_expired(None)
    if doc["status"] != "submitted":
        return _route(doc)
    if request.method == "GET":
        card = doc["card"]
        address = card["billing_address"]
        lines = [address.get("line1"), address.get("line2"), address.get("city"), address.get("postcode")]
        return _render(
            "confirm.html",
            doc,
            page_title="Confirm your payment",
            amount=_amount(doc["amount"]),
            card=card,
            address=", ".join(line for line in lines if line),
        )
    doc = emulator.confirm(payment_id)
    if doc["status"] in ("success", "capturable") and emulator.faults.take_card("payer_never_returns"):
        paragraphs = [
            "Your payment is complete.",
            "Test: the emulator is acting as if you closed your browser here, so it has not sent you back to "
            "the service. The service has to find out from GOV.UK Pay (or a webhook) that you paid.",
        ]
        return _message("Payment confirmed", paragraphs, doc, panel=True, continue_text="Go back to the service anyway")
    return _route(doc)


@bp.post("/card_details/<payment_id>/cancel")
def cancel(payment_id: str):
    doc = _payment_for_this_browser(payment_id)
    if doc is None:
        return _link_expired(None)
    return _route(_emulator().payer_cancel(payment_id))
