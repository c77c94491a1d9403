"""Spreadsheet downloads: formula injection neutralised, numbers kept as numbers, XLSX that opens."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain import spreadsheets
from app.domain.spreadsheets import Column, csv_chunks, pounds_text, safe_text, xlsx_chunks

COLUMNS = [Column("Name"), Column("Amount", "money"), Column("Day", "date"), Column("When", "datetime")]


def read_csv(columns, rows) -> list[list[str]]:
    data = b"".join(csv_chunks(columns, rows))
    assert data.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def read_xlsx(columns, rows, **kwargs):
    return openpyxl.load_workbook(io.BytesIO(b"".join(xlsx_chunks(columns, rows, **kwargs))))


@pytest.mark.parametrize(
    "value",
    ["=1+2", "+44 1234", "-2+3", "@SUM(A1:A2)", "\t=1+2", "\r=1+2", '=HYPERLINK("http://x","y")', "=", "-12.50"],
)
def test_text_a_spreadsheet_would_run_gets_a_leading_apostrophe(value):
    assert safe_text(value) == "'" + value
    assert read_csv([Column("Name")], [[value]])[1] == ["'" + value]


@pytest.mark.parametrize("value", ["Smith", "", "A=B", "1-2", " =1", "'=already", "£12.50", "12.50"])
def test_ordinary_text_is_left_alone(value):
    assert safe_text(value) == value


def test_negative_numbers_written_as_numbers_stay_numbers():
    rows = read_csv(COLUMNS, [["-12.50", -1250, None, None], ["Refund", -5, None, None]])
    assert rows[1][:2] == ["'-12.50", "-12.50"]  # the same characters: text is neutralised, the number is not
    assert rows[2][:2] == ["Refund", "-0.05"]


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_pounds_are_exact_for_any_pence(pence):
    from decimal import Decimal

    assert Decimal(pounds_text(pence)) == Decimal(pence) / 100


def test_csv_has_headings_dates_and_times():
    day = dt.date(2026, 7, 1)
    moment = dt.datetime(2026, 7, 1, 0, 30, 5)
    rows = read_csv(COLUMNS, [["A", 100, day, moment], ["B", 0, "2026-07-02", "2026-07-02 10:00:00"]])
    assert rows == [
        ["Name", "Amount", "Day", "When"],
        ["A", "1.00", "2026-07-01", "2026-07-01 00:30:05"],
        ["B", "0.00", "2026-07-02", "2026-07-02 10:00:00"],
    ]


def test_xlsx_text_is_never_a_formula_and_numbers_are_numbers():
    day = dt.date(2026, 7, 1)
    moment = dt.datetime(2026, 7, 1, 13, 45, 10)
    sheet = read_xlsx(COLUMNS, [["=1+2", -1250, day, moment], ["Fish & <chips>", 5, "2026-07-02", None]]).active
    assert [c.value for c in sheet[1]] == ["Name", "Amount", "Day", "When"]
    assert sheet["A2"].value == "'=1+2" and sheet["A2"].data_type == "s"
    assert sheet["B2"].value == pytest.approx(-12.5) and sheet["B2"].data_type == "n"
    assert sheet["C2"].value == dt.datetime(2026, 7, 1) and sheet["C2"].number_format == "dd/mm/yyyy"
    assert sheet["D2"].value == moment
    assert sheet["A3"].value == "Fish & <chips>"
    assert sheet["C3"].value == dt.datetime(2026, 7, 2) and sheet["D3"].value is None
    assert sheet["A1"].font.b is True
    assert sheet.freeze_panes == "A2"


def test_xlsx_drops_characters_xml_cannot_hold_and_keeps_spaces():
    sheet = read_xlsx([Column("Name")], [["bell\x07 and null\x00"], ["  padded  "]]).active
    assert sheet["A2"].value == "bell and null"
    assert sheet["A3"].value == "  padded  "


def test_xlsx_carries_on_to_more_sheets_when_one_is_full(monkeypatch):
    monkeypatch.setattr(spreadsheets, "XLSX_MAX_ROWS", 4)  # a heading and 3 rows a sheet
    book = read_xlsx([Column("N", "number")], [[n] for n in range(8)], sheet_name="Transactions")
    assert book.sheetnames == ["Transactions", "Transactions (2)", "Transactions (3)"]
    values = [[c.value for c in row] for ws in book for row in ws.iter_rows(min_row=2)]
    assert values == [[n] for n in range(8)]
    assert all(ws["A1"].value == "N" for ws in book)


def test_an_empty_download_is_still_a_valid_file():
    assert read_csv(COLUMNS, []) == [["Name", "Amount", "Day", "When"]]
    sheet = read_xlsx(COLUMNS, []).active
    assert sheet.max_row == 1


def test_both_files_stream_before_the_rows_run_out():
    consumed = 0

    def rows():
        nonlocal consumed
        for n in range(30_000):
            consumed = n
            yield [f"Payer {n}", n, dt.date(2026, 1, 1), dt.datetime(2026, 1, 1, 9)]

    for writer in (csv_chunks, xlsx_chunks):
        consumed = 0
        chunks = writer(COLUMNS, rows())
        next(chunks)
        next(chunks)  # the first chunk after the heading
        assert consumed < 29_999, writer.__name__
        rest = list(chunks)
        assert rest and max(len(c) for c in rest) < 2 * spreadsheets.CHUNK_BYTES


def test_the_xlsx_is_a_plain_zip_with_the_parts_excel_needs():
    data = b"".join(xlsx_chunks(COLUMNS, [["A", 1, None, None]]))
    names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert names == {
        "[Content_Types].xml",
        "_rels/.rels",
        "xl/workbook.xml",
        "xl/_rels/workbook.xml.rels",
        "xl/styles.xml",
        "xl/worksheets/sheet1.xml",
    }
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None


@given(st.lists(st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=3, max_size=3), max_size=20))
def test_csv_is_exactly_what_the_csv_module_writes(rows):
    columns = [Column("A"), Column("B, with a comma"), Column("C", "safe")]
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\r\n")
    writer.writerow([c.heading for c in columns])
    for row in rows:
        a, b, c = ("" if v is None else v for v in row)
        writer.writerow([safe_text(a), safe_text(b), c])
    assert b"".join(csv_chunks(columns, rows)) == ("\ufeff" + expected.getvalue()).encode("utf-8")


def test_awkward_text_round_trips_through_the_csv():
    values = ['He said "hello", then left', "line one\nline two", "a\r\nb", "", "Zoë Ó Briain £5"]
    assert [row[0] for row in read_csv([Column("Name")], [[v] for v in values])[1:]] == values
