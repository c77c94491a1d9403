"""GOV.UK Pay public API client: typed results, typed errors, safe retries.

A pure integration module (no Flask, no database) so the domain can call it from a request,
a queue task or the reconciler alike. The contract is ../shared/spec/govuk-pay.md; the
points that shape this module:

* Money is integer pence on the wire and here. JSON is parsed with `parse_float=Decimal` and
  amounts are checked to be `int`, so a float never enters the ledger's path.
* Only 429, 5xx, timeouts and network errors are retried (exponential backoff with jitter).
  A 4xx is an answer: repeating it cannot change it and may do harm.
* A create is always sent with an `Idempotency-Key` and every retry reuses it, so a create
  whose response was lost cannot make a second payment: GOV.UK Pay replays the original
  with 200 instead of 201 (`Payment.created` is False).
* Refunds have no idempotency key; `refund_amount_available` is the guard. A refund retried
  after a lost response fails with 412 P0604 (the amount available has moved), never
  refunds twice. The caller must then re-read the payment to learn what happened.
* Unknown response fields are ignored and optional ones may be missing: GOV.UK Pay adds
  fields without notice and omits ones that do not apply (Worldpay has no `fee`).
* The API key, card details, the single-use `next_url` and search filters (which may hold
  names, e-mail addresses or card digits) are never logged and are kept out of reprs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://publicapi.payments.service.gov.uk"
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)

# GOV.UK Pay's rate-limit guidance: "After a second, you'll be able to retry". Backoff never
# waits less than this after a 429, whatever backoff_seconds says.
RATE_LIMIT_WAIT_SECONDS = 1.0

# Statuses whose `finished` is true (spec §3); used only when a response omits `finished`.
FINISHED_STATUSES = frozenset({"success", "failed", "cancelled", "error"})

# Idempotency-Key: 1-255 of [A-Za-z0-9-] (spec §2). Checked here so a bad key is a
# programming error at the call site, not a 422 from GOV.UK Pay.
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9-]{1,255}$")

# GOV.UK Pay's firewall blocks requests containing these (400 P0920), and a quote or a
# backslash in a JSON string comes out as a backslash escape. Our own reference and
# description are refused before sending so the cause is obvious.
_FIREWALL_CHARACTERS = frozenset('<>"\\|')

_SEARCH_FILTERS = frozenset(
    {
        "reference",
        "email",
        "state",
        "card_brand",
        "from_date",
        "to_date",
        "from_settled_date",
        "to_settled_date",
        "cardholder_name",
        "first_digits_card_number",
        "last_digits_card_number",
        "page",
        "display_size",
    }
)
# Filters GOV.UK Pay takes as a moment (YYYY-MM-DDThh:mm:ssZ) and as a date (YYYY-MM-DD).
_DATETIME_FILTERS = frozenset({"from_date", "to_date"})
_DATE_FILTERS = frozenset({"from_settled_date", "to_settled_date"})


# --- errors ---------------------------------------------------------------------------------


class PayError(Exception):
    """Any failure talking to GOV.UK Pay; subclasses say which kind.

    Built from GOV.UK Pay's error envelope `{code, description, field|header}` when there is
    one. `retryable` says whether the same request may succeed later (429, 5xx, network):
    when it is True the client has already retried `attempts` times. `description` is for
    developers and logs, never for payers.
    """

    def __init__(
        self,
        description: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        header: str | None = None,
        retryable: bool = False,
        attempts: int = 1,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description
        self.field = field
        self.header = header
        self.retryable = retryable
        self.attempts = attempts

    def __str__(self) -> str:
        parts = [f"HTTP {self.status}" if self.status is not None else "no response"]
        if self.code:
            parts.append(self.code)
        text = f"{' '.join(parts)}: {self.description}"
        if self.field:
            text += f" (field {self.field})"
        if self.header:
            text += f" (header {self.header})"
        if self.attempts > 1:
            text += f" after {self.attempts} attempts"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, description={self.description!r})"


class PayAuthError(PayError):
    """401: the API key is missing, wrong or revoked. GOV.UK Pay sends no body with it."""


class PayNotFound(PayError):
    """404: no such payment/refund for this API key (another account's payment also 404s)."""


class PayBadRequest(PayError):
    """400 or 422: the request was refused as invalid (validation, P0501/P1001/P0603, P0920)."""


class PayConflict(PayError):
    """409: P0191 Idempotency-Key reused with a different body, P0502 cancel, P1003 capture."""


class PayRefundMismatch(PayError):
    """412 P0604: `refund_amount_available` no longer matches; re-read the payment first."""


class PayForbidden(PayError):
    """403: a feature is not enabled for the account (P0930, P0940, P0941)."""


class PayRateLimited(PayError):
    """429 P0900, still refused after every retry."""


class PayUnavailable(PayError):
    """5xx, timeout or network failure, still failing after every retry.

    The outcome of a write is unknown: the request may have been processed. Callers treat
    payment status as "unknown" and leave it to the reconciler, never as failed.
    """


_ERRORS_BY_STATUS: dict[int, type[PayError]] = {
    400: PayBadRequest,
    401: PayAuthError,
    403: PayForbidden,
    404: PayNotFound,
    409: PayConflict,
    412: PayRefundMismatch,
    422: PayBadRequest,
    429: PayRateLimited,
}


def _error_class(status: int) -> type[PayError]:
    if status >= 500:
        return PayUnavailable
    return _ERRORS_BY_STATUS.get(status, PayError)


def _is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentState:
    """`state`: `code`/`message` are set for failed/cancelled/error (e.g. P0030 payer cancelled)."""

    status: str
    finished: bool
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class CardDetails:
    """What GOV.UK Pay tells us about the card. Personal data: kept out of the repr."""

    last_digits_card_number: str | None = field(default=None, repr=False)
    first_digits_card_number: str | None = field(default=None, repr=False)
    cardholder_name: str | None = field(default=None, repr=False)
    expiry_date: str | None = field(default=None, repr=False)
    card_brand: str | None = None
    card_type: str | None = None
    wallet_type: str | None = None
    billing_address: dict | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RefundSummary:
    """`status` is pending|unavailable|available|full; refund only when "available"."""

    status: str
    amount_available: int
    amount_submitted: int


@dataclass(frozen=True)
class SettlementSummary:
    """Capture and (Stripe only) settlement dates; all None until they happen."""

    capture_submit_time: datetime | None
    captured_date: date | None
    settled_date: date | None


@dataclass(frozen=True)
class Payment:
    """One payment as GOV.UK Pay describes it. `raw` is the parsed JSON as received.

    `next_url` is a single-use token that lets whoever holds it take over the payment: it
    is only for redirecting the payer, so it (and `raw`, `links`, card details and e-mail)
    stays out of the repr. `created` is True only for a 201 from create; a 200 replay of an
    Idempotency-Key and every get/search give False. `location` is the `Location` header of
    a create response (the payment's URL), else None.
    """

    payment_id: str
    amount: int
    reference: str
    description: str
    state: PaymentState
    return_url: str | None = field(repr=False)
    email: str | None = field(repr=False)
    language: str
    metadata: dict
    created_date: datetime
    next_url: str | None = field(repr=False)
    card_details: CardDetails | None = field(repr=False)
    refund_summary: RefundSummary | None
    settlement_summary: SettlementSummary | None
    fee: int | None
    net_amount: int | None
    provider_id: str | None
    payment_provider: str | None
    delayed_capture: bool
    moto: bool
    links: dict = field(repr=False)
    raw: dict = field(repr=False)
    created: bool = False
    location: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PaymentEvent:
    """One state change from `/events` (oldest first)."""

    payment_id: str
    state: PaymentState
    updated: datetime


@dataclass(frozen=True)
class Refund:
    """A refund; `status` is submitted|success|error (test accounts go straight to success)."""

    refund_id: str
    payment_id: str | None
    amount: int
    status: str
    created_date: datetime
    raw: dict = field(repr=False)


@dataclass(frozen=True)
class SearchPage:
    """One page of an (eventually consistent) payment search; never use it to decide a journey."""

    total: int
    count: int
    page: int
    results: list[Payment]
    links: dict = field(repr=False)


# --- money and webhooks ---------------------------------------------------------------------


def pence_from_pounds(value: Decimal | str | int) -> int:
    """Exact pounds → integer pence: Decimal("12.34") and "12.34" → 1234.

    Raises ValueError for sub-penny values ("0.001"), non-finite or unparseable values and
    floats: a float has already lost exactness (0.1 + 0.2), so it is refused rather than
    rounded. Done with integer arithmetic on the Decimal's digits so no context precision
    or rounding mode can hide a sub-penny remainder.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f"Amounts must be Decimal or str, not {type(value).__name__}")
    if isinstance(value, int):
        return value * 100
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"Not an amount of money: {value!r}") from None
    if not isinstance(value, Decimal):
        raise ValueError(f"Amounts must be Decimal or str, not {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"Not an amount of money: {value}")
    if value and value.adjusted() > 15:  # more than a quadrillion pounds: garbage, and 10**exp could be huge
        raise ValueError(f"Amount out of range: {value}")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    number = int("".join(map(str, digits))) if digits else 0
    if number == 0:
        return 0
    shift = exponent + 2  # pounds → pence
    if -shift > len(digits):  # fewer digits than the divisor has zeros: cannot divide evenly
        raise ValueError(f"Amount has fractions of a penny: {value}")
    if shift >= 0:
        pence = number * 10**shift
    else:
        divisor = 10**-shift
        if number % divisor:
            raise ValueError(f"Amount has fractions of a penny: {value}")
        pence = number // divisor
    return -pence if sign else pence


def sign_webhook(body: bytes, secret: str) -> str:
    """`Pay-Signature` for `body`: lower-case hex HMAC-SHA256 of the raw bytes, keyed by the secret (UTF-8)."""
    return hmac.new(secret.encode("utf-8"), bytes(body), hashlib.sha256).hexdigest()


def verify_webhook_signature(body: bytes, signature: str | None, secret: str) -> bool:
    """True only when `signature` is the HMAC of the raw `body` under `secret`.

    Verify on the bytes as received, before parsing: re-serialised JSON would not match.
    Constant-time comparison so the signature cannot be guessed byte by byte. Anything
    missing or malformed (no header, empty secret, non-hex junk) is simply False. Hex is
    compared case-insensitively and surrounding whitespace ignored: neither weakens it.
    """
    if not signature or not isinstance(signature, str) or not secret:
        return False
    expected = sign_webhook(body, secret).encode("ascii")
    candidate = signature.strip().lower().encode("utf-8", errors="replace")
    return hmac.compare_digest(expected, candidate)


# --- parsing --------------------------------------------------------------------------------


def _malformed(what: str, status: int | None) -> PayError:
    return PayError(f"Unexpected response from GOV.UK Pay: {what}", status=status)


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _int_or_none(value: Any) -> int | None:
    """An integer field, or None when absent. Non-integers (e.g. 1.5) are not money: None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _require_int(data: Mapping, key: str, status: int | None) -> int:
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _malformed(f"{key!r} is not an integer", status)


def _require_str(data: Mapping, key: str, status: int | None) -> str:
    value = data.get(key)
    if isinstance(value, str) and value:
        return value
    raise _malformed(f"{key!r} is missing", status)


def _parse_datetime(value: Any) -> datetime | None:
    """ISO 8601 ("2026-03-02T10:36:26.988Z") → aware UTC datetime; None if absent or unreadable.

    A value without an offset is taken as UTC: GOV.UK Pay only speaks UTC.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        log.warning("GOV.UK Pay sent an unreadable date-time %r", value)
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_date(value: Any) -> date | None:
    """A date-only field ("2026-03-02"); tolerates a full date-time by taking its UTC date."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        moment = _parse_datetime(value)
        return moment.date() if moment else None


def _require_datetime(data: Mapping, key: str, status: int | None) -> datetime:
    moment = _parse_datetime(data.get(key))
    if moment is None:
        raise _malformed(f"{key!r} is missing or not a date-time", status)
    return moment


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _parse_state(value: Any, status: int | None) -> PaymentState:
    data = _dict(value)
    state = _require_str(data, "status", status)
    finished = data.get("finished")
    return PaymentState(
        status=state,
        finished=finished if isinstance(finished, bool) else state in FINISHED_STATUSES,
        code=_str_or_none(data.get("code")),
        message=_str_or_none(data.get("message")),
    )


def _parse_card_details(value: Any) -> CardDetails | None:
    if not isinstance(value, dict):
        return None
    address = value.get("billing_address")
    return CardDetails(
        last_digits_card_number=_str_or_none(value.get("last_digits_card_number")),
        first_digits_card_number=_str_or_none(value.get("first_digits_card_number")),
        cardholder_name=_str_or_none(value.get("cardholder_name")),
        expiry_date=_str_or_none(value.get("expiry_date")),
        card_brand=_str_or_none(value.get("card_brand")),
        card_type=_str_or_none(value.get("card_type")),
        wallet_type=_str_or_none(value.get("wallet_type")),
        billing_address=address if isinstance(address, dict) else None,
    )


def _parse_refund_summary(value: Any) -> RefundSummary | None:
    if not isinstance(value, dict) or not isinstance(value.get("status"), str):
        return None
    return RefundSummary(
        status=value["status"],
        amount_available=_int_or_none(value.get("amount_available")) or 0,
        amount_submitted=_int_or_none(value.get("amount_submitted")) or 0,
    )


def _parse_settlement_summary(value: Any) -> SettlementSummary | None:
    if not isinstance(value, dict):
        return None
    return SettlementSummary(
        capture_submit_time=_parse_datetime(value.get("capture_submit_time")),
        captured_date=_parse_date(value.get("captured_date")),
        settled_date=_parse_date(value.get("settled_date")),
    )


def _link(links: Mapping, name: str) -> str | None:
    return _str_or_none(_dict(links.get(name)).get("href"))


def parse_payment(
    data: Any, *, status: int | None = None, created: bool = False, location: str | None = None
) -> Payment:
    """Build a Payment from a GET/create/search/webhook `resource` JSON object.

    Public so the webhook handler can read `resource` the same way (though it should
    re-GET the payment rather than trust a possibly stale webhook body).
    """
    if not isinstance(data, dict):
        raise _malformed("a payment is not a JSON object", status)
    links = _dict(data.get("_links"))
    metadata = data.get("metadata")
    language = data.get("language")
    return Payment(
        payment_id=_require_str(data, "payment_id", status),
        amount=_require_int(data, "amount", status),
        reference=_str_or_none(data.get("reference")) or "",
        description=_str_or_none(data.get("description")) or "",
        state=_parse_state(data.get("state"), status),
        return_url=_str_or_none(data.get("return_url")),
        email=_str_or_none(data.get("email")),
        language=language if isinstance(language, str) and language else "en",
        metadata=metadata if isinstance(metadata, dict) else {},
        created_date=_require_datetime(data, "created_date", status),
        next_url=_link(links, "next_url"),
        card_details=_parse_card_details(data.get("card_details")),
        refund_summary=_parse_refund_summary(data.get("refund_summary")),
        settlement_summary=_parse_settlement_summary(data.get("settlement_summary")),
        fee=_int_or_none(data.get("fee")),
        net_amount=_int_or_none(data.get("net_amount")),
        provider_id=_str_or_none(data.get("provider_id")),
        payment_provider=_str_or_none(data.get("payment_provider")),
        delayed_capture=data.get("delayed_capture") is True,
        moto=data.get("moto") is True,
        links=links,
        raw=data,
        created=created,
        location=location,
    )


def _parse_refund(data: Any, payment_id: str | None, status: int | None) -> Refund:
    if not isinstance(data, dict):
        raise _malformed("a refund is not a JSON object", status)
    return Refund(
        refund_id=_require_str(data, "refund_id", status),
        payment_id=_str_or_none(data.get("payment_id")) or payment_id,
        amount=_require_int(data, "amount", status),
        status=_require_str(data, "status", status),
        created_date=_require_datetime(data, "created_date", status),
        raw=data,
    )


# --- request building -----------------------------------------------------------------------


def _check_pence(name: str, value: Any) -> int:
    """Amounts are int pence. bool is an int subclass and float is inexact: both refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int number of pence, not {type(value).__name__}")
    return value


def _check_firewall_safe(name: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    bad = sorted(_FIREWALL_CHARACTERS.intersection(value))
    if bad:
        raise ValueError(f"{name} contains characters GOV.UK Pay's firewall blocks: {' '.join(bad)}")


def _check_metadata(metadata: Mapping) -> dict:
    """Metadata values go to GOV.UK Pay as JSON; a float would be inexact and a Decimal cannot be encoded."""
    checked = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ValueError("metadata keys must be strings")
        if isinstance(value, float | Decimal):
            raise ValueError(f"metadata value for {key!r} must be str, int or bool, not {type(value).__name__}")
        if not isinstance(value, str | int):  # bool is an int
            raise ValueError(f"metadata value for {key!r} must be str, int or bool, not {type(value).__name__}")
        checked[key] = value
    return checked


def _format_filter(name: str, value: Any) -> str:
    if name in _DATETIME_FILTERS:
        if not isinstance(value, datetime):
            if isinstance(value, str):
                return value
            raise ValueError(f"{name} must be a datetime (GOV.UK Pay wants a moment, not a date)")
        if value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware: GOV.UK Pay works in UTC")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if name in _DATE_FILTERS:
        if isinstance(value, datetime):
            raise ValueError(f"{name} must be a date, not a datetime")
        if isinstance(value, date):
            return value.isoformat()
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        raise ValueError(f"{name} must not be a float")
    return str(value)


def _segment(value: str, name: str) -> str:
    """Quote an id for the URL path so a stray '/' or '?' cannot reach another endpoint."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return quote(value, safe="")


def _json_bytes(body: Mapping) -> bytes:
    # ensure_ascii=False: "\u00e9"-style escapes would put backslashes in the body, which the
    # firewall may block; UTF-8 is what GOV.UK Pay expects anyway.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _load_json(content: bytes) -> Any:
    # parse_float=Decimal: no float ever leaves this module, even from unexpected fields.
    return json.loads(content, parse_float=Decimal)


# --- the client -----------------------------------------------------------------------------


class GovukPayClient:
    """One GOV.UK Pay account (API key). Reuse it: it pools connections. Thread-safe.

    `transport` lets tests use `httpx.MockTransport` and the emulator `httpx.WSGITransport`;
    `sleep` is injectable so retry tests do not wait.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_attempts: int = 4,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str = "council-ims",
    ) -> None:
        if not api_key or not isinstance(api_key, str):
            raise ValueError("A GOV.UK Pay API key is required")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._api_key = api_key
        self.base_url = base_url
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            follow_redirects=False,  # a redirect would be a misconfigured base URL: fail, don't follow
            headers={"Accept": "application/json", "User-Agent": user_agent},
        )

    def __repr__(self) -> str:  # never show the key
        return f"GovukPayClient(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __enter__(self) -> GovukPayClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- payments ---------------------------------------------------------------------------

    def create_payment(
        self,
        *,
        amount_pence: int,
        reference: str,
        description: str,
        return_url: str,
        idempotency_key: str,
        email: str | None = None,
        metadata: dict | None = None,
        language: str = "en",
        cardholder_name: str | None = None,
        billing_address: dict | None = None,
        delayed_capture: bool = False,
        moto: bool = False,
    ) -> Payment:
        """`POST /v1/payments`. Returns created=True for 201, created=False for a 200 replay.

        `idempotency_key` should be the attempt's own id: retries (ours or a caller's) with
        the same key and body return the same payment; the same key with a different body
        is a PayConflict (P0191). Empty metadata is left out (GOV.UK Pay wants 1-15 keys).
        """
        _check_pence("amount_pence", amount_pence)
        _check_firewall_safe("reference", reference)
        _check_firewall_safe("description", description)
        if not isinstance(return_url, str) or not return_url:
            raise ValueError("return_url must be a non-empty string")
        if not isinstance(idempotency_key, str) or not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise ValueError("idempotency_key must be 1-255 characters of A-Z, a-z, 0-9 and '-'")
        body: dict[str, Any] = {
            "amount": amount_pence,
            "reference": reference,
            "description": description,
            "return_url": return_url,
            "language": language,
        }
        if email:
            body["email"] = email
        if metadata:
            body["metadata"] = _check_metadata(metadata)
        prefill: dict[str, Any] = {}
        if cardholder_name:
            prefill["cardholder_name"] = cardholder_name
        if billing_address:
            prefill["billing_address"] = dict(billing_address)
        if prefill:
            body["prefilled_cardholder_details"] = prefill
        if delayed_capture:
            body["delayed_capture"] = True
        if moto:
            # A telephone payment keyed by staff: needs MOTO switched on for the account (P0196).
            body["moto"] = True
        response = self._request("POST", "/v1/payments", json_body=body, headers={"Idempotency-Key": idempotency_key})
        return parse_payment(
            self._json(response),
            status=response.status_code,
            created=response.status_code == 201,
            location=response.headers.get("Location"),
        )

    def get_payment(self, payment_id: str) -> Payment:
        """`GET /v1/payments/{id}`: the strongly consistent source of truth for an outcome."""
        response = self._request("GET", f"/v1/payments/{_segment(payment_id, 'payment_id')}")
        return parse_payment(self._json(response), status=response.status_code)

    def get_events(self, payment_id: str) -> list[PaymentEvent]:
        """`GET /v1/payments/{id}/events`: state changes, oldest first."""
        response = self._request("GET", f"/v1/payments/{_segment(payment_id, 'payment_id')}/events")
        data = _dict(self._json(response))
        events = data.get("events")
        if not isinstance(events, list):
            raise _malformed("'events' is not a list", response.status_code)
        outer_id = _str_or_none(data.get("payment_id")) or payment_id
        result = []
        for event in events:
            event = _dict(event)
            result.append(
                PaymentEvent(
                    payment_id=_str_or_none(event.get("payment_id")) or outer_id,
                    state=_parse_state(event.get("state"), response.status_code),
                    updated=_require_datetime(event, "updated", response.status_code),
                )
            )
        return result

    def cancel_payment(self, payment_id: str) -> None:
        """`POST /v1/payments/{id}/cancel` → 204. Only while the payment has `_links.cancel`.

        After a lost response a retry may get 400 P0501 / 409 P0502 because the first try
        worked: on PayBadRequest/PayConflict with attempts > 1, re-GET before concluding.
        """
        self._request("POST", f"/v1/payments/{_segment(payment_id, 'payment_id')}/cancel")

    def capture_payment(self, payment_id: str) -> None:
        """`POST /v1/payments/{id}/capture` → 204. Only while `capturable` (within 120 h).

        Same caveat as cancel: a retried capture may see 400 P1001 / 409 P1003 after success.
        """
        self._request("POST", f"/v1/payments/{_segment(payment_id, 'payment_id')}/capture")

    # --- refunds ----------------------------------------------------------------------------

    def create_refund(self, payment_id: str, *, amount_pence: int, refund_amount_available: int) -> Refund:
        """`POST /v1/payments/{id}/refunds` → 202.

        `refund_amount_available` must be the `refund_summary.amount_available` just read:
        GOV.UK Pay refuses with 412 P0604 (PayRefundMismatch) if it has changed, which is what
        stops a double refund, including one from our own retry after a lost response.
        """
        _check_pence("amount_pence", amount_pence)
        _check_pence("refund_amount_available", refund_amount_available)
        response = self._request(
            "POST",
            f"/v1/payments/{_segment(payment_id, 'payment_id')}/refunds",
            json_body={"amount": amount_pence, "refund_amount_available": refund_amount_available},
        )
        return _parse_refund(self._json(response), payment_id, response.status_code)

    def get_refund(self, payment_id: str, refund_id: str) -> Refund:
        """`GET /v1/payments/{id}/refunds/{refund_id}`: poll until success or error."""
        path = f"/v1/payments/{_segment(payment_id, 'payment_id')}/refunds/{_segment(refund_id, 'refund_id')}"
        response = self._request("GET", path)
        return _parse_refund(self._json(response), payment_id, response.status_code)

    def list_refunds(self, payment_id: str) -> list[Refund]:
        """`GET /v1/payments/{id}/refunds` (`_embedded.refunds`). Eventually consistent."""
        response = self._request("GET", f"/v1/payments/{_segment(payment_id, 'payment_id')}/refunds")
        data = _dict(self._json(response))
        refunds = _dict(data.get("_embedded")).get("refunds", [])
        if not isinstance(refunds, list):
            raise _malformed("'_embedded.refunds' is not a list", response.status_code)
        outer_id = _str_or_none(data.get("payment_id")) or payment_id
        return [_parse_refund(refund, outer_id, response.status_code) for refund in refunds]

    # --- search -----------------------------------------------------------------------------

    def search_payments(self, **filters: Any) -> SearchPage:
        """`GET /v1/payments` with GOV.UK Pay's filters; None values are left out.

        `from_date` (inclusive) and `to_date` (exclusive) take aware datetimes, sent as
        YYYY-MM-DDThh:mm:ssZ (fractions of a second dropped); the settled dates take dates.
        Eventually consistent: for reports and reconciliation, never to decide a journey.
        Unknown filter names raise TypeError, like any unexpected keyword argument.
        """
        unknown = sorted(set(filters) - _SEARCH_FILTERS)
        if unknown:
            raise TypeError(f"search_payments() got unexpected filters: {', '.join(unknown)}")
        params = {name: _format_filter(name, value) for name, value in filters.items() if value is not None}
        response = self._request("GET", "/v1/payments", params=params)
        data = _dict(self._json(response))
        results = data.get("results", [])
        if not isinstance(results, list):
            raise _malformed("'results' is not a list", response.status_code)
        payments = [parse_payment(item, status=response.status_code) for item in results]
        return SearchPage(
            total=_int_or_none(data.get("total")) or 0,
            count=_int_or_none(data.get("count")) or len(payments),
            page=_int_or_none(data.get("page")) or 1,
            results=payments,
            links=_dict(data.get("_links")),
        )

    # --- transport --------------------------------------------------------------------------

    def _json(self, response: httpx.Response) -> Any:
        try:
            return _load_json(response.content)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise _malformed("the body is not JSON", response.status_code) from None

    def _backoff(self, attempt: int, rate_limited: bool) -> float:
        # Exponential backoff with jitter, so clients that failed together don't retry together.
        delay = self.backoff_seconds * 2 ** (attempt - 1)
        delay += random.uniform(0, self.backoff_seconds)  # noqa: S311 - jitter, not security
        return max(delay, RATE_LIMIT_WAIT_SECONDS) if rate_limited else delay

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send with retries; return the 2xx response or raise a PayError subclass.

        Cancel and capture go with no body and no Content-Type, exactly as GOV.UK Pay's API
        reference shows them (`curl -X POST … -H "Authorization: Bearer …"`, "You do not need
        to send anything in the body"). The firewall's "empty body / missing content type"
        rule is about endpoints that take JSON; an empty "{}" would be a body the endpoint
        does not define. httpx still sends Content-Length: 0, as a POST should.
        """
        request_headers = {"Authorization": f"Bearer {self._api_key}"}
        content: bytes | None = None
        if json_body is not None:
            content = _json_bytes(json_body)
            request_headers["Content-Type"] = "application/json"
        if headers:
            request_headers.update(headers)

        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                response = self._http.request(method, path, content=content, params=params, headers=request_headers)
            except httpx.TransportError as exc:  # timeouts, refused/reset connections, protocol errors
                elapsed_ms = (time.monotonic() - started) * 1000
                log.warning(
                    "GOV.UK Pay %s %s failed: %s after %.0f ms (attempt %d/%d)",
                    method,
                    path,
                    type(exc).__name__,
                    elapsed_ms,
                    attempt,
                    self.max_attempts,
                )
                kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "network error"
                error: PayError = PayUnavailable(
                    f"GOV.UK Pay {kind}: {type(exc).__name__}", retryable=True, attempts=attempt
                )
                if attempt < self.max_attempts:
                    self._sleep(self._backoff(attempt, rate_limited=False))
                    continue
                raise error from exc
            except httpx.RequestError as exc:  # e.g. an invalid URL: retrying cannot help
                raise PayError(f"Could not send the request: {type(exc).__name__}", attempts=attempt) from exc

            status = response.status_code
            elapsed_ms = (time.monotonic() - started) * 1000
            log.info(
                "GOV.UK Pay %s %s -> %d in %.0f ms (attempt %d/%d)",
                method,
                path,
                status,
                elapsed_ms,
                attempt,
                self.max_attempts,
            )
            if 200 <= status < 300:
                return response

            error = self._error_from(response, attempt)
            if error.retryable and attempt < self.max_attempts:
                self._sleep(self._backoff(attempt, rate_limited=status == 429))
                continue
            raise error

    @staticmethod
    def _error_from(response: httpx.Response, attempt: int) -> PayError:
        """A typed error from GOV.UK Pay's `{code, description, field|header}` envelope.

        A 401 comes with no body (and whatever a proxy adds is not GOV.UK Pay's): never parsed.
        Bodies that are not the envelope (HTML from a proxy, empty 502s) give code None.
        """
        status = response.status_code
        cls = _error_class(status)
        retryable = _is_retryable_status(status)
        fallback = f"HTTP {status} {response.reason_phrase}".strip()
        if status == 401:
            return cls("GOV.UK Pay refused the API key", status=status, retryable=False, attempts=attempt)
        envelope: Any = None
        if response.content:
            try:
                envelope = _load_json(response.content)
            except ValueError:
                envelope = None
        if not isinstance(envelope, dict):
            return cls(fallback, status=status, retryable=retryable, attempts=attempt)
        return cls(
            _str_or_none(envelope.get("description")) or fallback,
            status=status,
            code=_str_or_none(envelope.get("code")),
            field=_str_or_none(envelope.get("field")),
            header=_str_or_none(envelope.get("header")),
            retryable=retryable,
            attempts=attempt,
        )
