"""The test harness itself: requests share the test's transaction, and every test is rolled back."""

from __future__ import annotations

from app.domain import audit
from app.domain.audit import AuditEvent
from app.domain.configuration import create_config
from app.domain.funds import Fund
from app.domain.ledger import LedgerEntry, PostingRequest, post
from app.domain.methods import MethodOfPayment
from tests.pages import main_text


def test_requests_see_the_tests_uncommitted_changes(app, signed_in):
    create_config(Fund, None, {"code": "ISOLATE", "name": "Made by the test, never committed"})
    text = main_text(signed_in("admin").get("/admin/settings/funds").get_data())
    assert "Made by the test, never committed" in text  # same connection, same transaction


def test_changes_made_by_a_test_are_rolled_back_1(app, signed_in):
    _make_changes(signed_in)


def test_changes_made_by_a_test_are_rolled_back_2(app, signed_in):
    _make_changes(signed_in)  # would fail on a duplicate code, key or seq if the first had leaked


def _make_changes(signed_in):
    assert Fund.by_code("ISOLATE") is None
    entries, events = LedgerEntry.select().count(), AuditEvent.select().count()
    fund = create_config(Fund, None, {"code": "ISOLATE", "name": "Isolation"})
    post(
        PostingRequest(
            idempotency_key="isolation-test",
            fund=fund,
            account_reference="ISO1",
            amount_pence=1234,
            method=MethodOfPayment.by_code("CASH"),
            source="staff_payment",
        )
    )
    audit.record("test.isolation", summary="An event the rollback removes")
    signed_in("finance")  # and a request that writes (sign-in updates the user and the audit trail)
    assert LedgerEntry.select().count() == entries + 1
    assert AuditEvent.select().count() == events + 3
