"""Searching the ledger: filters, a whitelist of sorts, a capped count, pages and streamed downloads.

Everything starts from the funds a user may see (their fund groups): `search()` never returns an
entry outside them, whatever the filters say.

Fast at council scale (a million entries and more):
- **Pages** are fetched with a "deferred join": the ids of one page (ordered, limited, offset) come
  from a subquery the indexes can answer, then only those rows are read.
- **Indexes** (migrations/0010_search_indexes.py): a wide one led by the business date that holds
  every low-cardinality filter, the amount and the id, so counting a date-bounded search on those
  filters never reads a row; and one on the amount, for "who paid £123.45?" over every date.
- **The count is capped.** Counting every match of a broad search means reading every matching
  index entry, which on a million-row ledger is a full scan each time the page loads. So we count
  at most COUNT_LIMIT + 1 matches: up to COUNT_LIMIT the page shows the exact number and the total;
  beyond it, "more than 10,000 entries" and no total (narrow the search, e.g. by date, to see one).
  The default view therefore costs at most COUNT_LIMIT index entries, never the whole ledger, and
  an account or receipt search (the usual question) is counted exactly. docs/decisions.md has the
  reasoning ("Transaction search").
- **Downloads are streamed**, never capped: one SELECT, read in batches (a server-side cursor on
  PostgreSQL; SQLite's cursor already steps through rows), written as CSV or XLSX chunks as the
  rows arrive (app/domain/spreadsheets.py), so memory stays flat for any number of rows.

Text search ("payer or narrative contains") cannot use an index, so on its own it reads every
entry in the date range; with no date range it reads the whole ledger. It is meant to be used with
a date range, which the form says.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from peewee import JOIN, SQL, NodeList, fn

from app.db import database, is_postgres
from app.domain.funds import Fund
from app.domain.ledger import SOURCES, LedgerEntry, receipt_number_of
from app.domain.methods import MethodOfPayment
from app.domain.offices import Office
from app.domain.spreadsheets import Column, safe_text
from app.domain.users import User
from app.domain.vat import VatCode

COUNT_LIMIT = 10_000
PER_PAGE = 50
# Downloads read this many rows from the database at a time.
FETCH_ROWS = 2_000
LONDON = ZoneInfo("Europe/London")
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_DATE = dt.date(9999, 12, 31)

# Sorts people can ask for: key → column heading. Anything else in the URL falls back to the
# default, so no column name ever comes from the request.
SORTS: dict[str, str] = {
    "receipt": "Receipt",
    "date": "Date",
    "fund": "Fund",
    "account": "Account reference",
    "method": "Method",
    "amount": "Amount",
}
DEFAULT_SORT = ("date", "desc")


@dataclass(frozen=True)
class SearchFilters:
    """What to look for. Empty values mean "any". Amounts are pence; text is as typed."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    fund_id: int | None = None
    method_id: int | None = None
    account_reference: str = ""
    receipt_reference: str = ""
    amount_from: int | None = None
    amount_to: int | None = None
    text: str = ""
    user_id: int | None = None
    office_id: int | None = None
    source: str = ""


@dataclass(frozen=True)
class Sort:
    key: str = DEFAULT_SORT[0]
    direction: str = DEFAULT_SORT[1]

    @classmethod
    def parse(cls, key: str | None, direction: str | None) -> Sort:
        key = key if key in SORTS else DEFAULT_SORT[0]
        if direction not in ("asc", "desc"):
            direction = DEFAULT_SORT[1] if key == DEFAULT_SORT[0] else "asc"
        return cls(key, direction)

    @property
    def descending(self) -> bool:
        return self.direction == "desc"


@dataclass(frozen=True)
class Count:
    """How many entries match, up to COUNT_LIMIT; `more` when there are more than that."""

    count: int
    total_pence: int | None
    more: bool


@dataclass
class Results:
    entries: list[Row]
    count: Count
    page: int
    per_page: int = PER_PAGE
    sort: Sort = field(default_factory=Sort)


def normalise_account_reference(text: str) -> str:
    return "".join((text or "").split()).upper()


