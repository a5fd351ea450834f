"""Validation of the statistics by simulation: one file, fixed seeds, 10,000 experiments per rate.

Every rate below is the share of ``SIMS`` = 10,000 simulated experiments in which something happened
(a false positive, an interval covering the truth), and is checked against a band of ±3 Monte Carlo
standard errors, 3·√(p(1 − p)/N), around its target p. The experiments are generated as arrays of
shape (experiments, customers) in chunks of at most ``MAX_CELLS`` values (≈ 32 MB each, so a few
hundred MB at the peak), reduced to sufficient statistics with ``SampleStats.from_values(..., axis=1)``
or ``CovariateStats.from_values`` and passed to the vectorized tests once per chunk, exactly as the
report passes the sums SQL returns.

- A/A false-positive rate at α = 0.05: binary (pooled two-proportion z) and continuous (Welch)
  metrics, unadjusted and CUPED with a correlated pre-period covariate, 50/50 and 90/10 splits.
- Skewed revenue at a 90/10 split: per tail, the report's method (cap at the pooled
  ``CAP_QUANTILE`` nearest-rank percentile of positive values, then the skewness-corrected Welch)
  holds 0.025, and so does the report's per-experiment switch on the pooled λ; plain Welch does not.
- Coverage of the 95% intervals: Newcombe, Welch, the relative-uplift delta method, CUPED.
- Ratio metrics (analysis.ratio, delta method): A/A at 50/50 and coverage; A/A at 90/10 with a
  200-customer holdout is above α (a strict xfail).
- Sequential monitoring, a look after every one of 30 days: the always-valid confidence sequence
  keeps the false-positive rate ≤ 0.05, naive repeated z-tests do not; O'Brien-Fleming-type
  group-sequential boundaries (5 looks) hold 0.025 per side.
- CUPED: unbiased, and the variance it removes is the variance it reports removing.

The observed rates are listed in docs/statistics/validation.md. Run: ``.venv/bin/python -m pytest
tests/test_validation.py -v``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pytest
from scipy import stats

from analysis.cuped import CovariateStats, cuped
from analysis.frequentist import (
    newcombe_interval,
    relative_interval,
    skew_corrected_welch,
    pooled_skewness_lambda,
    two_proportion_z,
    welch,
)
from analysis.ratio import RatioStats, ratio_test
from analysis.report import CAP_QUANTILE, SKEW_THRESHOLD
from analysis.sequential import confidence_sequence, obf_boundaries
from analysis.sufficient import SampleStats

SIMS = 10_000  # simulated experiments behind every rate
ALPHA = 0.05
MAX_CELLS = 4_000_000  # values in one generated (experiments × customers) array


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Rate:
    """How many of ``sims`` simulated experiments showed the event."""

    label: str
    hits: int
    sims: int = SIMS

    @property
    def value(self) -> float:
        return self.hits / self.sims


def band(target: float, sims: int = SIMS) -> float:
    """±3 Monte Carlo standard errors of a rate whose true value is ``target``."""
    return 3 * math.sqrt(target * (1 - target) / sims)


def describe(rate: Rate, target: float) -> str:
    b = band(target, rate.sims)
    return (f"{rate.label}: observed {rate.value:.4f} ({rate.hits:,}/{rate.sims:,}); band {target} ± {b:.4f} "
            f"= [{target - b:.4f}, {target + b:.4f}]")


def assert_within(rate: Rate, target: float) -> None:
    assert abs(rate.value - target) <= band(target, rate.sims), describe(rate, target)


def assert_at_most(rate: Rate, target: float) -> None:
    """The upper side of the band only: a rate that may (and should) be below its nominal level."""
    assert rate.value <= target + band(target, rate.sims), describe(rate, target) + " (upper side checked)"


def chunks(sims: int, customers: int) -> Iterator[int]:
    """Numbers of experiments per chunk, so that one (chunk × customers) array has ≤ MAX_CELLS values."""
    size = max(1, MAX_CELLS // customers)
    for start in range(0, sims, size):
        yield min(size, sims - start)


def pre_period(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A pre-period covariate x (skewed like past spend, gamma(2, 1)) and its standardized form z."""
    x = rng.gamma(2.0, 1.0, shape)
    return x, (x - 2.0) / math.sqrt(2.0)


