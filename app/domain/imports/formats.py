"""Reading import files: every format yields rows (or per-row problems) one at a time.

`read_rows(template, data)` streams a binary file and yields `ImportRow` for each payment
and `RowProblem` for each line that cannot be used; it raises `FileRejected` when the
file as a whole cannot be trusted (wrong format, undecodable text, control totals that do
not match, empty, no header). `FileRejected` may come at the very end, after the allpay
trailer is read: the caller posts nothing from a rejected file.

Nothing else is ever raised, whatever the bytes (tests fuzz this with hypothesis). Money is
integer pence, parsed from text digit by digit (never float). Memory stays flat: one line
is read at a time; only the duplicate check grows, by about 24 bytes a line.

Formats (spec/file-formats.md):
- "allpay": fixed width, header-less detail lines, a blank line, then the trailer whose
  count and total must equal the details (§1);
- "dwp": DWP council tax deductions, .xlsx (first sheet, header row) or the same as CSV (§2);
- "localgov_csv": the LocalGov IMS 15-column transaction CSV, read by header name (§3);
- "csv": a layout an administrator describes (delimiter, header rows, column mapping,
  date format, pounds or pence, sign column, encoding);
- "account_holders": account holders, not payments: `read_account_holders`.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import math
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from app.domain.errors import DomainError
from app.domain.ukdates import business_date

MAX_LINE_CHARS = 4000
MAX_AMOUNT_PENCE = 1_000_000_000  # £10,000,000: more than this on one line is a mistake
MAX_TEXT_IN_PROBLEM = 200
MAX_REFERENCE_LENGTH = 40  # as the ledger (app/domain/ledger.py)
MAX_NARRATIVE_LENGTH = 200
MAX_PAYER_NAME_LENGTH = 200
CACHE_LIMIT = 100_000  # distinct amount / date strings remembered while reading one file

KINDS: dict[str, str] = {
    "allpay": "allpay daily transaction file (fixed width)",
    "dwp": "DWP council tax deductions (Excel workbook or CSV)",
    "localgov_csv": "LocalGov IMS transactions (15-column CSV)",
    "account_holders": "Account holders (CSV extract from a back-office system)",
    "csv": "CSV file in a layout you describe",
}
PAYMENT_KINDS = ("allpay", "dwp", "localgov_csv", "csv")

ENCODINGS: dict[str, str] = {
    "utf-8-sig": "UTF-8 (with or without a byte order mark, as Excel's “CSV UTF-8” saves)",
    "utf-8": "UTF-8 (no byte order mark)",
    "cp1252": "Windows-1252 (older Excel “CSV” files)",
}
ENCODING_NAMES = {"utf-8-sig": "UTF-8", "utf-8": "UTF-8", "cp1252": "Windows-1252", "ascii": "plain text (ASCII)"}
DELIMITERS: dict[str, tuple[str, str]] = {
    "comma": (",", "Comma (,)"),
    "semicolon": (";", "Semicolon (;)"),
    "tab": ("\t", "Tab"),
    "pipe": ("|", "Vertical bar (|)"),
}
# name -> (strptime format, label). Dates are parsed once per distinct string.
DATE_FORMATS: dict[str, tuple[str, str]] = {
    "dd/mm/yyyy": ("%d/%m/%Y", "dd/mm/yyyy, like 31/03/2026"),
    "dd-mm-yyyy": ("%d-%m-%Y", "dd-mm-yyyy, like 31-03-2026"),
    "dd.mm.yyyy": ("%d.%m.%Y", "dd.mm.yyyy, like 31.03.2026"),
    "yyyy-mm-dd": ("%Y-%m-%d", "yyyy-mm-dd, like 2026-03-31"),
    "dd/mm/yy": ("%d/%m/%y", "dd/mm/yy, like 31/03/26"),
    "yyyymmdd": ("%Y%m%d", "yyyymmdd, like 20260331"),
    "ddmmyyyy": ("%d%m%Y", "ddmmyyyy, like 31032026"),
    "d mmm yyyy": ("%d %b %Y", "d mmm yyyy, like 31 Mar 2026"),
}
AMOUNT_UNITS = {"pounds": "Pounds and pence, like 12.50", "pence": "Whole pence, like 1250"}

ALLPAY_CHANNELS: dict[str, str] = {
    "P": "Post Office",
    "T": "PayPoint",
    "Z": "Payzone",
    "N": "Phone or web (IVR / desktop)",
    "B": "Bills Online",
    "C": "Cash adjustment",
    "Q": "Returned cheque",
}

# The fields a template can map a column to; the names rules test. Others may be added.
CSV_FIELDS: dict[str, str] = {
    "reference": "Account reference (required)",
    "amount": "Amount (required)",
    "date": "Date paid (required)",
    "fund": "Fund code",
    "method": "Method of payment code",
    "payer_name": "Payer's name",
    "narrative": "Narrative",
    "line_id": "The line's own id (lines with the same id are reported as duplicates)",
    "sign": "Sign (a value in the list of negative signs makes the amount negative)",
}
REQUIRED_CSV_FIELDS = ("reference", "amount", "date")
FIELD_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,29}$")

LOCALGOV_COLUMNS = (
    "TransactionReference",
    "InternalReference",
    "PspReference",
    "OfficeCode",
    "EntryDate",
    "TransactionDate",
    "AccountReference",
    "UserCode",
    "FundCode",
    "MopCode",
    "Amount",
    "VatCode",
    "VatRate",
    "VatAmount",
    "Narrative",
)
_LOCALGOV_FIELD_NAMES = {
    "TransactionReference": "transaction_reference",
    "InternalReference": "internal_reference",
    "PspReference": "psp_reference",
    "OfficeCode": "office_code",
    "EntryDate": "entry_date",
    "TransactionDate": "transaction_date",
    "AccountReference": "reference",
    "UserCode": "user_code",
    "FundCode": "fund",
    "MopCode": "method",
    "Amount": "amount",
    "VatCode": "vat_code",
    "VatRate": "vat_rate",
    "VatAmount": "vat_amount",
    "Narrative": "narrative",
}
_LOCALGOV_REQUIRED = ("TransactionDate", "AccountReference", "FundCode", "Amount")

# DWP workbook (§2): 1-based column numbers F, K, L, M.
DWP_DEFAULT_COLUMNS = {"reference": "6", "date": "11", "amount": "12", "sign": "13"}


# ---------------------------------------------------------------------------
# What readers yield
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class ImportRow:
    """One payment read from a file, before rules and posting. Amounts are signed pence."""

    line_number: int
    account_reference: str
    amount_pence: int
    business_date: dt.date
    fund_code: str = ""
    method_code: str = ""
    payer_name: str = ""
    narrative: str = ""
    source_reference: str = ""  # the line's own id in the file (allpay transaction number …)
    fields: dict[str, str] = field(default_factory=dict)  # every raw mapped field, by name

    def copy(self) -> ImportRow:
        return ImportRow(
            self.line_number,
            self.account_reference,
            self.amount_pence,
            self.business_date,
            self.fund_code,
            self.method_code,
            self.payer_name,
            self.narrative,
            self.source_reference,
            dict(self.fields),
        )


@dataclass(slots=True)
class RowProblem:
    """A line that cannot be used, and why, in plain English. The rest of the file still can."""

    line_number: int
    message: str
    text: str = ""  # the raw line, cut to 200 characters

    def __str__(self) -> str:
        return f"Line {self.line_number}: {self.message}"


@dataclass(slots=True)
class AccountHolderRow:
    line_number: int
    fund_code: str  # "" when the file has no fund column (the template's default fund is used)
    reference: str
    name: str = ""
    address: str = ""
    balance_pence: int | None = None
    on_stop_message: str = ""
    stop_channels: str = "all"


class FileRejected(DomainError):
    """The whole file is refused: post nothing from it. The message says what and where."""

    def __init__(self, message: str, line_number: int | None = None):
        super().__init__(message, "file")
        self.line_number = line_number


def _problem(number: int, message: str, text: str) -> RowProblem:
    return RowProblem(number, message, text[:MAX_TEXT_IN_PROBLEM])


# ---------------------------------------------------------------------------
# Template settings: what a reader needs, resolved once per file
# ---------------------------------------------------------------------------


@dataclass
class ReadSettings:
    kind: str
    options: dict[str, Any]
    default_fund_code: str = ""
    default_method_code: str = ""


def read_settings(template) -> ReadSettings:
    """The kind, options and default codes of a template (an ImportTemplate or anything alike)."""
    if isinstance(template, ReadSettings):
        return template
    options = getattr(template, "settings", None)
    if options is None:
        options = getattr(template, "options", None) or {}
    if isinstance(options, str):
        import json

        try:
            options = json.loads(options or "{}")
        except ValueError:
            options = {}
    fund_code = getattr(template, "default_fund_code", None)
    method_code = getattr(template, "default_method_code", None)
    if fund_code is None:
        fund = getattr(template, "default_fund", None)
        fund_code = getattr(fund, "code", "") or ""
    if method_code is None:
        method = getattr(template, "default_method", None)
        method_code = getattr(method, "code", "") or ""
    return ReadSettings(
        kind=getattr(template, "kind", ""),
        options=dict(options) if isinstance(options, dict) else {},
        default_fund_code=fund_code or "",
        default_method_code=method_code or "",
    )


# ---------------------------------------------------------------------------
# Small fast parsers (cached by string: a file repeats its dates and amounts)
# ---------------------------------------------------------------------------


def parse_pounds_text(text: str, *, allow_negative: bool = True, allow_symbols: bool = False) -> int | str:
    """Pounds and pence as text → signed pence, or a message saying what is wrong.

    Exact: digits are turned into an integer, never through float. "60.00", "-5.5", "12";
    with allow_symbols also "£1,234.50".
    """
    value = text.strip()
    shown = value or "(blank)"
    if not value:
        return "The amount is missing"
    negative = False
    if value[0] == "-":
        negative, value = True, value[1:].lstrip()
    if allow_symbols:
        if value[:1] == "£":
            value = value[1:]
        if "," in value:
            whole_part = value.split(".", 1)[0]
            groups = whole_part.split(",")
            if not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
                return f"Amount {shown} is not an amount of money"
            value = value.replace(",", "")
    whole, dot, fraction = value.partition(".")
    if not whole and dot:
        whole = "0"
    if not (whole.isascii() and whole.isdigit()) or (dot and not (fraction.isascii() and fraction.isdigit())):
        return f"Amount {shown} is not an amount of money"
    if len(fraction) > 2:
        return f"Amount {shown} has more than 2 decimal places"
    if len(whole) > 12:
        return f"Amount {shown} is more than £10,000,000"
    pence = int(whole) * 100 + (int(fraction.ljust(2, "0")) if fraction else 0)
    if negative:
        if not allow_negative:
            return f"Amount {shown} is negative, and this file cannot have negative amounts"
        pence = -pence
    return pence


def parse_pence_text(text: str, *, allow_negative: bool = True) -> int | str:
    """Whole pence as text ("1250", "-300", "1250.0" as spreadsheets write it) → pence, or a message."""
    value = text.strip()
    shown = value or "(blank)"
    if not value:
        return "The amount is missing"
    negative = value[0] == "-"
    if negative:
        value = value[1:].lstrip()
    whole, dot, fraction = value.partition(".")
    if dot and fraction.strip("0") == "" and fraction.isascii() and fraction.isdigit():
        value = whole
    elif dot:
        return f"Amount {shown} is not a whole number of pence"
    if not (value.isascii() and value.isdigit()):
        return f"Amount {shown} is not a whole number of pence"
    if len(value) > 14:
        return f"Amount {shown} is more than £10,000,000"
    pence = int(value)
    if negative:
        if not allow_negative:
            return f"Amount {shown} is negative, and this file cannot have negative amounts"
        pence = -pence
    return pence


def _amount_problem(pence: int) -> str | None:
    if pence == 0:
        return "The amount is zero"
    if abs(pence) > MAX_AMOUNT_PENCE:
        return "The amount is more than £10,000,000"
    return None


def _strict_uk_date(text: str) -> dt.date | str:
    """dd/MM/yyyy exactly (allpay)."""
    if len(text) != 10 or text[2] != "/" or text[5] != "/":
        return f"Date {text.strip() or '(blank)'} is not a date written dd/mm/yyyy"
    day, month, year = text[0:2], text[3:5], text[6:10]
    if not (day.isascii() and day.isdigit() and month.isascii() and month.isdigit()):
        return f"Date {text} is not a date written dd/mm/yyyy"
    if not (year.isascii() and year.isdigit()):
        return f"Date {text} is not a date written dd/mm/yyyy"
    try:
        return dt.date(int(year), int(month), int(day))
    except ValueError:
        return f"Date {text} is not a real date"


def _formatted_date(strptime_format: str, label: str) -> Callable[[str], dt.date | str]:
    def parse(text: str) -> dt.date | str:
        value = " ".join(text.split())
        if not value:
            return "The date is missing"
        try:
            return dt.datetime.strptime(value, strptime_format).date()  # noqa: DTZ007 - a calendar date
        except ValueError:
            pass
        # Same shape but an impossible day (31/02): say so, rather than "not a date".
        digits = re.sub(r"\d", "9", value)
        try:
            dt.datetime.strptime(digits.replace("99", "01", 2), strptime_format)  # noqa: DTZ007
        except ValueError:
            return f"Date {value[:40]} is not a date written {label}"
        return f"Date {value[:40]} is not a real date"

    return parse


_EXCEL_EPOCH = dt.date(1899, 12, 30)
_LENIENT_FORMATS = ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y", "%d %b %Y", "%d %B %Y", "%Y%m%d")


def _lenient_date(text: str) -> dt.date | str:
    """DWP dates: dd/mm/yyyy, ISO (with or without a time), 1 Mar 2026, or an Excel day number."""
    value = " ".join(text.split())
    if not value:
        return "The date is missing"
    if len(value) > 10 and value[4:5] == "-" and value[10:11] in ("T", " "):
        value = value[:10]
    elif len(value) > 10 and value[2:3] == "/" and value[10:11] == " ":
        value = value[:10]
    if value.isascii() and value.isdigit() and 1 <= len(value) <= 5:
        serial = int(value)
        if 1 <= serial <= 2958465:
            return _EXCEL_EPOCH + dt.timedelta(days=serial)
    for fmt in _LENIENT_FORMATS:
        try:
            return dt.datetime.strptime(value, fmt).date()  # noqa: DTZ007 - a calendar date
        except ValueError:
            continue
    if re.fullmatch(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}-\d{1,2}-\d{1,2}", value):
        return f"Date {value} is not a real date"
    return f"Date {value[:40]} is not a date"


def _iso_date_or_timestamp(text: str) -> dt.date | str:
    """LocalGov IMS dates: 2026-03-02, 2026-03-02T14:05:00Z (UTC → UK date), or the old
    "yyyy-MM-dd hh:mm:ss.fffffff" (local time: its date part)."""
    value = text.strip()
    if not value:
        return "The transaction date is missing"
    if len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return f"Date {value} is not a real date" if re.fullmatch(r"\d{4}-\d\d-\d\d", value) else _not_iso(value)
    if "T" in value:
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return _not_iso(value)
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        return business_date(moment)
    if len(value) > 10 and value[10] == " ":
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return _not_iso(value)
    return _not_iso(value)


def _not_iso(value: str) -> str:
    return f"Date {value[:40]} is not a date like 2026-03-31 or 2026-03-31T14:05:00Z"


class _Cached:
    """A parser that remembers its answer for each distinct string (up to CACHE_LIMIT)."""

    __slots__ = ("parse", "cache")

    def __init__(self, parse: Callable[[str], Any]):
        self.parse = parse
        self.cache: dict[str, Any] = {}

    def __call__(self, text: str):
        result = self.cache.get(text)
        if result is None:
            result = self.parse(text)
            if len(self.cache) < CACHE_LIMIT:
                self.cache[text] = result
        return result


# ---------------------------------------------------------------------------
# Duplicate lines (only for formats where each line has its own id)
# ---------------------------------------------------------------------------


class SeenIds:
    """Which line first had each id: open addressing over 64-bit hashes in arrays.

    About 24 bytes a line where a dict of strings would take over 100. Two different ids
    with the same 64-bit hash (about one chance in 10^7 in a million-line file) would be
    reported as a duplicate, never silently posted twice.
    """

    __slots__ = ("_keys", "_lines", "_mask", "_used")

    def __init__(self, size: int = 1 << 12):
        self._keys = array("q", bytes(8 * size))
        self._lines = array("l", bytes(array("l").itemsize * size))
        self._mask = size - 1
        self._used = 0

    def first_line(self, key: str, line: int) -> int | None:
        """The line that had `key` before, or None (and `line` is remembered for it)."""
        h = hash(key) or 1
        keys = self._keys
        mask = self._mask
        i = h & mask
        while True:
            k = keys[i]
            if k == 0:
                keys[i] = h
                self._lines[i] = line
                self._used += 1
                if self._used * 3 > mask * 2:
                    self._grow()
                return None
            if k == h:
                return self._lines[i]
            i = (i + 1) & mask

    def _grow(self) -> None:
        old_keys, old_lines = self._keys, self._lines
        size = (self._mask + 1) * 2
        self._keys = array("q", bytes(8 * size))
        self._lines = array("l", bytes(old_lines.itemsize * size))
        self._mask = size - 1
        keys, lines, mask = self._keys, self._lines, self._mask
        for index, k in enumerate(old_keys):
            if k:
                i = k & mask
                while keys[i]:
                    i = (i + 1) & mask
                keys[i] = k
                lines[i] = old_lines[index]


class SequenceNumbers:
    """allpay transaction numbers seen so far. They are at most 7 digits, so a bitmap of 10^7
    bits (1.25 MB) says at once whether a number came before, and two arrays (8 bytes a line)
    say on which line; anything else falls back to SeenIds."""

    __slots__ = ("_bits", "_numbers", "_lines", "_others", "_lookups")
    MAX_LOOKUPS = 1000  # finding the earlier line scans the arrays: only for the first duplicates

    def __init__(self):
        self._bits = bytearray(1_250_000)
        self._numbers = array("i")
        self._lines = array("i")
        self._others = SeenIds()
        self._lookups = 0

    def first_line(self, sequence: str, line: int) -> int | None:
        """The line that had `sequence` before (0 when known but not looked up), or None."""
        if not (sequence.isdigit() and sequence.isascii()):
            return self._others.first_line(sequence, line)
        n = int(sequence)
        byte = n >> 3
        bit = 1 << (n & 7)
        if self._bits[byte] & bit:
            self._lookups += 1
            if self._lookups > self.MAX_LOOKUPS:
                return 0
            return self._lines[self._numbers.index(n)]
        self._bits[byte] |= bit
        self._numbers.append(n)
        self._lines.append(line)
        return None


# ---------------------------------------------------------------------------
# Lines of text
# ---------------------------------------------------------------------------


def binary_stream(data) -> BinaryIO:
    """A binary file-like object from an upload, an open file, or bytes."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(data))
    data = getattr(data, "stream", data)  # werkzeug FileStorage
    if isinstance(data, io.TextIOBase):
        raise FileRejected("The file must be opened in binary mode")
    return data


