"""The demo: a realistic simulated recall programme, so the app opens on something worth looking at.

100,000 customers at every lifecycle stage, and four campaigns run through the real path (spec →
assignment → send lists), with outcomes drawn from true effects that differ by cohort:

- ``demo-winback-2026`` (running, launched 10 days ago): a 10% no-contact holdout and eight SMS
  variants, ¥5 vs ¥10 coupon × lively vs professional wording × 10:00 vs 20:00;
- two finished campaigns for history: push vs SMS for dormant customers (60 days ago) and a
  welcome coupon for new-but-inactive customers (45 days ago);
- ``demo-repeat-buyers`` (finished, in a layer of its own): a ¥10 SMS whose effect depends on how often
  the customer ordered before (repeat buyers respond most): the Targeting page finds them.

Deterministic: the same seed and reference day give the same data. Idempotent: a second run with
the demo already present changes nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from experiments.access import cli_actor
from experiments.assignment import assign
from experiments.config import settings
from experiments.db import bulk_insert, session_scope
from experiments.models import (
    Assignment,
    Customer,
    Event,
    EventType,
    Experiment,
    ExperimentNote,
    ExperimentStatus,
    Send,
    Variant,
)
from experiments.sendlist import write_send_lists
from experiments.spec import ExperimentSpec, parse_spec
from experiments.store import create_experiment, get_experiment, local_midnight_utc, utcnow

MAIN = "demo-winback-2026"
TARGETING = "demo-repeat-buyers"  # the finished test the Targeting page learns from
CITIES = ["上海", "北京", "广州", "深圳", "杭州", "成都", "武汉", "南京", "西安", "重庆"]
LIVELY = "【好物商城】亲～好久不见！{coupon}元红包已到账，3天内下单立减，戳 m.haowu.cn/r 回TD退订"
PROFESSIONAL = "【好物商城】尊敬的会员，为您预留{coupon}元礼金，3天内有效，详见 m.haowu.cn/r 回TD退订"

# Lifecycle stage at the main launch: share of customers and days since last activity.
STAGES = {  # stage: (share, inactive days low, high)
    "new_inactive": (0.12, 3, 8),
    "dormant_30d": (0.22, 30, 45),
    "lapsed_1_3m": (0.33, 45, 90),
    "silent_3m": (0.33, 90, 400),
}
NEVER_ORDERED_DORMANT = 0.3
# Natural return rate within the 14-day window, and how strongly each stage responds to a touch.
NATURAL_RATE = {"new_inactive": 0.08, "dormant_30d": 0.12, "lapsed_1_3m": 0.07, "silent_3m": 0.03}
RESPONSIVENESS = {"new_inactive": 1.0, "dormant_30d": 1.2, "lapsed_1_3m": 0.8, "silent_3m": 0.5}
# Absolute uplift in return rate of the main test's factors (before responsiveness).
COUPON_UPLIFT = {5: 0.015, 10: 0.03}
WORDING_UPLIFT = {  # lively works on the young lifecycle stages, professional on the long-gone
    "lively": {"new_inactive": 0.012, "dormant_30d": 0.010, "lapsed_1_3m": 0.0, "silent_3m": -0.004},
    "professional": {"new_inactive": 0.0, "dormant_30d": 0.0, "lapsed_1_3m": 0.006, "silent_3m": 0.008},
}
EVENING_UPLIFT = 0.005  # 20:00 beats 10:00 a little
# Heterogeneous effects for the targeting page: in demo-repeat-buyers, repeat buyers (≥ 5 orders before)
# respond 2.2 times as strongly, everyone else 0.6 times (about the same average over all customers).
REPEAT_BUYER_ORDERS = 5
RESPONSE_MULTIPLIER = {True: 2.2, False: 0.6}
ORDER_SHARE = 0.6  # returned customers who also order
RETENTION_NATURAL = 0.40  # natural returners active again within 30 days
RETENTION_TREATED = 0.30  # coupon-bought returners active again within 30 days
REDEEM_SHARE = 0.7  # treated returners with an order who use the coupon
UNSUBSCRIBE_RATE = {"lively": 0.02, "professional": 0.005}  # lively wording annoys some
COMPLAINT_RATE = 0.0005
DELIVERY_RATE = 0.97
CLICK_RATE = 0.04


@dataclass(frozen=True)
class DemoSummary:
    experiment: str
    experiments: list[str]
    customers: int
    sends: int
    events: int
    already_built: bool


@dataclass(frozen=True)
class Campaign:
    """A demo campaign: its spec, when it launched, its status now and each variant's true uplift."""

    spec: ExperimentSpec
    launch: datetime
    status: ExperimentStatus
    uplift: dict[str, dict[str, float]]  # variant → stage → absolute uplift in return rate
    unsubscribe: dict[str, float]
    repeat_buyers_respond: bool = False  # scale the uplift by RESPONSE_MULTIPLIER[orders before ≥ 5]


