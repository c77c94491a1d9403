"""Suspense: money the council has received but cannot yet put where it belongs.

Money lands in suspense when it cannot be matched to a fund and account: an import row no
rule could place, a bank credit nobody recognises, a payment whose reference failed
validation, or something staff record by hand. It is posted to a suspense fund
(`Fund.is_suspense`, "SUSP" in the demo), so the ledger always shows it; a `SuspenseItem`
tracks each such entry until it has been allocated in full.

**Filling suspense.** Imports, bank matching and the API call `put_into_suspense()`: it posts
the money to the suspense fund through `ledger.post()` (idempotent on the caller's key) and
opens the item, in one transaction. Bulk paths that post set-based can open items for entries
they already posted with `open_item_for_entry()`.

**Clearing suspense.** `allocate()` moves all or part of what is left of an item to one or
more funds and accounts, each line checked against its fund's reference rule for staff. One
transaction posts a negative entry on the suspense fund and a positive entry for each
destination, all linked (`corrects`) to the item's entry, with the journal method of payment
(money moving inside the council) under one group reference ("SUS-XXXX-XXXX"), and lowers the
item's remaining amount. The remaining amount can never go below zero: allocations of one
item queue on row locks (PostgreSQL: FOR UPDATE on the entry and the item) or the write lock
(SQLite), the update is conditional on the amount read under the lock, and the database
refuses a negative remainder (CHECK constraint, migrations/0006_suspense.py). Each allocation
carries a submission key (one per "check your answers" page): the same key always returns
the allocation it first made, so a double click or a second tab never allocates twice.

What is left is also checked against the ledger (the entry's amount less every linked entry
on the same fund and account), so money moved out of suspense some other way (a reversal or
journal of the entry) can never be allocated again.

**Who sees what.** Suspense items are scoped like every other ledger record: a user sees the
items of the suspense funds in their fund groups (in the demo, SUSP is in the "Corporate
income" and "All funds" groups, so housing staff see none). A council that wants each team to
clear its own unidentified money gives each team a suspense fund of its own. Allocation
destinations must be funds the user can see, and never a suspense fund.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from peewee import (
    JOIN,
    SQL,
    BigAutoField,
    BigIntegerField,
    CharField,
    Check,
    DateField,
    DateTimeField,
    ForeignKeyField,
    IntegrityError,
    TextField,
    fn,
)

from app.db import BaseModel, is_postgres, utcnow
from app.domain import audit
from app.domain.errors import DomainError, ImmutableRecord, NotFound
from app.domain.funds import Fund, visible_fund_ids
from app.domain.ledger import (
    CROCKFORD,
    MAX_NARRATIVE_LENGTH,
    MAX_SUBMISSION_KEY_LENGTH,
    IdempotencyConflict,
    LedgerEntry,
    PostingRequest,
    audit_entries,
    checked_submission_key,
    is_valid_receipt_reference,
    post,
    post_many,
    receipt_number_of,
    write_rows,
    write_transaction,
)
from app.domain.methods import MethodOfPayment, journal_method
from app.domain.money import format_pence
from app.domain.offices import Office
from app.domain.references import validate_reference
from app.domain.ukdates import business_date
from app.domain.users import Permission, User

# Why the money is in suspense. Keys are stored; values are for people.
SOURCES: dict[str, str] = {
    "import": "Import",
    "bank": "Unidentified bank credit",
    "failed_validation": "Failed reference validation",
    "manual": "Recorded by staff",
}
# The ledger source of the entry that brings the money in, unless the caller says otherwise.
LEDGER_SOURCES: dict[str, str] = {
    "import": "import",
    "bank": "import",
    "failed_validation": "import",
    "manual": "staff_payment",
}
STATUSES: dict[str, str] = {"open": "Open", "allocated": "Allocated"}
# Age bands for filtering: (label, youngest, oldest) in whole days since the money was received.
AGE_BANDS: dict[str, tuple[str, int, int | None]] = {
    "0-7": ("0 to 7 days", 0, 7),
    "8-30": ("8 to 30 days", 8, 30),
    "31-90": ("31 to 90 days", 31, 90),
    "over-90": ("Over 90 days", 91, None),
}
MAX_DETAIL_LENGTH = 500
MAX_NOTE_LENGTH = 1000
MAX_ALLOCATION_NOTE_LENGTH = 500
MAX_LINES = 20
GROUP_PREFIX = "SUS"


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


class SuspenseItem(BaseModel):
    """One ledger entry of money in a suspense fund, and how much of it is still to allocate."""

    id = BigAutoField()
    ledger_entry = ForeignKeyField(LedgerEntry, unique=True, backref="suspense_items", on_delete="RESTRICT")
    # The suspense fund (always the entry's own fund): kept here so scoping needs no join.
    fund = ForeignKeyField(Fund, backref="suspense_items", on_delete="RESTRICT")
    amount_pence = BigIntegerField()
    remaining_pence = BigIntegerField()
    source = CharField(max_length=20, index=True)
    # e.g. the reference that failed and why, or the bank statement narrative.
    source_detail = CharField(max_length=MAX_DETAIL_LENGTH, default="")
    # The business date the money was received (the entry's business date).
    received_on = DateField(index=True)
    status = CharField(max_length=10, default="open", index=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        constraints = [
            Check("amount_pence > 0"),
            Check("remaining_pence >= 0"),
            Check("remaining_pence <= amount_pence"),
            Check("(status = 'open' AND remaining_pence > 0) OR (status = 'allocated' AND remaining_pence = 0)"),
        ]

    def delete_instance(self, *args, **kwargs):
        raise ImmutableRecord("Suspense items cannot be deleted")

    @classmethod
    def delete(cls, *args, **kwargs):
        raise ImmutableRecord("Suspense items cannot be deleted")

    @property
    def source_name(self) -> str:
        return SOURCES.get(self.source, self.source)

    @property
    def status_name(self) -> str:
        return STATUSES.get(self.status, self.status)

    @property
    def allocated_pence(self) -> int:
        return self.amount_pence - self.remaining_pence

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    def age_days(self, today: dt.date | None = None) -> int:
        return max(0, ((today or uk_today()) - self.received_on).days)

    def age_text(self, today: dt.date | None = None) -> str:
        days = self.age_days(today)
        return "Today" if days == 0 else f"{days} day{'s' if days != 1 else ''}"

    def notes_newest_first(self):
        return (
            SuspenseNote.select(SuspenseNote, User)
            .join(User)
            .where(SuspenseNote.item == self)
            .order_by(SuspenseNote.created_at.desc(), SuspenseNote.id.desc())
        )

    def allocations_oldest_first(self):
        return SuspenseAllocation.select().where(SuspenseAllocation.item == self).order_by(SuspenseAllocation.id)


class _AppendOnly(BaseModel):
    """Notes and allocations are history: added, never changed or removed."""

    immutable_message = "This record cannot be changed"

    def save(self, *args, **kwargs):
        if self._pk is not None and not kwargs.get("force_insert"):
            raise ImmutableRecord(self.immutable_message)
        return super().save(*args, **kwargs)

    def delete_instance(self, *args, **kwargs):
        raise ImmutableRecord(self.immutable_message)

    @classmethod
    def update(cls, *args, **kwargs):
        raise ImmutableRecord(cls.immutable_message)

    @classmethod
    def delete(cls, *args, **kwargs):
        raise ImmutableRecord(cls.immutable_message)


class SuspenseNote(_AppendOnly):
    id = BigAutoField()
    item = ForeignKeyField(SuspenseItem, backref="notes", on_delete="RESTRICT")
    user = ForeignKeyField(User, backref="suspense_notes", on_delete="RESTRICT")
    text = TextField()
    created_at = DateTimeField(default=utcnow)

    immutable_message = "Notes cannot be changed or deleted: add another note"


class SuspenseAllocation(_AppendOnly):
    """One allocation of an item: its entries share `group_reference`."""

    id = BigAutoField()
    item = ForeignKeyField(SuspenseItem, backref="allocations", on_delete="RESTRICT")
    group_reference = CharField(max_length=20, unique=True)
    submission_key = CharField(max_length=MAX_SUBMISSION_KEY_LENGTH, unique=True)
    amount_pence = BigIntegerField()
    note = CharField(max_length=MAX_ALLOCATION_NOTE_LENGTH, default="")
    created_by = ForeignKeyField(User, backref="suspense_allocations", on_delete="RESTRICT")
    created_at = DateTimeField(default=utcnow, index=True)

    immutable_message = "Allocations cannot be changed or deleted: correct the ledger entries instead"

    class Meta:
        constraints = [Check("amount_pence > 0")]

    def entries(self) -> list[LedgerEntry]:
        """The entries it posted: the suspense fund's negative entry first, then each destination."""
        return list(
            LedgerEntry.select().where(LedgerEntry.group_reference == self.group_reference).order_by(LedgerEntry.id)
        )


