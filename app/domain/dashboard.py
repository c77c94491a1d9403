"""The finance dashboard: what the income team needs to see first thing, for their own funds.

Every figure is for the funds of the user's fund groups only, and each links to the page that
lists what it counts. Income is the net of every ledger entry on the business dates (payments
less refunds and reversals; a journal between two funds moves income from one to the other and
nets to nothing overall), so the dashboard agrees with a transaction search for the same dates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from peewee import JOIN, fn

from app.db import utcnow
from app.domain.funds import Fund, visible_fund_ids
from app.domain.ledger import LedgerEntry
from app.domain.methods import CHANNELS, MethodOfPayment
from app.domain.ukdates import LONDON

# Card payments still unfinished this long after they were made need someone to look.
STUCK_AFTER = dt.timedelta(hours=2)
# Failed and expired card payments are counted over this many days.
PROBLEM_DAYS = 7


@dataclass
class IncomeRow:
    key: str  # fund code or channel
    label: str
    count: int
    total_pence: int


@dataclass
class Income:
    """Income for one period, by fund and by channel, biggest first."""

    start: dt.date
    end: dt.date
    by_fund: list[IncomeRow]
    by_channel: list[IncomeRow]

    @property
    def total_pence(self) -> int:
        return sum(row.total_pence for row in self.by_fund)

    @property
    def count(self) -> int:
        return sum(row.count for row in self.by_fund)

    @property
    def largest_pence(self) -> int:
        """The biggest absolute figure of either breakdown (the chart's scale)."""
        return max([abs(row.total_pence) for row in self.by_fund + self.by_channel] or [0])


@dataclass
class Band:
    key: str
    label: str
    count: int
    remaining_pence: int


@dataclass
class Problem:
    label: str
    count: int
    href_endpoint: str
    href_args: dict = field(default_factory=dict)


def uk_today() -> dt.date:
    return dt.datetime.now(LONDON).date()


def income(fund_ids: set[int], start: dt.date, end: dt.date) -> Income:
    ids = sorted(fund_ids) or [0]
    in_range = (LedgerEntry.business_date >= start) & (LedgerEntry.business_date <= end) & LedgerEntry.fund.in_(ids)
    funds = {f.id: f for f in Fund.select().where(Fund.id.in_(ids))}
    by_fund = [
        IncomeRow(funds[fund_id].code, funds[fund_id].name, int(count), int(total))
        for fund_id, count, total in LedgerEntry.select(
            LedgerEntry.fund, fn.COUNT(LedgerEntry.id), fn.COALESCE(fn.SUM(LedgerEntry.amount_pence), 0)
        )
        .where(in_range)
        .group_by(LedgerEntry.fund)
        .tuples()
    ]
    channels: dict[str, list[int]] = {}
    rows = (
        LedgerEntry.select(MethodOfPayment.channel, fn.COUNT(LedgerEntry.id), fn.SUM(LedgerEntry.amount_pence))
        .join(MethodOfPayment, JOIN.INNER, on=(LedgerEntry.method == MethodOfPayment.id))
        .where(in_range)
        .group_by(MethodOfPayment.channel)
        .tuples()
    )
    for channel, count, total in rows:
        counted = channels.setdefault(channel, [0, 0])
        counted[0] += int(count)
        counted[1] += int(total or 0)
    by_channel = [IncomeRow(c, CHANNELS.get(c, c), n, t) for c, (n, t) in channels.items()]
    by_fund.sort(key=lambda r: (-r.total_pence, r.label))
    by_channel.sort(key=lambda r: (-r.total_pence, r.label))
    return Income(start, end, by_fund, by_channel)


def suspense_bands(user) -> list[Band]:
    from app.domain.suspense import AGE_BANDS, SuspenseFilters, search, totals

    bands = []
    for key, (label, _, _) in AGE_BANDS.items():
        count, remaining = totals(search(user, SuspenseFilters(status="open", age=key)))
        bands.append(Band(key, label, count, remaining))
    return bands


def refunds_waiting(fund_ids: set[int]) -> tuple[int, int]:
    """(how many, total pence) of refunds awaiting a senior officer's approval."""
    from app.domain.refunds import Refund

    count, total = (
        Refund.select(fn.COUNT(Refund.id), fn.COALESCE(fn.SUM(Refund.amount_pence), 0))
        .join(LedgerEntry, on=(Refund.entry == LedgerEntry.id))
        .where((Refund.status == "awaiting_approval") & LedgerEntry.fund.in_(sorted(fund_ids) or [0]))
        .tuples()
        .get()
    )
    return int(count), int(total)


def payment_problems(fund_ids: set[int]) -> list[Problem]:
    """Card payments and refunds that need someone to look at them."""
    from app.domain.payments import Payment, PaymentItem
    from app.domain.refunds import Refund

    ids = sorted(fund_ids) or [0]
    now = utcnow()
    visible = PaymentItem.select(PaymentItem.payment).where(PaymentItem.fund.in_(ids))
    payments = Payment.select().where(Payment.id.in_(visible))
    stuck = payments.where(Payment.finished_at.is_null() & (Payment.created_at < now - STUCK_AFTER)).count()
    failed = payments.where(
        (Payment.status == "failed") & (Payment.finished_at >= now - dt.timedelta(days=PROBLEM_DAYS))
    ).count()
    refunds_failed = (
        Refund.select()
        .join(LedgerEntry, on=(Refund.entry == LedgerEntry.id))
        .where((Refund.status == "failed") & LedgerEntry.fund.in_(ids))
        .count()
    )
    return [
        Problem(
            f"Card payments unfinished after {int(STUCK_AFTER.total_seconds() // 3600)} hours",
            stuck,
            "payments.attempts",
            {"status": "in_progress"},
        ),
        Problem(
            f"Card payments failed in the last {PROBLEM_DAYS} days", failed, "payments.attempts", {"status": "failed"}
        ),
        Problem("Refunds that failed", refunds_failed, "refunds.list_refunds"),
    ]


def for_user(user, today: dt.date | None = None) -> dict:
    """Everything the dashboard shows, for `user`'s funds."""
    today = today or uk_today()
    fund_ids = visible_fund_ids(user)
    waiting_count, waiting_total = refunds_waiting(fund_ids)
    return {
        "today": income(fund_ids, today, today),
        "month": income(fund_ids, today.replace(day=1), today),
        "refunds_waiting": waiting_count,
        "refunds_waiting_pence": waiting_total,
        "suspense": suspense_bands(user),
        "problems": payment_problems(fund_ids),
    }
