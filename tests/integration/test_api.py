"""The reference validation API and the API keys that guard it (issue 3, API section)."""

from __future__ import annotations

import random
import re

import pytest

from app.domain.api_keys import ApiKey, authenticate_api_key, create_api_key, hash_secret, revoke_api_key
from app.domain.audit import AuditEvent
from app.domain.funds import Fund
from app.domain.references.demo import generate_valid_reference, seed_demo_reference_rules
from app.domain.users import User
from tests.pages import DEMO_EMAILS, error_summary, h1, main_text, post_form, table_rows

KEYS = "/admin/api-keys"
VALIDATE = "/api/v1/references/validate"
SCOPE = "references:validate"


@pytest.fixture
def rules(app):
    seed_demo_reference_rules()


@pytest.fixture
def key(app):
    admin = User.get(User.email == DEMO_EMAILS["admin"])
    return create_api_key(admin, "Kiosk", [SCOPE])[1]


def shown_key(html: str) -> str:
    match = re.search(r'<strong class="app-hash[^"]*">([^<]+)</strong>', html)
    assert match, "no key on the page"
    return match.group(1)


def call(client, secret: str | None, body=None, **kwargs):
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return client.post(VALIDATE, json=body, headers=headers, **kwargs)


def add_key_through_pages(admin, name: str = "Town hall kiosk") -> str:
    response = post_form(admin, f"{KEYS}/add", {"name": name, "scopes": [SCOPE]})
    assert response.status_code == 302, error_summary(response.get_data())
    assert response.location == f"{KEYS}/add/check"
    check = admin.get(f"{KEYS}/add/check")
    assert h1(check.get_data()) == "Check the new API key"
    response = post_form(admin, f"{KEYS}/add/check")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "only time the key is shown" in main_text(response.get_data())
    return shown_key(response.get_data(as_text=True))


# --- the admin pages ------------------------------------------------------------------------------


def test_admin_creates_a_key_that_is_shown_once_and_stored_only_as_a_hash(signed_in, client, rules):
    admin = signed_in("admin")
    secret = add_key_through_pages(admin)
    assert secret.startswith("ims_live_") and len(secret) > 40

    stored = ApiKey.get(ApiKey.name == "Town hall kiosk")
    assert stored.secret_hash == hash_secret(secret) and secret not in stored.secret_hash
    assert stored.prefix == secret[len("ims_live_") :][:8]
    assert stored.scope_list == [SCOPE]
    for row in ApiKey.select().dicts():
        assert secret not in " ".join(str(v) for v in row.values())

    listing = admin.get(KEYS).get_data(as_text=True)
    assert secret not in listing
    assert stored.display_prefix in listing
    row = next(r for r in table_rows(listing) if r[0] == "Town hall kiosk")
    assert row[4] == "Never" and "Active" in row[5]
    # Nothing shows the key again: the check page starts afresh.
    assert admin.get(f"{KEYS}/add/check").status_code == 302

    # The key works at once.
    response = call(client, secret, {"fund": "CTAX", "reference": generate_valid_reference("CTAX", random.Random(1))})
    assert response.status_code == 200 and response.json["valid"] is True

    event = AuditEvent.select().where(AuditEvent.action == "api_key.create").order_by(AuditEvent.seq.desc()).first()
    assert event.actor_email == DEMO_EMAILS["admin"]
    assert secret not in event.summary + event.before + event.after
    assert secret[len("ims_live_") :] not in event.summary + event.before + event.after


def test_the_add_form_gives_specific_errors(signed_in):
    admin = signed_in("admin")
    response = post_form(admin, f"{KEYS}/add", {"name": ""})
    assert response.status_code == 200
    assert error_summary(response.get_data()) == ["Enter a name for the key", "Select what the key may do"]
    response = post_form(admin, f"{KEYS}/add", {"name": "x", "scopes": ["everything"]})
    assert error_summary(response.get_data()) == ["Select what the key may do from the list"]


def test_admin_revokes_a_key_after_confirming_and_it_stops_working(signed_in, client, key, rules):
    admin = signed_in("admin")
    stored = ApiKey.get(ApiKey.secret_hash == hash_secret(key))
    page = admin.get(f"{KEYS}/{stored.id}/revoke")
    assert h1(page.get_data()) == "Revoke the API key Kiosk?"
    assert ApiKey.get_by_id(stored.id).revoked_at is None  # a GET changes nothing

    response = post_form(admin, f"{KEYS}/{stored.id}/revoke")
    assert response.status_code == 302 and response.location == KEYS
    stored = ApiKey.get_by_id(stored.id)
    assert stored.revoked_at is not None and stored.revoked_by.email == DEMO_EMAILS["admin"]
    assert "Revoked" in table_rows(admin.get(KEYS).get_data())[0][5]

    response = call(client, key, {"fund": "CTAX", "reference": "512345677"})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorised"
    assert "revoked" in response.json["error"]["message"]

    event = AuditEvent.select().order_by(AuditEvent.seq.desc()).first()
    assert event.action == "api_key.revoke" and event.object_id == str(stored.id)
    assert key not in event.summary + event.before + event.after


