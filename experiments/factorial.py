"""Factorial designs: a spec declares factors and their levels, Recall Lab writes the cells.

```toml
[factors]
coupon = [5, 10]                                        # a list sets the variant field of that name
wording = { lively = "…{coupon}元…", professional = "…" }   # a table of level = template sets the wording
send_hour = [10, 20]

[factorial]                 # optional
holdout = 0.1               # share of the no-contact holdout (default 0.1, or declare a control variant)
channel = "sms"             # what every cell shares unless a factor sets it (channel default: sms)
name = "c{coupon}_{wording}_{send_hour}h"   # cell names (default "coupon5_lively_10h")
fraction = "1/2"            # a regular 2^(k-p) fraction of two-level factors …
generators = ["send_hour = coupon * wording"]   # … with p generators (the defining relation)
```

Factors map onto variant fields: ``coupon``, ``send_hour`` and ``channel`` take a list of values;
``wording`` (or ``template``) takes a table of level name = message template. The contacted share
(1 − holdout) is split equally over the cells; a team that wants other shares, or its own cell names,
writes the cells as ``[[variants]]`` with ``levels = {coupon = "5", wording = "lively", …}`` and Recall
Lab checks that they are exactly the design's cells. Each generated variant is an ordinary variant
(its message is checked, quiet hours apply) that also carries its ``levels``, which the analysis
(:mod:`analysis.factorial`) reads through :func:`design_of`.

In a fraction, every generated factor's ±1 code is the product of its generator's factors' codes
(first level −1, second +1), so some effects cannot be told apart: :func:`aliases` states which.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

MAX_CELLS = 64
DEFAULT_HOLDOUT = 0.1
DEFAULT_CHANNEL = "sms"
# Factor name → the variant field its levels set. Any other factor name is an error.
LIST_FIELDS = ("coupon", "send_hour", "channel")
TEMPLATE_FACTORS = ("wording", "template")
# How a level shows in a default cell name: coupon5, 10h, sms, lively.
NAME_PART = {"coupon": "coupon{level}", "send_hour": "{level}h"}
LEVEL_NAME = re.compile(r"^[\w][\w.\-]*$")
GENERATOR = re.compile(r"^\s*(\w+)\s*=\s*(-?)\s*(\w+(?:\s*\*\s*\w+)*)\s*$")


class FactorialSpec(BaseModel):
    """How cells are generated from ``[factors]``: holdout, the fields every cell shares, a fraction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    holdout: float | None = Field(default=None, gt=0, lt=1)  # None: 0.1, or the declared control
    channel: str | None = None
    coupon: Decimal | None = None
    template: str | None = None
    send_hour: int | None = None
    name: str = ""  # cell-name pattern with {factor} placeholders
    fraction: str = "1"
    generators: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Design:
    """What the analysis needs: each factor's levels (reference first) and each cell's levels."""

    factors: dict[str, tuple[str, ...]]
    cells: dict[str, dict[str, str]]  # variant name → factor → level
    fraction: str = "1"
    defining_relation: tuple[str, ...] = ()  # e.g. ("I = coupon×wording×send_hour",)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # effect → the effects it is confounded with

    def levels_of(self, factor: str) -> tuple[str, ...]:
        return self.factors[factor]


def level_name(value: Any) -> str:  # noqa: ANN401 - a TOML scalar
    """A level's name: 5 and 5.0 → "5", 5.5 → "5.5", strings as they are."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float, Decimal)):
        number = Decimal(str(value))
        return str(number.quantize(Decimal(1))) if number == number.to_integral_value() else str(number.normalize())
    return str(value)


def _error(kind: str, message: str, **context: Any) -> PydanticCustomError:  # noqa: ANN401
    return PydanticCustomError(kind, message, context)


def check_levels(factor: str, levels: Any) -> Any:  # noqa: ANN401 - a list or a table from TOML
    """One factor's levels: a list for coupon/send_hour/channel, a table of templates for the wording."""
    if factor in TEMPLATE_FACTORS:
        if not isinstance(levels, Mapping):
            raise _error("factor_levels", "factor '{factor}' is the wording: give a table of level = template, "
                         "e.g. {{ lively = \"…\", professional = \"…\" }}", factor=factor)
        names = list(levels)
    elif factor in LIST_FIELDS:
        if not isinstance(levels, Sequence) or isinstance(levels, str):
            raise _error("factor_levels", "factor '{factor}' takes a list of values, e.g. [5, 10]", factor=factor)
        names = [level_name(v) for v in levels]
    else:
        raise _error("unknown_factor", "unknown factor '{factor}': a list of levels sets {fields}; a table of "
                     "level = template sets the wording ({templates})", factor=factor,
                     fields=", ".join(LIST_FIELDS), templates=" or ".join(TEMPLATE_FACTORS))
    if len(names) < 2:
        raise _error("factor_levels", "factor '{factor}' needs at least two levels; got {n}", factor=factor,
                     n=len(names))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise _error("factor_levels", "factor '{factor}' repeats the level {levels}", factor=factor,
                     levels=", ".join(repeated))
    bad = [n for n in names if not LEVEL_NAME.match(n)]
    if bad:
        raise _error("factor_levels", "factor '{factor}': level names are letters, digits, _ . - ; got {bad}",
                     factor=factor, bad=", ".join(repr(b) for b in bad))
    return levels