def latent(rng: np.random.Generator, z: np.ndarray, rho: float) -> np.ndarray:
    """A standard-normal-ish outcome correlated ρ with the covariate's z."""
    return rho * z + math.sqrt(1 - rho * rho) * rng.standard_normal(z.shape)


def covered(lo: np.ndarray, hi: np.ndarray, truth: float) -> int:
    return int(((lo <= truth) & (truth <= hi)).sum())


# --------------------------------------------------------------------------- A/A false-positive rate

AA_CUSTOMERS = 2_000  # per experiment, both arms
AA_RHO = 0.6  # correlation of the outcome's latent score with the pre-period covariate
AA_BINARY_RATE = 0.20
SPLITS = {"50/50": 0.5, "90/10": 0.1}  # the control (no-contact holdout) gets the second number
AA_SEEDS = {("binary", "50/50"): 101, ("binary", "90/10"): 102,
            ("continuous", "50/50"): 103, ("continuous", "90/10"): 104}


@lru_cache
def aa_rejections(metric: str, split: str) -> dict[str, Rate]:
    """A/A experiments (both arms from one distribution): how often p < α, unadjusted and with CUPED,
    on the same experiments. Binary outcome: returned = latent > z₀.₈ (20 %); continuous: 50 + 20·latent."""
    rng = np.random.default_rng(AA_SEEDS[metric, split])
    n_c = round(AA_CUSTOMERS * SPLITS[split])
    threshold = stats.norm.isf(AA_BINARY_RATE)
    hits = {"unadjusted": 0, "cuped": 0}
    for size in chunks(SIMS, AA_CUSTOMERS):
        x, z = pre_period(rng, (size, AA_CUSTOMERS))
        score = latent(rng, z, AA_RHO)
        y = (score > threshold).astype(float) if metric == "binary" else 50.0 + 20.0 * score
        control, variant = SampleStats.from_values(y[:, :n_c], axis=1), SampleStats.from_values(y[:, n_c:], axis=1)
        if metric == "binary":
            _, p = two_proportion_z(control, variant)
        else:
            _, p, _ = welch(control, variant)
        hits["unadjusted"] += int((p < ALPHA).sum())
        adjusted = cuped(CovariateStats.from_values(y[:, :n_c], x[:, :n_c]),
                         CovariateStats.from_values(y[:, n_c:], x[:, n_c:]))
        hits["cuped"] += int((adjusted.p_value < ALPHA).sum())
    method = {"binary": "two-proportion z", "continuous": "Welch"}[metric]
    return {"unadjusted": Rate(f"A/A {metric} {split}, {method}", hits["unadjusted"]),
            "cuped": Rate(f"A/A {metric} {split}, CUPED", hits["cuped"])}


@pytest.mark.slow
@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("adjustment", ["unadjusted", "cuped"])
@pytest.mark.parametrize("metric", ["binary", "continuous"])
def test_aa_false_positive_rate_is_alpha(metric: str, adjustment: str, split: str) -> None:
    assert_within(aa_rejections(metric, split)[adjustment], ALPHA)


# --------------------------------------------------------------------------- skewed revenue, 90/10

REVENUE_VARIANT, REVENUE_CONTROL = 3_600, 400
REVENUE_SEED = 20260601


