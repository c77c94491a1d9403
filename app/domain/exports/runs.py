"""Running exports: preview, run (exactly once), the stored file, void, history, schedule.

**Exactly once.** `ExportedEntry` has a row per (entry, template, batch) and a unique index on
(entry_id, template_id, active). `active` is TRUE while the batch stands and NULL once it is void:
SQL treats NULLs as distinct in a unique index (SQLite and PostgreSQL alike), so an entry can be
in any number of void batches of a template but in only one live one. A run marks its entries with
one INSERT … SELECT of every matching entry up to the cut-off with no live row for the template
(set-based: a million entries is one statement, not a million). Runs of one template are also
queued behind a lock on the template's row (SQLite: the write lock; PostgreSQL: SELECT … FOR
UPDATE), so the second of two simultaneous runs finds the first's entries already taken; if
anything ever got past the lock, the unique index would refuse the duplicate and the run would
roll back whole.

**Void.** Sets `active` to NULL on the batch's rows and marks the batch void: nothing is deleted,
the entries become exportable again and go into the template's next run.

**The file** is written while the batch is made, in the same transaction, and kept in the
database in 1 MiB chunks (`ExportFileChunk`) with its SHA-256: a batch and its file commit or
roll back together, every process (web, worker, CLI) on every host sees it, and it is backed up
with the ledger. A download streams the chunks, byte for byte what was made.

Memory stays flat for any size of batch. On SQLite a batch's entries are read in keyset pages
(by entry id, 20,000 at a time) and written as they are read. On PostgreSQL they come in one
streamed query and the file is made into a temporary file, then stored (`_detail_file`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass

from peewee import (
    SQL,
    BigAutoField,
    BigIntegerField,
    BlobField,
    BooleanField,
    Case,
    CharField,
    DateField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    IntegrityError,
    OperationalError,
    Select,
    TextField,
    Value,
    fn,
)

from app.db import BaseModel, database, is_postgres, utcnow
from app.domain import audit
from app.domain.errors import DomainError
from app.domain.exports.formats import (
    DETAIL_COLUMNS,
    BatchContext,
    JournalLine,
    Lookups,
    file_chunks,
)
from app.domain.exports.templates import Definition, ExportTemplate, parse_definition, render_file_name
from app.domain.funds import Fund
from app.domain.ledger import LedgerEntry, write_transaction
from app.domain.methods import MethodOfPayment
from app.domain.money import format_pence
from app.domain.ukdates import business_date
from app.domain.users import User

PAGE = 20_000
STREAM_ROWS = 2_000
# PostgreSQL's dates and times as the ISO text SQLite stores (see _batch_rows_postgres).
ISO_TEXT = {"business_date": "YYYY-MM-DD", "taken_at": "YYYY-MM-DD HH24:MI:SS", "created_at": "YYYY-MM-DD HH24:MI:SS"}
STORE_CHUNK = 1024 * 1024
PREVIEW_LINES = 10
STATUSES = {"exported": "Exported", "void": "Void"}
TRIGGERS = {"manual": "Run by a person", "schedule": "Scheduled", "cli": "Command line"}


class NothingToExport(DomainError):
    """No entry matches the template up to the cut-off that it has not already exported."""


class ExportBatch(BaseModel):
    id = BigAutoField()
    template = ForeignKeyField(ExportTemplate, backref="batches", on_delete="RESTRICT", index=False)
    template_version = IntegerField()
    # The definition the file was made with (the template may change later).
    definition = TextField()
    kind = CharField(max_length=10)
    file_format = CharField(max_length=10)
    sequence = IntegerField()
    file_name = CharField(max_length=200)
    cut_off = DateField()
    status = CharField(max_length=10, default="exported", index=True)
    entry_count = BigIntegerField(default=0)
    total_pence = BigIntegerField(default=0)
    line_count = BigIntegerField(default=0)
    debit_pence = BigIntegerField(default=0)
    credit_pence = BigIntegerField(default=0)
    size_bytes = BigIntegerField(default=0)
    sha256 = CharField(max_length=64, default="")
    trigger = CharField(max_length=10, default="manual")
    created_by = ForeignKeyField(User, null=True, backref="+", on_delete="RESTRICT")
    created_at = DateTimeField(default=utcnow, index=True)
    voided_by = ForeignKeyField(User, null=True, backref="+", on_delete="RESTRICT")
    voided_at = DateTimeField(null=True)
    void_reason = TextField(default="")

    class Meta:
        indexes = ((("template", "sequence"), True),)

    @property
    def status_name(self) -> str:
        return STATUSES.get(self.status, self.status)

    @property
    def trigger_name(self) -> str:
        return TRIGGERS.get(self.trigger, self.trigger)

    @property
    def is_void(self) -> bool:
        return self.status == "void"


class ExportedEntry(BaseModel):
    """An entry in a batch. Unique (entry, template, active): once per template while live.

    A million entries make a million rows here, so only the two indexes below are kept (the
    foreign keys' own indexes would each be a prefix of one of them, or unused).

    No FOREIGN KEY constraints either (migration 0016): three checks a row were two thirds of the
    marking INSERT on PostgreSQL, and they guarded against nothing that can happen. Entries are
    never deleted (database triggers refuse it), batches are voided, never deleted, and a template
    with batches cannot be deleted (export_batch keeps its foreign key). Exactly once is the
    unique index. The fields are still foreign keys to peewee (joins, `entry_id`); `_deferred=True`
    is how peewee's own DeferredForeignKey leaves the constraint out of CREATE TABLE."""

    id = BigAutoField()
    entry = ForeignKeyField(LedgerEntry, backref="+", index=False, _deferred=True)
    template = ForeignKeyField(ExportTemplate, backref="+", index=False, _deferred=True)
    batch = ForeignKeyField(ExportBatch, backref="+", index=False, _deferred=True)
    # TRUE while the batch stands, NULL once void (NULLs never clash in a unique index).
    active = BooleanField(null=True, default=True)

    class Meta:
        indexes = (
            (("entry", "template", "active"), True),
            (("batch", "entry"), False),
        )


class ExportFileChunk(BaseModel):
    id = BigAutoField()
    batch = ForeignKeyField(ExportBatch, backref="+", on_delete="RESTRICT")
    position = IntegerField()
    data = BlobField()

    class Meta:
        indexes = ((("batch", "position"), True),)


# --- selecting ----------------------------------------------------------------------------------


def _ids(model, codes: Iterable[str]) -> list[int]:
    codes = list(codes)
    return [row.id for row in model.select(model.id).where(model.code.in_(codes))] if codes else []


def pending_entries(template: ExportTemplate, definition: Definition, until: dt.date):
    """A query of the ids of entries the template would export up to `until` (not yet exported)."""
    query = LedgerEntry.select(LedgerEntry.id).where(LedgerEntry.business_date <= until)
    if definition.funds:
        query = query.where(LedgerEntry.fund.in_(_ids(Fund, definition.funds) or [0]))
    if definition.methods:
        query = query.where(LedgerEntry.method.in_(_ids(MethodOfPayment, definition.methods) or [0]))
    if definition.sources:
        query = query.where(LedgerEntry.source.in_(list(definition.sources)))
    taken = ExportedEntry.select(SQL("1")).where(
        (ExportedEntry.entry == LedgerEntry.id)
        & (ExportedEntry.template == template.id)
        & (ExportedEntry.active == True)  # noqa: E712
    )
    return query.where(~fn.EXISTS(taken))


def _entries_of(entry_ids=None, batch_id: int | None = None):
    """Ledger entries of a batch (a join on the batch's index, in entry id order) or of a query of ids."""
    if batch_id is not None:
        return (
            LedgerEntry.select()
            .join(ExportedEntry, on=(ExportedEntry.entry == LedgerEntry.id))
            .where(ExportedEntry.batch == batch_id)
        )
    return LedgerEntry.select().where(LedgerEntry.id.in_(entry_ids))


def _sums(amount) -> tuple:
    """(count, total, money out, money in) of an amount column: money out and in are both positive."""
    return (
        fn.COUNT(SQL("*")),
        fn.COALESCE(fn.SUM(amount), 0),
        fn.COALESCE(fn.SUM(Case(None, [(amount < 0, 0 - amount)], 0)), 0),
        fn.COALESCE(fn.SUM(Case(None, [(amount > 0, amount)], 0)), 0),
    )


def _totals(entry_ids=None, batch_id: int | None = None) -> tuple[int, int, int, int]:
    """(count, total, money out, money in) in one pass: money out and in are both positive."""
    count, total, negative, positive = (
        _entries_of(entry_ids, batch_id).select(*_sums(LedgerEntry.amount_pence)).tuples().get()
    )
    return int(count), int(total), int(negative), int(positive)


def _mark(pending, template_id: int, batch_id: int) -> tuple[int, int, int, int]:
    """Mark the pending entries as in the batch (set-based: one INSERT … SELECT) and return the
    batch's (count, total, money out, money in).

    Rows go in entry id order: the unique index starts with entry_id, so they append instead of
    landing at random. On PostgreSQL the INSERT is a data-modifying WITH and the totals come from
    the same rows in the same statement (joining a million marks back to the ledger to total them
    took another 0.75 s). SQLite has no INSERT inside WITH, so it totals the batch afterwards.
    """
    columns = [ExportedEntry.entry, ExportedEntry.template, ExportedEntry.batch, ExportedEntry.active]
    if is_postgres():
        picked = pending.select(LedgerEntry.id, LedgerEntry.amount_pence).order_by(LedgerEntry.id).cte("picked")
        marked = (
            ExportedEntry.insert_from(
                Select((picked,), (picked.c.id, Value(template_id), Value(batch_id), Value(True))), columns
            )
            .returning()  # nothing back (PostgreSQL would return every new id)
            .cte("marked")
        )
        totals = Select((picked,), _sums(picked.c.amount_pence)).with_cte(picked, marked)
        count, total, negative, positive = database.execute(totals).fetchone()
        return int(count), int(total), int(negative), int(positive)
    ExportedEntry.insert_from(
        pending.select(LedgerEntry.id, Value(template_id), Value(batch_id), Value(True)).order_by(LedgerEntry.id),
        columns,
    ).as_rowcount().execute()
    return _totals(batch_id=batch_id)


def _detail_columns() -> list:
    return [getattr(LedgerEntry, c.removesuffix("_id") if c.endswith("_id") else c) for c in DETAIL_COLUMNS]


def _detail_rows(batch_id: int | None = None, pending=None, limit: int | None = None) -> Iterator[tuple]:
    """Detail rows in entry id order, read in keyset pages: never more than a page in memory.

    For the preview, and for a batch's file on SQLite; a batch's file on PostgreSQL reads its rows
    with `_batch_rows_postgres` (see there why)."""
    columns = _detail_columns()
    last = 0
    left = limit
    while left is None or left > 0:
        size = PAGE if left is None else min(PAGE, left)
        if batch_id is not None:
            query = (
                LedgerEntry.select(*columns)
                .join(ExportedEntry, on=(ExportedEntry.entry == LedgerEntry.id))
                .where((ExportedEntry.batch == batch_id) & (ExportedEntry.entry > last))
                .order_by(ExportedEntry.entry)
                .limit(size)
            )
        else:
            query = (
                LedgerEntry.select(*columns)
                .where(LedgerEntry.id.in_(pending) & (LedgerEntry.id > last))
                .order_by(LedgerEntry.id)
                .limit(size)
            )
        rows = database.execute(query).fetchall()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]
        if left is not None:
            left -= len(rows)
        if len(rows) < size:
            return