def search(fund_ids: Iterable[int], filters: SearchFilters):
    """The entries the filters match, among funds `fund_ids` (a user's visible funds). A query."""
    visible = {int(i) for i in fund_ids}
    if filters.fund_id is not None:
        visible &= {filters.fund_id}
    query = LedgerEntry.for_funds(visible)
    e = LedgerEntry
    conditions = []
    if filters.date_from or filters.date_to:
        # Always both bounds, even when only one was given: SQLite keeps no histogram, so it guesses
        # a one-sided range is a quarter of the table and would rather walk the index of, say, the
        # method. A two-sided range it takes to be narrow. The far bound changes no result.
        conditions.append(e.business_date >= (filters.date_from or EARLIEST_DATE))
        conditions.append(e.business_date <= (filters.date_to or LATEST_DATE))
    if filters.method_id is not None:
        conditions.append(e.method == filters.method_id)
    if filters.account_reference:
        conditions.append(e.account_reference == normalise_account_reference(filters.account_reference))
    if filters.receipt_reference:
        conditions.append(e.receipt_number == receipt_number_of(filters.receipt_reference))
    if filters.amount_from is not None:
        conditions.append(e.amount_pence >= filters.amount_from)
    if filters.amount_to is not None:
        conditions.append(e.amount_pence <= filters.amount_to)
    if filters.text:
        conditions.append(_contains_text((e.payer_name, e.narrative, e.payer_email), filters.text))
    if filters.user_id is not None:
        conditions.append(e.user == filters.user_id)
    if filters.office_id is not None:
        conditions.append(e.office == filters.office_id)
    if filters.source:
        conditions.append(e.source == filters.source)
    for condition in conditions:
        query = query.where(condition)
    return query


def _contains_text(fields, text: str):
    """Any of `fields` contains `text`, ignoring case. On PostgreSQL LOWER(x) LIKE, a quarter faster
    than ILIKE (this reads every row in the date range); on SQLite plain LIKE, which ignores case
    itself and is twice as fast as LOWER()."""
    text = " ".join(text.split())
    condition = None
    for column in fields:
        if is_postgres():
            lowered = fn.LOWER(column)
            # NodeList, not OP.LIKE: peewee would write OP.LIKE as a case-sensitive GLOB on SQLite.
            match = NodeList((lowered, SQL("LIKE"), lowered._escape_like_expr(text.lower(), "%%%s%%")))
        else:
            match = column.contains(text)  # LIKE, which SQLite already matches without case
        condition = match if condition is None else (condition | match)
    return condition


def _order_keys(sort: Sort) -> list:
    e = LedgerEntry
    key = {
        "date": e.business_date,
        "receipt": e.receipt_reference,
        "fund": Fund.name,
        "account": e.account_reference,
        "method": MethodOfPayment.name,
        "amount": e.amount_pence,
    }[sort.key]
    # The id breaks ties, in the same direction, so the order (and every page) is stable.
    return [k.desc() if sort.descending else k.asc() for k in (key, e.id)]


def _ordered(query, sort: Sort):
    """`query` in `sort` order, joined to what the sort needs."""
    e = LedgerEntry
    if sort.key == "fund":
        query = query.join(Fund, on=(e.fund == Fund.id))
    elif sort.key == "method":
        query = query.join(MethodOfPayment, on=(e.method == MethodOfPayment.id))
    return query.order_by(*_order_keys(sort))


def count(query, limit: int | None = None) -> Count:
    """At most `limit` + 1 matches are read: the exact count and total up to `limit`, else "more"."""
    limit = COUNT_LIMIT if limit is None else limit
    inner = query.select(LedgerEntry.amount_pence).order_by().limit(limit + 1).alias("matches")
    number, total = (
        LedgerEntry.select(fn.COUNT(SQL("*")), fn.COALESCE(fn.SUM(inner.c.amount_pence), 0)).from_(inner).tuples().get()
    )
    number = int(number)
    if number > limit:
        return Count(limit, None, True)
    # PostgreSQL sums BIGINT as NUMERIC, which arrives as Decimal.
    return Count(number, int(total), False)


