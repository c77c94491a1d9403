"""GOV.UK Pay webhooks: verify the signature on the raw body, store the message once, answer at once.

GOV.UK Pay delivers at least once and in any order, and gives up if we are slow (about
3 seconds), so this only checks and stores; the queue job re-reads the payment from
GOV.UK Pay and applies it exactly as the citizen's return would (app/domain/payments.py).
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from app.access import public
from app.domain import payments

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 1_000_000


@bp.post("/govuk-pay")
@public  # anyone may knock; only a body signed with one of our accounts' secrets is accepted
def govuk_pay():
    body = request.get_data(cache=False)
    if len(body) > MAX_WEBHOOK_BYTES:
        return jsonify({"error": "too large"}), 413
    account = current_app.extensions["govuk_pay"].account_for_signature(body, request.headers.get("Pay-Signature"))
    if account is None:
        log.warning("Rejected a GOV.UK Pay webhook with a bad or missing signature from %s", request.remote_addr)
        return jsonify({"error": "signature does not match"}), 401
    try:
        message, new = payments.receive_webhook(body, account.name)
    except payments.WebhookRejected as error:
        return jsonify({"error": error.message}), 400
    if new:
        from app.jobs import process_govuk_pay_webhook

        process_govuk_pay_webhook(message.id)
    return jsonify({"received": True, "duplicate": not new}), 200
