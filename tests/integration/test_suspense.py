"""Suspense: money in, allocated in full or split, never below zero, never twice; notes; filters; pages.

Every action is checked in the ledger: what was posted to the suspense fund and to each
destination, linked to the item's entry, and what is left on the item. Races run with real
commits on a fresh database (SQLite and PostgreSQL), several threads at once.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import uuid

import pytest
from peewee import IntegrityError

from app.db import database
from app.domain import suspense
from app.domain.audit import AuditEvent
from app.domain.errors import DomainError, NotFound
from app.domain.funds import Fund
from app.domain.ledger import IdempotencyConflict, LedgerEntry
from app.domain.methods import MethodOfPayment
from app.domain.references.demo import generate_valid_reference
from app.domain.suspense import (
    AllocationLine,
    AllocationRefused,
    SuspenseAllocation,
    SuspenseFilters,
    SuspenseItem,
    SuspenseNote,
)
from app.domain.ukdates import start_of_day_utc
from app.domain.users import User
from tests.pages import DEMO_EMAILS, csrf_token, error_summary, h1, main_text, table_rows

CTAX_REF = "594580735"


def _user(who: str) -> User:
    return User.get(User.email == DEMO_EMAILS[who])


def _fund(code: str) -> Fund:
    return Fund.by_code(code)


def _lib_ref() -> str:
    return generate_valid_reference("LIB", random.Random(3))


def _item(pence: int = 4_000, *, reference: str = "UNKNOWN 1", source: str = "bank", days_ago: int | None = None, **kw):
    taken_at = None
    if days_ago is not None:
        # Noon in London on the day, so the business date is exactly `days_ago` days before today.
        today = suspense.uk_today()
        taken_at = start_of_day_utc(today - dt.timedelta(days=days_ago)) + dt.timedelta(hours=12)
    item, created = suspense.put_into_suspense(
        _fund("SUSP"),
        pence,
        MethodOfPayment.by_code("BACS"),
        source=source,
        idempotency_key=kw.pop("key", f"test:{uuid.uuid4().hex}"),
        reference=reference,
        detail=kw.pop("detail", "Bank credit with no account reference"),
        taken_at=taken_at,
        **kw,
    )
    assert created
    return item


def _fresh(item: SuspenseItem) -> SuspenseItem:
    return SuspenseItem.get_by_id(item.id)


def _entries(item: SuspenseItem) -> list[LedgerEntry]:
    """The allocation entries linked to the item's entry, in posting order."""
    return list(LedgerEntry.select().where(LedgerEntry.corrects == item.ledger_entry_id).order_by(LedgerEntry.id))


def _suspense_balance(item: SuspenseItem) -> int:
    """What the ledger holds on the suspense fund for the item's entry: its amount and every linked entry."""
    entry = item.ledger_entry
    return entry.amount_pence + sum(e.amount_pence for e in _entries(item) if e.fund_id == entry.fund_id)


# ---------------------------------------------------------------------------
# Money in
# ---------------------------------------------------------------------------


def test_put_into_suspense_posts_to_the_suspense_fund_and_opens_an_item(app):
    item = _item(12_350, reference="59458073 ", source="failed_validation", key="test:in:1", payer_name="Aisha Khan")
    entry = item.ledger_entry
    assert (entry.fund.code, entry.amount_pence, entry.method.code, entry.source) == ("SUSP", 12_350, "BACS", "import")
    assert entry.account_reference == "59458073" and entry.payer_name == "Aisha Khan"
    assert (item.amount_pence, item.remaining_pence, item.status, item.source) == (
        12_350,
        12_350,
        "open",
        "failed_validation",
    )
    assert item.fund_id == entry.fund_id and item.received_on == entry.business_date
    # The same key again: the same item, nothing posted twice.
    count = LedgerEntry.select().count()
    again, created = suspense.put_into_suspense(
        _fund("SUSP"),
        12_350,
        MethodOfPayment.by_code("BACS"),
        source="failed_validation",
        idempotency_key="test:in:1",
        reference="59458073",
    )
    assert not created and again.id == item.id
    assert LedgerEntry.select().count() == count
    with pytest.raises(IdempotencyConflict):  # the same key for different money
        suspense.put_into_suspense(
            _fund("SUSP"), 99, MethodOfPayment.by_code("BACS"), source="bank", idempotency_key="test:in:1"
        )
    # Only a suspense fund takes it.
    with pytest.raises(DomainError, match="suspense fund"):
        suspense.put_into_suspense(
            _fund("CTAX"), 100, MethodOfPayment.by_code("BACS"), source="bank", idempotency_key="test:in:2"
        )
    with pytest.raises(DomainError, match="greater than"):
        suspense.put_into_suspense(
            _fund("SUSP"), 0, MethodOfPayment.by_code("BACS"), source="bank", idempotency_key="test:in:3"
        )


