"""Transaction search, downloads and one transaction's details, through the pages, on SQLite and PostgreSQL.

Each test posts its own entries (rolled back afterwards) with a marker in the narrative, and
searches with that marker, so the demo ledger's entries never get in the way.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
from decimal import Decimal
from urllib.parse import parse_qs, urlencode, urlsplit

import openpyxl
import pytest

from app.db import utcnow
from app.domain import transaction_search
from app.domain.audit import AuditEvent
from app.domain.funds import Fund
from app.domain.ledger import LedgerEntry, PostingRequest, post
from app.domain.methods import MethodOfPayment
from app.domain.offices import Office
from app.domain.outbox import OutboxMessage
from app.domain.payments import Payment, PaymentItem
from app.domain.users import User
from tests.pages import (
    DEMO_EMAILS,
    csrf_token,
    error_summary,
    h1,
    links,
    main_text,
    parse,
    root_of,
    summary_list,
    table_rows,
    text_of,
)

MARKER = "Zebedee"
_keys = itertools.count()


def entry(fund="CTAX", amount=1000, method="CASH", *, days_ago=0, narrative="", **changes) -> LedgerEntry:
    values = {
        "idempotency_key": f"search-test-{next(_keys)}-{utcnow().timestamp()}",
        "fund": Fund.by_code(fund),
        "account_reference": "ACC100",
        "amount_pence": amount,
        "method": MethodOfPayment.by_code(method),
        "source": "staff_payment",
        "taken_at": dt.datetime.combine(dt.date.today() - dt.timedelta(days=days_ago), dt.time(12)),
        "narrative": f"{MARKER} {narrative}".strip(),
    }
    values.update(changes)
    return post(PostingRequest(**values)).entry


def search(client, **params):
    params = {"text": MARKER, **params}
    return client.get("/transactions?" + urlencode(params, doseq=True))


def receipts(response) -> list[str]:
    return [row[0] for row in table_rows(response.get_data())]


def date_params(name: str, day: dt.date) -> dict:
    return {name: [str(day.day), str(day.month), str(day.year)]}


# --- filters -----------------------------------------------------------------------------------


def test_every_filter_narrows_the_results(signed_in):
    finance = signed_in("finance")
    today = dt.date.today()
    office = Office.select().first()
    taker = User.get(User.email == DEMO_EMAILS["finance"])
    old = entry(days_ago=40, amount=500)
    pcn = entry("PCN", amount=7000, method="WEB", source="payment")
    named = entry(amount=2500, payer_name="Marigold Featherstone", account_reference="ZX998877")
    counter = entry(amount=12345, office=office, user=taker)
    refund = entry("PCN", amount=-1250, method="CARD", source="refund", corrects=pcn)

    everything = {old, pcn, named, counter, refund}
    cases = {
        "date range": (
            {
                **date_params("date_from", today - dt.timedelta(days=45)),
                **date_params("date_to", today - dt.timedelta(days=35)),
            },
            {old},
        ),  # fmt: skip
        "from date only": (date_params("date_from", today - dt.timedelta(days=1)), everything - {old}),
        "fund": ({"fund": Fund.by_code("PCN").id}, {pcn, refund}),
        "method": ({"method": MethodOfPayment.by_code("WEB").id}, {pcn}),
        "account reference, typed loosely": ({"account": "zx99 8877"}, {named}),
        "receipt reference, typed loosely": (
            {"receipt": counter.receipt_reference.lower().replace("-", "")},
            {counter},
        ),
        "amount range": ({"amount_from": "20", "amount_to": "£123.45"}, {named, counter, pcn}),
        "negative amounts": ({"amount_to": "-0.01"}, {refund}),
        "payer text": ({"text": "featherSTONE"}, {named}),
        "user": ({"user": taker.id}, {counter}),
        "office": ({"office": office.id}, {counter}),
        "source": ({"source": "refund"}, {refund}),
    }
    for name, (params, expected) in cases.items():
        response = search(finance, **params)
        assert response.status_code == 200, name
        assert set(receipts(response)) == {e.receipt_reference for e in expected}, name
    # The selected filters are listed, each with a link that removes it.
    response = search(finance, fund=Fund.by_code("PCN").id)
    assert "Selected filters" in main_text(response.get_data())
    remove = [href for text, href in links(response.get_data()) if text.startswith("Remove the filter fund: Parking")]
    assert remove and "fund=" not in remove[0] and "text=" in remove[0]


def test_text_is_matched_literally_without_case(signed_in):
    finance = signed_in("finance")
    percent = entry(narrative="Paid 100% of the bill")
    entry(narrative="Paid 1000 in full")
    underscore = entry(payer_name="O_Brien Ltd")
    entry(payer_name="OXBrien Ltd")
    assert receipts(search(finance, text="100%")) == [percent.receipt_reference]
    assert receipts(search(finance, text="o_brien")) == [underscore.receipt_reference]
    assert receipts(search(finance, text="  paid   100%  ")) == [percent.receipt_reference]


def test_the_result_count_and_total_cover_every_page(signed_in):
    finance = signed_in("finance")
    for n in range(55):
        entry(amount=100 + n)
    response = search(finance)
    body = response.get_data(as_text=True)
    assert "Showing 1 to 50 of 55 entries, totalling £69.85" in main_text(body)
    assert len(receipts(response)) == 50
    status = next(el for el in root_of(body).iter("p") if el.get("id") == "results-status")
    assert text_of(status) == "55 entries found" and status.get("role") == "status"
    # Page 2 keeps the filter in its link.
    next_page = [href for text, href in links(body) if text.startswith("Next")][0]
    assert parse_qs(urlsplit(next_page).query)["text"] == [MARKER]
    assert len(receipts(finance.get(next_page))) == 5


def test_a_broad_search_counts_only_up_to_the_limit(signed_in, monkeypatch):
    monkeypatch.setattr(transaction_search, "COUNT_LIMIT", 5)
    finance = signed_in("finance")
    for n in range(7):
        entry(amount=100 + n)
    response = search(finance)
    text = main_text(response.get_data())
    assert "Showing 1 to 5 of more than 5 entries" in text
    assert "totalling" not in text
    assert "To see the number and total, narrow the search" in text
    # A download is not capped.
    csv_rows = list(csv.reader(io.StringIO(finance.get(_download_url(response, "CSV")).get_data(as_text=True))))
    assert len(csv_rows) == 1 + 7


def test_results_are_limited_to_the_users_fund_groups(signed_in):
    housing = signed_in("housing")
    rent = entry("HRENT", amount=9000, method="CASH")
    tax = entry("CTAX", amount=9000)
    assert receipts(search(housing)) == [rent.receipt_reference]
    assert receipts(search(housing, fund=Fund.by_code("CTAX").id)) == []
    assert receipts(search(housing, receipt=tax.receipt_reference)) == []
    rows = list(
        csv.reader(io.StringIO(housing.get("/transactions/download.csv?text=" + MARKER).get_data(as_text=True)))
    )
    assert [row[0] for row in rows[1:]] == [rent.receipt_reference]
    assert housing.get(f"/transactions/{tax.receipt_reference}").status_code == 404
    assert housing.get(f"/transactions/{tax.receipt_reference}/receipt").status_code == 404
    # The fund list offers only the user's own funds.
    options = [text_of(o) for o in root_of(search(housing).get_data()).iter("option")]
    assert "Housing rent (HRENT)" in options and "Council tax (CTAX)" not in options


# --- sorting -----------------------------------------------------------------------------------


def test_every_column_sorts_both_ways_with_links_and_aria_sort(signed_in):
    finance = signed_in("finance")
    made = [
        entry("PCN", 300, "WEB", days_ago=2, account_reference="B2"),
        entry("CTAX", 100, "CASH", days_ago=1, account_reference="C3"),
        entry("LIB", 200, "CHQ", days_ago=3, account_reference="A1"),
    ]
    key = {
        "date": lambda e: (e.business_date, e.id),
        "receipt": lambda e: e.receipt_reference,
        "fund": lambda e: e.fund.name,
        "account": lambda e: e.account_reference,
        "method": lambda e: e.method.name,
        "amount": lambda e: e.amount_pence,
    }
    for column, sort_key in key.items():
        for direction in ("asc", "desc"):
            response = search(finance, sort=column, direction=direction)
            expected = sorted(made, key=sort_key, reverse=direction == "desc")
            assert receipts(response) == [e.receipt_reference for e in expected], (column, direction)
            headers = {text_of(th).split(",")[0]: th for th in root_of(response.get_data()).iter("th")}
            current = headers[transaction_search.SORTS[column]]
            assert current.get("aria-sort") == ("ascending" if direction == "asc" else "descending")
            others = [
                th for name, th in headers.items() if th is not current and name in transaction_search.SORTS.values()
            ]
            assert {th.get("aria-sort") for th in others} == {"none"}
            # The heading's link turns the order round and keeps the filters.
            href = next(a.get("href") for a in current.iter("a"))
            query = parse_qs(urlsplit(href).query)
            assert query["direction"] == ["desc" if direction == "asc" else "asc"] and query["text"] == [MARKER]
    # Anything else in the URL falls back to newest first.
    assert receipts(search(finance, sort="payer_name; DROP TABLE", direction="sideways")) == [
        e.receipt_reference for e in sorted(made, key=key["date"], reverse=True)
    ]


def test_the_sort_is_kept_when_filters_are_applied(signed_in):
    finance = signed_in("finance")
    entry(amount=100)
    response = search(finance, sort="amount", direction="asc")
    root = root_of(response.get_data())
    hidden = {el.get("name"): el.get("value") for el in root.iter("input") if el.get("name") in ("sort", "direction")}
    assert hidden == {"sort": "amount", "direction": "asc"}


# --- htmx and errors ---------------------------------------------------------------------------


def test_htmx_gets_only_the_results_with_the_count_announced(signed_in):
    finance = signed_in("finance")
    entry(amount=100)
    response = finance.get(f"/transactions?text={MARKER}", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "HX-Request" in response.headers["Vary"]
    body = response.get_data(as_text=True)
    assert "<h1" not in body and "<html" not in body
    fragment = parse(body, fragment=True).root
    status = next(el for el in fragment.iter("p") if el.get("id") == "results-status")
    assert status.get("hx-swap-oob") == "true" and text_of(status) == "1 entry found"
    assert any(el.get("id") == "selected-filters" and el.get("hx-swap-oob") == "true" for el in fragment.iter("div"))


def test_a_half_typed_date_waits_while_htmx_follows_typing_but_errors_on_submit(signed_in):
    finance = signed_in("finance")
    half = "/transactions?date_from=3&date_from=&date_from="
    assert finance.get(half, headers={"HX-Request": "true"}).status_code == 204
    submitted = finance.get(half + "&submit=Search", headers={"HX-Request": "true"})
    assert submitted.status_code == 204 and submitted.headers["HX-Redirect"].startswith("/transactions?")


def test_filters_that_make_no_sense_are_explained(signed_in):
    finance = signed_in("finance")
    today = dt.date.today()
    response = search(
        finance,
        **date_params("date_from", today),
        **date_params("date_to", today - dt.timedelta(days=1)),
        amount_from="£10",
        amount_to="5",
        receipt="A18A-24FV-9",
    )
    assert response.status_code == 200
    assert error_summary(response.get_data()) == [
        "The to date must be the same as or after the from date",
        "Check the receipt reference: one of the characters is wrong",
        "The amount to must be the same as or more than the amount from",
    ]
    assert search(finance, amount_from="ten pounds").status_code == 200
    assert error_summary(search(finance, amount_from="ten pounds").get_data()) == [
        "Enter an amount in pounds and pence, like £1,234.50"
    ]


# --- downloads ---------------------------------------------------------------------------------


def _download_url(response, kind: str) -> str:
    return [href for text, href in links(response.get_data()) if text.startswith(f"Download as {kind}")][0]


def test_the_csv_download_has_every_match_with_formulas_neutralised(signed_in):
    finance = signed_in("finance")
    office = Office.select().first()
    taker = User.get(User.email == DEMO_EMAILS["finance"])
    paid = entry(
        "LIB",
        1200,
        payer_name='=HYPERLINK("http://evil.example","Click")',
        payer_email="payer@example.com",
        account_reference="LIB-42",
        office=office,
        user=taker,
        narrative="+fines",
    )
    refund = entry("LIB", -1200, source="refund", corrects=paid, narrative="@refund")
    page = search(finance, sort="amount", direction="asc")
    response = finance.get(_download_url(page, "CSV"))
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="transactions-')
    assert response.is_streamed
    data = response.get_data()
    assert data.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [r["Receipt reference"] for r in rows] == [refund.receipt_reference, paid.receipt_reference]
    first, second = rows
    assert first["Amount"] == "-12.00"  # a number stays a number, sign and all
    assert first["Corrects receipt"] == paid.receipt_reference
    assert first["Narrative"] == f"{MARKER} @refund"  # not at the start: left alone
    assert second["Payer name"] == '\'=HYPERLINK("http://evil.example","Click")'
    assert second["Amount"] == "12.00" and second["VAT"] == "2.00" and second["Net"] == "10.00"
    assert second["VAT code"] == "S" and second["Fund code"] == "LIB" and second["Fund"] == "Library charges"
    assert second["Business date"] == paid.business_date.isoformat()
    in_london = paid.taken_at.replace(tzinfo=dt.UTC).astimezone(transaction_search.LONDON)
    assert second["Money taken (UK time)"] == f"{in_london:%Y-%m-%d %H:%M:%S}"
    assert (second["Office"], second["Taken by"], second["Method of payment"]) == (office.name, taker.name, "Cash")
    assert second["Source"] == "Payment taken by staff"
    assert list(rows[0]) == [c.heading for c in transaction_search.EXPORT_COLUMNS]


def test_the_xlsx_download_opens_with_numbers_dates_and_safe_text(signed_in):
    finance = signed_in("finance")
    paid = entry("LIB", 1200, payer_name="=1+2", narrative="Fines")
    entry("LIB", -50, source="refund", corrects=paid, narrative="Refund")
    page = search(finance, sort="amount", direction="desc")
    response = finance.get(_download_url(page, "XLSX"))
    assert response.status_code == 200
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response.headers["Content-Disposition"].endswith('.xlsx"')
    workbook = openpyxl.load_workbook(io.BytesIO(response.get_data()))
    sheet = workbook["Transactions"]
    rows = list(sheet.iter_rows(values_only=True))
    headings = [c.heading for c in transaction_search.EXPORT_COLUMNS]
    assert list(rows[0]) == headings
    first = dict(zip(headings, rows[1], strict=True))
    second = dict(zip(headings, rows[2], strict=True))
    assert first["Receipt reference"] == paid.receipt_reference
    assert first["Amount"] == pytest.approx(12.0) and second["Amount"] == pytest.approx(-0.5)
    assert first["Business date"] == dt.datetime.combine(paid.business_date, dt.time())
    assert first["Payer name"] == "'=1+2"
    cell = sheet.cell(row=2, column=headings.index("Payer name") + 1)
    assert cell.data_type == "s"
    assert sheet.cell(row=2, column=headings.index("Amount") + 1).number_format == "#,##0.00"


def test_a_hand_edited_download_url_with_bad_filters_goes_back_to_the_search(signed_in):
    finance = signed_in("finance")
    response = finance.get("/transactions/download.csv?amount_from=lots")
    assert response.status_code == 302 and response.location.startswith("/transactions?")


# --- one transaction ---------------------------------------------------------------------------


def test_the_details_page_shows_a_timeline_of_everything_linked(signed_in):
    finance = signed_in("finance")
    web = MethodOfPayment.by_code("WEB")
    original = entry(
        "CTAX", 5000, "WEB", source="payment", group_reference="PAY-TEST-LINE", source_reference="PAY-TEST-LINE"
    )
    sibling = entry("PCN", 3500, "WEB", source="payment", group_reference="PAY-TEST-LINE")
    hidden = entry("HRENT", 100, "WEB", source="payment", group_reference="PAY-TEST-LINE")
    payment = Payment.create(
        reference="PAY-TEST-LINE",
        submission_key="search-test-payment",
        pay_account="default",
        method=web,
        status="succeeded",
        amount_pence=8600,
        description="Council tax and a parking fine",
        return_token="search-test-return-token-0123456789abcdef",
        finished_at=utcnow(),
    )
    PaymentItem.create(
        payment=payment,
        position=1,
        fund=original.fund,
        account_reference="ACC100",
        amount_pence=5000,
        ledger_entry=original,
    )
    reversal = entry("CTAX", -5000, "WEB", source="reversal", corrects=original, narrative="Paid twice")

    # Only PCN and CTAX are visible to someone in the revenues and parking groups.
    response = finance.get(f"/transactions/{original.receipt_reference}")
    assert response.status_code == 200
    body = response.get_data()
    titles = [text_of(el) for el in root_of(body).iter("h3")]
    assert "Card payment started" in titles
    assert "Money taken" in titles
    assert "Recorded in the ledger: payment" in titles
    assert f"Reversal {reversal.receipt_reference}" in titles
    assert f"Posted with it: payment {sibling.receipt_reference}" in titles
    assert not any(hidden.receipt_reference in t for t in titles)
    hrefs = [href for _, href in links(body)]
    assert "/payments/PAY-TEST-LINE" in hrefs
    assert f"/transactions/{reversal.receipt_reference}" in hrefs
    assert f"/transactions/{sibling.receipt_reference}" in hrefs
    assert f"/transactions/{original.receipt_reference}/receipt" in hrefs
    assert summary_list(body)["Group reference"] == "PAY-TEST-LINE"
    # The reversal's own page links back to what it corrects.
    reversal_page = finance.get(f"/transactions/{reversal.receipt_reference}").get_data()
    assert f"Corrects receipt {original.receipt_reference}" in [text_of(el) for el in root_of(reversal_page).iter("h3")]


def test_a_receipt_typed_loosely_redirects_to_its_address(signed_in):
    finance = signed_in("finance")
    made = entry()
    response = finance.get(f"/transactions/{made.receipt_reference.lower().replace('-', '')}")
    assert response.status_code == 302 and response.location == f"/transactions/{made.receipt_reference}"


def test_the_vat_receipt_is_printable_with_the_vat_breakdown(signed_in):
    finance = signed_in("finance")
    office = Office.select().where(Office.address != "").first()
    made = entry("LIB", 1200, office=office, payer_name="Ada Reader", narrative="Lost book")
    response = finance.get(f"/transactions/{made.receipt_reference}/receipt")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert h1(body) == f"VAT receipt {made.receipt_reference}"
    text = main_text(body)
    assert "Demo Borough Council" in text and office.address in text
    assert table_rows(body) == [["Standard rate (S) at 20%", "£10.00", "£2.00", "£12.00"]]
    assert summary_list(body)["Paid for"] == f"Library charges: {MARKER} Lost book"
    assert "@media print" in body


def test_a_receipt_can_be_emailed_to_the_payer_and_is_audited(signed_in):
    finance = signed_in("finance")
    made = entry("LIB", 1200, payer_email="reader@example.com")
    url = f"/transactions/{made.receipt_reference}"
    page = finance.get(url).get_data()
    assert 'value="reader@example.com"' in page.decode()
    response = finance.post(f"{url}/email-receipt", data={"csrf_token": csrf_token(page), "email": "other@example.com"})
    assert response.status_code == 302 and response.location == url
    message = OutboxMessage.select().order_by(OutboxMessage.id.desc()).first()
    assert message.to_address == "other@example.com"
    assert made.receipt_reference in message.subject
    assert "VAT" in message.body and "£12.00" in message.body and "£2.00" in message.body
    event = AuditEvent.select().order_by(AuditEvent.seq.desc()).first()
    assert (event.action, event.object_type, event.object_id) == (
        transaction_search.RECEIPT_EMAILED,
        "ledger_entry",
        made.receipt_reference,
    )
    assert event.actor_email == DEMO_EMAILS["finance"]
    after = finance.get(url)
    assert "Receipt sent to other@example.com" in main_text(after.get_data())
    assert "Receipt e-mailed" in [text_of(el) for el in root_of(after.get_data()).iter("h3")]


def test_an_invalid_email_address_is_explained_and_nothing_is_sent(signed_in):
    finance = signed_in("finance")
    made = entry()
    url = f"/transactions/{made.receipt_reference}"
    before = OutboxMessage.select().count()
    token = csrf_token(finance.get(url).get_data())
    response = finance.post(f"{url}/email-receipt", data={"csrf_token": token, "email": "not an address"})
    assert response.status_code == 200
    assert error_summary(response.get_data()) == ["Enter an email address in the correct format, like name@example.com"]
    assert response.get_data(as_text=True).count("<title>Error: ") == 1
    response = finance.post(f"{url}/email-receipt", data={"csrf_token": token, "email": ""})
    assert error_summary(response.get_data()) == ["Enter an email address"]
    assert OutboxMessage.select().count() == before


def test_auditors_can_read_but_not_send_receipts(signed_in):
    auditor = signed_in("auditor")
    made = entry()
    url = f"/transactions/{made.receipt_reference}"
    page = auditor.get(url)
    assert page.status_code == 200
    assert "Email the receipt" not in page.get_data(as_text=True)
    token = csrf_token(auditor.get("/change-password").get_data())
    assert auditor.post(f"{url}/email-receipt", data={"csrf_token": token, "email": "a@example.com"}).status_code == 403


def test_amounts_in_the_domain_are_exact(app):
    """The page total comes from the database sum, in pence."""
    made = [entry(amount=a) for a in (1, 2, 999_999_99)]
    counted = transaction_search.count(transaction_search.search([e.fund_id for e in made], _marker()))
    assert counted == transaction_search.Count(3, 1 + 2 + 999_999_99, False)
    assert isinstance(counted.total_pence, int)
    assert Decimal(counted.total_pence) / 100 == Decimal("1000000.02")


def _marker():
    return transaction_search.SearchFilters(text=MARKER)
