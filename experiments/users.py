"""Local accounts: who may sign in to the app, with which role, and what keeps a password safe.

Passwords are stored only as argon2id hashes (argon2-cffi: salted, slow, a maintained library).
Repeated failures lock an account for a while; an unknown name costs the same time as a wrong
password (it is checked against a dummy hash), so timing does not tell which names exist, and the
sign-in form says the same thing for every refusal. Every change is an action: checked against the
actor's role and recorded in the audit log in its own transaction; refused sign-ins are recorded too.

Sessions live in the app (Streamlit's session state); :func:`session_expired` is the rule that
ends them: idle too long, open too long, or opened before the password was last changed.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, func, select

from experiments.access import Actor, Permission, Role, require
from experiments.audit import Action, record, record_now
from experiments.db import session_scope
from experiments.identifiers import InvalidIdentifier, check_name
from experiments.models import User
from experiments.store import utcnow

MIN_PASSWORD_LENGTH = 8
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = _HASHER.hash("recall-lab: no such user")


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None


@dataclass(frozen=True)
class SignInPolicy:
    """How many failures lock an account and for how long; how long a session may last.

    From the environment: ``RECALL_LOCKOUT_FAILURES`` (5), ``RECALL_LOCKOUT_MINUTES`` (15),
    ``RECALL_SESSION_IDLE_MINUTES`` (30) and ``RECALL_SESSION_MAX_HOURS`` (12).
    """

    lockout_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)
    idle: timedelta = timedelta(minutes=30)
    lifetime: timedelta = timedelta(hours=12)

    @classmethod
    def from_env(cls) -> SignInPolicy:
        return cls(lockout_failures=max(int(_env_number("RECALL_LOCKOUT_FAILURES", 5)), 1),
                   lockout=timedelta(minutes=_env_number("RECALL_LOCKOUT_MINUTES", 15)),
                   idle=timedelta(minutes=_env_number("RECALL_SESSION_IDLE_MINUTES", 30)),
                   lifetime=timedelta(hours=_env_number("RECALL_SESSION_MAX_HOURS", 12)))


class UserError(ValueError):
    """A user action that cannot be done as asked (unknown user, weak password, name taken)."""


class SignInRefused(Exception):
    """A refused sign-in. ``reason`` goes to the audit log; the user is told only that it failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class UserInfo:
    name: str
    role: Role
    disabled: bool
    failed_sign_ins: int
    locked_until: datetime | None  # naive UTC
    created_at: datetime
    password_changed_at: datetime


def _info(user: User) -> UserInfo:
    return UserInfo(user.name, Role(user.role), user.disabled, user.failed_sign_ins, user.locked_until,
                    user.created_at, user.password_changed_at)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def _check_user_name(name: str) -> str:
    try:
        return check_name(name, "user name")
    except InvalidIdentifier as exc:
        raise UserError(str(exc)) from None


def _user(session, name: str) -> User:  # noqa: ANN001 - a Session
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UserError(f"no user named {name!r} (recall user list shows them)")
    return user


def count_users(engine: Engine) -> int:
    """How many accounts exist (none: a fresh install, which asks for the first admin)."""
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def get_user(engine: Engine, name: str) -> UserInfo | None:
    """The account ``name``, or None (reads only: the app checks its signed-in user on every run)."""
    with session_scope(engine) as session:
        user = session.scalar(select(User).where(User.name == name))
        return _info(user) if user else None


def list_users(engine: Engine, *, actor: Actor) -> list[UserInfo]:
    require(actor, Permission.MANAGE_USERS)
    with session_scope(engine) as session:
        return [_info(u) for u in session.scalars(select(User).order_by(User.name))]


def add_user(engine: Engine, name: str, password: str, role: Role, *, actor: Actor) -> UserInfo:
    """Create an account (admins only)."""
    require(actor, Permission.MANAGE_USERS)
    name = _check_user_name(name)
    _check_password(password)
    now = utcnow()
    with session_scope(engine) as session:
        if session.scalar(select(User.id).where(User.name == name)) is not None:
            raise UserError(f"a user named {name!r} already exists")
        user = User(name=name, role=Role(role).value, password_hash=_HASHER.hash(password), disabled=False,
                    failed_sign_ins=0, locked_until=None, created_at=now, password_changed_at=now)
        session.add(user)
        record(session, actor, Action.USER_ADD, name, role=Role(role).value)
        session.flush()
        return _info(user)


def set_disabled(engine: Engine, name: str, disabled: bool, *, actor: Actor) -> None:
    """Disable an account (its sessions end at their next click) or enable it again (lock-out cleared)."""
    require(actor, Permission.MANAGE_USERS)
    with session_scope(engine) as session:
        user = _user(session, name)
        user.disabled = disabled
        if not disabled:
            user.failed_sign_ins, user.locked_until = 0, None
        record(session, actor, Action.USER_DISABLE if disabled else Action.USER_ENABLE, name)


