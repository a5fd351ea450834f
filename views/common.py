"""What every page shares: the engine, cached queries, formatting and the privacy rules.

Pages stay thin: they call these functions (cached, so a click does not recompute a report) and
the chart builders in :mod:`analysis.charts`, and lay out the result.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC

import streamlit as st
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from analysis.monitoring import Look, daily_looks
from analysis.render import fmt_money, metric_label
from analysis.report import Report, build_report
from analysis.runs import data_version, lookup
from experiments.cohorts import COHORTS, cohort_filter
from experiments.config import database_url, settings
from experiments.db import open_engine, session_scope
from experiments.models import Assignment, Customer, Experiment
from experiments.notes import Note, notes
from experiments.store import get_experiment, list_experiments, utcnow
from views.i18n import STRINGS, lang, t

DEFAULT_NATURAL_RATE = 0.08
DEFAULT_ACQUISITION_COST = 30.0
PHONE = re.compile(r"(?<!\d)(1\d{2})\d{4}(\d{4})(?!\d)")


def current_url() -> str:
    return database_url()


@st.cache_resource(show_spinner=False)
def engine_for(url: str) -> Engine:
    """One engine per database URL for the whole app (migrated on first use)."""
    return open_engine(url)


def engine() -> Engine:
    return engine_for(current_url())


def masked_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def mask_phone(text: str | None) -> str:
    """138****1234: personal data is never shown in full."""
    return PHONE.sub(r"\1****\2", text or "")


@dataclass(frozen=True)
class ExperimentRow:
    name: str
    status: str
    source: str
    cohort: str
    variants: int
    launched: str
    hypothesis: str
    primary_metric: str


@st.cache_data(ttl=60, show_spinner=False)
def experiment_rows(url: str) -> list[ExperimentRow]:
    tz = settings().timezone
    with session_scope(engine_for(url)) as session:
        return [
            ExperimentRow(
                name=e.name, status=e.status.value, source=e.source.value, cohort=e.cohort,
                variants=len(e.variants),
                launched=e.launched_at.replace(tzinfo=UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M")
                if e.launched_at else "",
                hypothesis=e.hypothesis, primary_metric=e.primary_metric,
            )
            for e in list_experiments(session)
        ]


@st.cache_data(ttl=60, show_spinner=False)
def assigned_customers(url: str) -> dict[str, int]:
    """Customers assigned per experiment (imported experiments have none here)."""
    with engine_for(url).connect() as connection:
        return dict(connection.execute(select(Experiment.name, func.count()).join(
            Assignment, Assignment.experiment_id == Experiment.id).group_by(Experiment.name)).all())


@st.cache_data(ttl=10, show_spinner=False)
def data_version_for(url: str) -> str:
    with session_scope(engine_for(url)) as session:
        return data_version(session.connection())


def report_for(url: str, name: str, correction: str = "holm", sequential: bool = False, *, cuped: bool = False,
               bayesian: bool = False) -> Report:
    """The report for the current data with the CLI's options, cached in memory per data version: the
    stored run of this data version when there is one (``recall report``, ``recall demo`` and the demo
    builder write them), else computed, never stored: drawing a page writes nothing."""
    return _report_for(url, name, data_version_for(url), correction, sequential, cuped, bayesian)


def _options(correction: str, sequential: bool, cuped: bool, bayesian: bool) -> dict[str, object]:
    return (({"correction": correction} if correction != "holm" else {}) | ({"sequential": True} if sequential else {})
            | ({"cuped": True} if cuped else {}) | ({"bayesian": True} if bayesian else {}))


@st.cache_data(ttl=300, show_spinner=False)
def _report_for(url: str, name: str, version: str, correction: str, sequential: bool, cuped: bool = False,
                bayesian: bool = False) -> Report:
    options = _options(correction, sequential, cuped, bayesian)
    stored = lookup(engine_for(url), [name], version, options)
    return stored[name] if name in stored else build_report(engine_for(url), name, **options)


@st.cache_data(ttl=300, show_spinner=False)
def _stored_reports(url: str, names: tuple[str, ...], version: str) -> dict[str, Report]:
    return lookup(engine_for(url), names, version)


def reports_for(url: str, names: list[str]) -> dict[str, Report]:
    """Default reports of many experiments: the stored runs of this data version read in one query,
    the others computed like :func:`report_for`."""
    version = data_version_for(url)
    stored = _stored_reports(url, tuple(names), version)
    return {name: stored[name] if name in stored else _report_for(url, name, version, "holm", False)
            for name in names}


@st.cache_data(ttl=300, show_spinner=False)
def daily_looks_for(url: str, name: str, metric: str) -> list[Look]:
    with session_scope(engine_for(url)) as session:
        return daily_looks(session.connection(), get_experiment(session, name), metric, utcnow())


@st.cache_data(ttl=300, show_spinner=False)
def eligible_customers(url: str, cohort: str) -> int:
    with session_scope(engine_for(url)) as session:
        return int(session.scalar(select(func.count()).select_from(Customer).where(cohort_filter(cohort, utcnow()))))


def natural_rate(url: str, cohort: str) -> float:
    """The cohort's natural return rate: the no-contact controls of its past designed experiments."""
    return natural_rate_source(url, cohort).rate


