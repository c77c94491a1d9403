# Generated from a schema diff on 2026-11-22 05:45.
from peewee import *

# Card payments through GOV.UK Pay: payment (one attempt for a basket), its items, its status
# history, and each webhook message once. Plus how many items a citizen's basket may hold.
# created_at/updated_at/occurred_at/received_at get their default (utcnow) from the models.


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

    class MethodOfPayment(Model):
        class Meta:
            database = db
            table_name = 'method_of_payment'

    class Payment(Model):
        id = BigAutoField()
        reference = CharField(unique=True, max_length=20)
        submission_key = CharField(unique=True, max_length=120)
        channel = CharField(max_length=10, default='web')
        pay_account = CharField(max_length=40)
        method = ForeignKeyField(MethodOfPayment, on_delete='RESTRICT')
        status = CharField(index=True, max_length=20, default='created')
        amount_pence = BigIntegerField()
        description = CharField()
        email = CharField(max_length=320, default='')
        payer_name = CharField(max_length=200, default='')
        payer_address = TextField(default='')
        language = CharField(max_length=2, default='en')
        return_token = CharField(unique=True, max_length=64)
        provider_payment_id = CharField(unique=True, null=True)
        provider_status = CharField(max_length=20, default='')
        provider_code = CharField(max_length=10, default='')
        provider_message = CharField(default='')
        provider_id = CharField(default='')
        card_brand = CharField(max_length=40, default='')
        card_last_digits = CharField(max_length=4, default='')
        card_first_digits = CharField(max_length=6, default='')
        cardholder_name = CharField(default='')
        fee_pence = BigIntegerField(null=True)
        captured_date = DateField(null=True)
        settled_date = DateField(null=True)
        created_at = DateTimeField(index=True)
        updated_at = DateTimeField()
        finished_at = DateTimeField(null=True)
        next_check_at = DateTimeField(index=True, null=True)
        checks = IntegerField(default=0)
        last_error = TextField(default='')
        return_url = TextField(default='')
        cancel_url = TextField(default='')
        api_key_id = BigIntegerField(null=True)
        retry_of = ForeignKeyField('self', null=True, on_delete='RESTRICT')
        receipt_message_id = BigIntegerField(null=True)
        class Meta:
            database = db
            table_name = 'payment'
    db.create_tables([Payment])

    class PaymentEvent(Model):
        id = BigAutoField()
        payment = ForeignKeyField(Payment, on_delete='RESTRICT')
        occurred_at = DateTimeField()
        source = CharField(max_length=20)
        status = CharField(max_length=20)
        provider_status = CharField(max_length=20, default='')
        provider_code = CharField(max_length=10, default='')
        note = TextField(default='')
        class Meta:
            database = db
            table_name = 'payment_event'
    db.create_tables([PaymentEvent])

    class PaymentItem(Model):
        id = BigAutoField()
        payment = ForeignKeyField(Payment, on_delete='RESTRICT')
        position = IntegerField()
        fund = ForeignKeyField(Fund, on_delete='RESTRICT')
        account_reference = CharField(max_length=40)
        amount_pence = BigIntegerField()
        ledger_entry = ForeignKeyField(LedgerEntry, null=True, on_delete='RESTRICT')
        class Meta:
            database = db
            table_name = 'payment_item'
            indexes = ((('payment', 'position'), True),)
    db.create_tables([PaymentItem])

    class WebhookMessage(Model):
        id = BigAutoField()
        message_id = CharField(unique=True)
        pay_account = CharField(max_length=40)
        event_type = CharField(max_length=60, default='')
        resource_id = CharField(index=True, default='')
        received_at = DateTimeField()
        processed_at = DateTimeField(null=True)
        outcome = CharField(max_length=200, default='')
        class Meta:
            database = db
            table_name = 'webhook_message'
    db.create_tables([WebhookMessage])

    migrator.migrate(migrator.add_column('council_settings', 'basket_max_items', IntegerField(default=10)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column('council_settings', 'basket_max_items'))
    migrator.migrate(migrator.drop_table('webhook_message'))
    migrator.migrate(migrator.drop_table('payment_item'))
    migrator.migrate(migrator.drop_table('payment_event'))
    migrator.migrate(migrator.drop_table('payment'))
