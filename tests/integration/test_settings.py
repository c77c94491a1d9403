"""Settings: funds (add → check → confirm, change, disable), VAT codes and rates, fund groups, council branding."""

from __future__ import annotations

import datetime as dt
import io
import struct
import zlib
from decimal import Decimal

import pytest

from app.domain.audit import AuditEvent
from app.domain.council import CouncilSettings
from app.domain.errors import DomainError
from app.domain.funds import Fund, FundGroup
from app.domain.ledger import LedgerEntry
from app.domain.vat import VatCode
from tests.pages import (
    error_summary,
    form_values,
    h1,
    inline_errors,
    main_text,
    post_form,
    summary_list,
    table_rows,
    title,
)

FUNDS = "/admin/settings/funds"


def fund_data(**changes) -> dict:
    data = {
        "code": "GWASTE",
        "name": "Garden waste",
        "description": "Collection of garden waste, April to November",
        "shown_to_citizens": "y",
        "minimum_pence": "£1.00",
        "maximum_pence": "£1,000",
        "vat_code": str(VatCode.by_code("O").id),
        "ledger_code": "6001",
        "cost_centre": "EN100",
        "reference_label": "Garden waste customer number",
        "reference_hint": "It starts with GW",
        "pay_account": "default",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def last_event(action: str | None = None) -> AuditEvent:
    query = AuditEvent.select().order_by(AuditEvent.seq.desc())
    if action:
        query = query.where(AuditEvent.action == action)
    return query.first()


def test_admin_adds_a_fund_through_check_and_confirm(signed_in):
    admin = signed_in("admin")
    form = admin.get(f"{FUNDS}/add")
    assert h1(form.get_data()) == "Add a fund"

    response = post_form(admin, f"{FUNDS}/add", fund_data())
    assert response.status_code == 302
    assert response.location == f"{FUNDS}/add/check"
    assert Fund.by_code("GWASTE") is None  # nothing saved before confirming

    check = admin.get(f"{FUNDS}/add/check")
    assert h1(check.get_data()) == "Check the new fund"
    rows = summary_list(check.get_data())
    assert rows["Code"] == "GWASTE"
    assert rows["Name"] == "Garden waste"
    assert rows["Minimum amount"] == "£1.00"
    assert rows["Maximum amount"] == "£1,000.00"
    assert rows["VAT code"] == "O – Outside the scope of VAT"
    assert rows["Citizens can pay online"] == "Yes"

    # "Change" goes back to the form with the answers kept.
    again = admin.get(f"{FUNDS}/add?change=1")
    assert form_values(again.get_data())["name"] == ["Garden waste"]

    response = post_form(admin, f"{FUNDS}/add/check")
    fund = Fund.by_code("GWASTE")
    assert fund is not None
    assert response.status_code == 302
    assert response.location == f"{FUNDS}/{fund.id}"
    assert (fund.minimum_pence, fund.maximum_pence, fund.shown_to_citizens) == (100, 100_000, True)
    assert fund.vat_code.code == "O"

    page = admin.get(response.location).get_data(as_text=True)
    assert h1(page) == "Fund GWASTE Garden waste"
    assert "Fund GWASTE Garden waste added" in page
    assert "GWASTE" in main_text(admin.get(FUNDS).get_data())

    event = last_event("fund.create")
    assert event.actor_email == "admin@demo.example.gov.uk"
    assert event.object_id == str(fund.id)
    assert event.before_data == {}
    assert event.after_data["code"] == "GWASTE"
    assert event.after_data["name"] == "Garden waste"
    assert event.after_data["minimum_pence"] == 100
    assert event.after_data["maximum_pence"] == 100_000

    # Confirming twice (back button, double click) does not add it twice.
    response = admin.get(f"{FUNDS}/add/check")
    assert response.status_code == 302
    assert Fund.select().where(Fund.code == "GWASTE").count() == 1


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "Enter the name of the fund"),
        ({"code": "a b"}, "code", "The code must be 1 to 10 letters or numbers, with no spaces"),
        ({"code": ""}, "code", "Enter a code"),
        (
            {"minimum_pence": "10", "maximum_pence": "5"},
            "maximum_pence",
            "The maximum amount must be the same as or more than the minimum amount",
        ),
        (
            {"minimum_pence": "£12.345"},
            "minimum_pence",
            "Enter an amount with no more than 2 decimal places, like £12.50",
        ),
        ({"minimum_pence": "twelve"}, "minimum_pence", "Enter an amount in pounds and pence, like £1,234.50"),
        ({"minimum_pence": ""}, "minimum_pence", "Enter the minimum amount"),
        ({"vat_code": ""}, "vat_code", "Select a VAT code"),
        (
            {"pay_account": "Main Account"},
            "pay_account",
            "The account name must be lower-case letters, numbers, hyphens or underscores",
        ),
    ],
    ids=[
        "no-name",
        "bad-code",
        "no-code",
        "max-below-min",
        "too-many-decimals",
        "not-money",
        "no-min",
        "no-vat",
        "pay",
    ],
)
def test_invalid_fund_input_gets_specific_messages_and_creates_nothing(signed_in, changes, field, message):
    admin = signed_in("admin")
    count = Fund.select().count()
    response = post_form(admin, f"{FUNDS}/add", fund_data(**changes))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert title(html).startswith("Error: Add a fund")
    assert error_summary(html) == [message]
    assert message in inline_errors(html)
    assert f'href="#{field}' in html  # the summary links to the field
    assert Fund.select().count() == count
    assert admin.get(f"{FUNDS}/add/check").status_code == 302  # nothing pending either