def spend(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Revenue per customer: 5 % buy, lognormal order values (median ¥55, long tail), the rest 0."""
    return (rng.random(shape) < 0.05) * rng.lognormal(4.0, 1.2, shape)


def positive_percentile(values: np.ndarray, q: float) -> np.ndarray:
    """Per row, what analysis.aggregates.positive_percentile computes in SQL: the value at nearest rank
    max(⌈q·m⌉ − 1, 0) (0-based) of the m positive values in ascending order; inf (no cap) when m = 0."""
    m = (values > 0).sum(axis=1)
    ranked = np.sort(np.where(values > 0, values, np.inf), axis=1)
    rank = np.maximum(np.ceil(q * m).astype(int) - 1, 0)
    return np.where(m > 0, ranked[np.arange(len(values)), rank], np.inf)


@lru_cache
def revenue_tails() -> dict[str, Rate]:
    """A/A revenue at 3,600 vs 400: how often each method says 'variant wins' / 'control wins' at α = 0.05."""
    rng = np.random.default_rng(REVENUE_SEED)
    customers = REVENUE_VARIANT + REVENUE_CONTROL
    hits = dict.fromkeys(("welch", "capped", "rule"), (0, 0))  # ('variant wins', 'control wins') counts
    switched = 0
    for size in chunks(SIMS, customers):
        values = spend(rng, (size, customers))
        variant, control = values[:, :REVENUE_VARIANT], values[:, REVENUE_VARIANT:]
        raw_c, raw_v = SampleStats.from_values(control, axis=1), SampleStats.from_values(variant, axis=1)
        t, p_welch, _ = welch(raw_c, raw_v)
        cap = positive_percentile(values, CAP_QUANTILE)[:, None]  # pooled over both arms, as the report
        g, p_capped, _ = skew_corrected_welch(SampleStats.from_values(np.minimum(control, cap), axis=1),
                                              SampleStats.from_values(np.minimum(variant, cap), axis=1))
        # the report's rule per experiment (analysis.report._skew_handling): pooled λ of the uncapped sums
        skewed = np.abs(pooled_skewness_lambda(raw_c, raw_v)) >= SKEW_THRESHOLD
        switched += int(skewed.sum())
        rule_stat, p_rule = np.where(skewed, g, t), np.where(skewed, p_capped, p_welch)
        for key, statistic, p in (("welch", t, p_welch), ("capped", g, p_capped), ("rule", rule_stat, p_rule)):
            hits[key] = (hits[key][0] + int(((p < ALPHA) & (statistic > 0)).sum()),
                         hits[key][1] + int(((p < ALPHA) & (statistic < 0)).sum()))
    names = {"welch": "plain Welch",
             "capped": f"capped at the {CAP_QUANTILE:.0%} positive percentile + skewness-corrected Welch",
             "rule": f"the report's choice per experiment (capped + corrected when |λ| ≥ {SKEW_THRESHOLD}, "
                     f"{switched:,} of {SIMS:,}; plain Welch otherwise)"}
    return {f"{key}_{tail}": Rate(f"revenue 90/10, {names[key]}, '{tail} wins' tail", hits[key][i])
            for key in names for i, tail in enumerate(("variant", "control"))}


@pytest.mark.slow
@pytest.mark.parametrize("tail", ["variant", "control"])
def test_skewed_revenue_report_method_holds_each_tail(tail: str) -> None:
    """The report's method for this case (cap + skewness-corrected Welch), applied to every experiment."""
    assert_within(revenue_tails()[f"capped_{tail}"], ALPHA / 2)


@pytest.mark.slow
def test_skewed_revenue_report_decision_rule_holds_each_tail() -> None:
    """The report's data-dependent choice (skew handling only when the pooled |λ| ≥ SKEW_THRESHOLD), per
    experiment. (A rule on the arms' own λ failed here: 'variant wins' 0.056, since the experiments it
    left on plain Welch were those whose small holdout drew no large order.)"""
    rates = revenue_tails()
    for tail in ("variant", "control"):
        assert_within(rates[f"rule_{tail}"], ALPHA / 2)


@pytest.mark.slow
def test_skewed_revenue_plain_welch_misses_a_tail() -> None:
    """The naive method, for comparison: at least one of Welch's tails is outside the band."""
    rates = revenue_tails()
    outside = [r for r in (rates["welch_variant"], rates["welch_control"])
               if abs(r.value - ALPHA / 2) > band(ALPHA / 2)]
    assert outside, "plain Welch held both tails: " + "; ".join(
        describe(rates[k], ALPHA / 2) for k in ("welch_variant", "welch_control"))


# --------------------------------------------------------------------------- coverage of the 95 % intervals

BINARY_EFFECT = {"n_c": 600, "n_v": 1_400, "p_c": 0.10, "p_v": 0.13, "seed": 201}
CONTINUOUS_EFFECT = {"n_c": 300, "n_v": 700, "effect": 3.0, "rho": 0.6, "slope_shift": 0.2, "seed": 202}


@lru_cache
def binary_coverage() -> dict[str, Rate]:
    """Rates 10 % vs 13 % at 600 vs 1,400: Newcombe's interval of the difference and the delta-method
    interval of the relative uplift, each against its true value."""
    s = BINARY_EFFECT
    rng = np.random.default_rng(s["seed"])
    hits = {"newcombe": 0, "relative": 0}
    for size in chunks(SIMS, s["n_c"] + s["n_v"]):
        control = SampleStats.from_values(rng.random((size, s["n_c"])) < s["p_c"], axis=1)
        variant = SampleStats.from_values(rng.random((size, s["n_v"])) < s["p_v"], axis=1)
        hits["newcombe"] += covered(*newcombe_interval(control, variant), s["p_v"] - s["p_c"])
        hits["relative"] += covered(*relative_interval(control, variant), s["p_v"] / s["p_c"] - 1)
    return {"newcombe": Rate("coverage, binary, Newcombe interval of the difference", hits["newcombe"]),
            "relative": Rate("coverage, binary, delta-method interval of the relative uplift", hits["relative"])}


@dataclass(frozen=True)
class ContinuousRuns:
    """Per simulated experiment: the unadjusted difference, the CUPED estimate and its reported
    variance reduction; and how often each interval covered the truth."""

    unadjusted: np.ndarray
    adjusted: np.ndarray
    variance_reduction: np.ndarray
    coverage: dict[str, Rate]


@lru_cache
def continuous_runs() -> ContinuousRuns:
    """Spend-like outcome y = 50 + effect + 20·(θ_g z + √(1 − ρ²) e) at 300 vs 700, with a pre-period
    covariate x correlated ρ = 0.6 in the control and a steeper slope in the variant (a heterogeneous
    effect; E z = 0, so the average effect is still ``effect``): means 50 and 53, relative uplift 6 %."""
    s = CONTINUOUS_EFFECT
    rng = np.random.default_rng(s["seed"])
    rho, effect = s["rho"], s["effect"]
    hits = {"welch": 0, "relative": 0, "cuped": 0}
    unadjusted, adjusted, reduction = [], [], []
    for size in chunks(SIMS, s["n_c"] + s["n_v"]):
        arms = []
        for n, shift, slope in ((s["n_c"], 0.0, rho), (s["n_v"], effect, rho + s["slope_shift"])):
            x, z = pre_period(rng, (size, n))
            y = 50.0 + shift + 20.0 * (slope * z + math.sqrt(1 - rho * rho) * rng.standard_normal((size, n)))
            arms.append((x, y))
        (x_c, y_c), (x_v, y_v) = arms
        control, variant = SampleStats.from_values(y_c, axis=1), SampleStats.from_values(y_v, axis=1)
        _, _, (lo, hi) = welch(control, variant)
        hits["welch"] += covered(lo, hi, effect)
        hits["relative"] += covered(*relative_interval(control, variant), (50.0 + effect) / 50.0 - 1)
        result = cuped(CovariateStats.from_values(y_c, x_c), CovariateStats.from_values(y_v, x_v))
        hits["cuped"] += covered(*result.abs_ci, effect)
        unadjusted.append(np.asarray(variant.mean) - np.asarray(control.mean))
        adjusted.append(result.abs_uplift)
        reduction.append(result.variance_reduction)
    return ContinuousRuns(
        np.concatenate(unadjusted), np.concatenate(adjusted), np.concatenate(reduction),
        {"welch": Rate("coverage, continuous, Welch interval of the difference", hits["welch"]),
         "relative": Rate("coverage, continuous, delta-method interval of the relative uplift", hits["relative"]),
         "cuped": Rate("coverage, continuous, CUPED interval of the difference", hits["cuped"])})


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "interval"), [("binary", "newcombe"), ("binary", "relative"),
                                                    ("continuous", "welch"), ("continuous", "relative"),
                                                    ("continuous", "cuped")])
