"""Signing in and out: lockout, temporary passwords, password rules, idle expiry, CSRF, open redirects."""

from __future__ import annotations

import datetime as dt
from urllib.parse import unquote

import pytest
from flask import url_for
from werkzeug.routing import AnyConverter

from app.db import utcnow
from app.domain.audit import AuditEvent
from app.domain.funds import Fund, FundGroup
from app.domain.users import User, create_user, set_user_enabled
from tests.pages import DEMO_PASSWORD, error_summary, h1, main_text, post_form, sign_in, title

ADMIN = "admin@demo.example.gov.uk"
FINANCE = "finance@demo.example.gov.uk"
GENERIC = "Enter a correct e-mail address and password"
NEW_PASSWORD = "correct horse battery staple"


def user(email: str) -> User:
    return User.get(User.email == email)


def is_sign_in_redirect(response) -> bool:
    return response.status_code == 302 and response.location.split("?")[0].endswith("/sign-in")


def test_sign_in_takes_staff_to_the_staff_home(client):
    response = sign_in(client, ADMIN)
    assert response.status_code == 302
    assert response.location == "/staff"
    home = client.get("/staff")
    assert home.status_code == 200
    assert h1(home.get_data()) == "Income management"
    assert "Welcome, Asha Patel" in main_text(home.get_data())
    assert user(ADMIN).last_sign_in_at is not None
    event = AuditEvent.select().order_by(AuditEvent.seq.desc()).first()
    assert (event.action, event.actor_email) == ("auth.sign_in", ADMIN)


def test_e_mail_address_is_not_case_sensitive(client):
    assert sign_in(client, "  Admin@Demo.Example.GOV.uk ").location == "/staff"


@pytest.mark.parametrize(
    ("email", "password"),
    [(ADMIN, "wrong-password"), ("nobody@demo.example.gov.uk", DEMO_PASSWORD)],
    ids=["wrong-password", "unknown-user"],
)
def test_a_failed_sign_in_gives_the_same_generic_error(client, email, password):
    response = sign_in(client, email, password)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert title(html).startswith("Error: Sign in")
    assert error_summary(html) == [GENERIC]
    assert f'value="{password}"' not in html  # the password is never echoed back
    assert is_sign_in_redirect(client.get("/staff"))


def test_empty_sign_in_form_says_what_is_missing(client):
    response = post_form(client, "/sign-in", {"email": "", "password": ""})
    assert error_summary(response.get_data()) == ["Enter your e-mail address", "Enter your password"]


def test_five_failures_lock_the_account_even_against_the_right_password(client):
    for _ in range(5):
        assert error_summary(sign_in(client, FINANCE, "not-the-password").get_data()) == [GENERIC]
    assert user(FINANCE).is_locked()

    response = sign_in(client, FINANCE, DEMO_PASSWORD)
    assert response.status_code == 200
    [message] = error_summary(response.get_data())
    assert message.startswith("Your account is locked after 5 failed sign-ins. Try again in 15 minutes")
    assert is_sign_in_redirect(client.get("/staff"))
    actions = [e.action for e in AuditEvent.select().order_by(AuditEvent.seq.desc()).limit(2)]
    assert actions == ["auth.sign_in_refused_locked", "auth.locked_out"]


def test_the_lock_ends_after_the_lockout_period(client):
    for _ in range(5):
        sign_in(client, FINANCE, "not-the-password")
    locked = user(FINANCE)
    locked.locked_until = utcnow() - dt.timedelta(seconds=1)
    locked.save()
    assert sign_in(client, FINANCE).location == "/staff"


def every_get_url(app, exclude: set[str]) -> list[str]:
    """A URL for every GET route (any values: the redirect comes before the view looks at them)."""
    dummy = {"slug": "funds", "receipt": "R000-0000-0"}
    urls = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.endpoint in exclude or rule.endpoint == "static":
                continue
            values = {}
            for name, converter in rule._converters.items():
                values[name] = sorted(converter.items)[0] if isinstance(converter, AnyConverter) else dummy.get(name, 1)
            urls.append(url_for(rule.endpoint, **values))
    assert len(urls) > 20
    return urls


