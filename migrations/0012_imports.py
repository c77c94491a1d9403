# Written by hand (templates, exports and other tables were being added at the same time).
from peewee import *

# Import batches (a payment file in: its hash, counts, control totals, status, who and when)
# and the lines of each that were not simply posted (app/domain/imports/batches.py). Defaults
# set in Python (utcnow) come from the application models. The uploaded files themselves are
# kept on disk (IMPORT_STORAGE_DIR), never in the database.


def up(migrator, db):
    class ImportTemplate(Model):
        class Meta:
            database = db
            table_name = 'import_template'

    class User(Model):
        class Meta:
            database = db
            table_name = 'user'

    class ImportBatch(Model):
        id = BigAutoField()
        template = ForeignKeyField(ImportTemplate, backref='+', on_delete='RESTRICT')
        template_name = CharField(max_length=120, default='')
        file_name = CharField(max_length=255)
        content_sha256 = CharField(max_length=64, index=True)
        size_bytes = BigIntegerField()
        status = CharField(max_length=12, default='previewed', index=True)
        row_count = IntegerField(default=0)
        posted_count = IntegerField(default=0)
        suspense_count = IntegerField(default=0)
        skipped_count = IntegerField(default=0)
        rejected_count = IntegerField(default=0)
        file_total_pence = BigIntegerField(default=0)
        posted_total_pence = BigIntegerField(default=0)
        suspense_total_pence = BigIntegerField(default=0)
        skipped_total_pence = BigIntegerField(default=0)
        rows_done = IntegerField(default=0)
        attempts = IntegerField(default=0)
        uploaded_by = ForeignKeyField(User, backref='+', on_delete='RESTRICT')
        uploaded_at = DateTimeField(index=True)
        confirmed_by = ForeignKeyField(User, null=True, backref='+', on_delete='RESTRICT')
        confirmed_at = DateTimeField(null=True)
        started_at = DateTimeField(null=True)
        finished_at = DateTimeField(null=True)
        failure_message = TextField(default='')
        override_duplicate_by = ForeignKeyField(User, null=True, backref='+', on_delete='RESTRICT')
        override_duplicate_reason = TextField(default='')
        reversed_by = ForeignKeyField(User, null=True, backref='+', on_delete='RESTRICT')
        reversed_at = DateTimeField(null=True)
        reversal_reason = TextField(default='')

        class Meta:
            database = db
            table_name = 'import_batch'

    class ImportProblem(Model):
        id = BigAutoField()
        batch = ForeignKeyField(ImportBatch, backref='+', on_delete='CASCADE')
        line_number = IntegerField()
        kind = CharField(max_length=10)
        message = CharField(max_length=500)
        text = TextField(default='')

        class Meta:
            database = db
            table_name = 'import_problem'
            indexes = ((('batch', 'kind', 'line_number'), False),)

    db.create_tables([ImportBatch, ImportProblem])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('import_problem'))
    migrator.migrate(migrator.drop_table('import_batch'))