def test_intervals_cover_the_true_effect(scenario: str, interval: str) -> None:
    rates = binary_coverage() if scenario == "binary" else continuous_runs().coverage
    assert_within(rates[interval], 1 - ALPHA)


# --------------------------------------------------------------------------- CUPED: unbiased, and less variance


@pytest.mark.slow
def test_cuped_is_unbiased() -> None:
    runs = continuous_runs()
    effect = CONTINUOUS_EFFECT["effect"]
    mc_se = runs.adjusted.std(ddof=1) / math.sqrt(runs.adjusted.size)
    mean = runs.adjusted.mean()
    assert abs(mean - effect) <= 3 * mc_se, (
        f"CUPED mean estimate {mean:.4f} over {runs.adjusted.size:,} experiments; true effect {effect} "
        f"± 3 MC SE {3 * mc_se:.4f}")


@pytest.mark.slow
def test_cuped_reduces_variance_by_what_it_reports() -> None:
    runs = continuous_runs()
    var_adjusted, var_unadjusted = runs.adjusted.var(ddof=1), runs.unadjusted.var(ddof=1)
    empirical = 1 - var_adjusted / var_unadjusted
    reported = float(np.mean(runs.variance_reduction))
    # the ratio of two sample variances over N experiments has relative SE ≤ √(2/N + 2/N) (worst case:
    # the two estimates independent; they are positively correlated, which only narrows it)
    tolerance = 3 * (1 - empirical) * math.sqrt(4 / runs.adjusted.size)
    message = (f"variance of CUPED estimates {var_adjusted:.4f} vs unadjusted {var_unadjusted:.4f}: empirical "
               f"reduction {empirical:.4f}, mean reported variance_reduction {reported:.4f}, "
               f"tolerance ±{tolerance:.4f}")
    assert var_adjusted < var_unadjusted, message
    assert abs(empirical - reported) <= tolerance, message