def test_admin_pages_still_need_csrf_and_the_right_permission(app, signed_in, key):
    admin = signed_in("admin")
    stored = ApiKey.get(ApiKey.secret_hash == hash_secret(key))
    response = admin.post(f"{KEYS}/{stored.id}/revoke", data={})
    assert response.status_code == 400
    assert ApiKey.get_by_id(stored.id).revoked_at is None
    response = admin.post(f"{KEYS}/add", data={"name": "No token", "scopes": [SCOPE]})
    assert response.status_code == 400
    # Managing keys is configuration: a finance officer cannot.
    assert signed_in("finance").get(KEYS).status_code == 403


# --- the API --------------------------------------------------------------------------------------


def test_a_valid_council_tax_reference(client, key, rules):
    reference = generate_valid_reference("CTAX", random.Random(1))
    response = call(client, key, {"fund": "CTAX", "reference": reference})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert set(body) == {"valid", "reference", "checks", "account"}
    assert body["valid"] is True and body["reference"] == reference and body["account"] is None
    assert body["checks"], "every check is reported"
    for check in body["checks"]:
        assert set(check) == {"check", "passed", "message"}
        assert check["passed"] is True
    assert [c["check"] for c in body["checks"]][0] == "fund"


def test_an_invalid_council_tax_reference_says_which_check_failed(client, key, rules):
    response = call(client, key, {"fund": "ctax", "reference": "512345678"})
    assert response.status_code == 200
    body = response.json
    assert body["valid"] is False and body["reference"] == "512345678" and body["account"] is None
    failed = [c for c in body["checks"] if not c["passed"]]
    assert len(failed) == 1 and failed[0]["check"] == "check_digit"
    assert failed[0]["message"]


def test_references_are_normalised(client, key, rules):
    response = call(client, key, {"fund": "CTAX", "reference": " 5123 4567 7 "})
    assert response.json["reference"] == "512345677"
    assert response.json["valid"] is True


def test_amount_limits_apply(client, key, rules):
    fund = Fund.by_code("CTAX")
    fund.minimum_pence, fund.maximum_pence = 100, 500_000
    fund.save()
    reference = generate_valid_reference("CTAX", random.Random(1))
    ok = call(client, key, {"fund": "CTAX", "reference": reference, "amount_pence": 12_50})
    assert ok.json["valid"] is True
    assert {"check": "amount", "passed": True} in [{k: c[k] for k in ("check", "passed")} for c in ok.json["checks"]]
    for amount in (500_001, 99, 0, -5):
        response = call(client, key, {"fund": "CTAX", "reference": reference, "amount_pence": amount})
        assert response.status_code == 200
        assert response.json["valid"] is False, amount
        failed = [c for c in response.json["checks"] if not c["passed"]]
        assert failed[0]["check"] == "amount" and failed[0]["message"], amount