def _batch_rows_postgres(batch_id: int) -> Iterator[tuple]:
    """A batch's detail rows on PostgreSQL: ONE query in entry id order, streamed.

    Not keyset pages: a run reads its batch moments after marking it, in the same transaction, so
    the planner's statistics still say the batch is a few hundred rows. For each page it then
    joined every remaining row of the batch and sorted them all to keep 20,000: a million entries
    meant 50 pages of up to a million rows each (quadratic). One query reads each row once.

    Streamed (psycopg's chunked rows mode, STREAM_ROWS at a time), the server sends rows while
    Python formats the ones it has, on the other core: a million rows read and written in ~4 s,
    against ~6.8 s fetching pages from a server-side cursor, where each waits for the other. But
    while it streams, the connection can run nothing else (psycopg would wait on itself for ever),
    so whoever reads these rows must not use the database until they are all read: `_detail_file`
    makes the whole file first.

    Dates and times are selected as ISO text ("2026-03-02", "2026-03-02 14:05:00.123456"), which
    is what SQLite gives: the formatter handles both, and slicing text is much cheaper than
    strftime. `::text` is the cheapest way there, but its form follows the server's DateStyle:
    unless that is ISO (PostgreSQL's default), to_char makes the same text (~0.6 s a million rows
    more; nothing writes fractions of a second, so it leaves them out).
    """
    import psycopg

    connection = database.connection()
    iso_style = (connection.info.parameter_status("DateStyle") or "").startswith("ISO")

    def iso_text(column):
        return column.cast("text") if iso_style else fn.to_char(column, ISO_TEXT[column.name])

    columns = [iso_text(c) if c.name in ISO_TEXT else c for c in _detail_columns()]
    query = (
        LedgerEntry.select(*columns)
        .join(ExportedEntry, on=(ExportedEntry.entry == LedgerEntry.id))
        .where(ExportedEntry.batch == batch_id)
        .order_by(ExportedEntry.entry)
    )
    sql, params = query.sql()
    # Chunked rows mode needs libpq 17 (psycopg[binary] bundles a newer one); else row by row.
    size = STREAM_ROWS if psycopg.pq.version() >= 170000 else 1
    with connection.cursor() as cursor:
        yield from cursor.stream(sql, params, size=size)


