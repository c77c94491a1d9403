"""The emulator's behaviour: payments and their state machine, refunds, searches, the card journey.

Every change runs in one store transaction: read, apply lazy deadlines, change, record an event,
queue webhooks. Deadlines are applied lazily whenever a payment is read or listed (and by the
webhook tick), so a test clock that jumps forward sees exactly what GOV.UK Pay would show.
"""

from __future__ import annotations

import logging
import secrets
import threading
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from app.integrations.govuk_pay.emulator.errors import ApiError, not_found
from app.integrations.govuk_pay.emulator.faults import Faults, RateLimiter
from app.integrations.govuk_pay.emulator.resources import (
    FINISHED,
    RESUMABLE,
    UNFINISHED,
    iso_ms,
    payment_json,
    refund_summary,
    state_json,
)
from app.integrations.govuk_pay.emulator.settings import Account, EmulatorSettings
from app.integrations.govuk_pay.emulator.store import Store, parse_stamp, stamp
from app.integrations.govuk_pay.emulator.webhooks import WebhookOptions, Webhooks, delivery_json, new_id

log = logging.getLogger(__name__)

PAYMENT_EXPIRY = timedelta(minutes=90)
CAPTURE_DEADLINE = timedelta(hours=120)
IDEMPOTENCY_WINDOW = timedelta(hours=24)
IDEMPOTENCY_CONFLICT = "The Idempotency-Key you sent in the request header has already been used to create a payment."

# §11 test cards: these end badly; any other Luhn-valid number of an accepted brand succeeds.
DECLINED_CARDS = {"4000000000000002", "4000000000000069", "4000000000000127"}
GATEWAY_ERROR_CARDS = {"4000000000000119"}
DEBIT_CARDS = {"4000056655665556", "4000058260000005"}


def webhook_events(previous: str, status: str, code: str | None) -> list[str]:
    """Which webhooks GOV.UK Pay sends for a transition (pay-webhooks' event mapping)."""
    if status == "started":
        return ["card_payment_started"]
    if status == "capturable":
        return ["card_payment_succeeded"]
    if status == "success":
        if previous == "capturable":
            return ["card_payment_captured"]
        return ["card_payment_succeeded", "card_payment_captured"]
    if status == "failed" and code == "P0010":
        return ["card_payment_failed"]
    if status == "failed" and code == "P0020":
        return ["card_payment_expired"]
    return []


def add_working_days(start: date, days: int) -> date:
    current = start
    while days:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def stripe_fee(amount: int) -> int:
    """A Stripe-like UK card fee: 1.5% (rounded half up) plus 20p."""
    return (amount * 15 + 500) // 1000 + 20


