"""Request validation with GOV.UK Pay's codes, wording and 400-versus-422 split.

Shapes and types (missing, null, blank, wrong JSON type) are 400; values out of range,
lengths, language and metadata are 422 — as pay-publicapi does it, first problem only.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from app.integrations.govuk_pay.emulator.errors import ApiError, firewall, invalid, missing
from app.integrations.govuk_pay.emulator.resources import STATUSES

AMOUNT_MAX = 10_000_000
JAVA_INT_MAX = 2**31 - 1
FORBIDDEN_CHARACTERS = re.compile(r'[<>"\\|]')
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9-]{1,255}")
COUNTRY = re.compile(r"[A-Z]{2}")
SEARCH_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z")
MOTO_NOT_ENABLED = (
    "MOTO payments are not enabled for this account. Please contact support if you would like to process MOTO payments"
)


class _DuplicateKeys(dict):
    """A JSON object that remembers whether a key appeared twice (the last one would silently win)."""

    duplicates: bool = False


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = _DuplicateKeys(pairs)
    result.duplicates = len(result) != len(pairs)
    return result


def parse_json_object(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one."""
    try:
        body = json.loads(raw.decode("utf-8"), object_pairs_hook=_object_pairs)
    except (UnicodeDecodeError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def fingerprint(body: dict[str, Any]) -> str:
    """The same request body, however its keys are ordered or spaced (for Idempotency-Key replays)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(value):
        raise ApiError(
            422,
            "P0102",
            "Invalid attribute value: Idempotency-Key. Must be between 1 and 255 characters long "
            "and contain only letters, numbers and hyphens",
            header="Idempotency-Key",
        )
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value <= JAVA_INT_MAX


def _required_string(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if value is None:
        raise missing(field)
    if not isinstance(value, str):
        raise invalid(field, "Must be a valid string format")
    if not value.strip():
        raise missing(field)
    return value


def _optional_string(node: dict[str, Any], field: str, reason: str = "Field must be a string") -> str | None:
    value = node.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(field, reason)
    return value


def _optional_bool(body: dict[str, Any], field: str) -> bool | None:
    value = body.get(field)
    if field in body and not isinstance(value, bool):
        raise invalid(field, "Must be true or false")
    return value


def _too_long(field: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise invalid(field, f"Must be less than or equal to {limit} characters length", status=422)


def _metadata(value: Any) -> dict[str, Any]:
    def bad(reason: str) -> ApiError:
        return invalid("metadata", reason, status=422)

    if value is None:
        raise bad("Value must not be null")
    if not isinstance(value, dict):
        raise bad("Must be an object of JSON key-value pairs")
    if not value:
        raise bad("Must have at least 1 key-value pair")
    if len(value) > 15:
        raise bad("Cannot have more than 15 key-value pairs")
    lowered = [key.lower() for key in value]
    if getattr(value, "duplicates", False) or len(set(lowered)) != len(lowered):
        raise bad("Keys must be unique (case-insensitive)")
    for key, item in value.items():
        if not 1 <= len(key) <= 30:
            raise bad("Keys must be between 1 and 30 characters long")
        if item is None or isinstance(item, dict | list):
            raise bad("Values must be of type String, Boolean or Number")
        if isinstance(item, str) and len(item) > 100:
            raise bad("Values must be no greater than 100 characters long")
    return dict(value)


def validate_create_payment(body: dict[str, Any], *, moto_enabled: bool = False) -> dict[str, Any]:
    """The fields of a valid create-payment request, or ApiError as GOV.UK Pay would answer.

    `moto_enabled`: whether GOV.UK Pay has switched MOTO payments on for the account."""
    # The firewall sits in front of the API and sees the request first.
    for field in ("reference", "description"):
        if isinstance(body.get(field), str) and FORBIDDEN_CHARACTERS.search(body[field]):
            raise firewall()

    amount = body.get("amount")
    if amount is None:
        raise missing("amount")
    if not _is_int(amount):
        raise invalid("amount", "Must be a valid numeric format")
    reference = _required_string(body, "reference")
    description = _required_string(body, "description")
    return_url = None
    if "return_url" in body:
        return_url = _optional_string(body, "return_url", "Must be a valid URL format")
    moto = _optional_bool(body, "moto")
    language = None
    if "language" in body:
        language = body["language"]
        if not isinstance(language, str) or not language.strip():
            raise invalid("language", 'Must be "en" or "cy"')
        if language not in ("en", "cy"):
            raise invalid("language", 'Must be "en" or "cy"', status=422)
    delayed_capture = _optional_bool(body, "delayed_capture")
    email = _optional_string(body, "email") if "email" in body else None
    prefill = _prefilled_cardholder_details(body.get("prefilled_cardholder_details"))
    metadata = _metadata(body["metadata"]) if "metadata" in body else None
    mode = "web"
    if "authorisation_mode" in body:
        mode = body["authorisation_mode"]
        if mode not in ("web", "moto_api", "agreement"):
            raise invalid("authorisation_mode", "Must be one of web, moto_api, agreement")

    # Values and lengths: 422.
    if amount < 1:
        raise invalid("amount", "Must be greater than or equal to 1", status=422)
    if amount > AMOUNT_MAX:
        raise invalid("amount", f"Must be less than or equal to {AMOUNT_MAX}", status=422)
    _too_long("reference", reference, 255)
    _too_long("description", description, 255)
    _too_long("email", email, 254)
    _too_long("return_url", return_url, 2000)
    if prefill:
        _too_long("cardholder_name", prefill.get("cardholder_name"), 255)
        address = prefill.get("billing_address") or {}
        for field in ("line1", "line2", "city"):
            _too_long(field, address.get(field), 255)
        _too_long("postcode", address.get("postcode"), 25)

    if mode == "moto_api":
        if return_url is not None:
            raise ApiError(400, "P0104", "Unexpected attribute: return_url", field="return_url")
        raise ApiError(422, "P0195", "Using authorisation_mode of moto_api is not allowed for this account")
    if mode == "agreement":
        raise missing("agreement_id")
    if return_url is None or not return_url.strip():
        raise missing("return_url")
    parts = urlsplit(return_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid("return_url", "Must be a valid URL format", status=422)
    if moto and not moto_enabled:
        raise ApiError(422, "P0196", MOTO_NOT_ENABLED, field="moto")

    return {
        "amount": amount,
        "reference": reference,
        "description": description,
        "return_url": return_url,
        "language": language or "en",
        "email": email,
        "metadata": metadata,
        "delayed_capture": bool(delayed_capture),
        "moto": bool(moto),
        "prefill": prefill,
    }


def _prefilled_cardholder_details(node: Any) -> dict[str, Any] | None:
    if node is None:
        return None
    if not isinstance(node, dict):
        raise invalid("prefilled_cardholder_details", "Must be an object")
    prefill: dict[str, Any] = {}
    name = _optional_string(node, "cardholder_name")
    if name is not None:
        prefill["cardholder_name"] = name
    address_node = node.get("billing_address")
    if address_node is not None:
        if not isinstance(address_node, dict):
            raise invalid("billing_address", "Must be an object")
        address = {field: _optional_string(address_node, field) for field in ("line1", "line2", "postcode", "city")}
        country = _optional_string(address_node, "country")
        # GOV.UK Pay quietly uses GB for a missing or unknown country.
        address["country"] = country if country and COUNTRY.fullmatch(country) else "GB"
        prefill["billing_address"] = address
    return prefill or None


def validate_refund(body: dict[str, Any]) -> tuple[int, int | None]:
    amount = body.get("amount")
    if amount is None:
        raise missing("amount", "P0601")
    if not _is_int(amount):
        raise invalid("amount", "Must be a valid numeric format", code="P0602")
    available = body.get("refund_amount_available")
    if available is not None and not _is_int(available):
        raise invalid("refund_amount_available", "Must be a valid numeric format", code="P0602")
    if amount < 1:
        raise invalid("amount", "Must be greater than or equal to 1", status=422, code="P0602")
    if amount > AMOUNT_MAX:
        raise invalid("amount", f"Must be less than or equal to {AMOUNT_MAX}", status=422, code="P0602")
    return amount, available


# --- searches ---------------------------------------------------------------------------------


def _date_time(value: str) -> datetime | None:
    if not SEARCH_DATE_TIME.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else None
    except ValueError:
        return None


def _positive_int(value: str, maximum: int | None = None) -> int | None:
    if not re.fullmatch(r"\d{1,9}", value):
        return None
    number = int(value)
    if number < 1 or (maximum is not None and number > maximum):
        return None
    return number


PAYMENT_SEARCH_PARAMETERS = (
    "reference",
    "email",
    "state",
    "card_brand",
    "from_date",
    "to_date",
    "page",
    "display_size",
    "cardholder_name",
    "first_digits_card_number",
    "last_digits_card_number",
    "from_settled_date",
    "to_settled_date",
)
REFUND_SEARCH_PARAMETERS = ("from_date", "to_date", "page", "display_size", "from_settled_date", "to_settled_date")


def validate_search(args: dict[str, str], names: tuple[str, ...], code: str) -> dict[str, Any]:
    """Parsed search parameters (page and display_size always present), or 422 naming every bad one."""
    parsed: dict[str, Any] = {"page": 1, "display_size": 500}
    bad: list[str] = []
    for name in names:
        value = args.get(name)
        if value is None or value == "":
            continue
        result: Any = value
        if name in ("from_date", "to_date"):
            result = _date_time(value)
        elif name in ("from_settled_date", "to_settled_date"):
            result = _date(value)
        elif name == "page":
            result = _positive_int(value)
        elif name == "display_size":
            result = _positive_int(value, 500)
        elif name == "state":
            result = value if value in STATUSES else None
        elif name == "first_digits_card_number":
            result = value if re.fullmatch(r"\d{6}", value) else None
        elif name == "last_digits_card_number":
            result = value if re.fullmatch(r"\d{4}", value) else None
        elif len(value) > 255:
            result = None
        if result is None:
            bad.append(name)
        else:
            parsed[name] = result
    if bad:
        raise ApiError(
            422,
            code,
            f"Invalid parameters: {', '.join(bad)}. See Public API documentation for the correct data formats",
        )
    return parsed
