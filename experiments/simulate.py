"""Simulate a large recall campaign, so scale can be measured (``recall simulate``).

One campaign, ``sim-campaign`` by default: a 10% no-contact control and three contacted variants
(SMS with a ¥5 coupon; SMS with a ¥10 coupon and a reminder on day 4; an app push without coupon),
customers in the four lifecycle cohorts with different natural return rates and responsiveness,
lognormal order values, coupon redemptions in the coupon arms, a few unsubscribes and complaints,
and a pre-period history (each customer's past orders make ``orders_before`` and ``spend_before``,
which predict the outcome a little, so CUPED helps a little). About three events per customer:
the pre-period history, the returns inside the 14-day attribution window and some activity after it.

Everything is generated with numpy, ``chunk`` customers at a time (memory does not grow with the
number of customers), from one random stream per chunk: the same seed and chunk size give the same
data on every target. The target is chosen by the URL:

- a warehouse in the default layout of :mod:`experiments.source` (tables ``customers``,
  ``assignments``, ``sends``, ``events``, replaced): a DuckDB file (``duckdb:///warehouse.duckdb``),
  a directory of Parquet tables for Spark (``spark+local:///warehouse``) or a chDB directory for
  ClickHouse (``clickhousedb+chdb:///warehouse``), the same rows in each; variants are assigned with
  Recall Lab's own hash and the experiment is registered in the Recall Lab database with
  ``[source]`` pointing at the warehouse;
- a Recall Lab database (PostgreSQL or SQLite): customers, sends and events bulk-inserted (COPY on
  PostgreSQL), the experiment created and assigned through :func:`experiments.assignment.assign`.

The assignment time is fixed (:data:`LAUNCH`) so that a seed always gives the same campaign.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from experiments.assignment import assign, bucket_bounds, buckets, progress_bar
from experiments.config import database_url, settings
from experiments.db import bulk_insert, foreign_keys_checked_once, open_engine, session_scope
from experiments.messages import MessageContext, render
from experiments.models import Customer, Event, EventType, Experiment, ExperimentStatus, Send, Variant
from experiments.policy import ContactPolicy
from experiments.sendlist import Step, send_time
from experiments.spec import ExperimentSpec, parse_spec
from experiments.store import create_experiment, get_experiment, local_midnight_utc

LAUNCH = datetime(2026, 8, 31, 16, 0)  # naive UTC: 2026-09-01 00:00 in Asia/Shanghai
ID_PREFIX = "SIM"
ID_DIGITS = 9
ATTRIBUTION_DAYS = 14

# Lifecycle cohorts at launch: share of customers and days since last activity [low, high).
COHORTS = ("new_inactive", "dormant_30d", "lapsed_1_3m", "silent_3m")
COHORT_SHARES = (0.12, 0.22, 0.33, 0.33)
INACTIVE_DAYS = ((3.0, 8.0), (30.0, 45.0), (45.0, 90.0), (90.0, 400.0))
NEVER_ORDERED_DORMANT = 0.3  # dormant sign-ups who never ordered (last month's new-but-inactive)
PRIOR_ORDERS = 2.2  # orders before: 1 + Poisson(2.2) for customers who ordered
CITIES = ("上海", "北京", "广州", "深圳", "杭州", "成都", "武汉", "南京", "西安", "重庆")
BASKET = 80.0  # ¥, median of a customer's typical order value
# Natural return rate inside the window (before each customer's engagement factor), and how
# strongly each cohort responds to a touch.
NATURAL_RATE = (0.08, 0.12, 0.07, 0.03)
RESPONSIVENESS = (1.0, 1.2, 0.8, 0.5)
RETURN_DELAY_DAYS = 3.0  # mean of the exponential delay from assignment (or the first send) to the visit
ORDER_SHARE = 0.6  # returners who order
REDEEM_TREATED, REDEEM_NATURAL = 0.7, 0.35  # coupon-arm orders paid with the coupon
RETENTION_TREATED, RETENTION_NATURAL = 0.30, 0.40  # returners active again within 1-29 days
COMPLAINT_RATE = {"sms": 0.0005, "push": 0.0001}

PROFESSIONAL = "【好物商城】尊敬的会员，为您预留{coupon}元礼金，3天内有效，详见 m.haowu.cn/r 回TD退订"
REMINDER = "【好物商城】您的{coupon}元礼金3天后过期 回TD退订"
PUSH = "好物商城：好久不见，新品已上架，来逛逛吧"
# Contacted variants: spec fields, absolute uplift in the return rate before responsiveness, unsubscribe rate.
VARIANTS = (
    (dict(name="sms_c5_10h", share=0.3, channel="sms", coupon=5, template=PROFESSIONAL, send_hour=10),
     0.015, 0.006),
    (dict(name="sms_c10_10h_reminder", share=0.3, channel="sms", coupon=10, template=PROFESSIONAL, send_hour=10,
          touches=[dict(day=4, channel="sms", template=REMINDER, send_hour=10)]),
     0.036, 0.010),
    (dict(name="push_20h", share=0.3, channel="push", coupon=0, template=PUSH, send_hour=20), 0.006, 0.002),
)
CONTROL = dict(name="holdout", share=0.1, control=True)

# What the DuckDB warehouse holds: exactly the default layout of experiments.source.
WAREHOUSE_TABLES = {
    "customers": "customer_id VARCHAR, cohort VARCHAR, spend_before DOUBLE, orders_before INTEGER",
    "assignments": "experiment VARCHAR, customer_id VARCHAR, variant VARCHAR, assigned_at TIMESTAMP",
    "sends": "experiment VARCHAR, customer_id VARCHAR, variant VARCHAR, channel VARCHAR, step INTEGER, "
             "scheduled_at TIMESTAMP",
    "events": "customer_id VARCHAR, event_type VARCHAR, occurred_at TIMESTAMP, value DOUBLE",
}
STAGING = "recall_simulate_"  # prefix of the tables being written, renamed when complete
EVENT_TYPES = (EventType.VISIT, EventType.ORDER, EventType.COUPON_REDEEMED, EventType.UNSUBSCRIBE,
               EventType.COMPLAINT)
VISIT, ORDER, REDEEMED, UNSUBSCRIBE, COMPLAINT = range(len(EVENT_TYPES))

US = 1_000_000
HOUR = 3600 * US
DAY = 24 * HOUR
NAT = np.iinfo(np.int64).min  # numpy's NaT as int64 microseconds


@dataclass(frozen=True)
class SimulationSummary:
    name: str
    customers: int
    assignments: int
    sends: int
    events: int
    seconds: dict[str, float] = field(default_factory=dict)  # phase → wall-clock seconds

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


@dataclass(frozen=True)
class _Plan:
    """The campaign as arrays indexed by variant (spec order) and cohort."""

    spec: ExperimentSpec
    contacted: np.ndarray  # bool[v]
    coupon: np.ndarray  # bool[v]: a coupon arm
    uplift: np.ndarray  # float[v, cohort]
    unsubscribe: np.ndarray  # float[v]
    complaint: np.ndarray  # float[v]
    first_send: np.ndarray  # int64[v], µs: step 0 (LAUNCH for the control, never used)
    steps: list[tuple[int, int, str, int, str]]  # (variant, step, channel, µs, message) of every touch


@dataclass(frozen=True)
class _Chunk:
    """``n`` customers from global number ``start``, with their pre-period history."""

    start: int
    cohort: np.ndarray
    city: np.ndarray
    signup: np.ndarray  # int64 µs
    first_order: np.ndarray  # int64 µs, NAT when never ordered
    last_active: np.ndarray  # int64 µs
    orders: np.ndarray
    spend: np.ndarray
    basket: np.ndarray
    history: _Events

    @property
    def n(self) -> int:
        return len(self.cohort)

    def ids(self) -> list[str]:
        return list(map(f"{ID_PREFIX}%0{ID_DIGITS}d".__mod__, range(self.start, self.start + self.n)))


@dataclass(frozen=True)
class _Events:
    customer: np.ndarray  # index in the chunk
    kind: np.ndarray  # index in EVENT_TYPES
    at: np.ndarray  # int64 µs
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.customer)

    @staticmethod
    def concat(parts: list[_Events]) -> _Events:
        return _Events(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("customer", "kind", "at", "value")))


@dataclass(frozen=True)
class _Sends:
    customer: np.ndarray
    variant: np.ndarray
    step: np.ndarray
    channel: np.ndarray  # index into the plan's channels
    at: np.ndarray

    def __len__(self) -> int:
        return len(self.customer)


def campaign_spec(name: str = "sim-campaign", source_url: str | None = None) -> ExperimentSpec:
    """The simulated campaign's spec; with ``source_url`` its outcomes are read from that warehouse."""
    data = dict(
        name=name, cohort="all", attribution_days=ATTRIBUTION_DAYS, primary_metric="returned",
        start=LAUNCH.replace(tzinfo=UTC).astimezone(settings().timezone).date(),
        hypothesis="A ¥10 coupon with a reminder beats ¥5; a free push brings back a few (simulated)",
        variants=[CONTROL] + [v for v, _, _ in VARIANTS], costs=dict(channels={"sms": 0.05, "push": 0}),
    )
    if source_url is not None:
        data["source"] = dict(url=source_url, segments=["cohort"])
    return parse_spec(data, "simulate")


