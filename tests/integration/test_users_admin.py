"""User administration: add with a one-time temporary password, change roles, disable, reset, self-protection."""

from __future__ import annotations

import re

from app.domain.audit import AuditEvent
from app.domain.funds import FundGroup
from app.domain.users import User
from tests.pages import (
    DEMO_PASSWORD,
    error_summary,
    form_values,
    h1,
    main_text,
    post_form,
    sign_in,
    summary_list,
    table_rows,
)

USERS = "/admin/users"
NEW_EMAIL = "priya.shah@demo.example.gov.uk"
NEW_PASSWORD = "a long and private passphrase"


def user(email: str) -> User:
    return User.get(User.email == email)


def last_event() -> AuditEvent:
    return AuditEvent.select().order_by(AuditEvent.seq.desc()).first()


def temporary_password(html: str) -> str:
    match = re.search(r'<strong class="app-hash">([^<]+)</strong>', html)
    assert match, "no temporary password on the page"
    return match.group(1)


def add_user(admin, *, email: str = NEW_EMAIL, roles=("finance_officer",), groups=("REVS",)) -> str:
    """Add a user through add → check → confirm; return the temporary password shown."""
    data = {
        "name": "Priya Shah",
        "email": email,
        "roles": list(roles),
        "fund_groups": [str(FundGroup.by_code(code).id) for code in groups],
    }
    response = post_form(admin, f"{USERS}/add", data)
    assert response.status_code == 302, error_summary(response.get_data())
    assert response.location == f"{USERS}/add/check"
    response = post_form(admin, f"{USERS}/add/check")
    assert response.status_code == 200
    return temporary_password(response.get_data(as_text=True))