def _decode_error(number: int, encoding: str) -> FileRejected:
    name = ENCODING_NAMES.get(encoding, encoding)
    hint = " Save it as “CSV UTF-8” and try again." if encoding != "cp1252" else ""
    return FileRejected(f"Line {number} is not {name} text, so the file cannot be read.{hint}", number)


CHUNK_BYTES = 1 << 20


def _line_blocks(data: BinaryIO, encoding: str, *, keep_ends: bool = False) -> Iterator[tuple[int, list[str | None]]]:
    """(number of the first line, lines) a block at a time: the file is read a megabyte at a
    time and decoded whole lines at once, which is several times faster than line by line.

    Lines split on LF; CRLF and LF may be mixed (a CR before the LF is dropped, or kept with
    the LF when `keep_ends`, for the csv module). A line longer than MAX_LINE_CHARS is read
    past, never held in memory, and given as None. Undecodable bytes → FileRejected naming
    the line.
    """
    decode = codecs.getdecoder("utf-8" if encoding == "utf-8-sig" else encoding)
    byte_limit = MAX_LINE_CHARS * (4 if encoding.startswith("utf-8") else 1) + 2
    read = data.read
    number = 0  # lines given so far
    pending = b""
    skipping = False  # inside an overlong line
    first = True
    while True:
        try:
            chunk = read(CHUNK_BYTES)
        except (OSError, ValueError) as exc:
            raise FileRejected("The file could not be read") from exc
        if not isinstance(chunk, (bytes, bytearray)):
            raise FileRejected("The file must be opened in binary mode")
        if first:
            first = False
            if chunk[:3] == b"\xef\xbb\xbf" and encoding.startswith("utf-8"):
                chunk = chunk[3:]
        if not chunk:
            break
        if skipping:
            end = chunk.find(b"\n")
            if end < 0:
                continue
            chunk = chunk[end + 1 :]
            skipping = False
            number += 1
            yield number, [None]
        buffer = pending + chunk if pending else chunk
        cut = buffer.rfind(b"\n")
        if cut < 0:
            if len(buffer) > byte_limit:
                skipping, pending = True, b""
            else:
                pending = buffer
            continue
        complete, pending = buffer[: cut + 1], buffer[cut + 1 :]
        yield number + 1, _decode_lines(complete, decode, number, encoding, keep_ends)
        number += complete.count(b"\n")
    if skipping:
        yield number + 1, [None]
    elif pending:
        lines = _decode_lines(pending + b"\n", decode, number, encoding, keep_ends)
        if keep_ends and lines[0] is not None:
            lines[0] = lines[0][:-1]  # the file's last line had no line break
        yield number + 1, lines