# ---------------------------------------------------------------------------
# Values passed in and out
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AllocationLine:
    """Where some of the money goes, as the user gave it (reference not yet normalised).

    `number` is the line's number on the form (1-based) for messages; 0 means its position.
    """

    fund: Fund | None
    reference: str
    amount_pence: int | None
    number: int = 0


@dataclass(frozen=True)
class CheckedLine:
    fund: Fund
    reference: str  # normalised by the fund's rule
    amount_pence: int
    account_name: str = ""  # the account holder, when the fund has an account list
    warnings: tuple[str, ...] = ()


@dataclass
class CheckedAllocation:
    lines: list[CheckedLine]
    total_pence: int
    remaining_before: int

    @property
    def remaining_after(self) -> int:
        return self.remaining_before - self.total_pence


class AllocationRefused(DomainError):
    """What is wrong, by form field ("lines-<row>-fund|reference|amount", "total", "note").

    Rows are 0-based positions on the form (the line's `number` - 1).
    """

    def __init__(self, errors: dict[str, str]):
        super().__init__(next(iter(errors.values())), next(iter(errors)))
        self.errors = errors


@dataclass(frozen=True)
class AllocationResult:
    allocation: SuspenseAllocation
    entries: list[LedgerEntry]
    # False when the submission key had already been used and the first allocation is returned.
    created: bool


