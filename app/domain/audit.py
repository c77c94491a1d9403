"""The audit trail: append-only, each event hashed with the one before it.

Every sign-in and every change of configuration or data records an AuditEvent.
`seq` is unique, so two writers can never fork the chain: the loser of a race
retries on the new head. `verify_chain()` recomputes every hash and reports the
first broken link.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from peewee import BigIntegerField, CharField, DateTimeField, IntegrityError, TextField

from app.db import BaseModel, database, utcnow
from app.domain.errors import ImmutableRecord
from app.domain.ukdates import start_of_day_utc

GENESIS = "0" * 64


class AuditEvent(BaseModel):
    seq = BigIntegerField(unique=True)
    occurred_at = DateTimeField(index=True)
    actor_id = BigIntegerField(null=True, index=True)
    actor_email = CharField(max_length=320, default="")
    action = CharField(max_length=80, index=True)
    object_type = CharField(max_length=80, default="", index=True)
    object_id = CharField(max_length=80, default="")
    summary = TextField(default="")
    before = TextField(default="")  # canonical JSON, "" when not applicable
    after = TextField(default="")
    ip_address = CharField(max_length=64, default="")
    prev_hash = CharField(max_length=64)
    hash = CharField(max_length=64, unique=True)

    def save(self, *args, **kwargs):
        if self._pk is not None and not kwargs.get("force_insert"):
            raise ImmutableRecord("Audit events cannot be changed")
        return super().save(*args, **kwargs)

    def delete_instance(self, *args, **kwargs):
        raise ImmutableRecord("Audit events cannot be deleted")

    @classmethod
    def update(cls, *args, **kwargs):
        raise ImmutableRecord("Audit events cannot be changed")

    @classmethod
    def delete(cls, *args, **kwargs):
        raise ImmutableRecord("Audit events cannot be deleted")

    @property
    def before_data(self) -> dict:
        return json.loads(self.before) if self.before else {}

    @property
    def after_data(self) -> dict:
        return json.loads(self.after) if self.after else {}


def _canonical(data: Any) -> str:
    if data is None:
        return ""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def _digest(prev_hash: str, fields: dict[str, str]) -> str:
    payload = prev_hash + "\n" + json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _hashed_fields(event: AuditEvent) -> dict[str, str]:
    return {
        "seq": str(event.seq),
        "occurred_at": event.occurred_at.isoformat(timespec="microseconds"),
        "actor_id": "" if event.actor_id is None else str(event.actor_id),
        "actor_email": event.actor_email,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "summary": event.summary,
        "before": event.before,
        "after": event.after,
        "ip_address": event.ip_address,
    }


def record(
    action: str,
    *,
    actor=None,
    object_type: str = "",
    object_id: Any = "",
    summary: str = "",
    before: dict | None = None,
    after: dict | None = None,
    ip_address: str = "",
    actor_email: str | None = None,
) -> AuditEvent:
    """Append one event to the chain. Safe to call inside the caller's transaction."""
    for _attempt in range(20):
        head = AuditEvent.select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).first()
        event = AuditEvent(
            seq=(head.seq + 1) if head else 1,
            occurred_at=utcnow(),
            actor_id=getattr(actor, "id", None),
            actor_email=actor_email if actor_email is not None else getattr(actor, "email", "") or "",
            action=action,
            object_type=object_type,
            object_id=str(object_id or ""),
            summary=summary,
            before=_canonical(before),
            after=_canonical(after),
            ip_address=ip_address or "",
            prev_hash=head.hash if head else GENESIS,
        )
        event.hash = _digest(event.prev_hash, _hashed_fields(event))
        try:
            with database.atomic():
                event.save(force_insert=True)
            return event
        except IntegrityError:
            continue  # another writer took this seq: chain onto the new head
    raise RuntimeError("Could not append to the audit trail")


@dataclass
class ChainReport:
    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str = ""


def verify_chain(batch_size: int = 5000) -> ChainReport:
    """Walk the chain in order; report the first event whose link or hash is wrong."""
    expected_prev = GENESIS
    expected_seq = 1
    checked = 0
    last_seq = 0
    while True:
        events = list(AuditEvent.select().where(AuditEvent.seq > last_seq).order_by(AuditEvent.seq).limit(batch_size))
        if not events:
            return ChainReport(ok=True, checked=checked)
        for event in events:
            if event.seq != expected_seq:
                return ChainReport(False, checked, expected_seq, f"event {expected_seq} is missing")
            if event.prev_hash != expected_prev:
                return ChainReport(False, checked, event.seq, "its link to the previous event does not match")
            if _digest(event.prev_hash, _hashed_fields(event)) != event.hash:
                return ChainReport(False, checked, event.seq, "its contents do not match its hash")
            expected_prev = event.hash
            expected_seq += 1
            last_seq = event.seq
            checked += 1


def changes(before: dict, after: dict) -> tuple[dict, dict]:
    """Only the fields that changed, for a readable before/after."""
    keys = sorted(set(before) | set(after))
    b = {k: before.get(k) for k in keys if before.get(k) != after.get(k)}
    a = {k: after.get(k) for k in keys if before.get(k) != after.get(k)}
    return b, a


def filtered(
    *,
    actor: str = "",
    action: str = "",
    object_type: str = "",
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
):
    query = AuditEvent.select().order_by(AuditEvent.seq.desc())
    if actor:
        query = query.where(AuditEvent.actor_email.contains(actor.strip()))
    if action:
        query = query.where(AuditEvent.action == action)
    if object_type:
        query = query.where(AuditEvent.object_type == object_type)
    if date_from:
        query = query.where(AuditEvent.occurred_at >= start_of_day_utc(date_from))
    if date_to:
        query = query.where(AuditEvent.occurred_at < start_of_day_utc(date_to + dt.timedelta(days=1)))
    return query
