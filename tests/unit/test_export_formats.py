"""Export file formats: golden files byte for byte, control totals, formula safety, file names.

No database: rows are built by hand in the order runs.py selects them (formats.DETAIL_COLUMNS).
To change a golden file on purpose, run this module with UPDATE_GOLDEN=1 and read the diff.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from decimal import Decimal
from pathlib import Path

import pytest

from app.domain.errors import DomainError
from app.domain.exports.formats import BatchContext, FieldSpec, JournalLine, Layout, Lookups, file_chunks
from app.domain.exports.templates import LOCALGOV_FIELDS, parse_definition, render_file_name

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "exports"

LOOKUPS = Lookups(
    funds={1: ("CTAX", "Council tax", "1001", "RV100"), 2: ("PARK", "Car parking", "2001", "PK01")},
    methods={1: ("WEB", "Online card payment"), 2: ("CASH", "Cash")},
    vat_codes={1: "O", 2: "S"},
    offices={1: "CSC"},
)


def _row(n, receipt, account, fund, method, vat, rate, amount, vat_pence, day, narrative, payer="", office=None):
    taken = f"{day} 09:{n:02d}:00.000000"
    return (
        n, receipt, account, fund, method, vat, rate, amount, vat_pence, amount - vat_pence, day, taken,
        f"{day} 10:{n:02d}:00.500000", narrative, payer, office, 7 if office else None, "payment", f"psp-{n}",
        f"PAY-{n}",
    )  # fmt: skip


ROWS = [
    _row(1, "A18A-24FV-8", "12345678", 1, 1, 1, Decimal("0"), 12500, 0, "2026-03-02", "Council tax"),
    _row(2, "B29B-35GW-9", "PK/77", 2, 2, 2, Decimal("0.2"), 12000, 2000, "2026-03-02", "Parking, permit", "O'Neil"),
    _row(3, "C3AC-46HX-1", "12345678", 1, 1, 1, Decimal("0"), -1250, 0, "2026-03-02", "=1+1", office=1),
    _row(4, "D4BD-57JY-2", "87654321", 1, 2, 1, Decimal("0"), 99, 0, "2026-03-03", 'He said "hi"', office=1),
]
CTX = BatchContext(
    sequence=7,
    run_at=dt.datetime(2026, 3, 4, 6, 30, 0),
    cut_off=dt.date(2026, 3, 3),
    file_name="CTAX_20260304_0007.csv",
    template_code="CTAXDAILY",
    line_count=len(ROWS),
    entry_count=len(ROWS),
    total_pence=sum(r[7] for r in ROWS),
    debit_pence=1250,
    credit_pence=24599,
)


def _specs(items) -> tuple[FieldSpec, ...]:
    return tuple(FieldSpec.from_dict(item) for item in items)


def _write(layout: Layout, rows=ROWS, ctx=CTX) -> bytes:
    return b"".join(file_chunks(layout, ctx, rows, LOOKUPS))


def _golden(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_bytes(data)
    assert data == path.read_bytes(), f"{name} differs from the golden file"


DETAIL_CSV = Layout(
    kind="detail",
    file_format="csv",
    header=_specs(
        [
            {"source": "literal", "value": "H"},
            {"source": "run_date", "value": "%d/%m/%Y"},
            {"source": "cut_off_date"},
            {"source": "sequence"},
            {"source": "file_name"},
        ]
    ),
    fields=_specs(
        [
            {"source": "literal", "heading": "Type", "value": "D"},
            {"source": "line_number", "heading": "Line"},
            {"source": "account_reference", "heading": "Account"},
            {"source": "amount", "heading": "Amount"},
            {"source": "amount", "heading": "Pence", "unit": "pence", "sign": "reversed"},
            {"source": "business_date", "heading": "Paid", "value": "%d/%m/%Y"},
            {"source": "taken_at", "heading": "Taken"},
            {"source": "fund_code", "heading": "Fund"},
            {"source": "method_code", "heading": "Method"},
            {"source": "vat_code", "heading": "VAT"},
            {"source": "vat_rate", "heading": "Rate"},
            {"source": "narrative", "heading": "Narrative"},
            {"source": "payer_name", "heading": "Payer"},
        ]
    ),
    trailer=_specs([{"source": "literal", "value": "T"}, {"source": "line_count"}, {"source": "total"}]),
)

FIXED = Layout(
    kind="detail",
    file_format="fixed",
    line_ending="lf",
    header=_specs(
        [
            {"source": "literal", "value": "HDR", "width": 3},
            {"source": "run_date", "value": "%Y%m%d", "width": 8},
            {"source": "sequence", "width": 6, "align": "right", "pad": "0"},
        ]
    ),
    fields=_specs(
        [
            {"source": "literal", "value": "D", "width": 1},
            {"source": "account_reference", "width": 10},
            {"source": "amount", "unit": "pence", "width": 9, "align": "right", "pad": "0"},
            {"source": "amount", "width": 10, "align": "right"},
            {"source": "business_date", "value": "%d%m%y", "width": 6},
            {"source": "method_code", "width": 4},
            {"source": "narrative", "width": 8},
        ]
    ),
    trailer=_specs(
        [
            {"source": "literal", "value": "TRL", "width": 3},
            {"source": "line_count", "width": 7, "align": "right", "pad": "0"},
            {"source": "total", "unit": "pence", "width": 12, "align": "right", "pad": "0"},
        ]
    ),
)

JOURNAL = Layout(
    kind="journal",
    file_format="csv",
    fields=_specs(
        [
            {"source": "posting_date", "heading": "Date", "value": "%d/%m/%Y"},
            {"source": "ledger_code", "heading": "Account"},
            {"source": "cost_centre", "heading": "CostCentre"},
            {"source": "vat_code", "heading": "Vat"},
            {"source": "line_type", "heading": "Type"},
            {"source": "debit", "heading": "Debit"},
            {"source": "credit", "heading": "Credit"},
            {"source": "amount", "heading": "Signed"},
            {"source": "entry_count", "heading": "Count"},
        ]
    ),
    trailer=_specs([{"source": "literal", "value": "TOTAL"}, {"source": "debit_total"}, {"source": "credit_total"}]),
)
DAY = dt.date(2026, 3, 2)
JOURNAL_LINES = [
    JournalLine(DAY, "9000", "", "", "CONTRA", "Income", 112000 + 9900, 0, 3),
    JournalLine(DAY, "1001", "RV100", "O", "INCOME", "Income", 0, 100000, 1),
    JournalLine(DAY, "2001", "PK01", "S", "INCOME", "Income", 0, 10000 + 9900 - 1650, 2),
    JournalLine(DAY, "9500", "", "S", "VAT", "Income", 0, 2000 - 350 + 1650 + 350, 2),
]


def test_detail_csv_matches_the_golden_file_byte_for_byte():
    data = _write(DETAIL_CSV)
    _golden("detail.csv", data)
    text = data.decode("utf-8")
    assert not text.startswith("\ufeff")  # a back office reads plain UTF-8 (no byte order mark)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")


def test_fixed_width_matches_the_golden_file_byte_for_byte():
    data = _write(FIXED)
    _golden("detail_fixed.txt", data)
    lines = data.decode("ascii").split("\n")[:-1]
    assert [len(line) for line in lines] == [17] + [48] * len(ROWS) + [22]
    # A negative amount padded with zeros keeps its sign in front.
    assert "-00001250" in lines[3]


def test_journal_matches_the_golden_file_and_balances():
    ctx = BatchContext(1, CTX.run_at, DAY, "GL.csv", "GL", line_count=4, entry_count=3)
    ctx.debit_pence = sum(x.debit_pence for x in JOURNAL_LINES)
    ctx.credit_pence = sum(x.credit_pence for x in JOURNAL_LINES)
    data = _write(JOURNAL, JOURNAL_LINES, ctx)
    _golden("journal.csv", data)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    body = rows[1:-1]
    debits = sum(Decimal(r[5]) for r in body)
    credits = sum(Decimal(r[6]) for r in body)
    assert debits == credits == Decimal(rows[-1][1]) == Decimal(rows[-1][2])
    assert sum(Decimal(r[7]) for r in body) == 0


def test_control_totals_in_the_trailer_equal_the_sums_of_the_lines():
    rows = list(csv.reader(io.StringIO(_write(DETAIL_CSV).decode("utf-8"))))
    header, headings, body, trailer = rows[0], rows[1], rows[2:-1], rows[-1]
    assert header[0] == "H" and headings[0] == "Type"
    assert trailer[0] == "T"
    assert int(trailer[1]) == len(body) == len(ROWS)
    assert Decimal(trailer[2]) == sum(Decimal(r[3]) for r in body)
    assert -sum(int(r[4]) for r in body) == sum(r[7] for r in ROWS)
    assert [int(r[1]) for r in body] == [1, 2, 3, 4]
    fixed = _write(FIXED).decode("ascii").split("\n")[:-1]
    assert int(fixed[-1][3:10]) == len(ROWS)
    assert int(fixed[-1][10:]) == sum(int(line[11:20]) for line in fixed[1:-1])


def test_formulas_are_neutralised_but_numbers_stay_numbers():
    rows = list(csv.reader(io.StringIO(_write(DETAIL_CSV).decode("utf-8"))))
    refund = rows[4]
    assert refund[3] == "-12.50"  # a number, not "'-12.50"
    assert refund[4] == "1250"
    assert refund[11] == "'=1+1"
    assert rows[3][11] == "Parking, permit"  # quoted in the file, one cell here
    assert rows[5][11] == 'He said "hi"'


def test_xlsx_writes_amounts_as_numbers_and_text_safely():
    openpyxl = pytest.importorskip("openpyxl")
    layout = Layout(kind="detail", file_format="xlsx", fields=_specs(LOCALGOV_FIELDS))
    data = _write(layout)
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    values = list(sheet.values)
    assert values[0][:3] == ("TransactionReference", "InternalReference", "PspReference")
    assert values[3][10] == -12.5 and values[3][14] == "'=1+1"
    assert values[2][12] == "0.2"


def test_csv_options_semicolon_and_quotes_round_everything():
    layout = Layout(
        kind="detail",
        file_format="csv",
        delimiter=";",
        quote_all=True,
        header_row=False,
        line_ending="lf",
        fields=_specs([{"source": "account_reference"}, {"source": "narrative"}]),
    )
    assert _write(layout, ROWS[1:2]) == b'"PK/77";"Parking, permit"\n'


def test_ascii_files_lose_accents_not_lines():
    layout = Layout(kind="detail", file_format="csv", encoding="ascii", header_row=False,
                    fields=_specs([{"source": "payer_name"}]))  # fmt: skip
    row = list(ROWS[0])
    row[14] = "Zoë Łukasz"
    assert _write(layout, [tuple(row)]) == b"Zoe ?ukasz\r\n"


def test_an_amount_too_wide_for_its_field_is_an_error_not_a_cut():
    layout = Layout(kind="detail", file_format="fixed", fields=_specs([{"source": "amount", "width": 4}]))
    with pytest.raises(DomainError, match="does not fit in 4 characters"):
        _write(layout)


def test_file_names_follow_the_pattern_and_nothing_else():
    assert (
        render_file_name("CTAX_{date:%Y%m%d}_{seq:04d}.csv", run_date=DAY, until=DAY, sequence=7, code="CT")
        == "CTAX_20260302_0007.csv"
    )
    assert render_file_name("{code}-{until}.txt", run_date=DAY, until=DAY, sequence=1, code="GL") == "GL-2026-03-02.txt"
    for bad in ("{date.__class__}", "{seq[0]}", "../{seq}.csv", "a/b.csv", "{nope}", "{date", ".hidden"):
        with pytest.raises(DomainError):
            render_file_name(bad, run_date=DAY, until=DAY, sequence=1, code="X")


def test_definitions_are_checked():
    fields = {"fields": [{"source": "amount"}]}
    with pytest.raises(DomainError, match="width"):
        parse_definition("detail", "fixed", fields)
    with pytest.raises(DomainError, match="header or trailer"):
        parse_definition("detail", "xlsx", fields | {"trailer": [{"source": "total"}]})
    with pytest.raises(DomainError, match="date format"):
        parse_definition("detail", "csv", {"fields": [{"source": "business_date", "value": "%Q"}]})
    with pytest.raises(DomainError, match="contra"):
        parse_definition("journal", "csv", {"fields": [{"source": "debit"}]})
    with pytest.raises(DomainError, match="at least one field"):
        parse_definition("detail", "csv", {"fields": [{"source": ""}]})
    with pytest.raises(DomainError) as error:
        parse_definition("detail", "csv", {"fields": [{"source": "amount"}, {"source": "posting_date"}]})
    assert error.value.field == "fields:1:source"
    ok = parse_definition("detail", "csv", {"fields": LOCALGOV_FIELDS})
    assert len(ok.layout.fields) == 15
