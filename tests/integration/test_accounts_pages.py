"""Account holder pages: search and details limited to fund groups, loading a CSV extract
(in the service and with the CLI), and a senior finance officer overriding a stop."""

from __future__ import annotations

import io

from app.domain.audit import AuditEvent
from app.domain.funds import Fund
from app.domain.references import AccountHolder
from app.domain.references.demo import seed_demo_reference_rules
from app.domain.users import User
from tests.pages import (
    DEMO_EMAILS,
    csrf_token,
    error_summary,
    h1,
    inline_errors,
    links,
    main_text,
    post_form,
    summary_list,
    table_rows,
)

UPLOAD = "/accounts/upload"


def account(code: str, reference: str) -> AccountHolder:
    return AccountHolder.get((AccountHolder.fund == Fund.by_code(code).id) & (AccountHolder.reference == reference))


def upload(client, content: bytes, *, fund: str = "", file_name: str = "accounts.csv"):
    token = csrf_token(client.get(UPLOAD).get_data())
    return client.post(
        UPLOAD,
        data={"csrf_token": token, "fund": fund, "file": (io.BytesIO(content), file_name)},
        content_type="multipart/form-data",
    )


def last_event(action: str) -> AuditEvent:
    return AuditEvent.select().where(AuditEvent.action == action).order_by(AuditEvent.seq.desc()).first()


# --- loading a file in the service ---------------------------------------------------------------


def test_upload_inserts_then_a_second_upload_updates(signed_in):
    admin = signed_in("admin")
    assert h1(admin.get(UPLOAD).get_data()) == "Load account holders"
    sundry = Fund.by_code("SUNDRY")
    first = (
        b"reference,name,address,balance\r\n"
        b"ZX100,Ada Lovelace,1 Analytical Row,12.50\r\n"
        b"ZX101,Alan Turing,2 Bletchley Way,\r\n"
    )
    response = upload(admin, first, fund=str(sundry.id))
    assert response.status_code == 200, error_summary(response.get_data())
    assert h1(response.get_data()) == "Account holders loaded"
    details = summary_list(response.get_data())
    assert details["Added"] == "2" and details["Updated"] == "0"
    ada = account("SUNDRY", "ZX100")
    assert (ada.name, ada.address, ada.balance_pence) == ("Ada Lovelace", "1 Analytical Row", 1250)
    assert account("SUNDRY", "ZX101").balance_pence is None
    assert last_event("account_holders.load").actor_email == DEMO_EMAILS["admin"]

    second = (
        b"\xef\xbb\xbfReference,Name,Address,Balance,On stop message\r\n"
        b"ZX100,Ada King,1 Analytical Row,20.00,Call us first\r\n"
        b"ZX101,Alan Turing,2 Bletchley Way,,\r\n"
    )
    response = upload(admin, second, fund=str(sundry.id))
    details = summary_list(response.get_data())
    assert (details["Added"], details["Updated"], details["Unchanged"]) == ("0", "1", "1")
    ada = account("SUNDRY", "ZX100")
    assert (ada.name, ada.balance_pence, ada.on_stop_message) == ("Ada King", 2000, "Call us first")
    assert (
        AccountHolder.select().where(AccountHolder.fund == sundry.id, AccountHolder.reference.startswith("ZX")).count()
        == 2
    )


def test_upload_lists_bad_rows_with_line_numbers_and_loads_the_rest(signed_in):
    admin = signed_in("admin")
    content = (
        b"fund,reference,name,balance\n"
        b"SUNDRY,ZY200,Good Row,1.00\n"
        b"NOPE,ZY201,Unknown fund,1.00\n"
        b"SUNDRY,,No reference,1.00\n"
        b"SUNDRY,ZY203,Bad balance,lots\n"
    )
    response = upload(admin, content, fund="fund-column")
    assert response.status_code == 200
    body = response.get_data()
    assert h1(body) == "Account holders loaded with problems"
    rows = table_rows(body)
    assert ["3", "There is no fund with the code NOPE"] in rows
    assert ["4", "The reference is missing"] in rows
    assert any(row[0] == "5" and "lots" in row[1] for row in rows)
    assert summary_list(body)["Rows not loaded"] == "3"
    assert account("SUNDRY", "ZY200").name == "Good Row"
    assert not AccountHolder.select().where(AccountHolder.reference.in_(["ZY201", "ZY203"])).exists()


