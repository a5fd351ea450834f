"""Main effects and interactions from cell sums: against statsmodels OLS (HC2) on per-customer rows,
and by seeded simulation (coverage, the null factor's false-positive rate)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from analysis.factorial import analyse, contrast, effects, interaction_weights, main_effect_weights
from analysis.sufficient import SampleStats
from experiments.factorial import Design, design_from_levels

ALPHA = 0.05


def _rows(seed: int, factors: dict[str, tuple[str, ...]], binary: bool) -> pd.DataFrame:
    """Per-customer rows of every cell, with unequal cell sizes and variances."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, combo in enumerate(itertools.product(*factors.values())):
        n = int(rng.integers(150, 400))
        if binary:
            y = (rng.random(n) < 0.05 + 0.02 * i).astype(float)
        else:
            y = rng.lognormal(np.log(20 + 3 * i), 0.4 + 0.1 * i, size=n) * (rng.random(n) < 0.3)
        frames.append(pd.DataFrame({"y": y, **dict(zip(factors, combo, strict=True))}))
    return pd.concat(frames, ignore_index=True)


def _design_and_stats(rows: pd.DataFrame, factors: dict[str, tuple[str, ...]]) -> tuple[Design, dict]:
    cells, stats = {}, {}
    for combo, group in rows.groupby(list(factors), sort=False):
        name = "_".join(combo)
        cells[name] = dict(zip(factors, combo, strict=True))
        stats[name] = SampleStats.from_values(group["y"].to_numpy())
    design = design_from_levels(cells)
    assert design.factors == factors
    return design, stats


def _sum_coded(rows: pd.DataFrame, factors: dict[str, tuple[str, ...]]):  # noqa: ANN202 - a fitted result
    terms = " * ".join(f"C({f}, Sum, levels={list(levels)!r})" for f, levels in factors.items())
    return smf.ols(f"y ~ {terms}", data=rows).fit(cov_type="HC2")


@pytest.mark.parametrize("binary", [True, False])
def test_two_level_effects_equal_the_effect_coded_ols_coefficients_with_hc2(binary: bool) -> None:
    """2×2×2: patsy's Sum coding gives +1 to the reference level, so a main effect (level − reference)
    is −2β and an interaction (difference of differences) is 4β; HC2 standard errors scale alike."""
    factors = {"coupon": ("5", "10"), "wording": ("lively", "professional"), "hour": ("10", "20")}
    rows = _rows(7, factors, binary)
    design, stats = _design_and_stats(rows, factors)
    fit = _sum_coded(rows, factors)
    mains, pairs = effects(design, {"y": "binary" if binary else "continuous"}, {"y": stats}, correction="none")
    column = {f: next(c for c in fit.params.index if c.startswith(f"C({f},") and ":" not in c) for f in factors}
    for e in mains:
        c = column[e.factor]
        assert e.abs_effect == pytest.approx(-2 * fit.params[c], abs=1e-9)
        lo, hi = fit.conf_int(alpha=ALPHA).loc[c]
        assert e.abs_ci == pytest.approx((-2 * hi, -2 * lo), abs=1e-9)
        assert e.p_value == pytest.approx(fit.pvalues[c], rel=1e-9, abs=1e-12)
    for e in pairs:
        c = f"{column[e.factors[0]]}:{column[e.factors[1]]}"
        assert e.abs_effect == pytest.approx(4 * fit.params[c], abs=1e-9)
        lo, hi = fit.conf_int(alpha=ALPHA).loc[c]
        assert e.abs_ci == pytest.approx((4 * lo, 4 * hi), abs=1e-9)
        assert e.p_value == pytest.approx(fit.pvalues[c], rel=1e-9, abs=1e-12)
    assert len(mains) == 3 and len(pairs) == 3


def test_three_level_contrasts_match_ols_t_tests_with_hc2() -> None:
    """3×2: each contrast, written as L·β from the cell rows of the effect-coded design matrix
    (equal weight per cell: the estimand), matches statsmodels' Wald test under HC2."""
    factors = {"coupon": ("0", "5", "10"), "hour": ("10", "20")}
    rows = _rows(11, factors, binary=True)
    design, stats = _design_and_stats(rows, factors)
    fit = _sum_coded(rows, factors)
    first = rows.groupby(list(factors), sort=False).head(1)
    x = {"_".join(r[f] for f in factors): fit.model.exog[i] for i, r in zip(first.index, first.to_dict("records"),
                                                                             strict=True)}
    mains, pairs = effects(design, {"y": "binary"}, {"y": stats}, correction="none")
    expected = {("main", e.factor, e.level): main_effect_weights(design, e.factor, e.level) for e in mains}
    expected |= {("pair", *e.levels): interaction_weights(design, tuple(e.factors), tuple(e.levels)) for e in pairs}
    assert len(mains) == 3 and len(pairs) == 2
    for e, key in zip([*mains, *pairs], expected, strict=True):
        weights = expected[key]
        assert sum(weights.values()) == pytest.approx(0)
        test = fit.t_test(sum(w * x[c] for c, w in weights.items()))
        assert e.abs_effect == pytest.approx(float(test.effect[0]), abs=1e-9)
        assert e.p_value == pytest.approx(float(test.pvalue), rel=1e-9, abs=1e-12)
        assert e.abs_ci == pytest.approx(tuple(test.conf_int(alpha=ALPHA)[0]), abs=1e-9)


