"""Message templates: which placeholders exist and how a message is rendered for one customer."""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

PLACEHOLDERS = {
    "coupon": "coupon face value in ¥, e.g. 10",
    "customer_id": "the customer's id",
    "send_date": "send day, e.g. 12月1日",
}


def placeholders(template: str) -> list[str]:
    """Field names used in ``template`` (``{coupon}`` style)."""
    return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]


def unknown_placeholders(template: str) -> list[str]:
    return [p for p in placeholders(template) if p not in PLACEHOLDERS]


@dataclass(frozen=True)
class MessageContext:
    coupon: Decimal
    customer_id: str
    send_at_local: datetime

    def fields(self) -> dict[str, str]:
        coupon = self.coupon.normalize()
        return {
            "coupon": f"{coupon:f}",
            "customer_id": self.customer_id,
            "send_date": f"{self.send_at_local.month}月{self.send_at_local.day}日",
        }


def render(template: str, context: MessageContext) -> str:
    return template.format_map(context.fields())
