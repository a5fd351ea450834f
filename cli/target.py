"""``recall target``: learn from an experiment's holdout whom the message changes, and what targeting is worth."""

from __future__ import annotations

import csv
import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cli.common import DbOption, Lang, engine_for, fail, out, split_list


class TargetFormat(str, Enum):
    markdown = "markdown"
    json = "json"


def target(
    name: str,
    metric: Annotated[str, typer.Option(help="Outcome to learn the uplift of: returned (default) or revenue; "
                                             "imported results: one of their metrics.")] = "returned",
    variant: Annotated[str, typer.Option(help="Contacted variant to learn, or 'all' (pooled).")] = "all",
    features: Annotated[str | None, typer.Option(
        help="Comma-separated features (default: all the experiment has; designed: lifecycle_stage, days_inactive, "
             "days_since_signup, orders_before, spend_before, city, recency, frequency, monetary, value_tier; "
             "imported: its --covariates and --segments columns).")] = None,
    format: Annotated[TargetFormat, typer.Option("--format", "-f")] = TargetFormat.markdown,
    lang: Annotated[Lang, typer.Option(help="Language of the Markdown report.")] = Lang.zh,
    scores_out: Annotated[Path | None, typer.Option(help="Write customer_id,uplift (cross-fitted) to this CSV.")] = None,
    contact_cost: Annotated[float | None, typer.Option(min=0, help="¥ per contacted customer (default: the "
                                                                   "variant's channels at the spec's [costs]).")] = None,
    coupon: Annotated[float | None, typer.Option(min=0, help="Coupon face value (default: the variant's).")] = None,
    value_per_return: Annotated[float | None, typer.Option(
        min=0, help="¥ an extra returned customer brings (default: revenue per returned contacted customer).")] = None,
    bootstrap: Annotated[int, typer.Option(min=20, help="Bootstrap replicates for the intervals.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of folds, models and bootstrap.")] = 0,
    db: DbOption = None,
) -> None:
    """Learn the uplift of NAME's contacted variant per customer from pre-period features (cross-fitted
    T-/X-learner), its Qini/AUUC, and returns, cost and ROI of contacting the top 5%…100% or the cost-optimal cut."""
    from analysis.targeting import TargetingError, render_markdown
    from experiments.config import settings
    from experiments.db import session_scope
    from experiments.store import NotFound, get_experiment
    from experiments.targeting import learn

    try:
        with session_scope(engine_for(db)) as session:
            experiment = get_experiment(session, name)
            learned = learn(session.connection(), experiment, metric=metric, variant=variant,
                            features=split_list(features) or None, contact_cost=contact_cost, coupon=coupon,
                            value_per_return=value_per_return, replicates=bootstrap, seed=seed)
    except (NotFound, TargetingError) as exc:
        fail(str(exc))
    evaluation = learned.result.evaluation
    if scores_out is not None:
        write_scores(scores_out, learned.customer_ids, learned.uplift)
    if format == TargetFormat.json:
        typer.echo(json.dumps(evaluation.to_dict(), ensure_ascii=False, indent=2))
    else:
        out.print(render_markdown(evaluation, lang=lang.value, currency=settings().currency), markup=False,
                  highlight=False, soft_wrap=True)


def write_scores(path: Path, customer_ids, uplift) -> None:  # noqa: ANN001 - arrays
    """customer_id,uplift: one row per customer of the experiment (no personal data)."""
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["customer_id", "uplift"])
            writer.writerows((c, f"{u:.6f}") for c, u in zip(customer_ids, uplift, strict=True))
    except OSError as exc:
        fail(f"--scores-out {path}: {exc.strerror or exc}")


def register(app: typer.Typer) -> None:
    app.command("target")(target)
