"""The JSON API for other council systems. Every route needs an API key with the right scope.

Requests carry `Authorization: Bearer <key>`; cookies play no part (the blueprint is exempt
from CSRF for that reason). Every answer, including errors, is JSON and never cached.
"""

from __future__ import annotations

import logging
import re
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, request
from werkzeug.exceptions import HTTPException

from app.access import api_error, api_key
from app.db import database
from app.domain import payments
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.references import validate_reference

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

VALIDATE_SCOPE = "references:validate"
MAX_FIELD_LENGTH = 200  # longer than any reference; stops huge strings reaching the rules


@bp.after_request
def no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    code = {405: "method_not_allowed", 413: "too_large"}.get(error.code or 0, "bad_request")
    return api_error(error.code or 400, code, error.description or "The request could not be handled")


@bp.errorhandler(Exception)
def server_error(error: Exception):
    log.exception("Unhandled API error on %s %s", request.method, request.path)
    if database.in_transaction():
        database.rollback()
    return api_error(500, "server_error", "Something went wrong. Try again later")


def _invalid(field: str, message: str, status: int = 422):
    return api_error(status, "invalid_request", message, field)


@bp.post("/references/validate")
@api_key(VALIDATE_SCOPE)
def validate_reference_api():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _invalid(
            "body",
            'Send a JSON object, like {"fund": "CTAX", "reference": "512345677"}, '
            "with the header Content-Type: application/json",
            400,
        )
    fund_code = body.get("fund")
    if fund_code is None or (isinstance(fund_code, str) and not fund_code.strip()):
        return _invalid("fund", "Enter the fund code, like CTAX")
    if not isinstance(fund_code, str) or len(fund_code) > MAX_FIELD_LENGTH:
        return _invalid("fund", "The fund code must be text, like CTAX")
    reference = body.get("reference")
    if reference is None or (isinstance(reference, str) and not reference.strip()):
        return _invalid("reference", "Enter the reference to validate")
    if not isinstance(reference, str):
        return _invalid("reference", 'The reference must be text, like "512345677"')
    if len(reference) > MAX_FIELD_LENGTH:
        return _invalid("reference", f"The reference must be {MAX_FIELD_LENGTH} characters or fewer")
    amount = body.get("amount_pence")
    # bool is an int in Python, and 12.5 or "1250" are not whole pence: refuse them all.
    if amount is not None and (amount.__class__ is not int):
        return _invalid("amount_pence", "The amount must be a whole number of pence, like 1250 for £12.50")

    code = fund_code.strip().upper()
    fund = Fund.get_or_none(Fund.code == code)
    if fund is None:
        return _invalid("fund", f"There is no fund with the code {code}")
    if not fund.enabled:
        return _invalid("fund", f"{fund.name} is not taking payments")

    result = validate_reference(fund, reference, amount, channel="staff")
    data = result.as_dict()
    account = data["account"]
    if account is not None and account["on_stop"]:
        # An account on stop says only that, and why: nothing about who owes what.
        data["account"] = {
            "reference": account["reference"],
            "on_stop": True,
            "on_stop_message": account["on_stop_message"],
        }
    return data


# ---------------------------------------------------------------------------
# Card payments started by another council system
# ---------------------------------------------------------------------------

PAYMENTS_SCOPE = "payments:create"
PAYMENTS_READ_SCOPE = "payments:read"
MAX_URL_LENGTH = 2000
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def _url_problem(value, field: str, required: bool) -> str | None:
    if value is None or value == "":
        return f"Enter the {field.replace('_', ' ')}" if required else None
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
        return f"The {field.replace('_', ' ')} must be text of {MAX_URL_LENGTH} characters or fewer"
    parts = urlsplit(value)
    local = parts.hostname in {"localhost", "127.0.0.1"}
    if parts.scheme != "https" and not (parts.scheme == "http" and (local or current_app.config["TESTING"])):
        return f"The {field.replace('_', ' ')} must start with https://"
    if not parts.netloc:
        return f"The {field.replace('_', ' ')} must be a full address, like https://example.gov.uk/paid"
    return None


def _payment_json(payment: payments.Payment, next_url: str = "") -> dict:
    data = {
        "reference": payment.reference,
        "status": payment.status,
        "finished": payment.finished,
        "amount_pence": payment.amount_pence,
        "items": [
            {
                "fund": item.fund.code,
                "reference": item.account_reference,
                "amount_pence": item.amount_pence,
                "receipt_reference": item.ledger_entry.receipt_reference if item.ledger_entry_id else None,
            }
            for item in payment.ordered_items()
        ],
        "created_at": payment.created_at.isoformat() + "Z",
        "finished_at": payment.finished_at.isoformat() + "Z" if payment.finished_at else None,
    }
    if next_url:
        data["next_url"] = next_url
    return data


def _same_request(payment: payments.Payment, lines: list[payments.BasketLine], body: dict, email: str) -> bool:
    """Whether a replayed Idempotency-Key asks for the same payment (items, URLs, e-mail) as the first call."""
    made = [(item.fund_id, item.account_reference, item.amount_pence) for item in payment.ordered_items()]
    asked = [(line.fund.id, line.reference, line.amount_pence) for line in lines]
    urls = (body["return_url"], body.get("cancel_url") or "")
    return made == asked and (payment.return_url, payment.cancel_url) == urls and payment.email == email