def build_demo(engine: Engine, *, customers: int = 100_000, seed: int = 20261123,
               today: datetime | None = None, progress: Callable[[int, int], None] | None = None) -> DemoSummary:
    """Build the demo in ``engine``'s database unless it is already there (see the module docstring).

    ``progress(done, total)`` is called after the customers and after each campaign (each committed:
    a reader sees every finished campaign while the next one builds)."""
    state = demo_state(engine)
    if state == COMPLETE:
        return _summary(engine, already_built=True)
    if state == PARTIAL:  # a build stopped half-way (recall app interrupted): start again from scratch
        _remove_partial(engine)
    today = today or utcnow()
    rng = np.random.default_rng(seed)
    launch = local_midnight_utc(_local_day(today) - timedelta(days=10))
    campaigns = _campaigns(launch)
    report = progress or (lambda done, total: None)
    _add_customers(engine, rng, customers, launch)
    report(1, 1 + len(campaigns))
    for done, campaign in enumerate(campaigns, 2):
        _run(engine, rng, campaign, today)
        report(done, 1 + len(campaigns))
    return _summary(engine, already_built=False)


def _local_day(at: datetime):  # noqa: ANN202 - a datetime.date
    return at.replace(tzinfo=UTC).astimezone(settings().timezone).date()


ABSENT, PARTIAL, COMPLETE = "absent", "partial", "complete"
DEMO_NAMES = (MAIN, TARGETING, "demo-dormant-push-vs-sms", "demo-welcome-coupon")
DEMO_CUSTOMER = "D_______"  # D and 7 digits (LIKE pattern)


def demo_state(engine: Engine) -> str:
    """Whether the demo is absent, complete, or partial: a build was stopped half-way.

    Campaigns are built in order and the last one (demo-repeat-buyers) leaves its running state only in
    the transaction that adds its outcomes, so it is complete once that campaign is no longer a draft
    or running. A partial build is demo campaigns without it (or a demo built before it existed), or
    demo customers alone in a database that holds nothing else."""
    with session_scope(engine) as session:
        statuses = dict(session.execute(select(Experiment.name, Experiment.status)
                                        .where(Experiment.name.in_(DEMO_NAMES))).all())
        if statuses:
            done = statuses.get(TARGETING) not in (None, ExperimentStatus.DRAFT, ExperimentStatus.RUNNING)
            return COMPLETE if done or _worked_on(session, statuses) else PARTIAL
        count = lambda *where: session.scalar(select(func.count()).select_from(Customer).where(*where))  # noqa: E731
        demo_customers = count(Customer.customer_id.like(DEMO_CUSTOMER))
        alone = (demo_customers and demo_customers == count()
                 and not session.scalar(select(func.count()).select_from(Experiment))
                 and not session.scalar(select(func.count()).select_from(Event)))
        return PARTIAL if alone else ABSENT


def _worked_on(session: Session, statuses: dict[str, ExperimentStatus]) -> bool:
    """Whether people have worked with these demo campaigns (a demo built by an older release, before
    its last campaign existed, looks like a stopped build): a note on one, or a status the builder never
    leaves (it moves a campaign from draft to running to its final status). Such a demo is kept as it
    is, never removed to be built again."""
    built = {c.spec.name: c.status for c in _campaigns(utcnow())}
    untouched = {name: {ExperimentStatus.DRAFT, ExperimentStatus.RUNNING, built[name]} for name in built}
    if any(status not in untouched[name] for name, status in statuses.items()):
        return True
    return bool(session.scalar(select(func.count()).select_from(ExperimentNote).join(Experiment)
                               .where(Experiment.name.in_(DEMO_NAMES))))


