"""The JSON API for other council systems. Every route needs an API key with the right scope.

Requests carry `Authorization: Bearer <key>`; cookies play no part (the blueprint is exempt
from CSRF for that reason). Every answer, including errors, is JSON and never cached.
"""

from __future__ import annotations

import logging

from flask import Blueprint, request
from werkzeug.exceptions import HTTPException

from app.access import api_error, api_key
from app.db import database
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
