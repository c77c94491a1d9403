"""The finance dashboard on the staff home page: figures agree with the ledger, for the user's funds only."""

from __future__ import annotations

import datetime as dt

from peewee import fn

from app.domain import dashboard
from app.domain.funds import Fund, visible_fund_ids
from app.domain.ledger import LedgerEntry
from app.domain.refunds import request_refund
from app.domain.users import User
from tests.pages import main_text, page_problems, table_rows


def _ledger_total(fund_ids, start, end) -> tuple[int, int]:
    count, total = (
        LedgerEntry.select(fn.COUNT(LedgerEntry.id), fn.COALESCE(fn.SUM(LedgerEntry.amount_pence), 0))
        .where(
            LedgerEntry.fund.in_(sorted(fund_ids))
            & (LedgerEntry.business_date >= start)
            & (LedgerEntry.business_date <= end)
        )
        .tuples()
        .get()
    )
    return int(count), int(total)


def test_month_and_today_agree_with_the_ledger_by_fund_and_by_channel(app):
    finance = User.get(User.email == "finance@demo.example.gov.uk")
    today = dashboard.uk_today()
    figures = dashboard.for_user(finance)
    fund_ids = visible_fund_ids(finance)
    for income, start in ((figures["month"], today.replace(day=1)), (figures["today"], today)):
        count, total = _ledger_total(fund_ids, start, today)
        assert (income.count, income.total_pence) == (count, total)
        assert sum(r.total_pence for r in income.by_channel) == total
        assert sum(r.count for r in income.by_channel) == count
    month = figures["month"]
    assert month.count > 0, "the demo ledger has entries this month"
    for row in month.by_fund:
        fund = Fund.by_code(row.key)
        assert (row.count, row.total_pence) == _ledger_total({fund.id}, today.replace(day=1), today)


def test_housing_staff_see_only_their_funds(app):
    housing = User.get(User.email == "housing@demo.example.gov.uk")
    figures = dashboard.for_user(housing)
    codes = {Fund.get_by_id(i).code for i in visible_fund_ids(housing)}
    assert {row.key for row in figures["month"].by_fund} <= codes
    assert "CTAX" not in codes


def test_refunds_waiting_and_suspense_by_age_are_counted(app):
    finance = User.get(User.email == "finance@demo.example.gov.uk")
    before = dashboard.for_user(finance)
    entry = (
        LedgerEntry.select()
        .join(Fund)
        .where((Fund.code == "CTAX") & (LedgerEntry.amount_pence > 60_000) & (LedgerEntry.source == "payment"))
        .first()
    )
    if entry is None:
        entry = LedgerEntry.select().join(Fund).where(Fund.code == "CTAX").first()
    refund, _ = request_refund(entry, finance, entry.amount_pence, "Paid twice", submission_key="dash:1")
    after = dashboard.for_user(finance)
    if refund.status == "awaiting_approval":
        assert after["refunds_waiting"] == before["refunds_waiting"] + 1
        assert after["refunds_waiting_pence"] == before["refunds_waiting_pence"] + entry.amount_pence
    bands = {band.key: band for band in after["suspense"]}
    assert set(bands) == {"0-7", "8-30", "31-90", "over-90"}
    assert sum(b.count for b in bands.values()) > 0, "the demo council has suspense items"


def test_home_page_shows_the_dashboard_with_tables_behind_the_charts(signed_in):
    client = signed_in("finance")
    page = client.get("/staff")
    assert page.status_code == 200
    assert page_problems(page.data) == []
    text = main_text(page.data)
    for heading in (
        "Refunds awaiting approval",
        "Suspense to clear",
        "Payment problems",
        "Today's income",
        "This month's income",
    ):
        assert heading in text
    html = page.get_data(as_text=True)
    # Four charts (today and month, by fund and by channel), each a picture of the table after it.
    assert html.count('class="app-chart govuk-!-margin-bottom-4" aria-hidden="true"') == 4
    rows = table_rows(page.data)
    assert any(row and row[0] == "Total" for row in rows)
    # Auditors and administrators without the ledger see no figures.
    admin = signed_in("admin")
    if not User.get(User.email == "admin@demo.example.gov.uk").can(
        __import__("app.domain.users", fromlist=["Permission"]).Permission.VIEW_LEDGER
    ):
        assert "Today's income" not in main_text(admin.get("/staff").data)


def test_dashboard_links_to_the_transactions_it_counts(signed_in):
    client = signed_in("finance")
    page = client.get("/staff")
    html = page.get_data(as_text=True)
    today = dashboard.uk_today()
    assert f"date_from={today.day}&amp;date_from={today.month}&amp;date_from={today.year}" in html
    listed = client.get(
        f"/transactions?date_from=1&date_from={today.month}&date_from={today.year}"
        f"&date_to={today.day}&date_to={today.month}&date_to={today.year}"
    )
    assert listed.status_code == 200
    assert dt.date.today()  # the page renders for the month's range