def check_factors(factors: Mapping[str, Any], factorial: FactorialSpec | None) -> None:
    """Across factors: at most one wording factor, a valid fraction, at most MAX_CELLS cells."""
    wordings = [f for f in factors if f in TEMPLATE_FACTORS]
    if len(wordings) > 1:
        raise _error("factor_levels", "one wording factor at most; got {names}", names=", ".join(wordings))
    names = {f: [level_name(v) for v in levels] for f, levels in factors.items()}
    if factorial is not None and factorial.name:
        try:
            _cell_name(factorial.name, {f: v[0] for f, v in names.items()})
        except (KeyError, IndexError, ValueError):
            raise _error("cell_name", "cell names '{pattern}' may use only the factors as placeholders: {known}",
                         pattern=factorial.name, known=", ".join("{" + f + "}" for f in names)) from None
    _, generators = _fraction(names, factorial)
    cells = math.prod(len(v) for v in names.values()) // 2 ** len(generators)
    if cells > MAX_CELLS:
        raise _error("too_many_cells", "{cells} cells is more than {max}: fewer factors or levels, or a fraction "
                     "(fraction = \"1/2\" with generators)", cells=cells, max=MAX_CELLS)


def _fraction(names: Mapping[str, Sequence[str]], factorial: FactorialSpec | None
              ) -> tuple[str, list[tuple[str, int, list[str]]]]:
    """The fraction and its generators as (generated factor, sign, base factors)."""
    if factorial is None or factorial.fraction in ("1", "1/1"):
        if factorial is not None and factorial.generators:
            raise _error("fraction", "generators need a fraction, e.g. fraction = \"1/2\"")
        return "1", []
    match = re.fullmatch(r"\s*1\s*/\s*(\d+)\s*", factorial.fraction)
    p = len(factorial.generators)
    if not match or int(match.group(1)) != 2 ** p or p == 0:
        raise _error("fraction", "fraction '{fraction}' needs one generator per halving: \"1/2\" one, \"1/4\" two "
                     "(got {p})", fraction=factorial.fraction, p=p)
    generators = []
    for text in factorial.generators:
        parsed = GENERATOR.match(text)
        if not parsed:
            raise _error("fraction", "generator '{text}' should read like \"send_hour = coupon * wording\"", text=text)
        target, minus, base = parsed.group(1), parsed.group(2), [b.strip() for b in parsed.group(3).split("*")]
        unknown = [f for f in [target, *base] if f not in names]
        if unknown:
            raise _error("fraction", "generator '{text}' names no factor {unknown}", text=text,
                         unknown=", ".join(unknown))
        if target in base or len(set(base)) != len(base) or len(base) < 2:
            raise _error("fraction", "generator '{text}' sets a factor from two or more other factors", text=text)
        if any(len(names[f]) != 2 for f in [target, *base]):
            raise _error("fraction", "generator '{text}': fractions need two-level factors", text=text)
        generators.append((target, -1 if minus else 1, base))
    targets = [g[0] for g in generators]
    if len(set(targets)) != len(targets) or any(b in targets for g in generators for b in g[2]):
        raise _error("fraction", "each generator sets its own factor from factors no generator sets")
    return factorial.fraction.replace(" ", ""), generators


def _code(levels: Sequence[str], level: str) -> int:
    return -1 if level == levels[0] else 1


def level_combinations(factors: Mapping[str, Sequence[str]], factorial: FactorialSpec | None
                       ) -> list[dict[str, str]]:
    """Every cell's levels: the full factorial (first factor slowest), or the fraction's half/quarter."""
    _, generators = _fraction(factors, factorial)
    generated = {g[0]: g for g in generators}
    base = [f for f in factors if f not in generated]
    out = []
    for combo in itertools.product(*(factors[f] for f in base)):
        levels = dict(zip(base, combo, strict=True))
        for target, sign, from_ in generators:
            code = sign * math.prod(_code(factors[f], levels[f]) for f in from_)
            levels[target] = factors[target][0 if code < 0 else 1]
        out.append({f: levels[f] for f in factors})
    return out


