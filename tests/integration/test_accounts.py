"""Account holders loaded from a back-office CSV extract: streamed, upserted, bad rows reported
with line numbers, one audit event per load.

Every test runs on SQLite and on the PostgreSQL server the test session starts, each in a
fresh migrated database of its own (the `fresh_database` fixture in tests/conftest.py).
"""

from __future__ import annotations

import io

import pytest

from app.domain.audit import AuditEvent, verify_chain
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.references import (
    AccountHolder,
    add_format,
    compiled_rule,
    find_account,
    load_account_holders_csv,
    search_account_holders,
    validate_reference,
)
from app.domain.users import User


@pytest.fixture
def db(fresh_database):
    # A new migrated database per test, on SQLite and PostgreSQL (tests/conftest.py)
    return fresh_database


@pytest.fixture
def ctax(db):
    return Fund.create(code="CTAX", name="Council tax", shown_to_citizens=True, reference_label="Account number")


@pytest.fixture
def nndr(db):
    return Fund.create(code="NNDR", name="Business rates", shown_to_citizens=True)


@pytest.fixture
def admin(db):
    return User.create(email="admin@example.gov.uk", name="Asha Patel", password_hash="x")


def load(fund, text, actor=None, **kwargs):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return load_account_holders_csv(fund, io.BytesIO(data), actor, file_name="extract.csv", **kwargs)


def account(fund, reference) -> AccountHolder:
    return AccountHolder.get((AccountHolder.fund == fund.id) & (AccountHolder.reference == reference))


def test_a_load_inserts_then_a_second_load_updates(ctax, admin):
    first = load(
        ctax,
        "reference,name,address,balance,on_stop_message\n"
        'A1,A Resident,1 High Street,"£1,234.50",\n'
        " a 2 ,B Resident,2 High Street,-12.00,\n"
        "A3,C Resident,3 High Street,,Call us first\n",
        admin,
    )
    assert (first.rows, first.inserted, first.updated, first.unchanged, first.error_count) == (3, 3, 0, 0, 0)
    a1 = account(ctax, "A1")
    assert (a1.name, a1.address, a1.balance_pence, a1.on_stop_message) == ("A Resident", "1 High Street", 123450, "")
    assert account(ctax, "A2").balance_pence == -1200  # normalised reference; in credit
    assert account(ctax, "A3").balance_pence is None and account(ctax, "A3").on_stop
    loaded_at = account(ctax, "A1").updated_at

    second = load(
        ctax,
        "reference,name,address,balance,on_stop_message\n"
        "A1,A Resident,1 High Street,1234.50,\n"  # unchanged
        "A2,B Resident,2 High Street,0,\n"  # changed balance
        "A3,C Resident,3 High Street,,\n"  # stop lifted
        "A4,D Resident,4 High Street,10,\n",  # new
        admin,
    )
    assert (second.inserted, second.updated, second.unchanged) == (1, 2, 1)
    assert account(ctax, "A2").balance_pence == 0
    assert not account(ctax, "A3").on_stop
    assert account(ctax, "A1").updated_at == loaded_at  # untouched rows keep their time
    assert AccountHolder.select().count() == 4


def test_one_audit_event_per_load_with_counts(ctax, admin):
    load(ctax, "reference,name\nA1,A\nA2,B\n,C\n", admin)
    events = list(AuditEvent.select().where(AuditEvent.action == "account_holders.load"))
    assert len(events) == 1
    event = events[0]
    assert event.actor_email == "admin@example.gov.uk"
    assert event.summary == (
        "Loaded account holders from extract.csv into CTAX Council tax: 2 added, 0 changed, 0 unchanged, "
        "1 row with errors"
    )
    assert event.after_data["inserted"] == 2 and event.after_data["errors"] == 1
    assert verify_chain().ok


