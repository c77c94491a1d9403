"""Corrections: reversals, journals and transfers, as ledger outcomes (entries, links, totals).

Domain and page tests use the demo council (`app`, rolled back after each test); the races
use a fresh database of their own (`fresh_database`) because they need real commits. All run
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random

import pytest

from app.domain import corrections
from app.domain.audit import AuditEvent
from app.domain.corrections import Correction, Line, LinesRefused
from app.domain.errors import DomainError, ImmutableRecord, NotFound
from app.domain.funds import Fund
from app.domain.ledger import IdempotencyConflict, LedgerEntry, PostingRequest, post
from app.domain.methods import MethodOfPayment
from app.domain.references import validate_reference
from app.domain.references.demo import generate_valid_reference
from app.domain.users import User
from tests.integration.conftest import run_together
from tests.pages import DEMO_EMAILS, csrf_token, error_summary, h1, inline_errors, main_text, summary_list, table_rows

# --- helpers ---------------------------------------------------------------------------------


def user(who: str) -> User:
    return User.get(User.email == DEMO_EMAILS[who])


def fund(code: str) -> Fund:
    return Fund.by_code(code)


def good_reference(code: str, amount_pence: int, *, seed: int, avoid: tuple[str, ...] = ()) -> str:
    """A reference that takes `amount_pence` by journal on the staff channel (format, account, balance)."""
    rng = random.Random(seed)
    method = corrections.journal_method()
    for _ in range(200):
        reference = generate_valid_reference(code, rng, channel="staff")
        result = validate_reference(fund(code), reference, amount_pence, channel="staff", method=method)
        if result.valid and result.reference not in avoid:
            return result.reference
    raise AssertionError(f"no reference for {code} takes {amount_pence}")


def payment(code: str = "CTAX", amount_pence: int = 10_000, *, key: str = "corrections-test-payment") -> LedgerEntry:
    """A fresh cash payment to correct."""
    return post(
        PostingRequest(
            idempotency_key=key,
            fund=fund(code),
            account_reference=good_reference(code, amount_pence, seed=1),
            amount_pence=amount_pence,
            method=MethodOfPayment.by_code("CASH"),
            source="staff_payment",
            user=user("finance"),
        )
    ).entry


def place_total(fund_id: int, reference: str) -> int:
    query = LedgerEntry.select().where((LedgerEntry.fund == fund_id) & (LedgerEntry.account_reference == reference))
    return LedgerEntry.totals(query)[1]


def group_entries(group_reference: str) -> list[LedgerEntry]:
    return list(LedgerEntry.select().where(LedgerEntry.group_reference == group_reference).order_by(LedgerEntry.id))


def audit_events(action: str, group_reference: str) -> list[AuditEvent]:
    return list(AuditEvent.select().where((AuditEvent.action == action) & (AuditEvent.object_id == group_reference)))


# --- reversal --------------------------------------------------------------------------------


def test_a_reversal_posts_a_linked_opposite_entry_and_the_account_nets_to_zero(app):
    entry = payment()
    officer = user("finance")
    before = LedgerEntry.totals()

    result = corrections.reverse(entry, officer, "Cheque returned unpaid", submission_key="rev-1")

    assert result.created
    correction = result.correction
    assert correction.kind == "reversal" and correction.group_reference.startswith("REV-")
    assert correction.entry_id == entry.id and correction.amount_pence == 10_000
    assert correction.reason == "Cheque returned unpaid" and correction.created_by_id == officer.id
    [reversal] = result.entries
    assert reversal.amount_pence == -10_000
    assert (reversal.fund_id, reversal.account_reference) == (entry.fund_id, entry.account_reference)
    assert reversal.corrects_id == entry.id and reversal.source == "reversal"
    assert reversal.group_reference == correction.group_reference
    assert reversal.method_id == entry.method_id  # the cash takings net to zero too
    assert reversal.user_id == officer.id
    assert [e.id for e in LedgerEntry.linked(entry)] == [reversal.id]
    assert place_total(entry.fund_id, entry.account_reference) == 0
    assert LedgerEntry.totals() == (before[0] + 1, before[1] - 10_000)
    assert corrections.remaining_pence(entry) == 0
    [event] = audit_events("ledger.reversal", correction.group_reference)
    assert event.actor_id == officer.id and event.object_type == "correction"
    assert event.after_data["corrects"] == entry.receipt_reference
    assert event.after_data["entries"][0]["receipt"] == reversal.receipt_reference


def test_a_second_reversal_is_refused_and_nothing_more_is_posted(app):
    entry = payment()
    corrections.reverse(entry, user("finance"), "Bounced", submission_key="rev-1")
    count = LedgerEntry.totals()

    with pytest.raises(DomainError, match="already been reversed, moved or refunded in full"):
        corrections.reverse(entry, user("senior"), "Bounced again", submission_key="rev-2")

    assert LedgerEntry.totals() == count
    assert Correction.select().where(Correction.entry == entry.id).count() == 1


def test_the_same_submission_key_returns_the_first_reversal(app):
    entry = payment()
    first = corrections.reverse(entry, user("finance"), "Bounced", submission_key="rev-1")
    count = LedgerEntry.totals()

    again = corrections.reverse(entry, user("finance"), "Bounced", submission_key="rev-1")

    assert not again.created
    assert again.correction.id == first.correction.id
    assert [e.id for e in again.entries] == [e.id for e in first.entries]
    assert LedgerEntry.totals() == count
    other = payment(key="another-payment")
    with pytest.raises(IdempotencyConflict):
        corrections.reverse(other, user("finance"), "Bounced", submission_key="rev-1")


def test_a_reversal_or_journal_line_cannot_itself_be_reversed_or_moved(app):
    entry = payment()
    reversal = corrections.reverse(entry, user("finance"), "Bounced", submission_key="rev-1").entries[0]
    count = LedgerEntry.totals()

    with pytest.raises(DomainError, match="is itself a reversal"):
        corrections.reverse(reversal, user("finance"), "Undo", submission_key="rev-2")
    with pytest.raises(DomainError, match="is itself a reversal"):
        corrections.journal(reversal, user("finance"), "Move", [], submission_key="jnl-1")

    assert LedgerEntry.totals() == count


def test_a_reason_is_required_and_limited(app):
    entry = payment()
    with pytest.raises(DomainError, match="Enter the reason"):
        corrections.reverse(entry, user("finance"), "  ", submission_key="rev-1")
    with pytest.raises(DomainError, match="500 characters or fewer"):
        corrections.reverse(entry, user("finance"), "x" * 501, submission_key="rev-1")
    assert list(LedgerEntry.linked(entry)) == []


def test_only_users_who_may_correct_the_ledger_can(app):
    entry = payment()
    with pytest.raises(DomainError, match="permission"):
        corrections.reverse(entry, user("auditor"), "Looks wrong", submission_key="rev-1")
    assert list(LedgerEntry.linked(entry)) == []


def test_an_entry_outside_the_users_fund_groups_is_not_found(app):
    entry = payment("CTAX")
    housing = user("housing")
    with pytest.raises(NotFound):
        corrections.reverse(entry, housing, "Bounced", submission_key="rev-1")
    with pytest.raises(NotFound):
        corrections.journal(entry, housing, "Move", [Line(fund("HRENT"), "HR000001", 100)], submission_key="jnl-1")
    assert list(LedgerEntry.linked(entry)) == []


def test_corrections_cannot_be_changed_or_deleted(app):
    correction = corrections.reverse(payment(), user("finance"), "Bounced", submission_key="rev-1").correction
    with pytest.raises(ImmutableRecord):
        correction.reason = "Something else"
        correction.save()
    with pytest.raises(ImmutableRecord):
        correction.delete_instance()


# --- journal ---------------------------------------------------------------------------------


def test_a_partial_journal_moves_part_of_a_payment_with_links_on_both_sides(app):
    entry = payment(amount_pence=10_000)
    officer = user("finance")
    destination = good_reference("CTAX", 4_000, seed=2, avoid=(entry.account_reference,))

    result = corrections.journal(
        entry, officer, "Paid to the wrong account", [Line(fund("CTAX"), destination, 4_000)], submission_key="jnl-1"
    )

    correction = result.correction
    assert result.created and correction.kind == "journal" and correction.group_reference.startswith("JNL-")
    assert correction.amount_pence == 4_000 and correction.entry_id == entry.id
    out, into = result.entries
    journal_method = MethodOfPayment.by_code("JNL")
    assert (out.fund_id, out.account_reference, out.amount_pence) == (entry.fund_id, entry.account_reference, -4_000)
    assert (into.fund_id, into.account_reference, into.amount_pence) == (fund("CTAX").id, destination, 4_000)
    for line in (out, into):
        assert line.corrects_id == entry.id
        assert line.source == "journal"
        assert line.method_id == journal_method.id
        assert line.group_reference == correction.group_reference
    assert [e.id for e in group_entries(correction.group_reference)] == [out.id, into.id]
    assert LedgerEntry.totals(
        LedgerEntry.select().where(LedgerEntry.group_reference == correction.group_reference)
    ) == (
        2,
        0,
    )
    assert place_total(entry.fund_id, entry.account_reference) == 6_000
    assert corrections.remaining_pence(entry) == 6_000
    assert len(audit_events("ledger.journal", correction.group_reference)) == 1


def test_a_journal_can_move_money_to_another_fund_the_user_can_see(app):
    entry = payment("CTAX", 5_000)
    destination = good_reference("NNDR", 5_000, seed=3)
    result = corrections.journal(
        entry,
        user("finance"),
        "Business rates, not council tax",
        [Line(fund("NNDR"), destination, 5_000)],
        submission_key="jnl-1",
    )
    assert [e.amount_pence for e in result.entries] == [-5_000, 5_000]
    assert result.entries[1].fund_id == fund("NNDR").id
    assert corrections.remaining_pence(entry) == 0
    with pytest.raises(DomainError, match="already been reversed, moved or refunded in full"):
        corrections.reverse(entry, user("finance"), "Bounced", submission_key="rev-1")


def test_a_journal_of_more_than_is_left_is_refused(app):
    entry = payment(amount_pence=10_000)
    officer = user("finance")
    destination = good_reference("CTAX", 6_000, seed=2, avoid=(entry.account_reference,))
    corrections.journal(entry, officer, "First part", [Line(fund("CTAX"), destination, 6_000)], submission_key="j1")
    count = (LedgerEntry.totals(), Correction.select().count())

    with pytest.raises(LinesRefused) as refused:
        corrections.journal(
            entry, officer, "Second part", [Line(fund("CTAX"), destination, 4_001)], submission_key="j2"
        )

    assert refused.value.message == (
        "You can move up to £40.00: £60.00 of this payment has already been moved or reversed"
    )
    assert (LedgerEntry.totals(), Correction.select().count()) == count
    assert corrections.remaining_pence(entry) == 4_000


def test_a_journal_of_more_than_the_whole_payment_is_refused(app):
    entry = payment(amount_pence=2_500)
    destination = good_reference("CTAX", 2_501, seed=2, avoid=(entry.account_reference,))
    with pytest.raises(LinesRefused, match=r"You can move up to £25\.00, the whole payment"):
        corrections.journal(
            entry, user("finance"), "Too much", [Line(fund("CTAX"), destination, 2_501)], submission_key="j1"
        )
    assert list(LedgerEntry.linked(entry)) == []


def test_a_journal_to_an_invalid_reference_is_refused_with_the_funds_own_reason(app):
    entry = payment()
    with pytest.raises(LinesRefused) as refused:
        corrections.journal(
            entry, user("finance"), "Move", [Line(fund("CTAX"), "NOT A REF!", 1_000)], submission_key="j1"
        )
    [problem] = refused.value.problems
    assert problem.line == 0 and problem.field == "reference" and problem.message
    assert list(LedgerEntry.linked(entry)) == []
    assert Correction.select().count() == 0


def test_a_journal_to_the_same_account_or_a_fund_outside_the_users_groups_is_refused(app):
    entry = payment()
    officer = user("finance")  # Revenues, Corporate, Parking: not Housing
    with pytest.raises(LinesRefused, match="already on this account"):
        corrections.journal(
            entry, officer, "Move", [Line(entry.fund, entry.account_reference.lower(), 1_000)], submission_key="j1"
        )
    with pytest.raises(LinesRefused, match="Select a fund"):
        corrections.journal(entry, officer, "Move", [Line(fund("HRENT"), "HR0000001", 1_000)], submission_key="j2")
    assert list(LedgerEntry.linked(entry)) == []


def test_a_reversal_after_a_partial_journal_reverses_what_is_left(app):
    entry = payment(amount_pence=10_000)
    destination = good_reference("CTAX", 3_000, seed=2, avoid=(entry.account_reference,))
    corrections.journal(entry, user("finance"), "Part", [Line(fund("CTAX"), destination, 3_000)], submission_key="j1")

    result = corrections.reverse(entry, user("finance"), "The rest bounced", submission_key="r1")

    assert result.entries[0].amount_pence == -7_000 and result.correction.amount_pence == 7_000
    assert place_total(entry.fund_id, entry.account_reference) == 0
    assert place_total(fund("CTAX").id, destination) >= 3_000  # the moved part stays where it went


# --- transfer --------------------------------------------------------------------------------


def transfer_lines(*amounts: int) -> list[Line]:
    references: list[str] = []
    for n, amount in enumerate(amounts):
        references.append(good_reference("CTAX", abs(amount), seed=10 + n, avoid=tuple(references)))
    return [Line(fund("CTAX"), reference, amount) for reference, amount in zip(references, amounts, strict=True)]


def test_an_unbalanced_transfer_is_refused_and_nothing_is_posted(app):
    count = (LedgerEntry.totals(), Correction.select().count(), AuditEvent.select().count())
    with pytest.raises(LinesRefused) as refused:
        corrections.transfer(user("finance"), "Tidy up", transfer_lines(-5_000, 6_250), submission_key="t1")
    assert refused.value.message == "The lines must add up to £0.00: they add up to £12.50"
    assert (LedgerEntry.totals(), Correction.select().count(), AuditEvent.select().count()) == count


def test_a_balanced_transfer_posts_every_line_under_one_group(app):
    lines = transfer_lines(-5_000, 3_000, 2_000)
    before = LedgerEntry.totals()

    result = corrections.transfer(user("finance"), "Split a payment", lines, submission_key="t1")

    correction = result.correction
    assert result.created and correction.kind == "transfer" and correction.group_reference.startswith("TRF-")
    assert correction.entry_id is None and correction.amount_pence == 5_000
    entries = group_entries(correction.group_reference)
    assert [e.id for e in entries] == [e.id for e in result.entries]
    assert [(e.account_reference, e.amount_pence) for e in entries] == [(x.reference, x.amount_pence) for x in lines]
    assert all(e.source == "transfer" and e.corrects_id is None for e in entries)
    assert {e.method.code for e in entries} == {"JNL"}
    assert LedgerEntry.totals() == (before[0] + 3, before[1])
    assert len(audit_events("ledger.transfer", correction.group_reference)) == 1
    again = corrections.transfer(user("finance"), "Split a payment", lines, submission_key="t1")
    assert not again.created and again.correction.id == correction.id
    assert LedgerEntry.totals() == (before[0] + 3, before[1])


def test_a_transfer_needs_two_lines_each_account_once_and_no_zero_lines(app):
    officer = user("finance")
    [line] = transfer_lines(1_000)
    with pytest.raises(LinesRefused, match="at least 2 lines"):
        corrections.transfer(officer, "One line", [line], submission_key="t1")
    with pytest.raises(LinesRefused, match="same account as line 1"):
        corrections.transfer(officer, "Twice", [line, Line(line.fund, line.reference, -1_000)], submission_key="t2")
    with pytest.raises(LinesRefused, match="other than £0.00"):
        corrections.transfer(officer, "Zero", [line, Line(line.fund, "12345678", 0)], submission_key="t3")
    with pytest.raises(LinesRefused, match="Select a fund"):
        corrections.transfer(officer, "Hidden", [line, Line(fund("HRENT"), "HR1", -1_000)], submission_key="t4")
    assert Correction.select().count() == 0


# --- races on a database of their own ---------------------------------------------------------


# `books` and `run_together` live in tests/integration/conftest.py (refunds race too).


def test_a_double_submission_of_one_reversal_makes_one_correction(books):
    entry, officer = books["entry"], books["officer"]
    results = run_together(
        books["db"], 8, lambda i: corrections.reverse(entry, officer, "Bounced", submission_key="same-click")
    )
    assert all(isinstance(r, corrections.CorrectionResult) for r in results), results
    assert sum(r.created for r in results) == 1
    assert len({r.correction.id for r in results}) == 1
    assert Correction.select().count() == 1
    assert LedgerEntry.select().where(LedgerEntry.source == "reversal").count() == 1
    assert place_total(entry.fund_id, entry.account_reference) == 0
    assert AuditEvent.select().where(AuditEvent.action == "ledger.reversal").count() == 1


def test_two_tabs_reversing_one_payment_at_once_reverse_it_once(books):
    entry, officer = books["entry"], books["officer"]
    results = run_together(
        books["db"], 8, lambda i: corrections.reverse(entry, officer, "Bounced", submission_key=f"tab-{i}")
    )
    made = [r for r in results if isinstance(r, corrections.CorrectionResult)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(made) == 1 and len(refused) == 7, results
    assert all("already been reversed" in r.message for r in refused)
    assert Correction.select().count() == 1
    assert place_total(entry.fund_id, entry.account_reference) == 0


def test_racing_journals_never_move_more_than_the_payment(books):
    entry, officer, tax = books["entry"], books["officer"], books["fund"]
    results = run_together(
        books["db"],
        6,
        lambda i: corrections.journal(
            entry, officer, "Share out", [Line(tax, f"2222222{i}", 3_000)], submission_key=f"journal-{i}"
        ),
    )
    made = [r for r in results if isinstance(r, corrections.CorrectionResult)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(made) == 3 and len(refused) == 3, results
    assert corrections.remaining_pence(entry) == 1_000
    assert place_total(entry.fund_id, entry.account_reference) == 1_000
    assert LedgerEntry.totals(LedgerEntry.select().where(LedgerEntry.source == "journal")) == (6, 0)


def test_a_double_submission_of_one_transfer_posts_its_lines_once(books):
    officer, tax = books["officer"], books["fund"]
    lines = [Line(tax, "11111111", -2_500), Line(tax, "33333333", 2_500)]
    results = run_together(
        books["db"], 8, lambda i: corrections.transfer(officer, "Move", lines, submission_key="same-transfer")
    )
    assert all(isinstance(r, corrections.CorrectionResult) for r in results), results
    assert sum(r.created for r in results) == 1
    assert Correction.select().count() == 1
    assert LedgerEntry.select().where(LedgerEntry.source == "transfer").count() == 2
    assert place_total(tax.id, "33333333") == 2_500


# --- pages -----------------------------------------------------------------------------------


def post_page(client, url: str, data: dict, *, form_url: str | None = None):
    token = csrf_token(client.get(form_url or url).get_data())
    return client.post(url, data={**data, "csrf_token": token})


def test_reversing_a_payment_through_the_pages(app, signed_in):
    entry = payment()
    client = signed_in("finance")
    start = f"/transactions/{entry.receipt_reference}/reverse"

    page = client.get(start)
    assert page.status_code == 200 and h1(page.data) == f"Reverse receipt {entry.receipt_reference}"

    empty = post_page(client, start, {"reason": ""})
    assert error_summary(empty.data) == ["Enter the reason for the correction"]
    assert list(LedgerEntry.linked(entry)) == []

    answered = post_page(client, start, {"reason": "Cheque returned unpaid"})
    assert answered.status_code == 302 and answered.location.endswith(f"{start}/check")
    check = client.get(f"{start}/check")
    assert summary_list(check.data)["Amount to reverse"] == "£100.00"
    assert summary_list(check.data)["Reason"] == "Cheque returned unpaid"
    assert list(LedgerEntry.linked(entry)) == []  # nothing until confirmed

    token = csrf_token(check.data)
    confirmed = client.post(f"{start}/check", data={"csrf_token": token})
    assert confirmed.status_code == 302 and "/confirmation" in confirmed.location
    done = client.get(confirmed.location)
    [correction] = Correction.select().where(Correction.entry == entry.id)
    assert h1(done.data).startswith("Reversal made")
    assert correction.group_reference in main_text(done.data)
    [reversal] = LedgerEntry.linked(entry)
    assert reversal.receipt_reference in main_text(done.data)
    assert reversal.amount_pence == -10_000

    # A second press of Confirm (same session, same answers): the same correction, nothing doubled.
    again = client.post(f"{start}/check", data={"csrf_token": token})
    assert again.status_code == 302 and again.location == confirmed.location
    assert len(list(LedgerEntry.linked(entry))) == 1
    # And the payment cannot be reversed again.
    assert "already been reversed" in main_text(client.get(start).data)


def test_moving_part_of_a_payment_through_the_pages(app, signed_in):
    entry = payment(amount_pence=10_000)
    client = signed_in("finance")
    start = f"/transactions/{entry.receipt_reference}/journal"
    destination = good_reference("CTAX", 2_500, seed=2, avoid=(entry.account_reference,))
    answers = {"fund": str(fund("CTAX").id), "reference": destination, "amount": "£25.00", "reason": "Wrong account"}

    too_much = post_page(client, start, {**answers, "amount": "100.01"})
    assert error_summary(too_much.data) == ["You can move up to £100.00, the whole payment"]
    assert "You can move up to £100.00, the whole payment" in inline_errors(too_much.data)

    bad = post_page(client, start, {**answers, "reference": "?"})
    assert len(error_summary(bad.data)) == 1 and list(LedgerEntry.linked(entry)) == []

    answered = post_page(client, start, answers)
    assert answered.status_code == 302
    check = client.get(answered.location)
    rows = summary_list(check.data)
    assert rows["Amount to move"] == "£25.00" and rows["Left on the payment afterwards"] == "£75.00"
    confirmed = client.post(answered.location, data={"csrf_token": csrf_token(check.data)})
    assert confirmed.status_code == 302

    out, into = LedgerEntry.linked(entry)
    assert (out.amount_pence, into.amount_pence, into.account_reference) == (-2_500, 2_500, destination)
    group = out.group_reference
    view = client.get(f"/corrections/{group}")
    assert h1(view.data) == f"Journal {group}"
    assert [row[-1] for row in table_rows(view.data)] == ["-£25.00", "£25.00"]

    # Now £25.00 has been moved: asking for more than what is left says how much that is.
    over = post_page(client, start, {**answers, "amount": "80"})
    assert error_summary(over.data) == [
        "You can move up to £75.00: £25.00 of this payment has already been moved or reversed"
    ]


def transfer_form(lines: list[tuple[str, str, str]], reason: str = "Tidy up") -> dict:
    data = {"reason": reason}
    for n, (fund_id, reference, amount) in enumerate(lines):
        data.update({f"lines-{n}-fund": fund_id, f"lines-{n}-reference": reference, f"lines-{n}-amount": amount})
    return data


def test_a_transfer_through_the_pages_must_balance(app, signed_in):
    client = signed_in("finance")
    tax = str(fund("CTAX").id)
    a = good_reference("CTAX", 5_000, seed=20)
    b = good_reference("CTAX", 5_000, seed=21, avoid=(a,))
    count = LedgerEntry.totals()

    unbalanced = post_page(
        client, "/corrections/transfer", transfer_form([(tax, a, "-50"), ("", "", ""), (tax, b, "62.50")])
    )
    assert unbalanced.status_code == 200
    assert error_summary(unbalanced.data) == ["The lines must add up to £0.00: they add up to £12.50"]
    assert LedgerEntry.totals() == count

    answered = post_page(
        client, "/corrections/transfer", transfer_form([(tax, a, "-50"), ("", "", ""), (tax, b, "50")])
    )
    assert answered.status_code == 302
    check = client.get("/corrections/transfer/check")
    assert [row[-1] for row in table_rows(check.data)] == ["-£50.00", "£50.00"]
    confirmed = client.post("/corrections/transfer/check", data={"csrf_token": csrf_token(check.data)})
    assert confirmed.status_code == 302
    [correction] = Correction.select().where(Correction.kind == "transfer")
    entries = group_entries(correction.group_reference)
    assert [(e.account_reference, e.amount_pence) for e in entries] == [(a, -5_000), (b, 5_000)]
    assert LedgerEntry.totals() == (count[0] + 2, count[1])
    listing = client.get("/corrections")
    assert correction.group_reference in main_text(listing.data)


def test_corrections_of_another_fund_groups_payments_are_not_found(app, signed_in):
    entry = payment("CTAX")
    correction = corrections.reverse(entry, user("finance"), "Bounced", submission_key="rev-1").correction
    housing = signed_in("housing")
    for url in (
        f"/transactions/{entry.receipt_reference}/reverse",
        f"/transactions/{entry.receipt_reference}/reverse/check",
        f"/transactions/{entry.receipt_reference}/journal",
        f"/transactions/{entry.receipt_reference}/journal/check",
        f"/corrections/{correction.group_reference}",
        f"/corrections/{correction.group_reference}/confirmation",
    ):
        assert housing.get(url).status_code == 404, url
    other = payment("CTAX", key="other-payment")
    token = csrf_token(housing.get("/corrections/transfer").data)
    refused = housing.post(
        f"/transactions/{other.receipt_reference}/reverse", data={"reason": "x", "csrf_token": token}
    )
    assert refused.status_code == 404
    assert list(LedgerEntry.linked(other)) == []
    assert correction.group_reference not in main_text(housing.get("/corrections").data)


def test_auditors_see_corrections_but_cannot_make_them(app, signed_in):
    entry = payment()
    correction = corrections.reverse(entry, user("finance"), "Bounced", submission_key="rev-1").correction
    auditor = signed_in("auditor")
    assert auditor.get(f"/transactions/{entry.receipt_reference}/journal").status_code == 403
    assert auditor.get("/corrections/transfer").status_code == 403
    view = auditor.get(f"/corrections/{correction.group_reference}")
    assert view.status_code == 200 and summary_list(view.data)["Reason"] == "Bounced"


def test_finding_a_payment_to_correct_by_its_receipt(app, signed_in):
    entry = payment()
    client = signed_in("finance")
    found = client.get(f"/corrections/find?receipt={entry.receipt_reference.lower()}&action=journal")
    assert found.status_code == 302 and found.location.endswith(f"/transactions/{entry.receipt_reference}/journal")
    missing = client.get("/corrections/find?receipt=&action=")
    assert error_summary(missing.data) == ["Enter the receipt reference of the payment", "Select what you want to do"]