def test_a_duplicate_fund_code_is_refused(signed_in):
    admin = signed_in("admin")
    count = Fund.select().count()
    response = post_form(admin, f"{FUNDS}/add", fund_data(code="ctax"))
    assert error_summary(response.get_data()) == ["A fund with code CTAX already exists"]
    assert Fund.select().count() == count


def test_changing_a_fund_audits_only_the_changed_fields(signed_in):
    admin = signed_in("admin")
    fund = Fund.by_code("LIB")
    url = f"{FUNDS}/{fund.id}/change"
    form = admin.get(url)
    assert h1(form.get_data()) == "Change fund LIB"
    values = form_values(form.get_data())
    assert values["name"] == ["Library charges"]
    values["name"] = ["Library fines and charges"]
    values["maximum_pence"] = ["150.00"]

    response = post_form(admin, url, values)
    assert response.status_code == 302
    assert response.location == f"{FUNDS}/{fund.id}"
    fund = Fund.by_code("LIB")
    assert (fund.name, fund.maximum_pence, fund.minimum_pence, fund.code) == (
        "Library fines and charges",
        15000,
        10,
        "LIB",
    )

    event = last_event("fund.change")
    assert event.before_data == {"name": "Library charges", "maximum_pence": 10_000}
    assert event.after_data == {"name": "Library fines and charges", "maximum_pence": 15_000}

    # Saving again without changes records nothing.
    seq = last_event().seq
    post_form(admin, url, form_values(admin.get(url).get_data()))
    assert last_event().seq == seq


def test_disabling_a_fund_needs_confirmation(signed_in):
    admin = signed_in("admin")
    fund = Fund.by_code("LIB")
    url = f"{FUNDS}/{fund.id}/disable"
    page = admin.get(url)
    assert page.status_code == 200
    assert h1(page.get_data()) == "Disable fund LIB?"
    assert Fund.by_code("LIB").enabled  # a GET changes nothing

    response = post_form(admin, url)
    assert response.status_code == 302
    assert Fund.by_code("LIB").enabled is False
    event = last_event()
    assert (event.action, event.before_data, event.after_data) == (
        "fund.disable",
        {"enabled": True},
        {"enabled": False},
    )
    listing = table_rows(admin.get(FUNDS).get_data())
    assert [row for row in listing if row[0].startswith("LIB")][0][-1] == "Disabled"
    assert "Library charges" not in main_text(signed_in("finance").get("/").get_data())  # not offered to citizens

    post_form(admin, f"{FUNDS}/{fund.id}/enable")
    assert Fund.by_code("LIB").enabled is True
    assert last_event().action == "fund.enable"


def date_fields(day: dt.date) -> list[str]:
    return [str(day.day), str(day.month), str(day.year)]


