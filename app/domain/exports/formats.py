"""What a line of an export file can carry, and the writers that lay the lines out, streaming.

A template's lines are a list of `FieldSpec`s. Each names a *source* (a value of the transaction,
of the journal line or of the batch, or a literal) and how to write it: a date format, pounds or
pence, a sign convention, and for fixed-width files a width, alignment and padding character.

The writers take rows one at a time and yield the file in chunks of about 1 MiB, so memory stays
flat whatever the size of the batch:
- CSV: any delimiter, minimal (RFC 4180) or full quoting, an optional heading row, optional header
  and trailer records. Text cells that a spreadsheet would run as a formula get a leading
  apostrophe (app/domain/spreadsheets.safe_text); amounts, numbers and dates are never touched, so
  a refund of -12.50 stays the number -12.50.
- Fixed width: each field padded to its width; text too long is cut, but an amount, number or date
  that does not fit is an error (cutting money would silently change it).
- XLSX: through app/domain/spreadsheets.xlsx_chunks (amounts are numbers with a money format).

Each field compiles once to a small function of (row, line number), because a batch can have a
million lines: no per-cell look-ups of the field's settings.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from app.domain.errors import DomainError
from app.domain.spreadsheets import Column, pounds_text, safe_text, xlsx_chunks

CHUNK_BYTES = 1024 * 1024
FORMATS = {"csv": "CSV", "fixed": "Fixed width text", "xlsx": "Excel workbook (XLSX)"}
KINDS = {"detail": "Detail: one line per transaction", "journal": "General ledger journal"}
DELIMITERS = {",": "Comma", ";": "Semicolon", "\t": "Tab", "|": "Vertical bar"}
DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}
LINE_ENDINGS = {"crlf": "\r\n", "lf": "\n"}
ENCODINGS = {"utf-8": "UTF-8", "ascii": "ASCII (accents removed, other characters become ?)"}
UNITS = {"pounds": "Pounds and pence (12.50)", "pence": "Pence (1250)"}
SIGNS = {
    "as_is": "As recorded (money in positive, refunds negative)",
    "reversed": "Reversed (money in negative)",
    "absolute": "No sign",
}
ALIGNS = {"left": "Left", "right": "Right"}
MAX_FIELDS = 40
MAX_WIDTH = 500


class ExportFormatError(DomainError):
    """A value cannot be written as the template says (say, an amount too wide for its field)."""


@dataclass(frozen=True)
class Source:
    key: str
    label: str
    kind: str  # text, amount, date, datetime, number, rate


def _sources(*items: tuple[str, str, str]) -> dict[str, Source]:
    return {key: Source(key, label, kind) for key, label, kind in items}


# Values of one transaction (detail templates).
DETAIL_SOURCES = _sources(
    ("receipt_reference", "Receipt reference", "text"),
    ("entry_id", "Transaction id", "number"),
    ("account_reference", "Account reference", "text"),
    ("fund_code", "Fund code", "text"),
    ("fund_name", "Fund name", "text"),
    ("ledger_code", "Fund's general ledger code", "text"),
    ("cost_centre", "Fund's cost centre", "text"),
    ("method_code", "Method of payment code", "text"),
    ("method_name", "Method of payment name", "text"),
    ("amount", "Amount (including VAT)", "amount"),
    ("net_amount", "Net amount (excluding VAT)", "amount"),
    ("vat_amount", "VAT amount", "amount"),
    ("vat_code", "VAT code", "text"),
    ("vat_rate", "VAT rate as a fraction (0.2)", "rate"),
    ("business_date", "Business date (UK date paid)", "date"),
    ("taken_at", "Time paid (UTC)", "datetime"),
    ("created_at", "Time recorded (UTC)", "datetime"),
    ("narrative", "Narrative", "text"),
    ("payer_name", "Payer's name", "text"),
    ("office_code", "Office code", "text"),
    ("user_code", "User number (0 for online and imports)", "number"),
    ("source", "Where the entry came from", "text"),
    ("source_reference", "Source reference (provider or import id)", "text"),
    ("group_reference", "Group reference (basket, journal or transfer)", "text"),
)
# Values of one journal line (journal templates).
JOURNAL_SOURCES = _sources(
    ("posting_date", "Posting date (business date)", "date"),
    ("ledger_code", "General ledger code", "text"),
    ("cost_centre", "Cost centre", "text"),
    ("vat_code", "VAT code", "text"),
    ("line_type", "Line type (CONTRA, INCOME or VAT)", "text"),
    ("description", "Description", "text"),
    ("debit", "Debit", "amount"),
    ("credit", "Credit", "amount"),
    ("amount", "Amount (debits positive, credits negative)", "amount"),
    ("entry_count", "Number of transactions in the line", "number"),
)
# Values of the batch: usable in any line, and the only ones in a header or trailer record.
BATCH_SOURCES = _sources(
    ("literal", "Fixed text (enter it as the value)", "text"),
    ("line_number", "Line number", "number"),
    ("line_count", "Control: number of lines", "number"),
    ("entry_count_total", "Control: number of transactions", "number"),
    ("total", "Control: total of the transactions", "amount"),
    ("debit_total", "Control: total debits", "amount"),
    ("credit_total", "Control: total credits", "amount"),
    ("sequence", "File sequence number", "number"),
    ("run_date", "Date the file was made (UK)", "date"),
    ("run_at", "Time the file was made (UTC)", "datetime"),
    ("cut_off_date", "Cut-off date", "date"),
    ("file_name", "File name", "text"),
    ("template_code", "Template code", "text"),
)


def line_sources(kind: str) -> dict[str, Source]:
    own = DETAIL_SOURCES if kind == "detail" else JOURNAL_SOURCES
    return own | {k: v for k, v in BATCH_SOURCES.items() if k not in own}


def record_sources() -> dict[str, Source]:
    """Header and trailer records: batch values only (a record is not about one transaction)."""
    return {k: v for k, v in BATCH_SOURCES.items() if k != "line_number"}


@dataclass(frozen=True)
class FieldSpec:
    source: str
    heading: str = ""
    # A literal's text, or a date format like %d/%m/%Y ("" means ISO 8601).
    value: str = ""
    unit: str = "pounds"
    sign: str = "as_is"
    width: int = 0
    align: str = "left"
    pad: str = " "

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "heading": self.heading,
            "value": self.value,
            "unit": self.unit,
            "sign": self.sign,
            "width": self.width,
            "align": self.align,
            "pad": self.pad,
        }

    @classmethod
    def from_dict(cls, data: dict) -> FieldSpec:
        return cls(
            source=str(data.get("source", "")),
            heading=str(data.get("heading", "")),
            value=str(data.get("value", "")),
            unit=str(data.get("unit", "pounds")),
            sign=str(data.get("sign", "as_is")),
            width=int(data.get("width") or 0),
            align=str(data.get("align", "left")),
            pad=str(data.get("pad", " ")) or " ",
        )


@dataclass(frozen=True)
class Layout:
    kind: str = "detail"
    file_format: str = "csv"
    fields: tuple[FieldSpec, ...] = ()
    header: tuple[FieldSpec, ...] = ()
    trailer: tuple[FieldSpec, ...] = ()
    delimiter: str = ","
    quote_all: bool = False
    header_row: bool = True
    line_ending: str = "crlf"
    encoding: str = "utf-8"


@dataclass
class BatchContext:
    """The batch values fields can carry. Known before the first line is written."""

    sequence: int
    run_at: dt.datetime
    cut_off: dt.date
    file_name: str
    template_code: str
    line_count: int = 0
    entry_count: int = 0
    total_pence: int = 0
    debit_pence: int = 0
    credit_pence: int = 0

    @property
    def run_date(self) -> dt.date:
        from app.domain.ukdates import business_date

        return business_date(self.run_at)


@dataclass
class Lookups:
    """Configuration by id, loaded once per file (a few hundred rows at most)."""

    funds: dict[int, tuple[str, str, str, str]] = field(default_factory=dict)  # code, name, ledger, cost centre
    methods: dict[int, tuple[str, str]] = field(default_factory=dict)  # code, name
    vat_codes: dict[int, str] = field(default_factory=dict)
    offices: dict[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Lookups:
        from app.domain.funds import Fund
        from app.domain.methods import MethodOfPayment
        from app.domain.offices import Office
        from app.domain.vat import VatCode

        return cls(
            funds={
                f.id: (f.code, f.name, f.ledger_code, f.cost_centre)
                for f in Fund.select(Fund.id, Fund.code, Fund.name, Fund.ledger_code, Fund.cost_centre)
            },
            methods={
                m.id: (m.code, m.name)
                for m in MethodOfPayment.select(MethodOfPayment.id, MethodOfPayment.code, MethodOfPayment.name)
            },
            vat_codes={v.id: v.code for v in VatCode.select(VatCode.id, VatCode.code)},
            offices={o.id: o.code for o in Office.select(Office.id, Office.code)},
        )


# The columns of a detail row, in the order runs.py selects them.
DETAIL_COLUMNS = (
    "id",
    "receipt_reference",
    "account_reference",
    "fund_id",
    "method_id",
    "vat_code_id",
    "vat_rate",
    "amount_pence",
    "vat_pence",
    "net_pence",
    "business_date",
    "taken_at",
    "created_at",
    "narrative",
    "payer_name",
    "office_id",
    "user_id",
    "source",
    "source_reference",
    "group_reference",
)
_D = {name: i for i, name in enumerate(DETAIL_COLUMNS)}
# Fields that are a detail row's column as it is: field key → column (DETAIL_COLUMNS). Both the
# value getters (previews, journals) and the generated line formatter read them from here.
DIRECT_FIELDS = {
    "receipt_reference": "receipt_reference",
    "entry_id": "id",
    "account_reference": "account_reference",
    "amount": "amount_pence",
    "net_amount": "net_pence",
    "vat_amount": "vat_pence",
    "vat_rate": "vat_rate",
    "business_date": "business_date",
    "taken_at": "taken_at",
    "created_at": "created_at",
    "narrative": "narrative",
    "payer_name": "payer_name",
    "source": "source",
    "source_reference": "source_reference",
    "group_reference": "group_reference",
}
# Fields taken from the entry's fund: field key → place in Lookups.funds' tuples.
FUND_PARTS = {"fund_code": 0, "fund_name": 1, "ledger_code": 2, "cost_centre": 3}


@dataclass(frozen=True)
class JournalLine:
    posting_date: dt.date
    ledger_code: str
    cost_centre: str
    vat_code: str
    line_type: str  # CONTRA, INCOME, VAT
    description: str
    debit_pence: int
    credit_pence: int
    entry_count: int


# --- checking a field -------------------------------------------------------------------------


_SAMPLE_DAY = dt.datetime(2026, 12, 31, 23, 59, 58)  # noqa: DTZ001 - only formatted, never compared


def check_date_format(pattern: str) -> None:
    """A strftime pattern that gives text and uses only the common directives."""
    allowed = set("aAbBdHjmMpSyYIeuw%")
    i = 0
    while i < len(pattern):
        if pattern[i] == "%":
            if i + 1 >= len(pattern) or pattern[i + 1] not in allowed:
                raise DomainError(
                    "Enter a date format using %d, %m, %Y, %y, %H, %M, %S, %b or %j, like %d/%m/%Y", "value"
                )
            i += 2
        else:
            i += 1
    if not _SAMPLE_DAY.strftime(pattern):
        raise DomainError("Enter a date format that gives some text, like %d/%m/%Y", "value")


def check_field(spec: FieldSpec, sources: dict[str, Source], file_format: str, where: str, at: str = "fields") -> None:
    """Raise DomainError if the field cannot be written. Its field is `at`: "<part>:<index>:<attribute>"."""
    source = sources.get(spec.source)
    if source is None:
        raise DomainError(f"{where}: choose what the field contains from the list", f"{at}:source")
    if spec.unit not in UNITS or spec.sign not in SIGNS or spec.align not in ALIGNS:
        raise DomainError(f"{where}: choose the amount, sign and alignment from the lists", f"{at}:source")
    if source.kind in ("date", "datetime") and spec.value:
        try:
            check_date_format(spec.value)
        except DomainError as exc:
            raise DomainError(f"{where}: {exc.message}", f"{at}:value") from exc
    if len(spec.heading) > 100 or len(spec.value) > 200:
        raise DomainError(
            f"{where}: the heading must be 100 characters or fewer and the value 200 or fewer", f"{at}:heading"
        )
    if file_format == "fixed":
        if not 1 <= spec.width <= MAX_WIDTH:
            raise DomainError(f"{where}: enter a width from 1 to {MAX_WIDTH} for a fixed-width file", f"{at}:width")
        if len(spec.pad) != 1:
            raise DomainError(f"{where}: the padding must be one character", f"{at}:pad")
    if any(ch in spec.value + spec.heading for ch in "\r\n"):
        raise DomainError(f"{where}: the heading and value must be on one line", f"{at}:heading")


# --- compiling fields ---------------------------------------------------------------------------


def _iso_date(value) -> str:
    return value if type(value) is str else value.isoformat()


def _as_date(value) -> dt.date:
    return dt.date.fromisoformat(value[:10]) if type(value) is str else value


def _as_datetime(value) -> dt.datetime:
    return dt.datetime.fromisoformat(value) if type(value) is str else value


def _iso_datetime(value) -> str:
    if type(value) is str:  # SQLite: "2026-03-02 14:05:00.123456"
        return value[:10] + "T" + value[11:19] + "Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _rate_text(value) -> str:
    rate = value if isinstance(value, Decimal) else Decimal(str(value))
    if rate == 0:
        return "0"
    return format(rate.normalize(), "f")


def _value_getter(source: Source, spec: FieldSpec, kind: str, lookups: Lookups, ctx: BatchContext) -> Callable:
    """A function (row, n) -> the raw value of the field (not yet formatted)."""
    key = source.key
    constant = {
        "literal": spec.value,
        "line_count": ctx.line_count,
        "entry_count_total": ctx.entry_count,
        "total": ctx.total_pence,
        "debit_total": ctx.debit_pence,
        "credit_total": ctx.credit_pence,
        "sequence": ctx.sequence,
        "run_date": ctx.run_date,
        "run_at": ctx.run_at,
        "cut_off_date": ctx.cut_off,
        "file_name": ctx.file_name,
        "template_code": ctx.template_code,
    }
    if key == "line_number":
        return lambda row, n: n
    if (
        key in BATCH_SOURCES
        and not (kind == "detail" and key in DETAIL_SOURCES)
        and not (kind == "journal" and key in JOURNAL_SOURCES)
    ):
        value = constant[key]
        return lambda row, n: value
    if kind == "journal":
        attribute = {
            "posting_date": "posting_date",
            "ledger_code": "ledger_code",
            "cost_centre": "cost_centre",
            "vat_code": "vat_code",
            "line_type": "line_type",
            "description": "description",
            "debit": "debit_pence",
            "credit": "credit_pence",
            "entry_count": "entry_count",
        }.get(key)
        if attribute is not None:
            return lambda row, n: getattr(row, attribute)
        if key == "amount":
            return lambda row, n: row.debit_pence - row.credit_pence
        raise ExportFormatError(f"A journal line has no {source.label.lower()}")
    direct = DIRECT_FIELDS.get(key)
    if direct is not None:
        i = _D[direct]
        return lambda row, n: row[i]
    funds, methods, vats, offices = lookups.funds, lookups.methods, lookups.vat_codes, lookups.offices
    f, m, v, o, u = _D["fund_id"], _D["method_id"], _D["vat_code_id"], _D["office_id"], _D["user_id"]
    if key in FUND_PARTS:
        p = FUND_PARTS[key]
        return lambda row, n: funds[row[f]][p]
    if key in ("method_code", "method_name"):
        p = 0 if key == "method_code" else 1
        return lambda row, n: methods[row[m]][p]
    if key == "vat_code":
        return lambda row, n: vats.get(row[v], "")
    if key == "office_code":
        return lambda row, n: offices.get(row[o], "")
    if key == "user_code":
        return lambda row, n: row[u] or 0
    raise ExportFormatError(f"Unknown field {key!r}")


def _text_formatter(source: Source, spec: FieldSpec) -> Callable:
    """A function raw value -> text, for CSV and fixed-width files."""
    kind = source.kind
    if kind == "amount":
        to_text = pounds_text if spec.unit == "pounds" else str
        if spec.sign == "reversed":
            return lambda value: to_text(-value)
        if spec.sign == "absolute":
            return lambda value: to_text(-value if value < 0 else value)
        return to_text
    if kind == "date":
        if spec.value:
            pattern = spec.value
            return lambda value: "" if value is None else _as_date(value).strftime(pattern)
        return lambda value: "" if value is None else _iso_date(value)
    if kind == "datetime":
        if spec.value:
            pattern = spec.value
            return lambda value: "" if value is None else _as_datetime(value).strftime(pattern)
        return lambda value: "" if value is None else _iso_datetime(value)
    if kind == "rate":
        return lambda value: "" if value is None else _rate_text(value)
    if kind == "number":
        return str
    return lambda value: "" if value is None else value if type(value) is str else str(value)


def _fixed(spec: FieldSpec, source: Source, label: str) -> Callable:
    width, pad, right = spec.width, spec.pad, spec.align == "right"
    can_cut = source.kind == "text"

    def fit(text: str) -> str:
        size = len(text)
        if size == width:
            return text
        if size > width:
            if can_cut:
                return text[:width]
            raise ExportFormatError(f'{label}: "{text}" does not fit in {width} characters')
        if right:
            if pad == "0" and text[:1] == "-":
                return "-" + text[1:].rjust(width - 1, "0")
            return text.rjust(width, pad)
        return text.ljust(width, pad)

    return fit


def _value_expression(source: Source, spec: FieldSpec, kind: str, index: int, names: dict, ctx: BatchContext) -> str:
    """Python source for the raw value of a field, reading `row` and `n` (see compile_fields)."""
    key = source.key
    own = DETAIL_SOURCES if kind == "detail" else JOURNAL_SOURCES
    if key == "line_number":
        return "n"
    if key not in own:
        names[f"k{index}"] = _value_getter(source, spec, kind, Lookups(), ctx)(None, 0)
        return f"k{index}"
    if kind == "journal":
        if key == "amount":
            return "(row.debit_pence - row.credit_pence)"
        attribute = {"debit": "debit_pence", "credit": "credit_pence"}.get(key, key)
        return f"row.{attribute}"
    if key in DIRECT_FIELDS:
        return f"row[{_D[DIRECT_FIELDS[key]]}]"
    if key in FUND_PARTS:
        return f"funds[row[{_D['fund_id']}]][{FUND_PARTS[key]}]"
    if key in ("method_code", "method_name"):
        return f"methods[row[{_D['method_id']}]][{0 if key == 'method_code' else 1}]"
    if key == "vat_code":
        return f"vats.get(row[{_D['vat_code_id']}], '')"
    if key == "office_code":
        return f"offices.get(row[{_D['office_id']}], '')"
    if key == "user_code":
        return f"(row[{_D['user_id']}] or 0)"
    raise ExportFormatError(f"Unknown field {key!r}")


def compile_fields(
    specs: Sequence[FieldSpec],
    sources: dict[str, Source],
    layout: Layout,
    lookups: Lookups,
    ctx: BatchContext,
    what: str,
) -> Callable[[object, int], list[str]]:
    """The fields of one kind of line → a function (row, line number) -> the cells as text.

    A batch can have a million lines of twenty fields, so the function is generated once as Python
    source with every look-up inlined (a cell costs one or two calls, not a chain of closures).
    Nothing a person typed goes into the source: literals, formats and widths are passed in as
    variables (k0, t0, fit0 …).
    """
    names: dict = {
        "funds": lookups.funds,
        "methods": lookups.methods,
        "vats": lookups.vat_codes,
        "offices": lookups.offices,
        "safe": safe_text,
        "pounds": pounds_text,
        "iso_date": _iso_date,
        "iso_datetime": _iso_datetime,
        "str": str,
    }
    cells: list[str] = []
    for index, spec in enumerate(specs):
        source = sources[spec.source]
        value = _value_expression(source, spec, layout.kind, index, names, ctx)
        kind = source.kind
        if kind == "amount":
            signed = {"as_is": value, "reversed": f"-{value}", "absolute": f"abs({value})"}[spec.sign]
            text = f"pounds({signed})" if spec.unit == "pounds" else f"str({signed})"
        elif kind == "number":
            text = f"str({value})"
        elif kind in ("date", "datetime") and not spec.value:
            text = f"iso_{kind}({value})"
        elif kind == "text":
            text = value if value.startswith("k") else f"({value} or '')"
            if layout.file_format != "fixed":
                # Only text can hold a formula: amounts, numbers and dates are written as they are.
                text = f"safe({text})"
        else:
            names[f"t{index}"] = _text_formatter(source, spec)
            text = f"t{index}({value})"
        if layout.file_format == "fixed":
            label = f"{what} field {index + 1} ({spec.heading or source.label})"
            names[f"fit{index}"] = _fixed(spec, source, label)
            text = f"fit{index}({text})"
        cells.append(text)
    code = "def line(row, n):\n    return [" + ", ".join(cells) + "]\n"
    exec(compile(code, f"<export {what.lower()} fields>", "exec"), names)  # noqa: S102 - our own expressions
    return names["line"]


# --- writers ------------------------------------------------------------------------------------


def _csv_line(delimiter: str, quote_all: bool) -> Callable[[list[str]], str]:
    def quote(cell: str) -> str:
        return '"' + cell.replace('"', '""') + '"'

    if quote_all:
        return lambda cells: delimiter.join(quote(c) for c in cells)
    specials = (delimiter, '"', "\r", "\n")

    def line(cells: list[str]) -> str:
        text = delimiter.join(cells)
        # Fast path: nothing to quote in nearly every line.
        if text.count(delimiter) == len(cells) - 1 and '"' not in text and "\n" not in text and "\r" not in text:
            return text if text or len(cells) != 1 else '""'
        return delimiter.join(quote(c) if any(s in c for s in specials) else c for c in cells)

    return line


def _ascii(text: str) -> str:
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch if ch.isascii() else ("" if unicodedata.combining(ch) else "?") for ch in decomposed)


def text_lines(layout: Layout, ctx: BatchContext, rows: Iterable, lookups: Lookups) -> Iterator[str]:
    """The lines of a CSV or fixed-width file (without line endings)."""
    body_sources = line_sources(layout.kind)
    records = record_sources()
    body = compile_fields(layout.fields, body_sources, layout, lookups, ctx, "Line")
    header = compile_fields(layout.header, records, layout, lookups, ctx, "Header") if layout.header else None
    trailer = compile_fields(layout.trailer, records, layout, lookups, ctx, "Trailer") if layout.trailer else None
    join = _csv_line(layout.delimiter, layout.quote_all) if layout.file_format == "csv" else "".join
    if header is not None:
        yield join(header(None, 0))
    if layout.file_format == "csv" and layout.header_row:
        yield join([safe_text(spec.heading or body_sources[spec.source].label) for spec in layout.fields])
    n = 0
    for row in rows:
        n += 1
        yield join(body(row, n))
    if trailer is not None:
        yield join(trailer(None, 0))


def file_chunks(layout: Layout, ctx: BatchContext, rows: Iterable, lookups: Lookups) -> Iterator[bytes]:
    """The whole file, in chunks of about 1 MiB."""
    if layout.file_format == "xlsx":
        yield from _xlsx(layout, ctx, rows, lookups)
        return
    ending = LINE_ENDINGS[layout.line_ending]
    ascii_only = layout.encoding == "ascii"
    pending: list[str] = []
    size = 0
    for line in text_lines(layout, ctx, rows, lookups):
        pending.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            pending.append("")
            text = ending.join(pending)
            yield (_ascii(text) if ascii_only else text).encode("ascii" if ascii_only else "utf-8")
            pending, size = [], 0
    if pending:
        pending.append("")
        text = ending.join(pending)
        yield (_ascii(text) if ascii_only else text).encode("ascii" if ascii_only else "utf-8")


def _xlsx(layout: Layout, ctx: BatchContext, rows: Iterable, lookups: Lookups) -> Iterator[bytes]:
    sources = line_sources(layout.kind)
    columns: list[Column] = []
    getters: list[Callable] = []
    for spec in layout.fields:
        source = sources[spec.source]
        getter = _value_getter(source, spec, layout.kind, lookups, ctx)
        heading = spec.heading or source.label
        if source.kind == "amount":
            sign = {"as_is": 1, "reversed": -1}.get(spec.sign)
            if sign is None:
                getters.append(lambda row, n, g=getter: abs(g(row, n)))
            else:
                getters.append(lambda row, n, g=getter, s=sign: s * g(row, n))
            columns.append(Column(heading, "money" if spec.unit == "pounds" else "number"))
        elif source.kind in ("date", "datetime") and not spec.value:
            columns.append(Column(heading, source.kind))
            getters.append(getter)
        elif source.kind == "number":
            columns.append(Column(heading, "number"))
            getters.append(getter)
        elif source.kind == "text":
            columns.append(Column(heading, "text"))
            getters.append(getter)
        else:  # formatted dates and rates: text that cannot start with a formula character
            formatter = _text_formatter(source, spec)
            columns.append(Column(heading, "safe"))
            getters.append(lambda row, n, g=getter, t=formatter: t(g(row, n)))

    def values():
        n = 0
        for row in rows:
            n += 1
            yield [g(row, n) for g in getters]

    yield from xlsx_chunks(columns, values(), sheet_name=ctx.template_code or "Export")


def content_type(file_format: str) -> str:
    return {
        "csv": "text/csv; charset=utf-8",
        "fixed": "text/plain; charset=utf-8",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }[file_format]
