"""Who may do what: roles, the permissions they carry, and the actor every action is checked against.

Checks run where the action runs (:func:`require` in the action itself), not only where a button is
drawn: a page that hides a button it should not show still cannot launch, import or export for a
role without the permission. The CLI acts as the operating-system user who runs it, with the admin
role: whoever can run it already holds the database URL.
"""

from __future__ import annotations

import enum
import getpass
from dataclasses import dataclass


class Role(str, enum.Enum):
    VIEWER = "viewer"      # leadership: Overview and Results, read only
    ANALYST = "analyst"    # + imports, report downloads, plans
    OPERATOR = "operator"  # growth team: + design, launch, send lists, stop and decide
    ADMIN = "admin"        # + users, settings, audit log, destructive database commands


class Permission(str, enum.Enum):
    VIEW = "view"
    IMPORT = "import"
    DOWNLOAD = "download"
    PLAN = "plan"
    DESIGN = "design"
    LAUNCH = "launch"
    SEND = "send"
    DECIDE = "decide"
    NOTE = "note"  # notes on an experiment's results
    MANAGE_USERS = "manage_users"
    SETTINGS = "settings"
    AUDIT = "audit"
    DESTROY = "destroy"


_ORDER = [Role.VIEWER, Role.ANALYST, Role.OPERATOR, Role.ADMIN]
_GRANTED_FROM = {
    Permission.VIEW: Role.VIEWER,
    Permission.IMPORT: Role.ANALYST,
    Permission.DOWNLOAD: Role.ANALYST,
    Permission.PLAN: Role.ANALYST,
    Permission.NOTE: Role.ANALYST,
    Permission.DESIGN: Role.OPERATOR,
    Permission.LAUNCH: Role.OPERATOR,
    Permission.SEND: Role.OPERATOR,
    Permission.DECIDE: Role.OPERATOR,
    Permission.MANAGE_USERS: Role.ADMIN,
    Permission.SETTINGS: Role.ADMIN,
    Permission.AUDIT: Role.ADMIN,
    Permission.DESTROY: Role.ADMIN,
}


def permissions(role: Role) -> frozenset[Permission]:
    """Each role holds its own permissions and those of every role below it."""
    return frozenset(p for p, least in _GRANTED_FROM.items() if _ORDER.index(role) >= _ORDER.index(least))


class Forbidden(PermissionError):
    """An action the actor's role does not allow."""


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in user of the app, or the operating-system user of the CLI."""

    name: str
    role: Role
    via: str  # "app" or "cli"

    def can(self, permission: Permission) -> bool:
        return permission in permissions(self.role)


def require(actor: Actor, permission: Permission) -> None:
    """Raise :class:`Forbidden` unless ``actor`` holds ``permission`` (call it inside the action)."""
    if not actor.can(permission):
        raise Forbidden(f"{actor.name} ({actor.role.value}) may not {permission.value}")


def cli_actor() -> Actor:
    """The CLI's actor: the operating-system user, as admin (the audit log records the name)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        name = "unknown"
    return Actor(name=f"os:{name}", role=Role.ADMIN, via="cli")