def test_a_temporary_password_must_be_changed_before_anything_else(client):
    revenues = FundGroup.by_code("REVS")
    _, temporary = create_user(
        None, email="new.starter@demo.example.gov.uk", name="New Starter", roles=["finance_officer"],
        fund_group_ids=[revenues.id],
    )  # fmt: skip
    response = sign_in(client, "new.starter@demo.example.gov.uk", temporary)
    assert response.location == "/change-password"

    from app.access import PUBLIC

    views = client.application.view_functions.items()
    public = {e for e, view in views if getattr(view, "access", None) == PUBLIC}
    # The API takes bearer keys, not sessions: it answers 401 whoever is signed in.
    public |= {e for e, view in views if str(getattr(view, "access", "")).startswith("api:")}
    # Public pages stay readable; every staff page waits for the new password.
    for url in every_get_url(client.application, exclude={"auth.change_password"} | public):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.location == "/change-password", url
    assert client.get("/accessibility").status_code == 200
    page = client.get("/change-password")
    assert "You signed in with a temporary password" in main_text(page.get_data())
    assert "Transactions" not in main_text(page.get_data())  # no staff navigation yet

    response = post_form(
        client,
        "/change-password",
        {"current_password": temporary, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert response.location == "/staff"
    assert "Your password has been changed" in client.get("/staff").get_data(as_text=True)
    assert client.get("/transactions").status_code == 200
    assert user("new.starter@demo.example.gov.uk").must_change_password is False

    other = client.application.test_client()
    assert sign_in(other, "new.starter@demo.example.gov.uk", temporary).status_code == 200  # old one is gone
    assert sign_in(other, "new.starter@demo.example.gov.uk", NEW_PASSWORD).location == "/staff"


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        (DEMO_PASSWORD, "short", "short", "Password must be 12 characters or more"),
        (DEMO_PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", "The passwords do not match"),
        ("not-my-password", NEW_PASSWORD, NEW_PASSWORD, "Your current password is not correct"),
        (DEMO_PASSWORD, DEMO_PASSWORD, DEMO_PASSWORD, "Your new password must be different from your current one"),
        (DEMO_PASSWORD, "finance-and-more-words", "finance-and-more-words", "Password must not contain your e-mail"),
        ("", "", "", "Enter your current password"),
    ],
    ids=["too-short", "mismatch", "wrong-current", "unchanged", "contains-email", "empty"],
)
def test_password_change_rules(signed_in, current, new, confirm, message):
    staff = signed_in("finance")
    before = user(FINANCE).password_hash
    response = post_form(
        staff, "/change-password", {"current_password": current, "new_password": new, "confirm_password": confirm}
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert title(html).startswith("Error: Change your password")
    assert any(m.startswith(message) for m in error_summary(html)), error_summary(html)
    assert user(FINANCE).password_hash == before


def test_changing_the_password_ends_the_users_other_sessions(app, signed_in):
    first = signed_in("finance")
    second = signed_in("finance")
    post_form(
        first,
        "/change-password",
        {"current_password": DEMO_PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
    )
    assert first.get("/staff").status_code == 200
    assert is_sign_in_redirect(second.get("/staff"))


def test_sign_out_is_post_only_and_ends_the_session(signed_in):
    staff = signed_in("admin")
    response = staff.get("/sign-out")
    assert response.status_code == 405
    assert h1(response.get_data()) == "Page not found"
    assert staff.get("/staff").status_code == 200  # a GET changed nothing

    response = post_form(staff, "/sign-out", form_url="/staff")
    assert response.status_code == 302
    assert response.location == "/signed-out"
    assert h1(staff.get("/signed-out").get_data()) == "You have signed out"
    assert is_sign_in_redirect(staff.get("/staff"))
    assert AuditEvent.select().order_by(AuditEvent.seq.desc()).first().action == "auth.sign_out"


def test_an_idle_session_expires_with_a_notice(signed_in):
    staff = signed_in("finance")
    with staff.session_transaction() as session:
        session["last_seen"] = (utcnow() - dt.timedelta(minutes=29)).isoformat()
    assert staff.get("/staff").status_code == 200  # 29 minutes is fine, and resets the clock

    with staff.session_transaction() as session:
        session["last_seen"] = (utcnow() - dt.timedelta(minutes=31)).isoformat()
    response = staff.get("/transactions")
    assert is_sign_in_redirect(response)
    assert unquote(response.location).endswith("next=/transactions")
    page = staff.get(response.location)
    assert "You were signed out because you did not use the service for 30 minutes" in page.get_data(as_text=True)
    assert is_sign_in_redirect(staff.get("/staff"))
    # The notice is shown once.
    assert "You were signed out because" not in staff.get("/sign-in").get_data(as_text=True)


def test_signing_in_after_expiry_returns_to_the_page_asked_for(client):
    response = client.get("/admin/settings/funds")
    assert is_sign_in_redirect(response)
    response = sign_in(client, ADMIN, next_url="/admin/settings/funds")
    assert response.location == "/admin/settings/funds"


def test_a_disabled_users_session_ends_and_they_cannot_sign_in(signed_in, client):
    staff = signed_in("finance")
    assert staff.get("/transactions").status_code == 200
    set_user_enabled(user(FINANCE), user(ADMIN), False)
    assert is_sign_in_redirect(staff.get("/transactions"))
    assert error_summary(sign_in(client, FINANCE).get_data()) == [GENERIC]


def test_a_post_without_a_csrf_token_is_refused_and_changes_nothing(signed_in):
    staff = signed_in("admin")
    funds_before = Fund.select().count()
    events_before = AuditEvent.select().count()
    response = staff.post(
        "/admin/settings/funds/add",
        data={"code": "CSRF1", "name": "Forged", "minimum_pence": "1", "reference_label": "Ref", "pay_account": "x"},
    )
    assert response.status_code == 400
    assert h1(response.get_data()) == "Sorry, your form could not be sent"
    assert Fund.select().count() == funds_before

    response = staff.post("/sign-out", data={"csrf_token": "not-a-real-token"})
    assert response.status_code == 400
    assert staff.get("/staff").status_code == 200  # still signed in
    assert AuditEvent.select().count() == events_before


def test_a_forged_sign_in_post_is_refused(client):
    response = client.post("/sign-in", data={"email": ADMIN, "password": DEMO_PASSWORD})
    assert response.status_code == 400
    assert is_sign_in_redirect(client.get("/staff"))


@pytest.mark.parametrize(
    "target", ["//evil.example", "https://evil.example/staff", "/\\evil.example", "///evil.example", "evil.example"]
)
def test_sign_in_never_redirects_off_the_site(client, target):
    response = sign_in(client, ADMIN, next_url=target)
    assert response.status_code == 302
    assert response.location == "/staff"


def test_a_signed_in_user_visiting_sign_in_goes_to_the_staff_home(signed_in):
    response = signed_in("auditor").get("/sign-in")
    assert response.status_code == 302
    assert response.location == "/staff"
