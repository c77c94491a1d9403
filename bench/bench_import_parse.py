"""How fast allpay files are read, and then run through import rules; and peak memory.

    .venv/bin/python bench/bench_import_parse.py [--lines 1000000] [--file PATH]

Makes a file with bench/generate_allpay.py (unless --file is given), then:
1. reads it with app.domain.imports.formats.read_rows (best of 3);
2. reads it and applies five typical import rules to every row (best of 3);
3. reads it again under tracemalloc for the peak of Python memory (slower: not timed).
Targets (issue 6): reading well under 4 s a million lines; five rules ≤ 2 s a million rows;
memory flat (not growing with the file beyond the duplicate check's ~8 bytes a line).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.domain.imports.formats import ImportRow, ReadSettings, read_rows  # noqa: E402
from app.domain.imports.rules import RuleSet, compile_rule  # noqa: E402

ALLPAY = ReadSettings("allpay", {"encoding": "cp1252"}, "", "ALLPAY")


def rule(name: str, conditions: list[dict], action: str, value: str = "", *, stops: bool = False, join="all") -> dict:
    return {
        "name": name,
        "conditions": json.dumps({"join": join, "conditions": conditions}),
        "action": action,
        "action_value": value,
        "replacement": "",
        "stops": stops,
    }


RULES = [
    rule(
        "Returned cheques and cash adjustments",
        [{"field": "channel", "op": "in_list", "value": "C, Q"}],
        "set_method",
        "CHQ",
    ),
    rule(
        "References no fund issues", [{"field": "reference", "op": "starts_with", "value": "9"}], "suspense", "Unknown"
    ),
    rule("Old business rates", [{"field": "reference", "op": "matches", "value": "55[0-9]{8}"}], "set_fund", "NNDR"),
    rule("Very large payments", [{"field": "amount", "op": "amount_between", "value": "100000.00 to"}], "suspense"),
    rule("Parking", [{"field": "reference", "op": "starts_with", "value": "BJ"}], "set_fund", "PCN", stops=True),
]


def timed_read(path: Path, ruleset: RuleSet | None) -> tuple[float, int, int, dict, float]:
    rows = problems = 0
    decisions = {"post": 0, "suspense": 0, "skip": 0}
    started, cpu = time.perf_counter(), time.process_time()
    with path.open("rb") as file:
        if ruleset is None:
            for item in read_rows(ALLPAY, file):
                if item.__class__ is ImportRow:
                    rows += 1
                else:
                    problems += 1
        else:
            apply = ruleset.apply
            for item in read_rows(ALLPAY, file):
                if item.__class__ is ImportRow:
                    rows += 1
                    decisions[apply(item).decision] += 1
                else:
                    problems += 1
    return time.perf_counter() - started, rows, problems, decisions, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--file", type=Path, default=None)
    args = parser.parse_args()
    path = args.file
    if path is None:
        sys.path.insert(0, str(ROOT / "bench"))
        from generate_allpay import write_file

        path = Path(tempfile.mkdtemp(prefix="ims-bench-")) / "allpay.txt"
        write_file(path, args.lines)
    lines = sum(1 for _ in path.open("rb")) - 3

    ruleset = RuleSet([compile_rule(values) for values in RULES])
    reads = [timed_read(path, None) for _ in range(3)]
    best_read, best_read_cpu = min(r[0] for r in reads), min(r[4] for r in reads)
    results = [timed_read(path, ruleset) for _ in range(3)]
    best_rules, best_rules_cpu = min(r[0] for r in results), min(r[4] for r in results)
    _, rows, problems, decisions, _ = results[0]

    # Rules alone, on rows already in memory (a sample, so memory is not the story here)
    sample = []
    with path.open("rb") as file:
        for item in read_rows(ALLPAY, file):
            if item.__class__ is ImportRow:
                sample.append(item)
                if len(sample) >= 200_000:
                    break
    started, cpu = time.perf_counter(), time.process_time()
    apply = ruleset.apply
    for row in sample:
        apply(row)
    rules_only = (time.perf_counter() - started) / len(sample) * 1_000_000
    rules_only_cpu = (time.process_time() - cpu) / len(sample) * 1_000_000

    tracemalloc.start()
    with path.open("rb") as file:
        for _item in read_rows(ALLPAY, file):
            pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    per_million = 1_000_000 / max(lines, 1)
    print(f"allpay file: {lines:,} lines, {path.stat().st_size / 1e6:.1f} MB ({path})")
    print(f"  rows {rows:,}, row problems {problems:,}; with rules: {decisions}")
    print(
        f"  read:           {best_read:6.2f} s, CPU {best_read_cpu:.2f} s "
        f"({best_read * per_million:.2f} s a million lines; target < 4 s)"
    )
    print(
        f"  read + 5 rules: {best_rules:6.2f} s, CPU {best_rules_cpu:.2f} s "
        f"({best_rules * per_million:.2f} s a million lines)"
    )
    print(f"  5 rules alone:  {rules_only:6.2f} s a million rows, CPU {rules_only_cpu:.2f} s (target ≤ 2 s)")
    print(f"  peak Python memory while reading (tracemalloc): {peak / 1e6:.1f} MB; process max RSS {max_rss:.0f} MB")


if __name__ == "__main__":
    main()
