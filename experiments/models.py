"""The stored schema: typed SQLAlchemy 2 models.

Alembic migrations in ``migrations/`` create and change these tables; nothing calls
``create_all``. Timestamps are stored as naive UTC; conversion to the configured time zone
happens at the edges (import, send lists, display).
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(14, 2)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ExperimentStatus(str, enum.Enum):
    DRAFT = "draft"
    RUNNING = "running"
    STOPPED = "stopped"
    DECIDED = "decided"
    ROLLED_OUT = "rolled_out"


class Decision(str, enum.Enum):
    """What a decided experiment concluded: ship a named variant, or no-go (keep the status quo)."""

    SHIP = "ship"
    NO_GO = "no_go"


class ExperimentSource(str, enum.Enum):
    """Where outcomes come from: events in this database, or per-customer results imported."""

    DESIGNED = "designed"
    IMPORTED = "imported"


class MetricKind(str, enum.Enum):
    BINARY = "binary"
    CONTINUOUS = "continuous"


class MetricRole(str, enum.Enum):
    METRIC = "metric"
    COVARIATE = "covariate"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # native_enum=False: a VARCHAR + CHECK on every backend, so PostgreSQL downgrades leave no types behind.
    return Enum(cls, name=name, native_enum=False, values_callable=lambda e: [m.value for m in e], length=16)


class Customer(Base):
    """A customer of the client business. Phone is personal data: never shown in full."""

    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    city: Mapped[str | None] = mapped_column(String(64))
    signup_at: Mapped[datetime | None] = mapped_column(DateTime)
    first_order_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_active_at: Mapped[datetime | None] = mapped_column(DateTime)
    orders_before: Mapped[int] = mapped_column(Integer, default=0)
    spend_before: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    hypothesis: Mapped[str] = mapped_column(Text, default="")
    cohort: Mapped[str] = mapped_column(String(64), default="all")
    attribution_days: Mapped[int] = mapped_column(Integer, default=14)
    primary_metric: Mapped[str] = mapped_column(String(64))
    salt: Mapped[str] = mapped_column(String(64))
    # Mutual exclusion: a customer is in at most one running experiment of a layer.
    layer: Mapped[str] = mapped_column(String(64), default="recall", server_default="recall")
    status: Mapped[ExperimentStatus] = mapped_column(_enum(ExperimentStatus, "experiment_status"))
    source: Mapped[ExperimentSource] = mapped_column(_enum(ExperimentSource, "experiment_source"))
    start_at: Mapped[datetime | None] = mapped_column(DateTime)
    spec_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    launched_at: Mapped[datetime | None] = mapped_column(DateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime)
    decision: Mapped[Decision | None] = mapped_column(_enum(Decision, "experiment_decision"))
    decided_variant: Mapped[str | None] = mapped_column(String(128))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    rolled_out_at: Mapped[datetime | None] = mapped_column(DateTime)

    variants: Mapped[list[Variant]] = relationship(
        back_populates="experiment", order_by="Variant.position", cascade="all, delete-orphan"
    )
    metrics: Mapped[list[MetricDefinition]] = relationship(
        back_populates="experiment", order_by="MetricDefinition.position", cascade="all, delete-orphan"
    )

    @property
    def control(self) -> Variant:
        return next(v for v in self.variants if v.is_control)


class Variant(Base):
    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("experiment_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128))
    share: Mapped[float] = mapped_column(Float)
    is_control: Mapped[bool] = mapped_column(Boolean, default=False)
    channel: Mapped[str | None] = mapped_column(String(16))
    coupon: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    template: Mapped[str] = mapped_column(Text, default="")
    send_hour: Mapped[int | None] = mapped_column(Integer)

    experiment: Mapped[Experiment] = relationship(back_populates="variants")


class MetricDefinition(Base):
    """A metric (or covariate) of an experiment, with the kind that selects its test."""

    __tablename__ = "metrics"

    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[MetricKind] = mapped_column(_enum(MetricKind, "metric_kind"))
    role: Mapped[MetricRole] = mapped_column(_enum(MetricRole, "metric_role"), default=MetricRole.METRIC)

    experiment: Mapped[Experiment] = relationship(back_populates="metrics")


class Assignment(Base):
    """Which variant a customer is in; written once, never moved."""

    __tablename__ = "assignments"
    __table_args__ = (
        Index("ix_assignments_customer", "customer_id"),
    )

    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    bucket: Mapped[int] = mapped_column(Integer)
    assigned_at: Mapped[datetime] = mapped_column(DateTime)


class Send(Base):
    """One scheduled touch of a send list (recorded so costs count what was really sent)."""

    __tablename__ = "sends"
    __table_args__ = (
        # Reads of an experiment's sends go through the key; the caps probe (customer, time). The
        # message is not stored: the spec's template, the coupon, the time and the id give it (0011).
        Index("ix_sends_customer_time", "customer_id", "scheduled_at"),
        {"sqlite_with_rowid": False},
    )

    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True, default=0)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    scheduled_at: Mapped[datetime] = mapped_column(DateTime)


class ContactHold(Base):
    """An assigned customer the contact policy did not message, and why (intention-to-treat keeps
    them in their variant)."""

    __tablename__ = "contact_holds"

    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True, default=0)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(32))
    held_at: Mapped[datetime] = mapped_column(DateTime)


class AnalysisRun(Base):
    """A computed report, kept so the app opens instantly and estimates can be followed over time."""

    __tablename__ = "analysis_runs"
    __table_args__ = (Index("ix_analysis_runs_lookup", "experiment_id", "data_version", "options"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    data_version: Mapped[str] = mapped_column(String(64))
    options: Mapped[str] = mapped_column(String(256))
    report_json: Mapped[str] = mapped_column(Text)


class EventType(str, enum.Enum):
    VISIT = "visit"
    ORDER = "order"
    COUPON_REDEEMED = "coupon_redeemed"
    UNSUBSCRIBE = "unsubscribe"
    COMPLAINT = "complaint"
    DELIVERED = "delivered"
    CLICK = "click"


class Event(Base):
    """Something a customer did. The natural key makes re-imports idempotent; it leads with (customer,
    time), so it is also the index every read of a customer's events in a time window goes through
    (migration 0012: one B-tree fewer to fill per imported event)."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("customer_id", "occurred_at", "event_type", "value", name="uq_events_natural_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[EventType] = mapped_column(_enum(EventType, "event_type"))
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    value: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))


