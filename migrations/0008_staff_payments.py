# Written by hand (other tables were being added at the same time).
from peewee import *

# Payments taken by staff (cash, cheque, postal order, bank transfer): one row per payment,
# its ledger entries share its reference as group_reference. created_at's default (utcnow)
# comes from the application model.


def up(migrator, db):
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

    class StaffPayment(Model):
        id = BigAutoField()
        reference = CharField(unique=True, max_length=20)
        submission_key = CharField(unique=True, max_length=120)
        method = ForeignKeyField(MethodOfPayment, on_delete='RESTRICT')
        office = ForeignKeyField(Office, null=True, on_delete='RESTRICT')
        user = ForeignKeyField(User, on_delete='RESTRICT')
        payer_name = CharField(max_length=200, default='')
        payer_email = CharField(max_length=320, default='')
        payer_address = TextField(default='')
        cheque_number = CharField(max_length=6, default='')
        sort_code = CharField(max_length=6, default='')
        account_number = CharField(max_length=8, default='')
        drawer = CharField(max_length=200, default='')
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = 'staff_payment'

    db.create_tables([StaffPayment])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('staff_payment'))
