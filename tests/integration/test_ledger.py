"""The ledger against a real database, migrated the way production is.

Every test runs on SQLite and on the PostgreSQL server the test session starts, each in a
fresh migrated database of its own (the `fresh_database` fixture in tests/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from peewee import DatabaseError
from playhouse.migrations import Runner

from app.db import is_postgres
from app.domain import audit
from app.domain.audit import AuditEvent
from app.domain.errors import DomainError, ImmutableRecord
from app.domain.funds import Fund
from app.domain.ledger import (
    SOURCES,
    IdempotencyConflict,
    LedgerEntry,
    PostingRequest,
    ReceiptNumber,
    is_valid_receipt_reference,
    make_receipt_reference,
    post,
    post_many,
    receipt_number_of,
)
from app.domain.methods import MethodOfPayment
from app.domain.offices import Office
from app.domain.users import User
from app.domain.vat import VatCode, VatRate

MIGRATIONS = str(Path(__file__).resolve().parents[2] / "migrations")
SUMMER_NIGHT = dt.datetime(2026, 6, 30, 23, 30)  # 00:30 on 1 July in London


@pytest.fixture
def db(fresh_database):
    # A new migrated database per test, on SQLite and PostgreSQL (tests/conftest.py)
    return fresh_database


@dataclass
class Books:
    vat: VatCode
    fund: Fund
    exempt_fund: Fund
    method: MethodOfPayment
    office: Office
    user: User


@pytest.fixture
def books(db) -> Books:
    vat = VatCode.create(code="STD", name="Standard rate")
    # The UK standard rate's recent history.
    for rate, effective_from in (
        ("0.1500", dt.date(2008, 12, 1)),
        ("0.1750", dt.date(2010, 1, 1)),
        ("0.2000", dt.date(2011, 1, 4)),
    ):
        VatRate.create(vat_code=vat, rate=Decimal(rate), effective_from=effective_from)
    return Books(
        vat=vat,
        fund=Fund.create(code="PARK", name="Parking permits", vat_code=vat),
        exempt_fund=Fund.create(code="CTAX", name="Council tax"),
        method=MethodOfPayment.create(code="CARD", name="Online card payment", channel="online_card"),
        office=Office.create(code="HQ", name="Town Hall"),
        user=User.create(email="officer@example.gov.uk", name="Officer", password_hash="x"),
    )


def request(books: Books, key: str = "payment-1", **changes) -> PostingRequest:
    values = {
        "idempotency_key": key,
        "fund": books.fund,
        "account_reference": "PP123456",
        "amount_pence": 12000,
        "method": books.method,
        "source": "payment",
        "taken_at": SUMMER_NIGHT,
    }
    values.update(changes)
    return PostingRequest(**values)


def count() -> int:
    return LedgerEntry.select().count()


# --- posting -----------------------------------------------------------------------------


def test_post_creates_one_entry_with_vat_split_and_uk_business_date(books):
    result = post(
        request(
            books,
            office=books.office,
            user=books.user,
            narrative="Resident permit",
            payer_name="A Resident",
            payer_email="resident@example.com",
            payer_address="1 High Street",
            source_reference="pay-42",
            import_batch_id=7,
        )
    )
    assert result.created is True
    assert count() == 1
    entry = LedgerEntry.get_by_id(result.entry.id)
    assert entry.amount_pence == 12000
    assert entry.vat_pence == 2000
    assert entry.net_pence == 10000
    assert entry.vat_rate == Decimal("0.2")
    assert isinstance(entry.vat_rate, Decimal)
    assert entry.vat_code_id == books.vat.id
    assert entry.business_date == dt.date(2026, 7, 1)
    assert entry.taken_at == SUMMER_NIGHT
    assert entry.created_at is not None
    assert entry.fund_id == books.fund.id and entry.method_id == books.method.id
    assert entry.office_id == books.office.id and entry.user_id == books.user.id
    assert (entry.narrative, entry.payer_name, entry.payer_email, entry.payer_address) == (
        "Resident permit",
        "A Resident",
        "resident@example.com",
        "1 High Street",
    )
    assert entry.source == "payment" and entry.source_name == SOURCES["payment"]
    assert entry.source_reference == "pay-42"
    assert entry.import_batch_id == 7
    assert entry.corrects_id is None
    assert entry.amount == Decimal("120.00")
    assert is_valid_receipt_reference(entry.receipt_reference)
    assert LedgerEntry.by_receipt(entry.receipt_reference).id == entry.id


def test_vat_rate_is_the_one_in_force_on_the_business_date(books):
    # 2011-01-03 23:30 UTC is still 3 January in London (GMT): the old rate applies.
    before = post(request(books, "before", amount_pence=11750, taken_at=dt.datetime(2011, 1, 3, 23, 30))).entry
    after = post(request(books, "after", amount_pence=12000, taken_at=dt.datetime(2011, 1, 4, 0, 0))).entry
    assert (before.business_date, before.vat_rate, before.vat_pence) == (dt.date(2011, 1, 3), Decimal("0.175"), 1750)
    assert (after.business_date, after.vat_rate, after.vat_pence) == (dt.date(2011, 1, 4), Decimal("0.2"), 2000)


def test_no_vat_code_means_no_vat_and_an_override_wins(books):
    exempt = post(request(books, "exempt", fund=books.exempt_fund)).entry
    assert (exempt.vat_code_id, exempt.vat_rate, exempt.vat_pence, exempt.net_pence) == (None, 0, 0, 12000)
    overridden = post(request(books, "override", fund=books.exempt_fund, vat_code=books.vat)).entry
    assert (overridden.vat_code_id, overridden.vat_pence) == (books.vat.id, 2000)


def test_no_rate_in_force_is_refused(books):
    with pytest.raises(DomainError, match="has no rate in force"):
        post(request(books, taken_at=dt.datetime(2008, 11, 30, 12)))
    assert count() == 0


def test_taken_at_defaults_to_now_and_aware_times_are_converted(books):
    now = post(request(books, "now", taken_at=None)).entry
    assert abs(now.taken_at - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(minutes=1)
    aware = dt.datetime(2026, 6, 30, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    entry = post(request(books, "aware", taken_at=aware)).entry
    assert entry.taken_at == dt.datetime(2026, 7, 1, 4, 30)
    assert entry.business_date == dt.date(2026, 7, 1)


def test_same_key_twice_returns_the_first_and_creates_nothing(books):
    first = post(request(books))
    second = post(request(books, narrative="a retried webhook"))
    assert first.created is True and second.created is False
    assert second.entry.id == first.entry.id
    assert second.entry.receipt_reference == first.entry.receipt_reference
    assert count() == 1


def test_reusing_a_key_for_a_different_posting_is_a_conflict(books):
    post(request(books))
    other_fund = Fund.create(code="RENT", name="Rents")
    other_method = MethodOfPayment.create(code="CASH", name="Cash", channel="cash")
    for change in (
        {"amount_pence": 12001},
        {"account_reference": "PP999999"},
        {"fund": other_fund},
        {"method": other_method},
    ):
        with pytest.raises(IdempotencyConflict) as caught:
            post(request(books, **change))
        assert isinstance(caught.value, DomainError)
        assert "already" in caught.value.message
    assert count() == 1


def test_a_retry_still_returns_the_entry_after_the_fund_is_disabled(books):
    first = post(request(books)).entry
    Fund.update(enabled=False).where(Fund.id == books.fund.id).execute()
    books.fund = Fund.get_by_id(books.fund.id)
    again = post(request(books))
    assert (again.created, again.entry.id) == (False, first.id)


def test_disabled_fund_and_method_are_refused(books):
    books.fund.enabled = False
    books.fund.save()
    with pytest.raises(DomainError, match="is not taking payments") as caught:
        post(request(books))
    assert caught.value.field == "fund"
    books.method.enabled = False
    books.method.save()
    with pytest.raises(DomainError, match="cannot be used") as caught:
        post(request(books, fund=books.exempt_fund))
    assert caught.value.field == "method"
    assert count() == 0


@pytest.mark.parametrize("amount", [120.0, Decimal(120), "12000", True, None])
def test_amount_must_be_integer_pence(books, amount):
    with pytest.raises(DomainError, match="whole number of pence"):
        post(request(books, amount_pence=amount))
    assert count() == 0


def test_zero_is_refused_unless_allowed(books):
    with pytest.raises(DomainError, match="other than £0.00"):
        post(request(books, amount_pence=0))
    entry = post(request(books, amount_pence=0, allow_zero=True)).entry
    assert (entry.amount_pence, entry.vat_pence, entry.net_pence) == (0, 0, 0)


@pytest.mark.parametrize("key", ["", "   ", None, "x" * 201])
def test_key_is_required_and_bounded(books, key):
    with pytest.raises(DomainError) as caught:
        post(request(books, key))
    assert caught.value.field == "idempotency_key"


def test_unknown_source_and_overlong_text_are_refused(books):
    with pytest.raises(DomainError, match="Unknown source"):
        post(request(books, source="magic"))
    with pytest.raises(DomainError, match="40 characters or fewer"):
        post(request(books, account_reference="X" * 41))
    with pytest.raises(DomainError, match="200 characters or fewer"):
        post(request(books, narrative="X" * 201))
    assert count() == 0


def test_refund_links_to_what_it_corrects(books):
    original = post(request(books)).entry
    refund = post(
        request(books, "refund-1", amount_pence=-12000, source="refund", corrects=original, taken_at=None)
    ).entry
    assert (refund.vat_pence, refund.net_pence) == (-2000, -10000)
    assert [e.id for e in LedgerEntry.linked(original)] == [refund.id]
    assert refund.corrects.id == original.id
    assert LedgerEntry.totals() == (2, 0)


# --- immutability ------------------------------------------------------------------------


def test_domain_layer_refuses_to_change_or_delete_entries(books):
    entry = post(request(books)).entry
    entry.amount_pence = 1
    with pytest.raises(ImmutableRecord):
        entry.save()
    with pytest.raises(ImmutableRecord):
        entry.delete_instance()
    with pytest.raises(ImmutableRecord):
        LedgerEntry.update(amount_pence=1)
    with pytest.raises(ImmutableRecord):
        LedgerEntry.delete()
    assert LedgerEntry.get_by_id(entry.id).amount_pence == 12000


@pytest.mark.parametrize(
    ("table", "column"),
    [("ledger_entry", "amount_pence"), ("audit_event", "summary")],
)
def test_database_triggers_refuse_raw_update_and_delete(db, books, table, column):
    post(request(books))
    audit.record("test.event", summary="Something happened")
    value = 1 if column == "amount_pence" else "'forged'"
    with pytest.raises(DatabaseError, match="cannot be changed or deleted"), db.atomic():
        db.execute_sql(f'UPDATE "{table}" SET {column} = {value} WHERE id = {db.param}', (1,))
    with pytest.raises(DatabaseError, match="cannot be changed or deleted"), db.atomic():
        db.execute_sql(f'DELETE FROM "{table}"')
    if is_postgres():
        with pytest.raises(DatabaseError, match="cannot be changed or deleted"), db.atomic():
            # CASCADE: otherwise a table that refers to it (payment_item) stops it before the trigger can.
            db.execute_sql(f'TRUNCATE "{table}" CASCADE')
    assert db.execute_sql(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] >= 1
    assert LedgerEntry.get().amount_pence == 12000
    assert AuditEvent.select().where(AuditEvent.summary == "forged").count() == 0


def test_migration_down_removes_the_ledger_and_triggers_and_up_restores_them(db, books):
    runner = Runner(db, directory=MIGRATIONS)
    audit.record("test.event")
    # Later migrations (which may refer to the ledger's tables) come down first.
    reverted = runner.down("0002_ledger")
    assert reverted[-1] == "0002_ledger"
    assert "ledger_entry" not in db.get_tables()
    # With the triggers gone the audit trail is an ordinary table again.
    db.execute_sql('UPDATE "audit_event" SET summary = summary')
    assert runner.up() == list(reversed(reverted))
    with pytest.raises(DatabaseError), db.atomic():
        db.execute_sql('UPDATE "audit_event" SET summary = summary')
    assert post(request(books)).created


def test_migration_0015_gives_entries_posted_before_it_their_receipt_numbers(db, books):
    # Entries posted before 0015 have only their reference; 0015 fills in the number behind it
    # (switching the append-only trigger off for that one change), and look-ups use the number.
    runner = Runner(db, directory=MIGRATIONS)
    reverted = runner.down("0015_ledger_write_indexes")  # and any later ones first
    assert reverted[-1] == "0015_ledger_write_indexes"
    db.execute_sql("INSERT INTO receipt_number (created_at) VALUES (CURRENT_TIMESTAMP)")
    (number,) = db.execute_sql("SELECT MAX(id) FROM receipt_number").fetchone()
    columns = "receipt_reference, idempotency_key, fund_id, account_reference, amount_pence, vat_rate, vat_pence, "
    columns += "net_pence, method_id, narrative, payer_name, payer_email, payer_address, taken_at, business_date, "
    columns += "created_at, source, source_reference, group_reference"
    values = (make_receipt_reference(number), "before-0015", books.fund.id, "REF1", 1200, "0", 0, 1200)
    values += (books.method.id, "", "", "", "", "2026-01-05 12:00:00", "2026-01-05", "2026-01-05 12:00:00")
    values += ("payment", "", "")
    marks = ", ".join(db.param for _ in values)
    db.execute_sql(f"INSERT INTO ledger_entry ({columns}) VALUES ({marks})", values)  # noqa: S608
    assert runner.up() == list(reversed(reverted))
    old = LedgerEntry.get(LedgerEntry.idempotency_key == "before-0015")
    assert old.receipt_number == number
    assert LedgerEntry.by_receipt(old.receipt_reference.lower().replace("-", " ")) == old
    # Still append-only afterwards, and a new posting gets its number as it is made.
    with pytest.raises(DatabaseError), db.atomic():
        db.execute_sql(f"UPDATE ledger_entry SET receipt_number = 1 WHERE id = {db.param}", (old.id,))
    new = post(request(books, "after-0015")).entry
    assert new.receipt_number == receipt_number_of(new.receipt_reference)
    assert LedgerEntry.by_receipt(new.receipt_reference) == new


# --- receipts, batches, queries -----------------------------------------------------------


def test_receipt_references_of_500_posts_are_unique_and_valid(books):
    references = [post(request(books, f"bulk-{i}", amount_pence=100 + i)).entry.receipt_reference for i in range(500)]
    assert len(set(references)) == 500
    assert all(is_valid_receipt_reference(r) for r in references)
    assert ReceiptNumber.select().count() == 500
    assert LedgerEntry.totals() == (500, sum(100 + i for i in range(500)))


def test_post_many_is_all_or_nothing(books):
    books.exempt_fund.enabled = False
    books.exempt_fund.save()
    with pytest.raises(DomainError):
        post_many([request(books, "basket-1"), request(books, "basket-2", fund=books.exempt_fund)])
    with pytest.raises(DomainError):
        post_many([request(books, "basket-1"), request(books, "basket-2", amount_pence=1.5)])
    assert count() == 0
    assert ReceiptNumber.select().count() == 0


def test_post_many_shares_a_group_reference_and_is_idempotent(books):
    already = post(request(books, "basket-1")).entry
    results = post_many(
        [request(books, "basket-1"), request(books, "basket-2", amount_pence=500, account_reference="PP2")],
        group_reference="basket-abc",
    )
    assert [r.created for r in results] == [False, True]
    assert results[0].entry.id == already.id
    assert results[1].entry.group_reference == "basket-abc"
    assert LedgerEntry.select().where(LedgerEntry.group_reference == "basket-abc").count() == 1
    again = post_many(
        [request(books, "basket-1"), request(books, "basket-2", amount_pence=500, account_reference="PP2")],
        group_reference="basket-abc",
    )
    assert [r.created for r in again] == [False, False]
    assert count() == 2
    with pytest.raises(DomainError, match="share one group reference"):
        post_many([request(books, "basket-3", group_reference="other")], group_reference="basket-abc")
    assert post_many([]) == []


def test_query_helpers(books):
    parking = post(request(books, "a", amount_pence=1000)).entry
    post(request(books, "b", amount_pence=2500))
    tax = post(request(books, "c", fund=books.exempt_fund, amount_pence=40000)).entry
    reversal = post(request(books, "d", amount_pence=-1000, source="reversal", corrects=parking)).entry

    assert {e.id for e in LedgerEntry.for_funds([books.fund.id])} == {parking.id, reversal.id} | {
        e.id for e in LedgerEntry.select().where(LedgerEntry.idempotency_key == "b")
    }
    assert [e.id for e in LedgerEntry.for_funds([books.exempt_fund.id])] == [tax.id]
    assert list(LedgerEntry.for_funds([])) == []

    assert LedgerEntry.totals() == (4, 42500)
    assert LedgerEntry.totals(LedgerEntry.for_funds([books.fund.id])) == (3, 2500)
    assert LedgerEntry.totals(LedgerEntry.for_funds([])) == (0, 0)
    assert LedgerEntry.totals(LedgerEntry.select().order_by(LedgerEntry.id).limit(2)) == (2, 3500)

    spaced = tax.receipt_reference.lower().replace("-", " ")
    assert LedgerEntry.by_receipt(spaced).id == tax.id
    assert LedgerEntry.by_receipt("not a receipt") is None
    assert [e.id for e in LedgerEntry.linked(parking)] == [reversal.id]
    assert list(LedgerEntry.linked(tax)) == []


# --- concurrency ---------------------------------------------------------------------------


def _run_threads(db, count: int, work):
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:  # handed to the test, which fails on any
            errors.append(exc)
        finally:
            db.close()  # each thread has its own connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def test_racing_the_same_key_posts_exactly_once(db, books):
    results = _run_threads(db, 8, lambda i: post(request(books, "racy-key")))
    assert count() == 1
    assert sum(r.created for r in results) == 1
    assert len({r.entry.id for r in results}) == 1


def test_concurrent_writers_with_different_keys_all_post(db, books):
    def work(i: int) -> list[str]:
        return [post(request(books, f"t{i}-{j}", amount_pence=1 + j)).entry.receipt_reference for j in range(15)]

    results = _run_threads(db, 8, work)
    references = [r for batch in results for r in batch]
    assert count() == 120
    assert len(set(references)) == 120


def test_the_ledger_has_the_indexes_its_queries_and_its_bulk_writes_were_measured_with(db):
    # Every index on ledger_entry costs every posting; every missing one can cost every page.
    # The set below is what bench/bench_import.py and bench/bench_search.py were measured with
    # (migrations/0015 says why each is there). Change it only with both benchmarks run again.
    indexes = {index.name: tuple(index.columns) for index in db.get_indexes("ledger_entry")}
    expected = {
        "ledgerentry_receipt_number": ("receipt_number",),
        "ledgerentry_idempotency_key": ("idempotency_key",),
        "ledgerentry_fund_id": ("fund_id",),
        "ledgerentry_method_id": ("method_id",),
        "ledgerentry_user_id": ("user_id",),
        "ledgerentry_corrects_id": ("corrects_id",),
        "ledgerentry_group_reference": ("group_reference",),
        "ledgerentry_import_batch_id": ("import_batch_id",),
        "ledgerentry_account_reference_fund_id": ("account_reference", "fund_id"),
        "ledgerentry_amount_pence": ("amount_pence",),
        "ledgerentry_search": (
            "business_date", "fund_id", "method_id", "source", "office_id", "user_id", "id", "amount_pence",
        ),
    }  # fmt: skip
    indexes.pop("ledger_entry_pkey", None)  # PostgreSQL names its primary key's index
    assert indexes == expected
