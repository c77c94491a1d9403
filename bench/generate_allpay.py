"""Write a realistic allpay daily file (spec/file-formats.md §1) for benchmarks and tests.

    .venv/bin/python bench/generate_allpay.py --lines 1000000 --out /tmp/allpay-1m.txt

References pass the demo council's reference rules (council tax, business rates, rents, parking,
sundry invoices: check digits worked out by app.domain.references.demo.generate_reference), so
an import routes them to their funds; `--invalid` (default 3%) are corrupted (a digit changed,
digits swapped, cut short, or a reference no fund knows), which the importer sends to suspense.
A few lines carry the BERN scheme prefix, a few are returned cheques (channel Q, negative).
The trailer's count and total are right, so the file is accepted.

The references are drawn from a pool (`--accounts`, default 50,000) made once, as a real
council's payers pay every week. The reference rules come from a throw-away SQLite database
migrated and seeded with the demo configuration (or `--database-url` to use another one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# fund code -> share of allpay payments
FUND_MIX = {"CTAX": 0.62, "HRENT": 0.25, "NNDR": 0.05, "PCN": 0.05, "SUNDRY": 0.03}
AMOUNTS = {  # pence, low to high
    "CTAX": (1_000, 30_000),
    "HRENT": (2_000, 25_000),
    "NNDR": (10_000, 300_000),
    "PCN": (3_500, 13_000),
    "SUNDRY": (1_000, 80_000),
}
CHANNELS = "PPPPTTTZZNNB"


def reference_pool(rng: random.Random, accounts: int, database_url: str | None) -> dict[str, list[str]]:
    """Valid references per fund, from the demo council's reference rules."""
    from playhouse.migrations import Runner

    from app.db import bind_database
    from app.domain.funds import Fund
    from app.domain.references.demo import generate_reference, seed_demo_reference_rules
    from app.domain.references.rules import _uk_today, compiled_rule

    if database_url is None:
        folder = tempfile.mkdtemp(prefix="ims-allpay-")
        database_url = f"sqlite:///{folder}/rules.db"
        db = bind_database(database_url)
        Runner(db, directory=str(ROOT / "migrations")).up()
        from app.demo import seed_configuration

        with db.atomic():
            seed_configuration()
    else:
        bind_database(database_url)
        seed_demo_reference_rules()
    pool: dict[str, list[str]] = {}
    for code, share in FUND_MIX.items():
        fund = Fund.by_code(code)
        formats = compiled_rule(fund).active_formats(_uk_today(), "staff")
        count = max(10, int(accounts * share))
        pool[code] = [generate_reference(formats[0], rng) for _ in range(count)]
    return pool


def corrupt(reference: str, rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0 and reference[-1].isdigit():
        return reference[:-1] + str((int(reference[-1]) + rng.randint(1, 9)) % 10)
    if kind == 1 and len(reference) > 3:
        i = rng.randrange(1, len(reference) - 2)
        if reference[i] != reference[i + 1]:
            return reference[:i] + reference[i + 1] + reference[i] + reference[i + 2 :]
    if kind == 2:
        return reference[:-2]
    return "9" + "".join(rng.choice("0123456789") for _ in range(9))


def pounds(pence: int) -> str:
    sign = "-" if pence < 0 else ""
    return f"{sign}{abs(pence) // 100}.{abs(pence) % 100:02d}"


def write_file(
    out: Path, lines: int, *, seed: int = 2026, invalid: float = 0.03, accounts: int = 50_000, database_url=None
) -> tuple[int, int]:
    """Write the file; returns (count, total pence)."""
    rng = random.Random(seed)
    pool = reference_pool(rng, accounts, database_url)
    codes = list(FUND_MIX)
    weights = list(FUND_MIX.values())
    day = dt.date.today() - dt.timedelta(days=1)
    dates = [(day - dt.timedelta(days=n)).strftime("%d/%m/%Y") for n in range(3)]
    total = 0
    start_sequence = rng.randint(100_000, 500_000)
    with out.open("w", encoding="ascii", newline="\r\n") as file:
        chunk = []
        for n in range(lines):
            code = rng.choices(codes, weights)[0]
            reference = rng.choice(pool[code])
            if rng.random() < invalid:
                reference = corrupt(reference, rng)
            low, high = AMOUNTS[code]
            pence = rng.randint(low, high)
            channel = rng.choice(CHANNELS)
            if rng.random() < 0.002:
                channel, pence = "Q", -pence
            field = f"{reference:<16}"
            if code == "CTAX" and rng.random() < 0.01:
                field = f"BERN{reference:<12}"
            date = dates[0] if rng.random() < 0.9 else rng.choice(dates)
            sequence = (start_sequence + n) % 10_000_000
            chunk.append(f"{sequence:>7}{field}{pounds(pence):>9}{channel}{date}\n")
            total += pence
            if len(chunk) >= 10_000:
                file.write("".join(chunk))
                chunk = []
        file.write("".join(chunk))
        file.write("\n")
        file.write(f"{'Total Amount Updated onto System:':<34}{pounds(total):>17}\n")
        file.write(f"{'Total Transactions updated onto System:':<40}{lines:>17}\n")
    return lines, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--invalid", type=float, default=0.03, help="share of references that fail their fund's rule")
    parser.add_argument("--accounts", type=int, default=50_000, help="distinct valid references to draw from")
    parser.add_argument("--database-url", default=None, help="take the reference rules from this database")
    args = parser.parse_args()
    started = time.perf_counter()
    count, total = write_file(
        args.out,
        args.lines,
        seed=args.seed,
        invalid=args.invalid,
        accounts=args.accounts,
        database_url=args.database_url,
    )
    size = args.out.stat().st_size
    print(
        f"Wrote {args.out}: {count:,} lines, total £{pounds(total)}, {size / 1e6:.1f} MB "
        f"in {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
