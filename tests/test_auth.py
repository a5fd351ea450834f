"""Sign-in, sessions, roles and the audit log: accounts, the app as each role, the CLI, the server."""

from __future__ import annotations

import os
import pty
import signal
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from select import select as select_fds

import pytest
import streamlit as st
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from cli import app as cli
from cli.server import exposure_warning, first_admin, sso_configured
from experiments.access import Actor, Forbidden, Role, cli_actor
from experiments.approvals import approve_launch, pending_launches, request_launch
from experiments.audit import Action, entries
from experiments.db import session_scope
from experiments.models import Base, Experiment, ExperimentStatus, User
from experiments.store import get_experiment, utcnow
from experiments.users import (
    SignInPolicy,
    SignInRefused,
    UserError,
    add_user,
    authenticate,
    count_users,
    get_user,
    reset_password,
    session_expired,
    set_disabled,
    set_role,
    sso_role,
)
from tests.helpers import add_customers, example_spec, store_spec
from tests.test_app import PASSWORD, add_role_users, demo, open_page, texts  # noqa: F401 - demo is a fixture
from tests.test_browser import free_port
from views.actions import build_send_lists, launch_now, record_download, save_draft

ROOT = Path(__file__).resolve().parents[1]
ADMIN = cli_actor()
PAGES_OF = {
    "viewer": {"overview", "experiments", "results"},
    "analyst": {"overview", "experiments", "results"},
    "operator": {"overview", "experiments", "results", "design"},
    "admin": {"overview", "experiments", "results", "design", "settings"},
}
ALL_PAGES = ["overview", "experiments", "design", "results", "settings"]


def audit(engine: Engine, *actions: Action) -> list:
    with session_scope(engine) as session:
        return entries(session, actions=actions)


# ---- accounts --------------------------------------------------------------------------------------

def test_passwords_are_salted_argon2_hashes(engine: Engine) -> None:
    add_user(engine, "wang", PASSWORD, Role.ANALYST, actor=ADMIN)
    add_user(engine, "li", PASSWORD, Role.VIEWER, actor=ADMIN)
    with session_scope(engine) as session:
        hashes = dict(session.execute(select(User.name, User.password_hash)).all())
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes.values())
    assert hashes["wang"] != hashes["li"]  # the same password, another salt
    assert authenticate(engine, "wang", PASSWORD) == Actor("wang", Role.ANALYST, "app")
    [entry] = audit(engine, Action.SIGN_IN)
    assert (entry.actor, entry.via) == ("wang", "app")


@pytest.mark.parametrize("name, password, problem", [("x", "short", "at least 8"), ("a/b", PASSWORD, "path separator")])
def test_weak_passwords_and_bad_names_are_refused(engine: Engine, name: str, password: str, problem: str) -> None:
    with pytest.raises(UserError, match=problem):
        add_user(engine, name, password, Role.VIEWER, actor=ADMIN)


def test_only_admins_manage_users(engine: Engine) -> None:
    operator = Actor("op", Role.OPERATOR, "app")
    with pytest.raises(Forbidden):
        add_user(engine, "mallory", PASSWORD, Role.ADMIN, actor=operator)
    add_user(engine, "op", PASSWORD, Role.OPERATOR, actor=ADMIN)
    with pytest.raises(Forbidden):
        set_role(engine, "op", Role.ADMIN, actor=operator)
    assert get_user(engine, "op").role == Role.OPERATOR and get_user(engine, "mallory") is None


