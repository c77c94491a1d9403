"""Staff users, roles and permissions, passwords (argon2), lockout and temporary passwords.

Roles are fixed sets of permissions defined here (code, reviewed like code); which
roles a user holds is data that administrators manage. Every staff route declares the
permission it needs (see app/routes/auth.py: `requires`).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, IntegerField

from app.db import BaseModel, database, utcnow
from app.domain import audit
from app.domain.errors import DomainError
from app.domain.funds import FundGroup


class Permission(StrEnum):
    VIEW_LEDGER = "ledger.view"
    TAKE_PAYMENTS = "payments.take"
    REQUEST_REFUNDS = "refunds.request"
    # Journals, transfers, reversals and suspense allocations: new linked ledger entries, never edits.
    CORRECT_LEDGER = "ledger.correct"
    APPROVE = "approvals.approve"
    VIEW_CONFIG = "config.view"
    MANAGE_CONFIG = "config.manage"
    MANAGE_USERS = "users.manage"
    VIEW_AUDIT = "audit.view"
    VIEW_FEEDBACK = "feedback.view"
    VIEW_OUTBOX = "outbox.view"
    # Preview and run export templates (back-office files, general ledger journals).
    RUN_EXPORTS = "exports.run"
    # Upload, preview and confirm payment files (allpay, DWP, CSV): app/domain/imports/batches.py.
    IMPORT_FILES = "imports.run"


@dataclass(frozen=True)
class Role:
    code: str
    name: str
    description: str
    permissions: frozenset[Permission]


P = Permission
_FINANCE = {P.VIEW_LEDGER, P.TAKE_PAYMENTS, P.REQUEST_REFUNDS, P.CORRECT_LEDGER, P.IMPORT_FILES, P.RUN_EXPORTS}
ROLES: dict[str, Role] = {
    role.code: role
    for role in (
        Role(
            "finance_officer",
            "Finance officer",
            "Takes payments, searches transactions and requests refunds and corrections",
            frozenset(_FINANCE),
        ),
        Role(
            "senior_finance_officer",
            "Senior finance officer",
            "Everything a finance officer does, and approves refunds and corrections",
            frozenset(_FINANCE | {P.APPROVE}),
        ),
        Role(
            "system_administrator",
            "System administrator",
            "Manages council settings, funds, methods, VAT, offices, users and roles",
            frozenset({P.VIEW_CONFIG, P.MANAGE_CONFIG, P.MANAGE_USERS, P.VIEW_AUDIT, P.VIEW_FEEDBACK, P.VIEW_OUTBOX}),
        ),
        Role(
            "auditor",
            "Auditor",
            "Reads transactions, configuration and the audit trail; changes nothing",
            frozenset({P.VIEW_LEDGER, P.VIEW_CONFIG, P.VIEW_AUDIT}),
        ),
    )
}

LOCKOUT_THRESHOLD = 5
LOCKOUT_MINUTES = 15
MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()
# Used to spend the same time on unknown e-mail addresses as on known ones.
_DUMMY_HASH = _hasher.hash("not a real password")


class User(BaseModel):
    email = CharField(max_length=320, unique=True)
    name = CharField(max_length=120)
    password_hash = CharField(max_length=255)
    must_change_password = BooleanField(default=True)
    enabled = BooleanField(default=True)
    failed_sign_ins = IntegerField(default=0)
    locked_until = DateTimeField(null=True)
    last_sign_in_at = DateTimeField(null=True)
    # Bumped on password change or disable: sessions that carry an older value end.
    session_version = IntegerField(default=1)
    created_at = DateTimeField(default=utcnow)

    def role_codes(self) -> list[str]:
        return sorted(r.role for r in self.user_roles)

    def roles(self) -> list[Role]:
        return [ROLES[c] for c in self.role_codes() if c in ROLES]

    def permissions(self) -> set[Permission]:
        perms: set[Permission] = set()
        for role in self.roles():
            perms |= role.permissions
        return perms

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions()

    def fund_groups(self):
        return FundGroup.select().join(UserFundGroup).where(UserFundGroup.user == self).order_by(FundGroup.name)

    def is_locked(self, now: dt.datetime | None = None) -> bool:
        return self.locked_until is not None and self.locked_until > (now or utcnow())

    def as_audit(self) -> dict:
        return {
            "email": self.email,
            "name": self.name,
            "enabled": self.enabled,
            "roles": self.role_codes(),
            "fund_groups": sorted(g.code for g in self.fund_groups()),
        }


class UserRole(BaseModel):
    user = ForeignKeyField(User, backref="user_roles", on_delete="CASCADE")
    role = CharField(max_length=40)

    class Meta:
        indexes = ((("user", "role"), True),)


class UserFundGroup(BaseModel):
    user = ForeignKeyField(User, backref="user_fund_groups", on_delete="CASCADE")
    fund_group = ForeignKeyField(FundGroup, backref="user_links", on_delete="RESTRICT")

    class Meta:
        indexes = ((("user", "fund_group"), True),)


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def validate_new_password(password: str, email: str = "") -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise DomainError(f"Password must be {MIN_PASSWORD_LENGTH} characters or more", "new_password")
    if len(password) > 128:
        raise DomainError("Password must be 128 characters or fewer", "new_password")
    if email and normalise_email(email).split("@")[0] in password.lower():
        raise DomainError("Password must not contain your e-mail address", "new_password")


def temporary_password() -> str:
    """Easy to read out and type: four groups of letters and digits."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


