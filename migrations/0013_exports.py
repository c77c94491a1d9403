# Written by hand (other tables were being added at the same time).
from peewee import *

# Exports (app/domain/exports/): templates, batches, the entries in each batch and each batch's file.
#
# exported_entry's unique index (entry_id, template_id, active) is what makes an export exactly
# once: `active` is TRUE while the batch stands and NULL once it is void, and NULLs never clash in
# a unique index (SQLite and PostgreSQL), so an entry is in at most one live batch per template.
#
# Data step: the preset templates (council tax daily file, general ledger journal, LocalGov IMS
# 15-column CSV), inserted with this migration's own model of the table so that later changes to
# the application's model cannot break it. The demo seed calls ensure_presets() too (idempotent).


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

    class ExportTemplate(Model):
        code = CharField(max_length=10, unique=True)
        name = CharField(max_length=120)
        enabled = BooleanField(default=True)
        description = TextField(default='')
        kind = CharField(max_length=10, default='detail')
        file_format = CharField(max_length=10, default='csv')
        file_name_pattern = CharField(max_length=120, default='')
        definition = TextField(default='{}')
        schedule = CharField(max_length=10, default='manual')
        schedule_time = CharField(max_length=5, default='')
        version = IntegerField(default=1)
        last_scheduled_on = DateField(null=True)
        last_error = TextField(default='')
        created_at = DateTimeField()
        changed_at = DateTimeField()

        class Meta:
            database = db
            table_name = 'export_template'

    class ExportBatch(Model):
        id = BigAutoField()
        template = ForeignKeyField(ExportTemplate, backref='+', on_delete='RESTRICT', index=False)
        template_version = IntegerField()
        definition = TextField()
        kind = CharField(max_length=10)
        file_format = CharField(max_length=10)
        sequence = IntegerField()
        file_name = CharField(max_length=200)
        cut_off = DateField()
        status = CharField(max_length=10, default='exported', index=True)
        entry_count = BigIntegerField(default=0)
        total_pence = BigIntegerField(default=0)
        line_count = BigIntegerField(default=0)
        debit_pence = BigIntegerField(default=0)
        credit_pence = BigIntegerField(default=0)
        size_bytes = BigIntegerField(default=0)
        sha256 = CharField(max_length=64, default='')
        trigger = CharField(max_length=10, default='manual')
        created_by = ForeignKeyField(User, null=True, backref='+', on_delete='RESTRICT')
        created_at = DateTimeField(index=True)
        voided_by = ForeignKeyField(User, null=True, backref='+', on_delete='RESTRICT')
        voided_at = DateTimeField(null=True)
        void_reason = TextField(default='')

        class Meta:
            database = db
            table_name = 'export_batch'
            indexes = ((('template', 'sequence'), True),)

    class ExportedEntry(Model):
        id = BigAutoField()
        entry = ForeignKeyField(LedgerEntry, backref='+', on_delete='RESTRICT', index=False)
        template = ForeignKeyField(ExportTemplate, backref='+', on_delete='RESTRICT', index=False)
        batch = ForeignKeyField(ExportBatch, backref='+', on_delete='RESTRICT', index=False)
        active = BooleanField(null=True, default=True)

        class Meta:
            database = db
            table_name = 'exported_entry'
            indexes = (
                (('entry', 'template', 'active'), True),
                (('batch', 'entry'), False),
            )

    class ExportFileChunk(Model):
        id = BigAutoField()
        batch = ForeignKeyField(ExportBatch, backref='+', on_delete='RESTRICT')
        position = IntegerField()
        data = BlobField()

        class Meta:
            database = db
            table_name = 'export_file_chunk'
            indexes = ((('batch', 'position'), True),)

    db.create_tables([ExportTemplate, ExportBatch, ExportedEntry, ExportFileChunk])

    import datetime

    from app.domain.exports.templates import PRESETS, check_template_values

    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    columns = set(ExportTemplate._meta.fields)
    for preset in PRESETS:
        if ExportTemplate.select().where(ExportTemplate.code == preset['code']).exists():
            continue
        values = {k: v for k, v in check_template_values(preset).items() if k in columns and k != 'code'}
        ExportTemplate.insert(code=preset['code'], created_at=now, changed_at=now, **values).execute()


def down(migrator, db):
    for table in ('export_file_chunk', 'exported_entry', 'export_batch', 'export_template'):
        migrator.migrate(migrator.drop_table(table))
