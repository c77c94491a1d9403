"""GOV.UK Pay's public API (/v1): same paths, status codes, P-codes, headers and JSON.

Every call goes through `guard()` first: injected faults, then the bearer key (401 with no
body), then the rate limiter for POSTs.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
from flask import Blueprint, Response, current_app, g, jsonify, request

from app.integrations.govuk_pay.emulator.errors import ApiError, firewall, not_found
from app.integrations.govuk_pay.emulator.faults import Fault
from app.integrations.govuk_pay.emulator.resources import (
    events_json,
    page_links,
    payment_json,
    refund_json,
    refunds_json,
)
from app.integrations.govuk_pay.emulator.validation import (
    PAYMENT_SEARCH_PARAMETERS,
    REFUND_SEARCH_PARAMETERS,
    check_idempotency_key,
    fingerprint,
    parse_json_object,
    validate_create_payment,
    validate_refund,
    validate_search,
)

bp = Blueprint("api", __name__)

# The "Downstream system error" code of each endpoint (an injected 5xx uses it).
DOWNSTREAM_ERROR_CODES = {
    "create_payment": "P0198",
    "get_payment": "P0298",
    "payment_events": "P0398",
    "search_payments": "P0498",
    "cancel_payment": "P0598",
    "create_refund": "P0698",
    "get_refund": "P0798",
    "list_refunds": "P0898",
    "capture_payment": "P1098",
    "search_refunds": "P1898",
}
RATE_LIMIT_CLASSES = {"create_payment": "create", "capture_payment": "capture"}


def _emulator():
    return current_app.extensions["govuk_pay_emulator"]


def _endpoint() -> str:
    return (request.endpoint or "").rpartition(".")[2]


def _empty(status: int) -> Response:
    """A response with no body and no content type (401, 204)."""
    response = Response(status=status)
    del response.headers["Content-Type"]
    return response


def _error(status: int, code: str, description: str) -> Response:
    return ApiError(status, code, description).response()


DROP_CONNECTION = "govuk_pay_emulator.drop_connection"


class DroppedConnection(httpx.RemoteProtocolError, ConnectionAbortedError):
    """Raised to the caller where there is no socket to close (Flask's test client, httpx.WSGITransport).

    It is an httpx transport error too, so a client on httpx.WSGITransport sees what it would
    see on a real socket ("server disconnected without sending a response").
    """


def drop_connection() -> Response:
    """Close the client's connection without an answer (what a network failure looks like)."""
    sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
    if sock is None:
        request.environ[DROP_CONNECTION] = True  # raise_dropped_connections() raises it past Flask
        return Response(status=500)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    # Nothing will read this: writing it fails on the closed socket and the server moves on.
    return Response(status=500)


def _apply_fault(fault: Fault) -> Response | None:
    if fault.kind == "error":
        return _error(fault.status or 500, DOWNSTREAM_ERROR_CODES.get(_endpoint(), "P0999"), "Downstream system error")
    if fault.kind == "unavailable":
        return _error(503, "P0999", "GOV.UK Pay is unavailable")
    if fault.kind == "blocked":
        return firewall().response()
    if fault.kind == "respond":
        return _error(int(fault.status), fault.code, fault.description or "")
    if fault.kind == "timeout":
        seconds = fault.seconds if fault.seconds is not None else _emulator().settings.fault_timeout_seconds
        time.sleep(seconds)
        return drop_connection() if fault.process is False else None  # then answer, late
    if fault.kind == "drop":
        if fault.process:
            g.drop_after = True  # do the work, then drop: the client never learns it happened
            return None
        return drop_connection()
    return None


@bp.before_request
def guard():
    emulator = _emulator()
    g.base = emulator.link_base(request.host_url)
    fault = emulator.faults.take_api(request.method, request.path)
    if fault is not None:
        response = _apply_fault(fault)
        if response is not None:
            return response
    authorization = request.headers.get("Authorization", "")
    scheme, _, key = authorization.partition(" ")
    account = emulator.account(key.strip()) if scheme.lower() == "bearer" else None
    if account is None:
        return _empty(401)  # no body: clients must not parse it
    g.account, g.api_key = account, key.strip()
    if request.method == "POST":
        kind = RATE_LIMIT_CLASSES.get(_endpoint(), "other")
        if not emulator.rate_limiter.allow(g.api_key, kind):
            return _error(429, "P0900", "Too many requests")
    return None


@bp.after_request
def after(response: Response) -> Response:
    if g.get("drop_after"):
        return drop_connection()
    return response


@bp.errorhandler(ApiError)
def api_error(error: ApiError):
    return error.response()


def _json_body(parse_code: str) -> dict[str, Any]:
    # The firewall in front of GOV.UK Pay blocks empty bodies and non-JSON content types.
    raw = request.get_data(cache=True)
    if not raw.strip() or request.mimetype != "application/json":
        raise firewall()
    body = parse_json_object(raw)
    if body is None:
        raise ApiError(400, parse_code, "Unable to parse JSON")
    return body


def _payment_response(doc: dict[str, Any], status: int) -> Response:
    response = jsonify(_emulator().render_payment(doc, g.base))
    response.status_code = status
    return response


# --- payments ---------------------------------------------------------------------------------


@bp.post("/v1/payments")
def create_payment():
    idempotency_key = check_idempotency_key(request.headers.get("Idempotency-Key"))
    body = _json_body("P0197")
    fields = validate_create_payment(body, moto_enabled=g.account.moto_enabled)
    doc, created = _emulator().create_payment(
        g.account, fields, idempotency_key=idempotency_key, fingerprint=fingerprint(body)
    )
    response = _payment_response(doc, 201 if created else 200)
    if created:
        response.headers["Location"] = f"{g.base}/v1/payments/{doc['payment_id']}"
    return response


@bp.get("/v1/payments/<payment_id>")
def get_payment(payment_id: str):
    doc = _emulator().payment(g.account, payment_id)
    if doc is None:
        raise not_found("P0200")
    return _payment_response(doc, 200)


@bp.get("/v1/payments/<payment_id>/events")
def payment_events(payment_id: str):
    events = _emulator().events(g.account, payment_id)
    if events is None:
        raise not_found("P0300")
    return jsonify(events_json(payment_id, events, g.base))


@bp.post("/v1/payments/<payment_id>/cancel")
def cancel_payment(payment_id: str):
    _emulator().cancel(g.account, payment_id)
    return _empty(204)


@bp.post("/v1/payments/<payment_id>/capture")
def capture_payment(payment_id: str):
    _emulator().capture(g.account, payment_id)
    return _empty(204)


def _page(results: list, filters: dict[str, Any], names: tuple[str, ...], not_found_code: str):
    page, size = filters["page"], filters["display_size"]
    last_page = max(1, -(-len(results) // size))
    if page > last_page:
        raise ApiError(404, not_found_code, "Page not found")
    kept = {n: request.args[n] for n in names if request.args.get(n) and n not in ("page", "display_size")}
    return results[(page - 1) * size : page * size], page_links(g.base + request.path, kept, page, size, last_page)


@bp.get("/v1/payments")
def search_payments():
    filters = validate_search(request.args.to_dict(), PAYMENT_SEARCH_PARAMETERS, "P0401")
    found = _emulator().search_payments(g.account, filters)
    shown, links = _page(found, filters, PAYMENT_SEARCH_PARAMETERS, "P0402")
    return jsonify(
        {
            "total": len(found),
            "count": len(shown),
            "page": filters["page"],
            "results": [payment_json(doc, refunds, g.base) for doc, refunds in shown],
            "_links": links,
        }
    )


# --- refunds ----------------------------------------------------------------------------------


@bp.post("/v1/payments/<payment_id>/refunds")
def create_refund(payment_id: str):
    amount, available = validate_refund(_json_body("P0697"))
    refund = _emulator().create_refund(g.account, payment_id, amount, available)
    response = jsonify(refund_json(refund, g.base))
    response.status_code = 202
    return response


@bp.get("/v1/payments/<payment_id>/refunds/<refund_id>")
def get_refund(payment_id: str, refund_id: str):
    refund = _emulator().refund(g.account, payment_id, refund_id)
    if refund is None:
        raise not_found("P0700")
    return jsonify(refund_json(refund, g.base))


@bp.get("/v1/payments/<payment_id>/refunds")
def list_refunds(payment_id: str):
    refunds = _emulator().refunds_of(g.account, payment_id)
    if refunds is None:
        raise not_found("P0800")
    return jsonify(refunds_json(payment_id, refunds, g.base))


@bp.get("/v1/refunds")
def search_refunds():
    filters = validate_search(request.args.to_dict(), REFUND_SEARCH_PARAMETERS, "P1101")
    found = _emulator().search_refunds(g.account, filters)
    shown, links = _page(found, filters, REFUND_SEARCH_PARAMETERS, "P1100")
    return jsonify(
        {
            "total": len(found),
            "count": len(shown),
            "page": filters["page"],
            "results": [refund_json(refund, g.base, with_payment_id=True) for refund in shown],
            "_links": links,
        }
    )


def raise_dropped_connections(wsgi_app):
    """WSGI middleware: where no socket could be closed, fail the call with DroppedConnection instead."""

    def middleware(environ, start_response):
        result = wsgi_app(environ, start_response)
        if environ.get(DROP_CONNECTION):
            if hasattr(result, "close"):
                result.close()
            raise DroppedConnection("GOV.UK Pay emulator dropped the connection (injected fault)")
        return result

    return middleware
