"""Exports' storage on SQLite and PostgreSQL: exported_entry without foreign keys (migration 0016),
LZ4 for the stored files (0017), and runs that fail while their file is being made.

Each test has a brand-new migrated database of its own (`fresh_database`): migrations go down and
up, and runs commit.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from peewee import IntegrityError
from playhouse.migrations import Runner

from app.db import database, is_postgres, utcnow
from app.domain.exports import runs
from app.domain.exports.formats import ExportFormatError
from app.domain.exports.runs import ExportBatch, ExportedEntry, ExportFileChunk
from app.domain.exports.templates import PRESETS, create_template
from app.domain.ledger import LedgerEntry
from app.domain.ukdates import business_date

MIGRATIONS = str(Path(__file__).resolve().parents[2] / "migrations")


def today() -> dt.date:
    return business_date(utcnow())


@pytest.fixture
def council(fresh_database):
    from app.demo import seed_configuration, seed_ledger

    with fresh_database.atomic():
        seed_configuration()
    seed_ledger(entries=60)
    return fresh_database


def _preset(code: str, new_code: str):
    return create_template(None, dict(next(p for p in PRESETS if p["code"] == code)) | {"code": new_code})


def _indexes(db) -> dict:
    return {i.name: (tuple(i.columns), i.unique) for i in db.get_indexes("exported_entry")}


def _within(seconds: float, work):
    """work() on a thread: its result, or a failure if it has not finished in time (a connection
    waiting on itself would otherwise hang the test run)."""
    outcome: list = []

    def run():
        try:
            outcome.append(work())
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome.append(exc)
        finally:
            database.close()  # the thread's own connection

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: the connection is stuck"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def test_exported_entry_has_no_foreign_keys_and_keeps_its_two_indexes(fresh_database):
    assert fresh_database.get_foreign_keys("exported_entry") == []
    indexes = _indexes(fresh_database)
    assert indexes["exportedentry_entry_id_template_id_active"] == (("entry_id", "template_id", "active"), True)
    assert indexes["exportedentry_batch_id_entry_id"] == (("batch_id", "entry_id"), False)


def test_migration_0016_down_and_up_keeps_the_marks_and_exactly_once(council):
    db = council
    template = _preset("LOCALGOV15", "SCHEMA")
    batch = runs.run_export(template, today())
    marks = sorted((m.entry_id, m.template_id, m.batch_id, m.active) for m in ExportedEntry.select())
    assert len(marks) == batch.entry_count > 0
    indexes = _indexes(db)
    runner = Runner(db, directory=MIGRATIONS)

    reverted = runner.down("0016_exported_entry_no_fks")
    assert reverted[-1] == "0016_exported_entry_no_fks"
    assert {(fk.column, fk.dest_table) for fk in db.get_foreign_keys("exported_entry")} == {
        ("entry_id", "ledger_entry"),
        ("template_id", "export_template"),
        ("batch_id", "export_batch"),
    }
    assert runner.up() == list(reversed(reverted))

    assert db.get_foreign_keys("exported_entry") == []
    assert _indexes(db) == indexes
    assert sorted((m.entry_id, m.template_id, m.batch_id, m.active) for m in ExportedEntry.select()) == marks
    # Exactly once still holds: the unique index refuses a second live mark, the next run finds
    # nothing new, and a void batch's entries go out again.
    entry_id = marks[0][0]
    with pytest.raises(IntegrityError), db.atomic():
        ExportedEntry.create(entry=entry_id, template=template.id, batch=batch.id, active=True)
    with pytest.raises(runs.NothingToExport):
        runs.run_export(template, today())
    from app.domain.users import User

    runs.void_batch(batch, User.get(User.email == "senior@demo.example.gov.uk"), "Schema test")
    again = runs.run_export(template, today())
    assert again.entry_count == batch.entry_count
    assert b"".join(runs.file_bytes(again)) == b"".join(runs.file_bytes(batch))


def test_a_run_that_fails_while_making_its_file_leaves_nothing_and_the_connection_usable(council):
    # A fixed-width amount too narrow for the ledger's amounts: the first line fails, while the
    # entries are still being read (on PostgreSQL, streamed on the run's connection).
    template = create_template(
        None,
        {
            "code": "NARROW",
            "name": "Too narrow",
            "kind": "detail",
            "file_format": "fixed",
            "file_name_pattern": "NARROW_{seq}.txt",
            "definition": {
                "selection": {"funds": [], "methods": [], "sources": []},
                "fields": [{"source": "amount", "unit": "pence", "width": 2, "align": "right", "pad": "0"}],
            },
        },
    )
    with pytest.raises(ExportFormatError, match="does not fit in 2 characters"):
        _within(60, lambda: runs.run_export(template, today()))
    assert ExportBatch.select().count() == 0
    assert ExportedEntry.select().count() == 0
    assert ExportFileChunk.select().count() == 0
    # The same connection runs the next export and streams its file while the caller uses the
    # database between chunks.
    batch = _within(60, lambda: runs.run_export(_preset("LOCALGOV15", "AFTER"), today()))
    assert batch.entry_count == LedgerEntry.select().where(LedgerEntry.business_date <= today()).count()

    def regenerate_using_the_database_between_chunks():
        made = []
        for chunk in runs.regenerate(batch):
            made.append(chunk)
            assert ExportBatch.select().count() == 1
        return b"".join(made)

    assert _within(60, regenerate_using_the_database_between_chunks) == b"".join(runs.file_bytes(batch))


def test_a_file_comes_out_the_same_whatever_the_servers_date_style(council):
    # PostgreSQL sends dates and times to the file writer as text, whose form depends on DateStyle.
    if not is_postgres():
        pytest.skip("PostgreSQL only: SQLite stores dates as ISO text")
    batches = [runs.run_export(_preset(code, f"S{code[:5]}"), today()) for code in ("LOCALGOV15", "CTAXDAILY")]
    made = [b"".join(runs.file_bytes(batch)) for batch in batches]
    assert b"T" in made[0] and b"/" in made[1]  # ISO times, and dates in the template's own format
    council.execute_sql("SET datestyle = 'SQL, DMY'")
    try:
        assert [b"".join(runs.regenerate(batch)) for batch in batches] == made
    finally:
        council.execute_sql("RESET datestyle")


def test_stored_files_are_compressed_with_lz4_on_postgresql(fresh_database):
    if not is_postgres():
        pytest.skip("SQLite stores files as they are")
    lz4 = fresh_database.execute_sql(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    ).fetchone()
    if not (lz4 and lz4[0]):
        pytest.skip("this PostgreSQL was built without LZ4")
    column = (
        "SELECT attcompression FROM pg_attribute WHERE attrelid = 'export_file_chunk'::regclass AND attname = 'data'"
    )
    assert fresh_database.execute_sql(column).fetchone()[0] == "l"
    runner = Runner(fresh_database, directory=MIGRATIONS)
    reverted = runner.down("0017_export_file_chunk_lz4")
    assert fresh_database.execute_sql(column).fetchone()[0] in ("", "\x00", None)
    assert runner.up() == list(reversed(reverted))
    assert fresh_database.execute_sql(column).fetchone()[0] == "l"