def simulate(url: str, customers: int, *, name: str = "sim-campaign", seed: int = 7, chunk: int = 1_000_000,
             progress: bool = False, recall_url: str | None = None) -> SimulationSummary:
    """Generate a campaign of ``customers`` customers into ``url`` (see the module docstring).

    ``url`` is a DuckDB file (a warehouse; the experiment is registered in ``recall_url``, default
    the configured Recall Lab database) or a Recall Lab database (PostgreSQL or SQLite) that must
    hold no customers yet. The same seed and chunk size give the same data.
    """
    if customers < 1:
        raise ValueError("customers: at least 1")
    if chunk < 1:
        raise ValueError("chunk: at least 1")
    if customers >= 10**ID_DIGITS:
        raise ValueError(f"customers: at most {10**ID_DIGITS - 1:,}")
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "duckdb" or (backend, parsed.get_driver_name()) in (("spark", "local"), ("clickhousedb", "chdb")):
        return _simulate_warehouse(url, customers, name, seed, chunk, progress, recall_url)
    if backend in ("postgresql", "sqlite"):
        return _simulate_database(url, customers, name, seed, chunk, progress)
    raise ValueError(f"simulate writes to a DuckDB file (duckdb:///file.duckdb), a Spark warehouse directory "
                     f"(spark+local:///directory), a chDB directory (clickhousedb+chdb:///directory) or a Recall "
                     f"Lab database (PostgreSQL or SQLite), not {backend}")


