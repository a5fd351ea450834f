"""The ``recall`` command line: design → assign → send list → import outcomes → report."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Column, Table

from experiments.config import PROJECT_ROOT, database_url, to_stored_utc

app = typer.Typer(help="Recall Lab: randomized experiments for user-recall (win-back) campaigns.", no_args_is_help=True)
experiment_app = typer.Typer(help="Create and inspect experiments.", no_args_is_help=True)
import_app = typer.Typer(help="Import outcomes: events, or per-customer results of a test run elsewhere.",
                         no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
plan_app = typer.Typer(help="Candidate tests ranked by ICE; a plan becomes a draft experiment.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")
app.add_typer(plan_app, name="plan")
app.add_typer(import_app, name="import")
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $RECALL_DATABASE_URL, else the SQLite file recall.db)."),
]


class RelativeCi(str, Enum):
    delta = "delta"
    fieller = "fieller"


class ReportFormat(str, Enum):
    markdown = "markdown"
    json = "json"


class Lang(str, Enum):
    zh = "zh"
    en = "en"


class CorrectionOption(str, Enum):
    holm = "holm"
    bh = "bh"
    bonferroni = "bonferroni"
    none = "none"


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def engine_for(db: str | None):  # noqa: ANN201 - sqlalchemy.Engine, imported lazily for a fast --help
    from experiments.db import open_engine

    return open_engine(db)


def parse_local_time(value: str | None) -> datetime | None:
    """An ISO date/time in the configured time zone (unless it has an offset), as naive UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--as-of: not an ISO date or date-time: {value!r}")
    return to_stored_utc(parsed)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Apply all migrations (the app and every command also do this on first use)."""
    from experiments.db import current_revision, make_engine, upgrade

    engine = make_engine(db)
    upgrade(engine)
    out.print(f"database at revision {current_revision(engine)}: {mask_url(database_url(db))}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument("base"), db: DbOption = None) -> None:
    """Revert migrations down to REVISION (default: base, i.e. drop every table)."""
    from experiments.db import downgrade, make_engine

    downgrade(make_engine(db), revision)
    out.print(f"database downgraded to {revision}")


def mask_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@experiment_app.command("create")
def experiment_create(spec: Path, db: DbOption = None) -> None:
    """Validate SPEC (a TOML file) and store it as a draft experiment."""
    from experiments.db import session_scope
    from experiments.spec import SpecError, load_spec
    from experiments.store import DesignLocked, create_experiment

    try:
        parsed = load_spec(spec)
        with session_scope(engine_for(db)) as session:
            experiment = create_experiment(session, parsed)
            status = experiment.status.value
    except (SpecError, DesignLocked) as exc:
        fail(str(exc))
    out.print(f"experiment [bold]{parsed.name}[/] stored ({status}), {len(parsed.variants)} variants, "
              f"control: {parsed.control.name}")


@experiment_app.command("list")
def experiment_list(db: DbOption = None) -> None:
    """List experiments, newest first."""
    from experiments.db import session_scope
    from experiments.store import list_experiments

    table = Table("status", "source", "cohort", "variants", "created (UTC)")
    table.columns.insert(0, Column("name", no_wrap=True))
    with session_scope(engine_for(db)) as session:
        for e in list_experiments(session):
            table.add_row(e.name, e.status.value, e.source.value, e.cohort, str(len(e.variants)),
                          e.created_at.isoformat(timespec="minutes"))
    out.print(table)


@plan_app.command("list")
def plan_list(plans: Path, db: DbOption = None) -> None:
    """Rank the plans in PLANS (TOML) by ICE score, with the audience each would reach today."""
    from experiments.db import session_scope
    from experiments.planning import audience, load_plans, tier_bounds
    from experiments.spec import SpecError
    from experiments.store import utcnow

    try:
        book = load_plans(plans)
    except SpecError as exc:
        fail(str(exc))
    now = utcnow()
    table = Table("rank", Column("plan", no_wrap=True), "cohort", "tier", "channel", "coupon", "I", "C", "E", "ICE",
                  "audience")
    with session_scope(engine_for(db)) as session:
        bounds = tier_bounds(session.connection(), now)
        for rank, p in enumerate(book.ranked(), 1):
            table.add_row(str(rank), p.name, p.cohort, p.value_tier, p.channel.value, f"¥{p.coupon}", str(p.impact),
                          str(p.confidence), str(p.ease), f"{p.ice:.1f}",
                          f"{audience(session.connection(), p, now, bounds):,}")
    out.print(table)


@plan_app.command("draft")
def plan_draft(
    plans: Path,
    name: Annotated[str, typer.Argument(help="The plan to turn into a draft experiment.")],
    holdout: Annotated[float, typer.Option(min=0.01, max=0.5, help="No-contact holdout share.")] = 0.1,
    db: DbOption = None,
) -> None:
    """Store plan NAME from PLANS as a draft experiment (holdout + the plan's variant)."""
    from experiments.db import session_scope
    from experiments.planning import draft_spec, load_plans, tier_bounds, tier_filter
    from experiments.spec import SpecError
    from experiments.store import DesignLocked, create_experiment, utcnow

    try:
        plan = load_plans(plans).get(name)
        with session_scope(engine_for(db)) as session:
            spec = draft_spec(plan, holdout=holdout,
                              filter=tier_filter(plan, tier_bounds(session.connection(), utcnow())))
            create_experiment(session, spec)
    except (SpecError, DesignLocked, KeyError) as exc:
        fail(str(exc).strip("'\""))
    out.print(f"draft experiment [bold]{spec.name}[/] stored: holdout {holdout:.0%}, cohort {spec.cohort}"
              + (f", filter {spec.filter}" if spec.filter else ""))


@app.command()
def assign(
    name: str,
    as_of: Annotated[str | None, typer.Option(help="Reference time for the cohort and attribution window "
                                                   "(ISO; local time unless an offset is given). Default: now.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on stderr).")] = True,
    db: DbOption = None,
) -> None:
    """Assign the target customers of NAME to variants (deterministic; nobody already assigned moves)."""
    from experiments.assignment import assign as run_assign
    from experiments.store import NotFound

    try:
        summary = run_assign(engine_for(db), name, as_of=parse_local_time(as_of), progress=progress)
    except (NotFound, ValueError) as exc:
        fail(str(exc))
    out.print(f"{summary.newly_assigned:,} customers newly assigned in [bold]{name}[/]")
    for variant, count in summary.per_variant.items():
        out.print(f"  {variant}: {count:,}")


@app.command()
def sendlist(
    name: str,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the CSV files.")],
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on stderr).")] = True,
    db: DbOption = None,
) -> None:
    """Write one CSV per contacted variant (never the control, never unsubscribed customers)."""
    from experiments.sendlist import write_send_lists
    from experiments.store import NotFound

    try:
        files = write_send_lists(engine_for(db), name, out_dir, progress=progress)
    except NotFound as exc:
        fail(str(exc))
    for f in files:
        notes = [f"{f.suppressed_unsubscribed:,} unsubscribed left out"] if f.suppressed_unsubscribed else []
        notes += [f"{f.held_by_caps:,} touches held back by frequency caps"] if f.held_by_caps else []
        out.print(f"{f.path}: {f.rows:,} touches" + (f" ({'; '.join(notes)})" if notes else ""))


