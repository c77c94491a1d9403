# Written by hand (other tables were being added at the same time).
from peewee import *

# Suspense: an item per ledger entry of money in a suspense fund, with how much is left to
# allocate (CHECK: never below zero, never above the amount, status agrees with it), notes,
# and allocations (each one's ledger entries share its group_reference; its submission key
# makes a repeated confirm return the first allocation). created_at/updated_at get their
# default (utcnow) from the application models.


def up(migrator, db):
    class Fund(Model):
        class Meta:
            database = db
            table_name = 'fund'

    class LedgerEntry(Model):
        id = BigAutoField()
        class Meta:
            database = db
            table_name = 'ledger_entry'

    class User(Model):
        class Meta:
            database = db
            table_name = 'user'

    class SuspenseItem(Model):
        id = BigAutoField()
        ledger_entry = ForeignKeyField(LedgerEntry, unique=True, on_delete='RESTRICT')
        fund = ForeignKeyField(Fund, on_delete='RESTRICT')
        amount_pence = BigIntegerField()
        remaining_pence = BigIntegerField()
        source = CharField(index=True, max_length=20)
        source_detail = CharField(max_length=500, default='')
        received_on = DateField(index=True)
        status = CharField(index=True, max_length=10, default='open')
        created_at = DateTimeField()
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'suspense_item'
            constraints = [
                Check('amount_pence > 0'),
                Check('remaining_pence >= 0'),
                Check('remaining_pence <= amount_pence'),
                Check("(status = 'open' AND remaining_pence > 0) OR (status = 'allocated' AND remaining_pence = 0)"),
            ]
    db.create_tables([SuspenseItem])

    class SuspenseNote(Model):
        id = BigAutoField()
        item = ForeignKeyField(SuspenseItem, on_delete='RESTRICT')
        user = ForeignKeyField(User, on_delete='RESTRICT')
        text = TextField()
        created_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'suspense_note'
    db.create_tables([SuspenseNote])

    class SuspenseAllocation(Model):
        id = BigAutoField()
        item = ForeignKeyField(SuspenseItem, on_delete='RESTRICT')
        group_reference = CharField(unique=True, max_length=20)
        submission_key = CharField(unique=True, max_length=120)
        amount_pence = BigIntegerField()
        note = CharField(max_length=500, default='')
        created_by = ForeignKeyField(User, on_delete='RESTRICT')
        created_at = DateTimeField(index=True)
        class Meta:
            database = db
            table_name = 'suspense_allocation'
            constraints = [Check('amount_pence > 0')]
    db.create_tables([SuspenseAllocation])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('suspense_allocation'))
    migrator.migrate(migrator.drop_table('suspense_note'))
    migrator.migrate(migrator.drop_table('suspense_item'))