def _decode_lines(complete: bytes, decode, before: int, encoding: str, keep_ends: bool) -> list[str | None]:
    try:
        text = decode(complete)[0]
    except UnicodeDecodeError as exc:
        raise _decode_error(before + complete.count(b"\n", 0, exc.start) + 1, encoding) from None
    if keep_ends:
        lines: list[str | None] = [line + "\n" for line in text.split("\n")]
        lines.pop()
    else:
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        lines = text.split("\n")
        lines.pop()  # the text ends with a line break: nothing after it
    if max(map(len, lines)) > MAX_LINE_CHARS + 2:
        lines = [None if len(line) > MAX_LINE_CHARS + 2 else line for line in lines]
    return lines


def _lines(data: BinaryIO, encoding: str, *, keep_ends: bool = False) -> Iterator[tuple[int, str | None]]:
    """(line number, text) for each line: `_line_blocks` one line at a time."""
    for number, lines in _line_blocks(data, encoding, keep_ends=keep_ends):
        for line in lines:
            yield number, line
            number += 1


def _too_long(number: int) -> str:
    return f"Line {number} is longer than {MAX_LINE_CHARS:,} characters"


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def read_rows(template, data) -> Iterator[ImportRow | RowProblem]:
    """Stream the payments in `data` (binary) as the template's format describes them."""
    settings = read_settings(template)
    stream = binary_stream(data)
    if settings.kind == "allpay":
        return _read_allpay(settings, stream)
    if settings.kind == "dwp":
        return _read_dwp(settings, stream)
    if settings.kind == "localgov_csv":
        return _read_localgov(settings, stream)
    if settings.kind == "csv":
        return _read_csv_template(settings, stream)
    if settings.kind == "account_holders":
        raise FileRejected("This template is for account holders, not payments")
    raise FileRejected(f"There is no reader for files of type “{settings.kind}”")


