# Written by hand (other tables were being added at the same time).
from peewee import *

# Corrections to the ledger (reversals, journals, transfers): one row per correction, its
# ledger entries share its group_reference. Append-only like the ledger itself: triggers
# refuse UPDATE and DELETE (ims_refuse_change() comes from 0002_ledger on PostgreSQL).
# created_at's default (utcnow) comes from the application model.

MESSAGE = 'Corrections cannot be changed or deleted'


def _is_postgres(db):
    return isinstance(db, PostgresqlDatabase) or type(db).__name__.startswith('Postgres')


def up(migrator, db):
    class LedgerEntry(Model):
        id = BigAutoField()

        class Meta:
            database = db
            table_name = 'ledger_entry'

    class User(Model):
        class Meta:
            database = db
            table_name = 'user'

    class Correction(Model):
        id = BigAutoField()
        kind = CharField(max_length=20)
        group_reference = CharField(unique=True, max_length=20)
        submission_key = CharField(unique=True, max_length=120)
        entry = ForeignKeyField(LedgerEntry, null=True, on_delete='RESTRICT')
        amount_pence = BigIntegerField()
        reason = CharField(max_length=500)
        created_by = ForeignKeyField(User, on_delete='RESTRICT')
        created_at = DateTimeField(index=True)

        class Meta:
            database = db
            table_name = 'correction'

    db.create_tables([Correction])

    if _is_postgres(db):
        db.execute_sql(
            'CREATE TRIGGER correction_append_only BEFORE UPDATE OR DELETE ON "correction" '
            "FOR EACH ROW EXECUTE FUNCTION ims_refuse_change('%s')" % MESSAGE)
        db.execute_sql(
            'CREATE TRIGGER correction_no_truncate BEFORE TRUNCATE ON "correction" '
            "FOR EACH STATEMENT EXECUTE FUNCTION ims_refuse_change('%s')" % MESSAGE)
    else:
        for event in ('UPDATE', 'DELETE'):
            db.execute_sql(
                'CREATE TRIGGER correction_no_%s BEFORE %s ON "correction" '
                "BEGIN SELECT RAISE(ABORT, '%s'); END" % (event.lower(), event, MESSAGE))


def down(migrator, db):
    if _is_postgres(db):
        db.execute_sql('DROP TRIGGER IF EXISTS correction_append_only ON "correction"')
        db.execute_sql('DROP TRIGGER IF EXISTS correction_no_truncate ON "correction"')
    else:
        for event in ('update', 'delete'):
            db.execute_sql('DROP TRIGGER IF EXISTS correction_no_%s' % event)
    migrator.migrate(migrator.drop_table('correction'))