# --------------------------------------------------------------------------- ratio metrics (delta method)

RATIO_CUSTOMERS = 2_000
RATIO_RETURN_RATE = 0.20
RATIO_SEEDS = {"50/50": 401, "90/10": 402, "coverage": 403}


def ratio_arm(rng: np.random.Generator, shape: tuple[int, int], order_scale: float) -> RatioStats:
    """Revenue per returned customer: y = returned (20 %), x = revenue = y · gamma(2, scale) (¥2·scale per
    returner), one row per customer whether or not they returned."""
    returned = rng.random(shape) < RATIO_RETURN_RATE
    return RatioStats.from_values(returned * rng.gamma(2.0, order_scale, shape), returned, axis=1)


@lru_cache
def ratio_rates(case: str) -> Rate:
    """A/A false positives of ratio_test at a split, or ('coverage') how often its 95 % interval of the
    difference covers the truth, 60 vs 66 (¥ per returned customer) at 800 vs 1,200."""
    rng = np.random.default_rng(RATIO_SEEDS[case])
    n_c = {"50/50": 1_000, "90/10": 200, "coverage": 800}[case]
    scale_v = 33.0 if case == "coverage" else 30.0
    hits = 0
    for size in chunks(SIMS, RATIO_CUSTOMERS):
        result = ratio_test(ratio_arm(rng, (size, n_c), 30.0), ratio_arm(rng, (size, RATIO_CUSTOMERS - n_c), scale_v))
        hits += covered(*result.abs_ci, 2 * (scale_v - 30.0)) if case == "coverage" else int(
            (result.p_value < ALPHA).sum())
    label = ("coverage, ratio (revenue per returned customer), delta-method interval of the difference"
             if case == "coverage" else f"A/A ratio (revenue per returned customer) {case}, delta-method z")
    return Rate(label, hits)


@pytest.mark.slow
@pytest.mark.parametrize("split", ["50/50", pytest.param("90/10", marks=pytest.mark.xfail(strict=True, reason=(
    "analysis.ratio.ratio_test refers a skewed ratio of ~40 returners in a 200-customer holdout to the "
    "normal: 0.063 instead of 0.05 (seed 402; 0.064 over 50,000 experiments, mostly the 'variant wins' tail)")))])
def test_ratio_aa_false_positive_rate_is_alpha(split: str) -> None:
    assert_within(ratio_rates(split), ALPHA)


@pytest.mark.slow
def test_ratio_interval_covers_the_true_difference() -> None:
    assert_within(ratio_rates("coverage"), 1 - ALPHA)


# --------------------------------------------------------------------------- sequential monitoring

SEQ = {"days": 30, "per_day": 150, "rate": 0.08, "seed": 301}  # per arm and day, A/A binary
OBF_LOOK_DAYS = (6, 12, 18, 24, 30)  # five equally spaced looks: information fractions 0.2 … 1


