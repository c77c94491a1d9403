# Generated from a schema diff on 2026-11-22 03:19.
from peewee import *

# Reference validation: check-digit configurations, fund reference rules and formats, account holders.
# updated_at columns get their defaults (utcnow) from the application models.

def up(migrator, db):
    class Fund(Model):
        class Meta:
            database = db
            table_name = 'fund'

    class AccountHolder(Model):
        fund = ForeignKeyField(Fund, on_delete='RESTRICT')
        reference = CharField(max_length=40)
        name = CharField(max_length=200, default='')
        address = TextField(default='')
        balance_pence = BigIntegerField(null=True)
        on_stop_message = TextField(default='')
        stop_channels = CharField(max_length=10, default='all')
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'account_holder'
            indexes = ((('fund', 'reference'), True),)
    db.create_tables([AccountHolder])

    class CheckDigitConfig(Model):
        code = CharField(unique=True, max_length=10)
        name = CharField(max_length=120)
        enabled = BooleanField(default=True)
        algorithm = CharField(max_length=20, default='weighted_sum')
        modulus = IntegerField(default=10)
        weights = CharField(max_length=200, default='')
        subtract_from_modulus = BooleanField(default=False)
        prefix_substitutions = TextField(default='{}')
        result_substitutions = TextField(default='{}')
        description = TextField(default='')
        class Meta:
            database = db
            table_name = 'check_digit_config'
    db.create_tables([CheckDigitConfig])

    class ReferenceFormat(Model):
        fund = ForeignKeyField(Fund, on_delete='RESTRICT')
        position = IntegerField(default=1)
        label = CharField(max_length=120)
        effective_from = DateField(null=True)
        effective_to = DateField(null=True)
        public = BooleanField(default=True)
        staff = BooleanField(default=True)
        min_length = IntegerField(null=True)
        max_length = IntegerField(null=True)
        character_type = CharField(max_length=20, default='')
        pattern = TextField(default='')
        mask = CharField(max_length=100, default='')
        check_digit = ForeignKeyField(CheckDigitConfig, null=True, on_delete='RESTRICT')
        example = CharField(max_length=40, default='')
        staff_warning = TextField(default='')
        known_good = TextField(default='')
        known_bad = TextField(default='')
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'reference_format'
            indexes = ((('fund', 'position'), False),)
    db.create_tables([ReferenceFormat])

    class ReferenceRule(Model):
        fund = ForeignKeyField(Fund, unique=True, on_delete='RESTRICT')
        remove_characters = CharField(max_length=20, default='')
        public_stop_message = TextField(default='')
        overpayment = CharField(max_length=10, default='allow')
        version = IntegerField(default=1)
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'reference_rule'
    db.create_tables([ReferenceRule])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('reference_rule'))
    migrator.migrate(migrator.drop_table('reference_format'))
    migrator.migrate(migrator.drop_table('check_digit_config'))
    migrator.migrate(migrator.drop_table('account_holder'))