def test_wrong_passwords_lock_the_account_until_the_lockout_ends(engine: Engine) -> None:
    add_user(engine, "wang", PASSWORD, Role.OPERATOR, actor=ADMIN)
    policy = SignInPolicy(lockout_failures=5, lockout=timedelta(minutes=15))
    now = utcnow()
    for _ in range(4):
        with pytest.raises(SignInRefused, match="wrong password"):
            authenticate(engine, "wang", "guess-guess", now=now, policy=policy)
    assert get_user(engine, "wang").failed_sign_ins == 4
    with pytest.raises(SignInRefused, match="locked until"):
        authenticate(engine, "wang", "guess-guess", now=now, policy=policy)
    with pytest.raises(SignInRefused, match="locked"):  # even the right password, while locked
        authenticate(engine, "wang", PASSWORD, now=now + timedelta(minutes=14), policy=policy)
    assert authenticate(engine, "wang", PASSWORD, now=now + timedelta(minutes=16), policy=policy).role == Role.OPERATOR
    assert get_user(engine, "wang").failed_sign_ins == 0 and get_user(engine, "wang").locked_until is None
    failures = audit(engine, Action.SIGN_IN_FAILED)
    assert len(failures) == 6 and {e.actor for e in failures} == {"wang"}
    assert [e.details["reason"] for e in failures][:2] == ["locked", "wrong password; locked until " +
                                                          f"{now + timedelta(minutes=15):%Y-%m-%d %H:%M} UTC"]


def test_unknown_and_disabled_users_are_refused_and_recorded(engine: Engine) -> None:
    with pytest.raises(SignInRefused, match="unknown user"):
        authenticate(engine, "nobody", PASSWORD)
    add_user(engine, "li", PASSWORD, Role.VIEWER, actor=ADMIN)
    set_disabled(engine, "li", True, actor=ADMIN)
    with pytest.raises(SignInRefused, match="disabled"):
        authenticate(engine, "li", PASSWORD)
    set_disabled(engine, "li", False, actor=ADMIN)
    assert authenticate(engine, "li", PASSWORD).name == "li"
    assert [(e.target, e.details["reason"]) for e in audit(engine, Action.SIGN_IN_FAILED)] == [
        ("li", "disabled"), ("nobody", "unknown user")]
    assert [e.action for e in audit(engine, Action.USER_DISABLE, Action.USER_ENABLE)] == ["user_enable", "user_disable"]