def _detail_file(layout, ctx: BatchContext, batch_id: int) -> Iterator[bytes]:
    """A batch's detail file in chunks. On SQLite the file is written as its rows are read.

    On PostgreSQL the rows stream (`_batch_rows_postgres`) and the connection can do nothing else
    until they are all read, so the whole file is made first into a temporary file (on disk:
    memory stays flat), then read back in STORE_CHUNK pieces, between which the caller can use
    the database again (a run stores them). On an error the stream is closed at once, so the
    connection is free for the rollback.
    """
    lookups = Lookups.load()
    if not is_postgres():
        yield from file_chunks(layout, ctx, _detail_rows(batch_id=batch_id), lookups)
        return
    with tempfile.TemporaryFile(prefix="ims-export-") as spool:
        rows = _batch_rows_postgres(batch_id)
        with closing(rows):
            for chunk in file_chunks(layout, ctx, rows, lookups):
                spool.write(chunk)
        spool.seek(0)
        while chunk := spool.read(STORE_CHUNK):
            yield chunk


def journal_lines(entry_ids, definition: Definition, *, batch_id: int | None = None) -> list[JournalLine]:
    """The journal for a set of entries: per posting date, income credited net per (ledger code,
    cost centre, VAT code), VAT to the VAT account per VAT code, and the gross to the contra account.

    Debits equal credits exactly: each entry's net + VAT is its amount, and the contra is the sum
    of the amounts. A line that nets to a debit (refunds outweigh income) is written as a debit.
    """
    query = (
        _entries_of(entry_ids, batch_id)
        .select(
            LedgerEntry.business_date,
            LedgerEntry.fund,
            LedgerEntry.vat_code,
            fn.COUNT(SQL("*")),
            fn.SUM(LedgerEntry.amount_pence),
            fn.SUM(LedgerEntry.net_pence),
            fn.SUM(LedgerEntry.vat_pence),
        )
        .group_by(LedgerEntry.business_date, LedgerEntry.fund, LedgerEntry.vat_code)
    )
    lookups = Lookups.load()
    income: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    vat: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    contra: dict[dt.date, list[int]] = defaultdict(lambda: [0, 0])
    missing = set()
    for day, fund_id, vat_id, count, gross, net, vat_pence in database.execute(query).fetchall():
        day = dt.date.fromisoformat(day[:10]) if isinstance(day, str) else day
        code, _name, ledger_code, cost_centre = lookups.funds[fund_id]
        if not ledger_code:
            missing.add(code)
        vat_code = lookups.vat_codes.get(vat_id, "")
        count, gross, net, vat_pence = int(count), int(gross), int(net), int(vat_pence)
        line = income[(day, ledger_code, cost_centre, vat_code)]
        line[0] += count
        line[1] += net
        v = vat[(day, vat_code)]
        v[0] += count
        v[1] += vat_pence
        c = contra[day]
        c[0] += count
        c[1] += gross
    if missing:
        raise DomainError(
            f"Give these funds a general ledger code before running a journal: {', '.join(sorted(missing))}",
            "until",
        )
    d = definition

    def line(day, ledger, centre, vat_code, kind, count, pence, debit_side: bool) -> JournalLine | None:
        if pence == 0:
            return None
        debit = pence if (pence > 0) == debit_side else 0
        credit = 0 if debit else abs(pence)
        debit = abs(debit)
        text = (d.description or "Income {date}").replace("{date}", day.isoformat())
        return JournalLine(day, ledger, centre, vat_code, kind, text, debit, credit, count)

    # Each day's income and VAT lines, in order: sorted once (three years of days × codes is
    # thousands of keys; sorting them again for every day was quadratic).
    income_by_day: dict[dt.date, list] = defaultdict(list)
    for (when, ledger, centre, vat_code), (n, net) in sorted(income.items()):
        income_by_day[when].append(line(when, ledger, centre, vat_code, "INCOME", n, net, False))
    vat_by_day: dict[dt.date, list] = defaultdict(list)
    for (when, vat_code), (n, vat_pence) in sorted(vat.items()):
        vat_by_day[when].append(line(when, d.vat_ledger_code, d.vat_cost_centre, vat_code, "VAT", n, vat_pence, False))
    lines: list[JournalLine] = []
    for day in sorted(contra):
        count, gross = contra[day]
        made = [line(day, d.contra_ledger_code, d.contra_cost_centre, "", "CONTRA", count, gross, True)]
        made += income_by_day[day] + vat_by_day[day]
        lines.extend(x for x in made if x is not None)
    debits = sum(x.debit_pence for x in lines)
    credits = sum(x.credit_pence for x in lines)
    if debits != credits:  # pragma: no cover - arithmetic guarantees it; refuse rather than send
        raise DomainError(f"The journal does not balance: debits {debits}, credits {credits}")
    return lines


