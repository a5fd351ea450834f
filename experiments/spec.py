"""Experiment specs: the TOML file a growth team writes, validated at the boundary.

A spec names the experiment, its hypothesis, target cohort, attribution window, primary metric,
and variants. Exactly one variant is the no-contact control: nobody in it is messaged, so its
return rate is the natural return rate (自然回流率) every uplift is measured against.
"""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, SerializerFunctionWrapHandler, ValidationError,
                      ValidationInfo, field_validator, model_serializer, model_validator)
from pydantic_core import PydanticCustomError

from experiments.catalog import (
    BUILTIN_METRICS,
    QUIET_HOURS_END,
    QUIET_HOURS_START,
    RATIO_METRICS,
    Channel,
    in_quiet_hours,
)
from experiments.cohorts import COHORTS
from experiments.factorial import FactorialSpec, cell_levels, check_cells, check_factors, check_levels, expand
from experiments.filters import FilterError, validate_filter
from experiments.identifiers import InvalidIdentifier, check_name
from experiments.message_checks import Severity, check_message
from experiments.messages import PLACEHOLDERS, TemplateError, unknown_placeholders
from experiments.source import SourceSpec

SHARE_TOLERANCE = 1e-6
# Our own messages already say what was given; pydantic's generic ones get "(got …)" appended.
CUSTOM_ERRORS = {"control_contacted", "missing_contact", "unknown_cohort", "unknown_metric", "control_count",
                 "duplicate_names", "shares_sum", "bad_template", "unknown_placeholder", "message_check",
                 "quiet_hours", "bad_filter", "touch_days", "bad_name",
                 "touch_window", "unknown_tier",
                 "vertical_rules", "source_url", "source_segments",
                 "factor_levels", "unknown_factor", "too_many_cells", "fraction", "cell_levels", "cell_name"}
RatioName = Literal[tuple(RATIO_METRICS)]  # type: ignore[valid-type]


def _usable_name(value: Any) -> Any:
    """A name as stored (NFC, stripped) if it can later name a file: ``<experiment>__<variant>.csv``
    must fit the file system's 255 bytes and stay inside its folder (experiments.identifiers)."""
    if not isinstance(value, str):
        return value  # pydantic's own type error follows
    try:
        return check_name(value)
    except InvalidIdentifier as exc:
        raise PydanticCustomError("bad_name", "{error}", {"error": str(exc)}) from None


# Letters (any script), digits, '_', '.', '-'; not starting with '.' or '-'.
Name = Annotated[str, BeforeValidator(_usable_name), Field(min_length=1, max_length=128, pattern=r"^[\w][\w.\-]*$")]


class SpecError(ValueError):
    """A spec that cannot be used, with every problem located by field."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {field}: {message}" if field else f"{source}: {message}" for field, message in problems]
        super().__init__("\n".join(lines))


def _outside_quiet_hours(hour: int | None) -> int | None:
    if hour is not None and in_quiet_hours(hour):
        raise PydanticCustomError(
            "quiet_hours", "send hour {hour} falls in the quiet hours {quiet} (local time)",
            {"hour": hour, "quiet": f"{QUIET_HOURS_START:02d}:00-{QUIET_HOURS_END:02d}:00"},
        )
    return hour


def _known_placeholders(template: str) -> str:
    try:
        unknown = unknown_placeholders(template)
    except TemplateError as exc:
        raise PydanticCustomError("bad_template", "{code}: {error}", {"code": exc.code, "error": str(exc)}) from None
    if unknown:
        raise PydanticCustomError(
            "unknown_placeholder", "unknown placeholder {names}; available: {known}",
            {"names": ", ".join("{" + u + "}" for u in unknown), "known": ", ".join("{" + p + "}" for p in PLACEHOLDERS)},
        )
    return template


def _passes_message_checks(template: str, channel: Channel) -> None:
    errors = [f for f in check_message(template, channel.value).findings if f.severity == Severity.ERROR]
    if errors:
        raise PydanticCustomError(
            "message_check", "template fails the message checks: {problems}",
            {"problems": "; ".join(f"{f.code}: {f.message_en}" for f in errors)},
        )


class TouchSpec(BaseModel):
    """A follow-up touch of a multi-touch variant, ``day`` days after the first (e.g. a reminder)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    day: int = Field(ge=1, le=89)
    channel: Channel
    template: str = Field(min_length=1)
    send_hour: int = Field(ge=0, le=23)

    _quiet = field_validator("send_hour")(_outside_quiet_hours)
    _placeholders = field_validator("template")(_known_placeholders)

    @model_validator(mode="after")
    def _checked(self) -> TouchSpec:
        _passes_message_checks(self.template, self.channel)
        return self


