"""``recall app``: the Streamlit app, ready for a newcomer in one command.

Before the server starts (never while a page is drawn): the database is migrated, and a fresh install
asks for the first admin at the terminal, or, without a terminal, says the one command that creates
it. An empty database gets the demo campaign (unless ``RECALL_NO_DEMO=1``), built by a child process
while the server starts, one committed campaign at a time with its analysis run stored, so the first
pages show data within seconds and a progress bar until it is complete; a demo whose build was
stopped half-way is made again at the next start. The server listens on
127.0.0.1 unless ``--host`` says otherwise, and stops when ``recall app`` is stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Annotated

import typer

from cli.common import DbOption, err, fail, mask_url, out
from experiments.config import PROJECT_ROOT, database_url

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
FIRST_ADMIN_COMMAND = "recall user add NAME --role admin"


def sso_configured(folder: Path | None = None) -> bool:
    """Whether Streamlit's OIDC sign-in is configured: an [auth] section in .streamlit/secrets.toml
    (of the folder the server starts in, or of the home directory), as Streamlit reads it."""
    for path in ((folder or Path.cwd()) / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml"):
        try:
            if "auth" in tomllib.loads(path.read_text(encoding="utf-8")):
                return True
        except (OSError, tomllib.TOMLDecodeError):
            continue
    return False


def exposure_warning(host: str, users: int, sso: bool) -> str | None:
    """The warning for a server other machines can reach while nobody can sign in to it."""
    if host in LOCAL_HOSTS or users or sso:
        return None
    return (f"--host {host} exposes the app to other machines, and no sign-in is configured yet (no users, no "
            f"single sign-on): create an admin first ({FIRST_ADMIN_COMMAND})")


def demo_customers() -> int:
    return int(os.environ.get("RECALL_DEMO_CUSTOMERS", "100000"))


def database_is_empty(engine) -> bool:  # noqa: ANN001 - an Engine
    from sqlalchemy import func, select

    from experiments.models import Experiment

    with engine.connect() as connection:
        return not connection.scalar(select(func.count()).select_from(Experiment))


def demo_wanted(engine) -> bool:  # noqa: ANN001 - an Engine
    """Build the demo at this start: the database is empty, or holds a demo whose build was stopped
    half-way (a first start interrupted), which the build then removes and makes again."""
    from experiments.demo import PARTIAL, demo_state

    return database_is_empty(engine) or demo_state(engine) == PARTIAL


def store_demo_runs(engine, done: int, total: int) -> None:  # noqa: ANN001 - an Engine
    """The demo builder's stored runs, written before its progress says a campaign is ready, so the app
    reads them instead of computing: the newest campaign's after each one, every campaign's at the end
    (the data version moves with each campaign, and a later campaign's outcomes change earlier reports)."""
    from sqlalchemy import select

    from analysis.runs import stored_reports
    from experiments.demo import DEMO_NAMES
    from experiments.models import Experiment

    with engine.connect() as connection:
        names = list(connection.scalars(select(Experiment.name).where(Experiment.name.in_(DEMO_NAMES))
                                        .order_by(Experiment.id)))
    if names:
        stored_reports(engine, names if done == total else names[-1:])


def write_progress(path: Path, **state: object) -> None:
    """The build's state for the app (JSON, replaced atomically: a reader never sees half a file)."""
    draft = path.with_suffix(".tmp")
    draft.write_text(json.dumps(state), encoding="utf-8")
    draft.replace(path)


def build_demo_in_background() -> None:
    """The child process of :func:`start_demo_build`: build, reporting progress to RECALL_DEMO_PROGRESS."""
    from experiments.db import open_engine
    from experiments.demo import build_demo

    path = Path(os.environ["RECALL_DEMO_PROGRESS"])
    engine = open_engine(database_url())
    try:
        def progress(done: int, total: int) -> None:
            store_demo_runs(engine, done, total)
            write_progress(path, done=done, total=total)

        build_demo(engine, customers=demo_customers(), progress=progress)
    except Exception as exc:  # the app shows it; the server keeps running on what was built
        write_progress(path, done=0, total=0, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        engine.dispose()


def start_demo_build(url: str, progress: Path) -> subprocess.Popen:
    """First start: build the demo in a child process while the server starts. Each campaign is
    committed as it is done, and the app shows a progress bar and every campaign already built."""
    write_progress(progress, done=0, total=4)
    env = {**os.environ, "RECALL_DATABASE_URL": url, "RECALL_DEMO_PROGRESS": str(progress),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-c", "from cli.server import build_demo_in_background as b; b()"],
                            env=env, cwd=PROJECT_ROOT)


def first_admin(engine) -> None:  # noqa: ANN001 - an Engine
    """A fresh install: ask for the first admin at a terminal, else say how to create one."""
    import getpass

    from cli.users import read_password
    from experiments.access import Role, cli_actor
    from experiments.users import UserError, add_user, count_users

    if count_users(engine):
        return
    if not sys.stdin.isatty():
        err.print(f"[yellow]no users yet:[/] create the first admin with  {FIRST_ADMIN_COMMAND}  "
                  "(the sign-in page says so too)", highlight=False, soft_wrap=True)
        return
    out.print("No one can sign in yet. Create the first admin (you can add others later in Settings or "
              "with recall user add).")
    default = getpass.getuser()
    name = typer.prompt("admin name", default=default)
    try:
        add_user(engine, name, read_password(), Role.ADMIN, actor=cli_actor())
    except UserError as exc:
        fail(f"{exc}; run recall app again, or {FIRST_ADMIN_COMMAND}")
    out.print(f"admin [bold]{name}[/] created: sign in with this name and password")


def serve(command: list[str], env: dict[str, str]) -> int:
    """Run the server as a child; SIGINT/SIGTERM to us reach it, and it never outlives us."""
    child = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def run_app(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to listen on: 127.0.0.1 (this machine only) by default; "
                                           "0.0.0.0 serves every interface.")] = "127.0.0.1",
    db: DbOption = None,
) -> None:
    """Open the Streamlit app (first start: builds the demo and asks for the first admin)."""
    from experiments.db import open_engine
    from experiments.users import count_users

    url = database_url(db)
    engine = open_engine(url)
    first_admin(engine)  # first: a question at the terminal should not wait behind the demo
    build_demo = os.environ.get("RECALL_NO_DEMO") != "1" and demo_wanted(engine)
    if warning := exposure_warning(host, count_users(engine), sso_configured()):
        err.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    engine.dispose()
    out.print(f"Recall Lab on http://{host}:{port} · database {mask_url(url)}", highlight=False)
    env = {**os.environ, "RECALL_DATABASE_URL": url}
    command = [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"), "--server.port", str(port),
               "--server.address", host, "--browser.gatherUsageStats", "false"]
    if not build_demo:
        raise typer.Exit(serve(command, env))
    with tempfile.TemporaryDirectory(prefix="recall-demo-") as folder:
        progress = Path(folder) / "progress.json"
        out.print(f"first start: building the demo campaign ({demo_customers():,} simulated customers) while "
                  "the app starts; its pages show each campaign as it is ready")
        builder = start_demo_build(url, progress)
        try:
            code = serve(command, env | {"RECALL_DEMO_PROGRESS": str(progress)})
        finally:
            if builder.poll() is None:
                builder.terminate()
                builder.wait()
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("app")(run_app)