def page_count(counted: Count, per_page: int = PER_PAGE) -> int:
    return max(1, -(-counted.count // per_page))


@dataclass(frozen=True)
class Row:
    """One line of the results table: only what it shows."""

    receipt_reference: str
    business_date: dt.date
    fund_name: str
    account_reference: str
    method_name: str
    amount_pence: int


def entries_page(query, sort: Sort, page: int, per_page: int = PER_PAGE) -> list[Row]:
    """One page of entries, in `sort` order, in one statement: the page's ids come from a
    subquery the indexes can answer (often without reading a row), then only those rows are read."""
    e = LedgerEntry
    ids = _ordered(query.select(e.id), sort).limit(per_page).offset((page - 1) * per_page)
    rows = (
        e.select(
            e.receipt_reference, e.business_date, Fund.name, e.account_reference, MethodOfPayment.name, e.amount_pence
        )
        .join(Fund, on=(e.fund == Fund.id))
        .switch(e)
        .join(MethodOfPayment, on=(e.method == MethodOfPayment.id))
        .where(e.id.in_(ids))
        .order_by(*_order_keys(sort))
    )
    return [Row(*row) for row in rows.tuples()]


def results(fund_ids: Iterable[int], filters: SearchFilters, sort: Sort, page: int = 1) -> Results:
    query = search(fund_ids, filters)
    counted = count(query)
    page = min(max(1, page), page_count(counted))
    return Results(entries_page(query, sort, page), counted, page, PER_PAGE, sort)


# --- downloads --------------------------------------------------------------------------------

# "safe": text made safe once, not per row (receipts are generated; names of funds, methods,
# offices and people are neutralised when they are read, below). "text" is checked every row.
EXPORT_COLUMNS = [
    Column("Receipt reference", "safe"),
    Column("Business date", "date"),
    Column("Money taken (UK time)", "datetime"),
    Column("Fund code", "safe"),
    Column("Fund", "safe"),
    Column("Account reference"),
    Column("Amount", "money"),
    Column("VAT", "money"),
    Column("Net", "money"),
    Column("VAT code", "safe"),
    Column("Method of payment", "safe"),
    Column("Source", "safe"),
    Column("Source reference"),
    Column("Group reference"),
    Column("Corrects receipt", "safe"),
    Column("Payer name"),
    Column("Payer email"),
    Column("Narrative"),
    Column("Office", "safe"),
    Column("Taken by", "safe"),
]


def export_rows(fund_ids: Iterable[int], filters: SearchFilters, sort: Sort) -> Iterator[list]:
    """Every matching entry as a row of EXPORT_COLUMNS, in `sort` order, read in batches."""
    e = LedgerEntry
    corrected = LedgerEntry.alias("corrected")
    query = _ordered(
        search(fund_ids, filters).select(
            e.receipt_reference,
            # As text: psycopg would build a date and a datetime for every row only for them to be
            # written out as text again (SQLite stores them as text already).
            e.business_date.cast("text"),
            e.taken_at.cast("text"),
            e.fund,
            e.account_reference,
            e.amount_pence,
            e.vat_pence,
            e.net_pence,
            e.vat_code,
            e.method,
            e.source,
            e.source_reference,
            e.group_reference,
            corrected.receipt_reference,
            e.payer_name,
            e.payer_email,
            e.narrative,
            e.office,
            e.user,
        ),
        sort,
    ).join_from(e, corrected, join_type=JOIN.LEFT_OUTER, on=(e.corrects == corrected.id))
    # Small tables, read once: names instead of ids without a join per row.
    funds = {f.id: (safe_text(f.code), safe_text(f.name)) for f in Fund.select(Fund.id, Fund.code, Fund.name)}
    methods = {m.id: safe_text(m.name) for m in MethodOfPayment.select(MethodOfPayment.id, MethodOfPayment.name)}
    offices = {o.id: safe_text(o.name) for o in Office.select(Office.id, Office.name)}
    users = {u.id: safe_text(u.name) for u in User.select(User.id, User.name)}
    vat_codes = {v.id: safe_text(v.code) for v in VatCode.select(VatCode.id, VatCode.code)}
    sources = {key: safe_text(name) for key, name in SOURCES.items()}
    to_london = _london_converter()
    for row in _stream(query):
        (receipt, day, taken, fund_id, account, amount, vat, net, vat_code_id, method_id, source, source_ref,
         group_ref, corrects, payer, email, narrative, office_id, user_id) = row  # fmt: skip
        code, name = funds.get(fund_id, ("", ""))
        yield [
            receipt,
            day,
            to_london(taken),
            code,
            name,
            account,
            amount,
            vat,
            net,
            vat_codes.get(vat_code_id, ""),
            methods.get(method_id, ""),
            sources.get(source) or safe_text(source),
            source_ref,
            group_ref,
            corrects,
            payer,
            email,
            narrative,
            offices.get(office_id, ""),
            users.get(user_id, ""),
        ]


def _london_converter():
    """Naive UTC (a datetime, or SQLite's text) → London time as "YYYY-MM-DD HH:MM:SS" text.

    The offset is a whole number of hours that only changes on the hour, so each hour of data is
    converted once (zoneinfo) and every other moment in it only has its date and hour replaced:
    a string slice instead of a time zone conversion, a million times over.
    """
    hours: dict[str, str] = {}
    utc = dt.UTC

    def convert(value):
        if value is None:
            return None
        text = value if isinstance(value, str) else value.isoformat(sep=" ")
        hour = text[:13]
        london = hours.get(hour)
        if london is None:
            moment = dt.datetime.fromisoformat(hour + ":00:00").replace(tzinfo=utc).astimezone(LONDON)
            london = hours[hour] = moment.strftime("%Y-%m-%d %H")
        return london + text[13:19]

    return convert


def _stream(query) -> Iterator[tuple]:
    """Rows of `query` as plain tuples, FETCH_ROWS at a time, without loading them all.

    PostgreSQL: psycopg's client-side cursor would fetch every row into memory first, so a named
    (server-side) cursor is used, inside a transaction as PostgreSQL requires. SQLite's cursor
    already steps through the result as it is read.
    """
    db = database.obj
    sql, params = query.sql()
    if is_postgres():
        with db.atomic():
            cursor = db.connection().cursor(name=f"ledger_export_{uuid.uuid4().hex}")
            try:
                cursor.itersize = FETCH_ROWS
                cursor.execute(sql, params)
                while batch := cursor.fetchmany(FETCH_ROWS):
                    yield from batch
            finally:
                cursor.close()
    else:
        cursor = db.cursor()
        try:
            cursor.execute(sql, params)
            while batch := cursor.fetchmany(FETCH_ROWS):
                yield from batch
        finally:
            cursor.close()


# --- one entry: its timeline and its receipt --------------------------------------------------

RECEIPT_EMAILED = "ledger_entry.receipt_emailed"
GROUP_LIMIT = 50


@dataclass(frozen=True)
class TimelineItem:
    """One thing that happened to an entry. `kind` says what `reference` is, for the page's link:
    card_payment and staff_payment (a payment's reference), entry (a receipt), refund (a refund's
    reference), suspense (a suspense item's id), export (an export batch's id), or nothing."""

    when: dt.datetime
    title: str
    kind: str = ""
    reference: str = ""
    amount_pence: int | None = None
    by: str = ""
    description: str = ""


def timeline(entry: LedgerEntry, fund_ids: Iterable[int]) -> list[TimelineItem]:
    """Everything linked to `entry`, oldest first: the payment it came from, the entry it corrects,
    entries that correct it (refunds, reversals, journals), the rest of its group (the other lines
    of a basket, journal or transfer) and receipts e-mailed. Entries in funds outside `fund_ids`
    are left out (their existence is not disclosed)."""
    from app.domain.audit import AuditEvent
    from app.domain.payments import PaymentItem
    from app.domain.staff_payments import StaffPayment

    visible = {int(i) for i in fund_ids}
    items: list[TimelineItem] = []
    card = PaymentItem.select().where(PaymentItem.ledger_entry == entry.id).first()
    if card is not None:
        payment = card.payment
        items.append(
            TimelineItem(
                payment.created_at,
                "Card payment started",
                "card_payment",
                payment.reference,
                payment.amount_pence,
                description=f"{payment.status_name}: {payment.description}" if payment.description else "",
            )
        )
    if entry.group_reference:
        staff = StaffPayment.get_or_none(StaffPayment.reference == entry.group_reference)
        if staff is not None:
            items.append(
                TimelineItem(
                    staff.created_at,
                    "Payment taken by staff",
                    "staff_payment",
                    staff.reference,
                    by=staff.user.name if staff.user_id else "",
                )
            )
    items.append(TimelineItem(entry.taken_at, "Money taken", amount_pence=entry.amount_pence))
    items.append(
        TimelineItem(
            entry.created_at,
            f"Recorded in the ledger: {entry.source_name.lower()}",
            "entry",
            entry.receipt_reference,
            entry.amount_pence,
            by=entry.user.name if entry.user_id else "",
        )
    )
    if entry.corrects_id is not None and entry.corrects.fund_id in visible:
        original = entry.corrects
        items.append(
            TimelineItem(
                entry.created_at,
                f"Corrects receipt {original.receipt_reference}",
                "entry",
                original.receipt_reference,
                original.amount_pence,
            )
        )
    seen = {entry.id}
    for other in LedgerEntry.linked(entry):
        seen.add(other.id)
        if other.fund_id in visible:
            items.append(
                TimelineItem(
                    other.created_at,
                    f"{other.source_name} {other.receipt_reference}",
                    "entry",
                    other.receipt_reference,
                    other.amount_pence,
                    by=other.user.name if other.user_id else "",
                    description=other.narrative,
                )
            )
    if entry.group_reference:
        group = (
            LedgerEntry.select()
            .where(
                (LedgerEntry.group_reference == entry.group_reference) & LedgerEntry.fund.in_(sorted(visible) or [0])
            )
            .order_by(LedgerEntry.id)
            .limit(GROUP_LIMIT)
        )
        for other in group:
            if other.id not in seen:
                items.append(
                    TimelineItem(
                        other.created_at,
                        f"Posted with it: {other.source_name.lower()} {other.receipt_reference}",
                        "entry",
                        other.receipt_reference,
                        other.amount_pence,
                        description=f"{other.fund.name}, {other.account_reference} ({entry.group_reference})",
                    )
                )
    from app.domain.refunds import Refund
    from app.domain.suspense import SuspenseItem

    for refund in Refund.select().where(Refund.entry == entry.id).order_by(Refund.id):
        items.append(
            TimelineItem(
                refund.requested_at,
                f"Refund asked for: {refund.status_name.lower()}",
                "refund",
                refund.reference,
                -refund.amount_pence,
                by=refund.requested_by.name,
                description=refund.reason,
            )
        )
    suspense = SuspenseItem.get_or_none(SuspenseItem.ledger_entry == entry.id)
    if suspense is not None:
        items.append(
            TimelineItem(
                suspense.created_at,
                "Put into suspense" + (" (all allocated)" if suspense.remaining_pence == 0 else ""),
                "suspense",
                str(suspense.id),
                suspense.remaining_pence,
                description=suspense.source_detail,
            )
        )
    from app.domain.exports.runs import batches_for_entry, can_see_template

    for batch, live in batches_for_entry(entry.id):
        items.append(
            TimelineItem(
                batch.created_at,
                f"Exported in {batch.file_name}" + ("" if live else " (batch void: exportable again)"),
                # A link only to a batch the user may open (they see every fund its template may hold).
                "export" if can_see_template(batch.template, visible) else "",
                str(batch.id),
                by=batch.created_by.name if batch.created_by_id else batch.trigger_name,
                description=f"{batch.template.name} ({batch.template.code}), file {batch.sequence}",
            )
        )
    emailed = AuditEvent.select().where(
        (AuditEvent.object_type == "ledger_entry")
        & (AuditEvent.object_id == entry.receipt_reference)
        & (AuditEvent.action == RECEIPT_EMAILED)
    )
    for event in emailed.order_by(AuditEvent.seq):
        items.append(
            TimelineItem(event.occurred_at, "Receipt e-mailed", by=event.actor_email, description=event.summary)
        )
    return sorted(items, key=lambda item: item.when)


def receipt_email(entry: LedgerEntry, council_name: str) -> tuple[str, str]:
    """(subject, body) of a receipt e-mailed to the payer."""
    from app.domain.money import format_pence
    from app.domain.vat import format_rate

    lines = [
        f"Thank you for your payment to {council_name}.",
        "",
        f"Receipt reference: {entry.receipt_reference}",
        f"Date: {entry.business_date:%-d %B %Y}",
        f"For: {entry.fund.name}",
        f"Account reference: {entry.account_reference}",
        f"Paid by: {entry.method.name}",
        f"Amount: {format_pence(entry.amount_pence)}",
    ]
    if entry.vat_pence:
        code = f" ({entry.vat_code.name} at {format_rate(entry.vat_rate)})" if entry.vat_code_id else ""
        lines += [f"Net: {format_pence(entry.net_pence)}", f"VAT{code}: {format_pence(entry.vat_pence)}"]
    else:
        lines.append("VAT: none")
    lines += ["", "Keep this e-mail as your receipt."]
    return f"Your receipt {entry.receipt_reference} from {council_name}", "\n".join(lines)