# --- preview ------------------------------------------------------------------------------------


@dataclass
class Preview:
    template: ExportTemplate
    until: dt.date
    entry_count: int
    total_pence: int
    line_count: int
    debit_pence: int
    credit_pence: int
    file_name: str
    first_lines: list[str]
    sequence: int

    @property
    def total_text(self) -> str:
        return format_pence(self.total_pence)


def check_until(until: dt.date | None, today: dt.date | None = None) -> dt.date:
    today = today or business_date(utcnow())
    if until is None:
        raise DomainError("Enter the cut-off date", "until")
    if until > today:
        raise DomainError("The cut-off date must be today or in the past", "until")
    return until


def _next_sequence(template: ExportTemplate) -> int:
    latest = ExportBatch.select(fn.MAX(ExportBatch.sequence)).where(ExportBatch.template == template.id).scalar()
    return int(latest or 0) + 1


def preview(template: ExportTemplate, until: dt.date, *, lines: int = PREVIEW_LINES) -> Preview:
    """What a run would export now (count, totals, the first lines of the file), changing nothing."""
    until = check_until(until)
    definition = template.parsed()
    pending = pending_entries(template, definition, until)
    count, total, negative, positive = _totals(pending)
    sequence = _next_sequence(template)
    now = utcnow()
    file_name = render_file_name(
        template.file_name_pattern, run_date=business_date(now), until=until, sequence=sequence, code=template.code
    )
    ctx = BatchContext(sequence, now, until, file_name, template.code, entry_count=count, total_pence=total)
    if definition.layout.kind == "journal":
        journal = journal_lines(pending, definition) if count else []
        rows: Iterable = journal
        ctx.line_count = len(journal)
        ctx.debit_pence = sum(x.debit_pence for x in journal)
        ctx.credit_pence = sum(x.credit_pence for x in journal)
    else:
        rows = _detail_rows(pending=pending, limit=lines)
        ctx.line_count = count
        ctx.debit_pence, ctx.credit_pence = negative, positive
    first: list[str] = []
    if definition.layout.file_format != "xlsx":
        from app.domain.exports.formats import text_lines

        for text in text_lines(definition.layout, ctx, rows, Lookups.load()):
            first.append(text)
            if len(first) >= lines + 3:
                break
        if definition.layout.trailer and count > lines:
            # The trailer comes after every line: show it as it will be, after a gap.
            from app.domain.exports.formats import compile_fields, record_sources

            trailer = compile_fields(
                definition.layout.trailer, record_sources(), definition.layout, Lookups.load(), ctx, "Trailer"
            )
            join = "".join if definition.layout.file_format == "fixed" else None
            if join is None:
                from app.domain.exports.formats import _csv_line

                join = _csv_line(definition.layout.delimiter, definition.layout.quote_all)
            first.append("…")
            first.append(join(trailer(None, 0)))
    return Preview(
        template, until, count, total, ctx.line_count, ctx.debit_pence, ctx.credit_pence, file_name, first, sequence
    )


