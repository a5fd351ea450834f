"""Cross-check of Recall Lab's statistics against GrowthBook's gbstats and Spotify's Confidence.

The same fixed inputs go through the three engines: the real Hillstrom e-mail test shipped in
experiments/data/hillstrom.csv.gz (Mens E-Mail and Womens E-Mail against the No E-Mail control; visit and
conversion are binary, spend is continuous, history is the pre-period covariate), reduced to sufficient
statistics, and synthetic edge cases (tiny arms, no conversion in the control, a 90/10 split with skewed
revenue). For each comparison the script prints estimate, interval and p-value side by side with the
absolute differences |Δ| from Recall Lab's row of the same scale. Differences are expected and explained in
docs/statistics/comparison.md; the script exits nonzero only when it crashes (or a peer is not installed).

gbstats 0.8.0 pins numpy<2 and pandas<2, so the peers live in their own virtualenv, .venv-peers:

    sh benchmarks/peers/setup.sh                         # once: creates .venv-peers at the project root
    .venv-peers/bin/python benchmarks/compare_peers.py   # this comparison (about half a minute)
    .venv-peers/bin/python benchmarks/stats_engine.py    # speed, with gbstats timed in the same run

Sections: 1 frequentist (absolute, relative), 2 multiple-testing corrections, 3 Bayesian, 4 CUPED /
regression adjustment, 5 sample-ratio mismatch, then a summary of the largest differences on Hillstrom.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # .venv-peers has it through a .pth file; this also covers a plain checkout
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.bayesian import beta_binomial, normal_posterior  # noqa: E402
from analysis.corrections import adjust_p_values  # noqa: E402
from analysis.cuped import CovariateStats, cuped  # noqa: E402
from analysis.frequentist import compare  # noqa: E402
from analysis.srm import SRM_THRESHOLD, srm_check  # noqa: E402
from analysis.sufficient import SampleStats  # noqa: E402
from experiments.models import MetricKind  # noqa: E402

SETUP_HINT = ("gbstats and spotify-confidence live in a separate virtualenv (gbstats 0.8.0 pins numpy<2):\n"
              "    sh benchmarks/peers/setup.sh\n"
              "    .venv-peers/bin/python benchmarks/compare_peers.py")
try:
    import gbstats  # noqa: F401
    import spotify_confidence as confidence
    from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
    from gbstats.frequentist.tests import FrequentistConfig, TwoSidedTTest
    from gbstats.models.statistics import ProportionStatistic, RegressionAdjustedStatistic, SampleMeanStatistic
    from gbstats.utils import check_srm
except ImportError as error:  # pragma: no cover - depends on the interpreter
    print(f"cannot import the peers ({error}).\n{SETUP_HINT}", file=sys.stderr)
    sys.exit(2)

BINARY, CONTINUOUS = MetricKind.BINARY, MetricKind.CONTINUOUS
HILLSTROM = ROOT / "experiments" / "data" / "hillstrom.csv.gz"
CONTROL = "No E-Mail"
VARIANTS = ("Mens E-Mail", "Womens E-Mail")
METRICS = {"visit": BINARY, "conversion": BINARY, "spend": CONTINUOUS}
COVARIATE = "history"


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Case:
    """One variant-vs-control comparison on one metric, as sufficient statistics."""

    name: str
    kind: MetricKind
    control: SampleStats
    variant: SampleStats
    covariates: tuple[CovariateStats, CovariateStats] | None = None  # (control, variant), y with x = history
    hillstrom: bool = False


def hillstrom_cases() -> tuple[list[Case], dict[str, int]]:
    """Hillstrom reduced to n, Σy, Σy², Σy³ per arm and metric, plus Σx, Σx², Σxy with x = history."""
    df = pd.read_csv(HILLSTROM)
    arms = {name: group for name, group in df.groupby("segment")}
    cases = []
    for metric, kind in METRICS.items():
        def stats(arm: str) -> tuple[SampleStats, CovariateStats]:
            y = arms[arm][metric].to_numpy(dtype=float)
            x = arms[arm][COVARIATE].to_numpy(dtype=float)
            return SampleStats.from_values(y), CovariateStats.from_values(y, x)

        control, control_cov = stats(CONTROL)
        for variant_name in VARIANTS:
            variant, variant_cov = stats(variant_name)
            cases.append(Case(f"Hillstrom {metric}: {variant_name}", kind, control, variant,
                              (control_cov, variant_cov), hillstrom=True))
    return cases, {name: len(group) for name, group in arms.items()}


def binary(n: int, successes: int) -> SampleStats:
    return SampleStats(n, float(successes), float(successes), float(successes))


def edge_cases() -> list[Case]:
    """Fixed synthetic inputs where the engines' choices matter most."""
    rng = np.random.default_rng(20240611)
    tiny_c = np.array([0, 0, 0, 12.5, 0, 0, 30, 0, 0, 0, 8, 0, 0, 0, 0, 0, 45, 0, 0, 0])
    tiny_v = np.array([0, 22, 0, 0, 15, 0, 0, 60, 0, 9.5, 0, 0, 35, 0, 0, 0, 0, 18, 0, 0, 0, 0])
    # 90/10 split: a 1,000-customer holdout, 9,000 contacted; 4 % vs 5 % order, log-normal basket
    n_c, n_v = 1_000, 9_000
    orders_c, orders_v = rng.random(n_c) < 0.04, rng.random(n_v) < 0.05
    revenue_c = np.where(orders_c, rng.lognormal(4.0, 1.5, n_c), 0.0)
    revenue_v = np.where(orders_v, rng.lognormal(4.0, 1.5, n_v), 0.0)
    return [
        Case("tiny arms, rate (3/20 vs 8/22)", BINARY, binary(20, 3), binary(22, 8)),
        Case("tiny arms, revenue (n = 20 vs 22)", CONTINUOUS, SampleStats.from_values(tiny_c),
             SampleStats.from_values(tiny_v)),
        Case("zero in control (0/2,000 vs 9/2,000)", BINARY, binary(2_000, 0), binary(2_000, 9)),
        Case("90/10 split, order rate", BINARY, binary(n_c, int(orders_c.sum())), binary(n_v, int(orders_v.sum()))),
        Case("90/10 split, skewed revenue", CONTINUOUS, SampleStats.from_values(revenue_c),
             SampleStats.from_values(revenue_v)),
    ]


