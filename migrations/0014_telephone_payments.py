# Written by hand (other tables were being added at the same time).
from peewee import *

# Telephone card payments (GOV.UK Pay MOTO) are card payments taken by a member of staff:
# the payment records the flag, who took it and at which office, and its ledger entries carry
# the same user and office. Council settings gain what a VAT receipt must show (the council's
# address and VAT registration number).


def up(migrator, db):
    class User(Model):
        class Meta:
            database = db
            table_name = 'user'

    class Office(Model):
        class Meta:
            database = db
            table_name = 'office'

    migrator.migrate(
        migrator.add_column('payment', 'moto', BooleanField(default=False)),
        migrator.add_column('payment', 'taken_by_id', ForeignKeyField(User, field=User.id, null=True, on_delete='RESTRICT')),
        migrator.add_column('payment', 'office_id', ForeignKeyField(Office, field=Office.id, null=True, on_delete='RESTRICT')),
        migrator.add_column('council_settings', 'postal_address', TextField(default='')),
        migrator.add_column('council_settings', 'vat_registration_number', CharField(max_length=20, default='')),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column('council_settings', 'vat_registration_number'),
        migrator.drop_column('council_settings', 'postal_address'),
        # add_column made an index for each foreign key; SQLite cannot drop a column an index uses.
        migrator.drop_index('payment', 'payment_office_id'),
        migrator.drop_index('payment', 'payment_taken_by_id'),
        migrator.drop_column('payment', 'office_id'),
        migrator.drop_column('payment', 'taken_by_id'),
        migrator.drop_column('payment', 'moto'),
    )
