"""Card payments started by another council system: POST /api/v1/payments, GET /api/v1/payments/<reference>.

End to end against the GOV.UK Pay emulator in-process (the `pay` fixture, tests/integration/conftest.py):
the caller makes a payment with an API key, sends the citizen to next_url, the citizen pays on the
emulator's hosted pages, comes back to our return URL and is sent on to the caller's return_url;
the caller then reads the outcome and the receipt references. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from app.domain import payments
from app.domain.api_keys import create_api_key
from app.domain.ledger import LedgerEntry
from app.domain.payments import Payment
from app.domain.references.demo import generate_valid_reference
from app.domain.users import User
from tests.pages import DEMO_EMAILS

API = "/api/v1/payments"
CREATE, READ = "payments:create", "payments:read"
CTAX_REF = "594580735"
RETURN_URL = "https://parking-portal.example.gov.uk/orders/42/paid?step=done"
CANCEL_URL = "https://parking-portal.example.gov.uk/orders/42/cancelled"
REFERENCE = re.compile(r"^PAY-[0-9A-Z]{4}-[0-9A-Z]{4}$")


@dataclass
class Keys:
    caller: str  # payments:create and payments:read
    other: str  # another system with the same scopes
    create_only: str
    validate_only: str
    caller_id: int


@pytest.fixture
def keys(app) -> Keys:
    admin = User.get(User.email == DEMO_EMAILS["admin"])
    caller, caller_secret = create_api_key(admin, "Parking portal", [CREATE, READ])
    return Keys(
        caller=caller_secret,
        other=create_api_key(admin, "Library system", [CREATE, READ])[1],
        create_only=create_api_key(admin, "Kiosk payments", [CREATE])[1],
        validate_only=create_api_key(admin, "Kiosk references", ["references:validate"])[1],
        caller_id=caller.id,
    )


def lib_ref(seed: int = 3) -> str:
    return generate_valid_reference("LIB", random.Random(seed))


def body(**overrides) -> dict:
    data = {
        "items": [
            {"fund": "CTAX", "reference": CTAX_REF, "amount_pence": 12_345},
            {"fund": "lib", "reference": lib_ref(), "amount_pence": 250},
        ],
        "return_url": RETURN_URL,
        "cancel_url": CANCEL_URL,
        "email": "payer@example.com",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def create(client, key: str | None, data=None, idempotency_key: str | None = None, **kwargs):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return client.post(API, json=body() if data is None else data, headers=headers, **kwargs)


def read(client, key: str | None, reference: str):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.get(f"{API}/{reference}", headers=headers)


def error_of(response) -> tuple[int, str | None, str]:
    error = response.get_json()["error"]
    return response.status_code, error.get("field"), error["message"]


def emulator_payment_count(pay) -> int:
    return pay.api("GET", "/v1/payments").get_json()["total"]


def return_path(response) -> str:
    """Where the emulator sends the payer back: our return URL (its path)."""
    assert response.status_code == 302, response
    location = response.headers["Location"]
    assert location.startswith("http://localhost/pay/return/"), location
    return urlsplit(location).path


# --- the journey ------------------------------------------------------------------------------


def test_start_pay_and_read_the_outcome(pay, client, keys):
    response = create(client, keys.caller)
    assert response.status_code == 201, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    started = response.get_json()
    assert REFERENCE.match(started["reference"])
    assert started["next_url"].startswith(f"{pay.base_url}/secure/")
    assert (started["status"], started["finished"], started["finished_at"]) == ("in_progress", False, None)
    assert started["amount_pence"] == 12_595
    assert started["items"] == [
        {"fund": "CTAX", "reference": CTAX_REF, "amount_pence": 12_345, "receipt_reference": None},
        {"fund": "LIB", "reference": lib_ref(), "amount_pence": 250, "receipt_reference": None},
    ]
    payment = Payment.get(Payment.reference == started["reference"])
    assert (payment.channel, payment.api_key_id, payment.pay_account) == ("api", keys.caller_id, "default")
    assert (payment.return_url, payment.cancel_url) == (RETURN_URL, CANCEL_URL)
    remote = pay.api("GET", f"/v1/payments/{payment.provider_payment_id}").get_json()
    assert (remote["amount"], remote["reference"]) == (12_595, payment.reference)
    assert remote["metadata"]["channel"] == "api"

    # Before the citizen pays, the caller sees it in progress.
    assert read(client, keys.caller, started["reference"]).get_json()["status"] == "in_progress"

    # The citizen pays on GOV.UK Pay's pages, comes back to us and is sent on to the caller.
    back = pay.pay(started["next_url"])
    onward = client.get(return_path(back))
    assert onward.status_code == 302
    assert onward.headers["Location"] == RETURN_URL
    # Coming back again (a reload) goes to the same place and changes nothing.
    assert client.get(return_path(back)).headers["Location"] == RETURN_URL

    outcome = read(client, keys.caller, started["reference"])
    assert outcome.status_code == 200
    assert outcome.headers["Cache-Control"] == "no-store"
    data = outcome.get_json()
    assert (data["status"], data["finished"]) == ("succeeded", True)
    assert data["finished_at"].endswith("Z") and "next_url" not in data
    entries = list(
        LedgerEntry.select().where(LedgerEntry.source_reference == started["reference"]).order_by(LedgerEntry.id)
    )
    assert [(e.fund.code, e.account_reference, e.amount_pence, e.source) for e in entries] == [
        ("CTAX", CTAX_REF, 12_345, "payment"),
        ("LIB", lib_ref(), 250, "payment"),
    ]
    assert all(e.method.channel == "online_card" and e.payer_email == "payer@example.com" for e in entries)
    assert [item["receipt_reference"] for item in data["items"]] == [e.receipt_reference for e in entries]
    assert all(data["items"][i]["receipt_reference"] for i in range(2))
    # The reference can be given without PAY- and the dash, in lower case.
    short = started["reference"].removeprefix("PAY-").replace("-", "").lower()
    assert read(client, keys.caller, short).get_json()["reference"] == started["reference"]
    assert emulator_payment_count(pay) == 1


def test_cancelled_payment_goes_to_the_cancel_url(pay, client, keys):
    started = create(client, keys.caller).get_json()
    pay.pay(started["next_url"], confirm=False)  # the payer presses "Cancel payment"
    payment = Payment.get(Payment.reference == started["reference"])
    onward = client.get(f"/pay/return/{payment.return_token}")
    assert onward.status_code == 302 and onward.headers["Location"] == CANCEL_URL
    data = read(client, keys.caller, started["reference"]).get_json()
    assert (data["status"], data["finished"]) == ("cancelled", True)
    assert [item["receipt_reference"] for item in data["items"]] == [None, None]
    assert LedgerEntry.select().where(LedgerEntry.source_reference == started["reference"]).count() == 0


def test_without_a_cancel_url_a_declined_payment_goes_to_the_return_url(pay, client, keys):
    started = create(client, keys.caller, body(cancel_url=None)).get_json()
    pay.pay(started["next_url"], card_number="4000000000000002")  # declined
    payment = Payment.get(Payment.reference == started["reference"])
    onward = client.get(f"/pay/return/{payment.return_token}")
    assert onward.status_code == 302 and onward.headers["Location"] == RETURN_URL
    assert read(client, keys.caller, started["reference"]).get_json()["status"] == "failed"


# --- idempotency ------------------------------------------------------------------------------


def test_idempotency_key_replays_the_same_payment(pay, client, keys):
    first = create(client, keys.caller, idempotency_key="order-42_a")
    assert first.status_code == 201
    again = create(client, keys.caller, idempotency_key="order-42_a")
    assert again.status_code == 200
    replay = again.get_json()
    assert replay["reference"] == first.get_json()["reference"]
    # Each next_url is single-use: the replay carries a fresh one for the same GOV.UK Pay payment.
    assert replay["next_url"].startswith(f"{pay.base_url}/secure/")
    assert Payment.select().count() == 1
    assert emulator_payment_count(pay) == 1

    # The replayed next_url works; once paid, a replay shows the outcome and no next_url.
    client.get(return_path(pay.pay(replay["next_url"])))
    paid = create(client, keys.caller, idempotency_key="order-42_a")
    assert paid.status_code == 200
    assert paid.get_json()["status"] == "succeeded" and "next_url" not in paid.get_json()
    assert Payment.select().count() == 1 and emulator_payment_count(pay) == 1

    # Without a key, or with another key, or the same key from another system: new payments.
    assert create(client, keys.caller).status_code == 201
    assert create(client, keys.caller, idempotency_key="order-43").status_code == 201
    assert create(client, keys.other, idempotency_key="order-42_a").status_code == 201
    assert Payment.select().count() == 4 and emulator_payment_count(pay) == 4


def test_idempotency_key_reused_for_a_different_payment_is_refused(pay, client, keys):
    assert create(client, keys.caller, idempotency_key="order-44").status_code == 201
    changed = body(items=[{"fund": "CTAX", "reference": CTAX_REF, "amount_pence": 99_999}])
    response = create(client, keys.caller, changed, idempotency_key="order-44")
    assert error_of(response)[:2] == (409, "Idempotency-Key")
    elsewhere = body(return_url="https://elsewhere.example.gov.uk/")
    assert create(client, keys.caller, elsewhere, idempotency_key="order-44").status_code == 409
    # The same payment, written differently (lower-case fund code, spaces in the reference): a replay.
    same = body()
    same["items"][0] = {"fund": " ctax ", "reference": "594 580 735", "amount_pence": 12_345}
    assert create(client, keys.caller, same, idempotency_key="order-44").status_code == 200
    assert Payment.select().count() == 1 and emulator_payment_count(pay) == 1


def test_bad_idempotency_key_is_refused(pay, client, keys):
    response = create(client, keys.caller, idempotency_key="has spaces")
    assert error_of(response)[:2] == (422, "Idempotency-Key")
    assert create(client, keys.caller, idempotency_key="x" * 101).status_code == 422
    assert Payment.select().count() == 0


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("error", {}),
        ("unavailable", {}),
        ("timeout", {"process": False, "seconds": 0.01}),
        ("drop", {}),
        ("drop", {"process": True}),  # GOV.UK Pay makes the payment; the answer is lost every time
    ],
)
def test_pay_down_on_create_is_503_then_a_retry_with_the_same_key_succeeds(pay, client, keys, kind, options):
    pay.inject_fault(kind, count=10, path="/v1/payments", method="POST", **options)
    response = create(client, keys.caller, idempotency_key="order-45")
    assert error_of(response)[:2] == (503, None)
    assert response.get_json()["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"] == "30"
    assert "No money has been taken" in error_of(response)[2]
    payment = Payment.get()
    assert payment.status == "created" and payment.provider_payment_id is None
    assert "Could not reach GOV.UK Pay" in payment.last_error

    pay.clear_faults()
    retry = create(client, keys.caller, idempotency_key="order-45")
    assert retry.status_code == 200  # the payment already existed (ours): the same one, now at GOV.UK Pay
    data = retry.get_json()
    assert data["reference"] == payment.reference and data["next_url"].startswith(f"{pay.base_url}/secure/")
    assert Payment.select().count() == 1
    assert emulator_payment_count(pay) == 1
    # And it can be paid.
    assert client.get(return_path(pay.pay(data["next_url"]))).headers["Location"] == RETURN_URL
    assert read(client, keys.caller, payment.reference).get_json()["status"] == "succeeded"


def test_a_create_govuk_pay_refuses_is_502_and_the_payment_is_failed(pay, client, keys):
    pay.inject_fault("respond", path="/v1/payments", method="POST", status=422, code="P0102")
    response = create(client, keys.caller, idempotency_key="order-46")
    assert response.status_code == 502 and "Retry-After" not in response.headers
    assert response.get_json()["error"]["code"] == "refused_by_govuk_pay"
    payment = Payment.get()
    assert payment.status == "failed" and payment.finished_at is not None
    assert LedgerEntry.select().where(LedgerEntry.source_reference == payment.reference).count() == 0


# --- what is refused --------------------------------------------------------------------------


def _item(**overrides) -> dict:
    return {"fund": "CTAX", "reference": CTAX_REF, "amount_pence": 1_000, **overrides}


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (dict(items=[_item(fund="NOPE")]), "items[0].fund", "There is no fund with the code NOPE"),
        (dict(items=[_item(fund="SUSP")]), "items[0].fund", "There is no fund with the code SUSP"),
        (dict(items=[_item(fund=7)]), "items[0].fund", "Enter the fund code"),
        (dict(items=[_item(), _item(reference="123")]), "items[1].reference", "must be 9 characters long"),
        (dict(items=[_item(reference="594580736")]), "items[0].reference", "check character does not match"),
        (dict(items=[_item(reference="59458073X")]), "items[0].reference", "only digits"),
        (dict(items=[_item(reference=594580735)]), "items[0].reference", "Enter the reference as text"),
        (dict(items=[_item(amount_pence=12.5)]), "items[0].amount_pence", "whole number of pence"),
        (dict(items=[_item(amount_pence=1000.0)]), "items[0].amount_pence", "whole number of pence"),
        (dict(items=[_item(amount_pence=True)]), "items[0].amount_pence", "whole number of pence"),
        (dict(items=[_item(amount_pence="1000")]), "items[0].amount_pence", "whole number of pence"),
        (dict(items=[_item(amount_pence=None)]), "items[0].amount_pence", "whole number of pence"),
        (dict(items=[_item(amount_pence=50)]), "items[0].amount_pence", "£1.00 or more"),
        (dict(items=[_item(), _item()]), "items[1].reference", "already added"),
        (dict(items=["CTAX"]), "items[0]", "Each item must be an object"),
        (dict(items=[]), "items", "Send items"),
        (dict(items=None), "items", "Send items"),
        (dict(return_url=None), "return_url", "Enter the return url"),
        (dict(return_url=""), "return_url", "Enter the return url"),
        (dict(return_url="ftp://parking-portal.example.gov.uk/paid"), "return_url", "must start with https://"),
        (dict(return_url="javascript:alert(1)"), "return_url", "must start with https://"),
        (dict(return_url="https:///paid"), "return_url", "must be a full address"),
        (dict(return_url="https://x.example/" + "a" * 2000), "return_url", "2000 characters or fewer"),
        (dict(cancel_url="ftp://parking-portal.example.gov.uk/"), "cancel_url", "must start with https://"),
        (dict(email="not-an-email"), "email", "correct format"),
    ],
)
def test_invalid_requests_are_422_and_nothing_is_made(pay, client, keys, data, field, message):
    response = create(client, keys.caller, body(**data))
    status, got_field, got_message = error_of(response)
    assert (status, got_field) == (422, field), response.get_json()
    assert message.lower() in got_message.lower(), got_message
    assert Payment.select().count() == 0
    assert emulator_payment_count(pay) == 0


def test_a_body_that_is_not_a_json_object_is_400(pay, client, keys):
    headers = {"Authorization": f"Bearer {keys.caller}"}
    assert client.post(API, data="items=1", headers=headers).status_code == 400
    assert error_of(client.post(API, json=[_item()], headers=headers))[:2] == (400, "body")


def test_plain_http_return_urls_only_for_this_machine_outside_testing(pay, client, keys, app):
    # TestingConfig allows http:// anywhere (as GOV.UK Pay's test accounts do); production does not.
    assert create(client, keys.caller, body(return_url="http://parking-portal.example.gov.uk/")).status_code == 201
    app.config["TESTING"] = False  # the `app` fixture restores the configuration afterwards
    refused = create(client, keys.caller, body(return_url="http://parking-portal.example.gov.uk/paid"))
    assert error_of(refused) == (422, "return_url", "The return url must start with https://")
    refused = create(client, keys.caller, body(cancel_url="http://parking-portal.example.gov.uk/cancelled"))
    assert error_of(refused)[:2] == (422, "cancel_url")
    assert create(client, keys.caller, body(return_url="http://localhost:8080/paid")).status_code == 201
    assert create(client, keys.caller, body(return_url="http://127.0.0.1/paid")).status_code == 201
    assert Payment.select().count() == 3


def test_too_many_items(pay, client, keys):
    limit = payments.max_basket_items()
    items = [_item(fund="LIB", reference=generate_valid_reference("LIB", random.Random(n))) for n in range(limit + 1)]
    assert len({item["reference"] for item in items}) == limit + 1
    response = create(client, keys.caller, body(items=items))
    assert error_of(response) == (422, "items", f"A payment can have up to {limit} items")
    assert create(client, keys.caller, body(items=items[:limit])).status_code == 201


def test_funds_of_different_pay_accounts_cannot_share_a_payment(pay, client, keys):
    pcn = generate_valid_reference("PCN", random.Random(7))
    mixed = body(items=[_item(), {"fund": "PCN", "reference": pcn, "amount_pence": 7_000}])
    response = create(client, keys.caller, mixed)
    assert error_of(response)[:2] == (422, "items[1].fund")
    assert "has to be paid separately" in error_of(response)[2]
    # Alone, the parking fine goes to the parking account.
    alone = create(client, keys.caller, body(items=[{"fund": "PCN", "reference": pcn, "amount_pence": 7_000}]))
    assert alone.status_code == 201
    assert Payment.get(Payment.reference == alone.get_json()["reference"]).pay_account == "parking"


# --- keys and scopes --------------------------------------------------------------------------


def test_keys_and_scopes(pay, client, keys):
    no_key = create(client, None)
    assert no_key.status_code == 401 and no_key.headers["WWW-Authenticate"].startswith("Bearer")
    assert create(client, "ims_live_" + "x" * 43).status_code == 401
    assert client.post(API, json=body(), headers={"Authorization": f"Basic {keys.caller}"}).status_code == 401
    assert error_of(create(client, keys.validate_only))[0] == 403
    assert Payment.select().count() == 0

    reference = create(client, keys.caller).get_json()["reference"]
    assert read(client, None, reference).status_code == 401
    assert read(client, keys.validate_only, reference).status_code == 403
    # payments:create alone may start payments but not read them, not even its own.
    own = create(client, keys.create_only)
    assert own.status_code == 201
    assert read(client, keys.create_only, own.get_json()["reference"]).status_code == 403

    # Another system's key cannot read the payment: as if it did not exist.
    hidden = read(client, keys.other, reference)
    missing = read(client, keys.caller, "PAY-0000-0000")
    assert error_of(hidden) == error_of(missing)
    assert hidden.status_code == 404 and hidden.get_json()["error"]["code"] == "not_found"
    # Nor can the caller read a citizen's own (web) payment.
    web = Payment.get(Payment.reference == reference)
    Payment.update(api_key_id=None, channel="web").where(Payment.id == web.id).execute()
    assert read(client, keys.caller, reference).status_code == 404