def _import_outcome(result) -> None:  # noqa: ANN001 - experiments.importer.ImportResult
    if result.already_imported:
        out.print(f"{result.file}: already imported, nothing changed")
        return
    skipped = f", {result.skipped_duplicates:,} already present" if result.skipped_duplicates else ""
    target = f" into experiment {result.experiment}" if result.experiment else ""
    out.print(f"{result.file}: {result.rows:,} rows, {result.inserted:,} inserted{skipped}{target}")
    if result.late_unsubscribes:
        err.print(f"[yellow]warning:[/] {result.late_unsubscribes:,} send(s) were scheduled after the customer had "
                  "already unsubscribed: these unsubscribes arrived late", highlight=False, soft_wrap=True)


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()] if value else []


@import_app.command("events")
def import_events(
    file: Path,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on stderr).")] = True,
    db: DbOption = None,
) -> None:
    """Import events (customer_id, event_type, occurred_at, value) from FILE.csv, atomically."""
    from experiments.importer import ImportFailed
    from experiments.importer import import_events as run_import

    try:
        _import_outcome(run_import(engine_for(db), file, progress=progress))
    except ImportFailed as exc:
        fail(str(exc))


@import_app.command("results")
def import_results(
    file: Path,
    experiment: Annotated[str, typer.Option(help="Name of the experiment to create.")],
    variant_column: Annotated[str, typer.Option(help="Column holding each customer's variant label.")],
    control: Annotated[str, typer.Option(help="Label of the no-contact control.")],
    metrics: Annotated[str, typer.Option(help="Comma-separated outcome columns, e.g. visit,conversion,spend.")],
    id_column: Annotated[str | None, typer.Option(help="Customer id column (default: the row number).")] = None,
    covariates: Annotated[str | None, typer.Option(help="Comma-separated pre-period covariate columns.")] = None,
    segments: Annotated[str | None, typer.Option(help="Comma-separated segment columns.")] = None,
    shares: Annotated[str | None, typer.Option(help="Designed shares, e.g. 'A=0.45,B=0.45,Control=0.1' "
                                                    "(default: equal).")] = None,
    channel: Annotated[str | None, typer.Option(help="Channel the contacted variants used, for costs.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on stderr).")] = True,
    db: DbOption = None,
) -> None:
    """Import per-customer results of a test run elsewhere as a new experiment."""
    from experiments.importer import ImportFailed
    from experiments.importer import import_results as run_import

    parsed_shares = None
    if shares:
        try:
            parsed_shares = {k.strip(): float(v) for k, v in (p.split("=", 1) for p in _split(shares))}
        except ValueError:
            fail(f"--shares: expected LABEL=SHARE pairs separated by commas, got {shares!r}")
    try:
        result = run_import(
            engine_for(db), file, experiment=experiment, variant_column=variant_column, control=control,
            metrics=_split(metrics), id_column=id_column, covariates=_split(covariates),
            segments=_split(segments), shares=parsed_shares, channel=channel, progress=progress,
        )
    except ImportFailed as exc:
        fail(str(exc))
    _import_outcome(result)