def test_an_entry_already_in_the_suspense_fund_can_be_given_an_item_once(app):
    from app.domain.ledger import PostingRequest, post

    entry = post(
        PostingRequest(
            idempotency_key="test:bulk:1",
            fund=_fund("SUSP"),
            account_reference="ROW 7",
            amount_pence=900,
            method=MethodOfPayment.by_code("ALLPAY"),
            source="import",
        )
    ).entry
    item, created = suspense.open_item_for_entry(entry, source="import", detail="No fund matched")
    assert created and item.remaining_pence == 900
    assert suspense.open_item_for_entry(entry, source="import") == (item, False)
    ctax_entry = LedgerEntry.select().where(LedgerEntry.fund == _fund("CTAX").id).first()
    with pytest.raises(DomainError, match="not in a suspense fund"):
        suspense.open_item_for_entry(ctax_entry, source="import")


# ---------------------------------------------------------------------------
# Allocating
# ---------------------------------------------------------------------------


def test_allocating_in_full_moves_the_money_and_closes_the_item(app):
    item = _item(4_000, payer_name="J Smith")
    finance = _user("finance")
    result = suspense.allocate(
        item, finance, [AllocationLine(_fund("CTAX"), CTAX_REF, 4_000)], submission_key="k-full", note="Phoned payer"
    )
    assert result.created
    out, into = result.entries
    assert (out.fund.code, out.account_reference, out.amount_pence) == ("SUSP", "UNKNOWN 1", -4_000)
    assert (into.fund.code, into.account_reference, into.amount_pence) == ("CTAX", CTAX_REF, 4_000)
    for entry in result.entries:
        assert entry.source == "suspense_allocation"
        assert entry.corrects_id == item.ledger_entry_id
        assert entry.method.channel == "journal"
        assert entry.group_reference == result.allocation.group_reference
        assert entry.user_id == finance.id
    assert into.payer_name == "J Smith"
    assert _entries(item) == result.entries
    item = _fresh(item)
    assert (item.remaining_pence, item.status) == (0, "allocated")
    assert _suspense_balance(item) == 0
    assert suspense.ledger_remaining_pence(item) == 0
    event = AuditEvent.get(AuditEvent.action == "suspense.allocate")
    assert event.object_id == str(item.id) and event.after_data["remaining_pence"] == 0
    # Nothing is left: a second allocation is refused and posts nothing.
    with pytest.raises(DomainError, match="already been allocated in full"):
        suspense.allocate(item, finance, [AllocationLine(_fund("CTAX"), CTAX_REF, 1)], submission_key="k-more")
    assert len(_entries(item)) == 2


def test_an_item_can_be_split_across_several_funds_and_accounts(app):
    item = _item(10_000)
    lines = [
        AllocationLine(_fund("CTAX"), CTAX_REF, 6_000),
        AllocationLine(_fund("LIB"), _lib_ref(), 1_500),
        AllocationLine(_fund("TWASTE"), "c10001", 2_500),
    ]
    result = suspense.allocate(item, _user("finance"), lines, submission_key="k-split")
    assert [(e.fund.code, e.account_reference, e.amount_pence) for e in result.entries] == [
        ("SUSP", "UNKNOWN 1", -10_000),
        ("CTAX", CTAX_REF, 6_000),
        ("LIB", _lib_ref(), 1_500),
        ("TWASTE", "C10001", 2_500),
    ]
    assert sum(e.amount_pence for e in result.entries) == 0
    assert {e.corrects_id for e in result.entries} == {item.ledger_entry_id}
    assert len({e.group_reference for e in result.entries}) == 1
    assert result.allocation.amount_pence == 10_000
    assert (_fresh(item).remaining_pence, _fresh(item).status) == (0, "allocated")