# ---------------------------------------------------------------------------
# allpay fixed width (spec §1)
# ---------------------------------------------------------------------------

ALLPAY_MIN_LINE = 43


def _trailer_number(line: str, start: int, end: int, *, money: bool) -> int | None:
    candidates = [line[start:end].strip()]
    if ":" in line:
        candidates.append(line.split(":", 1)[1].strip())
    for text in candidates:
        text = text.replace(",", "").replace("£", "")
        if not text:
            continue
        if money:
            value = parse_pounds_text(text)
            if isinstance(value, int):
                return value
        elif text.isascii() and text.isdigit() and len(text) <= 12:
            return int(text)
    return None


def _read_allpay(settings: ReadSettings, stream: BinaryIO) -> Iterator[ImportRow | RowProblem]:
    encoding = settings.options.get("encoding") or "cp1252"
    fund_code = settings.default_fund_code
    method_code = settings.default_method_code
    check_duplicates = settings.options.get("duplicates", True)
    amounts = _Cached(parse_pounds_text)
    dates = _Cached(_strict_uk_date)
    amount_cache = amounts.cache
    date_cache = dates.cache
    seen = SequenceNumbers()
    bits = seen._bits
    append_number = seen._numbers.append
    append_line = seen._lines.append
    details = 0
    total = 0
    unreadable = 0
    first_unreadable = 0
    trailer_total: int | None = None
    trailer_count: int | None = None
    blank_line = 0
    any_line = False
    Row = ImportRow  # noqa: N806 - local alias: this loop runs a million times

    for block_start, block in _line_blocks(stream, encoding):
        number = block_start - 1
        for line in block:
            number += 1
            any_line = True
            if line is None:
                if blank_line:
                    raise FileRejected(_too_long(number) + ", in the trailer", number)
                details += 1
                unreadable += 1
                first_unreadable = first_unreadable or number
                yield RowProblem(number, _too_long(number) + ": an allpay line has 43", "")
                continue
            if not blank_line:
                if len(line) < ALLPAY_MIN_LINE and (len(line) < 2 or not line.strip()):
                    blank_line = number  # a line shorter than 2 characters ends the payments
                    continue
                if line[0] == "T" and line.startswith(("Total Amount", "Total Transactions")):
                    blank_line = number  # a trailer straight after the details, with no blank line
                else:
                    details += 1
                    if len(line) < ALLPAY_MIN_LINE:
                        unreadable += 1
                        first_unreadable = first_unreadable or number
                        yield _problem(
                            number,
                            f"The line is {len(line)} characters long: an allpay detail line has at least 43",
                            line,
                        )
                        continue
                    amount_text = line[23:32]
                    pence = amount_cache.get(amount_text)
                    if pence is None:
                        pence = amounts(amount_text)
                    if pence.__class__ is not int:
                        unreadable += 1
                        first_unreadable = first_unreadable or number
                        yield _problem(number, pence, line)
                        continue
                    total += pence
                    if pence == 0 or pence > MAX_AMOUNT_PENCE or pence < -MAX_AMOUNT_PENCE:
                        yield _problem(number, _amount_problem(pence), line)
                        continue
                    date_text = line[33:43]
                    day = date_cache.get(date_text)
                    if day is None:
                        day = dates(date_text)
                    if day.__class__ is not dt.date:
                        yield _problem(number, day, line)
                        continue
                    sequence = line[0:7].strip()
                    if line[7:11] == "BERN":
                        scheme = "BERN"
                        reference = line[11:23].strip()
                    else:
                        scheme = ""
                        reference = line[7:23].strip()
                    # No reference: the money was still received, so the line goes on (the import puts it
                    # into suspense, "no reference") rather than being left out of the books.
                    if check_duplicates and sequence:
                        # The bitmap test inline (SequenceNumbers.first_line does the rest): a million times.
                        if sequence.isdigit() and sequence.isascii():
                            n = int(sequence)
                            if bits[n >> 3] & (1 << (n & 7)):
                                first = seen.first_line(sequence, number)
                            else:
                                bits[n >> 3] |= 1 << (n & 7)
                                append_number(n)
                                append_line(number)
                                first = None
                        else:
                            first = seen.first_line(sequence, number)
                        if first is not None:
                            where = f"line {first}" if first else "an earlier line"
                            yield _problem(number, f"Same as {where} (allpay transaction {sequence})", line)
                            continue
                    channel = line[32]
                    yield Row(
                        number,
                        reference,
                        pence,
                        day,
                        fund_code,
                        method_code,
                        "",
                        "",
                        sequence,
                        {
                            "sequence": sequence,
                            "reference": reference,
                            "amount": amount_text.strip(),
                            "channel": channel,
                            "date": date_text,
                            "scheme": scheme,
                        },
                    )
                    continue
            # The trailer
            stripped = line.strip()
            if not stripped:
                continue
            if line.startswith("Total Amount"):
                trailer_total = _trailer_number(line, 34, 51, money=True)
                if trailer_total is None:
                    raise FileRejected(f"Line {number}: the trailer's total amount cannot be read", number)
            elif line.startswith("Total Transactions"):
                trailer_count = _trailer_number(line, 40, 57, money=False)
                if trailer_count is None:
                    raise FileRejected(f"Line {number}: the trailer's number of transactions cannot be read", number)
            else:
                raise FileRejected(
                    f"Line {number} is not part of the trailer (“Total Amount …” or “Total Transactions …”), "
                    f"but comes after the blank line that ends the payments on line {blank_line}",
                    number,
                )

    if not any_line:
        raise FileRejected("The file is empty")
    if trailer_total is None or trailer_count is None:
        missing = " and ".join(
            name
            for name, value in (("total amount", trailer_total), ("number of transactions", trailer_count))
            if value is None
        )
        raise FileRejected(
            f"The file has no trailer {missing}: it may have been cut short, or it is not an allpay file", None
        )
    if trailer_count != details:
        raise FileRejected(
            f"The trailer says there are {trailer_count:,} transactions, but the file has {details:,} payment lines"
        )
    if unreadable:
        raise FileRejected(
            f"{unreadable:,} payment line{'s' if unreadable != 1 else ''} (the first is line {first_unreadable}) "
            "could not be read, so the file's total cannot be checked against its trailer",
            first_unreadable,
        )
    if trailer_total != total:
        raise FileRejected(
            f"The trailer says the total is {_pounds(trailer_total)}, but the payment lines add up to {_pounds(total)}"
        )


