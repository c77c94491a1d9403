"""Offices: where staff take payments (stamped on every ledger entry they post)."""

from __future__ import annotations

from peewee import TextField

from app.domain.configuration import ConfigModel


class Office(ConfigModel):
    address = TextField(default="")

    audit_type = "office"
    audit_fields = ("code", "name", "enabled", "address")