def _cell_name(pattern: str, levels: Mapping[str, str]) -> str:
    if pattern:
        return pattern.format(**levels)
    return "_".join(NAME_PART.get(f, "{level}").format(level=level) for f, level in levels.items())


def expand(data: Any) -> Any:  # noqa: ANN401 - the raw spec mapping
    """Before validation: a spec with ``[factors]`` and no contacted variant gets the generated cells
    (and the holdout unless it declares a control). Malformed factors are left to the validators."""
    if not isinstance(data, Mapping) or not isinstance(data.get("factors"), Mapping):
        return data
    variants = data.get("variants") or []
    if any(isinstance(v, Mapping) and not v.get("control") for v in variants):
        return data  # the team wrote the cells: checked against the design by check_cells
    try:
        factorial = FactorialSpec.model_validate(data.get("factorial") or {})
        factors = {f: check_levels(f, levels) for f, levels in data["factors"].items()}
        check_factors(factors, factorial)
    except (ValueError, PydanticCustomError):
        return data
    names = {f: [level_name(v) for v in levels] for f, levels in factors.items()}
    combos = level_combinations(names, factorial)
    controls = [v for v in variants if isinstance(v, Mapping) and v.get("control")]
    holdout = factorial.holdout if factorial.holdout is not None else (
        sum(float(v.get("share", 0)) for v in controls) if controls else DEFAULT_HOLDOUT)
    if not controls:
        controls = [dict(name="holdout", share=holdout, control=True)]
    share = (1 - holdout) / len(combos)
    shared = {k: v for k, v in dict(channel=factorial.channel or DEFAULT_CHANNEL, coupon=factorial.coupon,
                                    template=factorial.template, send_hour=factorial.send_hour).items() if v is not None}
    cells = []
    for levels in combos:
        cell = dict(shared, name=_cell_name(factorial.name, levels), share=share, levels=levels)
        for factor, level in levels.items():
            values = factors[factor]
            if factor in TEMPLATE_FACTORS:
                cell["template"] = values[level]
            else:
                cell[factor] = next(v for v in values if level_name(v) == level)
        cells.append(cell)
    return {**data, "variants": [*controls, *cells]}


def cell_levels(value: Any) -> Any:  # noqa: ANN401 - a variant's raw ``levels``
    """A cell's levels as factor → level name; a list (two levels of one factor) is an error."""
    if not isinstance(value, Mapping):
        return value
    out = {}
    for factor, level in value.items():
        if isinstance(level, (list, tuple, dict)):
            raise _error("cell_levels", "a cell has one level of each factor; got {n} levels of {factor}",
                         n=len(level), factor=factor)
        out[factor] = level_name(level)
    return out


def check_cells(factors: Mapping[str, Any], factorial: FactorialSpec | None, variants: Sequence[Any]) -> None:
    """The contacted variants are exactly the design's cells: each names one declared level of every
    factor, its fields agree with its levels, and every cell of the design is there once."""
    names = {f: [level_name(v) for v in levels] for f, levels in factors.items()}
    seen: dict[tuple[str, ...], str] = {}
    for v in variants:
        if v.control:
            if v.levels:
                raise _error("cell_levels", "the control '{name}' has no levels", name=v.name)
            continue
        missing = [f for f in names if f not in v.levels]
        if missing:
            raise _error("cell_levels", "cell '{name}' has no level of {factors}", name=v.name,
                         factors=", ".join(missing))
        unknown = [f for f in v.levels if f not in names]
        if unknown:
            raise _error("cell_levels", "cell '{name}' has a level of {factors}, which is not a factor",
                         name=v.name, factors=", ".join(unknown))
        for f, level in v.levels.items():
            if level not in names[f]:
                raise _error("cell_levels", "cell '{name}': '{level}' is not a level of {factor} ({levels})",
                             name=v.name, level=level, factor=f, levels=", ".join(names[f]))
            if not _agrees(f, factors[f], level, v):
                raise _error("cell_levels", "cell '{name}': its {field} does not match {factor} = {level}",
                             name=v.name, field="template" if f in TEMPLATE_FACTORS else f, factor=f, level=level)
        key = tuple(v.levels[f] for f in names)
        if key in seen:
            raise _error("cell_levels", "cells '{a}' and '{b}' have the same levels", a=seen[key], b=v.name)
        seen[key] = v.name
    expected = {tuple(c[f] for f in names) for c in level_combinations(names, factorial)}
    absent, extra = expected - set(seen), set(seen) - expected
    if absent or extra:
        describe = lambda keys: "; ".join(", ".join(f"{f}={lv}" for f, lv in zip(names, k, strict=True))  # noqa: E731
                                          for k in sorted(keys))
        raise _error("cell_levels", "the cells are not the design's: {problem}",
                     problem=" and ".join(p for p in (f"missing {describe(absent)}" if absent else "",
                                                      f"not in the design {describe(extra)}" if extra else "") if p))


