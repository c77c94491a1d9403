# Written by hand (other tables were being added at the same time).
from peewee import *
import datetime as dt
import json

# Import templates (which format a file is in, its layout options as JSON, default fund and
# method) and import rules (ordered conditions → an action), app/domain/imports/. The data
# step adds the four built-in templates, as app.domain.imports.templates.BUILTIN_TEMPLATES
# describes them (copied here so this migration never changes when the code does).
# created_at/updated_at defaults (utcnow) come from the application models.

BUILTINS = [
    (
        'allpay',
        'allpay daily file',
        'The fixed-width file allpay sends each day for Post Office, PayPoint, Payzone, phone and web '
        "payments. The trailer's count and total must match the payment lines or the whole file is refused.",
        {'encoding': 'cp1252'},
    ),
    (
        'dwp',
        'DWP council tax deductions',
        'The DWP schedule of deductions from benefit towards council tax arrears: an Excel workbook '
        '(or the same columns as CSV), amounts in pence, a minus sign in column M for a recovery.',
        {'columns': {'reference': '6', 'date': '11', 'amount': '12', 'sign': '13'}, 'negative_values': '-', 'narrative': 'DWP'},
    ),
    (
        'localgov_csv',
        'LocalGov IMS transactions CSV',
        'The 15-column transaction file of LocalGov IMS, with a header row; each line names its fund and method.',
        {'encoding': 'utf-8-sig'},
    ),
    (
        'account_holders',
        'Account holders',
        'A back-office extract of accounts (reference, name, address, balance, stop message) to check '
        'references against. Loads account holders, not payments.',
        {'encoding': 'utf-8-sig'},
    ),
]


def up(migrator, db):
    class Fund(Model):
        class Meta:
            database = db
            table_name = 'fund'

    class MethodOfPayment(Model):
        class Meta:
            database = db
            table_name = 'method_of_payment'

    class ImportTemplate(Model):
        name = CharField(unique=True, max_length=120)
        description = TextField(default='')
        kind = CharField(max_length=20)
        options = TextField(default='{}')
        default_fund = ForeignKeyField(Fund, null=True, backref='+', on_delete='RESTRICT')
        default_method = ForeignKeyField(MethodOfPayment, null=True, backref='+', on_delete='RESTRICT')
        is_builtin = BooleanField(default=False)
        is_active = BooleanField(default=True)
        created_at = DateTimeField()
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'import_template'
    db.create_tables([ImportTemplate])

    class ImportRule(Model):
        template = ForeignKeyField(ImportTemplate, null=True, backref='+', on_delete='RESTRICT')
        position = IntegerField(default=1, index=True)
        name = CharField(max_length=120)
        conditions = TextField(default='{"join": "all", "conditions": []}')
        action = CharField(max_length=30)
        action_value = TextField(default='')
        replacement = CharField(max_length=200, default='')
        is_active = BooleanField(default=True)
        stops = BooleanField(default=False)
        created_at = DateTimeField()
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'import_rule'
    db.create_tables([ImportRule])

    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    for kind, name, description, options in BUILTINS:
        if not ImportTemplate.select().where((ImportTemplate.is_builtin == True) & (ImportTemplate.kind == kind)).exists():
            ImportTemplate.create(
                name=name,
                description=description,
                kind=kind,
                options=json.dumps(options, sort_keys=True),
                is_builtin=True,
                is_active=True,
                created_at=now,
                updated_at=now,
            )


def down(migrator, db):
    migrator.migrate(migrator.drop_table('import_rule'))
    migrator.migrate(migrator.drop_table('import_template'))