@app.command()
def report(
    name: str,
    format: Annotated[ReportFormat, typer.Option("--format", "-f")] = ReportFormat.markdown,
    correction: Annotated[CorrectionOption, typer.Option(help="Multiple-testing correction.")] = CorrectionOption.holm,
    alpha: Annotated[float, typer.Option(min=1e-6, max=0.5)] = 0.05,
    lang: Annotated[Lang, typer.Option(help="Language of the Markdown report.")] = Lang.zh,
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Write to a file instead of stdout.")] = None,
    sequential: Annotated[bool, typer.Option(help="Add always-valid intervals for monitoring a running test.")] = False,
    cuped: Annotated[bool, typer.Option(help="Add uplifts adjusted for pre-period covariates (CUPED / Lin).")] = False,
    bayesian: Annotated[bool, typer.Option(help="Add the chance to beat the control and the expected loss.")] = False,
    relative_ci: Annotated[RelativeCi, typer.Option(
        help="Interval of the relative uplift: delta (log ratio) or fieller (unbounded when the control "
             "mean is not clearly above 0).")] = RelativeCi.delta,
    guardrail_margin: Annotated[list[str] | None, typer.Option(
        help="Tolerated increase of a guardrail rate, e.g. unsubscribed=0.005 (repeatable).")] = None,
    segments: Annotated[str | None, typer.Option(
        help="Segment dimensions, comma-separated (e.g. cohort,rfm_tier), or none; default: all.")] = None,
    cap: Annotated[float | None, typer.Option(
        min=0.5, max=0.9999, help="Cap amounts (revenue) at this quantile of the positive values, e.g. 0.99.")] = None,
    db: DbOption = None,
) -> None:
    """Significance report of NAME: uplift over the natural return rate, CIs, p-values, SRM, ROI."""
    from analysis.render import render_markdown
    from analysis.report import build_report
    from analysis.tables import SourceOutOfMemory
    from experiments.store import NotFound

    try:
        margins = {}
        for item in guardrail_margin or []:
            metric, _, value = item.partition("=")
            try:
                margins[metric.strip()] = float(value)
            except ValueError:
                fail(f"--guardrail-margin: expected METRIC=RATE such as unsubscribed=0.005, got {item!r}")
        result = build_report(engine_for(db), name, alpha=alpha, correction=correction.value,
                              guardrail_margins=margins, sequential=sequential,
                              cuped=cuped, bayesian=bayesian, relative_ci=relative_ci.value,
                              segments=None if segments is None else
                              [d.strip() for d in segments.split(",") if d.strip() and d.strip() != "none"],
                              cap=cap)
    except (NotFound, ValueError, SourceOutOfMemory) as exc:
        fail(str(exc))
    text = result.to_json() if format == ReportFormat.json else render_markdown(result, lang=lang.value)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        out.print(f"report written to {output}")
    else:
        sys.stdout.write(text + "\n")


class MetricType(str, Enum):
    rate = "rate"
    mean = "mean"