def _remove_partial(engine: Engine) -> None:
    """Everything a stopped build wrote, in one transaction: the demo campaigns (their variants,
    assignments, sends, holds and runs go with them), the demo customers' events and the customers."""
    with session_scope(engine) as session:
        session.execute(delete(Experiment).where(Experiment.name.in_(DEMO_NAMES)))
        session.execute(delete(Event).where(Event.customer_id.like(DEMO_CUSTOMER)))
        session.execute(delete(Customer).where(Customer.customer_id.like(DEMO_CUSTOMER)))


def _add_customers(engine: Engine, rng: np.random.Generator, n: int, launch: datetime) -> None:
    stages = list(STAGES)
    stage = rng.choice(len(stages), size=n, p=[STAGES[s][0] for s in stages])
    low = np.array([STAGES[s][1] for s in stages])[stage]
    high = np.array([STAGES[s][2] for s in stages])[stage]
    inactive_days = rng.uniform(low, high)
    # Never ordered: the new-but-inactive, and some dormant sign-ups (last month's new-but-inactive).
    never_ordered = (stage == stages.index("new_inactive")) | (
        (stage == stages.index("dormant_30d")) & (rng.random(n) < NEVER_ORDERED_DORMANT))
    tenure_days = np.where(never_ordered, 0, rng.uniform(30, 700, size=n))
    orders = np.where(never_ordered, 0, 1 + rng.poisson(3, size=n))
    spend = np.round(orders * rng.lognormal(np.log(80), 0.6, size=n), 2)
    phones = rng.integers(0, 10**8, size=n)
    prefixes = rng.choice(["138", "139", "158", "186", "177"], size=n)
    cities = rng.choice(CITIES, size=n)
    last_active = _minus_days(np.datetime64(launch, "us"), inactive_days)
    signup = _minus_days(last_active, tenure_days)
    first_order = np.where(never_ordered, None, (signup + np.timedelta64(1, "D")).astype(object))
    columns = dict(
        customer_id=[f"D{i:07d}" for i in range(n)],
        phone=np.char.add(prefixes, np.char.zfill(phones.astype(str), 8)).tolist(),
        city=cities.tolist(), signup_at=signup.astype(object).tolist(), first_order_at=first_order.tolist(),
        last_active_at=last_active.astype(object).tolist(), orders_before=orders.tolist(),
        spend_before=[Decimal(f"{x:.2f}") for x in spend.tolist()],
    )
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    with session_scope(engine) as session:
        existing = session.scalar(select(func.count()).select_from(Customer).where(Customer.customer_id.like("D%")))
        if existing:
            raise RuntimeError("this database already holds demo customers from an interrupted build; "
                               "use a fresh database for the demo")
        bulk_insert(session, Customer, rows)


def _minus_days(at: np.ndarray, days: np.ndarray) -> np.ndarray:
    """``at - timedelta(days=d)`` for each ``d``, to the microsecond as datetime rounds it: the whole days
    exactly, the fraction's microseconds rounded half to even (what the Python loop computed before)."""
    whole = np.trunc(days)
    micros = whole.astype(np.int64) * 86_400_000_000 + np.rint((days - whole) * 86_400_000_000.0).astype(np.int64)
    return at - micros.astype("timedelta64[us]")


def _main_campaign(launch: datetime) -> Campaign:
    spec = parse_spec(dict(
        name=MAIN, cohort="all", attribution_days=14, primary_metric="returned", start=_local_day(launch),
        hypothesis="¥10 beats ¥5, lively wording wins the recently lapsed, 20:00 beats 10:00",
        factors=dict(coupon=[5, 10], wording=dict(lively=LIVELY, professional=PROFESSIONAL), send_hour=[10, 20]),
        factorial=dict(holdout=0.1, channel="sms", name="c{coupon}_{wording}_{send_hour}h"),
        costs=dict(channels={"sms": 0.05}, acquisition_cost=30),
        ratio_metrics=["revenue_per_returner", "order_value"],
    ))
    uplift: dict[str, dict[str, float]] = {}
    unsubscribe: dict[str, float] = {}
    for v in spec.contacted:
        coupon, wording, hour = int(v.levels["coupon"]), v.levels["wording"], int(v.levels["send_hour"])
        uplift[v.name] = {
            stage: RESPONSIVENESS[stage] * (COUPON_UPLIFT[coupon] + (EVENING_UPLIFT if hour == 20 else 0))
            + WORDING_UPLIFT[wording][stage]
            for stage in STAGES
        }
        unsubscribe[v.name] = UNSUBSCRIBE_RATE[wording]
    return Campaign(spec, launch, ExperimentStatus.RUNNING, uplift, unsubscribe)