def test_a_refused_file_shows_the_error_on_the_file_field_and_saves_nothing(signed_in):
    admin = signed_in("admin")
    sundry = str(Fund.by_code("SUNDRY").id)
    before = AccountHolder.select().count()
    for content, message in [
        (b"", "The file is empty"),
        (b"name,balance\nNo Reference,1.00\n", "The file needs a “reference” column in its header row"),
        (b"reference,name\n\xff\xfeZQ1,Bad bytes\n", "The file must be saved as UTF-8 text (“CSV UTF-8” in Excel)"),
    ]:
        response = upload(admin, content, fund=sundry)
        assert response.status_code == 200
        assert error_summary(response.get_data()) == [message]
        assert inline_errors(response.get_data()) == [message]
        assert main_text(response.get_data()).count(message) == 2
    assert AccountHolder.select().count() == before


def test_upload_needs_a_fund_choice_and_a_file(signed_in):
    admin = signed_in("admin")
    response = post_form(admin, UPLOAD, {"fund": ""})
    assert error_summary(response.get_data()) == [
        "Choose the fund the accounts belong to",
        "Select a CSV file of account holders",
    ]
    response = upload(admin, b"fund,reference\nSUNDRY,ZQ9\n", fund=str(Fund.by_code("SUNDRY").id), file_name="a.pdf")
    assert error_summary(response.get_data()) == ["The selected file must be a CSV"]
    # "The file has a fund column" without one is the domain's error, shown on the fund
    response = upload(admin, b"reference\nZQ9\n", fund="fund-column")
    assert error_summary(response.get_data()) == ["Choose a fund, or load a file with a “fund” column"]


def test_only_administrators_load_files(signed_in):
    assert signed_in("finance").get(UPLOAD).status_code == 403
    assert signed_in("senior").get(UPLOAD).status_code == 403


# --- search and details --------------------------------------------------------------------------


def test_finance_finds_accounts_of_their_funds_only(signed_in):
    seed_demo_reference_rules()
    finance = signed_in("finance")  # fund groups REVS, CORP, PARKING: trade waste, not housing rents
    body = finance.get("/accounts?text=C10005").get_data()
    rows = table_rows(body)
    assert len(rows) == 1
    assert rows[0][0] == "C10005" and rows[0][2] == "Old Mill Hotel" and rows[0][4] == "On stop"
    assert rows[0][3] == "£2,310.75"
    assert table_rows(finance.get("/accounts?text=Tom+Fletcher").get_data()) == []
    assert "No accounts match" in main_text(finance.get("/accounts?text=61000000024").get_data())
    everything = [row[0] for row in table_rows(finance.get("/accounts").get_data())]
    assert "C10001" in everything and "61234567892" not in everything

    housing = signed_in("housing")
    rows = table_rows(housing.get("/accounts?text=Tom+Fletcher").get_data())
    assert [row[0] for row in rows] == ["61000000024"]
    assert table_rows(housing.get("/accounts?text=C10005").get_data()) == []
    # A fund the user cannot see, asked for in the fund filter, finds nothing
    twaste = Fund.by_code("TWASTE").id
    assert table_rows(housing.get(f"/accounts?fund={twaste}").get_data()) == []


def test_search_results_come_as_a_partial_for_htmx(signed_in):
    seed_demo_reference_rules()
    finance = signed_in("finance")
    response = finance.get("/accounts?text=C1000", headers={"HX-Request": "true"})
    assert "HX-Request" in response.headers["Vary"]
    text = response.get_data(as_text=True)
    assert "<html" not in text and 'id="results-status"' in text and "accounts found" in text


def test_account_page_shows_details_and_payments_and_hides_other_funds(signed_in):
    seed_demo_reference_rules()
    waste = account("TWASTE", "C10002")
    rent = account("HRENT", "61234567892")
    finance = signed_in("finance")
    response = finance.get(f"/accounts/{waste.id}")
    assert response.status_code == 200
    body = response.get_data()
    assert h1(body) == "Account C10002"
    details = summary_list(body)
    assert details["Address"] == "3 Mill Lane, Demo Borough, DB1 4CD"
    assert details["Balance"] == "£1,120.50"
    assert details["Stop"] == "Not on stop"
    assert "Override the stop" not in main_text(body)
    assert finance.get(f"/accounts/{rent.id}").status_code == 404
    assert finance.get("/accounts/999999999").status_code == 404
    assert signed_in("housing").get(f"/accounts/{rent.id}").status_code == 200