@bp.post("/payments")
@api_key(PAYMENTS_SCOPE)
def create_payment_api():
    """Make a basket and start its card payment; answer with the URL to send the citizen to.

    Body: {"items": [{"fund": "CTAX", "reference": "…", "amount_pence": 1250}, …],
           "return_url": "https://…", "cancel_url": "https://…" (optional), "email": "…" (optional),
           "payer_name": "…", "address": {"line1", "line2", "town", "postcode"} (when a fund needs it)}
    Header Idempotency-Key (optional): the same key returns the same payment.
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _invalid(
            "body", "Send a JSON object with items and return_url, with Content-Type: application/json", 400
        )
    key = request.headers.get("Idempotency-Key", "")
    if key and not IDEMPOTENCY_KEY.match(key):
        return _invalid("Idempotency-Key", "The Idempotency-Key must be 1 to 100 letters, digits, - or _")
    items = body.get("items")
    if not isinstance(items, list) or not items:
        return _invalid("items", 'Send items: a list like [{"fund": "CTAX", "reference": "…", "amount_pence": 1250}]')
    limit = payments.max_basket_items()
    if len(items) > limit:
        return _invalid("items", f"A payment can have up to {limit} items")
    method = payments.online_method()
    if method is None:
        return api_error(503, "unavailable", "Online card payments are not set up")
    lines: list[payments.BasketLine] = []
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(item, dict):
            return _invalid(where, "Each item must be an object with fund, reference and amount_pence")
        code, reference, amount = item.get("fund"), item.get("reference"), item.get("amount_pence")
        if not isinstance(code, str) or not code.strip() or len(code) > MAX_FIELD_LENGTH:
            return _invalid(f"{where}.fund", "Enter the fund code, like CTAX")
        if not isinstance(reference, str) or len(reference) > MAX_FIELD_LENGTH:
            return _invalid(f"{where}.reference", "Enter the reference as text")
        if amount.__class__ is not int:
            return _invalid(f"{where}.amount_pence", "The amount must be a whole number of pence, like 1250 for £12.50")
        fund = Fund.get_or_none(Fund.code == code.strip().upper())
        if fund is None or fund.is_suspense:
            return _invalid(f"{where}.fund", f"There is no fund with the code {code.strip().upper()}")
        check = payments.check_line(fund, reference, amount, method=method, others=lines, channel="staff")
        if check.errors:
            field_name, message = next(iter(check.errors.items()))
            field_name = {"amount": "amount_pence"}.get(field_name, field_name)
            return _invalid(f"{where}.{field_name}", message)
        lines.append(payments.BasketLine(fund, check.reference, amount))
    for name, required in (("return_url", True), ("cancel_url", False)):
        problem = _url_problem(body.get(name), name, required)
        if problem:
            return _invalid(name, problem)
    email = body.get("email") or ""
    if not isinstance(email, str) or len(email) > payments.MAX_EMAIL or (email and "@" not in email):
        return _invalid("email", "Enter an email address in the correct format, like name@example.com")
    payer_name = body.get("payer_name") or ""
    address = body.get("address") or {}
    if not isinstance(payer_name, str) or len(payer_name) > 200:
        return _invalid("payer_name", "The payer name must be text of 200 characters or fewer")
    if not isinstance(address, dict) or any(not isinstance(v, str) or len(v) > 100 for v in address.values()):
        return _invalid("address", "The address must be an object of text fields: line1, line2, town, postcode")
    if any(line.fund.address_required for line in lines) and not (address.get("line1") and address.get("postcode")):
        return _invalid("address", "These funds need the payer's address: send at least line1 and postcode")
    parts = ("line1", "line2", "town", "postcode")
    address_text = "\n".join(address[k].strip() for k in parts if address.get(k))

    submission = f"api:{g.api_key.id}:{key}" if key else f"api:{g.api_key.id}:{secrets.token_urlsafe(16)}"
    try:
        payment, created = payments.create_payment(
            lines,
            submission_key=submission,
            method=method,
            channel="api",
            email=email.strip(),
            payer_name=payer_name.strip(),
            payer_address=address_text,
            return_url=body["return_url"],
            cancel_url=body.get("cancel_url") or "",
            api_key_id=g.api_key.id,
            validation_channel="staff",
        )
    except DomainError as error:
        return _invalid(error.field or "items", error.message)
    if not created and not _same_request(payment, lines, body, email.strip()):
        # As GOV.UK Pay does (409 P0191): never answer a different request with another payment's next_url.
        return api_error(
            409, "conflict", "This Idempotency-Key was used for a different payment: use a new key", "Idempotency-Key"
        )
    from app.routes.pay import gateway, return_url_for

    try:
        next_url = payments.start_payment(payment, gateway().client(payment.pay_account), return_url_for(payment))
    except KeyError:
        return api_error(503, "unavailable", "No GOV.UK Pay account is set up for these funds")
    except payments.PaymentRefused as error:
        # GOV.UK Pay said no to this request: the payment is failed, and retrying it cannot help.
        return api_error(502, "refused_by_govuk_pay", error.message)
    except payments.PaymentServiceUnavailable as error:
        response = api_error(503, "unavailable", error.message)
        response.headers["Retry-After"] = "30"
        return response
    payment = payments.Payment.get_by_id(payment.id)
    status = 201 if created else 200
    return _payment_json(payment, next_url), status


@bp.get("/payments/<reference>")
@api_key(PAYMENTS_READ_SCOPE)
def payment_api(reference: str):
    """A payment this key started: status, items and receipts once paid."""
    payment = payments.by_reference(reference)
    if payment is None or payment.api_key_id != g.api_key.id:
        return api_error(404, "not_found", "There is no payment with that reference for this API key")
    return _payment_json(payment)
