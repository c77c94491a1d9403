"""API keys: how other systems call the service's API (unlike LocalGov IMS, whose API is open).

A key is `ims_live_` followed by 43 random URL-safe characters (32 bytes). Only its SHA-256
hash is stored: the key has 256 bits of entropy, so a slow password hash would add cost
without adding safety. The first 8 random characters (the prefix) are kept in clear so people
can tell keys apart, and so authentication looks up candidates by prefix and compares hashes
in constant time. The full key is shown once, when it is created, and never again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from peewee import CharField, DateTimeField, ForeignKeyField, TextField

from app.db import BaseModel, database, utcnow
from app.domain import audit
from app.domain.errors import DomainError
from app.domain.users import User

KEY_PREFIX = "ims_live_"
PREFIX_LENGTH = 8
# Scopes a key can be given: code → what it allows, in words for the admin pages.
SCOPES: dict[str, str] = {
    "references:validate": "Validate account references (POST /api/v1/references/validate)",
    "payments:create": "Start card payments for citizens (POST /api/v1/payments)",
    "payments:read": "Read the status of card payments this key started (GET /api/v1/payments/…)",
}
# Writing last_used_at on every call would turn each read into a write; once a minute is enough.
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)


class ApiKey(BaseModel):
    name = CharField(max_length=120)
    scopes = TextField(default="")  # space-separated scope codes
    prefix = CharField(max_length=PREFIX_LENGTH, index=True)
    secret_hash = CharField(max_length=64, unique=True)
    created_by = ForeignKeyField(User, null=True, on_delete="RESTRICT", backref="+")
    created_at = DateTimeField(default=utcnow)
    last_used_at = DateTimeField(null=True)
    revoked_at = DateTimeField(null=True)
    revoked_by = ForeignKeyField(User, null=True, on_delete="RESTRICT", backref="+")

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def display_prefix(self) -> str:
        return f"{KEY_PREFIX}{self.prefix}…"

    def as_audit(self) -> dict:
        return {
            "name": self.name,
            "scopes": self.scope_list,
            "prefix": self.prefix,
            "revoked": self.revoked,
        }


class ApiKeyRefused(DomainError):
    """The request carries no usable key (HTTP 401)."""

    status = 401
    code = "unauthorised"


class ApiKeyForbidden(DomainError):
    """The key is good but lacks the scope (HTTP 403)."""

    status = 403
    code = "forbidden"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_api_key(actor, name: str, scopes: list[str], *, ip_address: str = "") -> tuple[ApiKey, str]:
    """Create a key; the secret is returned once and only its hash is stored."""
    name = (name or "").strip()
    if not name:
        raise DomainError("Enter a name for the key", "name")
    if len(name) > 120:
        raise DomainError("The name must be 120 characters or fewer", "name")
    if not scopes:
        raise DomainError("Select what the key may do", "scopes")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise DomainError(f"There is no scope called {unknown[0]}", "scopes")
    random_part = secrets.token_urlsafe(32)
    secret = KEY_PREFIX + random_part
    with database.atomic():
        key = ApiKey.create(
            name=name,
            scopes=" ".join(sorted(set(scopes))),
            prefix=random_part[:PREFIX_LENGTH],
            secret_hash=hash_secret(secret),
            created_by=getattr(actor, "id", None),
        )
        audit.record(
            "api_key.create",
            actor=actor,
            object_type="api_key",
            object_id=key.id,
            summary=f"Created API key {name} ({key.display_prefix})",
            after=key.as_audit(),
            ip_address=ip_address,
        )
    return key, secret


def revoke_api_key(key: ApiKey, actor, *, ip_address: str = "") -> ApiKey:
    if key.revoked:
        raise DomainError(f"The key {key.name} is already revoked")
    before = key.as_audit()
    with database.atomic():
        key.revoked_at = utcnow()
        key.revoked_by = getattr(actor, "id", None)
        key.save()
        audit.record(
            "api_key.revoke",
            actor=actor,
            object_type="api_key",
            object_id=key.id,
            summary=f"Revoked API key {key.name} ({key.display_prefix})",
            before=before,
            after=key.as_audit(),
            ip_address=ip_address,
        )
    return key


def authenticate_api_key(header_value: str | None, scope: str) -> ApiKey:
    """The key named by an `Authorization: Bearer …` header, if it is live and has `scope`."""
    if not header_value:
        raise ApiKeyRefused("Send an API key in the Authorization header, like: Authorization: Bearer ims_live_…")
    kind, _, secret = header_value.strip().partition(" ")
    secret = secret.strip()
    if kind.lower() != "bearer" or not secret:
        raise ApiKeyRefused("Send the API key as a bearer token, like: Authorization: Bearer ims_live_…")
    if not secret.startswith(KEY_PREFIX) or len(secret) < len(KEY_PREFIX) + PREFIX_LENGTH:
        raise ApiKeyRefused("The API key is not valid")
    prefix = secret[len(KEY_PREFIX) : len(KEY_PREFIX) + PREFIX_LENGTH]
    digest = hash_secret(secret)
    key = None
    for candidate in ApiKey.select().where(ApiKey.prefix == prefix):
        if hmac.compare_digest(candidate.secret_hash, digest):
            key = candidate
    if key is None:
        raise ApiKeyRefused("The API key is not valid")
    if key.revoked:
        raise ApiKeyRefused("The API key has been revoked")
    if scope not in key.scope_list:
        raise ApiKeyForbidden(f"The API key {key.name} is not allowed to use this API (it needs the {scope} scope)")
    _note_use(key)
    return key


def _note_use(key: ApiKey) -> None:
    now = utcnow()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        return
    # One conditional UPDATE, so concurrent calls do not fight over the row.
    ApiKey.update(last_used_at=now).where(
        (ApiKey.id == key.id) & (ApiKey.last_used_at.is_null() | (ApiKey.last_used_at < now - LAST_USED_RESOLUTION))
    ).execute()
    key.last_used_at = now