# --- generation ---------------------------------------------------------------------------------


def _us(at: datetime) -> int:
    return (at.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _datetimes(us: np.ndarray) -> np.ndarray:
    return us.view("datetime64[us]")


LAUNCH_US = _us(LAUNCH)


def _plan(spec: ExperimentSpec) -> _Plan:
    variants = spec.variants
    contacted = np.array([not v.control for v in variants])
    tables = {v["name"]: (lift, unsub) for v, lift, unsub in VARIANTS}
    uplift = np.array([[tables[v.name][0] * r for r in RESPONSIVENESS] if not v.control else [0.0] * len(COHORTS)
                       for v in variants])
    experiment = Experiment(start_at=local_midnight_utc(spec.start))
    steps: list[tuple[int, int, str, int, str]] = []
    first_send = np.full(len(variants), LAUNCH_US, dtype=np.int64)
    for i, v in enumerate(variants):
        if v.control:
            continue
        variant = Variant(send_hour=v.send_hour, channel=v.channel.value)
        sequence = [Step(0, 0, v.channel.value, v.template, v.send_hour)] + [
            Step(k, t.day, t.channel.value, t.template, t.send_hour) for k, t in enumerate(v.touches, 1)]
        for s in sequence:
            local = send_time(experiment, variant, LAUNCH, s)
            at = _us(local.astimezone(UTC).replace(tzinfo=None))
            # Templates use {coupon} only, so a step's message is the same for every customer.
            steps.append((i, s.step, s.channel, at, render(s.template, MessageContext(v.coupon, "", local))))
            if s.step == 0:
                first_send[i] = at
    return _Plan(
        spec=spec, contacted=contacted, coupon=np.array([bool(v.coupon) for v in variants]), uplift=uplift,
        unsubscribe=np.array([0.0 if v.control else tables[v.name][1] for v in variants]),
        complaint=np.array([0.0 if v.control else COMPLAINT_RATE.get(v.channel.value, 0.0) for v in variants]),
        first_send=first_send, steps=steps,
    )


def _chunks(customers: int, chunk: int) -> Iterator[tuple[int, int, int]]:
    for k, start in enumerate(range(0, customers, chunk)):
        yield k, start, min(chunk, customers - start)


def _customers(seed: int, k: int, start: int, n: int) -> _Chunk:
    """Customers ``start``..``start + n`` at launch, and the orders (or sign-up visit) before it."""
    rng = np.random.default_rng([seed, k, 0])
    cohort = rng.choice(len(COHORTS), size=n, p=COHORT_SHARES).astype(np.int8)
    never = (cohort == 0) | ((cohort == 1) & (rng.random(n) < NEVER_ORDERED_DORMANT))
    orders = np.where(never, 0, 1 + rng.poisson(PRIOR_ORDERS, n)).astype(np.int32)
    low, high = np.array(INACTIVE_DAYS).T
    last_active = LAUNCH_US - (rng.uniform(low[cohort], high[cohort]) * DAY).astype(np.int64)
    tenure = np.where(never, rng.uniform(0, 20, n), rng.uniform(30, 700, n))
    signup = np.where(cohort == 0, last_active, last_active - (tenure * DAY).astype(np.int64))
    first_order = np.where(orders > 1, signup + DAY, np.where(orders == 1, last_active, NAT))
    basket = rng.lognormal(np.log(BASKET), 0.4, n)
    city = rng.integers(0, len(CITIES), n).astype(np.int8)
    # History: each past order (the first at first_order, the last at last_active) or, for those who
    # never ordered, a visit at their last activity.
    per = np.maximum(orders, 1)
    owner = np.repeat(np.arange(n), per)
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(per) - per, per)
    span = per[owner]
    ordered = orders[owner] > 0
    first = np.where(ordered, first_order[owner], last_active[owner])
    frac = np.where(span > 1, rank / np.maximum(span - 1, 1), 1.0)
    at = first + ((last_active[owner] - first) * frac).astype(np.int64)
    value = np.where(ordered, np.round(rng.lognormal(np.log(basket[owner]), 0.5), 2), 0.0)
    spend = np.round(np.bincount(owner, weights=value, minlength=n), 2)
    history = _Events(owner, np.where(ordered, ORDER, VISIT).astype(np.int8), at, value)
    return _Chunk(start, cohort, city, signup, first_order, last_active, orders, spend, basket, history)


