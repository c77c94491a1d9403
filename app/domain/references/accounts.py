"""Account holders: the accounts a back-office system knows, loaded from its CSV extract.

The extract is streamed (a council can have hundreds of thousands of accounts) and
upserted in batches on (fund, reference): a reference seen before is updated, a new one
inserted, an identical one left alone. Rows that cannot be used are reported with their
line numbers and skipped; the rest still load. Each load is one audit event with counts.

CSV layout (UTF-8, with or without a byte order mark; a header row; columns found by
name, in any order, case and spaces ignored; other columns are ignored and reported):

| Column            | Required | Meaning                                                      |
|-------------------|----------|--------------------------------------------------------------|
| fund              | when the load is not for one fund | fund code, e.g. CTAX                |
| reference         | yes      | account reference; normalised like every reference            |
| name              | no       | account holder's name                                         |
| address           | no       | one column, or address_line_1 … address_line_5 and postcode   |
| balance           | no       | amount owed in pounds (“£1,234.50”, “-12.00” when in credit); blank = not known |
| on_stop_message   | no       | when not blank the account is on stop and this is the message |
| stop_channels     | no       | “all” (default) or “public” (staff can still take payments)   |

An account on stop refuses payment with its message (rules.validate_reference); a senior
finance officer can override it for one payment with `override_stop`, which is audited.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field

from peewee import BigIntegerField, CharField, DateTimeField, ForeignKeyField, TextField

from app.db import BaseModel, database, utcnow
from app.domain import audit
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.money import parse_pounds
from app.domain.references.rules import MAX_REFERENCE_LENGTH, bump_version, compiled_rule

MAX_NAME_LENGTH = 200
MAX_ADDRESS_LENGTH = 500
MAX_STOP_MESSAGE_LENGTH = 500
MAX_REPORTED_ERRORS = 1000
MAX_REPORTED_WARNINGS = 100
STOP_CHANNELS = {"all": "Every channel", "public": "Online payments only"}

COLUMN_NAMES: dict[str, str] = {
    "fund": "fund",
    "fundcode": "fund",
    "reference": "reference",
    "accountreference": "reference",
    "accountnumber": "reference",
    "account": "reference",
    "name": "name",
    "accountname": "name",
    "accountholder": "name",
    "address": "address",
    "addressline1": "address_line_1",
    "addressline2": "address_line_2",
    "addressline3": "address_line_3",
    "addressline4": "address_line_4",
    "addressline5": "address_line_5",
    "postcode": "postcode",
    "balance": "balance",
    "balanceowed": "balance",
    "outstandingbalance": "balance",
    "onstopmessage": "on_stop_message",
    "stopmessage": "on_stop_message",
    "onstop": "on_stop_message",
    "stopchannels": "stop_channels",
}
_ADDRESS_PARTS = ("address_line_1", "address_line_2", "address_line_3", "address_line_4", "address_line_5", "postcode")
_VALUE_FIELDS = ("name", "address", "balance_pence", "on_stop_message", "stop_channels")


class AccountHolder(BaseModel):
    fund = ForeignKeyField(Fund, backref="account_holders", on_delete="RESTRICT")
    reference = CharField(max_length=MAX_REFERENCE_LENGTH)
    name = CharField(max_length=MAX_NAME_LENGTH, default="")
    address = TextField(default="")
    balance_pence = BigIntegerField(null=True)  # owed; negative when in credit; None when not known
    on_stop_message = TextField(default="")  # not blank: the account is on stop
    stop_channels = CharField(max_length=10, default="all")
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("fund", "reference"), True),)

    @property
    def on_stop(self) -> bool:
        return bool(self.on_stop_message)


@dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"Line {self.line}: {self.message}"


@dataclass
class LoadReport:
    rows: int = 0  # data rows read (blank lines are not counted)
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)  # the first MAX_REPORTED_ERRORS
    format_warning_count: int = 0  # loaded, but the reference fails the fund's formats
    format_warning_lines: list[int] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    funds: list[str] = field(default_factory=list)  # codes of the funds loaded into
    fatal: str = ""  # why the load stopped part way (rows before it were loaded)

    @property
    def loaded(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def add_error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(line, message))

    def summary(self) -> str:
        parts = [f"{self.inserted:,} added", f"{self.updated:,} changed", f"{self.unchanged:,} unchanged"]
        if self.error_count:
            parts.append(f"{self.error_count:,} row{'s' if self.error_count != 1 else ''} with errors")
        text = ", ".join(parts)
        if self.fatal:
            text += f". Stopped: {self.fatal}"
        return text


def _column_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", (name or "").strip().lstrip("\ufeff").lower())


def _text_stream(file_obj):
    """A text stream over an upload, a binary file or a text file; UTF-8, BOM or not.
    Returns (stream, wrapper to detach afterwards so the caller's file stays open, or None)."""
    file_obj = getattr(file_obj, "stream", file_obj)  # werkzeug FileStorage
    if isinstance(file_obj, io.TextIOBase):
        return file_obj, None
    try:
        wrapper = io.TextIOWrapper(file_obj, encoding="utf-8-sig", newline="")
    except (AttributeError, TypeError):
        return codecs.getreader("utf-8-sig")(file_obj), None
    return wrapper, wrapper


class _Loader:
    def __init__(self, fund: Fund | None, report: LoadReport, batch_size: int):
        self.fund = fund
        self.report = report
        self.batch_size = batch_size
        self.batch: dict[tuple[int, str], dict] = {}
        self.seen: dict[tuple[int, str], int] = {}
        self.funds: dict[str, Fund | None] = {}
        self.rules: dict[int, object] = {}
        self.inserted_funds: set[int] = set()
        self.today = None

    def fund_for(self, code: str) -> Fund | None:
        if code not in self.funds:
            self.funds[code] = Fund.get_or_none(Fund.code == code)
        return self.funds[code]

    def rule_for(self, fund: Fund):
        rule = self.rules.get(fund.id)
        if rule is None:
            rule = self.rules[fund.id] = compiled_rule(fund)
        return rule

    def add(self, line: int, fund: Fund, reference: str, values: dict) -> None:
        key = (fund.id, reference)
        first = self.seen.get(key)
        if first is not None:
            self.report.add_error(line, f"The reference {reference} is already on line {first}: this line was skipped")
            return
        self.seen[key] = line
        rule = self.rule_for(fund)
        if rule.formats:
            from app.domain.references.rules import _uk_today

            if rule.matching_format(reference, self.today or _uk_today(), "staff") is None:
                self.report.format_warning_count += 1
                if len(self.report.format_warning_lines) < MAX_REPORTED_WARNINGS:
                    self.report.format_warning_lines.append(line)
        self.batch[key] = {"fund": fund.id, "reference": reference, **values}
        if len(self.batch) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        rows = self.batch
        self.batch = {}
        existing: dict[tuple[int, str], tuple] = {}
        by_fund: dict[int, list[str]] = {}
        for fund_id, reference in rows:
            by_fund.setdefault(fund_id, []).append(reference)
        for fund_id, references in by_fund.items():
            query = AccountHolder.select(
                AccountHolder.reference, *[getattr(AccountHolder, name) for name in _VALUE_FIELDS]
            ).where((AccountHolder.fund == fund_id) & (AccountHolder.reference.in_(references)))
            for row in query.tuples():
                existing[(fund_id, row[0])] = tuple(row[1:])
        now = utcnow()
        to_write = []
        for key, row in rows.items():
            current = existing.get(key)
            if current is None:
                self.report.inserted += 1
                self.inserted_funds.add(key[0])
            elif current == tuple(row[name] for name in _VALUE_FIELDS):
                self.report.unchanged += 1
                continue
            else:
                self.report.updated += 1
            to_write.append({**row, "updated_at": now})
        if not to_write:
            return
        with database.atomic():
            for start in range(0, len(to_write), 500):
                (
                    AccountHolder.insert_many(to_write[start : start + 500])
                    .on_conflict(
                        conflict_target=[AccountHolder.fund, AccountHolder.reference],
                        preserve=[getattr(AccountHolder, name) for name in (*_VALUE_FIELDS, "updated_at")],
                    )
                    .execute()
                )


def _cell(row: list[str], index: int | None) -> str:
    if index is None or index >= len(row):
        return ""
    return row[index].strip()


def load_account_holders_csv(
    fund: Fund | None,
    file_obj,
    actor,
    *,
    file_name: str = "",
    batch_size: int = 1000,
    ip_address: str = "",
) -> LoadReport:
    """Stream a back-office CSV extract into the account list and report what happened.

    `fund` None means the file says the fund on each row (a "fund" column). Raises
    DomainError only when the file cannot be used at all (empty, no reference column);
    otherwise bad rows are reported in `LoadReport.errors` and the rest are loaded.
    """
    text, wrapper = _text_stream(file_obj)
    try:
        return _load(fund, text, actor, file_name=file_name, batch_size=batch_size, ip_address=ip_address)
    finally:
        if wrapper is not None:
            wrapper.detach()  # closing the wrapper would close the caller's file


def _load(fund: Fund | None, text, actor, *, file_name: str, batch_size: int, ip_address: str) -> LoadReport:
    report = LoadReport()
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise DomainError("The file is empty", "file") from None
    except UnicodeDecodeError:
        raise DomainError("The file must be saved as UTF-8 text (“CSV UTF-8” in Excel)", "file") from None
    except csv.Error as exc:
        raise DomainError(f"The first line of the file could not be read as CSV: {exc}", "file") from None

    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        key = COLUMN_NAMES.get(_column_key(name))
        if key is None:
            if name.strip():
                report.ignored_columns.append(name.strip().lstrip("\ufeff"))
            continue
        if key in columns:
            raise DomainError(f"The file has two “{key.replace('_', ' ')}” columns", "file")
        columns[key] = index
    if "reference" not in columns:
        raise DomainError("The file needs a “reference” column in its header row", "file")
    if fund is None and "fund" not in columns:
        raise DomainError("Choose a fund, or load a file with a “fund” column", "fund")
    if "address" in columns and any(part in columns for part in _ADDRESS_PARTS):
        raise DomainError(
            "The file has both an “address” column and address line columns: use one or the other", "file"
        )

    loader = _Loader(fund, report, batch_size)
    width = len(header)
    line = reader.line_num
    try:
        for row in reader:
            start, line = line + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            report.rows += 1
            if len(row) != width and not (len(row) > width and not any(c.strip() for c in row[width:])):
                report.add_error(start, f"This line has {len(row)} values but the header row has {width}")
                continue
            _load_row(loader, start, row, columns)
        loader.flush()
    except UnicodeDecodeError:
        # Text is decoded a block at a time, so the bad bytes are somewhere after this line.
        report.fatal = (
            f"the file is not UTF-8 text after line {line}: save it as “CSV UTF-8” and load it again. "
            f"Lines up to {line} were loaded"
        )
    except csv.Error as exc:
        report.fatal = f"line {line + 1} could not be read as CSV ({exc}). Lines up to {line} were loaded"
    if report.fatal:
        loader.flush()  # the rows read before the problem were good

    report.funds = sorted({f.code for f in loader.funds.values() if f is not None} | ({fund.code} if fund else set()))
    with database.atomic():
        if loader.inserted_funds:
            bump_version(loader.inserted_funds)  # compiled rules learn the fund now has an account list
        where = f"{fund.code} {fund.name}" if fund else ", ".join(report.funds) or "no fund"
        source = f" from {file_name}" if file_name else ""
        audit.record(
            "account_holders.load",
            actor=actor,
            object_type="fund" if fund else "account_holders",
            object_id=fund.id if fund else "",
            summary=f"Loaded account holders{source} into {where}: {report.summary()}",
            after={
                "file_name": file_name,
                "funds": report.funds,
                "rows": report.rows,
                "inserted": report.inserted,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "errors": report.error_count,
                "format_warnings": report.format_warning_count,
                "fatal": report.fatal,
            },
            ip_address=ip_address,
        )
    return report


def _load_row(loader: _Loader, line: int, row: list[str], columns: dict[str, int]) -> None:
    report = loader.report
    fund = loader.fund
    code = _cell(row, columns.get("fund")).upper()
    if fund is None:
        if not code:
            report.add_error(line, "The fund code is missing")
            return
        fund = loader.fund_for(code)
        if fund is None:
            report.add_error(line, f"There is no fund with the code {code}")
            return
    elif code and code != fund.code:
        report.add_error(line, f"This line is for fund {code}, but the file is being loaded into {fund.code}")
        return

    reference = loader.rule_for(fund).normalise(_cell(row, columns.get("reference")))
    if not reference:
        report.add_error(line, "The reference is missing")
        return
    if len(reference) > MAX_REFERENCE_LENGTH:
        report.add_error(line, f"The reference must be {MAX_REFERENCE_LENGTH} characters or fewer")
        return

    name = " ".join(_cell(row, columns.get("name")).split())
    if len(name) > MAX_NAME_LENGTH:
        report.add_error(line, f"The name must be {MAX_NAME_LENGTH} characters or fewer")
        return
    if "address" in columns:
        address = _cell(row, columns["address"])
    else:
        address = ", ".join(p for p in (_cell(row, columns.get(part)) for part in _ADDRESS_PARTS) if p)
    if len(address) > MAX_ADDRESS_LENGTH:
        report.add_error(line, f"The address must be {MAX_ADDRESS_LENGTH} characters or fewer")
        return

    balance_text = _cell(row, columns.get("balance"))
    balance = None
    if balance_text:
        try:
            balance = parse_pounds(balance_text, allow_negative=True)
        except DomainError as error:
            report.add_error(
                line, f"The balance “{balance_text}” is not an amount: {error.message[:1].lower()}{error.message[1:]}"
            )
            return

    stop_message = _cell(row, columns.get("on_stop_message"))
    if len(stop_message) > MAX_STOP_MESSAGE_LENGTH:
        report.add_error(line, f"The stop message must be {MAX_STOP_MESSAGE_LENGTH} characters or fewer")
        return
    channels = _cell(row, columns.get("stop_channels")).lower() or "all"
    if channels not in STOP_CHANNELS:
        report.add_error(line, f"Stop channels must be “all” or “public”, not “{channels}”")
        return

    loader.add(
        line,
        fund,
        reference,
        {
            "name": name,
            "address": address,
            "balance_pence": balance,
            "on_stop_message": stop_message,
            "stop_channels": channels,
        },
    )


# ---------------------------------------------------------------------------
# Finding accounts, and overriding a stop
# ---------------------------------------------------------------------------


def find_account(fund: Fund, reference: str) -> AccountHolder | None:
    normalised = compiled_rule(fund).normalise(reference)
    return AccountHolder.get_or_none((AccountHolder.fund == fund.id) & (AccountHolder.reference == normalised))


def search_account_holders(text: str = "", *, fund_ids=None, limit: int = 50):
    """Staff search: a reference (or its start) or part of a name or address."""
    query = AccountHolder.select(AccountHolder, Fund).join(Fund)
    if fund_ids is not None:
        ids = list(fund_ids)
        query = query.where(AccountHolder.fund.in_(ids) if ids else AccountHolder.id.is_null())
    words = (text or "").strip()
    if words:
        squashed = "".join(words.split()).upper()
        query = query.where(
            AccountHolder.reference.startswith(squashed)
            | AccountHolder.name.contains(words)
            | AccountHolder.address.contains(words)
        )
    return query.order_by(Fund.code, AccountHolder.reference).limit(limit)


@dataclass(frozen=True)
class StopOverride:
    """Permission, given once and audited, to take one payment for an account on stop."""

    account_id: int
    fund_id: int
    reference: str
    actor_id: int | None
    actor_name: str
    reason: str
    audit_seq: int


def override_stop(account: AccountHolder, actor, reason: str, *, ip_address: str = "") -> StopOverride:
    """Record that `actor` (a senior finance officer: routes check the permission) lets a
    payment through for an account on stop, and why. Pass the result to validate_reference."""
    if actor is None:
        raise DomainError("Only a signed-in senior finance officer can override a stop")
    if not account.on_stop_message:
        raise DomainError("This account is not on stop")
    why = " ".join((reason or "").split())
    if not why:
        raise DomainError("Enter why the payment should be taken even though the account is on stop", "reason")
    if len(why) > 500:
        raise DomainError("The reason must be 500 characters or fewer", "reason")
    fund = Fund.get_by_id(account.fund_id)
    event = audit.record(
        "account_holder.override_stop",
        actor=actor,
        object_type="account_holder",
        object_id=account.id,
        summary=f"Overrode the stop on {fund.code} account {account.reference}: {why}",
        before={"on_stop_message": account.on_stop_message},
        after={"reason": why},
        ip_address=ip_address,
    )
    return StopOverride(
        account_id=account.id,
        fund_id=account.fund_id,
        reference=account.reference,
        actor_id=getattr(actor, "id", None),
        actor_name=getattr(actor, "name", "") or getattr(actor, "email", ""),
        reason=why,
        audit_seq=event.seq,
    )