@lru_cache
def sequential_aa() -> dict[str, Rate]:
    """A/A, 150 customers per arm arrive every day for 30 days, a look after each day. Counts the
    experiments that were ever declared significant by each monitoring rule."""
    rng = np.random.default_rng(SEQ["seed"])
    days, per_day = SEQ["days"], SEQ["per_day"]
    planned_n = 2 * per_day * days  # known at launch; the mixture is tuned for it, never for the data
    boundaries = np.array(obf_boundaries([d / days for d in OBF_LOOK_DAYS], alpha=ALPHA / 2).boundaries)
    looks = np.array(OBF_LOOK_DAYS) - 1
    hits = dict.fromkeys(("naive", "cs", "p_always", "obf_upper", "obf_lower"), 0)
    for size in chunks(SIMS, days * per_day * 2):
        arms = []
        for _ in range(2):  # control, variant: each day's customers, summed per day, then cumulated over days
            daily = SampleStats.from_values(rng.random((size, days, per_day)) < SEQ["rate"], axis=2)
            arms.append(SampleStats(np.cumsum(daily.n, axis=1), np.cumsum(daily.sum, axis=1),
                                    np.cumsum(daily.sum_sq, axis=1)))
        control, variant = arms  # fields of shape (experiments, days): the data as seen at each look
        _, p_fixed = two_proportion_z(control, variant)
        hits["naive"] += int((p_fixed < ALPHA).any(axis=1).sum())
        cs = confidence_sequence(control, variant, alpha=ALPHA, planned_n=planned_n)
        hits["cs"] += int(((cs.ci_lo > 0) | (cs.ci_hi < 0)).any(axis=1).sum())
        hits["p_always"] += int((cs.p_value_always_valid.min(axis=1) <= ALPHA).sum())  # its running minimum
        z = np.nan_to_num(cs.statistic)  # the unpooled z that sequential_decision compares with the boundaries
        hits["obf_upper"] += int((z[:, looks] >= boundaries).any(axis=1).sum())
        hits["obf_lower"] += int((z[:, looks] <= -boundaries).any(axis=1).sum())
    return {
        "naive": Rate("30 daily looks, fixed-horizon two-proportion z at every look", hits["naive"]),
        "cs": Rate("30 daily looks, always-valid confidence sequence excludes 0 at some look", hits["cs"]),
        "p_always": Rate("30 daily looks, running minimum of the always-valid p-value ≤ 0.05", hits["p_always"]),
        "obf_upper": Rate("OBF K=5 (days 6-30), upper boundary crossed", hits["obf_upper"]),
        "obf_lower": Rate("OBF K=5 (days 6-30), lower boundary crossed", hits["obf_lower"]),
    }


@pytest.mark.slow
def test_daily_looks_confidence_sequence_keeps_alpha() -> None:
    rates = sequential_aa()
    assert_at_most(rates["cs"], ALPHA)
    assert_at_most(rates["p_always"], ALPHA)
    assert rates["p_always"].hits == rates["cs"].hits, (  # the p-value is the dual of the interval
        f"{describe(rates['p_always'], ALPHA)} vs {describe(rates['cs'], ALPHA)}")


@pytest.mark.slow
def test_daily_looks_naive_fixed_horizon_tests_inflate_alpha() -> None:
    """The naive rule, for comparison: stopping at the first p < 0.05 over 30 looks is far above α
    (at least twice α, and even its lower 3-SE bound above the upper end of α's band)."""
    naive = sequential_aa()["naive"]
    lower = naive.value - band(naive.value)
    assert naive.value > 2 * ALPHA and lower > ALPHA + band(ALPHA), (
        describe(naive, ALPHA) + f"; lower 3-SE bound {lower:.4f}")


@pytest.mark.slow
@pytest.mark.parametrize("side", ["upper", "lower"])
def test_group_sequential_obf_holds_alpha_per_side(side: str) -> None:
    assert_within(sequential_aa()[f"obf_{side}"], ALPHA / 2)


def test_confidence_sequence_on_arrays_is_the_scalar_call_element_wise() -> None:
    """The array form used above (analysis.sequential.confidence_sequence on array-valued SampleStats)
    gives, element by element, what the report's scalar call gives, including elements without data."""
    n_c, n_v = np.array([1, 50, 300, 1_000, 40]), np.array([5, 60, 200, 1_000, 40])
    x_c, x_v = np.array([0.0, 5, 30, 100, 0]), np.array([1.0, 7, 45, 90, 0])
    batch = confidence_sequence(SampleStats(n_c, x_c, x_c), SampleStats(n_v, x_v, x_v), planned_n=3_000)
    fields = ("abs_uplift", "ci_lo", "ci_hi", "p_value_always_valid", "statistic", "threshold")
    for i in range(n_c.size):
        one = confidence_sequence(SampleStats(int(n_c[i]), x_c[i], x_c[i]), SampleStats(int(n_v[i]), x_v[i], x_v[i]),
                                  planned_n=3_000)
        assert isinstance(one.ci_lo, float) and one.rho == batch.rho
        np.testing.assert_allclose([float(getattr(batch, f)[i]) for f in fields], [getattr(one, f) for f in fields],
                                   rtol=1e-12)