def _pounds(pence: int) -> str:
    sign = "-" if pence < 0 else ""
    whole, part = divmod(abs(pence), 100)
    return f"{sign}£{whole:,}.{part:02d}"


# ---------------------------------------------------------------------------
# CSV shared
# ---------------------------------------------------------------------------


def _csv_records(stream: BinaryIO, encoding: str, delimiter: str = ",") -> Iterator[tuple[int, list[str] | None, str]]:
    """(first line number, cells, raw text) for each CSV record; cells None for an overlong line.
    Quoting, quoted line breaks and mixed CRLF/LF are the csv module's job."""
    current: dict[str, Any] = {"first": 1, "raw": "", "number": 0}

    def text_lines() -> Iterator[str]:
        for number, text in _lines(stream, encoding, keep_ends=True):
            if text is None:
                raise FileRejected(_too_long(number) + ": this does not look like a CSV file", number)
            current["number"] = number
            if len(current["raw"]) < MAX_TEXT_IN_PROBLEM:
                current["raw"] += text
            yield text

    reader = csv.reader(text_lines(), delimiter=delimiter, strict=False)
    while True:
        current["first"] = current["number"] + 1
        current["raw"] = ""
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileRejected(
                f"Line {current['first']} cannot be read as CSV ({exc}). Check it is a CSV file", current["first"]
            ) from None
        yield current["first"], cells, current["raw"].rstrip("\r\n")


def _squash(name: str) -> str:
    return " ".join((name or "").replace("\ufeff", "").split()).casefold()


def _column_index(spec: str, header: list[str] | None, header_line: int) -> int:
    """A 1-based column number or a header name → 0-based index, or FileRejected."""
    text = str(spec).strip()
    if text.isascii() and text.isdigit():
        if int(text) < 1:
            raise FileRejected("Column numbers start at 1: check the template's columns")
        return int(text) - 1
    if header is None:
        raise FileRejected(f"The template finds column “{text}” by name, but the file has no header row")
    wanted = _squash(text)
    for index, name in enumerate(header):
        if _squash(name) == wanted:
            return index
    raise FileRejected(f"The header row (line {header_line}) has no column called “{text}”", header_line)


def _is_blank(cells: list[str]) -> bool:
    for cell in cells:
        if cell.strip():
            return False
    return True


# ---------------------------------------------------------------------------
# LocalGov IMS 15-column CSV (spec §3)
# ---------------------------------------------------------------------------


def _read_localgov(settings: ReadSettings, stream: BinaryIO) -> Iterator[ImportRow | RowProblem]:
    encoding = settings.options.get("encoding") or "utf-8-sig"
    records = _csv_records(stream, encoding)
    header = None
    header_line = 0
    for number, cells, _raw in records:
        if cells and not _is_blank(cells):
            header, header_line = cells, number
            break
    if header is None:
        raise FileRejected("The file is empty")
    names = {_squash(name): index for index, name in enumerate(header)}
    if _squash(LOCALGOV_COLUMNS[0]) not in names and _squash("AccountReference") not in names:
        raise FileRejected(
            f"Line {header_line} is not the header row: the file must start with the column names "
            f"{', '.join(LOCALGOV_COLUMNS)}",
            header_line,
        )
    missing = [name for name in _LOCALGOV_REQUIRED if _squash(name) not in names]
    if missing:
        raise FileRejected(f"The header row (line {header_line}) has no {', '.join(missing)} column", header_line)
    columns = [(field, names[_squash(col)]) for col, field in _LOCALGOV_FIELD_NAMES.items() if _squash(col) in names]
    width = max(index for _, index in columns) + 1
    amounts = _Cached(parse_pounds_text)
    dates = _Cached(_iso_date_or_timestamp)
    seen = SeenIds()
    default_method = settings.default_method_code
    default_fund = settings.default_fund_code

    for number, cells, raw in records:
        if cells is None or _is_blank(cells):
            continue
        if len(cells) < width:
            yield _problem(number, f"The line has {len(cells)} values: this file needs at least {width}", raw)
            continue
        values = {name: cells[index].strip() for name, index in columns}
        row = _payment_row(
            number,
            raw,
            values,
            amounts(values["amount"]),
            dates(values.get("transaction_date", "")),
            fund=values.get("fund", "").upper() or default_fund,
            method=values.get("method", "").upper() or default_method,
            narrative=values.get("narrative", ""),
            payer_name="",
            line_id=values.get("transaction_reference", ""),
            seen=seen,
        )
        yield row


