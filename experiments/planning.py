"""Planning: candidate recall tests scored by ICE, ranked, and turned into draft experiments.

A growth team keeps its ideas in a TOML file, one ``[[plans]]`` entry each: which cohort and value
tier, what to send, and three 1-10 scores (impact, confidence, ease). The ICE score is their mean
(Sean Ellis' original form; ties go to the higher impact). Recall Lab adds what the team cannot know
by heart, the audience each plan would reach today, and drafts the experiment of the chosen plan: a
no-contact holdout plus the plan's variant, for the cohort and value tier it names.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Connection, func, select

from experiments.catalog import Channel
from experiments.cohorts import COHORTS, VALUE_TIERS, cohort_filter, rfm_scores
from experiments.models import Customer
from experiments.spec import ExperimentSpec, Name, SpecError, parse_spec, problems_of

Score = Field(ge=1, le=10)


class Plan(BaseModel):
    """One candidate test: who, what, and how promising it looks (ICE, 1-10 each)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    idea: str = ""
    cohort: str
    value_tier: str = "any"
    channel: Channel
    coupon: Decimal = Field(default=Decimal("0"), ge=0)
    template: str
    send_hour: int = Field(ge=0, le=23)
    impact: int = Score
    confidence: int = Score
    ease: int = Score

    @field_validator("cohort")
    @classmethod
    def _known_cohort(cls, value: str) -> str:
        if value not in COHORTS:
            raise PydanticCustomError("unknown_cohort", "unknown cohort '{value}'; choose one of {known}",
                                      {"value": value, "known": ", ".join(COHORTS)})
        return value

    @field_validator("value_tier")
    @classmethod
    def _known_tier(cls, value: str) -> str:
        if value not in (*VALUE_TIERS, "any"):
            raise PydanticCustomError("unknown_tier", "unknown value tier '{value}'; choose one of {known}",
                                      {"value": value, "known": ", ".join((*VALUE_TIERS, "any"))})
        return value

    @property
    def ice(self) -> float:
        return (self.impact + self.confidence + self.ease) / 3


class PlanBook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    plans: list[Plan] = Field(min_length=1)

    def ranked(self) -> list[Plan]:
        """Best first: highest ICE, then highest impact, then name."""
        return sorted(self.plans, key=lambda p: (-p.ice, -p.impact, p.name))

    def get(self, name: str) -> Plan:
        for plan in self.plans:
            if plan.name == name:
                return plan
        raise KeyError(f"no plan named {name!r}; plans: {', '.join(p.name for p in self.plans)}")


def load_plans(path: str | Path) -> PlanBook:
    """Read and validate a plans file; errors name the file and field like spec errors do."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return PlanBook.model_validate(data)
    except FileNotFoundError:
        raise SpecError(str(path), [("", "file not found")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(str(path), [("", f"not valid TOML: {exc}")]) from None
    except ValidationError as exc:
        raise SpecError(str(path), problems_of(exc)) from None


def tier_bounds(conn: Connection, as_of: datetime) -> dict[str, tuple[Decimal | None, Decimal | None]]:
    """Spend bounds [low, high) of each value tier today, from the database's tercile assignment."""
    scores = rfm_scores(as_of).subquery()
    rows = conn.execute(
        select(scores.c.value_tier, func.min(Customer.spend_before), func.max(Customer.spend_before))
        .join(Customer, Customer.customer_id == scores.c.customer_id)
        .group_by(scores.c.value_tier)
    ).all()
    found = {tier: (low, high) for tier, low, high in rows}
    bounds: dict[str, tuple[Decimal | None, Decimal | None]] = {}
    for i, tier in enumerate(VALUE_TIERS):
        if tier not in found:
            continue
        low = None if i == 0 else found[tier][0]
        nxt = VALUE_TIERS[i + 1] if i + 1 < len(VALUE_TIERS) else None
        high = found[nxt][0] if nxt in found else None
        bounds[tier] = (low, high)
    return bounds


def tier_filter(plan: Plan, bounds: dict[str, tuple[Decimal | None, Decimal | None]]) -> str:
    """The spec filter expression selecting the plan's value tier ("" for any)."""
    if plan.value_tier == "any" or plan.value_tier not in bounds:
        return ""
    low, high = bounds[plan.value_tier]
    parts = ([f"spend_before >= {low}"] if low is not None else []) + ([f"spend_before < {high}"] if high is not None else [])
    return " and ".join(parts)


def audience(conn: Connection, plan: Plan, as_of: datetime,
             bounds: dict[str, tuple[Decimal | None, Decimal | None]]) -> int:
    """How many customers the plan would reach today (cohort and value tier)."""
    from experiments.filters import compile_filter

    where = (cohort_filter(plan.cohort, as_of), compile_filter(tier_filter(plan, bounds), as_of))
    return int(conn.scalar(select(func.count()).select_from(Customer).where(*where)) or 0)


def draft_spec(plan: Plan, *, name: str | None = None, holdout: float = 0.1, attribution_days: int = 14,
               filter: str = "") -> ExperimentSpec:
    """The draft experiment of a plan: a no-contact holdout and the plan's variant."""
    return parse_spec(dict(
        name=name or plan.name,
        hypothesis=plan.idea or f"{plan.name} brings back more {plan.cohort} customers than the natural return",
        cohort=plan.cohort,
        filter=filter,
        attribution_days=attribution_days,
        primary_metric="returned",
        variants=[
            dict(name="holdout", share=holdout, control=True),
            dict(name=plan.name, share=round(1 - holdout, 10), channel=plan.channel.value, coupon=plan.coupon,
                 template=plan.template, send_hour=plan.send_hour),
        ],
    ), source=f"plan {plan.name}")