def _variants(plan: _Plan, ids: list[str]) -> np.ndarray:
    """Each customer's variant index: Recall Lab's own rule (bucket → bisect_right over the bounds)."""
    bounds = bucket_bounds([v.share for v in plan.spec.variants])
    b = np.fromiter(buckets(plan.spec.name, ids), dtype=np.int64, count=len(ids))
    return np.searchsorted(np.array(bounds), b, side="right").astype(np.int8)


def _outcomes(seed: int, k: int, plan: _Plan, c: _Chunk, variant: np.ndarray) -> tuple[_Sends, _Events]:
    """Every touch sent, and what the customers did from launch on."""
    rng = np.random.default_rng([seed, k, 1])
    n = c.n
    u = rng.random((9, n))
    delay = rng.exponential(RETURN_DELAY_DAYS, n)
    value1 = np.round(rng.lognormal(np.log(c.basket) + 0.05, 0.5), 2)
    value2 = np.round(rng.lognormal(np.log(c.basket), 0.5), 2)

    contacted = plan.contacted[variant]
    engagement = np.clip(0.55 + 0.15 * c.orders, 0.5, 1.8)  # past orders predict a return a little
    natural_rate = np.array(NATURAL_RATE)[c.cohort] * engagement
    natural = u[0] < natural_rate
    treated = contacted & ~natural & (u[0] < natural_rate + plan.uplift[variant, c.cohort])
    returned = natural | treated
    sent_at = plan.first_send[variant]
    visit_at = np.where(treated, sent_at, LAUNCH_US) + (delay * DAY).astype(np.int64)
    ordered = returned & (u[1] < ORDER_SHARE)
    order_at = visit_at + 7 * 60 * US
    redeemed = ordered & plan.coupon[variant] & (u[2] < np.where(treated, REDEEM_TREATED, REDEEM_NATURAL))
    again = returned & (u[3] < np.where(treated, RETENTION_TREATED, RETENTION_NATURAL))
    again_at = visit_at + ((1 + 28 * u[4]) * DAY).astype(np.int64)
    again_ordered = again & (u[5] < ORDER_SHARE)
    unsubscribed = contacted & (u[6] < plan.unsubscribe[variant])
    complained = contacted & (u[7] < plan.complaint[variant])

    zero = np.zeros(n)

    def part(mask: np.ndarray, kind: int, at: np.ndarray, value: np.ndarray = zero) -> _Events:
        idx = np.flatnonzero(mask)
        return _Events(idx, np.full(len(idx), kind, dtype=np.int8), at[idx], value[idx])

    events = _Events.concat([
        c.history,
        part(returned, VISIT, visit_at),
        part(ordered, ORDER, order_at, value1),
        part(redeemed, REDEEMED, order_at),
        part(unsubscribed, UNSUBSCRIBE, sent_at + (u[8] * 2 * HOUR).astype(np.int64)),
        part(complained, COMPLAINT, sent_at + 3 * HOUR),
        part(again, VISIT, again_at),
        part(again_ordered, ORDER, again_at + 5 * 60 * US, value2),
    ])
    channels = _channels(plan)
    parts = []
    for v, step, channel, at, _ in plan.steps:
        idx = np.flatnonzero(variant == v)
        m = len(idx)
        parts.append((idx, np.full(m, v, np.int8), np.full(m, step, np.int32),
                      np.full(m, channels.index(channel), np.int8), np.full(m, at, np.int64)))
    sends = _Sends(*(np.concatenate([p[i] for p in parts]) for i in range(5)))
    return sends, events