class VariantSpec(BaseModel):
    """One arm. Contacted arms need a channel, a message template and a send hour; they may add
    follow-up ``touches`` (a sequence such as MMS on day 0, SMS reminders on days 4 and 7)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    share: float = Field(gt=0, le=1)
    control: bool = False
    channel: Channel | None = None
    coupon: Decimal = Field(default=Decimal("0"), ge=0, max_digits=12, decimal_places=2)
    template: str = ""
    send_hour: int | None = Field(default=None, ge=0, le=23)
    touches: list[TouchSpec] = Field(default_factory=list)
    levels: dict[str, str] = Field(default_factory=dict)  # a factorial cell's factor → level (experiments.factorial)

    _quiet = field_validator("send_hour")(_outside_quiet_hours)
    _placeholders = field_validator("template")(_known_placeholders)
    _levels = field_validator("levels", mode="before")(cell_levels)

    @model_serializer(mode="wrap")
    def _without_empty_levels(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Specs without factors serialise as before (stored specs compare equal)."""
        data = handler(self)
        if not self.levels:
            data.pop("levels", None)
        return data

    @model_validator(mode="after")
    def _contact_fields(self) -> VariantSpec:
        if self.control:
            if self.channel is not None or self.template or self.coupon or self.touches:
                raise PydanticCustomError(
                    "control_contacted",
                    "the no-contact control is never messaged: remove channel, template, coupon and touches",
                )
            return self
        missing = [f for f in ("channel", "send_hour") if getattr(self, f) is None]
        if not self.template.strip():
            missing.append("template")
        if missing:
            raise PydanticCustomError(
                "missing_contact", "a contacted variant needs {fields}", {"fields": ", ".join(missing)}
            )
        _passes_message_checks(self.template, self.channel)
        days = [t.day for t in self.touches]
        if days != sorted(set(days)):
            raise PydanticCustomError("touch_days", "touches must be on increasing days; got days {days}",
                                      {"days": ", ".join(map(str, days))})
        return self