def test_a_partial_allocation_leaves_the_rest_in_suspense(app):
    item = _item(4_000)
    finance = _user("finance")
    suspense.allocate(item, finance, [AllocationLine(_fund("CTAX"), CTAX_REF, 1_500)], submission_key="k-part-1")
    item = _fresh(item)
    assert (item.remaining_pence, item.status) == (2_500, "open")
    assert _suspense_balance(item) == 2_500
    with pytest.raises(AllocationRefused) as refused:
        suspense.allocate(item, finance, [AllocationLine(_fund("LIB"), _lib_ref(), 2_501)], submission_key="k-part-2")
    assert refused.value.errors == {"total": "You can allocate up to £25.00"}
    suspense.allocate(item, finance, [AllocationLine(_fund("LIB"), _lib_ref(), 2_500)], submission_key="k-part-3")
    item = _fresh(item)
    assert (item.remaining_pence, item.status) == (0, "allocated")
    assert _suspense_balance(item) == 0
    assert SuspenseAllocation.select().where(SuspenseAllocation.item == item).count() == 2


def test_allocating_more_than_is_left_is_refused_and_posts_nothing(app):
    item = _item(4_000)
    before = LedgerEntry.select().count()
    lines = [AllocationLine(_fund("CTAX"), CTAX_REF, 3_000), AllocationLine(_fund("LIB"), _lib_ref(), 1_001)]
    with pytest.raises(AllocationRefused) as refused:
        suspense.allocate(item, _user("finance"), lines, submission_key="k-over")
    assert refused.value.errors == {"total": "You can allocate up to £40.00"}
    assert LedgerEntry.select().count() == before
    assert SuspenseAllocation.select().count() == 0
    assert (_fresh(item).remaining_pence, _fresh(item).status) == (4_000, "open")


def test_destinations_are_checked_and_nothing_is_posted_when_one_is_wrong(app):
    item = _item(4_000)
    before = LedgerEntry.select().count()
    lines = [
        AllocationLine(_fund("CTAX"), "123", 1_000, number=1),
        AllocationLine(_fund("TWASTE"), "C99999", 1_000, number=2),
        AllocationLine(_fund("SUSP"), "X", 1_000, number=3),
        AllocationLine(_fund("LIB"), _lib_ref(), None, number=4),
        AllocationLine(None, "", 500, number=5),
    ]
    with pytest.raises(AllocationRefused) as refused:
        suspense.allocate(item, _user("finance"), lines, submission_key="k-bad")
    errors = refused.value.errors
    assert errors["lines-0-reference"].startswith("Line 1: ")
    assert (
        errors["lines-1-reference"]
        == "Line 2: There is no Commercial waste collection account with the reference C99999"
    )
    assert errors["lines-2-fund"] == "Line 3: money cannot be allocated to a suspense fund"
    assert errors["lines-3-amount"] == "Enter the amount for line 4"
    assert errors["lines-4-fund"] == "Select the fund for line 5"
    assert errors["lines-4-reference"] == "Enter the reference for line 5"
    # Two lines for one account.
    twice = [AllocationLine(_fund("CTAX"), CTAX_REF, 100), AllocationLine(_fund("CTAX"), CTAX_REF, 100)]
    with pytest.raises(AllocationRefused) as refused:
        suspense.allocate(item, _user("finance"), twice, submission_key="k-twice")
    assert refused.value.errors == {"lines-1-reference": "Line 2 is for the same account as line 1"}
    with pytest.raises(AllocationRefused, match="Enter where the money is going"):
        suspense.allocate(item, _user("finance"), [], submission_key="k-none")
    assert LedgerEntry.select().count() == before
    assert _fresh(item).remaining_pence == 4_000


def test_destinations_must_be_in_the_users_fund_groups(app, db_kind):
    item = _item(4_000)
    # Senior sees every fund; finance (revenues, corporate, parking) does not see housing rent.
    with pytest.raises(AllocationRefused) as refused:
        suspense.allocate(
            item, _user("finance"), [AllocationLine(_fund("HRENT"), "61234567892", 1_000)], submission_key="k-scope"
        )
    assert refused.value.errors == {"lines-0-fund": "Select the fund for line 1"}
    result = suspense.allocate(
        item, _user("senior"), [AllocationLine(_fund("HRENT"), "61234567892", 1_000)], submission_key="k-scope-2"
    )
    assert result.entries[1].fund.code == "HRENT"


