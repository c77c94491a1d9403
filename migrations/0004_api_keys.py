# Generated from a schema diff on 2026-11-22 04:26.
from peewee import *

# API keys for the JSON API: only a SHA-256 hash of each key is stored.
# created_at gets its default (utcnow) from the application model.


def up(migrator, db):
    class User(Model):
        class Meta:
            database = db
            table_name = "user"

    class ApiKey(Model):
        name = CharField(max_length=120)
        scopes = TextField(default="")
        prefix = CharField(index=True, max_length=8)
        secret_hash = CharField(unique=True, max_length=64)
        created_by = ForeignKeyField(User, null=True, on_delete="RESTRICT")
        created_at = DateTimeField()
        last_used_at = DateTimeField(null=True)
        revoked_at = DateTimeField(null=True)
        revoked_by = ForeignKeyField(User, null=True, on_delete="RESTRICT")

        class Meta:
            database = db
            table_name = "api_key"

    db.create_tables([ApiKey])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("api_key"))