class ResultTable(Base):
    """What an imported experiment's per-customer results hold (:mod:`experiments.result_tables`): the
    names of its segment columns in order, and its number of rows (customers)."""

    __tablename__ = "result_tables"

    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)
    segments: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of segment column names
    rows: Mapped[int] = mapped_column(Integer)


class ResultBlock(Base):
    """Up to a few hundred thousand customers of an imported experiment's per-customer results, as one
    Parquet file (:mod:`experiments.result_tables`), kept in the database itself: an import stays one
    transaction, and backups and PostgreSQL servers need no shared file system."""

    __tablename__ = "result_blocks"

    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rows: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ResultSum(Base):
    """Sufficient statistics of an imported experiment, per variant (``dimension`` "") and per variant ×
    segment value, summed while the import reads the file (results never change once imported)."""

    __tablename__ = "result_sums"

    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)
    variant: Mapped[str] = mapped_column(String(128), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(128), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    sums: Mapped[str] = mapped_column(Text)  # JSON: {"v0": Σv0, "v0*v0": Σv0², "v0*v0*v0": Σv0³, "v0*v1": Σv0·v1, …}


class ImportRecord(Base):
    """A file imported once; the same content imported again is a no-op."""

    __tablename__ = "imports"
    __table_args__ = (UniqueConstraint("kind", "sha256", "target", name="uq_imports_content"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(128), default="")
    file_name: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(DateTime)


class User(Base):
    """A person who signs in to the app. The password is stored only as a salted, slow hash (argon2)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    password_changed_at: Mapped[datetime] = mapped_column(DateTime)


class AuditEntry(Base):
    """Who did what and when, from the app or the CLI. Append-only: triggers refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    via: Mapped[str] = mapped_column(String(8))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(256), default="")
    details: Mapped[str] = mapped_column(Text, default="{}")


class LaunchRequest(Base):
    """A launch waiting for a second person (``RECALL_LAUNCH_APPROVAL=1``). Editing the draft deletes
    its requests (cascade): an approval always approves the design that was requested."""

    __tablename__ = "launch_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(DateTime)
    audience: Mapped[int] = mapped_column(Integer)  # customers the launch would assign when requested
    approved_by: Mapped[str | None] = mapped_column(String(128))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime)


class ExperimentNote(Base):
    """An analyst's note on an experiment's results (what was seen, what was decided off the record)."""

    __tablename__ = "experiment_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    text: Mapped[str] = mapped_column(Text)


class TargetingModel(Base):
    """A fitted uplift model, stored to target a later experiment (``recall target EXP --save NAME``).

    ``estimator`` holds the fold models (joblib bytes) and, per fold model, the customers it learned
    from, so that a training customer is only ever scored by the fold model that did not learn from them.
    Only Recall Lab writes these bytes; unpickling them is safe only because of that (docs/security.md).
    """

    __tablename__ = "targeting_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id", ondelete="SET NULL"))
    experiment_name: Mapped[str] = mapped_column(String(64))  # kept if the training experiment is deleted
    metric: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(64))
    learner: Mapped[str] = mapped_column(String(32))
    features: Mapped[str] = mapped_column(Text)  # JSON list of the feature names (experiments.targeting)
    evaluation: Mapped[str] = mapped_column(Text)  # JSON: TargetingEvaluation.to_dict()
    estimator: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    created_by: Mapped[str] = mapped_column(String(128))


class TargetScore(Base):
    """A targeted experiment's customers as scored at launch: the predicted uplift, the policy group
    (hash: targeted policy or contact everyone) and whether the targeted policy contacts them."""

    __tablename__ = "target_scores"

    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    uplift: Mapped[float] = mapped_column(Float)
    targeting_policy: Mapped[bool] = mapped_column(Boolean)  # False: the contact-everyone group
    targeted: Mapped[bool] = mapped_column(Boolean)  # in the targeted audience (top share or cost-optimal)