def test_the_same_submission_key_allocates_once(app):
    item = _item(4_000)
    finance = _user("finance")
    line = [AllocationLine(_fund("CTAX"), CTAX_REF, 1_000)]
    first = suspense.allocate(item, finance, line, submission_key="k-once")
    second = suspense.allocate(_fresh(item), finance, line, submission_key="k-once")
    assert first.created and not second.created
    assert second.allocation.id == first.allocation.id
    assert [e.id for e in second.entries] == [e.id for e in first.entries]
    assert len(_entries(item)) == 2 and _fresh(item).remaining_pence == 3_000
    other = _item(500)
    with pytest.raises(IdempotencyConflict):
        suspense.allocate(other, finance, line, submission_key="k-once")


def test_the_database_refuses_a_remaining_amount_below_zero(app):
    item = _item(4_000)
    for change in (
        {"remaining_pence": -1, "status": "open"},
        {"remaining_pence": 4_001},
        {"remaining_pence": 0, "status": "open"},
        {"remaining_pence": 10, "status": "allocated"},
    ):
        with pytest.raises(IntegrityError), database.atomic():
            SuspenseItem.update(**change).where(SuspenseItem.id == item.id).execute()
    assert _fresh(item).remaining_pence == 4_000


def test_only_users_who_correct_the_ledger_allocate_and_items_are_scoped(app):
    item = _item(4_000)
    line = [AllocationLine(_fund("CTAX"), CTAX_REF, 1_000)]
    with pytest.raises(DomainError, match="permission"):
        suspense.allocate(item, _user("auditor"), line, submission_key="k-auditor")
    # Housing staff do not see the suspense fund: the item does not exist for them.
    with pytest.raises(NotFound):
        suspense.allocate(item, _user("housing"), line, submission_key="k-housing")
    with pytest.raises(NotFound):
        suspense.visible_item(item.id, _user("housing"))
    assert suspense.visible_item(item.id, _user("auditor")) == item
    assert suspense.search(_user("housing"), SuspenseFilters(status="all")).count() == 0
    typed = item.ledger_entry.receipt_reference.replace("-", "").lower()
    assert suspense.search(_user("finance"), SuspenseFilters(text=typed)).count() == 1
    assert _entries(item) == []


# ---------------------------------------------------------------------------
# Notes
# ---------------------------------------------------------------------------


def test_notes_are_added_by_finance_and_kept(app):
    item = _item(4_000)
    note = suspense.add_note(item, _user("finance"), "  Called the bank  ")
    assert (note.text, note.user.email) == ("Called the bank", DEMO_EMAILS["finance"])
    assert list(_fresh(item).notes_newest_first()) == [note]
    assert AuditEvent.select().where(AuditEvent.action == "suspense.note").count() == 1
    with pytest.raises(DomainError, match="Enter a note"):
        suspense.add_note(item, _user("finance"), "   ")
    with pytest.raises(DomainError, match="1000 characters or fewer"):
        suspense.add_note(item, _user("finance"), "x" * 1001)
    with pytest.raises(DomainError, match="permission"):
        suspense.add_note(item, _user("auditor"), "Looks odd")
    with pytest.raises(NotFound):
        suspense.add_note(item, _user("housing"), "Mine?")
    with pytest.raises(DomainError):
        note.delete_instance()
    assert SuspenseNote.select().where(SuspenseNote.item == item).count() == 1


# ---------------------------------------------------------------------------
# Finding items
# ---------------------------------------------------------------------------


def test_items_are_filtered_by_age_band_source_text_and_amount(app):
    ages = [0, 7, 8, 30, 31, 90, 91, 400]
    items = {days: _item(1_000 + days, reference=f"AGETEST {days}", days_ago=days) for days in ages}
    items["import"] = _item(77_700, reference="AGETEST IMPORT", source="import", days_ago=3, payer_name="Zed Quill")
    finance = _user("finance")

    def found(**filters) -> list[int]:
        query = suspense.search(finance, SuspenseFilters(text="AGETEST", **filters))
        return sorted(item.id for item in query)

    def ids(*keys) -> list[int]:
        return sorted(items[k].id for k in keys)

    assert items[7].age_days() == 7 and items[0].age_text() == "Today" and items[8].age_text() == "8 days"
    assert found(age="0-7") == ids(0, 7, "import")
    assert found(age="8-30") == ids(8, 30)
    assert found(age="31-90") == ids(31, 90)
    assert found(age="over-90") == ids(91, 400)
    assert found(source="import") == ids("import")
    assert found(amount_from=1_030, amount_to=1_091) == ids(30, 31, 90, 91)
    assert sorted(i.id for i in suspense.search(finance, SuspenseFilters(text="zed qui"))) == ids("import")
    # Oldest first; allocated items leave the open list.
    ordered = [i.id for i in suspense.search(finance, SuspenseFilters(text="AGETEST"))]
    assert ordered[:2] == [items[400].id, items[91].id]
    suspense.allocate(items[0], finance, [AllocationLine(_fund("CTAX"), CTAX_REF, 1_000)], submission_key="k-age")
    assert items[0].id not in found()
    assert found(status="allocated") == ids(0)
    assert len(found(status="all")) == len(items)
    count, left = suspense.totals(suspense.search(finance, SuspenseFilters(text="AGETEST", age="8-30")))
    assert (count, left) == (2, 1_008 + 1_030)


