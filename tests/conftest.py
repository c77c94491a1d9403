"""Shared fixtures: the app on SQLite and PostgreSQL, per-test rollback, signed-in clients, the page check.

Every test that uses `app` (or `client`, `signed_in`) runs twice, once per database: ids
"sqlite" and "postgresql". The PostgreSQL server is a throw-away cluster these tests start
themselves (initdb + pg_ctl on 127.0.0.1, in a temp folder) and stop at the end. Without
PostgreSQL binaries the run fails, unless IMS_SKIP_POSTGRES=1 says to skip those tests.

Each database is migrated and seeded with the demo council once per session. Each test runs
inside one transaction that is rolled back afterwards: the ledger and audit trail refuse
UPDATE and DELETE (database triggers), so rolling back is the only way to clean up.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Before anything reads the configuration. app.jobs calls load_dotenv() when imported, which
# never overrides variables that are already set: pinning these keeps a developer's .env out.
os.environ["IMS_ENV"] = "testing"
for _name, _value in {
    "SESSION_IDLE_MINUTES": "30",
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

import glob  # noqa: E402
import pwd  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402
from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402

from tests.pages import DEMO_EMAILS, DEMO_PASSWORD, page_problems, sign_in  # noqa: E402

# The GOV.UK Pay emulator's fixtures (govuk_pay_emulator, live_govuk_pay_emulator, …).
pytest_plugins = ["tests.govuk_pay_emulator"]

DATABASES = ["sqlite", "postgresql"]


# --- the page check on every HTML response ---------------------------------------------------


class PageCheckFailed(AssertionError):
    pass


class CheckedClient(FlaskClient):
    """A test client that runs the page check on every HTML page it receives.

    Redirects are followed through `open` too, so each page on the way is checked.
    An htmx request (HX-Request header) gets a fragment: checked for parse errors, ids and CSRF.
    A test that shows typed "<tags>" on purpose, to prove they are escaped, sets
    `client.markup_as_text_ok = True`.
    """

    markup_as_text_ok = False

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        if getattr(response, "page_checked", False):
            return response
        response.page_checked = True
        if response.status_code in (301, 302, 303, 307, 308) or response.mimetype != "text/html":
            return response
        request = response.request
        fragment = bool(request.headers.get("HX-Request"))
        problems = page_problems(response.get_data(), fragment=fragment, markup_as_text_ok=self.markup_as_text_ok)
        if problems:
            where = f"{request.method} {request.full_path.rstrip('?')} ({response.status})"
            raise PageCheckFailed(f"Page check failed for {where}:\n  - " + "\n  - ".join(problems))
        return response


# --- PostgreSQL: a throw-away cluster ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_bin() -> Path | None:
    def version(path: str) -> tuple[int, str]:
        name = Path(path).parent.name
        return (int(name) if name.isdigit() else 0, name)

    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


@dataclass
class PostgresCluster:
    url: str  # postgresql://postgres@127.0.0.1:PORT (no database name)
    bin: Path
    data: Path

    def database_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.database_url("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)


@pytest.fixture(scope="session")
def postgres_cluster():
    """Start a PostgreSQL cluster of our own for this test session; stop and remove it after."""
    if os.environ.get("IMS_SKIP_POSTGRES") == "1":
        pytest.skip("IMS_SKIP_POSTGRES=1: PostgreSQL tests skipped")
    pg_bin = _postgres_bin()
    if pg_bin is None:
        pytest.fail(
            "PostgreSQL is not installed, so the integration tests cannot run on it. "
            "Install it (apt-get install -y postgresql, or `make system-deps`), "
            "or set IMS_SKIP_POSTGRES=1 to skip the PostgreSQL tests.",
            pytrace=False,
        )
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="ims-pg-"))
    data = base / "data"
    log = base / "postgres.log"
    run_as: list[str] = []
    if as_root:
        # initdb refuses to run as root: the cluster belongs to the postgres user.
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*command: str) -> None:
        result = subprocess.run([*run_as, *command], cwd=base, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            details = result.stdout + result.stderr + (log.read_text() if log.exists() else "")
            pytest.fail(f"PostgreSQL set-up failed: {' '.join(command)}\n{details}", pytrace=False)

    started = False
    try:
        run(
            str(pg_bin / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = f"-h 127.0.0.1 -p {port} -k {base} -F -c full_page_writes=off -c synchronous_commit=off"
        run(str(pg_bin / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start")
        started = True
        yield PostgresCluster(url=f"postgresql://postgres@127.0.0.1:{port}", bin=pg_bin, data=data)
    finally:
        if started:
            subprocess.run(
                [*run_as, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                cwd=base,
                capture_output=True,
                timeout=120,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)


# --- the app on each database -----------------------------------------------------------------


@dataclass
class TestDatabase:
    kind: str
    url: str
    app: Flask
    db: object  # the peewee Database the app is bound to

    __test__ = False  # not a test class, whatever its name


def make_app(database_url: str, *, ledger_entries: int = 40) -> tuple[Flask, object]:
    """create_app("testing") on `database_url`, migrated and seeded with the demo council."""
    from app import create_app
    from app.cli import migrate_database
    from app.db import database
    from app.demo import seed_configuration, seed_ledger

    os.environ["DATABASE_URL"] = database_url
    app = create_app("testing")
    app.test_client_class = CheckedClient
    db = database.obj
    migrate_database()
    with db.atomic():
        seed_configuration()
    seed_ledger(entries=ledger_entries)
    return app, db


@pytest.fixture(scope="session")
def app_factory():
    """make_app, for suites that need an app of their own (the browser tests' server)."""
    return make_app


@pytest.fixture(scope="session", params=DATABASES)
def test_database(request, tmp_path_factory):
    """One migrated, seeded database (and app bound to it) per kind, for the whole session."""
    from app.db import database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'ims.db'}"
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        url = cluster.create_database("ims_integration")
    app, db = make_app(url)
    yield TestDatabase(kind=request.param, url=url, app=app, db=db)
    database.initialize(db)
    db.close()


