"""Transaction search on a council-sized ledger: page times, and the download of every entry.

    .venv/bin/python bench/bench_search.py [--entries 1000000] [--databases sqlite,postgresql]
        [--sqlite-path /tmp/ims-bench-search.db] [--repeat 15] [--xlsx]

For each database it makes a ledger of `--entries` entries over three years with
bench/generate_ledger.py: SQLite in a file (kept, and topped up rather than rebuilt next time),
PostgreSQL in a throw-away cluster started here as tests/conftest.py does (initdb and pg_ctl as
the postgres user on 127.0.0.1), removed at the end. Then, through the Flask test client (no
network; the time is measured around each request, so it includes routing, the database and the
template), signed in as a finance officer:

- typical searches, each run `--repeat` times after two warm-up runs: p50 and p95 per search,
  and p95 over all of them (the target is 50 ms);
- one search that is not typical but worth knowing: text over every date (a full scan);
- the CSV download of every entry (as a senior officer, who sees every fund): time, size, rows,
  and the process's peak resident memory above what it was before (sampled every 20 ms). With
  `--xlsx`, the same for XLSX.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# As tests/conftest.py does, before anything reads the configuration.
os.environ["IMS_ENV"] = "testing"
for _name, _value in {
    "SESSION_IDLE_MINUTES": "600",
    "SESSION_MAX_HOURS": "12",
    "LOCKOUT_THRESHOLD": "5",
    "LOCKOUT_MINUTES": "15",
    "MAX_UPLOAD_BYTES": str(50 * 1024 * 1024),
    "NOTIFY_API_KEY": "",
    "NOTIFY_EMAIL_TEMPLATE_ID": "",
    "REDIS_URL": "",
    "HUEY_IMMEDIATE": "true",
    "PROXY_COUNT": "0",
    "WTF_CSRF_SSL_STRICT": "true",
}.items():
    os.environ[_name] = _value

import generate_ledger  # noqa: E402

TARGET_MS = 50


# --- PostgreSQL: a throw-away cluster -----------------------------------------------------------


class Cluster:
    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
        if not found:
            raise SystemExit("PostgreSQL is not installed (apt-get install -y postgresql)")
        self.bin = found[-1].parent
        self.base = Path(tempfile.mkdtemp(prefix="ims-bench-pg-"))
        self.data = self.base / "data"
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
            self.run_as = ["runuser", "-u", "postgres", "--"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def _run(self, *command: str) -> None:
        subprocess.run([*self.run_as, *command], cwd=self.base, check=True, capture_output=True, timeout=300)

    def __enter__(self) -> Cluster:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "--no-sync")  # fmt: skip
        options = f"-h 127.0.0.1 -p {self.port} -k {self.base} -c shared_buffers=256MB -c work_mem=16MB"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.base / "log"), "-w", "start"
        )
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as admin:
            admin.execute("CREATE DATABASE ims_bench")
        return self

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/ims_bench"

    def create_database(self, name: str) -> str:
        """Another empty database on the cluster; returns its URL."""
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def __exit__(self, *exc_info) -> None:
        subprocess.run([*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                       cwd=self.base, capture_output=True, timeout=120, check=False)  # fmt: skip
        shutil.rmtree(self.base, ignore_errors=True)


# --- measuring -----------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def children_rss_bytes() -> int:
    """Resident memory of this process's child processes, together (e.g. an import's reader)."""
    total = 0
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except OSError:
                pass  # it ended between the two reads
    return total


class PeakMemory:
    """The highest resident memory seen while inside the block, sampled every 20 ms: this
    process's (`peak`) and its child processes' together (`children_peak`)."""

    def __enter__(self) -> PeakMemory:
        self.before = rss_bytes()
        self.peak = self.before
        self.children_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())
            self.children_peak = max(self.children_peak, children_rss_bytes())

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def sign_in(client, email: str) -> None:
    from tests.pages import DEMO_PASSWORD, csrf_token

    token = csrf_token(client.get("/sign-in").get_data())
    response = client.post("/sign-in", data={"email": email, "password": DEMO_PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.status


def dates(name: str, day: dt.date) -> dict:
    return {name: [str(day.day), str(day.month), str(day.year)]}


def typical_searches(today: dt.date) -> list[tuple[str, str, dict]]:
    """(name, who, query) for searches people make every day."""
    from app.domain.funds import Fund
    from app.domain.ledger import LedgerEntry
    from app.domain.methods import MethodOfPayment
    from app.domain.offices import Office

    ctax = Fund.by_code("CTAX").id
    recent = LedgerEntry.select().where(LedgerEntry.fund == ctax).order_by(LedgerEntry.id.desc()).first()
    some = LedgerEntry.select().order_by(LedgerEntry.id).offset(LedgerEntry.select().count() // 2).first()
    month = {**dates("date_from", today - dt.timedelta(days=30)), **dates("date_to", today)}
    week = {**dates("date_from", today - dt.timedelta(days=6)), **dates("date_to", today)}
    yesterday = today - dt.timedelta(days=1)
    cash = MethodOfPayment.by_code("CASH").id
    office = Office.select().order_by(Office.id).first().id
    staff = LedgerEntry.select().where(LedgerEntry.user.is_null(False)).order_by(LedgerEntry.id.desc()).first()
    return [
        ("default view (newest first)", "finance", {}),
        ("default view, htmx partial", "finance-htmx", {}),
        ("default view, housing officer (one fund)", "housing", {}),
        ("last 31 days", "finance", month),
        (
            "yesterday, council tax",
            "finance",
            {**dates("date_from", yesterday), **dates("date_to", yesterday), "fund": ctax},
        ),  # fmt: skip
        ("account reference, all dates", "finance", {"account": recent.account_reference}),
        ("receipt reference", "finance", {"receipt": some.receipt_reference}),
        ("exact amount, all dates", "finance", {"amount_from": "123.45", "amount_to": "123.45"}),
        ("amount range, last 31 days", "finance", {**month, "amount_from": "500", "amount_to": "1000"}),
        ("payer text, last 31 days", "finance", {**month, "text": "smith"}),
        ("cash, last 7 days", "finance", {**week, "method": cash}),
        ("office and user, last 31 days", "finance", {**month, "office": office, "user": staff.user_id}),
        ("refunds, last 31 days", "finance", {**month, "source": "refund"}),
        ("last 31 days by amount, largest first", "finance", {**month, "sort": "amount", "direction": "desc"}),
        ("last 31 days by fund", "finance", {**month, "sort": "fund", "direction": "asc"}),
        ("default view, page 20", "finance", {"page": 20}),
    ]


def bench_database(kind: str, url: str, entries: int, repeat: int, xlsx: bool) -> dict:
    from peewee import fn

    from app.domain.ledger import LedgerEntry

    print(f"\n== {kind} ==")
    db = generate_ledger.prepare(url)
    have = LedgerEntry.select(fn.COUNT(LedgerEntry.id)).scalar()
    if have < entries:
        print(f"Generating {entries - have:,} entries ({have:,} already there)")
        generate_ledger.generate(db, entries - have)
    total = LedgerEntry.select(fn.COUNT(LedgerEntry.id)).scalar()
    print(f"{total:,} ledger entries")

    os.environ["DATABASE_URL"] = url
    from app import create_app

    app = create_app("testing")
    clients = {}
    for who, email in (
        ("finance", "finance@demo.example.gov.uk"),
        ("housing", "housing@demo.example.gov.uk"),
        ("senior", "senior@demo.example.gov.uk"),
    ):
        clients[who] = app.test_client()
        sign_in(clients[who], email)
    today = dt.datetime.now(generate_ledger.LONDON).date()

    def timed(who: str, query: dict) -> float:
        client = clients[who.removesuffix("-htmx")]
        headers = {"HX-Request": "true"} if who.endswith("-htmx") else {}
        path = "/transactions" + ("?" + urlencode(query, doseq=True) if query else "")
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (path, response.status)
        return elapsed

    results = {"kind": kind, "entries": total, "searches": []}
    every = []
    print(f"{'search':45} {'p50 ms':>8} {'p95 ms':>8}")
    for name, who, query in typical_searches(today):
        for _ in range(2):
            timed(who, query)
        times = [timed(who, query) for _ in range(repeat)]
        every += times
        p50, p95 = statistics.median(times), percentile(times, 95)
        results["searches"].append((name, p50, p95))
        print(f"{name:45} {p50:8.1f} {p95:8.1f}")
    overall = percentile(every, 95)
    results["p95"] = overall
    print(
        f"{'ALL TYPICAL SEARCHES':45} {statistics.median(every):8.1f} {overall:8.1f}   (target p95 <= {TARGET_MS} ms)"
    )
    scan = [timed("finance", {"text": "Kowalski"}) for _ in range(3)]
    results["text_all_dates"] = statistics.median(scan)
    print(f"{'(not typical) payer text over all dates':45} {statistics.median(scan):8.1f}")

    for file_format in ("csv", "xlsx") if xlsx else ("csv",):
        results[file_format] = download(clients["senior"], file_format)
    return results


def download(client, file_format: str) -> dict:
    with PeakMemory() as memory:
        started = time.perf_counter()
        response = client.get(f"/transactions/download.{file_format}", buffered=False)
        assert response.status_code == 200, response.status
        size = 0
        lines = 0
        first = None
        for chunk in response.response:
            if first is None:
                first = time.perf_counter() - started
            size += len(chunk)
            lines += chunk.count(b"\n")
        response.close()
        elapsed = time.perf_counter() - started
    grown = (memory.peak - memory.before) / 2**20
    rows = f", {lines - 1:,} rows" if file_format == "csv" else ""
    print(
        f"Download of every entry as {file_format.upper()}: {elapsed:.1f} s (first byte after {first:.2f} s), "
        f"{size / 2**20:.0f} MiB{rows}; peak memory {grown:+.0f} MiB over {memory.before / 2**20:.0f} MiB"
    )
    return {"seconds": elapsed, "first_byte": first, "mib": size / 2**20, "memory_mib": grown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--sqlite-path", default=str(Path(tempfile.gettempdir()) / "ims-bench-search.db"))
    parser.add_argument(
        "--postgres-url", help="use this PostgreSQL database (topped up to --entries) instead of a throw-away cluster"
    )
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--xlsx", action="store_true", help="also time the XLSX download of every entry")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    for kind in kinds:
        if kind == "sqlite":
            bench_database("SQLite", f"sqlite:///{args.sqlite_path}", args.entries, args.repeat, args.xlsx)
        elif kind == "postgresql" and args.postgres_url:
            bench_database("PostgreSQL", args.postgres_url, args.entries, args.repeat, args.xlsx)
        elif kind == "postgresql":
            with Cluster() as cluster:
                bench_database("PostgreSQL", cluster.url, args.entries, args.repeat, args.xlsx)
        else:
            raise SystemExit(f"Unknown database {kind!r}: use sqlite and/or postgresql")


if __name__ == "__main__":
    main()