def test_account_page_lists_the_ledger_entries_for_the_account(signed_in):
    from app.domain.ledger import LedgerEntry

    seed_demo_reference_rules()
    entry = LedgerEntry.select().join(Fund).where(Fund.code == "TWASTE").first()
    if entry is None:
        entry = LedgerEntry.select().order_by(LedgerEntry.id).first()
    holder = AccountHolder.get_or_none(
        (AccountHolder.fund == entry.fund_id) & (AccountHolder.reference == entry.account_reference)
    ) or AccountHolder.create(fund=entry.fund_id, reference=entry.account_reference, name="Ledger Test")
    senior = signed_in("senior")  # every fund
    body = senior.get(f"/accounts/{holder.id}").get_data()
    assert (f"/transactions/{entry.receipt_reference}") in [href for _, href in links(body)]


# --- overriding a stop ---------------------------------------------------------------------------


def test_senior_overrides_a_stop_with_a_reason_and_it_is_audited(signed_in):
    seed_demo_reference_rules()
    closed = account("TWASTE", "C10005")
    senior = signed_in("senior")
    body = senior.get(f"/accounts/{closed.id}").get_data()
    assert "This account is closed" in main_text(body)
    override_url = f"/accounts/{closed.id}/stop-override"
    assert ("Override the stop on account C10005", override_url) in links(body)

    response = post_form(senior, override_url, {"reason": "   "})
    assert response.status_code == 200
    message = "Enter why the payment should be taken even though the account is on stop"
    assert error_summary(response.get_data()) == [message]
    assert inline_errors(response.get_data()) == [message]

    response = post_form(senior, override_url, {"reason": "Final payment agreed with the waste team"})
    assert response.status_code == 302 and response.location == f"/accounts/{closed.id}"
    page = senior.get(response.location).get_data(as_text=True)
    assert "Stop overridden for TWASTE account C10005" in page
    event = last_event("account_holder.override_stop")
    assert event.actor_email == DEMO_EMAILS["senior"]
    assert event.object_id == str(closed.id)
    assert "Final payment agreed with the waste team" in event.summary


def test_finance_officer_cannot_override_a_stop(signed_in):
    seed_demo_reference_rules()
    closed = account("TWASTE", "C10005")
    finance = signed_in("finance")
    assert "Override the stop" not in main_text(finance.get(f"/accounts/{closed.id}").get_data())
    override_url = f"/accounts/{closed.id}/stop-override"
    assert finance.get(override_url).status_code == 403
    response = post_form(finance, override_url, {"reason": "Because"}, form_url="/change-password")
    assert response.status_code == 403
    finance_id = User.get(User.email == DEMO_EMAILS["finance"]).id
    assert (
        not AuditEvent.select()
        .where((AuditEvent.action == "account_holder.override_stop") & (AuditEvent.actor_id == finance_id))
        .exists()
    )


def test_an_account_not_on_stop_has_nothing_to_override(signed_in):
    seed_demo_reference_rules()
    fine = account("TWASTE", "C10001")
    response = signed_in("senior").get(f"/accounts/{fine.id}/stop-override")
    assert response.status_code == 302 and response.location == f"/accounts/{fine.id}"


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_loads_a_file_and_reports_errors(app, tmp_path):
    path = tmp_path / "extract.csv"
    path.write_text("reference,name\nZW300,Cli Person\n,Missing\n", encoding="utf-8")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["load-accounts", "--fund", "sundry", str(path)])
    assert result.exit_code == 0, result.output
    assert "Added: 1." in result.output and "Rows with errors: 1." in result.output
    assert "Line 3: The reference is missing" in result.output
    assert account("SUNDRY", "ZW300").name == "Cli Person"


def test_cli_exits_1_when_the_file_is_refused(app, tmp_path):
    path = tmp_path / "refused.csv"
    path.write_text("name\nNobody\n", encoding="utf-8")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["load-accounts", "--fund", "SUNDRY", str(path)])
    assert result.exit_code == 1
    assert "reference" in result.output
    result = runner.invoke(args=["load-accounts", "--fund", "NOSUCH", str(path)])
    assert result.exit_code == 1 and "There is no fund with the code NOSUCH" in result.output
    result = runner.invoke(args=["load-accounts", str(path)])
    assert result.exit_code == 1