@dataclass
class SuspenseFilters:
    status: str = "open"  # open | allocated | all
    age: str = ""  # a key of AGE_BANDS, or "" for any age
    source: str = ""  # a key of SOURCES, or ""
    text: str = ""  # in the reference, payer, narrative, receipt or detail
    amount_from: int | None = None  # pence, on the amount received
    amount_to: int | None = None


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def uk_today() -> dt.date:
    return business_date(utcnow())


def suspense_funds():
    return Fund.select().where(Fund.is_suspense == True).order_by(Fund.name)  # noqa: E712


def can_see(item: SuspenseItem, user) -> bool:
    return user is not None and item.fund_id in visible_fund_ids(user)


def visible_item(item_id, user) -> SuspenseItem:
    """The item if it exists and is in one of the user's suspense funds; NotFound otherwise.

    An item outside the user's fund groups is "not found", so its existence is not disclosed.
    """
    try:
        number = int(item_id)
    except (TypeError, ValueError):
        raise NotFound("There is no such suspense item") from None
    item = SuspenseItem.get_or_none(SuspenseItem.id == number)
    if item is None or not can_see(item, user):
        raise NotFound("There is no such suspense item")
    return item


def ledger_remaining_pence(item: SuspenseItem) -> int:
    """What the ledger says is left of the item's entry on its fund and account.

    The entry's amount plus every linked entry on the same fund and account: allocations'
    negative entries, and any reversal or journal of the entry made some other way.
    """
    entry = item.ledger_entry
    linked = (
        LedgerEntry.select(fn.COALESCE(fn.SUM(LedgerEntry.amount_pence), 0))
        .where(
            (LedgerEntry.corrects == entry.id)
            & (LedgerEntry.fund == entry.fund_id)
            & (LedgerEntry.account_reference == entry.account_reference)
        )
        .scalar()
    )
    return entry.amount_pence + int(linked or 0)  # PostgreSQL sums BIGINT as NUMERIC


def available_pence(item: SuspenseItem) -> int:
    """What can still be allocated: the item's remaining amount, never more than the ledger's."""
    return max(0, min(item.remaining_pence, ledger_remaining_pence(item)))


def _checked_actor(actor) -> User:
    if not isinstance(actor, User) or actor.id is None:
        raise DomainError("Suspense items are allocated by a signed-in user")
    if not actor.can(Permission.CORRECT_LEDGER):
        raise DomainError("You do not have permission to allocate suspense items or add notes")
    return actor


def _narrative(text: str) -> str:
    return text if len(text) <= MAX_NARRATIVE_LENGTH else text[: MAX_NARRATIVE_LENGTH - 1] + "…"


# ---------------------------------------------------------------------------
# Filling suspense
# ---------------------------------------------------------------------------


def _open_item(entry: LedgerEntry, source: str, detail: str) -> SuspenseItem:
    return SuspenseItem.create(
        ledger_entry=entry,
        fund=entry.fund_id,
        amount_pence=entry.amount_pence,
        remaining_pence=entry.amount_pence,
        source=source,
        source_detail=detail,
        received_on=entry.business_date,
        status="open",
    )


def _checked_source(source: str) -> str:
    if source not in SOURCES:
        raise DomainError(f"Unknown reason for money in suspense: {source!r}", "source")
    return source


def _checked_detail(detail) -> str:
    text = (detail or "").strip() if isinstance(detail, str) or detail is None else None
    if text is None:
        raise DomainError("The detail must be text", "detail")
    # Detail comes from machines (import errors, bank narratives): keep what fits rather than refuse the money.
    return text if len(text) <= MAX_DETAIL_LENGTH else text[: MAX_DETAIL_LENGTH - 1] + "…"


def suspense_request(
    fund: Fund,
    amount_pence: int,
    method: MethodOfPayment,
    *,
    source: str,
    idempotency_key: str,
    reference: str = "",
    taken_at: dt.datetime | None = None,
    payer_name: str = "",
    payer_email: str = "",
    payer_address: str = "",
    narrative: str = "",
    user: User | None = None,
    office: Office | None = None,
    source_reference: str = "",
    import_batch_id: int | None = None,
    ledger_source: str | None = None,
) -> PostingRequest:
    """The posting that brings money into a suspense fund (see `put_into_suspense`).

    `put_into_suspense` posts it one at a time; bulk paths (imports) post many with
    `ledger.post_batch` and then open their items with `open_items_bulk`.
    """
    if not isinstance(fund, Fund) or fund.id is None or not fund.is_suspense:
        raise DomainError("Money in suspense must go to a suspense fund", "fund")
    source = _checked_source(source)
    if not isinstance(amount_pence, int) or isinstance(amount_pence, bool) or amount_pence <= 0:
        raise DomainError("Enter an amount greater than £0.00", "amount")
    return PostingRequest(
        idempotency_key=idempotency_key,
        fund=fund,
        account_reference=(reference or "").strip().upper(),
        amount_pence=amount_pence,
        method=method,
        source=ledger_source or LEDGER_SOURCES[source],
        taken_at=taken_at,
        office=office,
        user=user,
        narrative=narrative or f"In suspense: {SOURCES[source].lower()}",
        payer_name=payer_name,
        payer_email=payer_email,
        payer_address=payer_address,
        source_reference=source_reference,
        import_batch_id=import_batch_id,
        money_already_taken=True,
    )


