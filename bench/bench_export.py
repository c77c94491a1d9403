"""Export a council-sized ledger: a detail CSV and a general ledger journal of every entry.

    .venv/bin/python bench/bench_export.py --entries 1000000            # SQLite and PostgreSQL
    .venv/bin/python bench/bench_export.py --entries 1000000 --only sqlite
    .venv/bin/python bench/bench_export.py --sqlite-url sqlite:////tmp/ims-bench.db   # reuse a ledger

Each database gets `--entries` entries from bench/generate_ledger.py (reused if it already has
them), then two templates are run over the whole ledger: the LocalGov IMS 15-column detail CSV
(one line per entry) and the general ledger journal. Each run is timed from the call to
`run_export` to its commit: marking every entry (one INSERT … SELECT), counting, reading the entries
in keyset pages, writing the file and storing it in the database. Peak resident memory is sampled
every 20 ms. Void is timed too, then the detail run again (the entries are exportable again).
Target: ≤ 10 s for each run at a million entries, with memory that stays flat.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("IMS_ENV", "testing")

from bench.bench_search import Cluster, PeakMemory, rss_bytes  # noqa: E402
from bench.generate_ledger import generate, prepare  # noqa: E402

MIB = 1024 * 1024
TARGET_S = 10


def _template(code: str, preset_code: str):
    """A copy of a preset under a bench code, so the bench never touches the council's own runs."""
    from app.domain.exports.templates import PRESETS, ExportTemplate, create_template

    existing = ExportTemplate.by_code(code)
    if existing is not None:
        return existing
    preset = next(p for p in PRESETS if p["code"] == preset_code)
    values = dict(preset) | {"code": code, "name": f"Bench {preset['name']}"}
    if preset_code == "GLJOURNAL":
        values["definition"] = dict(preset["definition"])
    return create_template(None, values)


def _ensure_ledger_codes() -> None:
    from app.domain.funds import Fund

    for fund in Fund.select().where(Fund.ledger_code == ""):
        fund.ledger_code = f"L{fund.id}"
        fund.save()


def bench_database(kind: str, url: str, entries: int) -> list[dict]:
    from app.domain.exports import runs
    from app.domain.ledger import LedgerEntry
    from app.domain.users import User

    db = prepare(url)
    have = LedgerEntry.select().count()
    if have < entries:
        print(f"[{kind}] generating {entries - have:,} entries …", flush=True)
        generate(db, entries - have, quiet=True)
    _ensure_ledger_codes()
    total = LedgerEntry.select().count()
    until = dt.date.today()
    senior = User.get_or_none(User.email == "senior@demo.example.gov.uk")
    results = []
    stamp = dt.datetime.now().strftime("%H%M%S")
    for label, preset in (("detail CSV (15 columns)", "LOCALGOV15"), ("GL journal", "GLJOURNAL")):
        template = _template(f"B{preset[:3]}{stamp}", preset)
        with PeakMemory() as memory:
            start = time.perf_counter()
            batch = runs.run_export(template, until, trigger="cli")
            seconds = time.perf_counter() - start
        results.append(_row(kind, label, total, batch, seconds, memory))
        if preset == "LOCALGOV15":
            start = time.perf_counter()
            runs.void_batch(batch, senior, "Benchmark")
            void_seconds = time.perf_counter() - start
            with PeakMemory() as memory:
                start = time.perf_counter()
                again = runs.run_export(template, until, trigger="cli")
                seconds = time.perf_counter() - start
            row = _row(kind, "detail CSV again after void", total, again, seconds, memory)
            row["void_s"] = void_seconds
            results.append(row)
            with PeakMemory() as memory:
                start = time.perf_counter()
                size = sum(len(chunk) for chunk in runs.file_bytes(again))
                seconds = time.perf_counter() - start
            results.append(
                {
                    "db": kind,
                    "what": "download (stream the stored file)",
                    "entries": total,
                    "seconds": seconds,
                    "size_mib": size / MIB,
                    "peak_rss_mib": memory.peak / MIB,
                    "rss_growth_mib": (memory.peak - memory.before) / MIB,
                }
            )
    db.close()
    return results


def _row(kind, label, total, batch, seconds, memory) -> dict:
    return {
        "db": kind,
        "what": label,
        "entries": total,
        "exported": batch.entry_count,
        "lines": batch.line_count,
        "seconds": seconds,
        "size_mib": batch.size_bytes / MIB,
        "peak_rss_mib": memory.peak / MIB,
        "rss_growth_mib": (memory.peak - memory.before) / MIB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    parser.add_argument("--sqlite-url", default=None, help="an existing SQLite ledger to use (default: a new one)")
    parser.add_argument("--postgres-url", default=None, help="an existing PostgreSQL ledger (default: a new cluster)")
    args = parser.parse_args()
    results: list[dict] = []
    if args.only in (None, "sqlite"):
        url = args.sqlite_url or f"sqlite:////tmp/ims-bench-export-{args.entries}.db"
        results += bench_database("sqlite", url, args.entries)
    if args.only in (None, "postgresql"):
        if args.postgres_url:
            results += bench_database("postgresql", args.postgres_url, args.entries)
        else:
            with Cluster() as cluster:
                results += bench_database("postgresql", cluster.url, args.entries)
    print()
    print(f"{'database':<11} {'run':<36} {'entries':>10} {'lines':>10} {'seconds':>8} {'MiB':>7} {'peak RSS':>9}")
    for r in results:
        print(
            f"{r['db']:<11} {r['what']:<36} {r.get('exported', r['entries']):>10,} {r.get('lines', 0):>10,} "
            f"{r['seconds']:>8.2f} {r['size_mib']:>7.1f} {r['peak_rss_mib']:>7.0f} M"
            + (f"  (void {r['void_s']:.2f} s)" if "void_s" in r else "")
            + ("" if r["seconds"] <= TARGET_S or r["what"].startswith("download") else "  OVER TARGET")
        )
    print(f"\nprocess RSS at the end: {rss_bytes() / MIB:.0f} MiB; target ≤ {TARGET_S} s per run")


if __name__ == "__main__":
    main()
