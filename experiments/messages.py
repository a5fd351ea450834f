"""Message templates: which placeholders exist and how a message is rendered for one customer.

A template is plain text with ``{name}`` placeholders and nothing else: no format specs
(``{coupon:,}``, ``{customer_id:>400000000}``), conversions (``{coupon!r}``), attributes or indexes
(``{coupon.x}``, ``{coupon[0]}``), positional fields (``{0}``, ``{}``) or nested braces. A template
is an operator's text that reaches ``str.format``; anything beyond a plain name could allocate
gigabytes or read attributes, so it is refused with :class:`TemplateError` (a code and a message in
Chinese and English) before it is stored or rendered. A literal brace is written ``{{`` or ``}}``.
"""

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
_SHOWN = 40  # characters of a refused placeholder quoted in the message


class TemplateError(ValueError):
    """A template that is not plain text with ``{name}`` placeholders; ``str()`` is the English message."""

    def __init__(self, code: str, message_zh: str, message_en: str):
        super().__init__(message_en)
        self.code = code
        self.message_zh = message_zh
        self.message_en = message_en


def placeholders(template: str) -> list[str]:
    """Field names used in ``template``; raises :class:`TemplateError` unless each is a plain ``{name}``."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        raise TemplateError(
            "TEMPLATE_MALFORMED",
            "模板中的花括号不成对：占位符写作 {coupon}，字面花括号写作 {{ 或 }}",
            "unbalanced braces in the template: write a placeholder as {coupon} and a literal brace as {{ or }}",
        ) from None
    names = []
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            written = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            if len(written) > _SHOWN:
                written = written[:_SHOWN] + "…"
            raise TemplateError(
                "PLACEHOLDER_NOT_PLAIN",
                f"占位符 {written} 不可用：只允许 {{名称}} 形式（如 {{coupon}}），不能带格式、转换、属性或序号",
                f"placeholder {written} is not allowed: only a plain {{name}} such as {{coupon}}, "
                "without format specs, conversions, attributes or positions",
            )
        names.append(field)
    return names


def unknown_placeholders(template: str) -> list[str]:
    """Plain placeholders customer data cannot fill (raises :class:`TemplateError` like :func:`placeholders`)."""
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


class Template:
    """A template checked once (plain, known placeholders), then rendered for many customers."""

    def __init__(self, text: str):
        unknown = unknown_placeholders(text)
        if unknown:
            names = ", ".join("{" + u + "}" for u in unknown)
            raise TemplateError("UNKNOWN_PLACEHOLDER", f"客户数据无法填充占位符 {names}",
                                f"customer data cannot fill placeholder {names}")
        self.text = text

    def render(self, context: MessageContext) -> str:
        # Safe: every field is a plain, known name (checked above), so format_map only substitutes.
        return self.text.format_map(context.fields())


def render(template: str, context: MessageContext) -> str:
    """One message; raises :class:`TemplateError` for a template that is not plain (see the module)."""
    return Template(template).render(context)