def _agrees(factor: str, values: Any, level: str, variant: Any) -> bool:  # noqa: ANN401
    if factor in TEMPLATE_FACTORS:
        return variant.template == values[level]
    value = getattr(variant, factor)
    return level_name(value.value if hasattr(value, "value") else value) == level


def design_of(spec: Any) -> Design | None:  # noqa: ANN401 - an ExperimentSpec (no import: spec imports us)
    """The design of a spec with ``[factors]``; None for a list of variants."""
    if not spec.factors:
        return None
    factors = {f: tuple(level_name(v) for v in levels) for f, levels in spec.factors.items()}
    cells = {v.name: dict(v.levels) for v in spec.variants if not v.control}
    fraction, generators = _fraction(factors, spec.factorial)
    return _with_relation(factors, cells, fraction, generators)


def _with_relation(factors: Mapping[str, tuple[str, ...]], cells: Mapping[str, Mapping[str, str]], fraction: str,
                   generators: Sequence[tuple[str, int, list[str]]]) -> Design:
    relation = defining_relation(generators)
    order = list(factors).index
    return Design(dict(factors), {c: dict(v) for c, v in cells.items()}, fraction,
                  tuple("I = " + "×".join(sorted(w, key=order)) for w in relation), aliases(list(factors), relation))


def design_from_levels(cells: Mapping[str, Mapping[str, str]]) -> Design:
    """A design from each cell's levels alone (e.g. imported results with a column per factor):
    levels in order of first appearance, the first one the reference."""
    factors: dict[str, list[str]] = {}
    for levels in cells.values():
        for f, level in levels.items():
            factors.setdefault(f, [])
            if level not in factors[f]:
                factors[f].append(level)
    return Design({f: tuple(v) for f, v in factors.items()}, {c: dict(v) for c, v in cells.items()})


class DesignProblem(ValueError):
    """Cells whose levels are not a design the analysis can read; ``factor`` and ``level``: the one at
    fault, if one (for the importer to name the line it first appears on)."""

    def __init__(self, message: str, factor: str | None = None, level: str | None = None) -> None:
        super().__init__(message)
        self.factor, self.level = factor, level


def _level_order(levels: Sequence[str]) -> tuple[str, ...]:
    """Numbers by value (5 before 10), anything else alphabetically: the first is the reference."""
    try:
        return tuple(sorted(levels, key=lambda lv: (Decimal(lv), lv)))
    except ArithmeticError:  # decimal.InvalidOperation: a level that is no number
        return tuple(sorted(levels))


def checked_design(cells: Mapping[str, Mapping[str, str]], factors: Sequence[str]) -> Design:
    """The design of cells known only by their levels (imported results with a column per factor),
    checked as a spec's ``[factors]`` are: every factor has two levels or more, at most MAX_CELLS cells,
    no two cells alike, and the cells are the full factorial or a regular 2^(k−p) fraction of
    two-level factors (its generators found from the cells, so the aliases are stated). Levels are
    ordered by :func:`_level_order` (not by the file's row order); raises :class:`DesignProblem`."""
    levels = {f: _level_order({lv[f] for lv in cells.values()}) for f in factors}
    for f, names in levels.items():
        if len(names) < 2:
            raise DesignProblem(f"factor {f} has only one level ({', '.join(names) or '-'}); a factor needs "
                                "two levels or more", f, names[0] if names else None)
        bad = [n for n in names if not LEVEL_NAME.match(n)]
        if bad:
            raise DesignProblem(f"level names are letters, digits, _ . - ; got {', '.join(map(repr, bad))}", f, bad[0])
    if len(cells) > MAX_CELLS:
        raise DesignProblem(f"{len(cells)} cells is more than {MAX_CELLS}")
    seen: dict[tuple[str, ...], str] = {}
    for cell, lv in cells.items():
        key = tuple(lv[f] for f in factors)
        if key in seen:
            raise DesignProblem(f"cells {seen[key]!r} and {cell!r} have the same levels "
                                f"({', '.join(f'{f}={x}' for f, x in zip(factors, key, strict=True))})")
        seen[key] = cell
    ordered = {c: {f: lv[f] for f in factors} for c, lv in cells.items()}
    full = list(itertools.product(*levels.values()))
    if len(seen) == len(full):
        return Design(levels, ordered)
    generators = _find_generators(levels, list(seen))
    if generators is None:
        missing = [k for k in full if k not in seen][:3]
        describe = "; ".join(", ".join(f"{f}={x}" for f, x in zip(factors, k, strict=True)) for k in missing)
        more = " …" if len(full) - len(seen) > len(missing) else ""
        raise DesignProblem(f"the cells are neither the full factorial ({len(full)} cells, {len(seen)} found; "
                            f"missing {describe}{more}) nor a regular fraction of two-level factors")
    fraction = f"1/{2 ** len(generators)}"
    return _with_relation(levels, ordered, fraction, generators)


