"""Test-only control endpoints under /_emulator/ (JSON, no auth: they exist only in the emulator).

POST /_emulator/reset                    forget all state, faults and options
POST /_emulator/faults                   {"kind", "count"?, "status"?, "seconds"?, "method"?, "path"?,
                                          "process"?, "code"?, "description"?} (kinds: see faults.py)
GET  /_emulator/faults                   faults still to come
DELETE /_emulator/faults                 clear them
GET  /_emulator/clock                    {"now"}
POST /_emulator/clock                    {"advance_seconds": n}
POST /_emulator/rate-limit               {"per_second": n} (0 = off)
GET  /_emulator/webhooks                 every delivery with its attempts
POST /_emulator/webhooks/deliver         deliver what is due now (also applies expiry)
POST /_emulator/webhooks/options         {"duplicate"?, "reorder"?, "delay_seconds"?}
POST /_emulator/refunds/<id>             {"status": "success" | "error"} settle a submitted refund
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, jsonify, request

from app.integrations.govuk_pay.emulator.resources import iso_ms

bp = Blueprint("control", __name__, url_prefix="/_emulator")


def _emulator():
    return current_app.extensions["govuk_pay_emulator"]


def _body() -> dict:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _bad(message: str, status: int = 400):
    return jsonify({"error": message}), status


@bp.post("/reset")
def reset():
    _emulator().reset()
    return jsonify({"reset": True})


@bp.get("/faults")
def faults():
    return jsonify(_emulator().faults.pending())


@bp.post("/faults")
def add_fault():
    body = _body()
    names = ("status", "seconds", "method", "path", "process", "code", "description")
    options = {name: body[name] for name in names if name in body}
    try:
        _emulator().faults.add(str(body.get("kind", "")), int(body.get("count", 1)), **options)
    except (TypeError, ValueError) as error:
        return _bad(str(error))
    return jsonify(_emulator().faults.pending()), 201


@bp.delete("/faults")
def clear_faults():
    _emulator().faults.clear()
    return jsonify(_emulator().faults.pending())


@bp.get("/clock")
def clock():
    return jsonify({"now": iso_ms(_emulator().now())})


@bp.post("/clock")
def advance_clock():
    try:
        seconds = float(_body().get("advance_seconds", 0))
    except (TypeError, ValueError):
        return _bad("advance_seconds must be a number")
    if seconds < 0:
        return _bad("the clock only moves forward")
    return jsonify({"now": iso_ms(_emulator().advance(timedelta(seconds=seconds)))})


@bp.post("/rate-limit")
def rate_limit():
    try:
        per_second = int(_body().get("per_second", 0))
    except (TypeError, ValueError):
        return _bad("per_second must be a whole number")
    _emulator().rate_limiter.reset(per_second)
    return jsonify({"per_second": per_second})


@bp.get("/webhooks")
def webhooks():
    deliveries = _emulator().deliveries()
    for delivery in deliveries:
        delivery.pop("raw_body", None)
    return jsonify({"deliveries": deliveries})


@bp.post("/webhooks/deliver")
def deliver():
    return jsonify({"attempts": _emulator().deliver_due_webhooks()})


@bp.post("/webhooks/options")
def webhook_options():
    body = _body()
    delay = body.get("delay_seconds")
    options = _emulator().set_webhook_options(
        duplicate=body.get("duplicate"),
        reorder=body.get("reorder"),
        delay=timedelta(seconds=float(delay)) if delay is not None else None,
    )
    return jsonify(
        {"duplicate": options.duplicate, "reorder": options.reorder, "delay_seconds": options.delay.total_seconds()}
    )


@bp.post("/refunds/<refund_id>")
def settle_refund(refund_id: str):
    try:
        refund = _emulator().settle_refund(refund_id, str(_body().get("status", "success")))
    except KeyError:
        return _bad("no such refund", 404)
    except ValueError as error:
        return _bad(str(error), 409)
    return jsonify({"refund_id": refund["refund_id"], "status": refund["status"]})