# --------------------------------------------------------------------------- the engines


@dataclass(frozen=True)
class Row:
    """One engine's answer on one scale; ``note`` carries a method name or an error."""

    label: str
    estimate: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    p: float = math.nan
    note: str = ""
    extra: dict | None = None


def guarded(label: str, compute: Callable[[], Row]) -> Row:
    """A peer that refuses an input (raises) is a result to show, not a crash of the comparison."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return compute()
    except Exception as error:  # noqa: BLE001 - any refusal by a peer is reported
        return Row(label, note=f"raised {type(error).__name__}: {str(error).splitlines()[0][:70]}")


def gb_statistic(s: SampleStats, kind: MetricKind) -> ProportionStatistic | SampleMeanStatistic:
    if kind == BINARY:
        return ProportionStatistic(n=int(s.n), sum=float(s.sum))
    return SampleMeanStatistic(n=int(s.n), sum=float(s.sum), sum_squares=float(s.sum_sq))


def gb_frequentist(a, b, scale: str, label: str) -> Row:
    def run() -> Row:
        result = TwoSidedTTest(a, b, FrequentistConfig(difference_type=scale)).compute_result()
        return Row(label, result.expected, result.ci[0], result.ci[1], result.p_value,
                   result.error_message or ("Welch t, delta method" if scale == "relative" else "Welch t"))
    return guarded(label, run)


def spotify_frame(case: Case) -> pd.DataFrame:
    rows = [("control", case.control), ("variant", case.variant)]
    return pd.DataFrame({"group": [g for g, _ in rows], "n": [int(s.n) for _, s in rows],
                         "s": [float(s.sum) for _, s in rows], "ss": [float(s.sum_sq) for _, s in rows]})


def spotify_difference(test: str, case: Case, absolute: bool, label: str) -> Row:
    def run() -> Row:
        cls = {"z": confidence.ZTest, "t": confidence.StudentsTTest}[test]
        experiment = cls(spotify_frame(case), "s", "ss", "n", categorical_group_columns="group")
        d = experiment.difference(level_1="control", level_2="variant", absolute=absolute).iloc[0]
        method = {"z": "z, unpooled (Wald)", "t": "Welch t"}[test] + ("" if absolute else ", ÷ control mean")
        return Row(label, float(d["difference"]), float(d["ci_lower"]), float(d["ci_upper"]), float(d["p-value"]),
                   method)
    return guarded(label, run)


def frequentist_rows(case: Case) -> list[list[Row]]:
    """[absolute rows, relative rows], Recall Lab first in each."""
    ours = compare(case.control, case.variant, case.kind)
    a, b = gb_statistic(case.control, case.kind), gb_statistic(case.variant, case.kind)
    absolute = [Row("Recall Lab", ours.abs_uplift, *ours.abs_ci, ours.p_value,
                    "pooled z, Newcombe CI" if case.kind == BINARY else "Welch t"),
                gb_frequentist(a, b, "absolute", "gbstats TwoSidedTTest"),
                spotify_difference("z", case, True, "spotify ZTest")]
    relative = [Row("Recall Lab", ours.rel_uplift, *ours.rel_ci, ours.p_value, "delta method on log ratio"),
                gb_frequentist(a, b, "relative", "gbstats TwoSidedTTest"),
                spotify_difference("z", case, False, "spotify ZTest")]
    if case.kind == CONTINUOUS:
        absolute.append(spotify_difference("t", case, True, "spotify StudentsTTest"))
        relative.append(spotify_difference("t", case, False, "spotify StudentsTTest"))
        if not case.hillstrom:  # what the report uses when the holdout is small and revenue skewed
            skewed = compare(case.control, case.variant, case.kind, skew_corrected=True)
            absolute.append(Row("Recall Lab skew-corrected", skewed.abs_uplift, *skewed.abs_ci, skewed.p_value,
                                "Hall-Johnson t (report: |λ| ≥ 0.1)"))
    return [absolute, relative]


# --------------------------------------------------------------------------- printing


def fmt(x: float, width: int = 11) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—".rjust(width)
    if isinstance(x, float) and math.isinf(x):
        return ("+inf" if x > 0 else "-inf").rjust(width)
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.3e}".rjust(width)
    return f"{x:.5f}".rjust(width)


def diff(a: float, b: float) -> float:
    if any(isinstance(v, float) and math.isnan(v) for v in (a, b)) or math.isinf(a) or math.isinf(b):
        return math.nan
    return abs(a - b)


HEADER = (f"  {'engine':<26}{'estimate':>11}{'CI low':>11}{'CI high':>11}{'p-value':>11}"
          f"   {'|Δ est|':>11}{'|Δ low|':>11}{'|Δ high|':>11}{'|Δ p|':>11}  method / note")


def print_rows(rows: list[Row]) -> None:
    reference = rows[0]
    for row in rows:
        deltas = "" if row is reference else "".join(
            fmt(diff(getattr(row, f), getattr(reference, f))) for f in ("estimate", "lo", "hi", "p"))
        print(f"  {row.label:<26}{fmt(row.estimate)}{fmt(row.lo)}{fmt(row.hi)}{fmt(row.p)}   "
              f"{deltas:<44}  {row.note}")


def title(text: str) -> None:
    print(f"\n{'=' * 100}\n{text}\n{'=' * 100}")


# --------------------------------------------------------------------------- sections


FIELDS = ("estimate", "lo", "hi", "p")
MaxDiffs = dict[tuple[str, str, str], dict[str, float]]


def track(maxima: MaxDiffs, key: tuple[str, str], rows: list[Row]) -> None:
    """Largest |Δ| (estimate, CI ends, p) of each peer row from Recall Lab's, for the summary."""
    reference = rows[0]
    for row in rows[1:]:
        largest = maxima.setdefault((key[0], row.label, key[1]), dict.fromkeys(FIELDS, 0.0))
        for field in FIELDS:
            d = diff(getattr(row, field), getattr(reference, field))
            if not math.isnan(d):
                largest[field] = max(largest[field], d)