def test_the_estimand_averages_other_factors_with_equal_weight() -> None:
    """Written out by hand for a 2×2: the coupon effect is the mean of its two conditional effects."""
    means = {("5", "a"): 0.10, ("5", "b"): 0.20, ("10", "a"): 0.16, ("10", "b"): 0.40}
    sizes = {("5", "a"): 1000, ("5", "b"): 3000, ("10", "a"): 2000, ("10", "b"): 500}
    stats = {f"{c}_{w}": SampleStats(sizes[c, w], means[c, w] * sizes[c, w], means[c, w] * sizes[c, w])
             for c, w in means}
    design = design_from_levels({f"{c}_{w}": {"coupon": c, "wording": w} for c, w in means})
    [coupon, wording], [pair] = effects(design, {"returned": "binary"}, {"returned": stats})
    assert coupon.abs_effect == pytest.approx(((0.16 - 0.10) + (0.40 - 0.20)) / 2)
    assert wording.abs_effect == pytest.approx(((0.20 - 0.10) + (0.40 - 0.16)) / 2)
    assert pair.abs_effect == pytest.approx((0.40 - 0.16) - (0.20 - 0.10))
    var = lambda c, w: means[c, w] * (1 - means[c, w]) * sizes[c, w] / (sizes[c, w] - 1) / sizes[c, w]  # noqa: E731
    se = math.sqrt(sum(var(*k) for k in means) / 4)
    assert coupon.abs_ci[1] - coupon.abs_effect == pytest.approx(1.959963984540054 * se)
    # The family is the four effects' p-values (Holm), not the cells'.
    assert coupon.p_value_adjusted >= coupon.p_value and pair.p_value_adjusted >= pair.p_value


def _simulated(replicates: int, n: int, rng: np.random.Generator) -> tuple[Design, dict[str, SampleStats], dict]:
    """2×2×2 with true effects: coupon +2 pt, wording 0 (the null factor), hour +1 pt, and a
    coupon × hour interaction of +1.5 pt; binomial cell sums for ``replicates`` experiments at once."""
    levels = {"coupon": ("5", "10"), "wording": ("lively", "professional"), "hour": ("10", "20")}
    cells, stats, truth = {}, {}, {}
    for combo in itertools.product(*levels.values()):
        c, _, h = (lv == levels[f][1] for f, lv in zip(levels, combo, strict=True))
        p = 0.06 + 0.02 * c + 0.01 * h + 0.015 * (c and h) - 0.0075 * c - 0.0075 * h
        name = "_".join(combo)
        cells[name] = dict(zip(levels, combo, strict=True))
        x = rng.binomial(n, p, size=replicates).astype(float)
        stats[name] = SampleStats(np.full(replicates, n), x, x)
        truth[name] = p
    design = design_from_levels(cells)
    return design, stats, truth


def test_simulation_coverage_and_the_null_factors_false_positive_rate() -> None:
    """2,000 experiments on cell sums (a second): 95% intervals cover the true main effects and the
    interaction about 95% of the time, and the null factor is significant about 5% of the time."""
    replicates, n = 2000, 2000
    rng = np.random.default_rng(20261130)
    design, stats, truth = _simulated(replicates, n, rng)
    z = 1.959963984540054
    for weights in [main_effect_weights(design, "coupon", "10"), main_effect_weights(design, "wording", "professional"),
                    main_effect_weights(design, "hour", "20"),
                    interaction_weights(design, ("coupon", "hour"), ("10", "20"))]:
        true = sum(w * truth[c] for c, w in weights.items())
        estimate, se = contrast(weights, stats)
        covered = np.mean(np.abs(estimate - true) <= z * se)
        assert 0.935 <= covered <= 0.965, (weights, covered)
    estimate, se = contrast(main_effect_weights(design, "wording", "professional"), stats)
    false_positive = np.mean(np.abs(estimate / se) > z)
    assert 0.035 <= false_positive <= 0.065
    estimate, se = contrast(main_effect_weights(design, "coupon", "10"), stats)
    assert np.mean(np.abs(estimate / se) > z) > 0.99  # 2 pt on 8,000 customers per level: found