def _campaigns(launch: datetime) -> list[Campaign]:
    """Oldest first, so each finished campaign has freed its customers before the next one assigns."""
    push_vs_sms = parse_spec(dict(
        name="demo-dormant-push-vs-sms", cohort="dormant_30d", attribution_days=14, primary_metric="returned",
        start=_local_day(launch - timedelta(days=50)), hypothesis="SMS with a ¥5 coupon beats a free push",
        variants=[
            dict(name="holdout", share=0.2, control=True),
            dict(name="push_0_10h", share=0.4, channel="push", coupon=0, template="好物商城：好久不见，新品已上架，来逛逛吧",
                 send_hour=10),
            dict(name="sms_c5_10h", share=0.4, channel="sms", coupon=5, template=PROFESSIONAL, send_hour=10),
        ],
    ))
    welcome = parse_spec(dict(
        name="demo-welcome-coupon", cohort="new_inactive", attribution_days=14, primary_metric="ordered",
        start=_local_day(launch - timedelta(days=35)), hypothesis="A ¥20 first-order coupon pays for itself",
        variants=[
            dict(name="holdout", share=0.2, control=True),
            dict(name="c10_push_20h", share=0.4, channel="push", coupon=10, template="好物商城：首单立减{coupon}元，今晚有效",
                 send_hour=20),
            dict(name="c20_sms_10h", share=0.4, channel="sms", coupon=20, template=LIVELY, send_hour=10),
        ],
    ))
    flat = lambda x: {stage: x for stage in STAGES}  # noqa: E731
    return [
        Campaign(push_vs_sms, launch - timedelta(days=50), ExperimentStatus.DECIDED,
                 {"push_0_10h": flat(0.008), "sms_c5_10h": flat(0.022)}, {"push_0_10h": 0.0, "sms_c5_10h": 0.006}),
        Campaign(welcome, launch - timedelta(days=35), ExperimentStatus.STOPPED,
                 {"c10_push_20h": flat(0.02), "c20_sms_10h": flat(0.045)}, {"c10_push_20h": 0.0, "c20_sms_10h": 0.01}),
        _main_campaign(launch),
        _targeting_campaign(launch),  # last: the three campaigns above draw exactly what they drew before it
    ]


def _targeting_campaign(launch: datetime) -> Campaign:
    """A finished SMS test in a layer of its own whose effect depends on past orders (repeat buyers respond
    2.2 times as strongly, everyone else 0.6 times): the Targeting page learns whom to recall from it."""
    spec = parse_spec(dict(
        name=TARGETING, layer="demo-targeting", cohort="all", attribution_days=14, primary_metric="returned",
        start=_local_day(launch - timedelta(days=20)),
        hypothesis="A ¥10 SMS brings back repeat buyers; the others mostly come back anyway or not at all",
        variants=[
            dict(name="holdout", share=0.5, control=True),
            dict(name="c10_sms_20h", share=0.5, channel="sms", coupon=10, template=PROFESSIONAL, send_hour=20),
        ],
    ))
    uplift = {"c10_sms_20h": {stage: 2 * COUPON_UPLIFT[10] * RESPONSIVENESS[stage] for stage in STAGES}}
    return Campaign(spec, launch - timedelta(days=20), ExperimentStatus.STOPPED, uplift,
                    {"c10_sms_20h": UNSUBSCRIBE_RATE["professional"]}, repeat_buyers_respond=True)


def _run(engine: Engine, rng: np.random.Generator, campaign: Campaign, today: datetime) -> None:
    """Create, assign and send through the real path, then simulate what customers did."""
    name = campaign.spec.name
    with session_scope(engine) as session:
        create_experiment(session, campaign.spec)
    assign(engine, name, as_of=campaign.launch)
    with tempfile.TemporaryDirectory() as folder:
        write_send_lists(engine, name, folder, actor=cli_actor(), now=campaign.launch)
    with session_scope(engine) as session:
        experiment = get_experiment(session, name)
        rows = session.execute(
            select(Assignment.customer_id, Variant.name, Variant.coupon, Assignment.assigned_at, Send.scheduled_at,
                   Customer.last_active_at, Customer.signup_at, Customer.first_order_at, Customer.orders_before)
            .join(Variant, Variant.id == Assignment.variant_id)
            .join(Customer, Customer.customer_id == Assignment.customer_id)
            .outerjoin(Send, (Send.experiment_id == Assignment.experiment_id)
                       & (Send.customer_id == Assignment.customer_id))
            .where(Assignment.experiment_id == experiment.id)
            .order_by(Assignment.customer_id)
        ).all()
        bulk_insert(session, Event, _outcomes(rng, campaign, rows, today))
        experiment.status = campaign.status