# ---------------------------------------------------------------------------
# Races: real commits on a fresh database, threads at once
# ---------------------------------------------------------------------------


@pytest.fixture
def seeded(fresh_database):
    from app.demo import seed_configuration

    with fresh_database.atomic():
        seed_configuration()
    return fresh_database


def _race(targets) -> list:
    """Run each target in its own thread, all released at once; their results or exceptions, in order."""
    barrier = threading.Barrier(len(targets))
    outcomes: list = [None] * len(targets)

    def run(index, target):
        try:
            barrier.wait()
            outcomes[index] = target()
        except Exception as error:  # noqa: BLE001 (returned to the test)
            outcomes[index] = error
        finally:
            database.close()

    threads = [threading.Thread(target=run, args=(n, t)) for n, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def test_a_double_submission_at_once_allocates_once(seeded):
    item = _item(4_000, key="race:item:1")
    finance = _user("finance")
    line = [AllocationLine(_fund("CTAX"), CTAX_REF, 4_000)]

    def submit():
        return suspense.allocate(SuspenseItem.get_by_id(item.id), finance, line, submission_key="race:same")

    outcomes = _race([submit] * 6)
    assert all(isinstance(o, suspense.AllocationResult) for o in outcomes), outcomes
    assert sum(o.created for o in outcomes) == 1
    assert len({o.allocation.id for o in outcomes}) == 1
    assert SuspenseAllocation.select().count() == 1
    entries = _entries(item)
    assert [(e.fund.code, e.amount_pence) for e in entries] == [("SUSP", -4_000), ("CTAX", 4_000)]
    item = _fresh(item)
    assert (item.remaining_pence, item.status) == (0, "allocated")
    assert _suspense_balance(item) == 0


def test_different_allocations_racing_for_what_is_left_never_take_it_below_zero(seeded):
    item = _item(4_000, key="race:item:2")
    finance = _user("finance")

    def submit(n):
        def run():
            lines = [AllocationLine(_fund("CTAX"), CTAX_REF, 1_500)]
            return suspense.allocate(SuspenseItem.get_by_id(item.id), finance, lines, submission_key=f"race:{n}")

        return run

    outcomes = _race([submit(n) for n in range(6)])
    made = [o for o in outcomes if isinstance(o, suspense.AllocationResult)]
    refused = [o for o in outcomes if isinstance(o, AllocationRefused)]
    assert len(made) == 2 and len(refused) == 4, outcomes
    assert {r.errors["total"] for r in refused} <= {"You can allocate up to £10.00", "You can allocate up to £25.00"}
    assert all(r.created for r in made)
    item = _fresh(item)
    assert (item.remaining_pence, item.status) == (1_000, "open")
    assert _suspense_balance(item) == 1_000
    assert sum(a.amount_pence for a in SuspenseAllocation.select()) == 3_000
    assert sum(e.amount_pence for e in _entries(item) if e.fund.code == "CTAX") == 3_000
    # One more racer for exactly what is left, and one for a penny: one of them wins.
    last = _race(
        [
            lambda: suspense.allocate(
                SuspenseItem.get_by_id(item.id),
                finance,
                [AllocationLine(_fund("CTAX"), CTAX_REF, 1_000)],
                submission_key="race:last",
            ),
            lambda: suspense.allocate(
                SuspenseItem.get_by_id(item.id),
                finance,
                [AllocationLine(_fund("CTAX"), CTAX_REF, 1)],
                submission_key="race:penny",
            ),
        ]
    )
    item = _fresh(item)
    assert item.remaining_pence >= 0
    assert _suspense_balance(item) == item.remaining_pence
    assert sum(a.amount_pence for a in SuspenseAllocation.select()) == 4_000 - item.remaining_pence
    assert any(isinstance(o, suspense.AllocationResult) for o in last)


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------


def test_the_list_shows_items_with_their_age_and_filters_work_with_and_without_htmx(signed_in):
    item = _item(4_321, reference="LISTTEST 1", days_ago=40, payer_name="Lou Lister")
    client = signed_in("finance")
    page = client.get("/suspense")
    assert h1(page.data) == "Suspense"
    assert any(row[0] == f"Item {item.id}" for row in table_rows(page.data))
    page = client.get("/suspense?text=LISTTEST&age=31-90&source=bank&status=open&amount_from=&amount_to=")
    rows = table_rows(page.data)
    assert len(rows) == 1 and rows[0][0] == f"Item {item.id}" and rows[0][2] == "40 days"
    assert "£43.21" in rows[0][-1]
    assert "1 of 1 item, £43.21 left to allocate" in main_text(page.data)
    partial = client.get("/suspense?text=LISTTEST&age=0-7", headers={"HX-Request": "true"})
    body = partial.get_data(as_text=True)
    assert "<h1" not in body and "No suspense items match" in body
    assert 'id="results-status"' in body and "No items found" in body
    assert "HX-Request" in partial.headers["Vary"]
    wrong = client.get("/suspense?amount_from=lots")
    assert "Enter an amount in pounds and pence, like £1,234.50" in error_summary(wrong.data)
    wrong = client.get("/suspense?amount_from=20&amount_to=10")
    assert error_summary(wrong.data) == ["The amount to must be the same as or more than the amount from"]


def test_the_item_page_and_notes(signed_in):
    item = _item(4_000, reference="NOTETEST", detail="Rent? No account number")
    client = signed_in("finance")
    page = client.get(f"/suspense/{item.id}")
    assert h1(page.data) == f"Suspense item {item.id}"
    text = main_text(page.data)
    assert "Rent? No account number" in text and "Unidentified bank credit" in text and "Allocate this money" in text
    empty = client.post(f"/suspense/{item.id}/notes", data={"csrf_token": csrf_token(page.data), "text": " "})
    assert empty.status_code == 200 and error_summary(empty.data) == ["Enter a note"]
    done = client.post(f"/suspense/{item.id}/notes", data={"csrf_token": csrf_token(page.data), "text": "Asked rents"})
    assert done.status_code == 302
    page = client.get(done.location)
    assert "Note added" in main_text(page.data) and "Asked rents" in main_text(page.data)
    # The auditor reads it but cannot allocate or add notes; housing staff cannot see it at all.
    auditor = signed_in("auditor")
    page = auditor.get(f"/suspense/{item.id}")
    assert page.status_code == 200 and "Asked rents" in main_text(page.data)
    assert "Allocate this money" not in main_text(page.data) and "Add note" not in main_text(page.data)
    assert auditor.get(f"/suspense/{item.id}/allocate").status_code == 403
    assert signed_in("housing").get(f"/suspense/{item.id}").status_code == 404


def _allocation_form(token: str, **lines) -> dict:
    data = {"csrf_token": token, "note": ""}
    for row in range(5):
        for part in ("fund", "reference", "amount"):
            data[f"lines-{row}-{part}"] = ""
    data.update(lines)
    return data


def test_allocating_through_the_pages_split_across_two_funds(signed_in):
    item = _item(4_000, reference="PAGETEST")
    client = signed_in("finance")
    page = client.get(f"/suspense/{item.id}/allocate")
    assert h1(page.data) == f"Allocate suspense item {item.id}"
    token = csrf_token(page.data)
    lines = {
        "lines-0-fund": "CTAX",
        "lines-0-reference": CTAX_REF,
        "lines-0-amount": "£25.00",
        # line 2 left blank
        "lines-2-fund": "LIB",
        "lines-2-reference": _lib_ref(),
        "lines-2-amount": "15",
        "note": "Payer phoned",
    }
    response = client.post(f"/suspense/{item.id}/allocate", data=_allocation_form(token, **lines))
    assert response.status_code == 302, error_summary(response.data)
    check = client.get(response.location)
    assert h1(check.data) == "Check the allocation"
    text = main_text(check.data)
    assert "Allocating £40.00" in text and "Left in suspense after £0.00" in text and "Payer phoned" in text
    confirm = csrf_token(check.data)
    done = client.post(f"/suspense/{item.id}/allocate/check", data={"csrf_token": confirm})
    assert done.status_code == 302 and done.location.endswith(f"/suspense/{item.id}")
    again = client.post(f"/suspense/{item.id}/allocate/check", data={"csrf_token": confirm})  # a second click
    assert again.status_code == 302
    page = client.get(done.location)
    allocation = SuspenseAllocation.get(SuspenseAllocation.item == item)
    assert f"£40.00 allocated from suspense item {item.id} ({allocation.group_reference})" in main_text(page.data)
    assert [(e.fund.code, e.amount_pence) for e in _entries(item)] == [
        ("SUSP", -4_000),
        ("CTAX", 2_500),
        ("LIB", 1_500),
    ]
    assert SuspenseAllocation.select().where(SuspenseAllocation.item == item).count() == 1
    assert (_fresh(item).remaining_pence, _fresh(item).status) == (0, "allocated")
    # The history links each receipt to its transaction page.
    receipts = [row[0] for row in table_rows(page.data)]
    assert receipts == [e.receipt_reference for e in _entries(item)]
    assert f'href="/transactions/{_entries(item)[1].receipt_reference}"' in page.get_data(as_text=True)
    # Nothing is left to allocate: the form sends the user back to the item.
    assert client.get(f"/suspense/{item.id}/allocate").status_code == 302


def test_allocation_form_errors_are_specific(signed_in):
    item = _item(4_000)
    client = signed_in("finance")
    token = csrf_token(client.get(f"/suspense/{item.id}/allocate").data)
    url = f"/suspense/{item.id}/allocate"

    def errors(**lines):
        response = client.post(url, data=_allocation_form(token, **lines))
        assert response.status_code == 200
        return error_summary(response.data)

    assert errors(**{"lines-0-fund": "CTAX", "lines-0-reference": CTAX_REF, "lines-0-amount": "50"}) == [
        "You can allocate up to £40.00"
    ]
    assert errors(
        **{
            "lines-0-fund": "CTAX",
            "lines-0-reference": CTAX_REF,
            "lines-0-amount": "10",
            "lines-1-fund": "LIB",
            "lines-1-reference": _lib_ref(),
        }
    ) == ["Enter the amount for line 2"]
    found = errors(**{"lines-0-fund": "CTAX", "lines-0-reference": "12", "lines-0-amount": "10"})
    assert len(found) == 1 and found[0].startswith("Line 1: ")
    assert errors() == ["Enter where the money is going: a fund, reference and amount"]
    assert errors(**{"lines-3-amount": "ten pounds", "lines-3-fund": "CTAX", "lines-3-reference": CTAX_REF}) == [
        "Line 4: Enter an amount in pounds and pence, like £1,234.50"
    ]
    assert LedgerEntry.select().where(LedgerEntry.corrects == item.ledger_entry_id).count() == 0


def test_confirming_after_someone_else_allocated_says_what_is_left_and_posts_nothing(signed_in):
    item = _item(4_000)
    client = signed_in("finance")
    token = csrf_token(client.get(f"/suspense/{item.id}/allocate").data)
    lines = {"lines-0-fund": "CTAX", "lines-0-reference": CTAX_REF, "lines-0-amount": "30"}
    assert client.post(f"/suspense/{item.id}/allocate", data=_allocation_form(token, **lines)).status_code == 302
    check = client.get(f"/suspense/{item.id}/allocate/check")
    # Meanwhile a colleague allocates £25 of it.
    suspense.allocate(
        item, _user("senior"), [AllocationLine(_fund("LIB"), _lib_ref(), 2_500)], submission_key="colleague"
    )
    done = client.post(f"/suspense/{item.id}/allocate/check", data={"csrf_token": csrf_token(check.data)})
    assert done.status_code == 302 and "change=1" in done.location
    page = client.get(done.location)
    assert error_summary(page.data) == ["You can allocate up to £15.00"]
    assert [(e.fund.code, e.amount_pence) for e in _entries(item)] == [("SUSP", -2_500), ("LIB", 2_500)]
    assert _fresh(item).remaining_pence == 1_500
