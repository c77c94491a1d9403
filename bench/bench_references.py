"""References validated per second through the full compiled rule of the demo council tax fund.

Runs standalone: `.venv/bin/python bench/bench_references.py`. It makes a throw-away SQLite
database, migrates it, seeds the demo configuration and reference rules, then validates a
mix of valid and invalid references (typos, transpositions, wrong lengths, letters, spaces
and lower case to normalise) on one core, with and without an amount, on the public and
staff channels. Target: at least 200,000 a second (issue 3).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playhouse.migrations import Runner  # noqa: E402

from app.db import bind_database  # noqa: E402

TARGET = 200_000
N = 200_000
ROUNDS = 5


def make_references(rng: random.Random, count: int) -> list[str]:
    from app.domain.references.demo import generate_valid_reference

    references = []
    for i in range(count):
        ref = generate_valid_reference("CTAX", rng)
        kind = i % 8
        if kind == 1:  # one digit changed
            pos = rng.randrange(1, 9)
            ref = ref[:pos] + str((int(ref[pos]) + rng.randint(1, 9)) % 10) + ref[pos + 1 :]
        elif kind == 2:  # adjacent digits swapped
            pos = rng.randrange(1, 8)
            ref = ref[:pos] + ref[pos + 1] + ref[pos] + ref[pos + 2 :]
        elif kind == 3:  # too short
            ref = ref[:-1]
        elif kind == 4:  # a letter typed
            ref = ref[:4] + "O" + ref[5:]
        elif kind == 5:  # spaces, as people type them
            ref = f" {ref[:3]} {ref[3:6]} {ref[6:]} "
        references.append(ref)
    return references


def run(label: str, fund, references: list[str], **kwargs) -> float:
    from app.domain.references import validate_reference

    best = 0.0
    valid = 0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        valid = 0
        for ref in references:
            valid += validate_reference(fund, ref, **kwargs).valid
        elapsed = time.perf_counter() - start
        best = max(best, len(references) / elapsed)
    print(f"{label:<44} {best:>12,.0f} a second  ({valid:,} of {len(references):,} valid)")
    return best


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        database = bind_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        Runner(database, directory=str(ROOT / "migrations")).up()

        from app.demo import seed_configuration
        from app.domain.funds import Fund
        from app.domain.references.demo import seed_demo_reference_rules

        seed_configuration()
        seed_demo_reference_rules()
        fund = Fund.by_code("CTAX")
        references = make_references(random.Random(2026), N)

        print(f"Demo council tax fund (CTAX), {N:,} references, best of {ROUNDS} rounds, one core")
        public = run("public, reference only", fund, references, channel="public")
        run("public, reference and amount", fund, references, amount_pence=12_500, channel="public")
        run("staff, reference and amount (every check)", fund, references, amount_pence=12_500, channel="staff")
        database.close()
    verdict = "meets" if public >= TARGET else "MISSES"
    print(f"{verdict} the target of {TARGET:,} a second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
