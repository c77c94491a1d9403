# Generated from a schema diff on 2026-11-22 03:00, then edited by hand to add the
# triggers that make ledger_entry and audit_event append-only in the database itself.
# created_at columns get their defaults (utcnow) from the application models.
from peewee import *

# Tables that only ever grow: the ledger and the audit trail. The application refuses
# to change them too (app/domain/ledger.py, app/domain/audit.py); the triggers stop
# raw SQL, other tools and future bugs. Dropping a table (down()) is still possible.
APPEND_ONLY = {
    'ledger_entry': 'Ledger entries cannot be changed or deleted',
    'audit_event': 'Audit events cannot be changed or deleted',
}


def _is_postgres(db):
    return isinstance(db, PostgresqlDatabase) or type(db).__name__.startswith('Postgres')


def _check_supported(db):
    if not (_is_postgres(db) or isinstance(db, SqliteDatabase)):
        raise NotImplementedError('Append-only triggers are written for SQLite and PostgreSQL only')


def _create_append_only_triggers(db):
    _check_supported(db)
    if _is_postgres(db):
        # No "%" anywhere: psycopg would read it as a parameter placeholder.
        db.execute_sql(
            "CREATE OR REPLACE FUNCTION ims_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN "
            "RAISE EXCEPTION USING MESSAGE = TG_ARGV[0], ERRCODE = 'restrict_violation'; "
            "END; $$")
        for table, message in APPEND_ONLY.items():
            db.execute_sql(
                'CREATE TRIGGER %s_append_only BEFORE UPDATE OR DELETE ON "%s" '
                "FOR EACH ROW EXECUTE FUNCTION ims_refuse_change('%s')" % (table, table, message))
            # Row triggers do not fire on TRUNCATE.
            db.execute_sql(
                'CREATE TRIGGER %s_no_truncate BEFORE TRUNCATE ON "%s" '
                "FOR EACH STATEMENT EXECUTE FUNCTION ims_refuse_change('%s')" % (table, table, message))
    else:
        for table, message in APPEND_ONLY.items():
            for event in ('UPDATE', 'DELETE'):
                db.execute_sql(
                    'CREATE TRIGGER %s_no_%s BEFORE %s ON "%s" '
                    "BEGIN SELECT RAISE(ABORT, '%s'); END" % (table, event.lower(), event, table, message))


def _drop_append_only_triggers(db):
    _check_supported(db)
    if _is_postgres(db):
        for table in APPEND_ONLY:
            db.execute_sql('DROP TRIGGER IF EXISTS %s_append_only ON "%s"' % (table, table))
            db.execute_sql('DROP TRIGGER IF EXISTS %s_no_truncate ON "%s"' % (table, table))
        db.execute_sql('DROP FUNCTION IF EXISTS ims_refuse_change()')
    else:
        for table in APPEND_ONLY:
            for event in ('update', 'delete'):
                db.execute_sql('DROP TRIGGER IF EXISTS %s_no_%s' % (table, event))


def up(migrator, db):
    class Fund(Model):
        class Meta:
            database = db
            table_name = 'fund'

    class MethodOfPayment(Model):
        class Meta:
            database = db
            table_name = 'method_of_payment'

    class Office(Model):
        class Meta:
            database = db
            table_name = 'office'

    class User(Model):
        class Meta:
            database = db
            table_name = 'user'

    class VatCode(Model):
        class Meta:
            database = db
            table_name = 'vat_code'

    class LedgerEntry(Model):
        id = BigAutoField()
        receipt_reference = CharField(unique=True, max_length=11)
        idempotency_key = CharField(unique=True, max_length=200)
        fund = ForeignKeyField(Fund, on_delete='RESTRICT')
        account_reference = CharField(max_length=40)
        amount_pence = BigIntegerField()
        vat_code = ForeignKeyField(VatCode, null=True, on_delete='RESTRICT')
        vat_rate = DecimalField(max_digits=6, decimal_places=4)
        vat_pence = BigIntegerField()
        net_pence = BigIntegerField()
        method = ForeignKeyField(MethodOfPayment, on_delete='RESTRICT')
        office = ForeignKeyField(Office, null=True, on_delete='RESTRICT')
        user = ForeignKeyField(User, null=True, on_delete='RESTRICT')
        narrative = CharField(max_length=200, default='')
        payer_name = CharField(max_length=200, default='')
        payer_email = CharField(max_length=320, default='')
        payer_address = TextField(default='')
        taken_at = DateTimeField()
        business_date = DateField(index=True)
        created_at = DateTimeField(index=True)
        source = CharField(max_length=30)
        source_reference = CharField(index=True, max_length=200, default='')
        corrects = ForeignKeyField('self', null=True, on_delete='RESTRICT')
        group_reference = CharField(index=True, max_length=80, default='')
        import_batch_id = BigIntegerField(index=True, null=True)
        class Meta:
            database = db
            table_name = 'ledger_entry'
            indexes = ((('business_date', 'fund'), False), (('account_reference', 'fund'), False))
    db.create_tables([LedgerEntry])

    class ReceiptNumber(Model):
        id = BigAutoField()
        created_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'receipt_number'
    db.create_tables([ReceiptNumber])

    _create_append_only_triggers(db)


def down(migrator, db):
    _drop_append_only_triggers(db)
    migrator.migrate(migrator.drop_table('receipt_number'))
    migrator.migrate(migrator.drop_table('ledger_entry'))
