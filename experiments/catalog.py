"""Vocabularies shared by specs, storage and analysis: channels, costs, cohorts, built-in metrics."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from experiments.models import MetricKind


class Channel(str, Enum):
    SMS = "sms"
    MMS = "mms"
    PUSH = "push"
    EMAIL = "email"
    WECHAT = "wechat"
    PHONE = "phone"


# ¥ per contacted customer; a spec's [costs] table overrides them.
DEFAULT_CHANNEL_COSTS: dict[Channel, Decimal] = {
    Channel.SMS: Decimal("0.05"),
    Channel.MMS: Decimal("0.15"),
    Channel.PUSH: Decimal("0"),
    Channel.EMAIL: Decimal("0.01"),
    Channel.WECHAT: Decimal("0"),
    Channel.PHONE: Decimal("2.00"),
}


@dataclass(frozen=True)
class BuiltinMetric:
    name: str
    kind: MetricKind
    label_zh: str
    label_en: str


# Outcomes computed from events inside each customer's attribution window.
BUILTIN_METRICS: dict[str, BuiltinMetric] = {
    m.name: m
    for m in (
        BuiltinMetric("returned", MetricKind.BINARY, "回流率", "Return rate"),
        BuiltinMetric("ordered", MetricKind.BINARY, "下单率", "Order rate"),
        BuiltinMetric("revenue", MetricKind.CONTINUOUS, "人均收入", "Revenue per customer"),
        BuiltinMetric("redeemed", MetricKind.BINARY, "用券率", "Coupon redemption rate"),
        BuiltinMetric("unsubscribed", MetricKind.BINARY, "退订率", "Unsubscribe rate"),
        BuiltinMetric("complained", MetricKind.BINARY, "投诉率", "Complaint rate"),
    )
}


@dataclass(frozen=True)
class RatioMetric:
    """Σ numerator / Σ denominator over an arm's customers (e.g. revenue per returned customer)."""

    name: str
    numerator: str
    denominator: str
    label_zh: str
    label_en: str


# Optional in a spec (``ratio_metrics``); analysed by the delta method (analysis.ratio).
RATIO_METRICS: dict[str, RatioMetric] = {
    m.name: m
    for m in (
        RatioMetric("revenue_per_returner", "revenue", "returned", "回流客单收入", "Revenue per returned customer"),
        RatioMetric("order_value", "revenue", "orders", "客单价", "Average order value"),
    )
}


# Quiet hours (local time): no marketing touch may be scheduled from 21:00 until 08:00.
QUIET_HOURS_START = 21
QUIET_HOURS_END = 8


def in_quiet_hours(hour: int) -> bool:
    return hour >= QUIET_HOURS_START or hour < QUIET_HOURS_END
