"""Console accounts: argon2 password hashes, roles, permissions and lockout, in ``records.db``.

Accounts sit next to the audit chain they appear in, so a backup of ``records.db`` holds both
who acted and what they did. There is no default account and no default password: the first
one is made with ``gate-edge users add NAME --role admin``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from edge.store.db import from_iso, iso

log = logging.getLogger(__name__)

USER_NAME_PATTERN = r"^[a-z][a-z0-9._-]{1,31}$"
MIN_PASSWORD_LENGTH = 10


class Role(StrEnum):
    """Officers decide on trucks; supervisors also edit the hotlist; admins also manage users."""

    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Permission(StrEnum):
    """Everything the console lets someone do; docs/console.md prints this table."""

    VIEW_LANES = "lanes.view"
    VIEW_PASSAGES = "passages.view"
    VIEW_REFERRALS = "referrals.view"
    DECIDE_REFERRAL = "referrals.decide"
    RELEASE_HOLD = "referrals.release_hold"
    VIEW_MANIFESTS = "manifests.view"
    VIEW_HOTLIST = "hotlist.view"
    EDIT_HOTLIST = "hotlist.edit"
    VIEW_AUDIT = "audit.view"
    VERIFY_AUDIT = "audit.verify"
    VIEW_HEALTH = "health.view"
    MANAGE_USERS = "users.manage"


_OFFICER = frozenset({
    Permission.VIEW_LANES, Permission.VIEW_PASSAGES, Permission.VIEW_REFERRALS,
    Permission.DECIDE_REFERRAL, Permission.VIEW_MANIFESTS, Permission.VIEW_HOTLIST,
    Permission.VIEW_AUDIT, Permission.VIEW_HEALTH,
})
_SUPERVISOR = _OFFICER | {Permission.RELEASE_HOLD, Permission.EDIT_HOTLIST,
                          Permission.VERIFY_AUDIT}
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OFFICER: _OFFICER,
    Role.SUPERVISOR: frozenset(_SUPERVISOR),
    Role.ADMIN: frozenset(_SUPERVISOR | {Permission.MANAGE_USERS}),
}


def allowed(role: Role, permission: Permission) -> bool:
    """Does this role carry this permission?"""
    return permission in PERMISSIONS[role]


@dataclass(frozen=True)
class User:
    """An account as stored (without its hash)."""

    name: str
    role: Role
    failed_logins: int
    locked_until: datetime | None
    session_epoch: int
    disabled: bool

    def locked_at(self, now: datetime) -> bool:
        """Locked out at ``now``."""
        return self.locked_until is not None and self.locked_until > now


@dataclass(frozen=True)
class LoginResult:
    """What a login attempt came to; ``problem`` is safe to show on the login page."""

    user: User | None
    problem: str = ""
    locked_now: bool = False


class UserError(ValueError):
    """A user name, role or password that cannot be accepted; the message says why."""


_HASHER = PasswordHasher()
# Verified against when the user name is unknown, so a wrong name costs as long as a wrong
# password and timing does not reveal which names exist.
_DUMMY_HASH = _HASHER.hash("gate-edge-no-such-user")


def check_password_strength(password: str, name: str) -> None:
    """Refuse passwords an attacker would try first."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if name.lower() in password.lower():
        raise UserError("password must not contain the user name")
    if len(set(password)) < 4:
        raise UserError("password needs at least 4 different characters")