def section_frequentist(cases: list[Case], maxima: MaxDiffs) -> None:
    title("1. Frequentist: variant − control (absolute) and variant / control − 1 (relative), 95 % intervals")
    print(HEADER)
    for case in cases:
        absolute, relative = frequentist_rows(case)
        c, v = case.control, case.variant
        print(f"\n{case.name}   [n {int(c.n):,} vs {int(v.n):,}; means {float(c.mean):.5g} vs {float(v.mean):.5g}]")
        print(" absolute")
        print_rows(absolute)
        print(" relative")
        print_rows(relative)
        if case.hillstrom:
            track(maxima, ("frequentist", "absolute"), absolute)
            track(maxima, ("frequentist", "relative"), relative)


def section_corrections(cases: list[Case]) -> None:
    title("2. Multiple testing across the 6 Hillstrom comparisons (3 metrics × 2 variants)")
    hill = [c for c in cases if c.hillstrom]
    ours_raw = [compare(c.control, c.variant, c.kind).p_value for c in hill]
    frame = []
    for case in hill:
        metric = case.name.split(":")[0].removeprefix("Hillstrom ")
        variant = case.name.split(": ")[1]
        for group, s in ((CONTROL, case.control), (variant, case.variant)):
            if not any(r["metric"] == metric and r["group"] == group for r in frame):
                frame.append({"metric": metric, "group": group, "n": int(s.n), "s": float(s.sum),
                              "ss": float(s.sum_sq)})
    frame = pd.DataFrame(frame)
    key = [(c.name.split(":")[0].removeprefix("Hillstrom "), c.name.split(": ")[1]) for c in hill]
    print("gbstats 0.8.0 has no correction (GrowthBook applies Holm-Bonferroni / Benjamini-Hochberg in its app).")
    print("spotify corrects its own (unpooled z) raw p-values; 'Recall Lab on spotify raw p' applies Recall Lab's")
    print("formulas to those same raw p-values, isolating the correction from the test.\n")
    for ours_name, spotify_name in (("holm", "holm"), ("bonferroni", "bonferroni"), ("bh", "fdr_bh")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            experiment = confidence.ZTest(frame, "s", "ss", "n", categorical_group_columns="group",
                                          metric_column="metric", correction_method=spotify_name)
            result = experiment.multiple_difference(level=CONTROL, level_as_reference=True, groupby="metric")
        result = result.set_index(["metric", "level_2"])
        spotify_raw = [float(result.loc[k, "p-value"]) for k in key]
        spotify_adj = [float(result.loc[k, "adjusted p-value"]) for k in key]
        ours_adj = adjust_p_values(ours_raw, ours_name)
        ours_on_spotify = adjust_p_values(spotify_raw, ours_name)
        print(f"{ours_name} (spotify: {spotify_name})")
        print(f"  {'comparison':<28}{'RL raw p':>11}{'RL adj.':>11}{'spotify raw':>12}{'spotify adj':>12}"
              f"{'RL on sp. raw':>14}{'|Δ| same raw':>13}")
        for k, a, b, c, d, e in zip(key, ours_raw, ours_adj, spotify_raw, spotify_adj, ours_on_spotify, strict=True):
            print(f"  {k[0] + ' / ' + k[1]:<28}{fmt(a)}{fmt(b)}{fmt(c, 12)}{fmt(d, 12)}{fmt(e, 14)}"
                  f"{fmt(diff(d, e), 13)}")


def gb_bayes(a, b, scale: str, label: str, prior: GaussianPrior | None = None) -> Row:
    def run() -> Row:
        config = EffectBayesianConfig(difference_type=scale, prior_type="relative",
                                      prior_effect=prior or GaussianPrior(mean=0, variance=0.1 ** 2, proper=False))
        r = EffectBayesianABTest(a, b, config).compute_result()
        return Row(label, r.expected, r.ci[0], r.ci[1], note=r.error_message or
                   ("normal, proper prior N(0, 0.1²) on relative effect" if prior else "normal, flat prior"),
                   extra={"chance": r.chance_to_win, "loss": r.risk[1]})
    return guarded(label, run)


def section_bayesian(cases: list[Case], maxima: MaxDiffs) -> None:
    title("3. Bayesian: posterior mean of the uplift, 95 % credible interval, P(variant > control), expected loss")
    print("(columns: estimate = posterior mean; CI = credible interval; 'p-value' column = P(beat control);\n"
          " note = expected loss of shipping the variant, E[max(control − variant, 0)], then the method)")
    print(HEADER.replace("p-value", "P(beat)"))
    for case in cases:
        a, b = gb_statistic(case.control, case.kind), gb_statistic(case.variant, case.kind)
        blocks = []
        for scale in ("absolute", "relative"):
            if scale == "absolute" and case.kind == BINARY:
                ours = beta_binomial(case.control, case.variant)
                reference = "beta-binomial, Beta(1,1), exact"
            else:
                ours = normal_posterior(case.control, case.variant, scale=scale)
                reference = "normal, flat prior" + (", log ratio" if scale == "relative" else "")
            rows = [Row("Recall Lab", float(ours.uplift), float(ours.uplift_ci[0]), float(ours.uplift_ci[1]),
                        note=reference, extra={"chance": float(ours.chance_to_beat_control),
                                               "loss": float(ours.expected_loss)}),
                    gb_bayes(a, b, scale, "gbstats EffectBayesian")]
            if scale == "relative":
                rows.append(gb_bayes(a, b, scale, "gbstats, proper prior", GaussianPrior(0, 0.1 ** 2, True)))
            # the P(beat) sits in the p column so that the table and its |Δ| stay one format
            rows = [Row(r.label, r.estimate, r.lo, r.hi, (r.extra or {}).get("chance", math.nan),
                        (f"loss {fmt((r.extra or {}).get('loss', math.nan), 9).strip()}; " if r.extra else "") + r.note)
                    for r in rows]
            blocks.append((scale, rows))
        print(f"\n{case.name}")
        for scale, rows in blocks:
            print(f" {scale}")
            print_rows(rows)
            if case.hillstrom:
                track(maxima, ("bayesian", scale), rows[:2])


def section_cuped(cases: list[Case], maxima: MaxDiffs) -> None:
    title(f"4. CUPED / regression adjustment on Hillstrom, covariate '{COVARIATE}' (pre-period spend)")
    print(HEADER)
    for case in cases:
        if case.covariates is None:
            continue
        cc, vc = case.covariates
        ours = cuped(cc, vc)

        def gb_ra(s: CovariateStats) -> RegressionAdjustedStatistic:
            post = (ProportionStatistic(n=int(s.n), sum=float(s.sum_y)) if case.kind == BINARY else
                    SampleMeanStatistic(n=int(s.n), sum=float(s.sum_y), sum_squares=float(s.sum_y2)))
            pre = SampleMeanStatistic(n=int(s.n), sum=float(s.sum_x), sum_squares=float(s.sum_x2))
            return RegressionAdjustedStatistic(n=int(s.n), post_statistic=post, pre_statistic=pre,
                                               post_pre_sum_of_products=float(s.sum_xy), theta=0)

        def spotify_linreg(absolute: bool) -> Row:
            def run() -> Row:
                frame = pd.DataFrame({"group": ["control", "variant"], "n": [int(cc.n), int(vc.n)],
                                      "s": [cc.sum_y, vc.sum_y], "ss": [cc.sum_y2, vc.sum_y2],
                                      "f": [cc.sum_x, vc.sum_x], "fss": [cc.sum_x2, vc.sum_x2],
                                      "fx": [cc.sum_xy, vc.sum_xy]})
                test = confidence.ZTestLinreg(frame, "s", "ss", "n", "f", "fss", "fx",
                                              categorical_group_columns="group")
                d = test.difference(level_1="control", level_2="variant", absolute=absolute, verbose=True).iloc[0]
                return Row("spotify ZTestLinreg", float(d["difference"]), float(d["ci_lower"]), float(d["ci_upper"]),
                           float(d["p-value"]),
                           f"pooled θ, z; variance reduction {float(d['variance_reduction_rate']):.4f}")
            return guarded("spotify ZTestLinreg", run)

        def gb_row(scale: str) -> Row:
            def run() -> Row:
                test = TwoSidedTTest(gb_ra(cc), gb_ra(vc), FrequentistConfig(difference_type=scale))
                r = test.compute_result()
                return Row("gbstats RA TwoSidedTTest", r.expected, r.ci[0], r.ci[1], r.p_value,
                           r.error_message or f"pooled θ = {test.stat_a.theta:.4g}, Welch t")
            return guarded("gbstats RA TwoSidedTTest", run)

        print(f"\n{case.name}   [Recall Lab θ control {float(ours.theta[0]):.4g}, variant {float(ours.theta[1]):.4g}; "
              f"variance reduction {float(ours.variance_reduction):.4f}]")
        absolute = [Row("Recall Lab", ours.abs_uplift, *ours.abs_ci, ours.p_value, "Lin: per-arm θ, t"),
                    gb_row("absolute"), spotify_linreg(True)]
        relative = [Row("Recall Lab", ours.rel_uplift, *ours.rel_ci, ours.p_value, "log ratio of adjusted means"),
                    gb_row("relative"), spotify_linreg(False)]
        print(" absolute")
        print_rows(absolute)
        print(" relative")
        print_rows(relative)
        track(maxima, ("cuped", "absolute"), absolute)
        track(maxima, ("cuped", "relative"), relative)


def section_srm(hillstrom_sizes: dict[str, int]) -> None:
    title("5. Sample-ratio mismatch: Pearson χ² goodness of fit (Recall Lab flags p < 0.001)")
    arms = [CONTROL, *VARIANTS]
    checks = [
        ("Hillstrom, designed thirds", [hillstrom_sizes[a] for a in arms], [1, 1, 1]),
        ("90/10 design, 1,070 / 8,930", [1_070, 8_930], [0.1, 0.9]),
        ("90/10 design, 1,100 / 8,900", [1_100, 8_900], [0.1, 0.9]),
        ("90/10 design, 1,150 / 8,850", [1_150, 8_850], [0.1, 0.9]),
        ("thirds design, 21,000 / 21,000 / 19,300", [21_000, 21_000, 19_300], [1, 1, 1]),
    ]
    print(f"  {'split':<42}{'χ²':>11}{'RL p':>12}{'RL flag':>9}{'gbstats p':>12}{'spotify p':>12}"
          f"{'|Δ| gb':>11}{'|Δ| sp':>11}")
    for name, observed, shares in checks:
        ours = srm_check(observed, shares)
        gb = float(check_srm(observed, shares))
        groups = [f"g{i}" for i in range(len(observed))]
        frame = pd.DataFrame({"group": groups, "n": observed, "s": observed, "ss": observed})
        total = float(sum(shares))
        sp = guarded("spotify", lambda: Row("spotify", p=float(confidence.ZTest(
            frame, "s", "ss", "n", categorical_group_columns="group").sample_ratio_test(
            {g: s / total for g, s in zip(groups, shares, strict=True)})[0])))
        flag = "MISMATCH" if ours.mismatch else "ok"
        print(f"  {name:<42}{fmt(ours.chi2)}{fmt(ours.p_value, 12)}{flag:>9}{fmt(gb, 12)}{fmt(sp.p, 12)}"
              f"{fmt(diff(gb, ours.p_value))}{fmt(diff(sp.p, ours.p_value))}  {sp.note}")
    print(f"  (threshold: Recall Lab {SRM_THRESHOLD}; gbstats returns only the p-value, GrowthBook's app warns at "
          "p < 0.001 by default;\n   spotify returns only the p-value, computed as 1 − cdf, which reaches 0 "
          "where the survival function does not)")


def section_summary(maxima: MaxDiffs) -> None:
    title("Summary: largest |Δ| from Recall Lab on the 6 Hillstrom comparisons (estimate, CI ends, p / P(beat))")
    print(f"  {'section':<13}{'engine':<26}{'scale':<10}{'|Δ est|':>11}{'|Δ low|':>11}{'|Δ high|':>11}"
          f"{'|Δ p|':>11}")
    for (section, engine, scale), largest in maxima.items():
        print(f"  {section:<13}{engine:<26}{scale:<10}" + "".join(fmt(largest[f]) for f in FIELDS))
    print("  (Bayesian: the p column is P(beat control); Recall Lab's absolute Bayesian rates are beta-binomial)")


def main() -> int:
    hill, sizes = hillstrom_cases()
    cases = hill + edge_cases()
    print(f"Recall Lab vs gbstats {_version('gbstats')} vs spotify-confidence {_version('spotify-confidence')} "
          f"(numpy {np.__version__}, pandas {pd.__version__})")
    maxima: MaxDiffs = {}
    section_frequentist(cases, maxima)
    section_corrections(cases)
    section_bayesian(cases, maxima)
    section_cuped(cases, maxima)
    section_srm(sizes)
    section_summary(maxima)
    print("\nDifferences are expected; each is explained in docs/statistics/comparison.md.")
    return 0


def _version(package: str) -> str:
    from importlib.metadata import version
    return version(package)


if __name__ == "__main__":
    sys.exit(main())
