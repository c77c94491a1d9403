"""The audit trail: what is recorded, the viewer and its filters, and `flask verify-audit` catching tampering."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

from app.db import utcnow
from app.domain.audit import AuditEvent, verify_chain
from app.domain.funds import Fund
from app.domain.ukdates import business_date
from tests.pages import (
    error_summary,
    form_values,
    h1,
    link_href,
    main_text,
    post_form,
    sign_in,
    summary_list,
    table_rows,
    title,
)


def date_args(name: str, day: dt.date) -> list[tuple[str, str]]:
    return [(name, str(day.day)), (name, str(day.month)), (name, str(day.year))]


def audit_rows(client, query: list[tuple[str, str]] | None = None) -> list[list[str]]:
    response = client.get("/audit", query_string=query or [])
    assert response.status_code == 200
    return table_rows(response.get_data())


def test_sign_ins_and_changes_appear_in_the_audit_trail(signed_in, client):
    sign_in(client, "finance@demo.example.gov.uk", "wrong-password")
    signed_in("finance")
    admin = signed_in("admin")
    fund = Fund.by_code("PCN")
    url = f"/admin/settings/funds/{fund.id}/change"
    values = form_values(admin.get(url).get_data())
    values["name"] = ["Parking fines"]
    post_form(admin, url, values)

    rows = audit_rows(admin)
    who_what = [(row[1], row[2]) for row in rows[:4]]
    assert who_what == [
        ("admin@demo.example.gov.uk", "Changed PCN Parking fines"),
        ("admin@demo.example.gov.uk", "Signed in"),
        ("finance@demo.example.gov.uk", "Signed in"),
        ("finance@demo.example.gov.uk", "Sign-in failed: wrong password"),
    ]


def test_filters_by_actor_action_and_dates(signed_in):
    signed_in("finance")
    signed_in("auditor")
    auditor = signed_in("auditor")

    rows = audit_rows(auditor, [("actor", "finance@")])
    assert rows and {row[1] for row in rows} == {"finance@demo.example.gov.uk"}

    rows = audit_rows(auditor, [("action", "auth.sign_in")])
    assert [row[2] for row in rows] == ["Signed in"] * 3
    assert [row[1] for row in rows] == [
        "auditor@demo.example.gov.uk",
        "auditor@demo.example.gov.uk",
        "finance@demo.example.gov.uk",
    ]

    rows = audit_rows(auditor, [("action", "auth.sign_in"), ("actor", "auditor")])
    assert len(rows) == 2

    rows = audit_rows(auditor, [("object_type", "vat_code")])
    assert rows and all("VAT" in row[2] or "rate" in row[2] or row[2].startswith("Added") for row in rows)

    today = business_date(utcnow())
    assert len(audit_rows(auditor, [("action", "auth.sign_in"), *date_args("date_from", today)])) == 3
    assert len(audit_rows(auditor, [("action", "auth.sign_in"), *date_args("date_to", today)])) == 3
    tomorrow = today + dt.timedelta(days=1)
    response = auditor.get("/audit", query_string=date_args("date_from", tomorrow))
    assert table_rows(response.get_data()) == []
    assert "No events match these filters" in main_text(response.get_data())
    yesterday = today - dt.timedelta(days=1)
    assert audit_rows(auditor, [("action", "auth.sign_in"), *date_args("date_to", yesterday)]) == []


def test_bad_filter_dates_get_an_error_summary(signed_in):
    auditor = signed_in("auditor")
    today = business_date(utcnow())
    response = auditor.get(
        "/audit", query_string=[*date_args("date_from", today), *date_args("date_to", today - dt.timedelta(days=3))]
    )
    html = response.get_data(as_text=True)
    assert title(html).startswith("Error: Audit trail")
    assert error_summary(html) == ["The to date must be the same as or after the from date"]
    response = auditor.get("/audit", query_string=[("date_from", "31"), ("date_from", "2"), ("date_from", "2026")])
    assert error_summary(response.get_data()) == ["The from date must be a real date"]
    response = auditor.get("/audit", query_string=[("date_from", "31"), ("date_from", ""), ("date_from", "2026")])
    assert error_summary(response.get_data()) == ["The from date must include a month"]


def test_paging_keeps_the_filters(signed_in):
    auditor = signed_in("auditor")
    for _ in range(3):
        signed_in("senior")
    total = AuditEvent.select().count()
    assert total > 50, "the demo seed should make more than one page of events"
    today = business_date(utcnow())
    response = auditor.get("/audit", query_string=date_args("date_from", today))
    assert f"Showing 1 to 50 of {total} events" in main_text(response.get_data())
    next_page = link_href(response.get_data(), "Next")
    assert parse_qs(urlsplit(next_page).query) == {
        "date_from": [str(today.day), str(today.month), str(today.year)],
        "page": ["2"],
    }
    response = auditor.get(next_page)
    assert error_summary(response.get_data()) == []
    assert f"Showing 51 to {total} of {total} events" in main_text(response.get_data())


def test_htmx_gets_only_the_results(signed_in):
    auditor = signed_in("auditor")
    response = auditor.get("/audit?action=auth.sign_in", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "HX-Request" in response.headers["Vary"]
    html = response.get_data(as_text=True)
    assert "<h1" not in html
    assert "<table" in html
    assert 'hx-swap-oob="true"' in html
    assert "1 event found" in main_text(html)


def test_event_page_shows_who_what_and_before_and_after(signed_in):
    admin = signed_in("admin")
    fund = Fund.by_code("NNDR")
    url = f"/admin/settings/funds/{fund.id}/change"
    values = form_values(admin.get(url).get_data())
    values["cost_centre"] = ["RV999"]
    post_form(admin, url, values)
    event = AuditEvent.select().order_by(AuditEvent.seq.desc()).first()

    auditor = signed_in("auditor")
    rows = audit_rows(auditor)
    assert rows[1][3].startswith(f"Event {event.seq}")
    page = auditor.get(f"/audit/{event.seq}")
    assert h1(page.get_data()) == f"Audit event {event.seq}"
    details = summary_list(page.get_data())
    assert details["Who"] == "admin@demo.example.gov.uk"
    assert details["What happened"] == "Changed NNDR Business rates (fund.change)"
    assert details["What it happened to"] == f"fund {fund.id}"
    assert details["Seal (hash)"] == event.hash
    assert details["Previous seal"] == event.prev_hash
    assert table_rows(page.get_data()) == [["cost centre", "RV200", "RV999"]]

    assert auditor.get("/audit/99999999").status_code == 404


def test_verify_audit_reports_intact_then_the_first_tampered_event(app, db_kind, signed_in):
    from app.db import database

    signed_in("admin")  # at least one event made in this test
    runner = app.test_cli_runner()
    result = runner.invoke(args=["verify-audit"])
    assert result.exit_code == 0, result.output
    count = AuditEvent.select().count()
    assert f"The audit trail is intact: {count} events checked." in result.output

    # The database refuses UPDATE on audit_event; a tamperer with DBA rights would turn the trigger off.
    # Inside this test's transaction, so the rollback afterwards restores the trigger and the row.
    target = AuditEvent.select().order_by(AuditEvent.seq).offset(2).first()
    if db_kind == "sqlite":
        database.execute_sql("DROP TRIGGER audit_event_no_update")
        database.execute_sql("UPDATE audit_event SET summary = ? WHERE seq = ?", ("Nothing to see", target.seq))
    else:
        database.execute_sql("ALTER TABLE audit_event DISABLE TRIGGER ALL")
        database.execute_sql("UPDATE audit_event SET summary = %s WHERE seq = %s", ("Nothing to see", target.seq))

    report = verify_chain()
    assert (report.ok, report.broken_seq, report.checked) == (False, target.seq, target.seq - 1)
    result = runner.invoke(args=["verify-audit"])
    assert result.exit_code == 1
    output = result.output + (result.stderr if hasattr(result, "stderr") else "")
    assert f"The audit trail is broken at event {target.seq}: its contents do not match its hash." in output
    assert f"{target.seq - 1} events before it are intact." in output


def test_the_database_refuses_to_change_or_delete_audit_events(app, db_kind):
    from peewee import DatabaseError

    from app.db import database

    placeholder = "?" if db_kind == "sqlite" else "%s"
    for sql in (
        f"UPDATE audit_event SET summary = 'x' WHERE seq = {placeholder}",
        f"DELETE FROM audit_event WHERE seq = {placeholder}",
    ):
        try:
            with database.atomic():
                database.execute_sql(sql, (1,))
        except DatabaseError as exc:
            assert "Audit events cannot be changed or deleted" in str(exc)
        else:
            raise AssertionError(f"the database allowed: {sql}")
    assert verify_chain().ok