def _payment_row(
    number: int,
    raw: str,
    values: dict[str, str],
    pence: int | str,
    day: dt.date | str,
    *,
    fund: str,
    method: str,
    narrative: str,
    payer_name: str,
    line_id: str,
    seen: SeenIds | None,
) -> ImportRow | RowProblem:
    if pence.__class__ is not int:
        return _problem(number, pence, raw)
    problem = _amount_problem(pence)
    if problem:
        return _problem(number, problem, raw)
    if day.__class__ is not dt.date:
        return _problem(number, day, raw)
    reference = values.get("reference", "")
    # No reference: money received all the same; the import puts it into suspense.
    if len(reference) > MAX_REFERENCE_LENGTH:
        return _problem(number, f"The account reference is longer than {MAX_REFERENCE_LENGTH} characters", raw)
    if seen is not None and line_id:
        first = seen.first_line(line_id, number)
        if first is not None:
            return _problem(number, f"Same as line {first} (line id {line_id[:40]})", raw)
    return ImportRow(
        number,
        reference,
        pence,
        day,
        fund,
        method,
        payer_name[:MAX_PAYER_NAME_LENGTH],
        narrative[:MAX_NARRATIVE_LENGTH],
        line_id,
        values,
    )


# ---------------------------------------------------------------------------
# CSV in a layout the administrator describes
# ---------------------------------------------------------------------------


def csv_columns(options: dict) -> dict[str, str]:
    """field name → column (number or header name) from a CSV template's options."""
    columns = {k: str(v) for k, v in (options.get("columns") or {}).items() if str(v).strip()}
    return columns


def _negative_signs(options: dict) -> frozenset[str]:
    text = options.get("negative_values", "-")
    values = text if isinstance(text, list) else str(text).split(",")
    return frozenset(v.strip().upper() for v in values if v.strip())


def _read_csv_template(settings: ReadSettings, stream: BinaryIO) -> Iterator[ImportRow | RowProblem]:
    options = settings.options
    yield from _read_mapped_csv(
        settings,
        stream,
        columns=csv_columns(options),
        delimiter=DELIMITERS.get(options.get("delimiter", "comma"), (",", ""))[0],
        header_rows=_int_option(options, "header_rows", 1),
        encoding=options.get("encoding") or "utf-8-sig",
        amount_parser=_amount_parser(options),
        date_parser=_date_parser(options.get("date_format", "dd/mm/yyyy")),
        negative_signs=_negative_signs(options),
        allow_negative=bool(options.get("allow_negative")) or "sign" in csv_columns(options),
        clean_reference=lambda text: text,
        narrative_default="",
    )


def _int_option(options: dict, name: str, default: int) -> int:
    try:
        return max(0, min(int(options.get(name, default)), 20))
    except (TypeError, ValueError):
        return default


def _amount_parser(options: dict) -> Callable[[str], int | str]:
    if options.get("amount_unit") == "pence":
        return _Cached(parse_pence_text)
    return _Cached(lambda text: parse_pounds_text(text, allow_symbols=True))


def _date_parser(name: str) -> Callable[[str], dt.date | str]:
    strptime_format, label = DATE_FORMATS.get(name, DATE_FORMATS["dd/mm/yyyy"])
    return _Cached(_formatted_date(strptime_format, label.split(",")[0]))


def _read_mapped_csv(
    settings: ReadSettings,
    stream: BinaryIO,
    *,
    columns: dict[str, str],
    delimiter: str,
    header_rows: int,
    encoding: str,
    amount_parser: Callable[[str], int | str],
    date_parser: Callable[[str], dt.date | str],
    negative_signs: frozenset[str],
    allow_negative: bool,
    clean_reference: Callable[[str], str],
    narrative_default: str,
) -> Iterator[ImportRow | RowProblem]:
    records = _csv_records(stream, encoding, delimiter)
    header: list[str] | None = None
    header_line = 0
    seen_any = False
    for _ in range(header_rows):
        for number, cells, _raw in records:
            seen_any = True
            header, header_line = cells, number
            break
        else:
            break
    if header_rows and header is None:
        raise FileRejected("The file is empty" if not seen_any else "The file has no header row")
    indexes = {name: _column_index(spec, header, header_line) for name, spec in columns.items()}
    for name in REQUIRED_CSV_FIELDS:
        if name not in indexes:
            raise FileRejected(f"The template does not say which column holds the {name.replace('_', ' ')}")
    width = max(indexes.values()) + 1
    seen = SeenIds() if "line_id" in indexes else None
    fund_default = settings.default_fund_code
    method_default = settings.default_method_code
    items = list(indexes.items())
    rows = 0

    for number, cells, raw in records:
        if cells is None or _is_blank(cells):
            continue
        rows += 1
        if len(cells) < width:
            plural = "s" if len(cells) != 1 else ""
            yield _problem(number, f"The line has {len(cells)} value{plural}: the template needs {width}", raw)
            continue
        values = {name: cells[index].strip() for name, index in items}
        values["reference"] = clean_reference(values["reference"])
        pence = amount_parser(values["amount"])
        if pence.__class__ is int:
            sign = values.get("sign", "")
            if sign and sign.upper() in negative_signs:
                pence = -abs(pence)
            elif pence < 0 and not allow_negative:
                pence = f"Amount {values['amount']} is negative, and this template does not allow negative amounts"
        yield _payment_row(
            number,
            raw,
            values,
            pence,
            date_parser(values["date"]),
            fund=values.get("fund", "").upper() or fund_default,
            method=values.get("method", "").upper() or method_default,
            narrative=values.get("narrative", "") or narrative_default,
            payer_name=values.get("payer_name", ""),
            line_id=values.get("line_id", ""),
            seen=seen,
        )
    if not rows and not seen_any and not header_rows:
        raise FileRejected("The file is empty")


# ---------------------------------------------------------------------------
# DWP council tax deductions (spec §2): .xlsx or CSV
# ---------------------------------------------------------------------------

_ZIP_SIGNATURE = b"PK\x03\x04"