def test_vat_code_with_a_rate_then_a_new_rate_is_picked_by_date(signed_in):
    admin = signed_in("admin")
    response = post_form(
        admin,
        "/admin/settings/vat-codes/add",
        {"code": "R", "name": "Reduced rate", "rate": "17.5", "effective_from": date_fields(dt.date(2024, 4, 1))},
    )
    assert response.status_code == 302, error_summary(response.get_data())
    rows = summary_list(admin.get("/admin/settings/vat-codes/add/check").get_data())
    assert (rows["Rate"], rows["In force from"]) == ("17.5%", "1 April 2024")
    post_form(admin, "/admin/settings/vat-codes/add/check")
    vat = VatCode.by_code("R")
    assert vat.rate_on(dt.date(2024, 4, 1)) == Decimal("0.175")

    url = f"/admin/settings/vat-codes/{vat.id}/rates/add"
    response = post_form(admin, url, {"rate": "5", "effective_from": date_fields(dt.date(2025, 1, 1))})
    assert response.status_code == 302
    assert rows_text(admin.get(f"/admin/settings/vat-codes/{vat.id}")) == [
        ["1 January 2025", "5%"],
        ["1 April 2024", "17.5%"],
    ]

    assert vat.rate_on(dt.date(2024, 12, 31)) == Decimal("0.175")
    assert vat.rate_on(dt.date(2025, 1, 1)) == Decimal("0.05")
    assert vat.rate_on(dt.date(2030, 6, 1)) == Decimal("0.05")
    with pytest.raises(DomainError):
        vat.rate_on(dt.date(2024, 3, 31))

    # The same date twice is refused; so are nonsense rates.
    response = post_form(admin, url, {"rate": "6", "effective_from": date_fields(dt.date(2025, 1, 1))})
    assert error_summary(response.get_data()) == ["VAT code R already has a rate from 1 January 2025"]
    response = post_form(admin, url, {"rate": "120", "effective_from": date_fields(dt.date(2026, 1, 1))})
    assert error_summary(response.get_data()) == ["Enter a VAT rate between 0 and 100"]
    response = post_form(admin, url, {"rate": "5", "effective_from": ["31", "2", "2026"]})
    assert error_summary(response.get_data()) == ["The in force from must be a real date"]
    assert vat.rates().count() == 2


def rows_text(response) -> list[list[str]]:
    return table_rows(response.get_data())


def _receipt_in(fund_code: str) -> str:
    entry = LedgerEntry.select().join(Fund).where(Fund.code == fund_code).first()
    assert entry is not None, f"the demo ledger has no {fund_code} entries"
    return entry.receipt_reference


def test_fund_groups_decide_which_transactions_a_user_sees(signed_in):
    housing = signed_in("housing")
    funds_seen = {row[2] for row in rows_text(housing.get("/transactions"))}
    assert funds_seen == {"Housing rent"}
    pcn_receipt = _receipt_in("PCN")
    assert housing.get(f"/transactions/{_receipt_in('HRENT')}").status_code == 200
    assert housing.get(f"/transactions/{pcn_receipt}").status_code == 404
    assert housing.get(f"/transactions/{_receipt_in('CTAX')}").status_code == 404

    admin = signed_in("admin")
    group = FundGroup.by_code("HOUSING")
    url = f"/admin/settings/fund-groups/{group.id}/change"
    values = form_values(admin.get(url).get_data())
    values["funds"] = [str(Fund.by_code("HRENT").id), str(Fund.by_code("PCN").id)]
    assert post_form(admin, url, values).status_code == 302
    event = last_event("fund_group.set_funds")
    assert (event.before_data, event.after_data) == ({"funds": ["HRENT"]}, {"funds": ["HRENT", "PCN"]})

    funds_seen = {row[2] for row in rows_text(housing.get("/transactions"))}
    assert funds_seen == {"Housing rent", "Parking penalty charge notice"}
    assert housing.get(f"/transactions/{pcn_receipt}").status_code == 200

    # Disabling the group hides its funds altogether.
    post_form(admin, f"/admin/settings/fund-groups/{group.id}/disable")
    assert rows_text(housing.get("/transactions")) == []
    assert housing.get(f"/transactions/{pcn_receipt}").status_code == 404


def test_filtering_transactions_by_a_fund_outside_the_users_groups_shows_nothing(signed_in):
    housing = signed_in("housing")
    response = housing.get(f"/transactions?fund={Fund.by_code('CTAX').id}")
    assert response.status_code == 200
    assert rows_text(response) == []


COUNCIL = "/admin/settings/council/change"


def test_brand_colour_with_poor_contrast_is_refused(signed_in):
    admin = signed_in("admin")
    values = form_values(admin.get(COUNCIL).get_data())
    values["brand_colour"] = ["#ffdd00"]
    response = post_form(admin, COUNCIL, values)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    message = "Choose a darker brand colour: white text on it must have a contrast ratio of at least 4.5 to 1"
    assert error_summary(html) == [message]
    assert title(html).startswith("Error: Change council settings")
    assert CouncilSettings.current().brand_colour == "#005a8c"

    values["brand_colour"] = ["blue"]
    response = post_form(admin, COUNCIL, values)
    assert error_summary(response.get_data()) == ["Enter the brand colour as a hex code, like #1d70b8"]