@app.command()
def power(
    baseline: Annotated[float, typer.Option(help="Natural return rate of the cohort (rate, e.g. 0.08) or the "
                                                 "control's mean (mean, e.g. revenue 6.5 ¥ per customer).")],
    metric: Annotated[MetricType, typer.Option(help="rate (returned, ordered…) or mean (revenue…).")] = MetricType.rate,
    sd: Annotated[float | None, typer.Option(help="Per-customer standard deviation (mean metrics only).")] = None,
    mde_rel: Annotated[float | None, typer.Option(help="Smallest uplift worth detecting, relative (0.1 = +10%).")] = None,
    mde_abs: Annotated[float | None, typer.Option(help="…or absolute (0.01 = one percentage point).")] = None,
    customers: Annotated[int | None, typer.Option(
        help="Instead of a sample size: the customers available; prints the minimum detectable uplift.")] = None,
    holdout: Annotated[float, typer.Option(min=0.01, max=0.9, help="Share of the no-contact control.")] = 0.1,
    variants: Annotated[int, typer.Option(min=1, max=20, help="Contacted variants (share the rest equally).")] = 1,
    alpha: Annotated[float, typer.Option(min=1e-6, max=0.5)] = 0.05,
    power_: Annotated[float, typer.Option("--power", min=0.5, max=0.999)] = 0.8,
    eligible_per_day: Annotated[float | None, typer.Option(help="Newly eligible customers a day: prints the duration.")] = None,
    channel: Annotated[str, typer.Option(help="Channel of the contacted arms, for the cost.")] = "sms",
    coupon: Annotated[float, typer.Option(min=0, help="Coupon face value in ¥.")] = 0.0,
    redemption_rate: Annotated[float, typer.Option(min=0, max=1, help="Expected coupon redemption rate.")] = 0.0,
) -> None:
    """Plan a test: customers needed (or the minimum detectable uplift), duration and cost in ¥.

    Each variant is compared with the control at α / variants (Bonferroni), as the report's Holm
    correction never needs more; see docs/statistics/power.md."""
    from analysis import power as planning
    from experiments.catalog import DEFAULT_CHANNEL_COSTS, Channel

    try:
        unit_cost = float(DEFAULT_CHANNEL_COSTS[Channel(channel)])
    except ValueError:
        fail(f"--channel: unknown channel {channel!r}; choose one of {', '.join(c.value for c in Channel)}")
    if metric == MetricType.mean and sd is None:
        fail("--sd: a mean metric needs the per-customer standard deviation (e.g. from last month's revenue)")
    share = (1 - holdout) / variants
    table = Table("", Column("", justify="right"), show_header=False)
    try:
        if customers is not None:
            n_control, n_variant = customers * holdout, customers * share
            if metric == MetricType.rate:
                mde = planning.minimum_detectable_effect(baseline, n_control, n_variant, alpha, power_,
                                                         variants=variants)
            else:
                mde = planning.minimum_detectable_effect_means(baseline, sd, n_control, n_variant, alpha, power_,
                                                               variants=variants)
            table.add_row("customers (control / each variant)", f"{n_control:,.0f} / {n_variant:,.0f}")
            table.add_row("minimum detectable uplift (absolute)", f"{mde.mde_abs:+.4g}")
            table.add_row("minimum detectable uplift (relative)", f"{mde.mde_rel:+.1%}")
            table.add_row("α per comparison", f"{mde.alpha_used:.4g}")
            n_contacted = customers - round(n_control)
        else:
            if (mde_rel is None) == (mde_abs is None):
                fail("give exactly one of --mde-rel and --mde-abs (or --customers for the detectable uplift)")
            if metric == MetricType.rate:
                plan = planning.sample_size_proportions(baseline, mde_abs, mde_rel, alpha, power_, holdout, variants)
            else:
                plan = planning.sample_size_means(baseline, sd, mde_abs, mde_rel, alpha, power_, holdout, variants)
            table.add_row("control (no contact)", f"{plan.n_control:,}")
            table.add_row(f"each contacted variant (× {variants})", f"{plan.n_variant:,}")
            table.add_row("customers in all", f"{plan.n_total:,}")
            table.add_row("baseline → target", f"{plan.baseline:.4g} → {plan.target:.4g}")
            table.add_row("α per comparison", f"{plan.alpha_used:.4g}")
            n_contacted = variants * plan.n_variant
            if eligible_per_day:
                table.add_row("duration", f"{planning.duration_days(plan.n_total, eligible_per_day)} days")
        cost = planning.experiment_cost(n_contacted, unit_cost, coupon, redemption_rate)
    except ValueError as exc:
        fail(str(exc))
    table.add_row("messages", f"¥{cost.messages:,.2f}")
    table.add_row("coupons (expected)", f"¥{cost.coupons:,.2f}")
    table.add_row("cost in all", f"¥{cost.total:,.2f}")
    out.print(table)


