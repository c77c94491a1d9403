"""Reading import files: allpay fixed width, DWP workbook and CSV, LocalGov IMS CSV, CSV templates,
account holders; and fuzzing: whatever the bytes, only rows, row problems or FileRejected."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.imports.formats import (
    MAX_LINE_CHARS,
    FileRejected,
    ImportRow,
    ReadSettings,
    RowProblem,
    SeenIds,
    SequenceNumbers,
    parse_pence_text,
    parse_pounds_text,
    read_account_holders,
    read_rows,
    read_sample,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imports"
ALLPAY = ReadSettings("allpay", {"encoding": "cp1252"}, "", "ALLPAY")
LOCALGOV = ReadSettings("localgov_csv", {"encoding": "utf-8-sig"}, "", "WEB")
DWP = ReadSettings(
    "dwp",
    {"columns": {"reference": "6", "date": "11", "amount": "12", "sign": "13"}, "negative_values": "-"},
    "CTAX",
    "DWP",
)
CUSTOM = ReadSettings(
    "csv",
    {
        "delimiter": "semicolon",
        "header_rows": 1,
        "encoding": "cp1252",
        "date_format": "dd/mm/yyyy",
        "amount_unit": "pounds",
        "columns": {"reference": "Account", "date": "Paid on", "amount": "3", "sign": "D/C", "payer_name": "Payer"}
        | {"outlet": "6"},
        "negative_values": "D",
    },
    "CTAX",
    "BACS",
)


def read(settings, data: bytes) -> tuple[list[ImportRow], list[RowProblem]]:
    rows, problems = [], []
    for item in read_rows(settings, io.BytesIO(data)):
        (rows if isinstance(item, ImportRow) else problems).append(item)
    return rows, problems


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def allpay_line(seq, ref, amount, channel="P", date="01/03/2026") -> str:
    return f"{seq:>7}{ref:<16}{amount:>9}{channel}{date}"


def allpay_file(lines: list[str], total: str, count: int) -> bytes:
    trailer = (
        f"{'Total Amount Updated onto System:':<34}{total:>17}\n"
        f"{'Total Transactions updated onto System:':<40}{count:>17}\n"
    )
    return ("\n".join(lines) + "\n\n" + trailer).encode("ascii")


# --- allpay ---------------------------------------------------------------------------------


def test_allpay_golden_file_gives_every_payment_with_its_fields():
    rows, problems = read(ALLPAY, fixture("allpay_good.txt"))
    assert problems == []
    assert [r.line_number for r in rows] == [1, 2, 3, 4, 5]
    first = rows[0]
    assert first.account_reference == "7000669297"
    assert first.amount_pence == 6000
    assert first.business_date == dt.date(2022, 6, 30)
    assert first.source_reference == "335610"
    assert first.method_code == "ALLPAY" and first.fund_code == ""
    assert first.fields["channel"] == "T"
    # The BERN scheme prefix is not part of the reference
    assert rows[3].account_reference == "123456780" and rows[3].fields["scheme"] == "BERN"
    # A returned cheque may carry a minus sign
    assert rows[4].amount_pence == -2500 and rows[4].fields["channel"] == "Q"
    assert sum(r.amount_pence for r in rows) == 20855


def test_allpay_sample_line_from_the_spec():
    line = " 3356107000669297          60.00T30/06/2022"
    rows, problems = read(ALLPAY, allpay_file([line], "60.00", 1))
    assert problems == [] and rows[0].account_reference == "7000669297" and rows[0].amount_pence == 6000


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("allpay_bad_total.txt", "the total is £209.55, but the payment lines add up to £208.55"),
        ("allpay_bad_count.txt", "there are 6 transactions, but the file has 5 payment lines"),
        ("allpay_truncated.txt", "no trailer"),
        ("allpay_bad_amount.txt", "could not be read"),
    ],
)
def test_allpay_file_whose_trailer_does_not_match_is_rejected_after_the_rows(name, words):
    items = []
    with pytest.raises(FileRejected) as caught:
        for item in read_rows(ALLPAY, io.BytesIO(fixture(name))):
            items.append(item)
    assert words in caught.value.message
    assert items  # the rows came first: the caller must post nothing


def test_allpay_row_problems_are_reported_and_the_rest_still_read():
    rows, problems = read(ALLPAY, fixture("allpay_problems.txt"))
    # Line 3 has no reference: the money was received, so it is read (the import puts it in suspense).
    assert [(r.line_number, r.account_reference) for r in rows][0] == (3, "")
    assert [r.line_number for r in rows] == [3, 4]
    messages = {p.line_number: p.message for p in problems}
    assert messages == {
        1: "Date 31/02/2022 is not a real date",
        2: "The amount is zero",
        5: "Same as line 4 (allpay transaction 4)",
    }
    assert problems[0].text.startswith("      1512345677")


def test_allpay_malformed_amount_is_named_in_plain_english():
    items = []
    with pytest.raises(FileRejected):
        for item in read_rows(ALLPAY, io.BytesIO(fixture("allpay_bad_amount.txt"))):
            items.append(item)
    assert items[-1] == RowProblem(2, "Amount 12.3x is not an amount of money", items[-1].text)


def test_allpay_short_line_long_line_and_lines_after_the_trailer():
    short = allpay_file([allpay_line(1, "512345677", "5.00"), "too short"], "5.00", 2)
    with pytest.raises(FileRejected):
        rows, problems = read(ALLPAY, short)
    items = []
    with pytest.raises(FileRejected):
        for item in read_rows(ALLPAY, io.BytesIO(short)):
            items.append(item)
    assert "an allpay detail line has at least 43" in items[-1].message

    long_line = "9" * (MAX_LINE_CHARS * 3)
    items = []
    with pytest.raises(FileRejected):
        for item in read_rows(ALLPAY, io.BytesIO(allpay_file([long_line], "0.00", 1))):
            items.append(item)
    assert items == [RowProblem(1, "Line 1 is longer than 4,000 characters: an allpay line has 43", "")]

    extra = allpay_file([allpay_line(1, "512345677", "5.00")], "5.00", 1) + b"\n" + allpay_line(2, "5", "1.00").encode()
    with pytest.raises(FileRejected, match="is not part of the trailer"):
        read(ALLPAY, extra)


def test_allpay_trailer_straight_after_the_details_and_duplicates_only_when_asked():
    lines = [allpay_line(7, "512345677", "5.00"), allpay_line(7, "512345677", "5.00")]
    data = allpay_file(lines, "10.00", 2).replace(b"\n\n", b"\n")
    rows, problems = read(ALLPAY, data)
    assert len(rows) == 1 and problems[0].message == "Same as line 1 (allpay transaction 7)"
    rows, problems = read(ReadSettings("allpay", {"duplicates": False}), data)
    assert len(rows) == 2 and problems == []


def test_empty_files_are_rejected_for_every_format():
    for template in (ALLPAY, LOCALGOV, DWP, CUSTOM):
        with pytest.raises(FileRejected, match="empty"):
            read(template, b"")
    with pytest.raises(FileRejected, match="empty"):
        list(read_account_holders(ReadSettings("account_holders", {}, "TWASTE"), io.BytesIO(b"")))


def test_an_undecodable_line_is_named():
    data = allpay_file([allpay_line(1, "512345677", "5.00"), allpay_line(2, "5123?", "5.00")], "10.00", 2)
    data = data.replace(b"5123?", b"5123\x81")  # 0x81 is not a Windows-1252 character
    with pytest.raises(FileRejected, match="Line 2 is not Windows-1252 text"):
        read(ALLPAY, data)


# --- LocalGov IMS CSV -----------------------------------------------------------------------


def test_localgov_csv_reads_by_header_name_with_quoting_refunds_and_formulas_as_text():
    rows, problems = read(LOCALGOV, fixture("localgov.csv"))
    assert [r.line_number for r in rows] == [2, 3, 4]
    first, rent, refund = rows
    assert (first.account_reference, first.amount_pence, first.fund_code, first.method_code) == (
        "512345677",
        6000,
        "CTAX",
        "WEB",
    )
    assert first.source_reference == "TR0001" and first.fields["office_code"] == "TH"
    assert rent.narrative == "Rent, week 12"
    assert rent.business_date == dt.date(2026, 7, 1)  # 23:30 UTC in summer is the next UK day
    assert refund.amount_pence == -3500
    assert refund.narrative == "=SUM(A1:A9)"  # kept as text, never evaluated
    assert [(p.line_number, p.message) for p in problems] == [
        (5, "Same as line 2 (line id TR0001)"),
        (6, "Date 2026-02-31 is not a real date"),
        (7, "Amount ten pounds is not an amount of money"),
    ]


def test_localgov_csv_without_its_header_is_rejected():
    data = fixture("localgov.csv").split(b"\n", 1)[1]
    with pytest.raises(FileRejected, match="Line 1 is not the header row"):
        read(LOCALGOV, data)


def test_localgov_csv_with_a_byte_order_mark_and_crlf():
    data = b"\xef\xbb\xbf" + fixture("localgov.csv").replace(b"\n", b"\r\n")
    rows, _ = read(LOCALGOV, data)
    assert len(rows) == 3


# --- CSV templates --------------------------------------------------------------------------


def test_csv_template_semicolons_windows_1252_header_names_and_sign_column():
    rows, problems = read(CUSTOM, fixture("custom_cp1252.csv"))
    assert [(r.line_number, r.account_reference, r.amount_pence) for r in rows][:2] == [
        (2, "512345677", 123450),
        (3, "61234567892", -1200),
    ]
    assert [(r.line_number, r.account_reference) for r in rows][2:] == [(4, "")]  # no reference: to suspense
    assert rows[0].payer_name == "Renée O’Brien"
    assert rows[1].payer_name == "Smith; J"
    assert rows[1].fields["outlet"] == "+441234"  # formula-looking text stays text
    assert rows[0].fund_code == "CTAX" and rows[0].method_code == "BACS"
    assert [(p.line_number, p.message) for p in problems] == [(5, "Date 31/02/2026 is not a real date")]


def test_csv_template_in_the_wrong_encoding_is_rejected_with_the_line():
    utf8 = ReadSettings("csv", {**CUSTOM.options, "encoding": "utf-8"})
    with pytest.raises(FileRejected, match="Line 2 is not UTF-8 text"):
        read(utf8, fixture("custom_cp1252.csv"))


def test_csv_template_pence_columns_by_number_no_header_and_negatives():
    settings = ReadSettings(
        "csv",
        {
            "delimiter": "comma",
            "header_rows": 0,
            "amount_unit": "pence",
            "date_format": "yyyy-mm-dd",
            "columns": {"reference": "1", "amount": "2", "date": "3", "line_id": "4"},
        },
    )
    data = b"A1,1250,2026-03-01,x1\nA2,-300,2026-03-01,x2\nA3,12.5,2026-03-01,x3\nA4,1250,2026-03-01,x1\nA5,1\n"
    rows, problems = read(settings, data)
    assert [(r.account_reference, r.amount_pence) for r in rows] == [("A1", 1250)]
    assert [p.message for p in problems] == [
        "Amount -300 is negative, and this template does not allow negative amounts",
        "Amount 12.5 is not a whole number of pence",
        "Same as line 1 (line id x1)",
        "The line has 2 values: the template needs 4",
    ]
    allowed = ReadSettings("csv", {**settings.options, "allow_negative": True})
    rows, _ = read(allowed, data)
    assert rows[1].amount_pence == -300


def test_csv_template_amount_limits_and_missing_header_column():
    settings = ReadSettings(
        "csv", {"columns": {"reference": "Ref", "amount": "Amount", "date": "Date"}, "header_rows": 1}
    )
    rows, problems = read(
        settings, b"Ref,Amount,Date\nA,0.00,01/03/2026\nB,10000000.01,01/03/2026\nC,1.999,01/03/2026\n"
    )
    assert rows == []
    assert [p.message for p in problems] == [
        "The amount is zero",
        "The amount is more than £10,000,000",
        "Amount 1.999 has more than 2 decimal places",
    ]
    with pytest.raises(FileRejected, match="no column called “Amount”"):
        read(settings, b"Ref,Sum,Date\nA,1.00,01/03/2026\n")


def test_csv_with_an_overlong_line_or_broken_quoting_is_rejected_not_crashed():
    settings = ReadSettings("csv", {"columns": {"reference": "1", "amount": "2", "date": "3"}, "header_rows": 0})
    with pytest.raises(FileRejected, match="longer than 4,000 characters"):
        read(settings, b"A,1.00,01/03/2026\n" + b"x" * 20_000 + b"\n")


# --- DWP ------------------------------------------------------------------------------------


def dwp_workbook(rows: list[list]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(
        [
            "Surname",
            "Forename",
            "NINO",
            "Period",
            "Office",
            "Council tax ref",
            "Start",
            "End",
            "Weekly",
            "Notes",
            "Date",
            "Amount (pence)",
            "Sign",
        ]
    )
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_dwp_workbook_reads_pence_sign_and_dates_of_either_kind():
    blank = [None] * 4
    data = dwp_workbook(
        [
            ["SMITH", "JO", "AB123456C", "2026/27", "X", "5123 45677", *blank, dt.datetime(2026, 3, 2), 1850, None],
            ["JONES", "AL", "AB123456D", "2026/27", "X", "612345678", *blank, "02/03/2026", "395", "-"],
            ["BROWN", "ED", "AB123456E", "2026/27", "X", "512345677", *blank, "31/02/2026", 100, None],
            ["GREEN", "FI", "AB123456F", "2026/27", "X", "512345677", *blank, "02/03/2026", 12.5, None],
            [None] * 13,
        ]
    )
    rows, problems = read(DWP, data)
    assert [(r.line_number, r.account_reference, r.amount_pence) for r in rows] == [
        (2, "512345677", 1850),
        (3, "612345678", -395),
    ]
    assert rows[0].business_date == dt.date(2026, 3, 2) and rows[1].business_date == dt.date(2026, 3, 2)
    assert rows[0].fund_code == "CTAX" and rows[0].method_code == "DWP" and rows[0].narrative == "DWP"
    assert [(p.line_number, p.message) for p in problems] == [
        (4, "Date 31/02/2026 is not a real date"),
        (5, "Amount 12.5 is not a whole number of pence"),
    ]


def test_dwp_as_csv_gives_the_same_rows():
    rows, problems = read(DWP, fixture("dwp.csv"))
    assert [(r.account_reference, r.amount_pence) for r in rows] == [("512345677", 1850), ("612345678", -395)]
    assert [p.message for p in problems] == ["Amount 12.5 is not a whole number of pence"]


def test_a_damaged_workbook_is_rejected():
    data = dwp_workbook([["A"] * 13])
    with pytest.raises(FileRejected, match="could not be read as an Excel workbook"):
        read(DWP, data[: len(data) // 2])


# --- account holders ------------------------------------------------------------------------


def test_account_holders_csv_gives_records_and_problems():
    items = list(read_account_holders(ReadSettings("account_holders", {}), io.BytesIO(fixture("account_holders.csv"))))
    records = [i for i in items if not isinstance(i, RowProblem)]
    problems = [i for i in items if isinstance(i, RowProblem)]
    assert [(r.fund_code, r.reference, r.balance_pence) for r in records] == [
        ("TWASTE", "C10009", 100000),
        ("TWASTE", "C10001", 24000),
        ("NOPE", "C10011", None),
    ]
    assert records[0].address == "1 New Street, DB1 9ZZ"
    assert [(p.line_number, p.message) for p in problems] == [
        (4, "The reference is missing"),
        (5, "The balance 12.3.4 is not an amount of money"),
    ]


def test_account_holders_need_a_reference_column_and_a_fund():
    with pytest.raises(FileRejected, match="needs a “reference” column"):
        list(read_account_holders(ReadSettings("account_holders", {}), io.BytesIO(b"fund,name\nX,Y\n")))
    with pytest.raises(FileRejected, match="no “fund” column"):
        list(read_account_holders(ReadSettings("account_holders", {}), io.BytesIO(b"reference,name\nX,Y\n")))
    rows = list(read_account_holders(ReadSettings("account_holders", {}, "TWASTE"), io.BytesIO(b"reference\nc1\n")))
    assert rows[0].fund_code == "TWASTE" and rows[0].reference == "C1"


# --- small parsers and helpers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60.00", 6000),
        ("  60.5 ", 6050),
        ("-25.00", -2500),
        ("12", 1200),
        (".5", 50),
        ("0.01", 1),
        ("12.3x", "Amount 12.3x is not an amount of money"),
        ("1e5", "Amount 1e5 is not an amount of money"),
        ("١٢", "Amount ١٢ is not an amount of money"),
        ("1.234", "Amount 1.234 has more than 2 decimal places"),
        ("", "The amount is missing"),
    ],
)
def test_parse_pounds_text_is_exact(text, expected):
    assert parse_pounds_text(text) == expected


def test_parse_pounds_with_symbols_and_pence():
    assert parse_pounds_text("£1,234.50", allow_symbols=True) == 123450
    assert isinstance(parse_pounds_text("1,23.50", allow_symbols=True), str)
    assert parse_pence_text("1250.00") == 1250
    assert parse_pence_text("-7") == -7


def test_seen_ids_and_sequence_numbers_find_the_first_line():
    seen = SeenIds(size=4)
    for n in range(1, 200):
        assert seen.first_line(f"id{n}", n) is None
    assert seen.first_line("id42", 500) == 42
    numbers = SequenceNumbers()
    assert numbers.first_line("335610", 1) is None
    assert numbers.first_line("A1", 2) is None
    assert numbers.first_line("335610", 3) == 1
    assert numbers.first_line("A1", 4) == 2


def test_read_sample_makes_a_trailer_for_pasted_allpay_lines():
    text = allpay_line(1, "512345677", "5.00") + "\n" + allpay_line(2, "512345677", "0.00") + "\n"
    items = read_sample(ALLPAY, text)
    assert isinstance(items[0], ImportRow) and isinstance(items[1], RowProblem)
    csv_items = read_sample(LOCALGOV, "AccountReference,Amount\n1,2\n")
    assert isinstance(csv_items[0], RowProblem) and "TransactionDate" in csv_items[0].message


def test_settings_from_a_template_like_object():
    class Template:
        kind = "csv"
        options = json.dumps({"columns": {"reference": "1", "amount": "2", "date": "3"}, "header_rows": 0})
        default_fund = None
        default_method = None

    rows, _ = read(Template(), b"A,1.00,01/03/2026\n")
    assert rows[0].amount_pence == 100


# --- fuzzing: never anything but rows, problems or FileRejected ------------------------------

FUZZ_SETTINGS = [
    ALLPAY,
    LOCALGOV,
    DWP,
    CUSTOM,
    ReadSettings("csv", {"columns": {"reference": "1", "amount": "2", "date": "3", "line_id": "4"}, "header_rows": 0}),
    ReadSettings("csv", {"columns": {"reference": "1", "amount": "2", "date": "3"}, "amount_unit": "pence"}),
]


def _consume(settings, data: bytes) -> None:
    try:
        for item in read_rows(settings, io.BytesIO(data)):
            assert isinstance(item, (ImportRow, RowProblem))
            if isinstance(item, ImportRow):
                assert isinstance(item.amount_pence, int) and item.amount_pence != 0
                assert abs(item.amount_pence) <= 1_000_000_000
                assert isinstance(item.business_date, dt.date)
                assert isinstance(item.account_reference, str)  # may be "" (no reference: suspense)
            else:
                assert len(item.text) <= 200
    except FileRejected as exc:
        assert exc.message


def _allpay_lines():
    seq = st.integers(min_value=0, max_value=9_999_999).map(lambda n: f"{n:>7}")
    ref = st.text(alphabet="0123456789BERNX ", max_size=16).map(lambda s: f"{s:<16}")
    amount = st.one_of(
        st.decimals(min_value=-99999, max_value=999999, places=2, allow_nan=False).map(lambda d: f"{d:>9}"),
        st.text(alphabet="0123456789.-x ", min_size=9, max_size=9),
    )
    channel = st.sampled_from("PTZNBCQX ")
    date = st.one_of(
        st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31)).map(lambda d: d.strftime("%d/%m/%Y")),
        st.text(alphabet="0123456789/", min_size=10, max_size=10),
    )
    return st.tuples(seq, ref, amount, channel, date).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=3000), which=st.integers(min_value=0, max_value=len(FUZZ_SETTINGS) - 1))
def test_fuzz_any_bytes(data, which):
    _consume(FUZZ_SETTINGS[which], data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(_allpay_lines(), max_size=20),
    total=st.text(alphabet="0123456789.-", max_size=12),
    count=st.integers(min_value=0, max_value=25),
    cut=st.integers(min_value=0, max_value=5000),
    crlf=st.booleans(),
)
def test_fuzz_allpay_shaped_files_truncated_and_mixed_line_endings(lines, total, count, cut, crlf):
    data = allpay_file(lines, total, count)
    if crlf:
        data = data.replace(b"\n", b"\r\n", 3)
    _consume(ALLPAY, data)
    _consume(ALLPAY, data[:cut])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cells=st.lists(st.lists(st.text(max_size=30), min_size=0, max_size=6), max_size=15),
    encoding=st.sampled_from(["utf-8", "utf-16", "cp1252", "latin-1"]),
    which=st.integers(min_value=1, max_value=len(FUZZ_SETTINGS) - 1),
)
def test_fuzz_csv_shaped_files_in_any_encoding(cells, encoding, which):
    buffer = io.StringIO()
    import csv

    csv.writer(buffer).writerows(cells)
    data = buffer.getvalue().encode(encoding, errors="replace")
    _consume(FUZZ_SETTINGS[which], data)
    account_settings = ReadSettings("account_holders", {}, "TWASTE")
    try:
        for item in read_account_holders(account_settings, io.BytesIO(data)):
            assert item.__class__.__name__ in ("AccountHolderRow", "RowProblem")
    except FileRejected:
        pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2000))
def test_fuzz_bytes_that_look_like_a_workbook(data):
    _consume(DWP, b"PK\x03\x04" + data)