def test_an_account_on_stop_shows_only_the_stop_message(client, key, rules):
    response = call(client, key, {"fund": "TWASTE", "reference": "c10005"})
    body = response.json
    assert body["valid"] is False
    assert body["account"] == {
        "reference": "C10005",
        "on_stop": True,
        "on_stop_message": "This account is closed. Call the commercial waste team on 01234 567892.",
    }
    other = call(client, key, {"fund": "TWASTE", "reference": "C10001"}).json
    assert other["valid"] is True and other["account"]["name"] == "The Corner Café Ltd"
    assert other["account"]["on_stop"] is False
    missing = call(client, key, {"fund": "TWASTE", "reference": "C99999"}).json
    assert missing["valid"] is False and missing["account"] is None
    assert [c["check"] for c in missing["checks"] if not c["passed"]] == ["account_exists"]


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not-a-key", "Bearer ims_live_AAAAAAAAAAAAAAAAAAAAAAAA"],
)
def test_no_key_or_a_bad_key_is_refused_with_401(client, key, header):
    headers = {"Authorization": header} if header is not None else {}
    response = client.post(VALIDATE, json={"fund": "CTAX", "reference": "512345677"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json["error"]["code"] == "unauthorised"
    assert response.json["error"]["message"]


def test_a_key_without_the_scope_is_refused_with_403(app, client):
    from app.domain import api_keys

    # A second scope, so a key can exist that lacks references:validate.
    api_keys.SCOPES["accounts:read"] = "Read accounts"
    try:
        other = create_api_key(None, "Reader", ["accounts:read"])[1]
    finally:
        del api_keys.SCOPES["accounts:read"]
    response = call(client, other, {"fund": "CTAX", "reference": "512345677"})
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert SCOPE in response.json["error"]["message"]


def test_a_session_cookie_alone_does_not_open_the_api(signed_in, rules):
    admin = signed_in("admin")
    response = admin.post(VALIDATE, json={"fund": "CTAX", "reference": "512345677"})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorised"


def test_the_api_needs_no_csrf_token_even_with_a_session(signed_in, key, rules):
    admin = signed_in("admin")  # a session cookie, and no CSRF token in the request
    response = call(admin, key, {"fund": "CTAX", "reference": "512345677"})
    assert response.status_code == 200 and response.json["valid"] is True


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [
        ({"data": "not json", "content_type": "application/json"}, 400, "body"),
        ({"data": "fund=CTAX&reference=1", "content_type": "application/x-www-form-urlencoded"}, 400, "body"),
        ({"json": ["CTAX", "512345677"]}, 400, "body"),
        ({"json": {"reference": "512345677"}}, 422, "fund"),
        ({"json": {"fund": "  ", "reference": "512345677"}}, 422, "fund"),
        ({"json": {"fund": 7, "reference": "512345677"}}, 422, "fund"),
        ({"json": {"fund": "NOPE", "reference": "512345677"}}, 422, "fund"),
        ({"json": {"fund": "CTAX"}}, 422, "reference"),
        ({"json": {"fund": "CTAX", "reference": 512345677}}, 422, "reference"),
        ({"json": {"fund": "CTAX", "reference": "5" * 5000}}, 422, "reference"),
        ({"json": {"fund": "CTAX", "reference": "512345677", "amount_pence": 12.5}}, 422, "amount_pence"),
        ({"json": {"fund": "CTAX", "reference": "512345677", "amount_pence": "1250"}}, 422, "amount_pence"),
        ({"json": {"fund": "CTAX", "reference": "512345677", "amount_pence": True}}, 422, "amount_pence"),
        ({"json": {"fund": "CTAX", "reference": "512345677", "amount_pence": [1]}}, 422, "amount_pence"),
    ],
)
def test_malformed_requests_get_a_json_error_naming_the_field(client, key, rules, kwargs, status, field):
    response = client.post(VALIDATE, headers={"Authorization": f"Bearer {key}"}, **kwargs)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    error = response.json["error"]
    assert error["code"] == "invalid_request" and error["field"] == field and error["message"]


def test_a_disabled_fund_is_refused(client, key, rules):
    fund = Fund.by_code("CTAX")
    fund.enabled = False
    fund.save()
    response = call(client, key, {"fund": "CTAX", "reference": "512345677"})
    assert response.status_code == 422
    assert response.json["error"]["field"] == "fund"
    assert "not taking payments" in response.json["error"]["message"]


def test_using_a_key_records_when_it_was_last_used(client, key, rules):
    stored = ApiKey.get(ApiKey.secret_hash == hash_secret(key))
    assert stored.last_used_at is None
    call(client, key, {"fund": "CTAX", "reference": "512345677"})
    first = ApiKey.get_by_id(stored.id).last_used_at
    assert first is not None
    # Within a minute the row is not written again: reads stay reads.
    call(client, key, {"fund": "CTAX", "reference": "512345677"})
    assert ApiKey.get_by_id(stored.id).last_used_at == first


def test_domain_refuses_revoking_twice_and_authenticates_by_scope(app, key):
    from app.domain.api_keys import ApiKeyForbidden, ApiKeyRefused
    from app.domain.errors import DomainError

    stored = authenticate_api_key(f"Bearer {key}", SCOPE)
    with pytest.raises(ApiKeyForbidden):
        authenticate_api_key(f"bearer {key}", "accounts:read")
    revoke_api_key(stored, None)
    with pytest.raises(DomainError):
        revoke_api_key(stored, None)
    with pytest.raises(ApiKeyRefused):
        authenticate_api_key(f"Bearer {key}", SCOPE)
    with pytest.raises(DomainError):
        create_api_key(None, "No scopes", [])


def test_routing_errors_under_the_api_are_json(client):
    response = client.get("/api/v1/references/validate")
    assert response.status_code == 405
    assert response.is_json
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    response = client.post("/api/v1/nothing-here", json={})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
