"""What every piece of configuration (fund, method, VAT code, office …) shares.

Configuration is data that finance owns. It is never hard-deleted once anything
refers to it: it is disabled. Every create and change is audited with before/after.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from peewee import BooleanField, CharField, IntegrityError

from app.db import BaseModel, database
from app.domain import audit
from app.domain.errors import DomainError

CODE_PATTERN = re.compile(r"^[A-Z0-9]{1,10}$")
VERBS = {"change": "Changed", "enable": "Enabled", "disable": "Disabled"}


def _plain(value):
    if isinstance(value, BaseModel):
        return value.id
    if isinstance(value, (Decimal, dt.date)):
        return str(value)
    return value


class ConfigModel(BaseModel):
    """Base for configuration with a unique code, a name and an enabled flag."""

    code = CharField(max_length=10, unique=True)
    name = CharField(max_length=120)
    enabled = BooleanField(default=True)

    audit_type = "config"  # overridden: used in audit events
    audit_fields: tuple[str, ...] = ("code", "name", "enabled")

    def as_audit(self) -> dict:
        return {field: _plain(getattr(self, field)) for field in self.audit_fields}

    @classmethod
    def enabled_items(cls):
        return cls.select().where(cls.enabled == True).order_by(cls.name)  # noqa: E712

    @classmethod
    def by_code(cls, code: str):
        return cls.get_or_none(cls.code == code)


def normalise_code(code: str, label: str = "code") -> str:
    value = (code or "").strip().upper()
    if not value:
        raise DomainError(f"Enter a {label}", "code")
    if not CODE_PATTERN.match(value):
        raise DomainError(f"The {label} must be 1 to 10 letters or numbers, with no spaces", "code")
    return value


def create_config(model: type[ConfigModel], actor, values: dict, *, ip_address: str = "") -> ConfigModel:
    values = dict(values)
    values["code"] = normalise_code(values.get("code", ""))
    if model.by_code(values["code"]) is not None:
        raise DomainError(f"A {model.audit_type.replace('_', ' ')} with code {values['code']} already exists", "code")
    try:
        with database.atomic():
            item = model.create(**values)
            audit.record(
                f"{model.audit_type}.create",
                actor=actor,
                object_type=model.audit_type,
                object_id=item.id,
                summary=f"Added {item.code} {item.name}",
                after=item.as_audit(),
                ip_address=ip_address,
            )
    except IntegrityError as exc:
        raise DomainError(
            f"A {model.audit_type.replace('_', ' ')} with code {values['code']} already exists", "code"
        ) from exc
    return item


def change_config(item: ConfigModel, actor, values: dict, *, ip_address: str = "") -> ConfigModel:
    """Apply changes (never the code: other systems and ledger entries use it)."""
    values = {k: v for k, v in values.items() if k != "code"}
    before = item.as_audit()
    for key, value in values.items():
        setattr(item, key, value)
    b, a = audit.changes(before, item.as_audit())
    if not a:
        return item
    with database.atomic():
        item.save()
        action = "change"
        if set(a) == {"enabled"}:
            action = "enable" if item.enabled else "disable"
        audit.record(
            f"{item.audit_type}.{action}",
            actor=actor,
            object_type=item.audit_type,
            object_id=item.id,
            summary=f"{VERBS[action]} {item.code} {item.name}",
            before=b,
            after=a,
            ip_address=ip_address,
        )
    return item