def _in_transaction(db) -> bool:
    connection = db.connection()
    if hasattr(connection, "in_transaction"):  # sqlite3
        return connection.in_transaction
    from psycopg.pq import TransactionStatus

    return connection.info.transaction_status != TransactionStatus.IDLE


@pytest.fixture
def app(test_database):
    """The app, inside a transaction that is rolled back after the test.

    TestingConfig keeps the connection open after each request (app/__init__.py close_db)
    and the test client runs requests in this thread, so requests share the transaction.
    """
    from app.db import database

    db = test_database.db
    database.initialize(db)  # other tests (test_ledger.py, e2e) may have bound the proxy elsewhere
    db.connect(reuse_if_open=True)
    flask_app = test_database.app
    saved_config = dict(flask_app.config)
    leaked = False
    from app.domain.references import clear_rule_cache

    clear_rule_cache()  # a rule compiled in an earlier, rolled-back test must not survive it
    with db.atomic() as transaction:
        yield flask_app
        leaked = not _in_transaction(db)
        transaction.rollback()
    flask_app.config.clear()
    flask_app.config.update(saved_config)
    if leaked:
        pytest.fail(
            "The test's transaction ended before the test did (something committed or rolled back), "
            "so its changes may have leaked into the shared test database",
            pytrace=False,
        )


@pytest.fixture
def db_kind(test_database) -> str:
    return test_database.kind


@pytest.fixture
def client(app) -> CheckedClient:
    return app.test_client()


@pytest.fixture
def signed_in(app):
    """signed_in("admin" | a role code | an e-mail address) → a new client signed in as that demo user."""

    def make(who: str, password: str = DEMO_PASSWORD) -> CheckedClient:
        email = DEMO_EMAILS.get(who, who)
        client = app.test_client()
        response = sign_in(client, email, password)
        assert response.status_code == 302, f"sign-in as {email} failed: {response.status}"
        assert response.location.endswith(("/staff", "/change-password")), response.location
        return client

    return make


@pytest.fixture(params=DATABASES)
def fresh_database(request, tmp_path):
    """A brand-new migrated, empty database bound to the models, on SQLite and on PostgreSQL.

    For domain tests that need real commits (races, triggers, down migrations): nothing can
    be deleted from the ledger or the audit trail, so each test gets a database of its own.
    """
    import uuid

    from playhouse.migrations import Runner

    from app.db import bind_database
    from app.domain.references import clear_rule_cache

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        url = request.getfixturevalue("postgres_cluster").create_database(f"ims_fresh_{uuid.uuid4().hex[:12]}")
    database = bind_database(url)
    Runner(database, directory=str(Path(__file__).resolve().parents[1] / "migrations")).up()
    clear_rule_cache()
    yield database
    database.close()
    clear_rule_cache()
