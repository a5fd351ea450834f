"""Roles, the audit log's append-only rule, and the identifier rules every way in shares."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from experiments.access import Actor, Forbidden, Permission, Role, cli_actor, permissions, require
from experiments.audit import Action, entries, record
from experiments.db import session_scope
from experiments.identifiers import InvalidIdentifier, check_name, normalise_customer_id


def test_each_role_holds_the_permissions_of_the_roles_below() -> None:
    assert permissions(Role.VIEWER) == {Permission.VIEW}
    assert permissions(Role.VIEWER) < permissions(Role.ANALYST) < permissions(Role.OPERATOR) < permissions(Role.ADMIN)
    assert Permission.IMPORT in permissions(Role.ANALYST) and Permission.LAUNCH not in permissions(Role.ANALYST)
    assert Permission.LAUNCH in permissions(Role.OPERATOR) and Permission.MANAGE_USERS not in permissions(Role.OPERATOR)
    assert permissions(Role.ADMIN) == set(Permission)


def test_require_refuses_what_the_role_lacks() -> None:
    viewer = Actor("li", Role.VIEWER, "app")
    require(viewer, Permission.VIEW)
    with pytest.raises(Forbidden, match="li \\(viewer\\) may not launch"):
        require(viewer, Permission.LAUNCH)
    assert cli_actor().role == Role.ADMIN and cli_actor().name.startswith("os:")


def test_the_audit_log_is_append_only(engine: Engine) -> None:
    with session_scope(engine) as session:
        record(session, cli_actor(), Action.IMPORT_EVENTS, "events.csv", rows=3, sha256="ab")
    with session_scope(engine) as session:
        [entry] = entries(session)
    assert (entry.action, entry.target, entry.details) == ("import_events", "events.csv", {"rows": 3, "sha256": "ab"})
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    with session_scope(engine) as session:
        assert entries(session)[0].actor == entry.actor


@pytest.mark.parametrize("raw, stored", [(" d0000021 ", "d0000021"), ("\u3000D1\t", "D1"), ("Ａ1", "Ａ1"),
                                         ("e\u0301", "\u00e9")])
def test_customer_ids_are_normalised_the_same_way_everywhere(raw: str, stored: str) -> None:
    assert normalise_customer_id(raw) == stored


@pytest.mark.parametrize("raw, reason", [("", "empty"), ("a\x00b", "control character"), ("x" * 65, "longer than 64")])
def test_customer_ids_that_cannot_be_stored(raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=reason):
        normalise_customer_id(raw)


@pytest.mark.parametrize("raw, reason", [("/../../escaped", "path separator"), ("a\\b", "path separator"),
                                         ("..", "not a name"), ("a\nb", "control character"),
                                         ("召" * 41, "123 bytes"), ("  ", "empty")])
def test_names_that_would_break_a_file_name_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=reason):
        check_name(raw, "variant label")


def test_a_name_that_fits_is_stored_nfc_and_stripped() -> None:
    assert check_name(" 召回" * 1 + "a" * 10 + " ") == "召回" + "a" * 10
    assert check_name("召" * 40) == "召" * 40  # 120 bytes: the limit