def _read_dwp(settings: ReadSettings, stream: BinaryIO) -> Iterator[ImportRow | RowProblem]:
    options = settings.options
    columns = {**DWP_DEFAULT_COLUMNS, **csv_columns(options)}
    try:
        start = stream.read(4)
    except (OSError, ValueError) as exc:
        raise FileRejected("The file could not be read") from exc
    if not start:
        raise FileRejected("The file is empty")
    rest = _Prefixed(start, stream)
    common = {
        "amount_parser": _Cached(parse_pence_text),
        "date_parser": _Cached(_lenient_date),
        "negative_signs": _negative_signs(options),
        "allow_negative": True,
        "clean_reference": lambda text: "".join(text.split()),
        "narrative_default": options.get("narrative", "DWP"),
    }
    if start == _ZIP_SIGNATURE:
        yield from _read_mapped_xlsx(settings, rest, columns=columns, **common)
    else:
        yield from _read_mapped_csv(
            settings,
            rest,
            columns=columns,
            delimiter=",",
            header_rows=1,
            encoding=options.get("encoding") or "utf-8-sig",
            **common,
        )


class _Prefixed(io.RawIOBase):
    """A stream with some bytes already read put back in front (for sniffing the format)."""

    def __init__(self, prefix: bytes, stream: BinaryIO):
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        chunk = self._stream.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def readline(self, size: int | None = -1) -> bytes:
        if self._prefix:
            if b"\n" in self._prefix:
                end = self._prefix.index(b"\n") + 1
                if size is not None and size >= 0:
                    end = min(end, size)
                line, self._prefix = self._prefix[:end], self._prefix[end:]
                return line
            head, self._prefix = self._prefix, b""
            if size is not None and size >= 0:
                if size <= len(head):
                    self._prefix = head[size:]
                    return head[:size]
                return head + self._stream.readline(size - len(head))
            return head + self._stream.readline()
        return self._stream.readline(size if size is not None else -1)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Spreadsheets keep numbers as binary floating point: repr() is the shortest text that reads
        # back as the same number (12.3, not 12.300000000000001), and amounts are then read from
        # that text with Decimal, never computed as floats.
        if not math.isfinite(value):
            return str(value)
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _read_mapped_xlsx(
    settings: ReadSettings,
    stream,
    *,
    columns: dict[str, str],
    amount_parser,
    date_parser,
    negative_signs: frozenset[str],
    allow_negative: bool,
    clean_reference,
    narrative_default: str,
) -> Iterator[ImportRow | RowProblem]:
    import tempfile

    try:
        from openpyxl import load_workbook
    except ImportError as exc:  # pragma: no cover - openpyxl is a runtime requirement
        raise FileRejected("Excel workbooks cannot be read here: save the sheet as CSV") from exc

    # openpyxl needs to seek: keep the upload in memory up to 10 MB, then on disk.
    spooled = tempfile.SpooledTemporaryFile(max_size=10 * 1024 * 1024)  # noqa: SIM115 - closed below
    workbook = None
    try:
        try:
            while chunk := stream.read(1 << 20):
                spooled.write(chunk)
            spooled.seek(0)
            workbook = load_workbook(spooled, read_only=True, data_only=True)
            if not workbook.worksheets:
                raise FileRejected("The workbook has no worksheets")
            rows = workbook.worksheets[0].iter_rows(values_only=True)
            header_cells = next(rows, None)
        except FileRejected:
            raise
        except Exception as exc:  # openpyxl raises many kinds of error for a damaged file
            raise FileRejected("The file could not be read as an Excel workbook (.xlsx)") from exc
        if header_cells is None:
            raise FileRejected("The workbook's first sheet is empty")
        header = [_cell_text(c) for c in header_cells]
        indexes = {name: _column_index(spec, header, 1) for name, spec in columns.items()}
        seen = SeenIds() if "line_id" in indexes else None
        number = 1
        while True:
            try:
                cells = next(rows, None)
            except Exception as exc:
                raise FileRejected(
                    f"Row {number + 1} of the workbook could not be read: the file may be damaged", number + 1
                ) from exc
            if cells is None:
                break
            number += 1
            texts = [_cell_text(c) for c in cells[:200]]
            if _is_blank(texts):
                continue
            raw = ",".join(texts)[:MAX_TEXT_IN_PROBLEM]
            if any(len(t) > MAX_LINE_CHARS for t in texts):
                yield _problem(number, f"A cell is longer than {MAX_LINE_CHARS:,} characters", raw)
                continue
            values = {name: (texts[index].strip() if index < len(texts) else "") for name, index in indexes.items()}
            values["reference"] = clean_reference(values.get("reference", ""))
            pence = amount_parser(values.get("amount", ""))
            if pence.__class__ is int and values.get("sign", "").upper() in negative_signs:
                pence = -abs(pence)
            yield _payment_row(
                number,
                raw,
                values,
                pence,
                date_parser(values.get("date", "")),
                fund=values.get("fund", "").upper() or settings.default_fund_code,
                method=values.get("method", "").upper() or settings.default_method_code,
                narrative=values.get("narrative", "") or narrative_default,
                payer_name=values.get("payer_name", ""),
                line_id=values.get("line_id", ""),
                seen=seen,
            )
    finally:
        if workbook is not None:
            try:
                workbook.close()
            except Exception:  # noqa: S110 - closing a damaged workbook must not hide the real outcome
                pass
        spooled.close()


# ---------------------------------------------------------------------------
# Account holders (CSV)
# ---------------------------------------------------------------------------