def test_analyse_recommends_only_what_the_adjusted_intervals_support() -> None:
    rng = np.random.default_rng(3)
    design, sims, _ = _simulated(1, 20_000, rng)
    stats = {c: SampleStats(int(s.n[0]), float(s.sum[0]), float(s.sum_sq[0])) for c, s in sims.items()}
    stats["holdout"] = SampleStats(20_000, 0.05 * 20_000, 0.05 * 20_000)
    result = analyse(design, metrics={"returned": "binary"}, stats={"returned": stats}, holdout="holdout",
                     primary="returned")
    picks = {(p.subject, p.basis): p for p in result.recommendation}
    # coupon and hour interact (+1.5 pt, significant at these sizes): their best level depends on the other.
    assert picks["coupon", "rate"].verdict == "depends" and picks["coupon", "rate"].depends_on == ["hour"]
    assert picks["cell", "rate"].choice.startswith("10_") and picks["cell", "rate"].choice.endswith("_20")
    for p in result.recommendation:
        assert (p.verdict == "clear") == (p.lead_ci[0] > 0) or p.verdict == "depends"


def test_a_half_fraction_reports_main_effects_with_their_aliases_and_no_confounded_interaction() -> None:
    from experiments.factorial import aliases, defining_relation
    cells = {"a": {"coupon": "5", "wording": "lively", "hour": "20"}, "b": {"coupon": "10", "wording": "lively", "hour": "10"},
             "c": {"coupon": "5", "wording": "professional", "hour": "10"},
             "d": {"coupon": "10", "wording": "professional", "hour": "20"}}
    plain = design_from_levels(cells)
    relation = defining_relation([("hour", 1, ["coupon", "wording"])])
    design = Design(plain.factors, plain.cells, "1/2", ("I = coupon×wording×hour",), aliases(list(plain.factors), relation))
    rates = {"a": 0.10, "b": 0.14, "c": 0.11, "d": 0.17}
    stats = {c: SampleStats(5000, r * 5000, r * 5000) for c, r in rates.items()}
    mains, pairs = effects(design, {"returned": "binary"}, {"returned": stats})
    assert pairs == []
    coupon = next(e for e in mains if e.factor == "coupon")
    assert coupon.abs_effect == pytest.approx((0.14 + 0.17) / 2 - (0.10 + 0.11) / 2)
    assert coupon.aliases == ["wording×hour"]


@pytest.mark.parametrize("levels, effect", [([2, 2, 2], "main"), ([2, 2, 2], "interaction"), ([3, 2], "main"),
                                            ([3, 2], "interaction")])
def test_the_sample_size_gives_the_contrast_the_planned_power(levels: list[int], effect: str) -> None:
    """At the planned cells, the contrast's own standard error (analysis.factorial.contrast) puts the
    effect z_{α/2} + z_β standard errors from 0, and one customer fewer per cell falls short."""
    from analysis.factorial import factorial_sample_size
    baseline, mde = 0.08, 0.01
    plan = factorial_sample_size(baseline, mde, levels, effect=effect)
    names = [tuple(f"{i}" for i in range(n)) for n in levels]
    factors = {f"f{j}": n for j, n in enumerate(names)}
    design = design_from_levels({"_".join(c): dict(zip(factors, c, strict=True)) for c in itertools.product(*names)})
    weights = (main_effect_weights(design, "f0", "1") if effect == "main"
               else interaction_weights(design, ("f0", "f1"), ("1", "1")))
    needed = 1.959963984540054 + 0.8416212335729143
    for n, enough in [(plan.per_cell, True), (plan.per_cell - 1, False)]:
        stats = {c: SampleStats(n, baseline * n, baseline * n) for c in design.cells}
        _, se = contrast(weights, stats)
        # s² with ddof 1 is p(1 − p)·n/(n − 1): a hair above the plan's p(1 − p)
        assert (mde / float(se) * math.sqrt(n / (n - 1)) >= needed) == enough
    assert plan.total == math.ceil(plan.contacted / 0.9)
    if levels == [2, 2, 2]:
        other = factorial_sample_size(baseline, mde, levels, effect="interaction" if effect == "main" else "main")
        ratio = plan.contacted / other.contacted
        assert ratio == pytest.approx(0.25 if effect == "main" else 4, rel=1e-3)
