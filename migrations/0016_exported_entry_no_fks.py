# Written by hand: exported_entry loses its three foreign-key constraints (to ledger_entry,
# export_template and export_batch). Its two indexes stay as they are.
#
# Why: a run marks every entry of a batch with one INSERT … SELECT, a million rows for a big
# batch, and each row paid three foreign-key checks. On PostgreSQL those checks were two thirds
# of the marking (200,000 entries: 2.6 s with them, 0.9 s without); on SQLite they cost ~10 %
# of a run. They guarded against nothing that can happen: the rows they point at are never
# deleted (ledger entries are immutable under database triggers, batches are voided, never
# deleted, and a template with batches cannot be deleted), and the marking INSERT takes its ids
# from the rows themselves. Exactly once is the unique index (entry_id, template_id, active),
# which is kept, as is the (batch_id, entry_id) index that reads a batch.
#
# PostgreSQL drops the constraints in place. SQLite cannot drop a constraint, so the table is
# rebuilt the way SQLite documents (https://www.sqlite.org/lang_altertable.html#otheralter):
# a new table without the FOREIGN KEY clauses, the rows copied, the old table dropped, the new
# one renamed and the indexes made again, in the migration's transaction (the runner turns
# SQLite's foreign_keys pragma off around it). The rows, ids and index names are unchanged.
from peewee import *

TABLE = 'exported_entry'
REFERENCES = (('entry_id', 'ledger_entry'), ('template_id', 'export_template'), ('batch_id', 'export_batch'))
INDEXES = (
    'CREATE UNIQUE INDEX "exportedentry_entry_id_template_id_active" '
    'ON "exported_entry" ("entry_id", "template_id", "active")',
    'CREATE INDEX "exportedentry_batch_id_entry_id" ON "exported_entry" ("batch_id", "entry_id")',
)


def _rebuild_sqlite(db, foreign_keys):
    """Make exported_entry again on SQLite, with (down) or without (up) its foreign keys."""
    constraints = ''.join(
        f', FOREIGN KEY ("{column}") REFERENCES "{table}" ("id") ON DELETE RESTRICT' for column, table in foreign_keys
    )
    db.execute_sql(
        'CREATE TABLE "exported_entry_new" ("id" INTEGER NOT NULL PRIMARY KEY, "entry_id" INTEGER NOT NULL, '
        '"template_id" INTEGER NOT NULL, "batch_id" INTEGER NOT NULL, "active" INTEGER' + constraints + ')'
    )
    db.execute_sql(
        'INSERT INTO "exported_entry_new" ("id", "entry_id", "template_id", "batch_id", "active") '
        'SELECT "id", "entry_id", "template_id", "batch_id", "active" FROM "exported_entry" ORDER BY "id"'
    )
    db.execute_sql('DROP TABLE "exported_entry"')
    db.execute_sql('ALTER TABLE "exported_entry_new" RENAME TO "exported_entry"')
    for sql in INDEXES:
        db.execute_sql(sql)


def up(migrator, db):
    if isinstance(db, SqliteDatabase):
        _rebuild_sqlite(db, ())
    else:
        migrator.migrate(*(migrator.drop_foreign_key_constraint(TABLE, column) for column, _ in REFERENCES))


def down(migrator, db):
    if isinstance(db, SqliteDatabase):
        _rebuild_sqlite(db, REFERENCES)
    else:
        for column, table in REFERENCES:
            db.execute_sql(
                f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_{column}_fkey" '
                f'FOREIGN KEY ("{column}") REFERENCES "{table}" ("id") ON DELETE RESTRICT'
            )