class CostSpec(BaseModel):
    """Overrides of the default channel unit costs (¥ per contacted customer) and fixed costs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: dict[Channel, Annotated[Decimal, Field(ge=0)]] = Field(default_factory=dict)
    fixed: Decimal = Field(default=Decimal("0"), ge=0)
    margin: Decimal = Field(default=Decimal("1"), gt=0, le=1)  # gross-margin share of revenue: ROI on margin
    acquisition_cost: Decimal | None = Field(default=None, gt=0)  # ¥ to win a new customer, to compare with


class ExperimentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[Name, Field(max_length=64)]  # also the assignment salt (experiments.salt is 64 long)
    hypothesis: str = ""
    cohort: str = "all"
    attribution_days: int = Field(default=14, ge=1, le=90)
    primary_metric: str = "returned"
    start: date | None = None
    layer: Annotated[Name, Field(max_length=64)] = "recall"  # mutual exclusion: one customer in at most one running experiment per layer
    filter: str = ""  # custom cohort, e.g. "spend_before >= 200 and city in ('上海', '北京')"
    vertical: str | None = None  # e.g. "finance": its messages need a risk disclaimer
    guardrails: list[str] = Field(default_factory=lambda: ["unsubscribed", "complained"])
    ratio_metrics: list[RatioName] = Field(default_factory=list)  # e.g. ["revenue_per_returner", "order_value"]
    factorial: FactorialSpec | None = None  # how [factors] become cells (experiments.factorial)
    factors: dict[str, list[int | float | str] | dict[str, str]] | None = None  # e.g. coupon = [5, 10]
    variants: list[VariantSpec] = Field(min_length=2)
    costs: CostSpec = Field(default_factory=CostSpec)
    source: SourceSpec | None = None  # analyse the team's own tables, read-only (see experiments.source)
    # Target by a stored uplift model (recall target EXP --save MODEL): contact its top share, or where the
    # expected incremental value exceeds the cost; the model must exist when the experiment is created.
    target: Annotated[Name, Field(max_length=64)] | None = None
    target_share: float | None = Field(default=None, gt=0, le=1)
    target_cutoff: Literal["cost-optimal"] | None = None

    _cells_from_factors = model_validator(mode="before")(expand)

    @field_validator("factors")
    @classmethod
    def _valid_factors(cls, factors: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        if factors is not None:
            for name, levels in factors.items():
                check_levels(name, levels)
            check_factors(factors, info.data.get("factorial"))
        return factors

    @field_validator("variants")
    @classmethod
    def _cells_of_the_design(cls, variants: list[VariantSpec], info: ValidationInfo) -> list[VariantSpec]:
        factors = info.data.get("factors")
        if factors:
            check_cells(factors, info.data.get("factorial"), variants)
        elif any(v.levels for v in variants) and "factors" in info.data:
            raise PydanticCustomError("cell_levels", "levels need [factors] declaring the factors and their levels")
        return variants

    @model_serializer(mode="wrap")
    def _without_empty_factors(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for key in ("factorial", "factors", "target", "target_share", "target_cutoff"):
            if data.get(key) is None:
                data.pop(key, None)
        return data

    @field_validator("cohort")
    @classmethod
    def _known_cohort(cls, value: str) -> str:
        if value not in COHORTS:
            raise PydanticCustomError(
                "unknown_cohort", "unknown cohort '{value}'; choose one of {known}",
                {"value": value, "known": ", ".join(COHORTS)},
            )
        return value

    @field_validator("filter")
    @classmethod
    def _valid_filter(cls, value: str) -> str:
        try:
            return validate_filter(value)
        except FilterError as exc:
            raise PydanticCustomError("bad_filter", "{error}", {"error": str(exc)}) from None

    @field_validator("guardrails")
    @classmethod
    def _known_guardrails(cls, values: list[str]) -> list[str]:
        for value in values:
            cls._known_metric(value)
        return values

    @field_validator("primary_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in BUILTIN_METRICS:
            raise PydanticCustomError(
                "unknown_metric", "unknown metric '{value}'; choose one of {known}",
                {"value": value, "known": ", ".join(BUILTIN_METRICS)},
            )
        return value

    @field_validator("variants")
    @classmethod
    def _one_control_shares_unique(cls, variants: list[VariantSpec]) -> list[VariantSpec]:
        controls = [v.name for v in variants if v.control]
        if len(controls) != 1:
            raise PydanticCustomError(
                "control_count",
                "exactly one variant must be the no-contact control (control = true); found {n}{names}",
                {"n": len(controls), "names": f": {', '.join(controls)}" if controls else ""},
            )
        names = [v.name for v in variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PydanticCustomError(
                "duplicate_names", "variant names must be unique; repeated: {names}", {"names": ", ".join(duplicates)}
            )
        total = sum(v.share for v in variants)
        if abs(total - 1) > SHARE_TOLERANCE:
            raise PydanticCustomError(
                "shares_sum", "variant shares must sum to 1; they sum to {total}", {"total": round(total, 6)}
            )
        return variants

    @model_validator(mode="after")
    def _touches_inside_the_window(self) -> ExperimentSpec:
        late = [f"{v.name} day {t.day}" for v in self.variants for t in v.touches if t.day >= self.attribution_days]
        if late:
            raise PydanticCustomError(
                "touch_window", "touches must fall inside the {days}-day attribution window: {late}",
                {"days": self.attribution_days, "late": ", ".join(late)},
            )
        return self

    @model_validator(mode="after")
    def _one_target_cutoff(self) -> ExperimentSpec:
        if self.target is None and (self.target_share is not None or self.target_cutoff is not None):
            raise PydanticCustomError("target_cutoff", "target_share and target_cutoff need target = \"MODEL\"")
        if self.target is not None and (self.target_share is None) == (self.target_cutoff is None):
            raise PydanticCustomError(
                "target_cutoff", "target = {model!r} needs exactly one of target_share (e.g. 0.3) or "
                "target_cutoff = \"cost-optimal\"", {"model": self.target})
        if self.target is not None and self.source is not None:
            raise PydanticCustomError("target_source", "target = MODEL needs Recall Lab's own assignment, not a [source]")
        return self

    @model_validator(mode="after")
    def _vertical_rules(self) -> ExperimentSpec:
        if self.vertical is None:
            return self
        failing = [
            v.name for v in self.contacted for template, channel in [(v.template, v.channel)]
            + [(t.template, t.channel) for t in v.touches]
            if any(f.severity == Severity.ERROR and f.code == "RISK_DISCLAIMER_MISSING"
                   for f in check_message(template, channel.value, vertical=self.vertical).findings)
        ]
        if failing:
            raise PydanticCustomError(
                "vertical_rules", "{vertical} messages need a risk disclaimer (e.g. 投资有风险): {names}",
                {"vertical": self.vertical, "names": ", ".join(dict.fromkeys(failing))},
            )
        return self

    @property
    def control(self) -> VariantSpec:
        return next(v for v in self.variants if v.control)

    @property
    def contacted(self) -> list[VariantSpec]:
        return [v for v in self.variants if not v.control]


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def problems_of(exc: ValidationError) -> list[tuple[str, str]]:
    """(field, message) for every error pydantic found, fields written like ``variants[1].send_hour``."""
    problems = []
    errors = exc.errors(include_url=False)
    bad_factors = any(err["loc"][:1] in (("factors",), ("factorial",)) for err in errors)
    for err in errors:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if bad_factors and loc == ("variants",) and err["type"] == "missing":
            continue  # the cells were not generated because the factors are wrong: said once, there
        message = err["msg"]
        if err["type"] not in CUSTOM_ERRORS and "input" in err:
            message = f"{message} (got {err['input']!r})"
        problems.append((_location(loc), message))
    return problems


def parse_spec(data: dict[str, Any], source: str = "<spec>") -> ExperimentSpec:
    """Validate a spec given as a mapping; raise :class:`SpecError` naming every bad field."""
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, problems_of(exc)) from None


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate a TOML spec file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(str(path), [("", "file not found")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(str(path), [("", f"not valid TOML: {exc}")]) from None
    return parse_spec(data, str(path))