def open_items_bulk(entries: Iterable[tuple[int, int, int, dt.date, str]], *, source: str) -> int:
    """Open items, set-based, for money a bulk posting has just put into a suspense fund.

    `entries` are (ledger entry id, suspense fund id, amount in pence, business date, detail),
    for entries made by `ledger.post_batch` from `suspense_request` (so each is money received
    in a suspense fund). Written in one statement per call (COPY on PostgreSQL) inside the
    caller's transaction; returns how many were opened. Nothing is audited per item: the caller
    (an import batch) records the whole posting.
    """
    source = _checked_source(source)
    postgres = is_postgres()
    now = utcnow()
    stamp = now if postgres else str(now)
    rows = []
    for entry_id, fund_id, amount, day, detail in entries:
        if not isinstance(amount, int) or amount <= 0:
            raise DomainError("Only money received can be put into suspense", "amount")
        received = day if postgres else str(day)
        rows.append(
            (entry_id, fund_id, amount, amount, source, _checked_detail(detail), received, "open", stamp, stamp)
        )
    if rows:
        columns = (
            "ledger_entry_id",
            "fund_id",
            "amount_pence",
            "remaining_pence",
            "source",
            "source_detail",
            "received_on",
            "status",
            "created_at",
            "updated_at",
        )
        write_rows("suspense_item", columns, rows)
    return len(rows)


def put_into_suspense(
    fund: Fund,
    amount_pence: int,
    method: MethodOfPayment,
    *,
    source: str,
    idempotency_key: str,
    reference: str = "",
    detail: str = "",
    taken_at: dt.datetime | None = None,
    payer_name: str = "",
    payer_email: str = "",
    payer_address: str = "",
    narrative: str = "",
    user: User | None = None,
    office: Office | None = None,
    source_reference: str = "",
    import_batch_id: int | None = None,
    ledger_source: str | None = None,
    ip_address: str = "",
) -> tuple[SuspenseItem, bool]:
    """Record money that cannot be placed: post it to a suspense fund and open an item for it.

    This is what imports, bank matching and the API call with money they cannot place:
    - `fund` must be a suspense fund; `method` is how the money arrived (bank transfer, allpay …);
    - `source` says why it is in suspense (a key of SOURCES) and `detail` explains, in words
      for the person who will clear it (e.g. "Reference 12345 failed: the check digit is wrong");
    - `reference` is the reference as received (any text, not validated: that is the point);
    - `idempotency_key` is the caller's natural key for the money (e.g. "import:<batch>:<row>"):
      calling again with it returns the item already made (created=False) and posts nothing;
    - `ledger_source` overrides the entry's ledger source (default from LEDGER_SOURCES).
    Posts even if the suspense fund or the method has since been disabled: the money has arrived.
    Returns (item, created). Safe inside the caller's transaction.
    """
    detail = _checked_detail(detail)
    request = suspense_request(
        fund,
        amount_pence,
        method,
        source=source,
        idempotency_key=idempotency_key,
        reference=reference,
        taken_at=taken_at,
        payer_name=payer_name,
        payer_email=payer_email,
        payer_address=payer_address,
        narrative=narrative,
        user=user,
        office=office,
        source_reference=source_reference,
        import_batch_id=import_batch_id,
        ledger_source=ledger_source,
    )
    try:
        with write_transaction():
            result = post(request)
            item = SuspenseItem.get_or_none(SuspenseItem.ledger_entry == result.entry.id)
            if item is not None:
                return item, False
            item = _open_item(result.entry, source, detail)
            if user is not None:
                audit.record(
                    "suspense.receive",
                    actor=user,
                    object_type="suspense_item",
                    object_id=item.id,
                    summary=f"Put {format_pence(amount_pence)} into suspense (receipt "
                    f"{result.entry.receipt_reference}): {SOURCES[source].lower()}",
                    after={"receipt": result.entry.receipt_reference, "source": source, "detail": detail},
                    ip_address=ip_address,
                )
    except IntegrityError:
        # PostgreSQL: a racing call with the same key committed first.
        entry = LedgerEntry.get_or_none(LedgerEntry.idempotency_key == idempotency_key.strip())
        item = SuspenseItem.get_or_none(SuspenseItem.ledger_entry == entry.id) if entry is not None else None
        if item is None:
            raise
        return item, False
    return item, True