def _channels(plan: _Plan) -> list[str]:
    return sorted({channel for _, _, channel, _, _ in plan.steps})


# --- A warehouse in the layout of experiments.source: DuckDB, Spark (Parquet) or ClickHouse (chDB) -------


def _duckdb_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError("simulate needs a DuckDB file, e.g. duckdb:///warehouse.duckdb")
    return Path(database).expanduser().resolve()


def _warehouse_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError(f"simulate needs a directory to write to, e.g. {make_url(url).drivername}:///warehouse")
    return Path(database).expanduser().resolve()


def _sql_list(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


# ClickHouse spelling of WAREHOUSE_TABLES' column types; each table is sorted by customer.
CLICKHOUSE_TYPES = {"VARCHAR": "String", "DOUBLE": "Float64", "INTEGER": "Int32", "TIMESTAMP": "DateTime64(6, 'UTC')"}


class _DuckDBWarehouse:
    """Rows go into staging tables of the DuckDB file, committed chunk by chunk (DuckDB's memory stays
    small), then swapped in at once: until then, and if anything fails, the file keeps its tables."""

    def __init__(self, path: Path) -> None:
        import duckdb

        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(path))
        self.con.execute("SET enable_progress_bar = false")
        for table, columns in WAREHOUSE_TABLES.items():
            self.con.execute(f"CREATE OR REPLACE TABLE {STAGING}{table} ({columns})")

    def write(self, table: str, k: int, frame, columns: str, params: list) -> None:  # noqa: ANN001 - a DataFrame
        self.con.register("chunk_rows", frame)
        self.con.execute(f"INSERT INTO {STAGING}{table} SELECT {columns} FROM chunk_rows", params)
        self.con.unregister("chunk_rows")

    def commit(self) -> None:
        self.con.execute("BEGIN TRANSACTION")
        for table in WAREHOUSE_TABLES:
            self.con.execute(f"DROP TABLE IF EXISTS {table}")
            self.con.execute(f"ALTER TABLE {STAGING}{table} RENAME TO {table}")
        self.con.execute("COMMIT")

    def close(self) -> None:
        self.con.close()