def reset_password(engine: Engine, name: str, password: str, *, actor: Actor) -> None:
    """Set a new password: the account's open sessions end, and its lock-out is cleared."""
    require(actor, Permission.MANAGE_USERS)
    _check_password(password)
    with session_scope(engine) as session:
        user = _user(session, name)
        user.password_hash = _HASHER.hash(password)
        user.password_changed_at = utcnow()
        user.failed_sign_ins, user.locked_until = 0, None
        record(session, actor, Action.USER_PASSWORD, name)


def set_role(engine: Engine, name: str, role: Role, *, actor: Actor) -> None:
    require(actor, Permission.MANAGE_USERS)
    with session_scope(engine) as session:
        user = _user(session, name)
        before = user.role
        user.role = Role(role).value
        record(session, actor, Action.USER_ROLE, name, before=before, after=Role(role).value)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def authenticate(engine: Engine, name: str, password: str, *, now: datetime | None = None,
                 policy: SignInPolicy | None = None) -> Actor:
    """The app's actor for ``name`` if the password is right and the account usable, else
    :class:`SignInRefused`. Every outcome is in the audit log; failures count towards a lock-out."""
    now = now or utcnow()
    policy = policy or SignInPolicy.from_env()
    name = name.strip()
    with session_scope(engine) as session:
        user = session.scalar(select(User).where(User.name == name)) if name else None
        if user is None:
            _verify(_DUMMY_HASH, password)  # the same time as a wrong password
            reason = "unknown user"
        else:
            actor = Actor(user.name, Role(user.role), "app")
            matches = _verify(user.password_hash, password)
            if user.disabled:
                reason = "disabled"
            elif user.locked_until is not None and user.locked_until > now:
                reason = "locked"
            elif not matches:
                user.failed_sign_ins += 1
                reason = "wrong password"
                if user.failed_sign_ins >= policy.lockout_failures:
                    user.failed_sign_ins, user.locked_until = 0, now + policy.lockout
                    reason = f"wrong password; locked until {user.locked_until:%Y-%m-%d %H:%M} UTC"
            else:
                if _HASHER.check_needs_rehash(user.password_hash):
                    user.password_hash = _HASHER.hash(password)
                user.failed_sign_ins, user.locked_until = 0, None
                record(session, actor, Action.SIGN_IN, user.name)
                return actor
            record(session, actor, Action.SIGN_IN_FAILED, user.name, reason=reason)
    if user is None:
        record_now(engine, Actor(name[:64] or "?", Role.VIEWER, "app"), Action.SIGN_IN_FAILED, name, reason=reason)
    raise SignInRefused(reason)


def record_sign_out(engine: Engine, actor: Actor, reason: str = "signed out") -> None:
    record_now(engine, actor, Action.SIGN_OUT, actor.name, reason=reason)


def session_timed_out(signed_in_at: datetime, last_seen: datetime, *, now: datetime | None = None,
                      policy: SignInPolicy | None = None) -> str | None:
    """Why a session must end by the clock (idle too long, open too long), or None."""
    now = now or utcnow()
    policy = policy or SignInPolicy.from_env()
    if now - last_seen > policy.idle:
        return "idle"
    if now - signed_in_at > policy.lifetime:
        return "session lifetime reached"
    return None


def session_expired(signed_in_at: datetime, last_seen: datetime, user: UserInfo | None, *,
                    now: datetime | None = None, policy: SignInPolicy | None = None) -> str | None:
    """Why a local account's session must end now (account gone or disabled, password changed since
    the sign-in, idle, too old), or None."""
    if user is None or user.disabled:
        return "account disabled or removed"
    if signed_in_at < user.password_changed_at:
        return "password changed"
    return session_timed_out(signed_in_at, last_seen, now=now, policy=policy)


def sso_role(engine: Engine, email: str, rules: str | None = None) -> Role | None:
    """The role of a single-sign-on identity, or None (no access).

    A local account named exactly as the e-mail address decides first (its role; none if disabled).
    Otherwise ``RECALL_SSO_ROLES`` (or ``rules``): comma-separated ``pattern=role`` pairs matched in
    order against the lower-cased address, with shell wildcards, e.g.
    ``wang@shop.cn=admin,*@growth.shop.cn=operator,*@shop.cn=viewer``.
    """
    email = email.strip().lower()
    if not email:
        return None
    user = get_user(engine, email)
    if user is not None:
        return None if user.disabled else user.role
    rules = os.environ.get("RECALL_SSO_ROLES", "") if rules is None else rules
    for rule in filter(None, (r.strip() for r in rules.split(","))):
        pattern, _, role = rule.rpartition("=")
        if not pattern:
            raise ValueError(f"RECALL_SSO_ROLES: {rule!r} is not pattern=role")
        try:
            granted = Role(role.strip().lower())
        except ValueError:
            raise ValueError(f"RECALL_SSO_ROLES: {role!r} is not a role "
                             f"({', '.join(r.value for r in Role)})") from None
        if fnmatch.fnmatchcase(email, pattern.strip().lower()):
            return granted
    return None