def open_item_for_entry(entry: LedgerEntry, *, source: str, detail: str = "") -> tuple[SuspenseItem, bool]:
    """Open an item for money already posted to a suspense fund (bulk imports post set-based).

    Returns (item, created); an entry that already has an item returns it.
    """
    source = _checked_source(source)
    detail = _checked_detail(detail)
    if not isinstance(entry, LedgerEntry) or entry.id is None:
        raise DomainError("A suspense item needs a posted ledger entry", "entry")
    if not entry.fund.is_suspense:
        raise DomainError(f"Receipt {entry.receipt_reference} is not in a suspense fund", "entry")
    if entry.amount_pence <= 0 or entry.corrects_id is not None:
        raise DomainError(f"Receipt {entry.receipt_reference} is not money received", "entry")
    existing = SuspenseItem.get_or_none(SuspenseItem.ledger_entry == entry.id)
    if existing is not None:
        return existing, False
    try:
        with write_transaction():
            return _open_item(entry, source, detail), True
    except IntegrityError:
        existing = SuspenseItem.get_or_none(SuspenseItem.ledger_entry == entry.id)
        if existing is None:
            raise
        return existing, False


# ---------------------------------------------------------------------------
# Notes
# ---------------------------------------------------------------------------


def add_note(item: SuspenseItem, actor, text, *, ip_address: str = "") -> SuspenseNote:
    """Add a note to an item (what was tried, who was asked). Notes are never changed."""
    actor = _checked_actor(actor)
    if not can_see(item, actor):
        raise NotFound("There is no such suspense item")
    cleaned = (text or "").strip() if isinstance(text, str) or text is None else None
    if cleaned is None:
        raise DomainError("The note must be text", "text")
    if not cleaned:
        raise DomainError("Enter a note", "text")
    if len(cleaned) > MAX_NOTE_LENGTH:
        raise DomainError(f"The note must be {MAX_NOTE_LENGTH} characters or fewer", "text")
    with write_transaction():
        note = SuspenseNote.create(item=item, user=actor, text=cleaned)
        audit.record(
            "suspense.note",
            actor=actor,
            object_type="suspense_item",
            object_id=item.id,
            summary=f"Added a note to suspense item {item.id}",
            after={"note": cleaned},
            ip_address=ip_address,
        )
    return note


# ---------------------------------------------------------------------------
# Allocating
# ---------------------------------------------------------------------------


def _row(index: int, line: AllocationLine) -> int:
    return (line.number - 1) if line.number else index


def can_allocate_message(item: SuspenseItem) -> str | None:
    """Why nothing can be allocated from this item now, in words; None if something can."""
    if not item.is_open:
        return "This item has already been allocated in full"
    if available_pence(item) <= 0:
        return "This money has already been taken out of suspense in the ledger (by a reversal or journal)"
    return None


def check_allocation(item: SuspenseItem, actor, lines: Sequence[AllocationLine]) -> CheckedAllocation:
    """Every line checked and normalised, and the total against what is left.

    AllocationRefused carries every problem at once, by form field, so the form can show
    them all. Also used by the check-your-answers page, so the user sees what will be posted.
    """
    actor = _checked_actor(actor)
    if not can_see(item, actor):
        raise NotFound("There is no such suspense item")
    item = SuspenseItem.get_by_id(item.id)  # what is left now, not when the caller read it
    problem = can_allocate_message(item)
    if problem:
        raise DomainError(problem, "item")
    lines = list(lines)
    if not lines:
        raise AllocationRefused({"lines-0-fund": "Enter where the money is going: a fund, reference and amount"})
    if len(lines) > MAX_LINES:
        raise AllocationRefused({"lines-0-fund": f"An allocation can have up to {MAX_LINES} lines"})
    method = journal_method()
    fund_ids = visible_fund_ids(actor)
    errors: dict[str, str] = {}
    checked: list[CheckedLine] = []
    seen: dict[tuple[int, str], int] = {}
    for index, line in enumerate(lines):
        row = _row(index, line)
        n = row + 1
        fund, amount = line.fund, line.amount_pence
        if not isinstance(fund, Fund) or fund.id is None or fund.id not in fund_ids:
            errors[f"lines-{row}-fund"] = f"Select the fund for line {n}"
            fund = None
        elif fund.is_suspense:
            errors[f"lines-{row}-fund"] = f"Line {n}: money cannot be allocated to a suspense fund"
            fund = None
        if amount is None:
            errors[f"lines-{row}-amount"] = f"Enter the amount for line {n}"
        elif not isinstance(amount, int) or isinstance(amount, bool):
            errors[f"lines-{row}-amount"] = f"The amount for line {n} must be a whole number of pence"
            amount = None
        elif amount <= 0:
            errors[f"lines-{row}-amount"] = f"The amount for line {n} must be more than £0.00"
            amount = None
        if fund is None:
            if not (line.reference or "").strip():
                errors[f"lines-{row}-reference"] = f"Enter the reference for line {n}"
            continue
        # Money arriving on an account meets the fund's rules for staff in full: format,
        # account list, on-stop, limits (the amount only when it is known to be good).
        result = validate_reference(fund, line.reference, amount, channel="staff", method=method)
        for name, message in result.errors.items():
            key = f"lines-{row}-{'amount' if name == 'amount' else 'reference'}"
            errors.setdefault(key, f"Line {n}: {message}")
        if not result.valid or amount is None:
            continue
        place = (fund.id, result.reference)
        if place in seen:
            errors[f"lines-{row}-reference"] = f"Line {n} is for the same account as line {seen[place]}"
            continue
        seen[place] = n
        account = result.account
        checked.append(
            CheckedLine(fund, result.reference, amount, getattr(account, "name", "") or "", tuple(result.warnings))
        )
    if errors:
        raise AllocationRefused(errors)
    total = sum(line.amount_pence for line in checked)
    available = available_pence(item)
    if total > available:
        raise AllocationRefused({"total": f"You can allocate up to {format_pence(available)}"})
    return CheckedAllocation(checked, total, available)