class _ParquetWarehouse:
    """One Parquet file per table and chunk (``PATH/TABLE/part-K.parquet``, the layout a Spark
    source reads), written by an in-memory DuckDB into a staging directory beside PATH that replaces
    PATH when complete. With ``chdb``, the Parquet files are then loaded into chDB at PATH instead."""

    def __init__(self, path: Path, chdb: bool = False) -> None:
        import duckdb

        self.path, self.chdb = path, chdb
        self.staging = path.parent / f".{path.name}.staging"
        shutil.rmtree(self.staging, ignore_errors=True)
        for table in WAREHOUSE_TABLES:
            (self.staging / table).mkdir(parents=True)
        self.con = duckdb.connect()
        self.con.execute("SET enable_progress_bar = false")

    def write(self, table: str, k: int, frame, columns: str, params: list) -> None:  # noqa: ANN001
        self.con.register("chunk_rows", frame)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE chunk_out ({WAREHOUSE_TABLES[table]})")
        self.con.execute(f"INSERT INTO chunk_out SELECT {columns} FROM chunk_rows", params)
        self.con.execute(f"COPY chunk_out TO '{self.staging / table / f'part-{k:05d}.parquet'}' (FORMAT parquet)")
        self.con.unregister("chunk_rows")

    def commit(self) -> None:
        if self.chdb:
            _load_chdb(self.staging, self.path)
            shutil.rmtree(self.staging)
            return
        old = self.path.parent / f".{self.path.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if self.path.exists():
            self.path.rename(old)
        self.staging.rename(self.path)
        shutil.rmtree(old, ignore_errors=True)

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.staging, ignore_errors=True)