def test_a_valid_brand_colour_is_used_on_every_page(signed_in, client):
    admin = signed_in("admin")
    values = form_values(admin.get(COUNCIL).get_data())
    values["brand_colour"] = ["#4C2C92"]
    values["council_name"] = ["Example Borough Council"]
    response = post_form(admin, COUNCIL, values)
    assert response.status_code == 302
    assert response.location == "/admin/settings/council"
    settings = CouncilSettings.current()
    assert (settings.brand_colour, settings.council_name) == ("#4c2c92", "Example Borough Council")
    event = last_event("settings.update")
    assert event.before_data == {"brand_colour": "#005a8c", "council_name": "Demo Borough Council"}
    assert event.after_data == {"brand_colour": "#4c2c92", "council_name": "Example Borough Council"}

    html = client.get("/").get_data(as_text=True)
    assert "--govuk-brand-colour: #4c2c92;" in html
    assert "Example Borough Council" in html


def tiny_png(width: int = 2, height: int = 1) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    pixels = b"".join(b"\x00" + b"\x1d\x70\xb8" * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels)) + chunk(b"IEND", b"")


def test_an_uploaded_logo_is_served_and_cache_busted(signed_in, client):
    admin = signed_in("admin")
    png = tiny_png()
    values = form_values(admin.get(COUNCIL).get_data())
    response = post_form(
        admin,
        COUNCIL,
        {**values, "logo": (io.BytesIO(png), "logo.png", "image/png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, error_summary(response.get_data())
    logo = client.get("/council-logo?v=1")
    assert logo.status_code == 200
    assert logo.mimetype == "image/png"
    assert logo.get_data() == png
    assert CouncilSettings.current().logo_version == 1
    assert 'src="/council-logo?v=1"' in client.get("/").get_data(as_text=True)
    assert last_event("settings.update").after_data == {"logo_version": 1}


def test_an_upload_that_is_not_an_image_is_refused(signed_in, client):
    admin = signed_in("admin")
    values = form_values(admin.get(COUNCIL).get_data())
    response = post_form(
        admin,
        COUNCIL,
        {**values, "logo": (io.BytesIO(b"<svg onload=alert(1)>"), "logo.png", "image/png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    assert error_summary(response.get_data()) == ["The logo must be a PNG or JPEG image"]
    assert CouncilSettings.current().logo_png is None
    assert client.get("/council-logo").mimetype == "image/svg+xml"


def test_auditors_see_settings_but_cannot_change_them(signed_in):
    auditor = signed_in("auditor")
    page = auditor.get(FUNDS)
    assert page.status_code == 200
    assert "Add a fund" not in page.get_data(as_text=True)
    fund = Fund.by_code("CTAX")
    assert "Disable" not in main_text(auditor.get(f"{FUNDS}/{fund.id}").get_data())
    assert auditor.get(f"{FUNDS}/add").status_code == 403
    assert auditor.get(f"{FUNDS}/{fund.id}/change").status_code == 403
    assert auditor.get(COUNCIL).status_code == 403


def test_an_unknown_settings_section_or_item_is_not_found(signed_in):
    admin = signed_in("admin")
    assert admin.get("/admin/settings/widgets").status_code == 404
    assert admin.get(f"{FUNDS}/999999").status_code == 404
    assert admin.get(f"{FUNDS}/999999/disable").status_code == 404


def test_refund_approval_limit_and_vat_receipt_details_are_set_in_the_service(signed_in):
    from app.domain.audit import AuditEvent

    admin = signed_in("admin")
    values = form_values(admin.get(COUNCIL).get_data())
    assert values["refund_approval_pence"] == ["500.00"]
    values["refund_approval_pence"] = ["£1,000.x"]
    response = post_form(admin, COUNCIL, values)
    assert response.status_code == 200 and len(error_summary(response.get_data())) == 1
    values["refund_approval_pence"] = ["250"]
    values["vat_registration_number"] = ["GB 987 6543 21"]
    values["postal_address"] = ["Civic Centre\nNew Road\nDB9 9ZZ"]
    assert post_form(admin, COUNCIL, values).status_code == 302
    settings = CouncilSettings.current()
    assert (settings.refund_approval_pence, settings.vat_registration_number) == (25_000, "GB987654321")
    event = AuditEvent.select().where(AuditEvent.action == "settings.update").order_by(AuditEvent.seq.desc()).first()
    assert "refund_approval_pence" in event.after
    values["vat_registration_number"] = ["12345"]
    response = post_form(admin, COUNCIL, values)
    assert error_summary(response.get_data()) == ["Enter a VAT registration number like GB123456789"]