def _lock(item: SuspenseItem) -> SuspenseItem:
    """Re-read the item under a lock, so allocations of one item happen one after another.

    SQLite: the write transaction already holds the database's only write lock. PostgreSQL:
    the item's entry is locked first (as reversals and journals of an entry lock it, so they
    queue with allocations), then the item itself.
    """
    entry_query = LedgerEntry.select(LedgerEntry.id).where(LedgerEntry.id == item.ledger_entry_id)
    item_query = SuspenseItem.select().where(SuspenseItem.id == item.id)
    if is_postgres():
        entry_query.for_update().get()
        item_query = item_query.for_update()
    return item_query.get()


def _replayed(key: str, item: SuspenseItem) -> AllocationResult | None:
    existing = SuspenseAllocation.get_or_none(SuspenseAllocation.submission_key == key)
    if existing is None:
        return None
    if existing.item_id != item.id:
        raise IdempotencyConflict(
            f"This submission was already used for another allocation ({existing.group_reference})", "submission_key"
        )
    return AllocationResult(existing, existing.entries(), False)


def _new_group_reference() -> str:
    for _ in range(10):
        body = "".join(secrets.choice(CROCKFORD) for _ in range(8))
        reference = f"{GROUP_PREFIX}-{body[:4]}-{body[4:]}"
        if not SuspenseAllocation.select().where(SuspenseAllocation.group_reference == reference).exists():
            return reference
    raise RuntimeError("Could not make a unique allocation reference")  # pragma: no cover