def test_bad_rows_are_reported_with_line_numbers_and_the_rest_load(ctax, nndr):
    report = load(
        None,
        "fund,reference,name,balance,stop_channels\n"  # line 1
        "CTAX,A1,Good,1.00,\n"  # 2
        "CTAX,,No reference,1.00,\n"  # 3
        "CTAX,A3,Bad balance,12.345,\n"  # 4
        "XXXX,A4,Unknown fund,1.00,\n"  # 5
        ",A5,No fund,1.00,\n"  # 6
        "CTAX,A6,Too few values\n"  # 7
        "\n"  # 8: blank lines are skipped
        'CTAX,A7,"Multi\nline name",abc,\n'  # 9-10: a quoted field over two lines
        "CTAX,A1,Duplicate,2.00,\n"  # 11
        "CTAX,A8,Bad channels,1.00,sometimes\n"  # 12
        f"CTAX,{'9' * 41},Too long,1.00,\n"  # 13
        "NNDR,A1,Same reference other fund,1.00,\n"  # 14
        "CTAX,A9,Good,2.00,public\n",  # 15
    )
    assert [(e.line, e.message) for e in report.errors] == [
        (3, "The reference is missing"),
        (4, "The balance “12.345” is not an amount: enter an amount with no more than 2 decimal places, like £12.50"),
        (5, "There is no fund with the code XXXX"),
        (6, "The fund code is missing"),
        (7, "This line has 3 values but the header row has 5"),
        (9, "The balance “abc” is not an amount: enter an amount in pounds and pence, like £1,234.50"),
        (11, "The reference A1 is already on line 2: this line was skipped"),
        (12, "Stop channels must be “all” or “public”, not “sometimes”"),
        (13, "The reference must be 40 characters or fewer"),
    ]
    assert str(report.errors[0]) == "Line 3: The reference is missing"
    assert report.error_count == 9
    assert report.rows == 12
    assert report.inserted == 3
    assert sorted(report.funds) == ["CTAX", "NNDR"]
    assert account(ctax, "A9").stop_channels == "public"
    assert account(nndr, "A1").name == "Same reference other fund"


def test_a_row_for_another_fund_is_refused_when_loading_into_one_fund(ctax):
    report = load(ctax, "fund,reference\nCTAX,A1\nNNDR,A2\nctax,A3\n")
    assert [(e.line, e.message) for e in report.errors] == [
        (3, "This line is for fund NNDR, but the file is being loaded into CTAX")
    ]
    assert report.inserted == 2


@pytest.mark.parametrize("bom", [b"\xef\xbb\xbf", b""])
def test_utf8_with_or_without_a_byte_order_mark(ctax, bom):
    report = load(ctax, bom + "Reference,Name\nA1,Zoë Brontë\n".encode())
    assert report.error_count == 0 and report.inserted == 1
    assert account(ctax, "A1").name == "Zoë Brontë"
    assert report.ignored_columns == []


def test_a_text_stream_with_a_bom_character_works_too(ctax):
    report = load_account_holders_csv(ctax, io.StringIO("\ufeffreference,name\nA1,Ann\n"), None)
    assert report.inserted == 1


def test_column_names_are_found_whatever_their_case_and_spacing(ctax):
    report = load(
        ctax,
        "Account Number,ACCOUNT_NAME,Address line 1,address-line-2,Postcode,Outstanding Balance,Stop Message,Notes\n"
        "A1,Ann,1 High St,Demo Borough,DB1 1AA,5.00,,ignored\n",
    )
    assert report.ignored_columns == ["Notes"]
    a1 = account(ctax, "A1")
    assert (a1.name, a1.address, a1.balance_pence) == ("Ann", "1 High St, Demo Borough, DB1 1AA", 500)


@pytest.mark.parametrize(
    ("fund_fixture", "text", "message"),
    [
        ("ctax", "", "The file is empty"),
        ("ctax", "name,balance\nAnn,1\n", "needs a “reference” column"),
        (None, "reference,name\nA1,Ann\n", "Choose a fund, or load a file with a “fund” column"),
        ("ctax", "reference,account number\nA1,A1\n", "two “reference” columns"),
        ("ctax", "reference,address,postcode\nA1,x,y\n", "both an “address” column and address line"),
        ("ctax", b"reference,name\nA1,\xff\xfe\n", "must be saved as UTF-8"),
    ],
)
def test_a_file_that_cannot_be_used_is_refused(request, db, fund_fixture, text, message):
    fund = request.getfixturevalue(fund_fixture) if fund_fixture else None
    with pytest.raises(DomainError, match=message):
        load(fund, text)
    assert AuditEvent.select().count() == 0