class SignInFailed(DomainError):
    pass


def authenticate(
    email: str,
    password: str,
    *,
    ip_address: str = "",
    now: dt.datetime | None = None,
    threshold: int = LOCKOUT_THRESHOLD,
    lockout_minutes: int = LOCKOUT_MINUTES,
) -> User:
    """Check a sign-in. Raises SignInFailed with a message that never says which part was wrong."""
    now = now or utcnow()
    email = normalise_email(email)
    generic = "Enter a correct e-mail address and password"
    user = User.get_or_none(User.email == email)
    if user is None:
        try:
            _hasher.verify(_DUMMY_HASH, password or "x")
        except VerificationError:
            pass
        audit.record(
            "auth.sign_in_failed",
            actor_email=email,
            summary="Sign-in failed: unknown e-mail address",
            ip_address=ip_address,
        )
        raise SignInFailed(generic)
    if user.is_locked(now):
        audit.record(
            "auth.sign_in_refused_locked",
            actor=user,
            object_type="user",
            object_id=user.id,
            summary="Sign-in refused: account locked",
            ip_address=ip_address,
        )
        raise SignInFailed(
            f"Your account is locked after {threshold} failed sign-ins. Try again in {lockout_minutes} minutes "
            "or ask a system administrator to unlock it"
        )
    try:
        ok = _hasher.verify(user.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or not user.enabled:
        if not ok:
            user.failed_sign_ins += 1
            if user.failed_sign_ins >= threshold:
                user.locked_until = now + dt.timedelta(minutes=lockout_minutes)
                user.failed_sign_ins = 0
            user.save(only=[User.failed_sign_ins, User.locked_until])
        audit.record(
            "auth.locked_out" if user.locked_until and user.locked_until > now else "auth.sign_in_failed",
            actor=user,
            object_type="user",
            object_id=user.id,
            summary="Sign-in failed: account disabled" if ok else "Sign-in failed: wrong password",
            ip_address=ip_address,
        )
        raise SignInFailed(generic)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_sign_ins = 0
    user.locked_until = None
    user.last_sign_in_at = now
    user.save()
    audit.record(
        "auth.sign_in", actor=user, object_type="user", object_id=user.id, summary="Signed in", ip_address=ip_address
    )
    return user


def change_password(user: User, current: str, new: str, *, ip_address: str = "") -> User:
    try:
        ok = _hasher.verify(user.password_hash, current or "")
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok:
        raise DomainError("Your current password is not correct", "current_password")
    validate_new_password(new, user.email)
    if new == current:
        raise DomainError("Your new password must be different from your current one", "new_password")
    user.password_hash = _hasher.hash(new)
    user.must_change_password = False
    user.session_version += 1
    user.save()
    audit.record(
        "auth.password_changed",
        actor=user,
        object_type="user",
        object_id=user.id,
        summary="Changed their password",
        ip_address=ip_address,
    )
    return user


def _set_links(user: User, roles: list[str], fund_group_ids: list[int]) -> None:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise DomainError("Select roles from the list", "roles")
    UserRole.delete().where(UserRole.user == user).execute()
    for role in sorted(set(roles)):
        UserRole.create(user=user, role=role)
    UserFundGroup.delete().where(UserFundGroup.user == user).execute()
    for group_id in sorted(set(fund_group_ids)):
        UserFundGroup.create(user=user, fund_group=group_id)


def create_user(
    actor,
    *,
    email: str,
    name: str,
    roles: list[str],
    fund_group_ids: list[int],
    password: str | None = None,
    ip_address: str = "",
) -> tuple[User, str]:
    """Create a user with a temporary password, which is returned once and never stored in clear."""
    email = normalise_email(email)
    if User.get_or_none(User.email == email):
        raise DomainError("A user with this e-mail address already exists", "email")
    if not roles:
        raise DomainError("Select at least one role", "roles")
    password = password or temporary_password()
    with database.atomic():
        user = User.create(
            email=email, name=name.strip(), password_hash=_hasher.hash(password), must_change_password=True
        )
        _set_links(user, roles, fund_group_ids)
        audit.record(
            "user.create",
            actor=actor,
            object_type="user",
            object_id=user.id,
            summary=f"Added user {email}",
            after=user.as_audit(),
            ip_address=ip_address,
        )
    return user, password


def change_user(
    user: User, actor, *, name: str, roles: list[str], fund_group_ids: list[int], ip_address: str = ""
) -> User:
    if not roles:
        raise DomainError("Select at least one role", "roles")
    if actor is not None and user.id == actor.id and "system_administrator" not in roles:
        raise DomainError("You cannot remove your own system administrator role", "roles")
    before = user.as_audit()
    with database.atomic():
        user.name = name.strip()
        user.session_version += 1  # new permissions take effect at once
        user.save()
        _set_links(user, roles, fund_group_ids)
        b, a = audit.changes(before, user.as_audit())
        if a:
            audit.record(
                "user.change",
                actor=actor,
                object_type="user",
                object_id=user.id,
                summary=f"Changed user {user.email}",
                before=b,
                after=a,
                ip_address=ip_address,
            )
    return user


def set_user_enabled(user: User, actor, enabled: bool, *, ip_address: str = "") -> User:
    if actor is not None and user.id == actor.id and not enabled:
        raise DomainError("You cannot disable your own account")
    if user.enabled == enabled:
        return user
    with database.atomic():
        user.enabled = enabled
        user.session_version += 1
        user.save()
        audit.record(
            "user.enable" if enabled else "user.disable",
            actor=actor,
            object_type="user",
            object_id=user.id,
            summary=f"{'Enabled' if enabled else 'Disabled'} user {user.email}",
            before={"enabled": not enabled},
            after={"enabled": enabled},
            ip_address=ip_address,
        )
    return user


def reset_password(user: User, actor, *, ip_address: str = "") -> str:
    """Give a user a new temporary password and unlock them. Returns the password once."""
    password = temporary_password()
    with database.atomic():
        user.password_hash = _hasher.hash(password)
        user.must_change_password = True
        user.failed_sign_ins = 0
        user.locked_until = None
        user.session_version += 1
        user.save()
        audit.record(
            "user.reset_password",
            actor=actor,
            object_type="user",
            object_id=user.id,
            summary=f"Reset the password of {user.email}",
            ip_address=ip_address,
        )
    return password