def allocate(
    item: SuspenseItem,
    actor,
    lines: Sequence[AllocationLine],
    *,
    submission_key: str,
    note: str = "",
    ip_address: str = "",
) -> AllocationResult:
    """Allocate all or part of what is left of `item`: all of it in one transaction, or nothing.

    Posts a negative entry on the suspense fund (for the total) and a positive entry for each
    line, all linked to the item's entry, and lowers the item's remaining amount (status
    "allocated" at zero). The same `submission_key` returns the first allocation (created=False).
    Raises AllocationRefused (by form field) or DomainError; nothing is posted then.
    """
    key = checked_submission_key(submission_key, "An allocation")
    actor = _checked_actor(actor)
    if not isinstance(item, SuspenseItem) or item.id is None or not can_see(item, actor):
        raise NotFound("There is no such suspense item")
    replay = _replayed(key, item)
    if replay is not None:
        return replay
    note_text = (note or "").strip() if isinstance(note, str) or note is None else None
    if note_text is None or len(note_text) > MAX_ALLOCATION_NOTE_LENGTH:
        raise AllocationRefused({"note": f"The note must be {MAX_ALLOCATION_NOTE_LENGTH} characters or fewer"})
    try:
        checked = check_allocation(item, actor, lines)
    except DomainError:
        # A racing submission with this key may have just taken what was left: it is this one.
        replay = _replayed(key, item)
        if replay is not None:
            return replay
        raise
    method = journal_method()
    try:
        with write_transaction():
            locked = _lock(item)
            # Looked up again under the lock: a racing submission with this key is seen here.
            replay = _replayed(key, locked)
            if replay is not None:
                return replay
            entry = LedgerEntry.get_by_id(locked.ledger_entry_id)
            problem = can_allocate_message(locked)
            if problem:
                raise AllocationRefused({"total": problem})
            available = available_pence(locked)
            if checked.total_pence > available:
                raise AllocationRefused({"total": f"You can allocate up to {format_pence(available)}"})
            remaining = available - checked.total_pence
            group_reference = _new_group_reference()
            allocation = SuspenseAllocation.create(
                item=locked,
                group_reference=group_reference,
                submission_key=key,
                amount_pence=checked.total_pence,
                note=note_text,
                created_by=actor,
            )
            why = f": {note_text}" if note_text else ""
            requests = [
                PostingRequest(
                    idempotency_key=f"suspense:{key}:0",
                    fund=entry.fund,
                    account_reference=entry.account_reference,
                    amount_pence=-checked.total_pence,
                    method=method,
                    vat_code=entry.vat_code,
                    # The money is already in the suspense fund: a disabled suspense fund can still be cleared.
                    money_already_taken=True,
                    source="suspense_allocation",
                    user=actor,
                    corrects=entry,
                    narrative=_narrative(f"Allocated from suspense item {locked.id}{why}"),
                    payer_name=entry.payer_name,
                    source_reference=entry.receipt_reference,
                )
            ]
            for n, line in enumerate(checked.lines, start=1):
                requests.append(
                    PostingRequest(
                        idempotency_key=f"suspense:{key}:{n}",
                        fund=line.fund,
                        account_reference=line.reference,
                        amount_pence=line.amount_pence,
                        method=method,
                        source="suspense_allocation",
                        user=actor,
                        corrects=entry,
                        narrative=_narrative(
                            f"From suspense item {locked.id} (receipt {entry.receipt_reference}){why}"
                        ),
                        payer_name=entry.payer_name,
                        payer_email=entry.payer_email,
                        payer_address=entry.payer_address,
                        source_reference=entry.receipt_reference,
                    )
                )
            results = post_many(requests, group_reference=group_reference)
            # Conditional on what was read under the lock: if anything else changed it, nothing happens.
            updated = (
                SuspenseItem.update(
                    remaining_pence=remaining,
                    status="allocated" if remaining == 0 else "open",
                    updated_at=utcnow(),
                )
                .where(
                    (SuspenseItem.id == locked.id)
                    & (SuspenseItem.remaining_pence == locked.remaining_pence)
                    & (SuspenseItem.status == "open")
                )
                .execute()
            )
            if updated != 1:  # pragma: no cover - the lock makes this unreachable; kept so a bug fails safe
                raise AllocationRefused({"total": "This item changed while you were allocating it: try again"})
            entries = [r.entry for r in results]
            audit.record(
                "suspense.allocate",
                actor=actor,
                object_type="suspense_item",
                object_id=locked.id,
                summary=f"Allocated {format_pence(checked.total_pence)} from suspense item {locked.id} "
                f"({group_reference}) to {len(checked.lines)} account{'s' if len(checked.lines) != 1 else ''}",
                before={"remaining_pence": locked.remaining_pence, "status": locked.status},
                after={
                    "remaining_pence": remaining,
                    "status": "allocated" if remaining == 0 else "open",
                    "group_reference": group_reference,
                    "note": note_text,
                    "entries": audit_entries(entries),
                },
                ip_address=ip_address,
            )
    except IntegrityError:
        # PostgreSQL: a racing transaction with the same key committed first (unique index).
        replay = _replayed(key, item)
        if replay is None:
            raise
        return replay
    return AllocationResult(allocation, entries, True)


# ---------------------------------------------------------------------------
# Finding items
# ---------------------------------------------------------------------------


