"""Fill a database with a council-sized ledger: `--entries N` realistic entries over three years.

    .venv/bin/python bench/generate_ledger.py --entries 1000000 --database-url sqlite:////tmp/ims-bench.db

The database is migrated and given the demo council's configuration (funds, methods of payment,
offices, users) if it has none, plus a few dozen extra counter staff so entries spread over many
users. Entries are then written in batches straight into the tables: the ledger is append-only,
so inserting is allowed, but nothing here goes through `ledger.post()` (too slow for a million).
What post() would have guaranteed is kept by hand:
- every entry has its own ReceiptNumber row, so receipts are unique and a later real posting
  gets the next number (ids are given explicitly; PostgreSQL's sequences are moved past them);
- idempotency keys are unique ("bench-<run>-<n>"); account references pass the fund's rule;
- the VAT split uses the fund's VAT code and the rate in force on the business date;
- the business date is the London date of `taken_at` (naive UTC).

The mix: days run oldest first over `--years` years up to today, fewer on weekends; funds,
methods, amounts and the staff/online split follow app/demo.py; card payments carry a PAY-…
group reference (some baskets have two lines); imports a batch id a day; about 1% are refunds
or reversals linked (`corrects`) to an earlier entry on the same fund and account.

SQLite: a prepared INSERT run for each batch (executemany), one transaction each. PostgreSQL: COPY (several times
faster than multi-row INSERT through the driver), then VACUUM ANALYZE so the planner and
index-only scans see the new rows as production's autovacuum eventually would.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import secrets
import sys
import time
from collections import deque
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LONDON = ZoneInfo("Europe/London")
UTC = dt.UTC

FUND_WEIGHTS = {"CTAX": 40, "NNDR": 8, "HRENT": 20, "PCN": 12, "LIB": 8, "SUNDRY": 6, "TWASTE": 4, "SUSP": 2}
CHANNEL_FOR = {
    "CTAX": ["WEB", "DD", "ALLPAY", "DWP", "TEL", "BACS", "CASH", "CHQ"],
    "NNDR": ["BACS", "WEB", "DD", "CHQ"],
    "HRENT": ["ALLPAY", "DD", "WEB", "CASH", "DWP", "CARD"],
    "PCN": ["WEB", "TEL", "CARD"],
    "LIB": ["CASH", "CARD", "WEB"],
    "SUNDRY": ["BACS", "WEB", "CHQ", "TEL", "PO"],
    "TWASTE": ["BACS", "DD", "TEL"],
    "SUSP": ["BACS", "ALLPAY"],
}
AMOUNTS = {
    "CTAX": (5_000, 25_000),
    "NNDR": (20_000, 400_000),
    "HRENT": (8_000, 20_000),
    "PCN": (3_500, 7_000),
    "LIB": (50, 1_500),
    "SUNDRY": (2_500, 150_000),
    "TWASTE": (5_000, 60_000),
    "SUSP": (1_000, 30_000),
}
NARRATIVES = {
    "CTAX": ["Council tax instalment", "Council tax", "Council tax arrears", "Council tax balance"],
    "NNDR": ["Business rates instalment", "Business rates"],
    "HRENT": ["Rent", "Rent and service charge", "Rent arrears"],
    "PCN": ["Penalty charge notice", "PCN payment"],
    "LIB": ["Library fine", "Lost book", "Room hire"],
    "SUNDRY": ["Invoice", "Sundry debtor invoice", "Licence fee", "Planning application fee"],
    "TWASTE": ["Trade waste collection", "Trade waste invoice"],
    "SUSP": ["Unidentified receipt", "Bank credit with no reference"],
}
FIRST_NAMES = (
    "Aisha Brian Catrin Daniel Emma Farid Grace Harry Isla Jack Kiran Laura Mohammed Niamh Oliver Priya "
    "Quentin Rhys Sophie Tomasz Uma Victor Wendy Xavier Yasmin Zoe Amelia Ben Chloe Dev Erin Fatima George "
    "Hannah Ivan Jessica Kwame Lily Mateusz Nadia"
).split()
LAST_NAMES = (
    "Khan Murphy Jones Okafor Smith Hussain Lee Williams Brown Taylor Gill Wilson Ahmed Evans Patel Walsh "
    "Carter Sharma Davies Thomas Roberts Johnson Green Hall Wood Clarke Kowalski Nowak Begum Ali Singh "
    "Robinson Wright Thompson White Hughes Edwards Turner Hill Moore"
).split()
STAFF_CHANNELS = {"telephone_card", "counter_card", "cash", "cheque", "postal_order"}
EXTRA_STAFF = 40
ACCOUNTS_PER_FUND = 4_000
# The ledger's own bulk-insert column order (app/domain/ledger.py), so the two never drift apart.
from app.domain.ledger import BULK_COLUMNS  # noqa: E402

COLUMNS = list(BULK_COLUMNS)
_REF = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


def _pay_reference(rng: random.Random, prefix: str) -> str:
    body = "".join(rng.choice(_REF) for _ in range(8))
    return f"{prefix}-{body[:4]}-{body[4:]}"


def prepare(database_url: str):
    """Bind, migrate and (if empty) seed the demo configuration. Returns the peewee database."""
    os.environ.setdefault("IMS_ENV", "testing")
    from playhouse.migrations import Runner

    from app.db import bind_database
    from app.domain.funds import Fund

    db = bind_database(database_url)
    db.connect(reuse_if_open=True)
    Runner(db, directory=str(ROOT / "migrations")).up()
    if not Fund.select().exists():
        from app.demo import seed_configuration

        with db.atomic():
            seed_configuration()
    _add_staff(db)
    return db


def _add_staff(db) -> None:
    from app.domain.users import User

    existing = {u.email for u in User.select(User.email).where(User.email.startswith("bench-staff-"))}
    rows = [
        {"email": f"bench-staff-{n:02d}@demo.example.gov.uk", "name": f"{FIRST_NAMES[n]} {LAST_NAMES[-n - 1]}"}
        for n in range(EXTRA_STAFF)
    ]
    new = [
        {**row, "password_hash": "!bench-user-cannot-sign-in", "must_change_password": False, "enabled": False}
        for row in rows
        if row["email"] not in existing
    ]
    if new:
        with db.atomic():
            User.insert_many(new).execute()


def _business_days(years: int, today: dt.date) -> list[dt.date]:
    start = today - dt.timedelta(days=365 * years - 1)
    return [start + dt.timedelta(days=n) for n in range((today - start).days + 1)]


def generate(db, entries: int, *, years: int = 3, seed: int = 2026, batch: int = 5_000, quiet: bool = False) -> int:
    """Append `entries` ledger entries. Returns how many were written."""
    from peewee import fn

    from app.db import is_postgres
    from app.domain.funds import Fund
    from app.domain.ledger import LedgerEntry, ReceiptNumber, make_receipt_reference
    from app.domain.methods import MethodOfPayment
    from app.domain.offices import Office
    from app.domain.users import User
    from app.domain.vat import split_vat

    rng = random.Random(seed)  # noqa: S311 - repeatable bench data, not security
    run = secrets.token_hex(4)
    funds = {f.code: f for f in Fund.select() if f.code in FUND_WEIGHTS}
    methods = {m.code: m for m in MethodOfPayment.select()}
    offices = [o.id for o in Office.select()]
    staff = [u.id for u in User.select() if u.email.startswith(("bench-staff-", "finance@", "housing@", "senior@"))]
    codes = list(funds)
    weights = [FUND_WEIGHTS[c] for c in codes]
    channels = {c: [m for m in CHANNEL_FOR[c] if m in methods] for c in codes}
    accounts = {c: _accounts(funds[c], rng) for c in codes}
    names = [f"{f} {last}" for f in FIRST_NAMES for last in LAST_NAMES]
    today = dt.datetime.now(LONDON).date()
    days = _business_days(years, today)
    day_weights = [0.35 if d.weekday() >= 5 else (1.6 if d.day in (1, 15) else 1.0) for d in days]
    per_day = _spread(entries, day_weights, rng)

    # VAT: the rate in force on each business date, per VAT code (a few codes, a few rates each).
    rates: dict[tuple[int, dt.date], Decimal] = {}

    def rate_on(fund: Fund, day: dt.date) -> Decimal:
        if fund.vat_code_id is None:
            return Decimal("0")
        key = (fund.vat_code_id, day)
        if key not in rates:
            rates[key] = fund.vat_code.rate_on(day)
        return rates[key]

    next_id = (LedgerEntry.select(fn.MAX(LedgerEntry.id)).scalar() or 0) + 1
    next_receipt = (ReceiptNumber.select(fn.MAX(ReceiptNumber.id)).scalar() or 0) + 1
    recent: deque = deque(maxlen=5_000)  # (id, fund code, account, amount, method id, narrative)
    postgres = is_postgres()
    rows: list[tuple] = []
    written = 0
    started = time.perf_counter()

    def flush() -> None:
        nonlocal rows, written
        if not rows:
            return
        receipts = [(row[2], row[20]) for row in rows]  # (receipt number, created_at)
        if postgres:
            _copy(db, rows, receipts)
        else:
            _insert(db, rows, receipts)
        written += len(rows)
        rows = []
        if not quiet:
            rate = written / (time.perf_counter() - started)
            print(f"\r  {written:,} of {entries:,} entries ({rate:,.0f} a second)", end="", flush=True)

    n = 0
    for day, count in zip(days, per_day, strict=True):
        for _ in range(count):
            entry_id = next_id + n
            receipt = make_receipt_reference(next_receipt + n)
            minute = rng.randint(7 * 60, 20 * 60 - 1)
            local = dt.datetime.combine(day, dt.time(minute // 60, minute % 60, rng.randint(0, 59)), tzinfo=LONDON)
            taken_at = local.astimezone(UTC).replace(tzinfo=None)
            created_at = taken_at + dt.timedelta(seconds=rng.randint(0, 120))
            corrects = None
            if recent and rng.random() < 0.01:
                # A refund or reversal of a recent entry: same fund, account and method, money back.
                original = rng.choice(recent)
                corrects, code, account, amount, method_id = original[0], original[1], original[2], -original[3], None
                source = rng.choice(["refund", "reversal"])
                fund = funds[code]
                method_id = original[4]
                narrative = ("Refund of " if source == "refund" else "Reversal of ") + original[5]
                payer, source_reference, group_reference, batch_id = "", "", "", None
                office_id, user_id = rng.choice(offices), rng.choice(staff)
            else:
                code = rng.choices(codes, weights=weights)[0]
                fund = funds[code]
                method = methods[rng.choice(channels[code])]
                method_id = method.id
                account = rng.choice(accounts[code])
                low, high = AMOUNTS[code]
                amount = rng.randint(low, high)
                narrative = rng.choice(NARRATIVES[code])
                if code == "SUNDRY" and narrative == "Invoice":
                    narrative = f"Invoice INV-{rng.randint(100000, 999999)}"
                payer = rng.choice(names)
                by_staff = method.channel in STAFF_CHANNELS
                office_id = rng.choice(offices) if by_staff else None
                user_id = rng.choice(staff) if by_staff else None
                batch_id = None
                source_reference = group_reference = ""
                if method.channel == "online_card":
                    source = "payment"
                    source_reference = group_reference = _pay_reference(rng, "PAY")
                elif by_staff:
                    source = "staff_payment"
                    source_reference = group_reference = _pay_reference(rng, "STF")
                else:
                    source = "import"
                    batch_id = day.toordinal() * 100 + method.id
                    source_reference = f"{method.code}-{day:%Y%m%d}"
                recent.append((entry_id, code, account, amount, method_id, narrative))
            vat = split_vat(amount, rate_on(fund, day))
            email = "" if not payer else f"{payer.replace(' ', '.').lower()}@example.com"
            rows.append(
                (
                    entry_id,
                    receipt,
                    next_receipt + n,
                    f"bench-{run}-{n}",
                    fund.id,
                    account,
                    amount,
                    fund.vat_code_id,
                    rate_on(fund, day),
                    vat.vat_pence,
                    vat.net_pence,
                    method_id,
                    office_id,
                    user_id,
                    narrative,
                    payer,
                    email if rng.random() < 0.6 else "",
                    "",
                    taken_at,
                    day,
                    created_at,
                    source,
                    source_reference,
                    corrects,
                    group_reference,
                    batch_id,
                )
            )
            n += 1
            if len(rows) >= batch:
                flush()
    flush()
    if postgres:
        db.execute_sql(
            "SELECT setval(pg_get_serial_sequence('ledger_entry', 'id'), (SELECT MAX(id) FROM ledger_entry))"
        )
        db.execute_sql(
            "SELECT setval(pg_get_serial_sequence('receipt_number', 'id'), (SELECT MAX(id) FROM receipt_number))"
        )
        db.execute_sql("VACUUM ANALYZE ledger_entry")
        db.execute_sql("VACUUM ANALYZE receipt_number")
    else:
        db.execute_sql("ANALYZE")
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    if not quiet:
        print(f"\n  written in {time.perf_counter() - started:.1f} s")
    return written


def _accounts(fund, rng: random.Random) -> list[str]:
    """A pool of account references that pass the fund's rule (people pay the same account again)."""
    import datetime as _dt

    from app.domain.references import AccountHolder, compiled_rule
    from app.domain.references.demo import generate_reference

    if fund.account_must_exist:
        known = [a.reference for a in AccountHolder.select(AccountHolder.reference).where(AccountHolder.fund == fund)]
        if known:
            return known
    formats = compiled_rule(fund).active_formats(_dt.date.today(), "staff")
    if not formats:
        return [str(rng.randint(10_000_000, 99_999_999)) for _ in range(ACCOUNTS_PER_FUND)]
    return [generate_reference(formats[0], rng) for _ in range(ACCOUNTS_PER_FUND)]


