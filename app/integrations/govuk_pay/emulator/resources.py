"""The JSON shapes of GOV.UK Pay's public API, built from the emulator's stored documents."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from app.integrations.govuk_pay.emulator.store import parse_stamp

FINISHED = ("success", "failed", "cancelled", "error")
UNFINISHED = ("created", "started", "submitted", "capturable")
RESUMABLE = ("created", "started", "submitted")
STATUSES = UNFINISHED + FINISHED
MESSAGES = {
    "P0010": "Payment method rejected",
    "P0020": "Payment expired",
    "P0030": "Payment was cancelled by the user",
    "P0040": "Payment was cancelled by the service",
    "P0050": "Payment provider returned an error",
}


def iso_ms(stamp: str | datetime) -> str:
    """GOV.UK Pay's date-time format: UTC with milliseconds and Z (2026-03-02T10:36:26.988Z)."""
    when = parse_stamp(stamp) if isinstance(stamp, str) else stamp
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def state_json(status: str, code: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"status": status, "finished": status in FINISHED}
    if code:
        state["code"] = code
        state["message"] = MESSAGES[code]
    return state


def refund_summary(doc: dict[str, Any], refunds: list[dict[str, Any]]) -> dict[str, Any]:
    submitted = sum(r["amount"] for r in refunds if r["status"] in ("submitted", "success"))
    status = doc["status"]
    if status == "success":
        available = doc["amount"] - submitted
        return {
            "status": "full" if available <= 0 else "available",
            "amount_available": max(available, 0),
            "amount_submitted": submitted,
        }
    if status in UNFINISHED:
        return {"status": "pending", "amount_available": doc["amount"], "amount_submitted": 0}
    return {"status": "unavailable", "amount_available": 0, "amount_submitted": 0}


def _link(href: str, method: str = "GET") -> dict[str, str]:
    return {"href": href, "method": method}


def payment_json(
    doc: dict[str, Any], refunds: list[dict[str, Any]], base: str, *, next_token: str | None = None
) -> dict[str, Any]:
    """GET /v1/payments/{id} (and create, search results, webhook resources)."""
    payment_id = doc["payment_id"]
    body: dict[str, Any] = {
        "amount": doc["amount"],
        "description": doc["description"],
        "reference": doc["reference"],
        "language": doc["language"],
    }
    if doc.get("email") is not None:
        body["email"] = doc["email"]
    if doc.get("metadata") is not None:
        body["metadata"] = doc["metadata"]
    body["state"] = state_json(doc["status"], doc.get("code"))
    body["payment_id"] = payment_id
    body["payment_provider"] = doc["payment_provider"]
    body["created_date"] = iso_ms(doc["created_at"])
    body["refund_summary"] = refund_summary(doc, refunds)
    settlement: dict[str, Any] = {}
    for name in ("capture_submit_time", "captured_date", "settled_date"):
        if doc.get(name):
            settlement[name] = doc[name]
    body["settlement_summary"] = settlement
    card = doc.get("card") or doc.get("prefill")
    if card:
        body["card_details"] = {name: value for name, value in card.items() if value is not None}
    body["delayed_capture"] = doc["delayed_capture"]
    body["moto"] = doc["moto"]
    body["return_url"] = doc["return_url"]
    body["authorisation_mode"] = doc["authorisation_mode"]
    if doc.get("provider_id"):
        body["provider_id"] = doc["provider_id"]
    if doc.get("fee") is not None:
        body["fee"] = doc["fee"]
        body["net_amount"] = doc["net_amount"]

    self_url = f"{base}/v1/payments/{payment_id}"
    links: dict[str, Any] = {"self": _link(self_url)}
    if next_token:
        links["next_url"] = _link(f"{base}/secure/{next_token}")
        links["next_url_post"] = {
            "type": "application/x-www-form-urlencoded",
            "params": {"chargeTokenId": next_token},
            "href": f"{base}/secure",
            "method": "POST",
        }
    links["events"] = _link(f"{self_url}/events")
    links["refunds"] = _link(f"{self_url}/refunds")
    if doc["status"] in UNFINISHED:
        links["cancel"] = _link(f"{self_url}/cancel", "POST")
    if doc["status"] == "capturable":
        links["capture"] = _link(f"{self_url}/capture", "POST")
    body["_links"] = links
    return body


def events_json(payment_id: str, events: list[dict[str, Any]], base: str) -> dict[str, Any]:
    payment_url = f"{base}/v1/payments/{payment_id}"
    return {
        "payment_id": payment_id,
        "events": [
            {
                "payment_id": payment_id,
                "state": event["state"],
                "updated": iso_ms(event["at"]),
                "_links": {"payment_url": _link(payment_url)},
            }
            for event in events
        ],
        "_links": {"self": _link(f"{payment_url}/events")},
    }


def refund_json(refund: dict[str, Any], base: str, *, with_payment_id: bool = False) -> dict[str, Any]:
    payment_url = f"{base}/v1/payments/{refund['payment_id']}"
    body: dict[str, Any] = {"refund_id": refund["refund_id"]}
    if with_payment_id:
        body["payment_id"] = refund["payment_id"]
    body.update(
        {
            "created_date": iso_ms(refund["created_at"]),
            "amount": refund["amount"],
            "status": refund["status"],
            "settlement_summary": {"settled_date": refund["settled_date"]} if refund.get("settled_date") else {},
            "_links": {
                "self": _link(f"{payment_url}/refunds/{refund['refund_id']}"),
                "payment": _link(payment_url),
            },
        }
    )
    return body


def refunds_json(payment_id: str, refunds: list[dict[str, Any]], base: str) -> dict[str, Any]:
    payment_url = f"{base}/v1/payments/{payment_id}"
    return {
        "payment_id": payment_id,
        "_links": {"self": {"href": f"{payment_url}/refunds"}, "payment": {"href": payment_url}},
        "_embedded": {"refunds": [refund_json(refund, base) for refund in refunds]},
    }


def page_links(url: str, params: dict[str, str], page: int, display_size: int, last_page: int) -> dict[str, Any]:
    """self/first/last/prev/next links of a search page, keeping the search's own parameters."""

    def href(number: int) -> dict[str, str]:
        query = {**params, "page": str(number), "display_size": str(display_size)}
        return {"href": f"{url}?{urlencode(query)}"}

    links = {"self": href(page), "first_page": href(1), "last_page": href(last_page)}
    if page > 1:
        links["prev_page"] = href(page - 1)
    if page < last_page:
        links["next_page"] = href(page + 1)
    return links