class Users:
    """The ``console_users`` table (migration 0004 in ``edge/store/records.py``)."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def add(self, name: str, role: Role | str, password: str, now: datetime) -> User:
        """Create an account; UserError if the name is taken or the password is weak."""
        if not re.match(USER_NAME_PATTERN, name):
            raise UserError("user name: 2-32 characters, lowercase letters, digits, '.', '_' "
                            "or '-', starting with a letter")
        try:
            role = Role(role)
        except ValueError:
            raise UserError(f"role must be one of {', '.join(r.value for r in Role)}") from None
        check_password_strength(password, name)
        if self.get(name) is not None:
            raise UserError(f"user {name!r} already exists")
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO console_users (name, role, password_hash, created_at, updated_at) "
                "VALUES (?,?,?,?,?)", [name, role.value, _HASHER.hash(password), iso(now), iso(now)])
        user = self.get(name)
        assert user is not None
        return user

    def get(self, name: str) -> User | None:
        """The account, or None."""
        row = self.db.execute(
            "SELECT name, role, failed_logins, locked_until, session_epoch, disabled "
            "FROM console_users WHERE name = ?", [name]).fetchone()
        if row is None:
            return None
        return User(row[0], Role(row[1]), row[2], from_iso(row[3]) if row[3] else None, row[4],
                    bool(row[5]))

    def all(self) -> list[User]:
        """Every account, by name."""
        names = [r[0] for r in self.db.execute("SELECT name FROM console_users ORDER BY name")]
        return [u for u in (self.get(n) for n in names) if u is not None]

    def authenticate(self, name: str, password: str, now: datetime, *, max_failures: int,
                     lockout: timedelta) -> LoginResult:
        """Check a password, counting failures and locking the account after too many."""
        row = self.db.execute(
            "SELECT password_hash FROM console_users WHERE name = ?", [name]).fetchone()
        user = self.get(name)
        if row is None or user is None:
            _verify(_DUMMY_HASH, password)
            return LoginResult(None, "wrong user name or password")
        if user.disabled:
            return LoginResult(None, "this account is disabled; ask an administrator")
        if user.locked_at(now):
            assert user.locked_until is not None
            return LoginResult(None, "this account is locked after too many failed logins until "
                               f"{user.locked_until:%H:%M} UTC; ask an administrator to unlock it")
        if _verify(row[0], password):
            with self.db.atomic():
                self.db.execute("UPDATE console_users SET failed_logins = 0, locked_until = NULL, "
                                "updated_at = ? WHERE name = ?", [iso(now), name])
                if _HASHER.check_needs_rehash(row[0]):
                    self.db.execute("UPDATE console_users SET password_hash = ? WHERE name = ?",
                                    [_HASHER.hash(password), name])
            return LoginResult(self.get(name))
        failures = user.failed_logins + 1
        locked = failures >= max_failures
        with self.db.atomic():
            self.db.execute(
                "UPDATE console_users SET failed_logins = ?, locked_until = ?, updated_at = ? "
                "WHERE name = ?",
                [0 if locked else failures, iso(now + lockout) if locked else None, iso(now),
                 name])
        if locked:
            return LoginResult(None, f"too many failed logins: account locked for "
                               f"{int(lockout.total_seconds() // 60)} minutes", locked_now=True)
        return LoginResult(None, "wrong user name or password")

    def unlock(self, name: str, now: datetime) -> bool:
        """Clear a lockout; True if the account exists."""
        with self.db.atomic():
            cur = self.db.execute("UPDATE console_users SET failed_logins = 0, locked_until = NULL,"
                                  " updated_at = ? WHERE name = ?", [iso(now), name])
        return cur.rowcount > 0

    def end_sessions(self, name: str, now: datetime) -> None:
        """Invalidate every session of this user (logout, role change): cookies carry the epoch."""
        with self.db.atomic():
            self.db.execute("UPDATE console_users SET session_epoch = session_epoch + 1, "
                            "updated_at = ? WHERE name = ?", [iso(now), name])

    def set_password(self, name: str, password: str, now: datetime) -> None:
        """Replace a password (and end the user's sessions)."""
        check_password_strength(password, name)
        with self.db.atomic():
            self.db.execute("UPDATE console_users SET password_hash = ?, session_epoch = "
                            "session_epoch + 1, failed_logins = 0, locked_until = NULL, "
                            "updated_at = ? WHERE name = ?", [_HASHER.hash(password), iso(now), name])


def _verify(stored: str, password: str) -> bool:
    try:
        return bool(_HASHER.verify(stored, password))
    except VerifyMismatchError:
        return False
    except (VerificationError, InvalidHashError):
        log.error("stored password hash is not a valid argon2 hash")
        return False