def _spread(total: int, weights: list[float], rng: random.Random) -> list[int]:
    """`total` split over the days in proportion to their weights (exactly `total` in all)."""
    scale = total / sum(weights)
    counts = [int(w * scale) for w in weights]
    for _ in range(total - sum(counts)):
        counts[rng.randrange(len(counts))] += 1
    return counts


def _insert(db, rows: list[tuple], receipts: list[tuple]) -> None:
    """SQLite: one prepared INSERT run for every row of the batch, inside one transaction.

    executemany on peewee's own connection is several times faster than building a multi-row
    INSERT through `insert_many` (which spends its time composing SQL, not writing rows).
    """
    to_text = {dt.date: dt.date.isoformat, dt.datetime: str, Decimal: str}
    connection = db.connection()
    marks = ", ".join("?" for _ in COLUMNS)
    with db.atomic():
        connection.executemany("INSERT INTO receipt_number (id, created_at) VALUES (?, ?)", _texts(receipts, to_text))
        connection.executemany(
            f"INSERT INTO ledger_entry ({', '.join(COLUMNS)}) VALUES ({marks})", _texts(rows, to_text)
        )


def _texts(rows: list[tuple], to_text: dict):
    """Dates, datetimes and Decimals as the text peewee stores them in SQLite."""
    for row in rows:
        yield tuple(to_text[type(v)](v) if type(v) in to_text else v for v in row)


def _copy(db, rows: list[tuple], receipts: list[tuple]) -> None:
    """PostgreSQL COPY of one batch, inside one transaction."""
    connection = db.connection()
    with db.atomic():
        with connection.cursor() as cursor:
            with cursor.copy("COPY receipt_number (id, created_at) FROM STDIN") as copy:
                for row in receipts:
                    copy.write_row(row)
            with cursor.copy(f"COPY ledger_entry ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000, help="how many entries to add (default 100,000)")
    parser.add_argument("--database-url", required=True, help="sqlite:////path/to.db or postgresql://…")
    parser.add_argument("--years", type=int, default=3, help="how many years of business dates, up to today")
    parser.add_argument("--seed", type=int, default=2026, help="random seed (the same seed gives the same mix)")
    parser.add_argument("--batch", type=int, default=5_000, help="rows per transaction")
    args = parser.parse_args(argv)
    db = prepare(args.database_url)
    generate(db, args.entries, years=args.years, seed=args.seed, batch=args.batch)
    db.close()


if __name__ == "__main__":
    main()
