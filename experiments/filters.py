"""Custom cohorts: filter expressions over customer fields, compiled to parameterized SQL.

A growth team writes ``spend_before >= 200 and city in ('上海', '北京') and days_inactive >= 30``.
The expression is parsed with Python's own grammar and only a small whitelist of node types is
accepted: field names, literals, comparisons, ``in``/``not in``, ``and``/``or``/``not``. Every literal
becomes a bound parameter, so no text from the expression ever reaches the SQL string; anything
else (a function call, an attribute, a semicolon, a subquery) is rejected with the reason. Every
number is checked against its field's range before it becomes SQL, so a typo such as
``days_inactive >= 99999999`` is a spec error naming the field, not an overflow in Python or the database.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, not_, or_, true
from sqlalchemy.sql import expression as sql

from experiments.models import Customer

MAX_LENGTH = 1000


class FilterError(ValueError):
    """A filter expression that cannot be used, with the reason and where."""


# The numbers a filter may compare, per kind of field: wide enough for any real customer, narrow
# enough for every column type and date arithmetic (a century of days; spend within Numeric(14, 2)).
MAX_DAYS = 36_500
MAX_ORDERS = 10**9
MAX_SPEND = Decimal("999999999999.99")


def _fields(as_of: datetime) -> dict[str, tuple[ColumnElement, type]]:
    """Fields a filter may use: customer columns and days counted back from ``as_of``."""
    return {
        "customer_id": (Customer.customer_id, str),
        "city": (Customer.city, str),
        "orders_before": (Customer.orders_before, int),
        "spend_before": (Customer.spend_before, float),
        "signup_at": (Customer.signup_at, datetime),
        "first_order_at": (Customer.first_order_at, datetime),
        "last_active_at": (Customer.last_active_at, datetime),
        "days_inactive": (Customer.last_active_at, Days),
        "days_since_signup": (Customer.signup_at, Days),
    }


class Days:
    """Whole days between a timestamp column and ``as_of`` (like ``timedelta.days``).

    Comparisons on it are rewritten onto the timestamp itself (``days_inactive >= 30`` becomes
    ``last_active_at <= as_of - 30 days``), which every SQL dialect runs and indexes can serve.
    """


# The numbers each kind of field may compare with (inclusive), checked before a literal becomes SQL.
_RANGES: dict[type, tuple[int | Decimal, int | Decimal]] = {
    Days: (0, MAX_DAYS),
    int: (0, MAX_ORDERS),
    float: (-MAX_SPEND, MAX_SPEND),
}


_COMPARE: dict[type, Callable[[ColumnElement, object], ColumnElement[bool]]] = {
    ast.Eq: lambda c, v: c == v,
    ast.NotEq: lambda c, v: c != v,
    ast.Lt: lambda c, v: c < v,
    ast.LtE: lambda c, v: c <= v,
    ast.Gt: lambda c, v: c > v,
    ast.GtE: lambda c, v: c >= v,
}


def compile_filter(text: str, as_of: datetime) -> ColumnElement[bool]:
    """The WHERE clause for filter ``text`` (see the module docstring); raises :class:`FilterError`."""
    if not text.strip():
        return true()
    if len(text) > MAX_LENGTH:
        raise FilterError(f"filter is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise FilterError(f"not a filter expression (column {exc.offset}): {text!r}") from None
    return _Compiler(_fields(as_of), as_of).visit(tree.body)


def validate_filter(text: str) -> str:
    """Check a filter without a database (used when a spec is validated)."""
    compile_filter(text, datetime(2026, 1, 1))
    return text


class _Compiler:
    def __init__(self, fields: dict[str, tuple[ColumnElement, type]], as_of: datetime):
        self.fields = fields
        self.as_of = as_of

    def visit(self, node: ast.AST) -> ColumnElement[bool]:
        if isinstance(node, ast.BoolOp):
            parts = [self.visit(v) for v in node.values]
            return and_(*parts) if isinstance(node.op, ast.And) else or_(*parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not_(self.visit(node.operand))
        if isinstance(node, ast.Compare):
            return self._compare(node)
        raise FilterError(f"not allowed in a filter: {_describe(node)}; use comparisons joined by and/or/not")

    def _compare(self, node: ast.Compare) -> ColumnElement[bool]:
        clauses = []
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            clauses.append(self._one(left, op, right))
            left = right
        return and_(*clauses) if len(clauses) > 1 else clauses[0]

    def _one(self, left: ast.expr, op: ast.cmpop, right: ast.expr) -> ColumnElement[bool]:
        if isinstance(left, ast.Constant) and isinstance(right, ast.Name) and type(op) in _FLIP:
            left, op, right = right, _FLIP[type(op)](), left
        column, kind = self._field(left)
        field = ast.unparse(left)
        if kind is Days and not type(op) in _COMPARE:
            raise FilterError(f"{field} only takes comparisons such as >= 30")
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(right, (ast.Tuple, ast.List)) or not right.elts:
                raise FilterError(f"'in' needs a non-empty list such as ('上海', '北京'), not {_describe(right)}")
            values = [self._literal(e, kind, field) for e in right.elts]
            bound = sql.bindparam(None, values, expanding=True)
            return column.in_(bound) if isinstance(op, ast.In) else column.not_in(bound)
        if isinstance(op, (ast.Is, ast.IsNot)):
            if not (isinstance(right, ast.Constant) and right.value is None):
                raise FilterError("'is' only compares with None")
            return column.is_(None) if isinstance(op, ast.Is) else column.is_not(None)
        if type(op) not in _COMPARE:
            raise FilterError(f"operator not allowed: {type(op).__name__}")
        if kind is Days:
            return self._days(column, op, self._literal(right, Days, field))
        return _COMPARE[type(op)](column, sql.literal(self._literal(right, kind, field)))

    def _days(self, column: ColumnElement, op: ast.cmpop, n: int) -> ColumnElement[bool]:
        def before(days: int) -> ColumnElement:
            return sql.literal(self.as_of - timedelta(days=days))

        # days >= n  <=>  column <= as_of - n days (days counted like timedelta.days)
        if isinstance(op, ast.GtE):
            return column <= before(n)
        if isinstance(op, ast.Gt):
            return column <= before(n + 1)
        if isinstance(op, ast.Lt):
            return column > before(n)
        if isinstance(op, ast.LtE):
            return column > before(n + 1)
        in_day = and_(column <= before(n), column > before(n + 1))
        return in_day if isinstance(op, ast.Eq) else not_(in_day)

    def _field(self, node: ast.expr) -> tuple[ColumnElement, type]:
        if not isinstance(node, ast.Name):
            raise FilterError(f"the left side of a comparison must be a field, not {_describe(node)}")
        if node.id not in self.fields:
            raise FilterError(f"unknown field {node.id!r}; fields: {', '.join(self.fields)}")
        return self.fields[node.id]

    @staticmethod
    def _literal(node: ast.expr, kind: type, field: str) -> object:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            node = ast.Constant(-node.operand.value)
        if not isinstance(node, ast.Constant) or isinstance(node.value, bool) or node.value is None:
            raise FilterError(f"expected a literal value, not {_describe(node)}")
        value = node.value
        if kind is str:
            if not isinstance(value, str):
                raise FilterError(f"expected text in quotes, got {value!r}")
            return value
        if kind is datetime:
            try:
                return datetime.fromisoformat(str(value))
            except ValueError:
                raise FilterError(f"expected an ISO date such as '2026-01-31', got {value!r}") from None
        if not isinstance(value, (int, float)):
            raise FilterError(f"expected a number, got {value!r}")
        return _in_range(value, kind, field)


def _in_range(value: float, kind: type, field: str) -> int | float | Decimal:
    """``value`` as the field compares it, refused unless finite and within the field's range."""
    low, high = _RANGES[kind]
    if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
        raise FilterError(f"{field}: {value!r} is out of range; use a number from {low:,} to {high:,}")
    if kind is Days:
        if value != int(value):
            raise FilterError(f"{field}: {value!r} is not a whole number of days")
        return int(value)
    return Decimal(str(value)) if kind is float else value


_FLIP = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE, ast.Eq: ast.Eq, ast.NotEq: ast.NotEq}


def _describe(node: ast.AST) -> str:
    try:
        return f"{type(node).__name__} `{ast.unparse(node)}`"
    except Exception:  # noqa: BLE001 - only for the message
        return type(node).__name__