class Emulator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.clock = settings.clock
        self.store = Store(settings.database_path)
        self.faults = Faults()
        self.rate_limiter = RateLimiter(settings.rate_limit_per_second)
        self.webhooks = Webhooks(
            self.store, self.clock, settings.webhook_sender, settings.webhook_retry_schedule, self._default_options()
        )
        # Links in webhook bodies need a base URL outside any request: the last one seen will do.
        self.base_url = settings.public_url.rstrip("/") or "http://127.0.0.1:5001"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _default_options(self) -> WebhookOptions:
        s = self.settings
        return WebhookOptions(duplicate=s.webhook_duplicate, reorder=s.webhook_reorder, delay=s.webhook_delay)

    def now(self) -> datetime:
        return self.clock.now()

    def link_base(self, host_url: str) -> str:
        base = self.settings.public_url.rstrip("/") or host_url.rstrip("/")
        self.base_url = base
        return base

    # --- accounts ---------------------------------------------------------------------------

    def account(self, api_key: str) -> Account | None:
        return self.settings.accounts.get(api_key) if api_key else None

    def account_named(self, name: str) -> Account | None:
        return next((a for a in self.settings.accounts.values() if a.name == name), None)

    def set_webhook_target(self, url: str, *, sender=None) -> None:
        """Point every account's webhooks at `url` (and optionally send them through `sender`)."""
        from dataclasses import replace

        for key, account in list(self.settings.accounts.items()):
            self.settings.accounts[key] = replace(account, webhook_url=url)
        if sender is not None:
            self.webhooks.sender = sender

    # --- state machine ----------------------------------------------------------------------

    def _transition(self, doc: dict[str, Any], status: str, code: str | None = None, *, at: datetime | None = None):
        previous = doc["status"]
        if previous in FINISHED:
            raise RuntimeError(f"payment {doc['payment_id']} is {previous}: finished states never change")
        at = at or self.now()
        doc["status"] = status
        doc["code"] = code
        if status == "success":
            self._fill_settlement(doc, at)
        self.store.save_payment(doc)
        self.store.add_event(doc["payment_id"], state_json(status, code), stamp(at))
        self.store.add_snapshot(doc, stamp(at + self.settings.search_lag))
        for event_type in webhook_events(previous, status, code):
            self._queue_webhook(doc, event_type, at)

    def _fill_settlement(self, doc: dict[str, Any], at: datetime) -> None:
        doc["capture_submit_time"] = iso_ms(at)
        doc["captured_date"] = at.date().isoformat()
        if self.settings.stripe_mode:
            doc["fee"] = stripe_fee(doc["amount"])
            doc["net_amount"] = doc["amount"] - doc["fee"]
            doc["settled_date"] = add_working_days(at.date(), 2).isoformat()

    def _queue_webhook(self, doc: dict[str, Any], event_type: str, at: datetime) -> None:
        account = self.account_named(doc["account"])
        if account is None or not account.webhook_url:
            return
        resource = payment_json(doc, self.store.refunds(payment_id=doc["payment_id"]), self.base_url)
        self.webhooks.queue(account, event_type, doc["payment_id"], resource, at)

    def _refresh(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Apply whatever deadline has passed: 90-minute expiry, 120-hour capture deadline, refund settling."""
        now = self.now()
        created = parse_stamp(doc["created_at"])
        if doc["status"] in RESUMABLE and now >= created + PAYMENT_EXPIRY:
            self._transition(doc, "failed", "P0020", at=created + PAYMENT_EXPIRY)
        elif doc["status"] == "capturable" and now >= created + CAPTURE_DEADLINE:
            self._transition(doc, "failed", "P0020", at=created + CAPTURE_DEADLINE)
        settle_after = self.settings.refund_settle_after
        if self.settings.live_like_refunds and settle_after is not None:
            for refund in self.store.refunds(payment_id=doc["payment_id"]):
                settles_at = parse_stamp(refund["created_at"]) + settle_after
                if refund["status"] == "submitted" and now >= settles_at:
                    self._finish_refund(doc, refund, "success", at=settles_at)
        return doc

    def _load(self, payment_id: str, account: Account | None = None) -> dict[str, Any] | None:
        doc = self.store.payment(payment_id)
        if doc is None or (account is not None and doc["account"] != account.name):
            return None  # another account's payment is simply not found
        return self._refresh(doc)

    def tick(self) -> None:
        """Apply the deadlines that have passed, to every payment (whether anyone reads it or not)."""
        now = self.now()
        with self.store.transaction():
            ids = self.store.payment_ids_past(RESUMABLE, stamp(now - PAYMENT_EXPIRY))
            ids += self.store.payment_ids_past(("capturable",), stamp(now - CAPTURE_DEADLINE))
            settle_after = self.settings.refund_settle_after
            if self.settings.live_like_refunds and settle_after is not None:
                ids += self.store.refunded_payment_ids("submitted", stamp(now - settle_after))
            for payment_id in dict.fromkeys(ids):
                self._load(payment_id)

    # --- API: payments ----------------------------------------------------------------------

    def create_payment(
        self, account: Account, fields: dict[str, Any], *, idempotency_key: str | None = None, fingerprint: str = ""
    ) -> tuple[dict[str, Any], bool]:
        """(payment, created): created is False when an Idempotency-Key replays an earlier create."""
        with self.store.transaction():
            now = self.now()
            if idempotency_key:
                seen = self.store.idempotency(account.name, idempotency_key)
                if seen and now < parse_stamp(seen["created_at"]) + IDEMPOTENCY_WINDOW:
                    if seen["body"] != fingerprint:
                        raise ApiError(409, "P0191", IDEMPOTENCY_CONFLICT, header="Idempotency-Key")
                    return self._load(seen["payment_id"]), False
            doc = {
                "payment_id": new_id(),
                "account": account.name,
                "created_at": stamp(now),
                "status": "created",
                "code": None,
                "amount": fields["amount"],
                "description": fields["description"],
                "reference": fields["reference"],
                "language": fields["language"],
                "email": fields.get("email"),
                "metadata": fields.get("metadata"),
                "return_url": fields["return_url"],
                "delayed_capture": fields["delayed_capture"],
                "moto": fields["moto"],
                "authorisation_mode": "web",
                "prefill": fields.get("prefill"),
                "card": None,
                "payment_provider": "stripe" if self.settings.stripe_mode else "sandbox",
                "provider_id": None,
            }
            self.store.insert_payment(doc)
            self.store.add_event(doc["payment_id"], state_json("created"), stamp(now))
            self.store.add_snapshot(doc, stamp(now + self.settings.search_lag))
            if idempotency_key:
                self.store.put_idempotency(account.name, idempotency_key, fingerprint, doc["payment_id"], stamp(now))
            return doc, True

    def payment(self, account: Account, payment_id: str) -> dict[str, Any] | None:
        with self.store.transaction():
            return self._load(payment_id, account)

    def new_token(self, payment_id: str) -> str:
        token = secrets.token_hex(16)
        self.store.add_token(token, payment_id, stamp(self.now()))
        return token

    def render_payment(self, doc: dict[str, Any], base: str) -> dict[str, Any]:
        """GET payment JSON; a resumable payment gets a fresh single-use next_url every time."""
        token = self.new_token(doc["payment_id"]) if doc["status"] in RESUMABLE else None
        return payment_json(doc, self.store.refunds(payment_id=doc["payment_id"]), base, next_token=token)

    def events(self, account: Account, payment_id: str) -> list[dict[str, Any]] | None:
        with self.store.transaction():
            if self._load(payment_id, account) is None:
                return None
            return self.store.events(payment_id)

    def cancel(self, account: Account, payment_id: str) -> None:
        with self.store.transaction():
            doc = self._load(payment_id, account)
            if doc is None:
                raise not_found("P0500")
            if doc["status"] not in UNFINISHED:
                raise ApiError(400, "P0501", "Cancellation of payment failed")
            self._transition(doc, "cancelled", "P0040")

    def capture(self, account: Account, payment_id: str) -> None:
        with self.store.transaction():
            doc = self._load(payment_id, account)
            if doc is None:
                raise not_found("P1000")
            if doc["status"] == "success":
                return  # capturing a captured payment changes nothing (pay-connector answers 204)
            if doc["status"] in ("failed", "cancelled", "error"):
                raise ApiError(400, "P1001", "Capture of payment failed")
            if doc["status"] != "capturable":
                raise ApiError(409, "P1003", "Payment cannot be captured")
            self._transition(doc, "success")

    # --- API: refunds -----------------------------------------------------------------------

    def create_refund(
        self, account: Account, payment_id: str, amount: int, refund_amount_available: int | None
    ) -> dict[str, Any]:
        with self.store.transaction():
            doc = self._load(payment_id, account)
            if doc is None:
                raise not_found("P0600")
            summary = refund_summary(doc, self.store.refunds(payment_id=payment_id))
            prefix = "The payment is not available for refund. Payment refund status: "
            if summary["status"] != "available":
                raise ApiError(400, "P0603", prefix + summary["status"])
            if refund_amount_available is not None and refund_amount_available != summary["amount_available"]:
                raise ApiError(412, "P0604", "Refund amount available mismatch.")
            if amount > summary["amount_available"]:
                raise ApiError(400, "P0603", prefix + "amount_not_available")
            now = self.now()
            refund = {
                "refund_id": new_id(),
                "payment_id": payment_id,
                "account": account.name,
                "amount": amount,
                "created_at": stamp(now),
                "status": "submitted",
                "settled_date": None,
            }
            self.store.insert_refund(refund)
            if not self.settings.live_like_refunds:
                self._finish_refund(doc, refund, "success", at=now)  # test accounts: straight to success
            return refund

    def _finish_refund(self, doc: dict[str, Any], refund: dict[str, Any], status: str, *, at: datetime) -> None:
        refund["status"] = status
        if status == "success" and self.settings.stripe_mode:
            refund["settled_date"] = add_working_days(at.date(), 2).isoformat()
        self.store.save_refund(refund)
        if status == "success":
            self._queue_webhook(doc, "card_payment_refunded", at)

    def settle_refund(self, refund_id: str, status: str = "success") -> dict[str, Any]:
        """Live-like mode: finish a submitted refund now, as success or error."""
        if status not in ("success", "error"):
            raise ValueError("a refund settles as success or error")
        with self.store.transaction():
            refund = self.store.refund(refund_id)
            if refund is None:
                raise KeyError(refund_id)
            if refund["status"] != "submitted":
                raise ValueError(f"refund {refund_id} is already {refund['status']}")
            doc = self.store.payment(refund["payment_id"])
            self._finish_refund(doc, refund, status, at=self.now())
            return refund

    def refund(self, account: Account, payment_id: str, refund_id: str) -> dict[str, Any] | None:
        with self.store.transaction():
            if self._load(payment_id, account) is None:
                return None
            refund = self.store.refund(refund_id)
            return refund if refund and refund["payment_id"] == payment_id else None

    def _visible(self, refunds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        cutoff = stamp(self.now() - self.settings.search_lag)
        return [r for r in refunds if r["created_at"] <= cutoff]

    def refunds_of(self, account: Account, payment_id: str) -> list[dict[str, Any]] | None:
        """List refunds: eventually consistent, so new refunds appear only after the search lag."""
        with self.store.transaction():
            if self._load(payment_id, account) is None:
                return None
            return self._visible(self.store.refunds(payment_id=payment_id))

    # --- API: searches ----------------------------------------------------------------------

    def search_payments(self, account: Account, filters: dict[str, Any]) -> list[tuple[dict, list[dict]]]:
        """Matching payments, newest first, as searches see them (search lag), each with its visible refunds."""
        self.tick()
        docs = self.store.visible_payments(account.name, stamp(self.now()))
        matched = [doc for doc in docs if _matches(doc, filters)]
        matched.sort(key=lambda doc: doc["created_at"], reverse=True)
        return [(doc, self._visible(self.store.refunds(payment_id=doc["payment_id"]))) for doc in matched]

    def search_refunds(self, account: Account, filters: dict[str, Any]) -> list[dict[str, Any]]:
        self.tick()
        refunds = self._visible(self.store.refunds(account=account.name))
        result = []
        for refund in refunds:
            created = parse_stamp(refund["created_at"])
            if "from_date" in filters and created < filters["from_date"]:
                continue
            if "to_date" in filters and created >= filters["to_date"]:
                continue
            settled = date.fromisoformat(refund["settled_date"]) if refund.get("settled_date") else None
            if "from_settled_date" in filters and (settled is None or settled < filters["from_settled_date"]):
                continue
            if "to_settled_date" in filters and (settled is None or settled > filters["to_settled_date"]):
                continue
            result.append(refund)
        result.sort(key=lambda r: r["created_at"], reverse=True)
        return result

    # --- the hosted card journey ------------------------------------------------------------

    def open_token(self, token: str) -> tuple[str, dict[str, Any] | None]:
        """("ok" | "used" | "unknown", payment). Using a token starts the payment (created → started)."""
        with self.store.transaction():
            row = self.store.token(token)
            if row is None:
                return "unknown", None
            doc = self._load(row["payment_id"])
            if row["used_at"] is not None or not self.store.use_token(token, stamp(self.now())):
                return "used", doc
            if doc["status"] == "created":
                self._transition(doc, "started")
            return "ok", doc

    def card_payment(self, payment_id: str) -> dict[str, Any] | None:
        with self.store.transaction():
            return self._load(payment_id)

    def authorise(self, payment_id: str, number: str, card: dict[str, Any], email: str | None) -> dict[str, Any]:
        """The payer submitted valid card details: decline, error or authorise (→ submitted)."""
        with self.store.transaction():
            doc = self._load(payment_id)
            if doc is None or doc["status"] != "started":
                return doc
            doc["card"] = card
            if email:
                doc["email"] = email
            if self.faults.take_card("card_error") or number in GATEWAY_ERROR_CARDS:
                self._transition(doc, "error", "P0050")
            elif number in DECLINED_CARDS:
                self._transition(doc, "failed", "P0010")
            else:
                stripe = self.settings.stripe_mode
                doc["provider_id"] = f"pi_{new_id(24)}" if stripe else str(uuid.uuid4())
                self._transition(doc, "submitted")
            return doc

    def confirm(self, payment_id: str) -> dict[str, Any]:
        with self.store.transaction():
            doc = self._load(payment_id)
            if doc is not None and doc["status"] == "submitted":
                self._transition(doc, "capturable" if doc["delayed_capture"] else "success")
            return doc

    def payer_cancel(self, payment_id: str) -> dict[str, Any]:
        with self.store.transaction():
            doc = self._load(payment_id)
            if doc is not None and doc["status"] in ("started", "submitted"):
                self._transition(doc, "failed", "P0030")
            return doc

    # --- webhooks, control ------------------------------------------------------------------

    def deliver_due_webhooks(self) -> list[dict[str, Any]]:
        """Apply due deadlines, then send every webhook due at clock.now(). Returns the attempts made."""
        self.tick()
        return self.webhooks.deliver_due()

    def deliveries(self) -> list[dict[str, Any]]:
        return [delivery_json(row) for row in self.store.webhooks()]

    def set_webhook_options(
        self, *, duplicate: bool | None = None, reorder: bool | None = None, delay: timedelta | None = None
    ) -> WebhookOptions:
        options = self.webhooks.options
        if duplicate is not None:
            options.duplicate = duplicate
        if reorder is not None:
            options.reorder = reorder
        if delay is not None:
            options.delay = delay
        return options

    def advance(self, delta: timedelta) -> datetime:
        self.clock.advance(delta)
        return self.now()

    def reset(self) -> None:
        """Forget every payment, refund, token, idempotency key and delivery; clear faults and options."""
        self.store.reset()
        self.faults.clear()
        self.rate_limiter.reset(self.settings.rate_limit_per_second)
        self.webhooks.options = self._default_options()
        self.webhooks.sender = self.settings.webhook_sender

    def start_background_delivery(self, interval: float = 1.0) -> None:
        if self._thread is not None:
            return

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.deliver_due_webhooks()
                except Exception:  # keep delivering whatever one tick did
                    log.exception("GOV.UK Pay emulator: webhook delivery failed")

        self._thread = threading.Thread(target=run, name="govuk-pay-emulator-webhooks", daemon=True)
        self._thread.start()

    def stop_background_delivery(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._stop = threading.Event()


def _matches(doc: dict[str, Any], filters: dict[str, Any]) -> bool:
    card = doc.get("card") or {}
    created = parse_stamp(doc["created_at"])
    if "reference" in filters and doc["reference"].lower() != filters["reference"].lower():
        return False
    if "email" in filters and filters["email"].lower() not in (doc.get("email") or "").lower():
        return False
    if "state" in filters and doc["status"] != filters["state"]:
        return False
    if "card_brand" in filters and _brand_key(card.get("card_brand")) != _brand_key(filters["card_brand"]):
        return False
    if "from_date" in filters and created < filters["from_date"]:
        return False
    if "to_date" in filters and created >= filters["to_date"]:
        return False
    if "cardholder_name" in filters:
        if filters["cardholder_name"].lower() not in (card.get("cardholder_name") or "").lower():
            return False
    for digits in ("first_digits_card_number", "last_digits_card_number"):
        if digits in filters and card.get(digits) != filters[digits]:
            return False
    settled = date.fromisoformat(doc["settled_date"]) if doc.get("settled_date") else None
    if "from_settled_date" in filters and (settled is None or settled < filters["from_settled_date"]):
        return False
    return not ("to_settled_date" in filters and (settled is None or settled > filters["to_settled_date"]))


def _brand_key(brand: str | None) -> str:
    return "".join(ch for ch in (brand or "").lower() if ch.isalnum())