def test_bytes_that_are_not_utf8_part_way_stop_the_load_and_say_so(ctax):
    good = "".join(f"A{n:06d},Resident {n}\n" for n in range(3_000)).encode()
    report = load(ctax, b"reference,name\n" + good + b"B1,\xff\xfe\n" + b"B2,After\n")
    assert report.fatal.startswith("the file is not UTF-8 text after line ")
    stopped_after = int(report.fatal.split("after line ")[1].split(":")[0])
    assert report.inserted == stopped_after - 1  # every line before the stop was loaded
    assert AccountHolder.select().count() == report.inserted
    assert AuditEvent.get(AuditEvent.action == "account_holders.load").after_data["fatal"] == report.fatal


def test_a_non_utf8_header_is_refused(ctax):
    with pytest.raises(DomainError, match="UTF-8"):
        load(ctax, "r\xe9f\xe9rence,name\n".encode("latin-1"))


def test_a_large_file_is_streamed_in_batches_and_upserted(ctax, nndr):
    rows = 5_000

    def extract(balance: str):
        yield "fund,reference,name,balance\n"
        for n in range(rows):
            yield f"{'CTAX' if n % 2 else 'NNDR'},{n:09d},Resident {n},{balance}\n"

    first = load(None, "".join(extract("1.00")), batch_size=700)
    assert (first.inserted, first.updated, first.error_count) == (rows, 0, 0)
    second = load(None, "".join(extract("2.00")), batch_size=700)
    assert (second.inserted, second.updated, second.unchanged) == (0, rows, 0)
    assert AccountHolder.select().count() == rows
    assert {a.balance_pence for a in AccountHolder.select()} == {200}


def test_references_that_fail_the_funds_formats_are_loaded_with_a_warning(ctax):
    add_format(ctax, None, {"label": "Six digits", "min_length": 6, "max_length": 6, "example": "123456"})
    report = load(ctax, "reference\n123456\n12345\n654321\nABCDEFG\n")
    assert report.inserted == 4
    assert report.format_warning_count == 2
    assert report.format_warning_lines == [3, 5]


def test_after_a_load_validation_uses_the_accounts_at_once(ctax):
    assert validate_reference(ctax, "A1").valid
    assert compiled_rule(ctax).has_accounts is False
    load(ctax, "reference,on_stop_message\nA1,Please call us\n")
    assert compiled_rule(ctax).has_accounts is True
    assert validate_reference(ctax, "A1").message == "Please call us"


def test_staff_can_search_and_find_accounts(ctax, nndr):
    load(None, "fund,reference,name,address\nCTAX,A100,Ann Smith,1 High St\nCTAX,A200,Bob Jones,2 Mill Lane\n"
               "NNDR,A100,Smith's Bakery,3 Market St\n")  # fmt: skip
    assert [(a.fund.code, a.reference) for a in search_account_holders("smith")] == [
        ("CTAX", "A100"),
        ("NNDR", "A100"),
    ]
    assert [a.reference for a in search_account_holders("a1")] == ["A100", "A100"]
    assert [a.reference for a in search_account_holders("mill lane")] == ["A200"]
    assert [a.fund.code for a in search_account_holders("smith", fund_ids=[nndr.id])] == ["NNDR"]
    assert list(search_account_holders("smith", fund_ids=[])) == []
    assert find_account(ctax, " a 100 ").name == "Ann Smith"
    assert find_account(ctax, "A999") is None


def test_the_callers_file_stays_open_after_a_load(ctax):
    upload = io.BytesIO(b"reference\nA1\n")
    load_account_holders_csv(ctax, upload, None)
    assert not upload.closed
    upload.seek(0)
    assert upload.read() == b"reference\nA1\n"