def read_account_holders(template, data) -> Iterator[AccountHolderRow | RowProblem]:
    """Account holder records from a back-office CSV extract (columns found by name, as
    app/domain/references/accounts.py documents). Raises FileRejected when the file cannot be used."""
    from app.domain.money import parse_pounds
    from app.domain.references.accounts import (
        _ADDRESS_PARTS,
        COLUMN_NAMES,
        MAX_ADDRESS_LENGTH,
        MAX_NAME_LENGTH,
        MAX_STOP_MESSAGE_LENGTH,
        STOP_CHANNELS,
        _column_key,
    )

    settings = read_settings(template)
    encoding = settings.options.get("encoding") or "utf-8-sig"
    records = _csv_records(binary_stream(data), encoding)
    header = None
    header_line = 0
    for number, cells, _raw in records:
        if cells and not _is_blank(cells):
            header, header_line = cells, number
            break
    if header is None:
        raise FileRejected("The file is empty")
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        key = COLUMN_NAMES.get(_column_key(name))
        if key is None:
            continue
        if key in columns:
            raise FileRejected(f"The header row has two “{key.replace('_', ' ')}” columns", header_line)
        columns[key] = index
    if "reference" not in columns:
        raise FileRejected(f"The header row (line {header_line}) needs a “reference” column", header_line)
    if "fund" not in columns and not settings.default_fund_code:
        raise FileRejected("The file has no “fund” column and the template has no default fund")
    if "address" in columns and any(part in columns for part in _ADDRESS_PARTS):
        raise FileRejected("The file has both an “address” column and address line columns: use one or the other")

    def cell(row: list[str], name: str) -> str:
        index = columns.get(name)
        return row[index].strip() if index is not None and index < len(row) else ""

    for number, cells, raw in records:
        if cells is None or _is_blank(cells):
            continue
        fund_code = cell(cells, "fund").upper() or settings.default_fund_code
        reference = "".join(cell(cells, "reference").split()).upper()
        if not fund_code:
            yield _problem(number, "The fund code is missing", raw)
            continue
        if not reference:
            yield _problem(number, "The reference is missing", raw)
            continue
        if len(reference) > MAX_REFERENCE_LENGTH:
            yield _problem(number, f"The reference must be {MAX_REFERENCE_LENGTH} characters or fewer", raw)
            continue
        name = " ".join(cell(cells, "name").split())
        if len(name) > MAX_NAME_LENGTH:
            yield _problem(number, f"The name must be {MAX_NAME_LENGTH} characters or fewer", raw)
            continue
        if "address" in columns:
            address = cell(cells, "address")
        else:
            address = ", ".join(p for p in (cell(cells, part) for part in _ADDRESS_PARTS) if p)
        if len(address) > MAX_ADDRESS_LENGTH:
            yield _problem(number, f"The address must be {MAX_ADDRESS_LENGTH} characters or fewer", raw)
            continue
        balance_text = cell(cells, "balance")
        balance = None
        if balance_text:
            try:
                balance = parse_pounds(balance_text, allow_negative=True)
            except DomainError:
                yield _problem(number, f"The balance {balance_text[:40]} is not an amount of money", raw)
                continue
        stop_message = cell(cells, "on_stop_message")
        if len(stop_message) > MAX_STOP_MESSAGE_LENGTH:
            yield _problem(number, f"The stop message must be {MAX_STOP_MESSAGE_LENGTH} characters or fewer", raw)
            continue
        channels = cell(cells, "stop_channels").lower() or "all"
        if channels not in STOP_CHANNELS:
            yield _problem(number, f"Stop channels must be “all” or “public”, not “{channels[:20]}”", raw)
            continue
        yield AccountHolderRow(number, fund_code, reference, name, address, balance, stop_message, channels)


def import_account_holders(rows, actor, *, file_name: str = "", batch_size: int = 1000, ip_address: str = ""):
    """Upsert account holders from `read_account_holders` into the account list; one audit event.

    Returns app.domain.references.LoadReport (rows, inserted, updated, unchanged, error_count,
    errors). RowProblems become report errors; a FileRejected raised while reading stops the
    load (rows already read are kept, as load_account_holders_csv does) and is re-raised.
    """
    from app.db import database
    from app.domain import audit
    from app.domain.references.accounts import LoadReport, _Loader
    from app.domain.references.rules import bump_version

    report = LoadReport()
    loader = _Loader(None, report, batch_size)
    rejected: FileRejected | None = None
    try:
        for row in rows:
            if isinstance(row, RowProblem):
                report.rows += 1
                report.add_error(row.line_number, row.message)
                continue
            report.rows += 1
            fund = loader.fund_for(row.fund_code)
            if fund is None:
                report.add_error(row.line_number, f"There is no fund with the code {row.fund_code}")
                continue
            reference = loader.rule_for(fund).normalise(row.reference)
            if not reference:
                report.add_error(row.line_number, "The reference is missing")
                continue
            loader.add(
                row.line_number,
                fund,
                reference,
                {
                    "name": row.name,
                    "address": row.address,
                    "balance_pence": row.balance_pence,
                    "on_stop_message": row.on_stop_message,
                    "stop_channels": row.stop_channels,
                },
            )
    except FileRejected as exc:
        rejected = exc
        report.fatal = exc.message
    loader.flush()
    report.funds = sorted({f.code for f in loader.funds.values() if f is not None})
    with database.atomic():
        if loader.inserted_funds:
            bump_version(loader.inserted_funds)
        source = f" from {file_name}" if file_name else ""
        audit.record(
            "account_holders.import",
            actor=actor,
            object_type="account_holders",
            object_id="",
            summary=f"Imported account holders{source}: {report.summary()}",
            after={
                "file_name": file_name,
                "funds": report.funds,
                "rows": report.rows,
                "inserted": report.inserted,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "errors": report.error_count,
                "fatal": report.fatal,
            },
            ip_address=ip_address,
        )
    if rejected is not None:
        raise rejected
    return report


# ---------------------------------------------------------------------------
# Helpers for the "try it" pages
# ---------------------------------------------------------------------------


def read_sample(template, text: str, *, limit: int = 50) -> list[ImportRow | RowProblem]:
    """Rows from pasted sample text (at most `limit`), for trying templates and rules.
    A problem with the whole sample comes back as one RowProblem on line 0."""
    settings = read_settings(template)
    if settings.kind == "allpay":
        # A pasted sample has no trailer: check the lines, not the totals.
        settings = ReadSettings("allpay", {**settings.options, "sample": True}, *_codes(settings))
        return _sample_allpay(settings, text, limit)
    encoding = settings.options.get("encoding") or "utf-8-sig"
    data = text.encode("utf-8" if encoding.startswith("utf-8") else "cp1252", errors="replace")
    out: list[ImportRow | RowProblem] = []
    try:
        for item in read_rows(settings, io.BytesIO(data)):
            out.append(item)
            if len(out) >= limit:
                break
    except FileRejected as exc:
        out.append(RowProblem(exc.line_number or 0, exc.message, ""))
    return out


def _codes(settings: ReadSettings) -> tuple[str, str]:
    return settings.default_fund_code, settings.default_method_code


def _sample_allpay(settings: ReadSettings, text: str, limit: int) -> list[ImportRow | RowProblem]:
    lines = [line for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Total Amount", "Total Transactions"))][:limit]
    total = 0
    for line in lines:
        value = parse_pounds_text(line[23:32]) if len(line) >= ALLPAY_MIN_LINE else 0
        total += value if isinstance(value, int) else 0
    trailer = (
        "\n\n" + f"{'Total Amount Updated onto System:':<34}{_plain_pounds(total):>17}\n"
        f"{'Total Transactions updated onto System:':<40}{len(lines):>17}\n"
    )
    data = ("\n".join(lines) + trailer).encode("cp1252", errors="replace")
    out: list[ImportRow | RowProblem] = []
    try:
        for item in _read_allpay(settings, io.BytesIO(data)):
            out.append(item)
    except FileRejected as exc:
        if "could not be read" not in exc.message:
            out.append(RowProblem(exc.line_number or 0, exc.message, ""))
    return out


def _plain_pounds(pence: int) -> str:
    sign = "-" if pence < 0 else ""
    whole, part = divmod(abs(pence), 100)
    return f"{sign}{whole}.{part:02d}"


__all__ = [
    "AccountHolderRow",
    "FileRejected",
    "ImportRow",
    "RowProblem",
    "import_account_holders",
    "read_account_holders",
    "read_rows",
    "read_sample",
]