def test_admin_adds_a_user_who_must_change_the_temporary_password(signed_in, client):
    admin = signed_in("admin")
    assert h1(admin.get(f"{USERS}/add").get_data()) == "Add a user"
    response = post_form(
        admin,
        f"{USERS}/add",
        {
            "name": "Priya Shah",
            "email": "Priya.Shah@demo.example.gov.uk",
            "roles": ["finance_officer"],
            "fund_groups": [str(FundGroup.by_code("REVS").id)],
        },
    )
    assert response.location == f"{USERS}/add/check"
    assert User.get_or_none(User.email == NEW_EMAIL) is None  # nothing saved before confirming

    check = admin.get(f"{USERS}/add/check")
    assert h1(check.get_data()) == "Check the new user's details"
    assert summary_list(check.get_data()) == {
        "Full name": "Priya Shah",
        "E-mail address": "Priya.Shah@demo.example.gov.uk",
        "Roles": "Finance officer",
        "Fund groups": "Revenues",
    }

    created = post_form(admin, f"{USERS}/add/check")
    html = created.get_data(as_text=True)
    assert created.status_code == 200
    assert h1(html) == "User added: Priya Shah"
    password = temporary_password(html)
    assert len(password) == 19

    new = user(NEW_EMAIL)
    assert (new.name, new.role_codes(), new.must_change_password) == ("Priya Shah", ["finance_officer"], True)
    assert [g.code for g in new.fund_groups()] == ["REVS"]
    assert password not in new.password_hash
    event = last_event()
    assert (event.action, event.actor_email) == ("user.create", "admin@demo.example.gov.uk")
    assert event.after_data["roles"] == ["finance_officer"]

    # Shown once: not on the user's page, and the check page has nothing left to confirm.
    assert password not in admin.get(f"{USERS}/{new.id}").get_data(as_text=True)
    assert admin.get(f"{USERS}/add/check").status_code == 302
    assert "Priya Shah" in main_text(admin.get(USERS).get_data())

    response = sign_in(client, NEW_EMAIL, password)
    assert response.location == "/change-password"
    assert client.get("/transactions").location == "/change-password"
    response = post_form(
        client,
        "/change-password",
        {"current_password": password, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
    )
    assert response.location == "/staff"
    assert client.get("/transactions").status_code == 200


def test_a_user_cannot_be_added_twice_or_without_a_role(signed_in):
    admin = signed_in("admin")
    response = post_form(
        admin, f"{USERS}/add", {"name": "Again", "email": "FINANCE@demo.example.gov.uk", "roles": ["auditor"]}
    )
    assert error_summary(response.get_data()) == ["A user with this e-mail address already exists"]
    response = post_form(admin, f"{USERS}/add", {"name": "", "email": "not-an-email", "roles": []})
    assert error_summary(response.get_data()) == [
        "Enter the user's full name",
        "Enter an e-mail address in the correct format, like name@council.gov.uk",
        "Select at least one role",
    ]
    assert User.select().count() == 5


def test_changing_roles_takes_effect_at_once_and_is_audited(signed_in):
    admin = signed_in("admin")
    finance = signed_in("finance")
    assert finance.get("/audit").status_code == 403
    target = user("finance@demo.example.gov.uk")
    url = f"{USERS}/{target.id}/change"
    values = form_values(admin.get(url).get_data())
    assert values["roles"] == ["finance_officer"]
    values["roles"] = ["auditor", "finance_officer"]
    response = post_form(admin, url, values)
    assert response.status_code == 302
    assert response.location == f"{USERS}/{target.id}"
    assert user("finance@demo.example.gov.uk").role_codes() == ["auditor", "finance_officer"]
    event = last_event()
    assert event.action == "user.change"
    assert event.before_data == {"roles": ["finance_officer"]}
    assert event.after_data == {"roles": ["auditor", "finance_officer"]}
    assert summary_list(admin.get(response.location).get_data())["Roles"] == "Auditor, Finance officer"

    # Their session was ended so the new permissions apply; signing in again gives them.
    assert finance.get("/audit").status_code == 302
    assert signed_in("finance").get("/audit").status_code == 200


def test_a_disabled_user_cannot_sign_in_and_can_be_enabled_again(signed_in, client):
    admin = signed_in("admin")
    target = user("auditor@demo.example.gov.uk")
    page = admin.get(f"{USERS}/{target.id}/disable")
    assert h1(page.get_data()) == "Disable Dev Sharma?"
    assert user(target.email).enabled  # the GET changed nothing

    response = post_form(admin, f"{USERS}/{target.id}/disable")
    assert response.location == f"{USERS}/{target.id}"
    assert user(target.email).enabled is False
    assert last_event().action == "user.disable"
    assert error_summary(sign_in(client, target.email).get_data()) == ["Enter a correct e-mail address and password"]
    rows = {row[1]: row[-1] for row in table_rows(admin.get(USERS).get_data())}
    assert rows[target.email] == "Disabled"

    post_form(admin, f"{USERS}/{target.id}/enable")
    assert user(target.email).enabled is True
    assert sign_in(client, target.email).location == "/staff"


def test_resetting_a_password_unlocks_a_locked_user(signed_in, client):
    for _ in range(5):
        sign_in(client, "senior@demo.example.gov.uk", "wrong-password")
    target = user("senior@demo.example.gov.uk")
    assert target.is_locked()
    admin = signed_in("admin")
    rows = {row[1]: row[-1] for row in table_rows(admin.get(USERS).get_data())}
    assert rows[target.email] == "Locked"

    page = admin.get(f"{USERS}/{target.id}/reset-password")
    assert h1(page.get_data()) == "Reset the password of Chloe Evans?"
    response = post_form(admin, f"{USERS}/{target.id}/reset-password")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert h1(html) == "Password reset for Chloe Evans"
    password = temporary_password(html)
    target = user(target.email)
    assert not target.is_locked()
    assert target.must_change_password
    assert last_event().action == "user.reset_password"

    fresh = client.application.test_client()
    assert sign_in(fresh, target.email, DEMO_PASSWORD).status_code == 200  # the old password has gone
    assert sign_in(fresh, target.email, password).location == "/change-password"


def test_admins_cannot_disable_themselves_or_drop_their_own_admin_role(signed_in):
    admin = signed_in("admin")
    me = user("admin@demo.example.gov.uk")
    assert "Disable user" not in admin.get(f"{USERS}/{me.id}").get_data(as_text=True)
    response = post_form(admin, f"{USERS}/{me.id}/disable")
    assert response.status_code == 302
    assert "You cannot disable your own account" in admin.get(response.location).get_data(as_text=True)
    assert user(me.email).enabled

    values = form_values(admin.get(f"{USERS}/{me.id}/change").get_data())
    values["roles"] = ["auditor"]
    response = post_form(admin, f"{USERS}/{me.id}/change", values)
    assert error_summary(response.get_data()) == ["You cannot remove your own system administrator role"]
    assert user(me.email).role_codes() == ["system_administrator"]


def test_only_user_managers_reach_user_administration(signed_in):
    for who in ("finance", "senior", "auditor", "housing"):
        assert signed_in(who).get(USERS).status_code == 403, who
    response = signed_in("finance").get(USERS)
    assert h1(response.get_data()) == "You do not have permission to see this page"
    assert signed_in("admin").get(USERS).status_code == 200
