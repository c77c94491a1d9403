"""The ledger: the record of money. Entries are only ever added, never changed or deleted.

Every feature that moves money (online payments, staff payments, imports, journals,
transfers, refunds, reversals, suspense allocations) posts through `post()` or
`post_many()`. That single path is where the rules live:

- amounts are signed integer pence (credits positive, refunds and reversals negative);
- the VAT split uses the rate in force on the business date (the UK date the money was
  taken), so a rate change at midnight London time applies to the right entries;
- each posting carries a caller-supplied idempotency key, so a retried request, webhook
  or job returns the entry it already made instead of posting twice;
- corrections are new entries linked (`corrects`) to the entry they correct.

Immutability is enforced twice: here (save/delete raise `ImmutableRecord`) and by
database triggers (migrations/0002_ledger.py), so not even raw SQL can edit history.

Receipt references are short, human-friendly and never collide: a `ReceiptNumber` row
gives a unique integer, which a fixed bijection scrambles so consecutive receipts do not
look sequential, written in Crockford base 32 with a Luhn mod 32 check character.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

import peewee
from peewee import (
    SQL,
    BigAutoField,
    BigIntegerField,
    CharField,
    DateField,
    DateTimeField,
    DecimalField,
    ForeignKeyField,
    IntegrityError,
    TextField,
    fn,
)

from app.db import BaseModel, database, is_postgres, utcnow
from app.domain.errors import DomainError, ImmutableRecord
from app.domain.funds import Fund
from app.domain.methods import MethodOfPayment
from app.domain.money import pence_to_decimal
from app.domain.offices import Office
from app.domain.ukdates import business_date
from app.domain.users import User
from app.domain.vat import VatCode, split_vat

# Where an entry came from. Keys are stored; values are for people.
SOURCES: dict[str, str] = {
    "payment": "Payment",
    "staff_payment": "Payment taken by staff",
    "import": "Import",
    "journal": "Journal",
    "transfer": "Transfer",
    "refund": "Refund",
    "reversal": "Reversal",
    "suspense_allocation": "Suspense allocation",
    "adjustment": "Adjustment",
}

MAX_KEY_LENGTH = 200
MAX_ACCOUNT_REFERENCE_LENGTH = 40
MAX_NARRATIVE_LENGTH = 200
MAX_PAYER_NAME_LENGTH = 200
MAX_PAYER_EMAIL_LENGTH = 320
MAX_SOURCE_REFERENCE_LENGTH = 200
MAX_GROUP_REFERENCE_LENGTH = 80


# ---------------------------------------------------------------------------
# Receipt references
# ---------------------------------------------------------------------------

# Crockford base 32: no I, L, O (confused with 1 and 0) and no U (accidental words).
# The check character is drawn from the same 32 characters, so a reference never holds
# anything awkward to read aloud or put in a URL (Crockford's own mod-37 check needs * ~ $ = U).
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RECEIPT_DIGITS = 8
RECEIPT_BITS = 5 * RECEIPT_DIGITS  # 40 bits: a trillion receipts
_MASK = (1 << RECEIPT_BITS) - 1
# Any odd multiplier is invertible modulo 2**40; any constant works for the offset.
_OFFSET = 0x3A5F0C91D7
_M1 = 0xC2B2AE3D27
_M2 = 0x9E3779B97F
# x ^= x >> s is its own inverse when 2*s >= 40, which keeps unscrambling trivial.
_S1 = 20
_S2 = 23
_M1_INVERSE = pow(_M1, -1, 1 << RECEIPT_BITS)
_M2_INVERSE = pow(_M2, -1, 1 << RECEIPT_BITS)
# People type what they read: lower case, I/L for 1, O for 0.
_TYPO_FIXES = str.maketrans({"I": "1", "L": "1", "O": "0"})


def scramble_receipt_number(n: int) -> int:
    """A bijection on 0..2**40-1 so that consecutive receipt numbers look unrelated.

    Each step is invertible on 40-bit integers (adding a constant, multiplying by an odd
    number, xor with a right shift of at least half the width), so the whole map is a
    permutation: two receipt numbers can never give the same reference.
    """
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= _MASK:
        raise ValueError(f"A receipt number must be an integer from 0 to {_MASK}")
    x = (n + _OFFSET) & _MASK
    x = (x * _M1) & _MASK
    x ^= x >> _S1
    x = (x * _M2) & _MASK
    x ^= x >> _S2
    return x


def unscramble_receipt_number(x: int) -> int:
    """The inverse of `scramble_receipt_number` (it proves the map is a bijection)."""
    if not isinstance(x, int) or isinstance(x, bool) or not 0 <= x <= _MASK:
        raise ValueError(f"A scrambled receipt number must be an integer from 0 to {_MASK}")
    x ^= x >> _S2
    x = (x * _M2_INVERSE) & _MASK
    x ^= x >> _S1
    x = (x * _M1_INVERSE) & _MASK
    return (x - _OFFSET) & _MASK


def _encode(value: int) -> str:
    digits = []
    for _ in range(RECEIPT_DIGITS):
        value, digit = divmod(value, 32)
        digits.append(CROCKFORD[digit])
    return "".join(reversed(digits))


def _decode(digits: str) -> int:
    value = 0
    for char in digits:
        value = value * 32 + CROCKFORD.index(char)
    return value


def _luhn_mod_n_check(digits: str) -> str:
    """The Luhn mod N check character for `digits`, with N = 32 over the Crockford alphabet.

    This is the Luhn mod N algorithm (the Luhn credit-card check generalised to any even
    alphabet size N). Working from the rightmost character leftwards, every other
    character's value is doubled, starting with the rightmost; a doubled value of N or
    more is written in base N and its two digits added (2v - N + 1), as Luhn adds the
    digits of 2 x 7 = 14 to get 5. The check is whatever brings the total to a multiple
    of N. Because doubling-and-folding is a permutation of 0..N-1, every single-character
    substitution is caught; every swap of neighbours is caught except "0" <-> "Z" (values
    0 and N-1), the counterpart of Luhn mod 10's blind spot 0 <-> 9.
    """
    n = len(CROCKFORD)
    total = 0
    double = True  # the rightmost payload character is doubled
    for char in reversed(digits):
        value = CROCKFORD.index(char)
        if double:
            value = 2 * value
            value = value // n + value % n  # add the two base-N digits of the doubled value
        total += value
        double = not double
    return CROCKFORD[(n - total % n) % n]


def _format(digits: str, check: str) -> str:
    return f"{digits[:4]}-{digits[4:]}-{check}"


def _pair_tables() -> tuple[tuple[str, ...], tuple[int, ...]]:
    """For every 10-bit value (two base-32 digits): its two characters, and what the pair adds to
    the Luhn mod 32 total when its right-hand character is a doubled one. The 8 digits are four
    such pairs, so a reference is four look-ups (a million imported lines make a million)."""
    n = len(CROCKFORD)
    texts, sums = [], []
    for value in range(n * n):
        left, right = divmod(value, n)
        doubled = 2 * right
        texts.append(CROCKFORD[left] + CROCKFORD[right])
        sums.append(left + doubled // n + doubled % n)
    return tuple(texts), tuple(sums)


_PAIR_TEXT, _PAIR_SUM = _pair_tables()


def make_receipt_reference(n: int) -> str:
    """Receipt number n → "XXXX-XXXX-C": 8 Crockford base-32 digits and a check character.

    The check character is the Luhn mod 32 check (see `_luhn_mod_n_check`), itself one of
    the 32 Crockford characters. It catches every single-character mistake and every swap
    of two neighbouring characters except a swap of "0" and "Z". Computed pairwise from
    tables; tests/unit/test_receipts.py checks it against `_encode` and `_luhn_mod_n_check`.
    """
    x = scramble_receipt_number(n)
    a, b, c, d = x >> 30, (x >> 20) & 1023, (x >> 10) & 1023, x & 1023
    total = _PAIR_SUM[a] + _PAIR_SUM[b] + _PAIR_SUM[c] + _PAIR_SUM[d]
    return f"{_PAIR_TEXT[a]}{_PAIR_TEXT[b]}-{_PAIR_TEXT[c]}{_PAIR_TEXT[d]}-{CROCKFORD[-total % 32]}"


def normalise_receipt_reference(text: str) -> str:
    """What someone typed → the reference as we print it, or DomainError if it is not one.

    Tolerates case, spaces, missing hyphens, and I/L for 1 and O for 0.
    """
    message = "Enter a receipt reference in the correct format, like A18A-24FV-8"
    if not isinstance(text, str):
        raise DomainError(message, "receipt_reference")
    cleaned = "".join(text.split()).replace("-", "").upper().translate(_TYPO_FIXES)
    if not cleaned:
        raise DomainError("Enter a receipt reference", "receipt_reference")
    digits, check = cleaned[:-1], cleaned[-1:]
    if len(digits) != RECEIPT_DIGITS or any(c not in CROCKFORD for c in cleaned):
        raise DomainError(message, "receipt_reference")
    if _luhn_mod_n_check(digits) != check:
        raise DomainError("Check the receipt reference: one of the characters is wrong", "receipt_reference")
    return _format(digits, check)


def receipt_number_of(reference: str) -> int:
    """The receipt number behind a reference (for support and tests). DomainError if invalid."""
    compact = normalise_receipt_reference(reference).replace("-", "")
    return unscramble_receipt_number(_decode(compact[:-1]))


def is_valid_receipt_reference(text: str) -> bool:
    try:
        normalise_receipt_reference(text)
    except DomainError:
        return False
    return True


class ReceiptNumber(BaseModel):
    """Issues unique receipt numbers: the row id, on SQLite and PostgreSQL alike.

    Rows are never deleted, so a number is never reused. On PostgreSQL a rolled-back
    posting leaves a gap in the numbers; that is harmless because they are scrambled.
    """

    id = BigAutoField()
    created_at = DateTimeField(default=utcnow)


# ---------------------------------------------------------------------------
# Ledger entries
# ---------------------------------------------------------------------------


class IdempotencyConflict(DomainError):
    """The idempotency key was already used for a materially different posting."""


class LedgerEntry(BaseModel):
    id = BigAutoField()
    # Printed on receipts and quoted by citizens: "XXXX-XXXX-C" (C: Luhn mod 32 check), made from
    # receipt_number. Look-ups go through the number (`by_receipt`): its unique index is appended to,
    # where one on the scrambled reference was re-sorted by every insert (migrations/0015).
    receipt_reference = CharField(max_length=11)
    # Null only in a database migrated from before 0015 and not yet filled in (0015 fills it).
    receipt_number = BigIntegerField(null=True, unique=True)
    idempotency_key = CharField(max_length=MAX_KEY_LENGTH, unique=True)
    fund = ForeignKeyField(Fund, backref="ledger_entries", on_delete="RESTRICT")
    account_reference = CharField(max_length=MAX_ACCOUNT_REFERENCE_LENGTH)
    # Signed: credits positive, refunds and reversals negative.
    amount_pence = BigIntegerField()
    # No index on vat_code or office (migrations/0015): a search on an office is date-bounded and
    # uses the search index, and neither is ever deleted. The user's index serves the search
    # page's list of staff who have taken money.
    vat_code = ForeignKeyField(VatCode, null=True, backref="ledger_entries", on_delete="RESTRICT", index=False)
    # The rate used, kept so the split can be explained after the code's rates change.
    vat_rate = DecimalField(max_digits=6, decimal_places=4, auto_round=False)
    vat_pence = BigIntegerField()
    net_pence = BigIntegerField()
    method = ForeignKeyField(MethodOfPayment, backref="ledger_entries", on_delete="RESTRICT")
    office = ForeignKeyField(Office, null=True, backref="ledger_entries", on_delete="RESTRICT", index=False)
    user = ForeignKeyField(User, null=True, backref="ledger_entries", on_delete="RESTRICT")
    narrative = CharField(max_length=MAX_NARRATIVE_LENGTH, default="")
    payer_name = CharField(max_length=MAX_PAYER_NAME_LENGTH, default="")
    payer_email = CharField(max_length=MAX_PAYER_EMAIL_LENGTH, default="")
    payer_address = TextField(default="")
    # When the money was taken (an import may bring yesterday's payments today).
    taken_at = DateTimeField()
    business_date = DateField()  # indexed first in the search index
    # When the entry was recorded.
    created_at = DateTimeField(default=utcnow)
    source = CharField(max_length=30)
    source_reference = CharField(max_length=MAX_SOURCE_REFERENCE_LENGTH, default="")
    corrects = ForeignKeyField("self", null=True, backref="corrections", on_delete="RESTRICT")
    group_reference = CharField(max_length=MAX_GROUP_REFERENCE_LENGTH, default="", index=True)
    import_batch_id = BigIntegerField(null=True, index=True)

    class Meta:
        indexes = (
            (("account_reference", "fund"), False),
            # Transaction search (migrations/0010, 0015): a date range with any of these filters is
            # counted from this index alone; it also serves (business_date, fund). The id comes
            # before the amount so that new entries are appended to it rather than sorted in.
            (("business_date", "fund", "method", "source", "office", "user", "id", "amount_pence"), False),
            (("amount_pence",), False),
        )

    def save(self, *args, **kwargs):
        if self._pk is not None and not kwargs.get("force_insert"):
            raise ImmutableRecord("Ledger entries cannot be changed: post a correction instead")
        return super().save(*args, **kwargs)

    def delete_instance(self, *args, **kwargs):
        raise ImmutableRecord("Ledger entries cannot be deleted: post a reversal instead")

    @classmethod
    def update(cls, *args, **kwargs):
        raise ImmutableRecord("Ledger entries cannot be changed: post a correction instead")

    @classmethod
    def delete(cls, *args, **kwargs):
        raise ImmutableRecord("Ledger entries cannot be deleted: post a reversal instead")

    @property
    def source_name(self) -> str:
        return SOURCES.get(self.source, self.source)

    @property
    def amount(self) -> Decimal:
        return pence_to_decimal(self.amount_pence)

    @classmethod
    def for_funds(cls, fund_ids: Iterable[int]):
        """Entries in the given funds (a user's visible funds); none if the list is empty."""
        ids = sorted({int(i) for i in fund_ids})
        if not ids:
            return cls.select().where(SQL("1 = 0"))
        return cls.select().where(cls.fund.in_(ids))

    @classmethod
    def by_receipt(cls, reference: str) -> LedgerEntry | None:
        """The entry with this receipt reference, however it was typed; None if there is none."""
        try:
            canonical = normalise_receipt_reference(reference)
        except DomainError:
            return None
        return cls.get_or_none(cls.receipt_number == receipt_number_of(canonical))

    @classmethod
    def linked(cls, entry: LedgerEntry):
        """Entries that correct, reverse or refund `entry`, oldest first."""
        return cls.select().where(cls.corrects == entry).order_by(cls.id)

    @classmethod
    def totals(cls, query=None) -> tuple[int, int]:
        """(number of entries, sum of amount_pence) for a query of entries (all if None).

        Counts the query's own rows, so its filters, joins and limits all apply.
        """
        if query is None:
            query = cls.select()
        inner = query.select(cls.amount_pence).alias("entries")
        count, total = (
            cls.select(fn.COUNT(SQL("*")), fn.COALESCE(fn.SUM(inner.c.amount_pence), 0)).from_(inner).tuples().get()
        )
        # PostgreSQL sums BIGINT as NUMERIC, which arrives as Decimal.
        return int(count), int(total)


# ---------------------------------------------------------------------------
# Posting
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class PostingRequest:
    """One line to post. `taken_at` is naive UTC (aware datetimes are converted).

    Treat it as a value: nothing changes a request once made (`dataclasses.replace` makes a
    changed copy). It is not `frozen` only because an import makes a million of them and a
    frozen dataclass takes five times as long to create (each field set through
    object.__setattr__).
    """

    idempotency_key: str
    fund: Fund
    account_reference: str
    amount_pence: int
    method: MethodOfPayment
    source: str
    taken_at: dt.datetime | None = None
    office: Office | None = None
    user: User | None = None
    narrative: str = ""
    payer_name: str = ""
    payer_email: str = ""
    payer_address: str = ""
    source_reference: str = ""
    corrects: LedgerEntry | None = None
    group_reference: str = ""
    import_batch_id: int | None = None
    # None: use the fund's VAT code.
    vat_code: VatCode | None = None
    # Zero-value lines exist (e.g. a fully discounted item) but are usually a mistake.
    allow_zero: bool = False
    # The card payment already succeeded at GOV.UK Pay: the money is the council's even if
    # the fund or method was disabled while the citizen was paying, so record it anyway.
    money_already_taken: bool = False


@dataclass(frozen=True)
class PostingResult:
    entry: LedgerEntry
    # False when the key had already been posted and the existing entry is returned.
    created: bool


# The one-time key of a "check your answers" page, kept unique on what it made (a correction, an
# allocation …), so a second press of the button returns the first result instead of a second.
MAX_SUBMISSION_KEY_LENGTH = 120


def checked_submission_key(submission_key, what: str) -> str:
    """The submission key, stripped; `what` names the thing it makes ("A correction")."""
    if not isinstance(submission_key, str) or not submission_key.strip():
        raise DomainError(f"{what} needs a submission key", "submission_key")
    key = submission_key.strip()
    if len(key) > MAX_SUBMISSION_KEY_LENGTH:
        raise DomainError(
            f"The submission key must be {MAX_SUBMISSION_KEY_LENGTH} characters or fewer", "submission_key"
        )
    return key


def audit_entries(entries) -> list[dict]:
    """What an audit event records of the entries a correction or allocation posted."""
    return [
        {
            "receipt": e.receipt_reference,
            "fund": e.fund.code,
            "account_reference": e.account_reference,
            "amount_pence": e.amount_pence,
        }
        for e in entries
    ]


def write_transaction():
    """A transaction that takes SQLite's write lock at BEGIN.

    A deferred SQLite transaction that reads and then writes fails at once with
    "database is locked" if another writer committed in between (the busy timeout
    does not apply), so writers start IMMEDIATE and queue instead. Callers that read
    and then post in one transaction of their own should open it with this too.
    Nested, it is a savepoint; PostgreSQL needs nothing special.
    """
    if is_postgres():
        return database.atomic()
    return database.atomic("IMMEDIATE")


def _text(value: object, label: str, field: str, max_length: int | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DomainError(f"The {label} must be text", field)
    cleaned = value.strip()
    if max_length is not None and len(cleaned) > max_length:
        raise DomainError(f"The {label} must be {max_length} characters or fewer", field)
    return cleaned


def _checked_key(request: PostingRequest) -> str:
    key = request.idempotency_key
    if not isinstance(key, str) or not key.strip():
        raise DomainError("A posting needs an idempotency key", "idempotency_key")
    key = key.strip()
    if len(key) > MAX_KEY_LENGTH:
        raise DomainError(f"The idempotency key must be {MAX_KEY_LENGTH} characters or fewer", "idempotency_key")
    return key


def _checked_amount(request: PostingRequest) -> int:
    amount = request.amount_pence
    # bool is an int to Python, and float/Decimal amounts mean someone skipped parsing.
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise DomainError("The amount must be a whole number of pence", "amount")
    if amount == 0 and not request.allow_zero:
        raise DomainError("Enter an amount other than £0.00", "amount")
    return amount


def _taken_at(request: PostingRequest) -> dt.datetime:
    moment = request.taken_at
    if moment is None:
        return utcnow()
    if not isinstance(moment, dt.datetime):
        raise DomainError("The time the money was taken must be a date and time", "taken_at")
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def _existing(key: str, request: PostingRequest, amount: int, account_reference: str) -> LedgerEntry | None:
    entry = LedgerEntry.get_or_none(LedgerEntry.idempotency_key == key)
    if entry is None:
        return None
    same = (
        entry.fund_id == request.fund.id
        and entry.account_reference == account_reference
        and entry.amount_pence == amount
        and entry.method_id == request.method.id
    )
    if not same:
        raise IdempotencyConflict(
            f"This posting was already made with different details (receipt {entry.receipt_reference})",
            "idempotency_key",
        )
    return entry


def _entry_values(
    request: PostingRequest, amount: int, account_reference: str, cache: _BatchCache | None = None
) -> tuple:
    """Every value of the entry for `request`, checked, in ENTRY_FIELDS order. `cache` (bulk posting
    only) remembers the business date of each moment and the VAT rate of each code on each day, so
    a million lines make no more queries than their distinct days; the rules are the same either way.
    A tuple, not a dict: a bulk posting builds a million of them."""
    fund, method = request.fund, request.method
    if not isinstance(fund, Fund) or fund.id is None:
        raise DomainError("Select a fund", "fund")
    if not isinstance(method, MethodOfPayment) or method.id is None:
        raise DomainError("Select a method of payment", "method")
    if not fund.enabled and not request.money_already_taken:
        raise DomainError(f"{fund.name} is not taking payments", "fund")
    if not method.enabled and not request.money_already_taken:
        raise DomainError(f"{method.name} cannot be used at the moment", "method")
    if request.source not in SOURCES:
        raise DomainError(f"Unknown source of a ledger entry: {request.source!r}", "source")
    if request.corrects is not None and (not isinstance(request.corrects, LedgerEntry) or request.corrects.id is None):
        raise DomainError("The entry being corrected must be a posted ledger entry", "corrects")
    if request.import_batch_id is not None and (
        not isinstance(request.import_batch_id, int) or isinstance(request.import_batch_id, bool)
    ):
        raise DomainError("The import batch id must be a whole number", "import_batch_id")

    taken_at = _taken_at(request)
    vat_code = request.vat_code if request.vat_code is not None else fund.vat_code
    if cache is None:
        day = business_date(taken_at)
        rate = vat_code.rate_on(day) if vat_code is not None else Decimal(0)
    else:
        day = cache.day(taken_at)
        rate = cache.rate(vat_code, day)
    split = split_vat(amount, rate)
    return (
        fund,
        account_reference,
        amount,
        vat_code,
        split.rate,
        split.vat_pence,
        split.net_pence,
        method,
        request.office,
        request.user,
        _text(request.narrative, "narrative", "narrative", MAX_NARRATIVE_LENGTH),
        _text(request.payer_name, "payer's name", "payer_name", MAX_PAYER_NAME_LENGTH),
        _text(request.payer_email, "payer's email address", "payer_email", MAX_PAYER_EMAIL_LENGTH),
        _text(request.payer_address, "payer's address", "payer_address", None),
        taken_at,
        day,
        request.source,
        _text(request.source_reference, "source reference", "source_reference", MAX_SOURCE_REFERENCE_LENGTH),
        request.corrects,
        _text(request.group_reference, "group reference", "group_reference", MAX_GROUP_REFERENCE_LENGTH),
        request.import_batch_id,
    )


def post(request: PostingRequest) -> PostingResult:
    """Post one entry, or return the one already posted under the same idempotency key.

    A repeat with the same key and the same fund, account reference, amount and method
    returns the first entry (created=False) even if the fund has since been disabled:
    the money was taken when the first request succeeded. A repeat with different
    details raises IdempotencyConflict. Safe to call inside a caller's transaction.
    """
    key = _checked_key(request)
    amount = _checked_amount(request)
    account_reference = _text(
        request.account_reference, "account reference", "account_reference", MAX_ACCOUNT_REFERENCE_LENGTH
    )
    # Cheap path for retries: no write lock needed to find the entry already made.
    existing = _existing(key, request, amount, account_reference)
    if existing is not None:
        return PostingResult(existing, False)
    values = dict(zip(ENTRY_FIELDS, _entry_values(request, amount, account_reference), strict=True))
    try:
        with write_transaction():
            # Looked up again under the write lock, so on SQLite a racing writer is seen here.
            existing = _existing(key, request, amount, account_reference)
            if existing is not None:
                return PostingResult(existing, False)
            number = ReceiptNumber.create().id
            entry = LedgerEntry.create(
                receipt_reference=make_receipt_reference(number), receipt_number=number, idempotency_key=key, **values
            )
    except IntegrityError:
        # On PostgreSQL a concurrent transaction can insert the same key between our
        # look-up and our insert; the unique index stops the second one, so return the first.
        existing = _existing(key, request, amount, account_reference)
        if existing is None:
            raise
        return PostingResult(existing, False)
    return PostingResult(entry, True)


def post_many(requests: Iterable[PostingRequest], *, group_reference: str | None = None) -> list[PostingResult]:
    """Post several entries in one transaction: all of them or none.

    Each is idempotent on its own key. `group_reference`, if given, is set on every
    request that has none (a request with a different one is a mistake and is refused).
    """
    batch = list(requests)
    if group_reference:
        grouped = []
        for request in batch:
            if request.group_reference and request.group_reference != group_reference:
                raise DomainError("Lines posted together must share one group reference", "group_reference")
            grouped.append(dataclasses.replace(request, group_reference=group_reference))
        batch = grouped
    with write_transaction():
        return [post(request) for request in batch]


# ---------------------------------------------------------------------------
# Bulk posting (imports, and reversing an import)
# ---------------------------------------------------------------------------

# Columns written by the bulk path, in order. `id` and `receipt_reference` are allocated in bulk.
BULK_COLUMNS = (
    "id",
    "receipt_reference",
    "receipt_number",
    "idempotency_key",
    "fund_id",
    "account_reference",
    "amount_pence",
    "vat_code_id",
    "vat_rate",
    "vat_pence",
    "net_pence",
    "method_id",
    "office_id",
    "user_id",
    "narrative",
    "payer_name",
    "payer_email",
    "payer_address",
    "taken_at",
    "business_date",
    "created_at",
    "source",
    "source_reference",
    "corrects_id",
    "group_reference",
    "import_batch_id",
)
# The values `_entry_values` gives, in order: BULK_COLUMNS after the ids, receipt and key (created_at
# is set when the posting is written), with foreign keys by their field names.
_FOREIGN_KEYS = {"fund_id": "fund", "vat_code_id": "vat_code", "method_id": "method", "office_id": "office"}
_FOREIGN_KEYS |= {"user_id": "user", "corrects_id": "corrects"}
ENTRY_FIELDS = tuple(_FOREIGN_KEYS.get(c, c) for c in BULK_COLUMNS[4:] if c != "created_at")


class _BatchCache:
    """What a bulk posting looks up once rather than per line (see `_entry_values`)."""

    __slots__ = ("days", "rates")

    def __init__(self) -> None:
        self.days: dict[dt.datetime, dt.date] = {}
        self.rates: dict[tuple[int, dt.date], Decimal] = {}

    def day(self, moment: dt.datetime) -> dt.date:
        found = self.days.get(moment)
        if found is None:
            if len(self.days) > 100_000:  # every line taken at its own second: keep memory flat
                self.days.clear()
            found = self.days[moment] = business_date(moment)
        return found

    def rate(self, vat_code: VatCode | None, day: dt.date) -> Decimal:
        if vat_code is None:
            return Decimal(0)
        key = (vat_code.id, day)
        found = self.rates.get(key)
        if found is None:
            found = self.rates[key] = vat_code.rate_on(day)
        return found


class PostedEntry(NamedTuple):
    """One line posted by `post_batch`, handed to its `on_chunk` callback (a tuple: one a line)."""

    request: PostingRequest
    entry_id: int
    receipt_reference: str
    business_date: dt.date


@dataclass
class BatchPostingResult:
    count: int = 0
    total_pence: int = 0


_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
_DRIVER_ERRORS_AS_PEEWEE = peewee.__exception_wrapper__


def _identifier(name: str) -> str:
    # Table and column names come from this code, never from input; checked all the same.
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"Not a table or column name: {name!r}")
    return f'"{name}"'


def _allocate_ids(table: str, n: int) -> list[int]:
    """n new ids for `table`, inside the caller's write transaction.

    PostgreSQL: from the table's own sequence, so concurrent single posts never collide.
    SQLite: the transaction holds the only write lock, so the next n ids after the largest are free.
    """
    if n <= 0:
        return []
    name = _identifier(table)
    if is_postgres():
        sql = f"SELECT nextval(pg_get_serial_sequence('{name}', 'id')) FROM generate_series(1, %s)"  # noqa: S608
        return [row[0] for row in database.execute_sql(sql, (n,)).fetchall()]
    (largest,) = database.execute_sql(f"SELECT COALESCE(MAX(id), 0) FROM {name}").fetchone()  # noqa: S608
    return list(range(largest + 1, largest + 1 + n))


def write_rows(table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert rows (tuples of database values in `columns` order) as fast as the database allows.

    COPY on PostgreSQL; one prepared statement run by executemany on SQLite. Inside the caller's
    transaction. Only for tables whose rows need no per-row work from peewee (bulk paths).
    """
    name = _identifier(table)
    names = ", ".join(_identifier(c) for c in columns)
    # peewee's wrapper turns the driver's errors into peewee's (IntegrityError …), as for any query.
    with _DRIVER_ERRORS_AS_PEEWEE:
        if is_postgres():
            connection = database.connection()
            with connection.cursor() as cursor, cursor.copy(f"COPY {name} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        database.cursor().executemany(_insert_sql(table, columns), rows)


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    """INSERT of one row with a parameter for each column (SQLite's paramstyle)."""
    names = ", ".join(_identifier(c) for c in columns)
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {_identifier(table)} ({names}) VALUES ({marks})"  # noqa: S608


def prepare_entries(
    requests: Iterable[PostingRequest],
    *,
    import_batch_id: int | None = None,
    group_reference: str = "",
    created_at: dt.datetime | None = None,
) -> Iterator[tuple[PostingRequest, tuple, dt.date]]:
    """Each request checked exactly as `post` checks it (`_entry_values`: amount, texts, fund,
    method, source, business date, VAT split at the rate in force), as the row `write_entries`
    writes: (request, row, business date). The row holds the database values of BULK_COLUMNS
    from the idempotency key on (ids and receipt numbers are given when it is written).

    Reads only configuration (VAT rates, the calendar), never the ledger, so a large import can
    prepare its rows in another process while this one writes (imports.batches). Raises
    DomainError for a request `post` would refuse, IdempotencyConflict for a key repeated
    within 5,000 lines (the unique index catches any other repeat when written). `created_at`
    (default: now) is when the entries are recorded: one moment for a whole posting, even one
    prepared a chunk at a time.
    """
    if import_batch_id is not None and (not isinstance(import_batch_id, int) or isinstance(import_batch_id, bool)):
        raise DomainError("The import batch id must be a whole number", "import_batch_id")
    cache = _BatchCache()
    postgres = is_postgres()
    created_at = created_at or utcnow()
    created_value = created_at if postgres else str(created_at)
    seen: set[str] = set()
    # On SQLite, what peewee itself stores: ISO text for times and dates, text for a Decimal. A
    # file's lines share a few days, moments and rates, so each is turned into text once.
    as_text: dict = {}

    def text_of(value) -> str:
        found = as_text.get(value)
        if found is None:
            if len(as_text) > 100_000:
                as_text.clear()
            found = as_text[value] = str(value)
        return found

    for request in requests:
        if (import_batch_id is not None and request.import_batch_id != import_batch_id) or (
            group_reference and request.group_reference != group_reference
        ):
            request = dataclasses.replace(
                request,
                import_batch_id=import_batch_id if import_batch_id is not None else request.import_batch_id,
                group_reference=group_reference or request.group_reference,
            )
        key = _checked_key(request)
        if key in seen:
            raise IdempotencyConflict("Two lines in one posting have the same idempotency key", "idempotency_key")
        if len(seen) >= 5000:
            seen.clear()
        seen.add(key)
        amount = _checked_amount(request)
        account_reference = _text(
            request.account_reference, "account reference", "account_reference", MAX_ACCOUNT_REFERENCE_LENGTH
        )
        (
            fund,
            account_reference,
            amount,
            vat_code,
            vat_rate,
            vat_pence,
            net_pence,
            method,
            office,
            user,
            narrative,
            payer_name,
            payer_email,
            payer_address,
            taken_at,
            day,
            source,
            source_reference,
            corrects,
            group,
            batch_id,
        ) = _entry_values(request, amount, account_reference, cache)
        if postgres:
            day_value = day
        else:
            vat_rate, taken_at, day_value = text_of(vat_rate), text_of(taken_at), text_of(day)
        row = (
            key,
            fund.id,
            account_reference,
            amount,
            vat_code.id if vat_code is not None else None,
            vat_rate,
            vat_pence,
            net_pence,
            method.id,
            office.id if office is not None else None,
            user.id if user is not None else None,
            narrative,
            payer_name,
            payer_email,
            payer_address,
            taken_at,
            day_value,
            created_value,
            source,
            source_reference,
            corrects.id if corrects is not None else None,
            group,
            batch_id,
        )
        yield request, row, day


# Where a prepared row's amount and created_at are (BULK_COLUMNS after id, receipt_reference and
# receipt_number).
PREPARED_AMOUNT = BULK_COLUMNS.index("amount_pence") - 3
PREPARED_CREATED_AT = BULK_COLUMNS.index("created_at") - 3


def write_entries(rows: list[tuple]) -> list[tuple[int, str]]:
    """Write rows made by `prepare_entries`, inside the caller's write transaction: a receipt
    number, reference and id for each, then every row at once (COPY on PostgreSQL, one prepared
    INSERT on SQLite). Returns (entry id, receipt reference) for each row, in order."""
    n = len(rows)
    numbers = _allocate_ids("receipt_number", n)
    ids = _allocate_ids("ledger_entry", n)
    created = rows[0][PREPARED_CREATED_AT] if rows else None
    write_rows("receipt_number", ("id", "created_at"), [(number, created) for number in numbers])
    keys = []
    full = []
    for row, number, entry_id in zip(rows, numbers, ids, strict=True):
        receipt = make_receipt_reference(number)
        keys.append((entry_id, receipt))
        full.append((entry_id, receipt, number, *row))
    write_rows("ledger_entry", BULK_COLUMNS, full)
    return keys


def post_batch(
    requests: Iterable[PostingRequest],
    *,
    import_batch_id: int | None = None,
    group_reference: str = "",
    chunk: int = 5000,
    on_chunk=None,
) -> BatchPostingResult:
    """Post many new entries set-based, inside the caller's transaction: all of them or none.

    The same path as `post`: each request goes through the same checks and `_entry_values`
    (`prepare_entries`), so an entry posted here is exactly the entry `post` would have made.
    What differs is only how it is written (`write_entries`): receipt numbers and ids are
    allocated in bulk, rows are written `chunk` at a time, and nothing is read back. It is for
    lines never posted before (an import batch is posted once, under its lock): a key that
    already exists is refused by the unique index, which fails the whole transaction.

    `import_batch_id` and `group_reference`, when given, are set on every entry. `on_chunk`, if
    given, is called with the list of `PostedEntry` of each chunk once it is written (e.g. to
    open suspense items for some of them). Returns the count and the sum of the amounts.
    """
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    result = BatchPostingResult()
    pending: list[tuple[PostingRequest, tuple, dt.date]] = []

    def flush() -> None:
        written = write_entries([row for _, row, _ in pending])
        if on_chunk is not None:
            on_chunk(
                [
                    PostedEntry(request, entry_id, receipt, day)
                    for (request, _, day), (entry_id, receipt) in zip(pending, written, strict=True)
                ]
            )
        pending.clear()

    with write_transaction():
        for prepared in prepare_entries(requests, import_batch_id=import_batch_id, group_reference=group_reference):
            pending.append(prepared)
            result.count += 1
            result.total_pence += prepared[1][PREPARED_AMOUNT]
            if len(pending) >= chunk:
                flush()
        if pending:
            flush()
    return result