def test_sessions_end_when_idle_too_old_disabled_or_the_password_changes(engine: Engine,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    add_user(engine, "li", PASSWORD, Role.VIEWER, actor=ADMIN)
    monkeypatch.setenv("RECALL_SESSION_IDLE_MINUTES", "10")
    monkeypatch.setenv("RECALL_SESSION_MAX_HOURS", "2")
    policy = SignInPolicy.from_env()
    assert (policy.idle, policy.lifetime) == (timedelta(minutes=10), timedelta(hours=2))
    start = utcnow()
    user = get_user(engine, "li")
    assert session_expired(start, start, user, now=start + timedelta(minutes=9)) is None
    assert session_expired(start, start, user, now=start + timedelta(minutes=11)) == "idle"
    assert session_expired(start, start + timedelta(hours=2), user, now=start + timedelta(hours=2, minutes=1)) \
        == "session lifetime reached"
    reset_password(engine, "li", "a new password", actor=ADMIN)
    assert session_expired(start, start, get_user(engine, "li"), now=start) == "password changed"
    set_disabled(engine, "li", True, actor=ADMIN)
    assert session_expired(utcnow(), utcnow(), get_user(engine, "li")) == "account disabled or removed"
    monkeypatch.setenv("RECALL_SESSION_IDLE_MINUTES", "ten")
    with pytest.raises(ValueError, match="RECALL_SESSION_IDLE_MINUTES"):
        SignInPolicy.from_env()


def test_single_sign_on_maps_e_mail_addresses_to_roles(engine: Engine) -> None:
    rules = "wang@shop.cn=admin, *@growth.shop.cn=operator, *@shop.cn=viewer"
    assert sso_role(engine, "Wang@Shop.cn", rules) == Role.ADMIN
    assert sso_role(engine, "zhao@growth.shop.cn", rules) == Role.OPERATOR
    assert sso_role(engine, "li@shop.cn", rules) == Role.VIEWER
    assert sso_role(engine, "eve@elsewhere.com", rules) is None  # no rule: no access
    add_user(engine, "li@shop.cn", PASSWORD, Role.ANALYST, actor=ADMIN)  # an account of the same name decides
    assert sso_role(engine, "li@shop.cn", rules) == Role.ANALYST
    set_disabled(engine, "li@shop.cn", True, actor=ADMIN)
    assert sso_role(engine, "li@shop.cn", rules) is None
    with pytest.raises(ValueError, match="not a role"):
        sso_role(engine, "x@shop.cn", "*@shop.cn=boss")


# ---- the app as each role -------------------------------------------------------------------------

def navigable(at, page: str) -> bool:  # noqa: ANN001 - an AppTest
    """Whether the page is in the session's navigation (AppTest refuses to switch to any other)."""
    try:
        at.switch_page(f"views/{page}.py")
    except ValueError:
        return False
    return True


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {name: connection.scalar(select(func.count()).select_from(table))
                for name, table in Base.metadata.tables.items()}


def test_every_page_as_every_role_writes_nothing(demo: Engine) -> None:
    store_spec(demo, example_spec(name="a-draft"))
    before = row_counts(demo)
    for role, pages in PAGES_OF.items():
        for page in ALL_PAGES:
            at = open_page("overview", "en", role=role)
            assert navigable(at, page) == (page in pages), (role, page)
            if page in pages:
                at = open_page(page, "en", role=role, launch_confirm="a-draft")
                # the only red box a page may show is a verdict of harm (the demo's lively ¥10 breaches a guardrail)
                errors = [e.value for e in at.error if not e.value.startswith("Verdict: ")]
                assert at.title and not errors, (role, page, errors)
                downloads = [b.proto.label for b in at.get("download_button")]
                assert bool(downloads) == (page in ("results", "overview") and role != "viewer"), (role, page, downloads)
    assert row_counts(demo) == before


def test_the_database_url_and_the_audit_log_are_for_admins(demo: Engine, database_url: str) -> None:
    at = open_page("settings", "en", role="admin")
    assert at.code[0].value.startswith(database_url.split("://")[0])
    log = next(f.value for f in at.dataframe if "Action" in f.value.columns)
    assert {"user_add"} <= set(log["Action"]) and "os:" in log["Who"].iloc[0]
    for role in ("viewer", "analyst", "operator"):
        at = open_page("overview", "en", role=role)
        assert not at.code and "sqlite" not in texts(at) and "postgresql" not in texts(at)


def test_signing_in_through_the_form(demo: Engine) -> None:
    at = open_page("overview", "en", role=None)
    assert at.title[0].value == "Recall Lab · sign in" and not at.metric and not at.dataframe
    at.text_input(key="sign_in_name").set_value("operator")
    at.text_input(key="sign_in_password").set_value("not the password")
    at.get("form_submit_button")[0].click().run()
    assert "Sign-in refused" in at.warning[0].value and at.title[0].value == "Recall Lab · sign in"
    at.text_input(key="sign_in_name").set_value("operator")
    at.text_input(key="sign_in_password").set_value(PASSWORD)
    at.get("form_submit_button")[0].click().run()
    assert at.title[0].value == "Recall vs the natural return rate" and navigable(at, "design")
    at.switch_page("views/overview.py").run()
    at.button(key="sign_out").click().run()
    assert at.title[0].value == "Recall Lab · sign in"
    assert [e.action for e in audit(demo, Action.SIGN_IN, Action.SIGN_IN_FAILED, Action.SIGN_OUT)] == [
        "sign_out", "sign_in", "sign_in_failed"]


def test_a_disabled_users_open_session_ends_at_the_next_click(demo: Engine) -> None:
    at = open_page("overview", "en", role="analyst")
    set_disabled(demo, "analyst", True, actor=ADMIN)
    at.run()
    assert at.title[0].value == "Recall Lab · sign in" and "session ended" in at.warning[0].value


def test_an_anonymous_visitor_sees_no_experiment_data(demo: Engine) -> None:
    at = open_page("overview", "en", role=None)
    content = texts(at)
    assert "demo-" not in content and not at.metric and not at.dataframe and not at.get("vega_lite_chart")
    assert not navigable(at, "results") and "recall user add" not in content  # accounts exist: no first-admin hint


def test_a_fresh_install_says_how_to_create_the_first_admin(engine: Engine) -> None:
    st.cache_data.clear()
    st.cache_resource.clear()
    at = open_page("overview", "en", role=None)
    assert at.code[0].value == "recall user add NAME --role admin" and "first admin" in at.info[0].value


def test_refused_actions_whatever_the_page_shows(demo: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The actions behind the buttons check the role themselves: a forged click is still refused."""
    viewer, analyst = Actor("viewer", Role.VIEWER, "app"), Actor("analyst", Role.ANALYST, "app")
    with pytest.raises(Forbidden):
        record_download(demo, "demo-winback-2026", "md", "# report", actor=viewer)
    for action in (lambda: save_draft(demo, example_spec(name="forged"), actor=analyst),
                   lambda: launch_now(demo, "demo-winback-2026", actor=analyst),
                   lambda: build_send_lists(demo, "demo-winback-2026", actor=analyst)):
        with pytest.raises(Forbidden):
            action()
    record_download(demo, "demo-winback-2026", "md", "# report", actor=analyst)
    [entry] = audit(demo, Action.DOWNLOAD)
    assert (entry.actor, entry.details["kind"], entry.details["bytes"]) == ("analyst", "md", 8)
    assert len(entry.details["sha256"]) == 64

    operator = Actor("operator", Role.OPERATOR, "app")
    save_draft(demo, example_spec(name="needs-two"), actor=operator)
    save_draft(demo, example_spec(name="needs-two", hypothesis="edited"), actor=operator)
    assert [e.action for e in audit(demo, Action.EXPERIMENT_CREATE, Action.EXPERIMENT_EDIT)] == [
        "experiment_edit", "experiment_create"]
    monkeypatch.setenv("RECALL_LAUNCH_APPROVAL", "1")
    with pytest.raises(Forbidden, match="second person"):
        launch_now(demo, "needs-two", actor=operator)


def test_a_launch_needs_a_second_persons_approval(engine: Engine) -> None:
    add_customers(engine, [f"C{i:03d}" for i in range(40)])
    store_spec(engine, example_spec(name="four-eyes"))
    wang, li = Actor("wang", Role.OPERATOR, "app"), Actor("li", Role.ADMIN, "app")
    with pytest.raises(Forbidden):
        request_launch(engine, "four-eyes", actor=Actor("zhao", Role.ANALYST, "app"))
    request = request_launch(engine, "four-eyes", actor=wang)
    assert request.audience == 40 and pending_launches(engine) == [request]
    with pytest.raises(ValueError, match="already waiting"):
        request_launch(engine, "four-eyes", actor=wang)
    with pytest.raises(Forbidden, match="second person"):
        approve_launch(engine, request.id, actor=wang)
    assert approve_launch(engine, request.id, actor=li).newly_assigned == 40
    with session_scope(engine) as session:
        assert get_experiment(session, "four-eyes").status == ExperimentStatus.RUNNING
    assert pending_launches(engine) == []
    assert [(e.actor, e.action) for e in audit(engine, Action.LAUNCH_REQUEST, Action.LAUNCH_APPROVE, Action.LAUNCH)] \
        == [("li", "launch_approve"), ("li", "launch"), ("wang", "launch_request")]


def test_editing_a_requested_draft_withdraws_the_request(engine: Engine) -> None:
    add_customers(engine, ["C1", "C2"])
    operator = Actor("wang", Role.OPERATOR, "app")
    save_draft(engine, example_spec(name="changed"), actor=operator)
    request = request_launch(engine, "changed", actor=operator)
    save_draft(engine, example_spec(name="changed", hypothesis="something else"), actor=operator)
    assert pending_launches(engine) == []
    with pytest.raises(ValueError, match="no launch request"):
        approve_launch(engine, request.id, actor=Actor("li", Role.ADMIN, "app"))
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Experiment)) == 1


# ---- the CLI -----------------------------------------------------------------------------------------

runner = CliRunner()


def test_user_commands_read_passwords_from_standard_input(engine: Engine, database_url: str) -> None:
    def run(*args: str, input: str | None = None):  # noqa: ANN202, A002
        return runner.invoke(cli, [*args, "--db", database_url], input=input)

    assert run("user", "add", "wang", "--role", "operator", input=f"{PASSWORD}\n").exit_code == 0
    assert authenticate(engine, "wang", PASSWORD).role == Role.OPERATOR
    result = run("user", "add", "wang", "--role", "viewer", input=f"{PASSWORD}\n")
    assert result.exit_code == 1 and "already exists" in result.output
    assert run("user", "add", "li", "--role", "viewer", input="\n").exit_code == 1  # no password given
    assert run("user", "role", "wang", "admin").exit_code == 0
    assert run("user", "reset-password", "wang", input="brand new secret\n").exit_code == 0
    assert authenticate(engine, "wang", "brand new secret").role == Role.ADMIN
    assert run("user", "disable", "wang").exit_code == 0
    listed = run("user", "list").output
    assert "wang" in listed and "admin" in listed and "disabled" in listed
    assert run("user", "enable", "wang").exit_code == 0
    result = run("audit", "--action", "user_role", "--format", "json")
    assert result.exit_code == 0 and '"after": "admin"' in result.output and '"actor": "os:' in result.output
    assert "user_add" in run("audit", "--target", "wang", "--limit", "10").output


# ---- the server ---------------------------------------------------------------------------------------

def test_exposing_the_app_without_sign_in_warns() -> None:
    assert exposure_warning("127.0.0.1", users=0, sso=False) is None
    assert "no sign-in is configured" in exposure_warning("0.0.0.0", users=0, sso=False)
    assert exposure_warning("0.0.0.0", users=1, sso=False) is None
    assert exposure_warning("0.0.0.0", users=0, sso=True) is None


def test_sso_is_configured_by_an_auth_section(tmp_path: Path) -> None:
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('[auth]\nredirect_uri = "http://localhost:8501/oauth2callback"\n')
    assert sso_configured(tmp_path)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _read_until(fd: int, text: str, seen: bytearray, timeout: float = 60) -> None:
    """Read the terminal's output into ``seen`` until ``text`` appears."""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        if time.monotonic() > deadline:
            pytest.fail(f"no {text!r} in {seen.decode(errors='replace')!r}")
        if select_fds([fd], [], [], 0.5)[0]:
            seen += os.read(fd, 4096)


def test_a_first_start_at_a_terminal_asks_for_the_first_admin_then_serves_locally_until_stopped(
        engine: Engine, database_url: str) -> None:
    """`make app` on a fresh install: a terminal session, as a newcomer has it (a pseudo-terminal here)."""
    port = free_port()
    env = {**os.environ, "RECALL_DATABASE_URL": database_url, "RECALL_NO_DEMO": "1", "PYTHONPATH": str(ROOT)}
    pid, fd = pty.fork()
    if pid == 0:  # the child: `recall app` with the pseudo-terminal as its terminal
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-c", "import cli; cli.main()", "app", "--port", str(port)], env)
    seen = bytearray()
    try:
        _read_until(fd, "admin name", seen)
        os.write(fd, b"wang\n")
        _read_until(fd, "password:", seen)
        os.write(fd, f"{PASSWORD}\n".encode())
        _read_until(fd, "password again:", seen)
        os.write(fd, f"{PASSWORD}\n".encode())
        _read_until(fd, "created", seen)
        assert PASSWORD.encode() not in seen  # never echoed
        assert authenticate(engine, "wang", PASSWORD).role == Role.ADMIN
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the app did not start")
        [server] = _children(pid)
        command = Path(f"/proc/{server}/cmdline").read_text().split("\0")
        assert command[command.index("--server.address") + 1] == "127.0.0.1"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            assert time.monotonic() < deadline, "recall app did not stop"
            if select_fds([fd], [], [], 0.2)[0]:
                try:
                    os.read(fd, 4096)
                except OSError:
                    pass
        pid = 0
        assert not Path(f"/proc/{server}").exists()  # the server stopped with it
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def test_without_a_terminal_the_first_admin_command_is_shown(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    with open(os.devnull) as no_terminal:
        monkeypatch.setattr(sys, "stdin", no_terminal)
        first_admin(engine)
    assert "recall user add NAME --role admin" in capsys.readouterr().err
    assert count_users(engine) == 0