class CheckFormat(str, Enum):
    text = "text"
    json = "json"


@app.command("check-message")
def check_message_command(
    text: Annotated[str, typer.Argument(help="The message or template, e.g. '【好物商城】{coupon}元礼金已到账 回TD退订'.")],
    channel: Annotated[str, typer.Option(help="sms | mms | push | email | wechat | phone")] = "sms",
    vertical: Annotated[str | None, typer.Option(help="Business vertical, e.g. finance (needs a risk disclaimer).")] = None,
    attachment: Annotated[Path | None, typer.Option(help="MMS attachment, counted in the 500 KB limit.")] = None,
    format: Annotated[CheckFormat, typer.Option("--format", "-f")] = CheckFormat.text,
    lang: Annotated[Lang, typer.Option(help="Language of the findings.")] = Lang.zh,
) -> None:
    """Check a message before it is sent: SMS length and parts, unsubscribe suffix, banned phrases,
    personal data, placeholders, MMS size. Exit status 1 when any finding is an error."""
    import json

    from experiments.catalog import Channel
    from experiments.message_checks import check_message

    if channel not in {c.value for c in Channel}:
        fail(f"--channel: unknown channel {channel!r}; choose one of {', '.join(c.value for c in Channel)}")
    if attachment is not None and not attachment.is_file():
        fail(f"--attachment: no such file: {attachment}")
    result = check_message(text, channel, vertical=vertical,
                           attachment_bytes=attachment.stat().st_size if attachment else 0)
    if format == CheckFormat.json:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        if result.sms:
            out.print(f"SMS: {result.sms.characters} chars ({result.sms.encoding}), {result.sms.parts} part(s)")
        for f in result.findings:
            colour = {"error": "red", "warning": "yellow", "info": "cyan"}[f.severity.value]
            out.print(f"[{colour}]{f.severity.value:7}[/] {f.code}: {f.message(lang.value)}",
                      highlight=False, soft_wrap=True)
        out.print("OK" if result.ok else "[bold red]blocked: fix the errors above[/]")
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def demo(
    customers: Annotated[int, typer.Option(min=1000, help="Number of simulated customers.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same campaign).")] = 20261123,
    db: DbOption = None,
) -> None:
    """Build a realistic simulated recall campaign (idempotent)."""
    from experiments.demo import build_demo

    with out.status("building the demo campaign…"):
        summary = build_demo(engine_for(db), customers=customers, seed=seed)
    out.print(f"demo experiment [bold]{summary.experiment}[/]: {summary.customers:,} customers, "
              f"{summary.sends:,} sends, {summary.events:,} events")


@app.command()
def simulate(
    customers: Annotated[int, typer.Option(min=1, help="Number of simulated customers (about 3 events each).")],
    db: Annotated[str, typer.Option("--db", help="Where to write: duckdb:///file.duckdb (a warehouse in the "
                                                 "layout a spec's source section reads; the experiment is "
                                                 "registered in the Recall Lab database, $RECALL_DATABASE_URL) "
                                                 "or an empty Recall Lab database (PostgreSQL or SQLite).")],
    name: Annotated[str, typer.Option(help="Experiment name.")] = "sim-campaign",
    seed: Annotated[int, typer.Option(help="Random seed (same seed and chunk, same data).")] = 7,
    chunk: Annotated[int, typer.Option(min=1, help="Customers generated and written at a time.")] = 1_000_000,
) -> None:
    """Generate a large realistic campaign (customers, assignments, sends, events) to measure scale."""
    from experiments.simulate import simulate as run_simulate
    from experiments.store import DesignLocked

    try:
        summary = run_simulate(db, customers, name=name, seed=seed, chunk=chunk, progress=True)
    except (ValueError, RuntimeError, DesignLocked) as exc:
        fail(str(exc))
    out.print(f"simulated [bold]{summary.name}[/] into {mask_url(db)}: {summary.customers:,} customers, "
              f"{summary.assignments:,} assignments, {summary.sends:,} sends, {summary.events:,} events "
              f"in {summary.total_seconds:.1f} s")
    table = Table("phase", Column("seconds", justify="right"))
    for phase, seconds in summary.seconds.items():
        table.add_row(phase, f"{seconds:.2f}")
    out.print(table)


@app.command("app")
def run_app(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    db: DbOption = None,
) -> None:
    """Open the Streamlit app (builds the demo campaign on first start with an empty database)."""
    env = {**os.environ, "RECALL_DATABASE_URL": database_url(db)}
    command = [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "app.py"), "--server.port", str(port)]
    raise typer.Exit(subprocess.call(command, env=env))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