# --- running ------------------------------------------------------------------------------------


def _lock_template(template: ExportTemplate) -> ExportTemplate:
    """Queue runs of one template: PostgreSQL row lock (SQLite's write lock already serialises)."""
    query = ExportTemplate.select().where(ExportTemplate.id == template.id)
    if is_postgres():
        query = query.for_update()
    return query.get()


def run_export(
    template: ExportTemplate,
    until: dt.date,
    *,
    actor: User | None = None,
    trigger: str = "manual",
    ip_address: str = "",
) -> ExportBatch:
    """Export every matching entry up to `until` that this template has not exported yet.

    All or nothing: the batch, its entries' marks and its file commit together. Raises
    NothingToExport when nothing is due (unless the template makes empty files).
    """
    until = check_until(until)
    try:
        with write_transaction():
            template = _lock_template(template)
            if not template.enabled:
                raise DomainError(f"The export template {template.code} is disabled", "until")
            return _run_locked(template, until, actor, trigger, ip_address)
    except IntegrityError as exc:
        raise DomainError("Another run of this export took the same transactions: run it again", "until") from exc
    except OperationalError as exc:
        if "locked" in str(exc).lower():
            raise DomainError("Another export is running: try again in a minute", "until") from exc
        raise


def _run_locked(template: ExportTemplate, until: dt.date, actor, trigger: str, ip_address: str) -> ExportBatch:
    definition = template.parsed()
    now = utcnow()
    sequence = _next_sequence(template)
    file_name = render_file_name(
        template.file_name_pattern, run_date=business_date(now), until=until, sequence=sequence, code=template.code
    )
    batch = ExportBatch.create(
        template=template,
        template_version=template.version,
        definition=template.definition,
        kind=template.kind,
        file_format=template.file_format,
        sequence=sequence,
        file_name=file_name,
        cut_off=until,
        trigger=trigger,
        created_by=actor,
        created_at=now,
    )
    count, total, negative, positive = _mark(pending_entries(template, definition, until), template.id, batch.id)
    if count == 0 and not definition.allow_empty:
        raise NothingToExport(f"There is nothing new to export up to {until:%-d %B %Y}", "until")
    ctx = BatchContext(sequence, now, until, file_name, template.code, entry_count=count, total_pence=total)
    if definition.layout.kind == "journal":
        lines = journal_lines(None, definition, batch_id=batch.id) if count else []
        ctx.line_count = len(lines)
        ctx.debit_pence = sum(x.debit_pence for x in lines)
        ctx.credit_pence = sum(x.credit_pence for x in lines)
        chunks = file_chunks(definition.layout, ctx, lines, Lookups.load())
    else:
        ctx.line_count = count
        ctx.debit_pence, ctx.credit_pence = negative, positive
        chunks = _detail_file(definition.layout, ctx, batch.id)
    digest, size = _store(batch.id, chunks)
    batch.entry_count, batch.total_pence, batch.line_count = count, total, ctx.line_count
    batch.debit_pence, batch.credit_pence = ctx.debit_pence, ctx.credit_pence
    batch.sha256, batch.size_bytes = digest, size
    batch.save()
    audit.record(
        "export.run",
        actor=actor,
        object_type="export_batch",
        object_id=batch.id,
        summary=f"Exported {count:,} transactions ({format_pence(total)}) with {template.code} to {file_name}",
        after={
            "template": template.code,
            "version": template.version,
            "sequence": sequence,
            "cut_off": until.isoformat(),
            "entries": count,
            "marked": count,
            "total_pence": total,
            "sha256": digest,
            "trigger": trigger,
        },
        ip_address=ip_address,
    )
    return batch


