"""Corrections to the ledger: reversals, journals and transfers.

The ledger is never edited. A correction is a group of new entries, posted together through
`ledger.post_many()` under one group reference ("REV-…", "JNL-…", "TRF-…"), with the reason
for it, who made it and when, recorded here and in the audit trail.

- A **reversal** takes what is left of an entry off its fund and account: one entry of the
  opposite sign, linked (`corrects`) to the entry, with the entry's own method of payment, so
  the takings for that method (what the bank or the cash office sees) net to zero.
- A **journal** moves all or part of an entry to other funds or accounts: a negative entry
  on the entry's fund and account and a positive one for each destination, all linked to the
  entry, with the journal method of payment (money that moves inside the council).
- A **transfer** moves money between accounts that no single entry explains: two or more
  lines, not linked to any entry, that must add up to exactly £0.00.

What is left of an entry is its amount plus every linked entry on the same fund and account
(reversals, the "out" line of each journal, refunds). Journal destinations are on other
accounts (a journal to the same account is refused), so they never count against it.

Only original entries are corrected. An entry that is itself a correction (a reversal, a
journal or transfer line, a refund) is not: reversing a reversal would make "what is left"
circular. Money put in the wrong place by a journal is moved back with a transfer.

Each correction carries a submission key (one per "check your answers" page): the same key
always returns the correction it first made, so a double click, a retried request or a
second tab never corrects twice. Corrections of one entry queue on a row lock (PostgreSQL)
or the write lock (SQLite), so two different submissions cannot both take what is left.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from peewee import (
    BigAutoField,
    BigIntegerField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegrityError,
    fn,
)

from app.db import BaseModel, is_postgres, utcnow
from app.domain import audit
from app.domain.errors import DomainError, ImmutableRecord, NotFound
from app.domain.funds import Fund, visible_fund_ids
from app.domain.ledger import (
    CROCKFORD,
    MAX_SUBMISSION_KEY_LENGTH,
    IdempotencyConflict,
    LedgerEntry,
    PostingRequest,
    audit_entries,
    checked_submission_key,
    post_many,
    write_transaction,
)
from app.domain.methods import MethodOfPayment, journal_method
from app.domain.money import format_pence
from app.domain.references import validate_reference
from app.domain.users import Permission, User

KINDS: dict[str, str] = {"reversal": "Reversal", "journal": "Journal", "transfer": "Transfer"}
PREFIXES: dict[str, str] = {"reversal": "REV", "journal": "JNL", "transfer": "TRF"}
MAX_REASON_LENGTH = 500
MAX_LINES = 50
# Entries that are corrections themselves: correct the original instead, or make a transfer.
NOT_CORRECTABLE = {"journal", "transfer", "reversal", "refund"}


class Correction(BaseModel):
    """One reversal, journal or transfer: its entries share `group_reference`."""

    id = BigAutoField()
    kind = CharField(max_length=20)
    group_reference = CharField(max_length=20, unique=True)
    submission_key = CharField(max_length=MAX_SUBMISSION_KEY_LENGTH, unique=True)
    # The entry reversed or journalled (None for a transfer).
    entry = ForeignKeyField(LedgerEntry, null=True, backref="correction_groups", on_delete="RESTRICT")
    # Reversed, moved, or transferred (the sum of a transfer's positive lines); always positive.
    amount_pence = BigIntegerField()
    reason = CharField(max_length=MAX_REASON_LENGTH)
    created_by = ForeignKeyField(User, backref="corrections", on_delete="RESTRICT")
    created_at = DateTimeField(default=utcnow, index=True)

    def save(self, *args, **kwargs):
        if self._pk is not None and not kwargs.get("force_insert"):
            raise ImmutableRecord("Corrections cannot be changed: make another correction instead")
        return super().save(*args, **kwargs)

    def delete_instance(self, *args, **kwargs):
        raise ImmutableRecord("Corrections cannot be deleted: make another correction instead")

    @classmethod
    def update(cls, *args, **kwargs):
        raise ImmutableRecord("Corrections cannot be changed: make another correction instead")

    @classmethod
    def delete(cls, *args, **kwargs):
        raise ImmutableRecord("Corrections cannot be deleted: make another correction instead")

    @property
    def kind_name(self) -> str:
        return KINDS.get(self.kind, self.kind)

    def entries(self) -> list[LedgerEntry]:
        """The entries it posted, in the order they were posted."""
        return list(
            LedgerEntry.select().where(LedgerEntry.group_reference == self.group_reference).order_by(LedgerEntry.id)
        )

    @classmethod
    def by_reference(cls, text: str) -> Correction | None:
        cleaned = "".join((text or "").split()).upper()
        return cls.get_or_none(cls.group_reference == cleaned) if cleaned else None

    @classmethod
    def for_funds(cls, fund_ids: Iterable[int]):
        """Corrections with at least one entry in the given funds (a user's visible funds)."""
        ids = sorted({int(i) for i in fund_ids})
        if not ids:
            return cls.select().where(cls.id == 0)
        groups = LedgerEntry.select(LedgerEntry.group_reference).where(
            LedgerEntry.fund.in_(ids) & LedgerEntry.source.in_(sorted(KINDS))
        )
        return cls.select().where(cls.group_reference.in_(groups))


@dataclass(frozen=True)
class Line:
    """A journal destination or a transfer line, as the user gave it (reference not yet normalised)."""

    fund: Fund | None
    reference: str
    amount_pence: int | None


@dataclass(frozen=True)
class LineProblem:
    line: int | None  # index into the lines given; None for the lines as a whole
    field: str  # fund, reference, amount, or "lines"
    message: str


class LinesRefused(DomainError):
    """One or more lines are wrong: every problem, so the form can show them all at once."""

    def __init__(self, problems: list[LineProblem]):
        super().__init__(problems[0].message, "lines")
        self.problems = problems


@dataclass(frozen=True)
class CorrectionResult:
    correction: Correction
    entries: list[LedgerEntry]
    # False when the submission key had already been used and the first correction is returned.
    created: bool


# ---------------------------------------------------------------------------
# What can be corrected, and how much is left
# ---------------------------------------------------------------------------


def remaining_pence(entry: LedgerEntry) -> int:
    """The entry's amount less what has been reversed, moved or refunded from its fund and account."""
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


def why_not_correctable(entry: LedgerEntry, kind: str) -> str | None:
    """Why this entry cannot be reversed or journalled now, in words; None if it can."""
    if entry.source in NOT_CORRECTABLE or entry.corrects_id is not None:
        return (
            f"Receipt {entry.receipt_reference} is itself a {entry.source_name.lower()}, so it cannot be "
            f"{'reversed' if kind == 'reversal' else 'moved'}. Correct the original payment, or make a transfer"
        )
    if kind == "journal" and entry.amount_pence <= 0:
        return "Only money received can be moved: this entry is not a payment"
    from app.domain.suspense import SuspenseItem

    if SuspenseItem.select().where(SuspenseItem.ledger_entry == entry).exists():
        # Suspense money is moved by allocating it, which keeps the item's remaining amount right.
        return f"Receipt {entry.receipt_reference} is money in suspense: allocate it from the suspense item instead"
    left = remaining_pence(entry)
    if left == 0 or (left > 0) != (entry.amount_pence > 0):
        return f"Receipt {entry.receipt_reference} has already been reversed, moved or refunded in full"
    return None


# ---------------------------------------------------------------------------
# Checks shared by every kind
# ---------------------------------------------------------------------------


def _checked_actor(actor) -> User:
    if not isinstance(actor, User) or actor.id is None:
        raise DomainError("A correction must be made by a signed-in user")
    if not actor.can(Permission.CORRECT_LEDGER):
        raise DomainError("You do not have permission to correct the ledger")
    return actor


def _checked_reason(reason) -> str:
    text = (reason or "").strip() if isinstance(reason, str) or reason is None else None
    if text is None:
        raise DomainError("The reason must be text", "reason")
    if not text:
        raise DomainError("Enter the reason for the correction", "reason")
    if len(text) > MAX_REASON_LENGTH:
        raise DomainError(f"The reason must be {MAX_REASON_LENGTH} characters or fewer", "reason")
    return text


def _visible_entry(entry: LedgerEntry, actor: User) -> LedgerEntry:
    if not isinstance(entry, LedgerEntry) or entry.id is None or entry.fund_id not in visible_fund_ids(actor):
        # Outside the user's fund groups: not disclosed, as on the transaction pages.
        raise NotFound("There is no such transaction")
    return entry


def _check_line(
    index: int, line: Line, fund_ids: set[int], method: MethodOfPayment, signed: bool
) -> tuple[list[LineProblem], Line | None]:
    """(problems, None) for a bad line; ([], the line with its reference normalised) for a good one."""
    problems = []
    fund = line.fund
    if not isinstance(fund, Fund) or fund.id is None or fund.id not in fund_ids:
        problems.append(LineProblem(index, "fund", "Select a fund"))
        fund = None
    amount = line.amount_pence
    if amount is None:
        problems.append(LineProblem(index, "amount", "Enter the amount"))
    elif not isinstance(amount, int) or isinstance(amount, bool):
        problems.append(LineProblem(index, "amount", "The amount must be a whole number of pence"))
        amount = None
    elif amount == 0:
        problems.append(LineProblem(index, "amount", "Enter an amount other than £0.00"))
        amount = None
    elif amount < 0 and not signed:
        problems.append(LineProblem(index, "amount", "Enter an amount greater than £0.00"))
        amount = None
    if fund is None:
        if not (line.reference or "").strip():
            problems.append(LineProblem(index, "reference", "Enter the reference"))
        return problems, None
    # Money arriving on an account meets the fund's rules for staff in full (format, account,
    # limits); money leaving one only needs a reference in the fund's format.
    arriving = amount is not None and amount > 0
    result = validate_reference(
        fund, line.reference, amount if arriving else None, channel="staff", method=method if arriving else None
    )
    if not result.valid:
        for field, message in result.errors.items():
            if field == "amount" and amount is None:
                continue
            problems.append(
                LineProblem(index, field if field in ("fund", "reference", "amount") else "reference", message)
            )
    if problems:
        return problems, None
    return [], Line(fund, result.reference, amount)


def _place(fund: Fund, reference: str) -> tuple[int, str]:
    return (fund.id, reference)


def _new_group_reference(kind: str) -> str:
    for _ in range(10):
        body = "".join(secrets.choice(CROCKFORD) for _ in range(8))
        reference = f"{PREFIXES[kind]}-{body[:4]}-{body[4:]}"
        if not Correction.select().where(Correction.group_reference == reference).exists():
            return reference
    raise RuntimeError("Could not make a unique correction reference")  # pragma: no cover


def _replayed(key: str, kind: str, entry: LedgerEntry | None) -> CorrectionResult | None:
    existing = Correction.get_or_none(Correction.submission_key == key)
    if existing is None:
        return None
    if existing.kind != kind or existing.entry_id != (entry.id if entry is not None else None):
        raise IdempotencyConflict(
            f"This submission was already used for a different correction ({existing.group_reference})",
            "submission_key",
        )
    return CorrectionResult(existing, existing.entries(), False)


def _lock(entry: LedgerEntry) -> LedgerEntry:
    """Re-read the entry under a lock, so corrections of one entry happen one after another.

    On SQLite the write transaction already holds the database's only write lock. On
    PostgreSQL a row lock is enough (FOR UPDATE takes no UPDATE trigger: the row stays as it is).
    """
    query = LedgerEntry.select().where(LedgerEntry.id == entry.id)
    if is_postgres():
        query = query.for_update()
    return query.get()


def _commit(
    kind: str,
    key: str,
    actor: User,
    reason: str,
    entry: LedgerEntry | None,
    build,
    summary,
    *,
    ip_address: str,
) -> CorrectionResult:
    """Post a correction in one transaction, or return the one this key already made.

    `build(locked_entry)` runs under the lock and returns (amount_pence, [PostingRequest]);
    it raises DomainError if what is left no longer allows the correction.
    """
    replay = _replayed(key, kind, entry)
    if replay is not None:
        return replay
    try:
        with write_transaction():
            locked = _lock(entry) if entry is not None else None
            # Looked up again under the lock: a racing submission with this key is seen here.
            replay = _replayed(key, kind, entry)
            if replay is not None:
                return replay
            amount, requests = build(locked)
            group_reference = _new_group_reference(kind)
            correction = Correction.create(
                kind=kind,
                group_reference=group_reference,
                submission_key=key,
                entry=locked,
                amount_pence=amount,
                reason=reason,
                created_by=actor,
            )
            results = post_many(requests, group_reference=group_reference)
            entries = [r.entry for r in results]
            audit.record(
                f"ledger.{kind}",
                actor=actor,
                object_type="correction",
                object_id=group_reference,
                summary=summary(correction, entries),
                after={
                    "kind": kind,
                    "reason": reason,
                    "corrects": locked.receipt_reference if locked is not None else None,
                    "amount_pence": amount,
                    "entries": audit_entries(entries),
                },
                ip_address=ip_address,
            )
    except IntegrityError:
        # PostgreSQL: a racing transaction with the same key committed first (unique index).
        replay = _replayed(key, kind, entry)
        if replay is None:
            raise
        return replay
    return CorrectionResult(correction, entries, True)


def _narrative(text: str) -> str:
    return text if len(text) <= 200 else text[:199] + "…"


# ---------------------------------------------------------------------------
# Reversal
# ---------------------------------------------------------------------------


def reverse(entry: LedgerEntry, actor, reason: str, *, submission_key: str, ip_address: str = "") -> CorrectionResult:
    """Take what is left of `entry` off its fund and account: one linked entry of the opposite sign."""
    key = checked_submission_key(submission_key, "A correction")
    actor = _checked_actor(actor)
    entry = _visible_entry(entry, actor)
    replay = _replayed(key, "reversal", entry)
    if replay is not None:
        return replay
    reason = _checked_reason(reason)

    def build(locked: LedgerEntry):
        problem = why_not_correctable(locked, "reversal")
        if problem:
            raise DomainError(problem, "entry")
        left = remaining_pence(locked)
        request = PostingRequest(
            idempotency_key=f"correction:{key}:1",
            fund=locked.fund,
            account_reference=locked.account_reference,
            amount_pence=-left,
            # The entry's own method, so that method's takings net to zero (a bounced cheque
            # comes off the cheques); the money was recorded, so a since-disabled fund or
            # method does not stop it being taken off again.
            method=locked.method,
            vat_code=locked.vat_code,
            money_already_taken=True,
            source="reversal",
            user=actor,
            corrects=locked,
            narrative=_narrative(f"Reversal of {locked.receipt_reference}: {reason}"),
            source_reference=locked.receipt_reference,
        )
        return abs(left), [request]

    def summary(correction, entries):
        return (
            f"Reversed {format_pence(correction.amount_pence)} of receipt {entry.receipt_reference} "
            f"({correction.group_reference}): {reason}"
        )

    return _commit("reversal", key, actor, reason, entry, build, summary, ip_address=ip_address)


# ---------------------------------------------------------------------------
# Journal
# ---------------------------------------------------------------------------


def check_journal_lines(entry: LedgerEntry, actor, lines: Sequence[Line]) -> list[Line]:
    """The destinations, checked and normalised; LinesRefused with every problem otherwise.

    Also used by the check-your-answers page, so the user sees what will be posted.
    """
    actor = _checked_actor(actor)
    entry = _visible_entry(entry, actor)
    problem = why_not_correctable(entry, "journal")
    if problem:
        raise DomainError(problem, "entry")
    lines = list(lines)
    if not lines:
        raise LinesRefused([LineProblem(None, "lines", "Enter where the money is going")])
    if len(lines) > MAX_LINES:
        raise LinesRefused([LineProblem(None, "lines", f"A journal can have up to {MAX_LINES} destinations")])
    method = journal_method()
    fund_ids = visible_fund_ids(actor)
    problems: list[LineProblem] = []
    checked: list[Line] = []
    seen: dict[tuple[int, str], int] = {}
    for index, line in enumerate(lines):
        found, good = _check_line(index, line, fund_ids, method, signed=False)
        problems.extend(found)
        if good is None:
            continue
        place = _place(good.fund, good.reference)
        if place == (entry.fund_id, entry.account_reference):
            problems.append(
                LineProblem(
                    index, "reference", "The money is already on this account: enter a different fund or reference"
                )
            )
        elif place in seen:
            problems.append(
                LineProblem(index, "reference", f"Line {index + 1} is for the same account as line {seen[place] + 1}")
            )
        else:
            seen[place] = index
            checked.append(good)
    if problems:
        raise LinesRefused(problems)
    _check_journal_total(entry, sum(line.amount_pence for line in checked))
    return checked


def _check_journal_total(entry: LedgerEntry, total: int) -> None:
    left = remaining_pence(entry)
    if total > left:
        moved = entry.amount_pence - left
        if moved:
            message = (
                f"You can move up to {format_pence(left)}: {format_pence(moved)} of this payment "
                "has already been moved or reversed"
            )
        else:
            message = f"You can move up to {format_pence(left)}, the whole payment"
        raise LinesRefused([LineProblem(0 if total else None, "amount", message)])


def journal(
    entry: LedgerEntry,
    actor,
    reason: str,
    lines: Sequence[Line],
    *,
    submission_key: str,
    ip_address: str = "",
) -> CorrectionResult:
    """Move all or part of `entry` to other funds or accounts; every new entry is linked to it."""
    key = checked_submission_key(submission_key, "A correction")
    actor = _checked_actor(actor)
    entry = _visible_entry(entry, actor)
    replay = _replayed(key, "journal", entry)
    if replay is not None:
        return replay
    reason = _checked_reason(reason)
    destinations = check_journal_lines(entry, actor, lines)
    method = journal_method()
    total = sum(line.amount_pence for line in destinations)

    def build(locked: LedgerEntry):
        problem = why_not_correctable(locked, "journal")
        if problem:
            raise DomainError(problem, "entry")
        _check_journal_total(locked, total)  # again, under the lock
        narrative = _narrative(f"Journal from {locked.receipt_reference}: {reason}")
        out = PostingRequest(
            idempotency_key=f"correction:{key}:1",
            fund=locked.fund,
            account_reference=locked.account_reference,
            amount_pence=-total,
            method=method,
            vat_code=locked.vat_code,
            # The money is already on this fund: a since-disabled fund does not stop it leaving.
            money_already_taken=True,
            source="journal",
            user=actor,
            corrects=locked,
            narrative=narrative,
            source_reference=locked.receipt_reference,
        )
        into = [
            PostingRequest(
                idempotency_key=f"correction:{key}:{n}",
                fund=line.fund,
                account_reference=line.reference,
                amount_pence=line.amount_pence,
                method=method,
                source="journal",
                user=actor,
                corrects=locked,
                narrative=narrative,
                source_reference=locked.receipt_reference,
            )
            for n, line in enumerate(destinations, start=2)
        ]
        return total, [out, *into]

    def summary(correction, entries):
        places = ", ".join(f"{e.fund.code} {e.account_reference}" for e in entries[1:])
        return (
            f"Moved {format_pence(total)} of receipt {entry.receipt_reference} to {places} "
            f"({correction.group_reference}): {reason}"
        )

    return _commit("journal", key, actor, reason, entry, build, summary, ip_address=ip_address)


# ---------------------------------------------------------------------------
# Transfer
# ---------------------------------------------------------------------------


def check_transfer_lines(actor, lines: Sequence[Line]) -> list[Line]:
    """The lines, checked and normalised; LinesRefused with every problem otherwise.

    Two or more lines, none £0.00, each account once, each reference valid for its fund,
    every fund one the user can see, and the lines add up to exactly £0.00.
    """
    actor = _checked_actor(actor)
    lines = list(lines)
    if len(lines) < 2:
        raise LinesRefused(
            [LineProblem(None, "lines", "Enter at least 2 lines: where the money comes from and where it goes")]
        )
    if len(lines) > MAX_LINES:
        raise LinesRefused([LineProblem(None, "lines", f"A transfer can have up to {MAX_LINES} lines")])
    method = journal_method()
    fund_ids = visible_fund_ids(actor)
    problems: list[LineProblem] = []
    checked: list[Line] = []
    seen: dict[tuple[int, str], int] = {}
    for index, line in enumerate(lines):
        found, good = _check_line(index, line, fund_ids, method, signed=True)
        problems.extend(found)
        if good is None:
            continue
        place = _place(good.fund, good.reference)
        if place in seen:
            problems.append(
                LineProblem(
                    index,
                    "reference",
                    f"Line {index + 1} is for the same account as line {seen[place] + 1}: put them on one line",
                )
            )
        else:
            seen[place] = index
            checked.append(good)
    amounts = [line.amount_pence for line in lines if isinstance(line.amount_pence, int)]
    if len(amounts) == len(lines) and all(amounts):
        total = sum(amounts)
        if total:
            problems.insert(
                0, LineProblem(None, "lines", f"The lines must add up to £0.00: they add up to {format_pence(total)}")
            )
    if problems:
        raise LinesRefused(problems)
    return checked


def transfer(
    actor,
    reason: str,
    lines: Sequence[Line],
    *,
    submission_key: str,
    ip_address: str = "",
) -> CorrectionResult:
    """Post two or more lines that add up to exactly £0.00, all or none, under one group reference."""
    key = checked_submission_key(submission_key, "A correction")
    actor = _checked_actor(actor)
    replay = _replayed(key, "transfer", None)
    if replay is not None:
        return replay
    reason = _checked_reason(reason)
    checked = check_transfer_lines(actor, lines)
    method = journal_method()
    moved = sum(line.amount_pence for line in checked if line.amount_pence > 0)

    def build(_locked):
        narrative = _narrative(f"Transfer: {reason}")
        requests = [
            PostingRequest(
                idempotency_key=f"correction:{key}:{n}",
                fund=line.fund,
                account_reference=line.reference,
                amount_pence=line.amount_pence,
                method=method,
                source="transfer",
                user=actor,
                narrative=narrative,
            )
            for n, line in enumerate(checked, start=1)
        ]
        return moved, requests

    def summary(correction, entries):
        return f"Transferred {format_pence(moved)} in {len(entries)} lines ({correction.group_reference}): {reason}"

    return _commit("transfer", key, actor, reason, None, build, summary, ip_address=ip_address)
