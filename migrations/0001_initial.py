# Generated from a schema diff on 2026-11-22 02:56.
# created_at columns get their defaults (utcnow) from the application models.
from peewee import *


def up(migrator, db):
    class AuditEvent(Model):
        seq = BigIntegerField(unique=True)
        occurred_at = DateTimeField(index=True)
        actor_id = BigIntegerField(index=True, null=True)
        actor_email = CharField(max_length=320, default='')
        action = CharField(index=True, max_length=80)
        object_type = CharField(index=True, max_length=80, default='')
        object_id = CharField(max_length=80, default='')
        summary = TextField(default='')
        before = TextField(default='')
        after = TextField(default='')
        ip_address = CharField(max_length=64, default='')
        prev_hash = CharField(max_length=64)
        hash = CharField(unique=True, max_length=64)
        class Meta:
            database = db
            table_name = 'audit_event'
    db.create_tables([AuditEvent])

    class CouncilSettings(Model):
        council_name = CharField(max_length=120, default='Demo Borough Council')
        service_name = CharField(max_length=120, default='Pay the council')
        brand_colour = CharField(max_length=7, default='#1d70b8')
        phase = CharField(max_length=10, default='beta')
        contact_email = CharField(max_length=320, default='')
        contact_phone = CharField(max_length=40, default='')
        website_url = CharField(max_length=300, default='')
        accessibility_contact = TextField(default='')
        logo_png = BlobField(null=True)
        logo_content_type = CharField(max_length=40, default='')
        logo_version = IntegerField(default=0)
        demo_mode = BooleanField(default=False)
        class Meta:
            database = db
            table_name = 'council_settings'
    db.create_tables([CouncilSettings])

    class Feedback(Model):
        created_at = DateTimeField(index=True)
        rating = CharField(max_length=30)
        comments = TextField(default='')
        page = CharField(max_length=300, default='')
        email = CharField(max_length=320, default='')
        council_name = CharField(max_length=120, default='')
        class Meta:
            database = db
            table_name = 'feedback'
    db.create_tables([Feedback])

    class VatCode(Model):
        code = CharField(unique=True, max_length=10)
        name = CharField(max_length=120)
        enabled = BooleanField(default=True)
        class Meta:
            database = db
            table_name = 'vat_code'
    db.create_tables([VatCode])

    class Fund(Model):
        code = CharField(unique=True, max_length=10)
        name = CharField(max_length=120)
        enabled = BooleanField(default=True)
        description = TextField(default='')
        shown_to_citizens = BooleanField(default=False)
        minimum_pence = BigIntegerField(default=1)
        maximum_pence = BigIntegerField(null=True)
        vat_code = ForeignKeyField(VatCode, null=True, on_delete='RESTRICT')
        ledger_code = CharField(max_length=30, default='')
        cost_centre = CharField(max_length=30, default='')
        reference_label = CharField(max_length=80, default='Reference')
        reference_hint = TextField(default='')
        account_must_exist = BooleanField(default=False)
        address_required = BooleanField(default=False)
        pay_account = CharField(max_length=40, default='default')
        is_suspense = BooleanField(default=False)
        class Meta:
            database = db
            table_name = 'fund'
    db.create_tables([Fund])

    class FundGroup(Model):
        code = CharField(unique=True, max_length=10)
        name = CharField(max_length=120)
        enabled = BooleanField(default=True)
        class Meta:
            database = db
            table_name = 'fund_group'
    db.create_tables([FundGroup])

    class FundGroupFund(Model):
        fund_group = ForeignKeyField(FundGroup, on_delete='CASCADE')
        fund = ForeignKeyField(Fund, on_delete='RESTRICT')
        class Meta:
            database = db
            table_name = 'fund_group_fund'
            indexes = ((('fund_group', 'fund'), True),)
    db.create_tables([FundGroupFund])

    class MethodOfPayment(Model):
        code = CharField(unique=True, max_length=10)
        name = CharField(max_length=120)
        enabled = BooleanField(default=True)
        channel = CharField(max_length=30)
        minimum_pence = BigIntegerField(default=1)
        maximum_pence = BigIntegerField(null=True)
        refundable = BooleanField(default=False)
        staff_can_use = BooleanField(default=True)
        class Meta:
            database = db
            table_name = 'method_of_payment'
    db.create_tables([MethodOfPayment])

    class Office(Model):
        code = CharField(unique=True, max_length=10)
        name = CharField(max_length=120)
        enabled = BooleanField(default=True)
        address = TextField(default='')
        class Meta:
            database = db
            table_name = 'office'
    db.create_tables([Office])

    class OutboxMessage(Model):
        created_at = DateTimeField(index=True)
        to_address = CharField(max_length=320)
        subject = CharField(max_length=300)
        body = TextField()
        purpose = CharField(max_length=60, default='')
        status = CharField(max_length=10, default='stored')
        provider_id = CharField(max_length=80, default='')
        error = TextField(default='')
        sent_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'outbox_message'
    db.create_tables([OutboxMessage])

    class User(Model):
        email = CharField(unique=True, max_length=320)
        name = CharField(max_length=120)
        password_hash = CharField()
        must_change_password = BooleanField(default=True)
        enabled = BooleanField(default=True)
        failed_sign_ins = IntegerField(default=0)
        locked_until = DateTimeField(null=True)
        last_sign_in_at = DateTimeField(null=True)
        session_version = IntegerField(default=1)
        created_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'user'
    db.create_tables([User])

    class UserFundGroup(Model):
        user = ForeignKeyField(User, on_delete='CASCADE')
        fund_group = ForeignKeyField(FundGroup, on_delete='RESTRICT')
        class Meta:
            database = db
            table_name = 'user_fund_group'
            indexes = ((('user', 'fund_group'), True),)
    db.create_tables([UserFundGroup])

    class UserRole(Model):
        user = ForeignKeyField(User, on_delete='CASCADE')
        role = CharField(max_length=40)
        class Meta:
            database = db
            table_name = 'user_role'
            indexes = ((('user', 'role'), True),)
    db.create_tables([UserRole])

    class VatRate(Model):
        vat_code = ForeignKeyField(VatCode, on_delete='RESTRICT')
        rate = DecimalField(max_digits=6, decimal_places=4)
        effective_from = DateField()
        class Meta:
            database = db
            table_name = 'vat_rate'
            indexes = ((('vat_code', 'effective_from'), True),)
    db.create_tables([VatRate])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('vat_rate'))
    migrator.migrate(migrator.drop_table('user_role'))
    migrator.migrate(migrator.drop_table('user_fund_group'))
    migrator.migrate(migrator.drop_table('user'))
    migrator.migrate(migrator.drop_table('outbox_message'))
    migrator.migrate(migrator.drop_table('office'))
    migrator.migrate(migrator.drop_table('method_of_payment'))
    migrator.migrate(migrator.drop_table('fund_group_fund'))
    migrator.migrate(migrator.drop_table('fund_group'))
    migrator.migrate(migrator.drop_table('fund'))
    migrator.migrate(migrator.drop_table('vat_code'))
    migrator.migrate(migrator.drop_table('feedback'))
    migrator.migrate(migrator.drop_table('council_settings'))
    migrator.migrate(migrator.drop_table('audit_event'))