def _store(batch_id: int, chunks: Iterable[bytes]) -> tuple[str, int]:
    """Write the file into the database in 1 MiB chunks; return (SHA-256, size)."""
    digest = hashlib.sha256()
    size = 0
    position = 0
    pending: list[bytes] = []
    pending_size = 0

    def flush():
        nonlocal position, pending, pending_size
        data = b"".join(pending)
        ExportFileChunk.insert(batch=batch_id, position=position, data=data).execute()
        position += 1
        pending, pending_size = [], 0

    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        pending.append(chunk)
        pending_size += len(chunk)
        if pending_size >= STORE_CHUNK:
            flush()
    if pending or position == 0:
        flush()
    return digest.hexdigest(), size


def file_bytes(batch: ExportBatch) -> Iterator[bytes]:
    """The stored file, chunk by chunk (one chunk in memory at a time)."""
    position = 0
    while True:
        row = (
            ExportFileChunk.select(ExportFileChunk.data)
            .where((ExportFileChunk.batch == batch.id) & (ExportFileChunk.position == position))
            .tuples()
            .first()
        )
        if row is None:
            return
        yield bytes(row[0])
        position += 1


def file_is_intact(batch: ExportBatch) -> bool:
    digest = hashlib.sha256()
    for chunk in file_bytes(batch):
        digest.update(chunk)
    return digest.hexdigest() == batch.sha256