def _stage(last_active: datetime, signup: datetime, first_order: datetime | None, at: datetime) -> str:
    if first_order is None and (at - signup).days < 30:
        return "new_inactive"
    days = (at - last_active).days
    return "silent_3m" if days >= 90 else "lapsed_1_3m" if days >= 45 else "dormant_30d"


def _uplift(campaign: Campaign, variant: str, stage: str, orders_before: int) -> float:
    uplift = campaign.uplift[variant][stage]
    return uplift * RESPONSE_MULTIPLIER[orders_before >= REPEAT_BUYER_ORDERS] if campaign.repeat_buyers_respond \
        else uplift


def _outcomes(rng: np.random.Generator, campaign: Campaign, rows: list, end: datetime) -> list[dict]:
    """Events of the assigned customers until ``end`` (today: a running test only has events so far)."""
    events: list[dict] = []

    def add(customer: str, kind: EventType, at: datetime, value: float = 0.0) -> None:
        if at < end:
            events.append(dict(customer_id=customer, event_type=kind, occurred_at=at, value=Decimal(f"{value:.2f}")))

    window = 14 * 24 * 3600
    for customer, variant, coupon, assigned_at, sent_at, last_active, signup, first_order, orders in rows:
        stage = _stage(last_active, signup, first_order, campaign.launch)
        u = rng.random(10)
        natural = u[0] < NATURAL_RATE[stage]
        delivered = sent_at is not None and u[1] < DELIVERY_RATE
        treated = delivered and not natural and u[0] < NATURAL_RATE[stage] + _uplift(campaign, variant, stage, orders)
        if delivered:
            add(customer, EventType.DELIVERED, sent_at + timedelta(seconds=30))
            if u[2] < CLICK_RATE or treated:
                add(customer, EventType.CLICK, sent_at + timedelta(minutes=5 + 600 * u[3]))
            if u[4] < campaign.unsubscribe[variant]:
                add(customer, EventType.UNSUBSCRIBE, sent_at + timedelta(hours=2 * u[3]))
            if u[5] < COMPLAINT_RATE:
                add(customer, EventType.COMPLAINT, sent_at + timedelta(hours=3))
        if not (natural or treated):
            continue
        start = sent_at if treated else assigned_at
        at = start + timedelta(seconds=float(min(rng.exponential(3 * 24 * 3600), window - 60)))
        add(customer, EventType.VISIT, at)
        if u[6] < ORDER_SHARE:
            order_at = at + timedelta(minutes=7)
            add(customer, EventType.ORDER, order_at, float(rng.lognormal(np.log(80), 0.6)))
            if treated and coupon and u[7] < REDEEM_SHARE:
                add(customer, EventType.COUPON_REDEEMED, order_at)
        # Customers the coupon brought back stay a little less often than those who came back anyway.
        if u[8] < (RETENTION_TREATED if treated else RETENTION_NATURAL):
            again = at + timedelta(days=1 + 28 * float(u[9]))
            add(customer, EventType.VISIT, again)
            if rng.random() < ORDER_SHARE:
                add(customer, EventType.ORDER, again + timedelta(minutes=5), float(rng.lognormal(np.log(80), 0.6)))
    return events


def _summary(engine: Engine, *, already_built: bool) -> DemoSummary:
    with session_scope(engine) as session:
        names = list(session.scalars(select(Experiment.name).where(Experiment.name.like("demo-%"))
                                     .order_by(Experiment.created_at, Experiment.id)))
        count = lambda model, *where: session.scalar(select(func.count()).select_from(model).where(*where))  # noqa: E731
        return DemoSummary(
            experiment=MAIN,
            experiments=names,
            customers=count(Customer, Customer.customer_id.like("D%")),
            sends=count(Send),
            events=count(Event),
            already_built=already_built,
        )