def age_band_dates(band: str, today: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """(earliest, latest) received_on dates for an age band, either end open (None)."""
    _, youngest, oldest = AGE_BANDS[band]
    latest = today - dt.timedelta(days=youngest)
    earliest = today - dt.timedelta(days=oldest) if oldest is not None else None
    return earliest, latest


def search(user, filters: SuspenseFilters | None = None, *, today: dt.date | None = None):
    """Items in the user's suspense funds matching the filters, oldest first (the ones to clear first).

    Selects each item's ledger entry with it, so a list page needs one query.
    """
    filters = filters or SuspenseFilters()
    ids = sorted(visible_fund_ids(user)) if user is not None else []
    query = (
        SuspenseItem.select(SuspenseItem, LedgerEntry)
        .join(LedgerEntry, JOIN.INNER, on=(SuspenseItem.ledger_entry == LedgerEntry.id))
        .where(SuspenseItem.fund.in_(ids) if ids else SuspenseItem.id == 0)
    )
    if filters.status in STATUSES:
        query = query.where(SuspenseItem.status == filters.status)
    if filters.age in AGE_BANDS:
        earliest, latest = age_band_dates(filters.age, today or uk_today())
        query = query.where(SuspenseItem.received_on <= latest)
        if earliest is not None:
            query = query.where(SuspenseItem.received_on >= earliest)
    if filters.source in SOURCES:
        query = query.where(SuspenseItem.source == filters.source)
    text = (filters.text or "").strip()
    if text:
        matches = (
            SuspenseItem.source_detail.contains(text)
            | LedgerEntry.account_reference.contains(text)
            | LedgerEntry.payer_name.contains(text)
            | LedgerEntry.narrative.contains(text)
        )
        if is_valid_receipt_reference(text):
            matches = matches | (LedgerEntry.receipt_number == receipt_number_of(text))
        query = query.where(matches)
    if filters.amount_from is not None:
        query = query.where(SuspenseItem.amount_pence >= filters.amount_from)
    if filters.amount_to is not None:
        query = query.where(SuspenseItem.amount_pence <= filters.amount_to)
    return query.order_by(SuspenseItem.received_on, SuspenseItem.id)


def totals(query) -> tuple[int, int]:
    """(number of items, sum of what is left to allocate) for a search."""
    inner = query.select(SuspenseItem.remaining_pence).order_by().alias("items")
    count, total = (
        SuspenseItem.select(fn.COUNT(SQL("*")), fn.COALESCE(fn.SUM(inner.c.remaining_pence), 0))
        .from_(inner)
        .tuples()
        .get()
    )
    return int(count), int(total)


# ---------------------------------------------------------------------------
# Demo data
# ---------------------------------------------------------------------------

# days ago, source, method, reference as received, pence, payer, detail
DEMO_ITEMS = [
    (0, "bank", "BACS", "COUNCIL PAYMENT", 4_000, "J SMITH", "Bank credit with no account reference"),
    (1, "failed_validation", "ALLPAY", "59458073", 12_350, "Aisha Khan",
     "Council tax reference 59458073 failed: it is 8 digits, council tax numbers have 9"),
    (3, "import", "BACS", "INV1234567", 48_000, "Greenway Garage",
     "Sundry invoice INV1234567 failed: the check digit is wrong"),
    (5, "bank", "BACS", "RENT FLAT 2", 41_260, "J PRICE", "Bank credit: narrative only, no rent account number"),
    (6, "manual", "CHQ", "", 2_500, "Mrs E Morgan", "Cheque received by post with no covering letter"),
    (9, "failed_validation", "ALLPAY", "61234567893", 9_500, "Jordan Price",
     "Rent account 61234567893 failed: the check digit is wrong"),
    (14, "import", "ALLPAY", "DB1234567", 7_000, "", "Parking reference DB1234567 matched no fund"),
    (21, "bank", "BACS", "BUSINESS RATES", 125_000, "HOLLIS & SONS LTD", "Bank credit with no account reference"),
    (29, "import", "DWP", "5945807", 1_250, "", "DWP deduction for reference 5945807: too short for council tax"),
    (35, "failed_validation", "BACS", "C1001", 24_000, "The Corner Cafe", "Customer number C1001 is not in the list"),
    (47, "manual", "CASH", "", 1_000, "", "Cash found in the post room, no note with it"),
    (62, "bank", "BACS", "REF 12345", 15_075, "K GILL", "Bank credit: the reference matches no fund"),
    (88, "import", "ALLPAY", "6100000001", 8_800, "Priya Shah", "Rent reference 6100000001: 10 digits, rent has 11"),
    (120, "bank", "BACS", "LIBRARY", 650, "G LEE", "Bank credit: no library card number"),
    (200, "failed_validation", "BACS", "BJ1234567", 6_500, "Harry Williams",
     "Penalty charge notice BJ1234567 failed: it is 9 characters, notices have 10"),
]  # fmt: skip
DEMO_NOTES = {
    1: "Called the payer: they gave their council tax number as 594580735. Waiting for the bill to confirm.",
    5: "Emailed the rent team to ask which tenant this is.",
    13: "Bank asked for the remitter's details on the statement.",
}


def seed_suspense() -> int:
    """Demo suspense items of varied ages and sources (idempotent: fixed keys). Returns how many were new.

    Also opens items for the demo ledger's own payments into the suspense fund, so every
    pound in the demo's suspense fund is on the suspense list.
    """
    fund = suspense_funds().where(Fund.code == "SUSP").first() or suspense_funds().first()
    if fund is None:
        return 0
    methods = {m.code: m for m in MethodOfPayment.select()}
    clerk = User.get_or_none(User.email == "finance@demo.example.gov.uk")
    now = utcnow()
    created = 0
    for n, (days, source, method_code, reference, pence, payer, detail) in enumerate(DEMO_ITEMS):
        method = methods.get(method_code)
        if method is None:
            continue
        item, new = put_into_suspense(
            fund,
            pence,
            method,
            source=source,
            idempotency_key=f"demo-suspense-{n}",
            reference=reference,
            detail=detail,
            taken_at=now - dt.timedelta(days=days, minutes=37 * n),
            payer_name=payer,
            narrative="Demo suspense item",
        )
        created += int(new)
        note = DEMO_NOTES.get(n)
        if new and note and clerk is not None:
            SuspenseNote.create(item=item, user=clerk, text=note)
    orphans = (
        LedgerEntry.select()
        .join(SuspenseItem, JOIN.LEFT_OUTER, on=(SuspenseItem.ledger_entry == LedgerEntry.id))
        .where(
            (LedgerEntry.fund == fund.id)
            & (LedgerEntry.amount_pence > 0)
            & LedgerEntry.corrects.is_null()
            & LedgerEntry.idempotency_key.startswith("demo-seed-")
            & SuspenseItem.id.is_null()
        )
    )
    for entry in orphans:
        open_item_for_entry(entry, source="import", detail="Demo import: the reference matched no fund")
        created += 1
    return created