def regenerate(batch: ExportBatch) -> Iterator[bytes]:
    """Make the batch's file again from its entries and the definition it was made with.

    CSV and fixed-width files come out byte for byte the same (everything in them, times
    included, comes from the batch); an XLSX workbook has the same cells but zip timestamps of now.
    """
    definition = parse_definition(batch.kind, batch.file_format, json.loads(batch.definition))
    ctx = BatchContext(
        batch.sequence,
        batch.created_at,
        batch.cut_off,
        batch.file_name,
        batch.template.code,
        line_count=batch.line_count,
        entry_count=batch.entry_count,
        total_pence=batch.total_pence,
        debit_pence=batch.debit_pence,
        credit_pence=batch.credit_pence,
    )
    if batch.kind == "journal":
        lines = journal_lines(None, definition, batch_id=batch.id) if batch.entry_count else []
        return file_chunks(definition.layout, ctx, lines, Lookups.load())
    return _detail_file(definition.layout, ctx, batch.id)


# --- void ---------------------------------------------------------------------------------------


def void_batch(batch: ExportBatch, actor: User, reason: str, *, ip_address: str = "") -> ExportBatch:
    """Void a batch: its entries become exportable again by the template. Nothing is deleted."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Enter why the batch is being voided", "reason")
    if len(reason) > 500:
        raise DomainError("The reason must be 500 characters or fewer", "reason")
    with write_transaction():
        query = ExportBatch.select().where(ExportBatch.id == batch.id)
        batch = (query.for_update() if is_postgres() else query).get()
        if batch.is_void:
            raise DomainError("This batch is already void", "reason")
        released = (
            ExportedEntry.update(active=None)
            .where((ExportedEntry.batch == batch.id) & (ExportedEntry.active == True))  # noqa: E712
            .execute()
        )
        batch.status = "void"
        batch.voided_by = actor
        batch.voided_at = utcnow()
        batch.void_reason = reason
        batch.save()
        audit.record(
            "export.void",
            actor=actor,
            object_type="export_batch",
            object_id=batch.id,
            summary=f"Voided export batch {batch.file_name}: {released:,} transactions can be exported again",
            before={"status": "exported"},
            after={"status": "void", "reason": reason, "released": released},
            ip_address=ip_address,
        )
    return batch


# --- who may see what ---------------------------------------------------------------------------


def template_fund_ids(template: ExportTemplate) -> set[int] | None:
    """The funds a template selects, or None for every fund."""
    codes = json.loads(template.definition or "{}").get("selection", {}).get("funds", [])
    return set(_ids(Fund, codes)) if codes else None


def can_see_template(template: ExportTemplate, visible_fund_ids: set[int]) -> bool:
    """A user sees a template's batches if they can see every fund it may include."""
    funds = template_fund_ids(template)
    if funds is None:
        every = {row.id for row in Fund.select(Fund.id)}
        return every <= visible_fund_ids
    return funds <= visible_fund_ids