def _find_generators(levels: Mapping[str, tuple[str, ...]], combos: Sequence[tuple[str, ...]]
                     ) -> list[tuple[str, int, list[str]]] | None:
    """The generators of a regular 2^(k−p) fraction whose cells are ``combos``, or None if it is not one:
    base factors whose levels form a full factorial, and every other factor's code ± a product of theirs."""
    names = list(levels)
    if any(len(v) != 2 for v in levels.values()):
        return None
    p = len(names) - (len(combos).bit_length() - 1)
    if p < 1 or len(combos) != 2 ** (len(names) - p):
        return None
    codes = {f: [_code(levels[f], c[i]) for c in combos] for i, f in enumerate(names)}
    for base in itertools.combinations(names, len(names) - p):
        if len({tuple(codes[f][r] for f in base) for r in range(len(combos))}) != len(combos):
            continue
        generators = []
        for target in (f for f in names if f not in base):
            found = None
            for size in range(2, len(base) + 1):
                for subset in itertools.combinations(base, size):
                    product = [math.prod(codes[f][r] for f in subset) for r in range(len(combos))]
                    for sign in (1, -1):
                        if all(sign * x == y for x, y in zip(product, codes[target], strict=True)):
                            found = (target, sign, list(subset))
                            break
                    if found:
                        break
                if found:
                    break
            if found is None:
                break
            generators.append(found)
        else:
            return generators
    return None


def design_to_json(design: Design) -> dict[str, Any]:
    """The design as stored with an imported experiment (its spec_json's ``factorial`` key)."""
    return {"factors": {f: list(v) for f, v in design.factors.items()}, "cells": design.cells,
            "fraction": design.fraction, "defining_relation": list(design.defining_relation),
            "aliases": {k: list(v) for k, v in design.aliases.items()}}


def design_from_json(data: Mapping[str, Any]) -> Design:
    return Design({f: tuple(v) for f, v in data["factors"].items()}, {c: dict(v) for c, v in data["cells"].items()},
                  data.get("fraction", "1"), tuple(data.get("defining_relation", ())),
                  {k: tuple(v) for k, v in data.get("aliases", {}).items()})


def defining_relation(generators: Sequence[tuple[str, int, list[str]]]) -> list[tuple[str, ...]]:
    """Every word of the defining relation: the products of the generators' words (I = ABC …)."""
    words = [frozenset([g[0], *g[2]]) for g in generators]
    out = []
    for r in range(1, len(words) + 1):
        for combo in itertools.combinations(words, r):
            word = frozenset()
            for w in combo:
                word = word ^ w
            out.append(word)
    return [tuple(sorted(w)) for w in out]


def aliases(factors: Sequence[str], relation: Sequence[Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Main effects and two-way interactions → the main effects and two-way interactions they are
    confounded with (effect × each word of the defining relation); only effects with such an alias."""
    order = {f: i for i, f in enumerate(factors)}
    effects = [frozenset([f]) for f in factors] + [frozenset(p) for p in itertools.combinations(factors, 2)]
    name = lambda e: "×".join(sorted(e, key=order.get))  # noqa: E731
    out = {}
    for effect in effects:
        confounded = [effect ^ frozenset(w) for w in relation]
        low = sorted({name(c) for c in confounded if 0 < len(c) <= 2}, key=lambda s: (s.count("×"), s))
        if low:
            out[name(effect)] = tuple(low)
    return out
