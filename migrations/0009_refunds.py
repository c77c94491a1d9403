# Written by hand (other tables were being added at the same time).
from peewee import *

# Refunds (asked for, approved above a limit, carried out through GOV.UK Pay or by BACS) and the
# council's approval limit. requested_at's default (utcnow) comes from the application model.


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

    class Refund(Model):
        id = BigAutoField()
        reference = CharField(unique=True, max_length=20)
        submission_key = CharField(unique=True, max_length=120)
        entry = ForeignKeyField(LedgerEntry, backref='+', on_delete='RESTRICT')
        amount_pence = BigIntegerField()
        reason = TextField()
        route = CharField(max_length=10)
        status = CharField(index=True, max_length=20)
        requested_by = ForeignKeyField(User, backref='+', on_delete='RESTRICT')
        requested_at = DateTimeField()
        decided_by = ForeignKeyField(User, null=True, backref='+', on_delete='RESTRICT')
        decided_at = DateTimeField(null=True)
        decision_note = TextField(default='')
        provider_refund_id = CharField(max_length=255, default='')
        refund_entry = ForeignKeyField(LedgerEntry, null=True, backref='+', on_delete='RESTRICT')
        last_error = TextField(default='')

        class Meta:
            database = db
            table_name = 'refund'

    db.create_tables([Refund])
    migrator.migrate(migrator.add_column('council_settings', 'refund_approval_pence', BigIntegerField(default=50000)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column('council_settings', 'refund_approval_pence'))
    migrator.migrate(migrator.drop_table('refund'))