def acquisition_cost() -> float:
    return float(st.session_state.get("acquisition_cost", os.environ.get("RECALL_ACQUISITION_COST",
                                                                         DEFAULT_ACQUISITION_COST)))


def currency() -> str:
    return settings().currency


def labels(options: Iterable[str], label: Callable[[str], str]) -> dict[str, str]:
    """Option → label in the current language, computed now: widgets' ``format_func`` must not read
    the session later (tests and reruns call it outside the page's run)."""
    return {option: label(option) for option in options}


def cohort_label(cohort: str) -> str:
    """A cohort's name in the current language (imported results carry their own label, shown as is)."""
    c = COHORTS.get(cohort)
    if c is None:
        return t("cohort_imported") if cohort == "imported" else cohort
    return c.label_zh if lang() == "zh" else c.label_en


def status_label(status: str) -> str:
    return t(f"status_{status}")


def metric_name(metric: str) -> str:
    return metric_label(metric, lang())


def pct(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{x * 100:.2f}%"


def money(x: float | None) -> str:
    return fmt_money(x, currency())


def roi_text(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.1f}×"



# --- Overview and Results (h10): labels of segments and channels, an experiment's decision, notes ---

SEGMENT_TIERS = ("value_tier", "rfm_tier")


def channel_label(channel: str | None) -> str:
    """A channel's name in the current language (None: the no-contact control)."""
    key = f"channel_{channel or 'none'}"
    return t(key) if key in STRINGS else str(channel)


def dimension_label(dimension: str) -> str:
    """A segment dimension's name (cohort, value tier, …) in the current language; imported ones as is."""
    key = f"dim_{dimension}"
    return t(key) if key in STRINGS else dimension


def segment_label(segment: str) -> str:
    """``cohort=dormant_30d`` → "沉睡 30 天 …" / "Dormant …": the value of a segment in the current language."""
    dimension, _, value = segment.partition("=")
    if dimension == "cohort":
        return cohort_label(value)
    if dimension in SEGMENT_TIERS and f"tier_{value}" in STRINGS:
        return t(f"tier_{value}")
    if dimension == "channel":
        return channel_label(value)
    return value


@dataclass(frozen=True)
class Lifecycle:
    """Where an experiment stands, and how it was decided (for the Results page's actions)."""

    status: str
    contacted: list[str]
    decision: str | None = None
    variant: str | None = None
    reason: str | None = None
    decided_by: str | None = None
    decided_at: str | None = None


@st.cache_data(ttl=10, show_spinner=False)
def lifecycle_of(url: str, name: str) -> Lifecycle:
    tz = settings().timezone
    with session_scope(engine_for(url)) as session:
        e = get_experiment(session, name)
        return Lifecycle(status=e.status.value, contacted=[v.name for v in e.variants if not v.is_control],
                         decision=e.decision.value if e.decision else None, variant=e.decided_variant,
                         reason=e.decision_reason, decided_by=e.decided_by,
                         decided_at=e.decided_at.replace(tzinfo=UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M")
                         if e.decided_at else None)


@st.cache_data(ttl=10, show_spinner=False)
def notes_for(url: str, name: str) -> list[Note]:
    return notes(engine_for(url), name)


# --------------------------------------------------------------------------- design (live form)


@dataclass(frozen=True)
class NaturalRate:
    """A cohort's natural return rate and where it comes from: the no-contact controls of its past
    designed experiments (``experiments``, ``customers``), or the default when it has none."""

    rate: float
    customers: int
    experiments: tuple[str, ...]

    @property
    def is_default(self) -> bool:
        return not self.customers


def natural_rate_source(url: str, cohort: str) -> NaturalRate:
    n = returned = 0.0
    used: list[str] = []
    names = [row.name for row in experiment_rows(url) if row.source == "designed" and row.status != "draft"
             and (row.cohort == cohort or cohort == "all")]
    for name, report in reports_for(url, names).items():
        c = next((c for c in report.comparisons if c.metric == "returned"), None)
        if c is not None and c.control_n:
            n += c.control_n
            returned += c.control_mean * c.control_n
            used.append(name)
    return NaturalRate(returned / n if n else DEFAULT_NATURAL_RATE, int(n), tuple(used))


def option_format(options: Iterable[str], label: Callable[[str], str]) -> Callable[[object], str]:
    """A widget's ``format_func`` that never fails: an option's label in the current language, and
    anything else (a value the browser still holds from before a language switch) as itself."""
    shown = labels(options, label)
    return lambda option: shown.get(option, str(option))  # type: ignore[call-overload]


def keep_widget_values(*keys: str) -> None:
    """Re-seat these widgets' values before they are drawn, so they survive a language switch (their
    labels change) and a visit to another page (Streamlit forgets widgets it did not draw)."""
    for key in keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
