"""Return, webhook and job can race: every item is posted exactly once, and one receipt is stored.

Real commits on a fresh database (SQLite and PostgreSQL), several threads applying the same
GOV.UK Pay outcome at once through `apply_remote_state`, as the three paths do.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from app.domain import payments
from app.domain.ledger import LedgerEntry
from app.domain.outbox import OutboxMessage
from app.integrations.govuk_pay.client import parse_payment


def _remote(payment, status: str, code: str | None = None, *, amount: int | None = None) -> object:
    state = {"status": status, "finished": status in {"success", "failed", "cancelled", "error"}}
    if code:
        state["code"], state["message"] = code, "message"
    return parse_payment(
        {
            "payment_id": payment.provider_payment_id,
            "amount": payment.amount_pence if amount is None else amount,
            "reference": payment.reference,
            "description": payment.description,
            "state": state,
            "created_date": "2026-11-22T10:00:00.000Z",
            "card_details": {"last_digits_card_number": "1111", "card_brand": "Visa"},
            "settlement_summary": {"capture_submit_time": "2026-11-22T10:01:00.000Z", "captured_date": "2026-11-22"},
            "some_new_field": {"ignored": True},
        }
    )


@pytest.fixture
def seeded(fresh_database):
    from app.demo import seed_configuration

    with fresh_database.atomic():
        seed_configuration()
    return fresh_database


def _basket_payment(key: str, *, email: str = "payer@example.com"):
    import random

    from app.domain.funds import Fund
    from app.domain.references.demo import generate_valid_reference

    rng = random.Random(key)
    ctax, lib = Fund.by_code("CTAX"), Fund.by_code("LIB")
    lines = [
        payments.BasketLine(ctax, generate_valid_reference("CTAX", rng), 12_345),
        payments.BasketLine(lib, generate_valid_reference("LIB", rng), 250),
    ]
    payment, created = payments.create_payment(lines, submission_key=key, method=payments.online_method(), email=email)
    assert created
    payments.Payment.update(provider_payment_id=f"pay{key}", status="in_progress").where(
        payments.Payment.id == payment.id
    ).execute()
    return payments.Payment.get_by_id(payment.id)


def _race(target, count: int) -> list:
    barrier = threading.Barrier(count)
    results, errors = [], []

    def run():
        from app.db import database

        try:
            barrier.wait()
            results.append(target())
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)
        finally:
            database.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def test_return_webhook_and_job_at_once_post_each_item_once(seeded):
    payment = _basket_payment("race1")
    remote = _remote(payment, "success")
    sources = iter(["return", "webhook", "job", "staff", "return", "webhook"])
    lock = threading.Lock()

    def apply():
        with lock:
            source = next(sources)
        return payments.apply_remote_state(payment, remote, source=source)

    results = _race(apply, 6)
    assert sum(1 for r in results if r.finished_now) == 1
    entries = list(LedgerEntry.select().where(LedgerEntry.source_reference == payment.reference))
    assert sorted(e.amount_pence for e in entries) == [250, 12_345]
    assert {e.idempotency_key for e in entries} == {
        f"govuk-pay:{payment.reference}:1",
        f"govuk-pay:{payment.reference}:2",
    }
    assert OutboxMessage.select().where(OutboxMessage.purpose == "receipt").count() == 1
    payment = payments.Payment.get_by_id(payment.id)
    assert payment.status == "succeeded" and payment.card_last_digits == "1111"
    assert payment.finished_at is not None
    # Every path left a history row; the money was taken at GOV.UK Pay's capture time.
    assert payment.events.count() >= 7
    assert {e.taken_at for e in entries} == {dt.datetime(2026, 11, 22, 10, 1)}
    # And applying it again later changes nothing.
    again = payments.apply_remote_state(payment, remote, source="job")
    assert not again.finished_now
    assert LedgerEntry.select().where(LedgerEntry.source_reference == payment.reference).count() == 2


def test_a_late_success_cannot_follow_a_recorded_failure(seeded):
    payment = _basket_payment("race2")
    payments.apply_remote_state(payment, _remote(payment, "failed", "P0010"), source="return")
    later = payments.apply_remote_state(payment, _remote(payment, "success"), source="webhook")
    assert later.payment.status == "failed" and later.payment.outcome == "declined"
    assert LedgerEntry.select().where(LedgerEntry.source_reference == payment.reference).count() == 0


@pytest.mark.parametrize(
    ("status", "code", "ours", "outcome"),
    [
        ("failed", "P0010", "failed", "declined"),
        ("failed", "P0020", "expired", "expired"),
        ("failed", "P0030", "cancelled", "cancelled"),
        ("cancelled", "P0040", "cancelled", "cancelled_by_service"),
        ("error", "P0050", "failed", "error"),
        ("started", None, "in_progress", "in_progress"),
        ("submitted", None, "in_progress", "in_progress"),
        ("capturable", None, "in_progress", "in_progress"),
    ],
)
def test_outcomes_other_than_success_post_nothing(seeded, status, code, ours, outcome):
    payment = _basket_payment(f"o-{status}-{code}")
    applied = payments.apply_remote_state(payment, _remote(payment, status, code), source="return")
    assert applied.payment.status == ours
    assert applied.payment.outcome == outcome
    assert applied.payment.finished == (ours != "in_progress")
    assert LedgerEntry.select().count() == 0
    assert OutboxMessage.select().count() == 0


def test_a_different_amount_is_never_posted(seeded):
    payment = _basket_payment("race3")
    applied = payments.apply_remote_state(payment, _remote(payment, "success", amount=1), source="webhook")
    assert not applied.finished_now
    assert applied.payment.status == "in_progress"
    assert "Not posted" in applied.payment.last_error
    assert LedgerEntry.select().count() == 0


def test_the_same_submission_makes_one_payment(seeded):
    payment = _basket_payment("race4")
    from app.domain.funds import Fund

    again, created = payments.create_payment(
        [payments.BasketLine(Fund.by_code("CTAX"), "whatever", 1)],
        submission_key="race4",
        method=payments.online_method(),
    )
    assert not created and again.id == payment.id