def _load_chdb(parquet: Path, path: Path) -> None:
    """The Parquet tables at ``parquet/TABLE/*.parquet`` into chDB at ``path`` (typed MergeTree tables in
    customer order), each swapped in only when all are loaded."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    try:
        for table, columns in WAREHOUSE_TABLES.items():
            typed = ", ".join(f"{name} {CLICKHOUSE_TYPES[kind]}"
                              for name, kind in (c.strip().split(" ", 1) for c in columns.split(",")))
            client.command(f"DROP TABLE IF EXISTS {STAGING}{table}")
            client.command(f"CREATE TABLE {STAGING}{table} ({typed}) ENGINE = MergeTree ORDER BY customer_id")
            client.command(f"INSERT INTO {STAGING}{table} SELECT * FROM file('{parquet / table}/*.parquet', "
                           "Parquet)")
        for table in WAREHOUSE_TABLES:  # swapped in last: a failure above leaves the former tables
            client.command(f"DROP TABLE IF EXISTS {table}")
            client.command(f"RENAME TABLE {STAGING}{table} TO {table}")
    finally:
        client.close()


def parquet_to_chdb(spark_url: str, url: str, *, name: str = "sim-campaign", recall_url: str | None = None) -> None:
    """A simulated Spark warehouse (``spark+local:///PATH``, written by :func:`simulate` with ``name``)
    copied into chDB at ``url`` and registered there: the rows :func:`simulate` would write with the same
    seed and chunk size, without generating them again (the benchmark's 30M customers, built once)."""
    path, source_url = _warehouse(url)
    _load_chdb(_warehouse_path(spark_url), path)
    register(recall_url, campaign_spec(name, source_url))


def _warehouse(url: str) -> tuple[Path, str]:
    """Where the warehouse is written, and the source URL a spec reads it at."""
    backend = make_url(url).get_backend_name()
    if backend == "duckdb":
        path = _duckdb_path(url)
        return path, f"duckdb:///{path}"
    path = _warehouse_path(url)
    return path, f"{'spark+local' if backend == 'spark' else 'clickhousedb+chdb'}:///{path}"


def _simulate_warehouse(url: str, customers: int, name: str, seed: int, chunk: int, progress: bool,
                        recall_url: str | None) -> SimulationSummary:
    import pandas as pd

    path, source_url = _warehouse(url)
    plan = _plan(campaign_spec(name, source_url))
    names = [v.name for v in plan.spec.variants]
    seconds = dict.fromkeys(("generate", "customers", "assignments", "sends", "events", "register"), 0.0)
    n_sends = n_events = 0
    cohorts, variants, channels = _sql_list(COHORTS), _sql_list(names), _sql_list(_channels(plan))
    event_types = _sql_list([t.value for t in EVENT_TYPES])
    sim_id = f"printf('{ID_PREFIX}%0{ID_DIGITS}d', i)"
    recall = open_engine(database_url(recall_url))
    try:
        _check_registrable(recall, plan.spec)  # fail before the warehouse is rewritten, not after
    finally:
        recall.dispose()
    backend = make_url(url).get_backend_name()
    target = _DuckDBWarehouse(path) if backend == "duckdb" else _ParquetWarehouse(path, chdb=backend == "clickhousedb")
    try:
        def write(table: str, k: int, frame: pd.DataFrame, columns: str, *params: object) -> None:
            t = time.perf_counter()
            target.write(table, k, frame, columns, list(params))
            seconds[table] += time.perf_counter() - t

        with progress_bar(progress) as bar:
            task = bar.add_task(f"simulating {name} → {path.name}", total=customers)
            for k, start, n in _chunks(customers, chunk):
                t = time.perf_counter()
                c = _customers(seed, k, start, n)
                variant = _variants(plan, c.ids())
                sends, events = _outcomes(seed, k, plan, c, variant)
                i = np.arange(start, start + n, dtype=np.int64)
                seconds["generate"] += time.perf_counter() - t
                write("customers", k, pd.DataFrame({"i": i, "c": c.cohort, "spend": c.spend, "orders": c.orders}),
                      f"{sim_id}, {cohorts}[c + 1], spend, orders")
                write("assignments", k, pd.DataFrame({"i": i, "v": variant}),
                      f"?, {sim_id}, {variants}[v + 1], ?", name, LAUNCH)
                write("sends", k, pd.DataFrame({"i": start + sends.customer, "v": sends.variant,
                                                "ch": sends.channel, "step": sends.step, "ts": _datetimes(sends.at)}),
                      f"?, {sim_id}, {variants}[v + 1], {channels}[ch + 1], step, ts", name)
                write("events", k, pd.DataFrame({"i": start + events.customer, "t": events.kind,
                                                 "ts": _datetimes(events.at), "value": events.value}),
                      f"{sim_id}, {event_types}[t + 1], ts, value")
                n_sends += len(sends)
                n_events += len(events)
                bar.update(task, advance=n, description=f"simulating {name} → {path.name}: {n_events:,} events")
        t = time.perf_counter()
        target.commit()
        seconds["commit"] = time.perf_counter() - t
    finally:
        target.close()

    t = time.perf_counter()
    register(recall_url, plan.spec)
    seconds["register"] = time.perf_counter() - t
    return SimulationSummary(name, customers, customers, n_sends, n_events,
                             {k: round(v, 3) for k, v in seconds.items()})


def _check_registrable(engine: Engine, spec: ExperimentSpec) -> None:
    """Raise :class:`experiments.store.DesignLocked` when ``spec`` cannot be stored (nothing is written)."""
    with Session(engine) as session:
        create_experiment(session, spec)
        session.rollback()


def register(recall_url: str | None, spec: ExperimentSpec, launched_at: datetime = LAUNCH) -> None:
    """Store ``spec`` in the Recall Lab database (reused when the same spec is there) and set it running
    since ``launched_at`` (naive UTC), the time its customers were assigned in the warehouse."""
    engine = open_engine(database_url(recall_url))
    try:
        with session_scope(engine) as session:
            experiment = create_experiment(session, spec)
            if experiment.status == ExperimentStatus.DRAFT:
                experiment.status = ExperimentStatus.RUNNING
                experiment.launched_at = launched_at
    finally:
        engine.dispose()


# --- A Recall Lab database: the real path ---------------------------------------------------------


def _simulate_database(url: str, customers: int, name: str, seed: int, chunk: int, progress: bool
                       ) -> SimulationSummary:
    engine = open_engine(url)
    try:
        return _fill_database(engine, customers, name, seed, chunk, progress)
    finally:
        engine.dispose()


def _fill_database(engine: Engine, customers: int, name: str, seed: int, chunk: int, progress: bool
                   ) -> SimulationSummary:
    spec = campaign_spec(name)
    plan = _plan(spec)
    seconds: dict[str, float] = {}
    with session_scope(engine) as session:
        if session.scalar(select(func.count()).select_from(Customer)):
            raise RuntimeError("simulate writes a whole campaign into an empty Recall Lab database, and this one "
                               "already holds customers: give a fresh database (--db)")

    t = time.perf_counter()
    with session_scope(engine) as session, progress_bar(progress) as bar:
        task = bar.add_task("customers", total=customers)
        for k, start, n in _chunks(customers, chunk):
            c = _customers(seed, k, start, n)
            ids = c.ids()
            for part in _slices(n):
                bulk_insert(session, Customer, _customer_rows(c, ids, part))
            bar.advance(task, n)
    seconds["customers"] = time.perf_counter() - t

    t = time.perf_counter()
    with session_scope(engine) as session:
        create_experiment(session, spec)
    summary = assign(engine, name, as_of=LAUNCH, policy=ContactPolicy(), progress=progress)
    seconds["assign"] = time.perf_counter() - t
    if summary.newly_assigned != customers:
        raise RuntimeError(f"{name}: {summary.newly_assigned:,} customers assigned, {customers:,} simulated")

    seconds["sends"] = seconds["events"] = 0.0
    n_sends = n_events = 0
    contacted = sum(summary.per_variant[v.name] * (1 + len(v.touches)) for v in spec.contacted)
    with session_scope(engine) as session, foreign_keys_checked_once(session, Send, contacted), \
            progress_bar(progress) as bar:
        experiment = get_experiment(session, name)
        variant_ids = [v.id for v in experiment.variants]
        task = bar.add_task("sends and events", total=customers)
        for k, start, n in _chunks(customers, chunk):
            t = time.perf_counter()
            c = _customers(seed, k, start, n)
            ids = c.ids()
            sends, events = _outcomes(seed, k, plan, c, _variants(plan, ids))
            seconds["events"] += time.perf_counter() - t
            t = time.perf_counter()
            for part in _slices(len(sends)):
                bulk_insert(session, Send, _send_rows(plan, experiment.id, variant_ids, ids, sends, part))
            seconds["sends"] += time.perf_counter() - t
            t = time.perf_counter()
            for part in _slices(len(events)):
                bulk_insert(session, Event, _event_rows(ids, events, part))
            seconds["events"] += time.perf_counter() - t
            n_sends += len(sends)
            n_events += len(events)
            bar.advance(task, n)
    t = time.perf_counter()
    if engine.dialect.name == "postgresql":  # fresh statistics for the planner after a bulk load
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    seconds["analyze"] = time.perf_counter() - t
    return SimulationSummary(name, customers, summary.newly_assigned, n_sends, n_events,
                             {k: round(v, 3) for k, v in seconds.items()})


ROWS_PER_INSERT = 200_000  # rows turned into dicts at a time: bounds memory whatever the chunk size


def _slices(n: int) -> Iterator[slice]:
    for start in range(0, n, ROWS_PER_INSERT):
        yield slice(start, min(start + ROWS_PER_INSERT, n))


def _customer_rows(c: _Chunk, ids: list[str], part: slice) -> list[dict]:
    return [
        {"customer_id": i, "city": CITIES[city], "signup_at": signup, "first_order_at": first, "last_active_at": last,
         "orders_before": orders, "spend_before": spend}
        for i, city, signup, first, last, orders, spend in zip(
            ids[part], c.city[part].tolist(), _datetimes(c.signup[part]).tolist(),
            _datetimes(c.first_order[part]).tolist(), _datetimes(c.last_active[part]).tolist(),
            c.orders[part].tolist(), c.spend[part].tolist())
    ]


def _send_rows(plan: _Plan, experiment_id: int, variant_ids: list[int], ids: list[str], s: _Sends,
               part: slice) -> list[dict]:
    channels = _channels(plan)
    times = {(v, step): at for v, step, _, at, _ in plan.steps}
    at = {key: _datetimes(np.array([us], dtype=np.int64)).tolist()[0] for key, us in times.items()}
    return [
        {"experiment_id": experiment_id, "customer_id": ids[i], "step": step, "variant_id": variant_ids[v],
         "channel": channels[ch], "scheduled_at": at[v, step]}
        for i, v, step, ch in zip(s.customer[part].tolist(), s.variant[part].tolist(), s.step[part].tolist(),
                                  s.channel[part].tolist())
    ]


def _event_rows(ids: list[str], e: _Events, part: slice) -> list[dict]:
    return [
        {"customer_id": ids[i], "event_type": EVENT_TYPES[kind], "occurred_at": at, "value": value}
        for i, kind, at, value in zip(e.customer[part].tolist(), e.kind[part].tolist(),
                                      _datetimes(e.at[part]).tolist(), e.value[part].tolist())
    ]