def visible_templates(visible_fund_ids: set[int]) -> list[ExportTemplate]:
    return [t for t in ExportTemplate.select().order_by(ExportTemplate.name) if can_see_template(t, visible_fund_ids)]


def history(
    visible_fund_ids: set[int],
    *,
    template_id: int | None = None,
    status: str = "",
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
):
    """Batches the user may see, newest first, filtered."""
    from app.domain.ukdates import start_of_day_utc

    ids = [t.id for t in visible_templates(visible_fund_ids)]
    query = ExportBatch.select().where(ExportBatch.template.in_(ids or [0]))
    if template_id:
        query = query.where(ExportBatch.template == template_id)
    if status in STATUSES:
        query = query.where(ExportBatch.status == status)
    if date_from:
        query = query.where(ExportBatch.created_at >= start_of_day_utc(date_from))
    if date_to:
        query = query.where(ExportBatch.created_at < start_of_day_utc(date_to + dt.timedelta(days=1)))
    return query.order_by(ExportBatch.created_at.desc(), ExportBatch.id.desc())


def batches_for_entry(entry_id: int) -> list[tuple[ExportBatch, bool]]:
    """Every batch an entry went into, oldest first, with whether the entry is still live in it."""
    rows = (
        ExportedEntry.select(ExportedEntry, ExportBatch)
        .join(ExportBatch)
        .where(ExportedEntry.entry == entry_id)
        .order_by(ExportBatch.created_at, ExportBatch.id)
    )
    return [(row.batch, row.active is not None) for row in rows]


# --- the schedule -------------------------------------------------------------------------------


def run_due_exports(now: dt.datetime | None = None) -> dict[str, str]:
    """Run each enabled daily template once a day, at or after its time (UK), up to yesterday.

    The day is claimed first (an UPDATE that only one worker can win), so two workers never both
    run it; a failed run is recorded on the template and tried again the next day.
    """
    from app.domain.ukdates import to_london

    now = now or utcnow()
    local = to_london(now)
    today = local.date()
    clock = local.strftime("%H:%M")
    outcome: dict[str, str] = {}
    due = ExportTemplate.select().where(
        (ExportTemplate.enabled == True) & (ExportTemplate.schedule == "daily")  # noqa: E712
    )
    for template in list(due):
        if template.schedule_time > clock or (template.last_scheduled_on and template.last_scheduled_on >= today):
            continue
        claimed = (
            ExportTemplate.update(last_scheduled_on=today)
            .where(
                (ExportTemplate.id == template.id)
                & (ExportTemplate.last_scheduled_on.is_null() | (ExportTemplate.last_scheduled_on < today))
            )
            .execute()
        )
        if not claimed:
            continue
        error = ""
        try:
            batch = run_export(template, today - dt.timedelta(days=1), trigger="schedule")
            outcome[template.code] = f"batch {batch.id}: {batch.entry_count} entries"
        except NothingToExport:
            outcome[template.code] = "nothing to export"
        except DomainError as exc:
            error = exc.message
            outcome[template.code] = f"failed: {error}"
        ExportTemplate.update(last_error=error).where(ExportTemplate.id == template.id).execute()
    return outcome
