"""Who to recall: the conditional uplift learned from a randomized holdout, and what targeting by it is worth.

A finished experiment has a randomized no-contact holdout beside each contacted variant, so within
any kind of customer the difference between the two arms is the message's effect. This module

1. learns that effect per customer (the *uplift*) from pre-period features with scikit-learn's
   histogram gradient boosting, in a T-learner (one outcome model per arm) and an X-learner
   (Künzel et al. 2019: imputed individual effects, each arm's learned from the other arm's model),
   and keeps the one with the better cross-validated Qini coefficient;
2. scores every customer **out of fold** (cross-fitting): a customer's score comes from models that
   never saw them. :class:`FoldModel` refuses to score a row it learned from, so an in-sample score
   cannot be produced by mistake;
3. evaluates the ranking on the randomized data: Qini and uplift curves (Radcliffe 2007; normalised
   areas as scikit-uplift defines them), with Poisson-bootstrap intervals, against random targeting
   (coefficient 0) and against ranking by predicted return probability (a response model);
4. values the policy "contact the top s%" and the cost-optimal cutoff by inverse-propensity
   weighting on the randomized split, with intervals and costs, so a growth lead sees returns,
   revenue, cost and ROI of each choice.

Pure functions on arrays; the database side (one feature query, stored models) is
:mod:`experiments.targeting`. See docs/statistics/targeting.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from analysis.distributions import norm_isf
from analysis.report import _json_safe

# Fewer customers than this in the holdout (or in the contacted arm) and the per-customer effect
# cannot be learned: at a 5% return rate 500 customers hold about 25 returns, and every fold fewer.
MIN_ARM_CUSTOMERS = 500
FOLDS = 5
BOOTSTRAP = 200
SHARES = tuple(round(0.05 * k, 2) for k in range(1, 21))  # 5%, 10%, …, 100%
LEARNERS = ("t-learner", "x-learner")
MAX_CATEGORIES = 50  # a categorical feature keeps its most frequent values; the rest become "other"
IMPORTANCE_ROWS = 10_000  # permutation importance is measured on a sample of this many customers
MAX_TRAIN_PER_ARM = 200_000  # rows of each arm a model learns from (see _capped)
MANY_CUSTOMERS = 300_000
BOOTSTRAP_GRID = 2_000
BOOTSTRAP_ROWS = 200_000


class TargetingError(ValueError):
    """The data cannot support an uplift model (too small a holdout, no variation, no usable feature)."""


class InSampleScoring(RuntimeError):
    """A model was asked to score customers it learned from: such scores flatter it and are refused."""


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Prepared:
    """Features ready for the learners, and what was done to them (shown to the analyst)."""

    X: pd.DataFrame
    dropped: tuple[str, ...]  # constant features: they cannot separate customers
    notes: tuple[str, ...]


def prepare(features: pd.DataFrame, treated: np.ndarray, y: np.ndarray) -> Prepared:
    """Check the design and clean the features.

    Documented handling: missing values stay missing (gradient boosting learns which side of every
    split they go); text columns become categories (the :data:`MAX_CATEGORIES` most frequent kept);
    constant columns are dropped with a note. Refused with :class:`TargetingError`: an arm smaller
    than :data:`MIN_ARM_CUSTOMERS`, an outcome with missing values or no variation, no usable feature.
    """
    treated = np.asarray(treated, dtype=bool)
    y = np.asarray(y, dtype=float)
    n_t, n_c = int(treated.sum()), int((~treated).sum())
    if min(n_t, n_c) < MIN_ARM_CUSTOMERS:
        raise TargetingError(
            f"the holdout has {n_c:,} customers and the contacted arm {n_t:,}; learning whom a message changes "
            f"needs at least {MIN_ARM_CUSTOMERS:,} in each")
    if np.isnan(y).any():
        raise TargetingError(f"the outcome is missing for {int(np.isnan(y).sum()):,} customers")
    if np.ptp(y) == 0:
        raise TargetingError(f"the outcome is {y[0]:g} for every customer: there is nothing to learn")
    X = pd.DataFrame(index=features.index)
    dropped, notes = [], []
    for name in features.columns:
        column = features[name]
        if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            column = _categorical(column.astype("string"))
        if column.nunique(dropna=False) <= 1:
            dropped.append(name)
            continue
        missing = int(column.isna().sum())
        if missing:
            notes.append(f"{name}: {missing:,} missing values kept as missing")
        X[name] = column
    if dropped:
        notes.append(f"constant, dropped: {', '.join(dropped)}")
    if X.shape[1] == 0:
        raise TargetingError("no feature varies between customers: "
                             f"{', '.join(features.columns) or 'none given'}")
    return Prepared(X, tuple(dropped), tuple(notes))


def prepare_like(features: pd.DataFrame, dtypes: dict[str, Any]) -> pd.DataFrame:
    """New customers' features in the training data's columns and types (a category the model never
    saw becomes missing)."""
    X = pd.DataFrame(index=features.index)
    for name, dtype in dtypes.items():
        column = features[name]
        if isinstance(dtype, pd.CategoricalDtype):
            text = column.astype("string")
            X[name] = text.astype(object).where(text.notna(), np.nan).astype(dtype)
        else:
            X[name] = pd.to_numeric(column, errors="coerce").astype(float)
    return X


def _categorical(column: pd.Series) -> pd.Series:
    top = column.value_counts().index[:MAX_CATEGORIES]
    kept = column.where(column.isin(top) | column.isna(), "other")
    # plain strings with NaN for missing: scikit-learn's encoders refuse pandas' NA beside strings
    return kept.astype(object).where(kept.notna(), np.nan).astype("category")


# ---------------------------------------------------------------- learners


def _model(binary: bool, seed: int):  # noqa: ANN202 - a scikit-learn estimator
    """Gradient boosting held back on purpose: an uplift is a small difference of two noisy rates."""
    options = dict(learning_rate=0.15, max_iter=60, max_leaf_nodes=15, min_samples_leaf=100,
                   l2_regularization=1.0, max_bins=63, categorical_features="from_dtype", random_state=seed)
    return (HistGradientBoostingClassifier if binary else HistGradientBoostingRegressor)(**options)


def _predict(model, X: pd.DataFrame) -> np.ndarray:  # noqa: ANN001
    if isinstance(model, HistGradientBoostingClassifier):
        return model.predict_proba(X)[:, 1]
    return model.predict(X)


@dataclass(frozen=True)
class FoldModel:
    """The models of one learner fitted on some rows; scores only rows it did not learn from."""

    learner: str
    estimators: dict[str, Any]
    treated_share: float
    train_rows: np.ndarray  # sorted row positions it learned from

    def uplift(self, X: pd.DataFrame, rows: np.ndarray | None) -> np.ndarray:
        """Predicted uplift of ``X``, whose row positions in the training data are ``rows`` (None:
        customers outside the training data, e.g. a new audience)."""
        if rows is not None:
            rows = np.asarray(rows)
            at = np.minimum(np.searchsorted(self.train_rows, rows), max(self.train_rows.size - 1, 0))
            overlap = int(np.sum(self.train_rows[at] == rows)) if self.train_rows.size else 0
            if overlap:
                raise InSampleScoring(f"{overlap:,} of the rows to score were used to fit this model; "
                                      "scores must be cross-fitted (out of fold)")
        m = self.estimators
        if self.learner == "response":
            return _predict(m["response"], X)
        if self.learner == "t-learner":
            return _predict(m["treated"], X) - _predict(m["control"], X)
        e = self.treated_share  # X-learner: weight each arm's effect model by the other arm's share
        return e * m["effect_control"].predict(X) + (1 - e) * m["effect_treated"].predict(X)


def _capped(rows: np.ndarray, treated: np.ndarray, seed: int) -> np.ndarray:
    """At most :data:`MAX_TRAIN_PER_ARM` rows of each arm (a random sample): the uplift's precision is
    set by the smaller arm (the holdout), so a contacted arm many times larger adds time, not accuracy."""
    rng = np.random.default_rng(seed)
    kept = []
    for arm in (True, False):
        mine = rows[treated[rows] == arm]
        kept.append(mine if mine.size <= MAX_TRAIN_PER_ARM else rng.choice(mine, MAX_TRAIN_PER_ARM, replace=False))
    return np.sort(np.concatenate(kept))


def fit(learner: str, X: pd.DataFrame, treated: np.ndarray, y: np.ndarray, rows: np.ndarray, *,
        binary: bool, seed: int = 0) -> FoldModel:
    """Fit ``learner`` ("t-learner", "x-learner", or "response": P(outcome) ignoring the arm) on ``rows``."""
    if learner not in (*LEARNERS, "response"):
        raise ValueError(f"unknown learner {learner!r}; choose one of {', '.join(LEARNERS)} or response")
    train = _capped(np.asarray(rows), treated, seed)
    Xr, t, yr = X.iloc[train], treated[train], y[train]
    share = float(treated[rows].mean())
    if learner == "response":
        return FoldModel(learner, {"response": _model(binary, seed).fit(Xr, yr)}, share, np.sort(rows))
    m1 = _model(binary, seed).fit(Xr[t], yr[t])
    m0 = _model(binary, seed + 1).fit(Xr[~t], yr[~t])
    return _with_effects(learner, {"treated": m1, "control": m0}, Xr, t, yr, share, np.sort(rows), seed)


def _with_effects(learner: str, outcome: dict[str, Any], Xr: pd.DataFrame, t: np.ndarray, yr: np.ndarray,
                  share: float, rows: np.ndarray, seed: int) -> FoldModel:
    """A T-learner from its two outcome models, or an X-learner built on them (Künzel et al. 2019)."""
    if learner == "t-learner":
        return FoldModel(learner, outcome, share, rows)
    m1, m0 = outcome["treated"], outcome["control"]
    d1 = yr[t] - _predict(m0, Xr[t])  # contacted: observed minus what the holdout model expects
    d0 = _predict(m1, Xr[~t]) - yr[~t]  # holdout: what the contacted model expects minus observed
    effects = {"effect_treated": _model(False, seed + 2).fit(Xr[t], d1),
               "effect_control": _model(False, seed + 3).fit(Xr[~t], d0)}
    return FoldModel(learner, {**outcome, **effects}, share, rows)


def fold_of(treated: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A random fold per row, balanced within each arm (so every fold has holdout customers)."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(treated), dtype=int)
    for arm in (True, False):
        rows = np.flatnonzero(treated == arm)
        out[rng.permutation(rows)] = np.arange(rows.size) % folds
    return out


@dataclass(frozen=True)
class CrossFit:
    learner: str
    scores: np.ndarray  # out of fold: row i scored by the model of the folds without i
    folds: np.ndarray
    models: tuple[FoldModel, ...]


def cross_fit(learner: str, X: pd.DataFrame, treated: np.ndarray, y: np.ndarray, *, binary: bool,
              folds: int = FOLDS, seed: int = 0) -> CrossFit:
    """Out-of-fold scores: fit on every fold but one, score that one, for each fold."""
    return cross_fit_all((learner,), X, treated, y, binary=binary, folds=folds, seed=seed)[learner]


def cross_fit_all(learners: Sequence[str], X: pd.DataFrame, treated: np.ndarray, y: np.ndarray, *, binary: bool,
                  folds: int = FOLDS, seed: int = 0) -> dict[str, CrossFit]:
    """:func:`cross_fit` of several learners on the same folds; the T- and X-learner share their outcome
    models (the X-learner is the T-learner's two models plus two effect models)."""
    fold = fold_of(treated, folds, seed)
    scores = {name: np.empty(len(y)) for name in learners}
    models: dict[str, list[FoldModel]] = {name: [] for name in learners}
    for k in range(folds):
        held_out, rows = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
        fitted: dict[str, FoldModel] = {}
        for name in learners:
            base = fitted.get("t-learner") if name == "x-learner" else None
            if base is not None:
                train = _capped(rows, treated, seed + 10 * k)
                fitted[name] = _with_effects(name, base.estimators, X.iloc[train], treated[train], y[train],
                                             base.treated_share, base.train_rows, seed + 10 * k)
            else:
                fitted[name] = fit(name, X, treated, y, rows, binary=binary, seed=seed + 10 * k)
            scores[name][held_out] = fitted[name].uplift(X.iloc[held_out], held_out)
            models[name].append(fitted[name])
    return {name: CrossFit(name, scores[name], fold, tuple(models[name])) for name in learners}


def folds_for(n: int) -> int:
    """Five folds; three past :data:`MANY_CUSTOMERS`, where each model already learns from plenty."""
    return FOLDS if n < MANY_CUSTOMERS else 3


# ---------------------------------------------------------------- curves


@dataclass(frozen=True)
class _Running:
    """Running totals when customers are taken by descending score, at the end of each run of tied
    scores (ties enter together): customers, contacted customers, and each arm's outcome sum."""

    n_all: np.ndarray
    n_t: np.ndarray
    y_t: np.ndarray
    y_c: np.ndarray

    def values(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """qini(k)   = Y_t(k) − Y_c(k) · N_t(k) / N_c(k)
        uplift(k) = (Y_t(k) / N_t(k) − Y_c(k) / N_c(k)) · N(k), starting at (0, 0)."""
        n_c = self.n_all - self.n_t
        with np.errstate(divide="ignore", invalid="ignore"):
            if kind == "qini":
                v = self.y_t - np.where(n_c > 0, self.y_c * self.n_t / n_c, 0.0)
            else:
                v = (np.where(self.n_t > 0, self.y_t / self.n_t, 0.0)
                     - np.where(n_c > 0, self.y_c / n_c, 0.0)) * self.n_all
        return np.r_[0.0, self.n_all], np.r_[0.0, v]


def _running(y: np.ndarray, score: np.ndarray, treated: np.ndarray, order: np.ndarray,
             weights: np.ndarray | None = None, ends: np.ndarray | None = None) -> _Running:
    """``weights`` (a Poisson bootstrap) count each customer w times; ``ends`` (positions in the sorted
    order) evaluate the totals only there (a replicate needs a fine grid, not every point)."""
    w = np.ones(len(y)) if weights is None else weights[order]
    t = treated[order]
    if ends is None:
        s = score[order]
        ends = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    wy = w * y[order]
    return _Running(np.cumsum(w)[ends], np.cumsum(w * t)[ends], np.cumsum(np.where(t, wy, 0.0))[ends],
                    np.cumsum(np.where(t, 0.0, wy))[ends])


def _curve(y: np.ndarray, score: np.ndarray, treated: np.ndarray, weights: np.ndarray | None, kind: str
           ) -> tuple[np.ndarray, np.ndarray]:
    """The Qini or uplift curve (customers targeted, incremental outcome) by descending ``score``."""
    return _running(y, score, treated, np.argsort(-score, kind="mergesort"), weights).values(kind)


def qini_curve(y: np.ndarray, score: np.ndarray, treated: np.ndarray, weights: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(customers targeted, incremental outcomes) when targeting by descending ``score``."""
    return _curve(np.asarray(y, float), np.asarray(score, float), np.asarray(treated, bool), weights, "qini")


def uplift_curve(y: np.ndarray, score: np.ndarray, treated: np.ndarray, weights: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    return _curve(np.asarray(y, float), np.asarray(score, float), np.asarray(treated, bool), weights, "uplift")


def _perfect_score(y: np.ndarray, treated: np.ndarray, kind: str) -> np.ndarray:
    """The ranking an oracle would use (scikit-uplift's perfect curves): responders who were
    contacted first, non-responders next, holdout responders (the negative effects) last."""
    if kind == "uplift" and set(np.unique(y)) <= {0.0, 1.0}:
        holdout_responders = np.sum((y == 1) & ~treated)
        contacted_nonresponders = np.sum((y == 0) & treated)
        summand = y if holdout_responders > contacted_nonresponders else treated.astype(float)
        return 2.0 * (y == treated) + summand
    return y * treated - y * ~treated


def _area(x: np.ndarray, values: np.ndarray) -> float:
    return float(np.trapezoid(values, x))


def _normalised_area(x: np.ndarray, values: np.ndarray, x_best: np.ndarray, best: np.ndarray) -> float:
    """(area of the curve − area of random targeting) / (area of the perfect curve − random's)."""
    random = _area(np.array([0.0, x_best[-1]]), np.array([0.0, best[-1]]))
    return (_area(x, values) - random) / (_area(x_best, best) - random)


def qini_coefficient(y: np.ndarray, score: np.ndarray, treated: np.ndarray) -> float:
    """Normalised area under the Qini curve (scikit-uplift's ``qini_auc_score``): 0 is random, 1 perfect."""
    y, score, treated = np.asarray(y, float), np.asarray(score, float), np.asarray(treated, bool)
    return _normalised_area(*qini_curve(y, score, treated),
                            *qini_curve(y, _perfect_score(y, treated, "qini"), treated))


def auuc(y: np.ndarray, score: np.ndarray, treated: np.ndarray) -> float:
    """Normalised area under the uplift curve (scikit-uplift's ``uplift_auc_score``)."""
    y, score, treated = np.asarray(y, float), np.asarray(score, float), np.asarray(treated, bool)
    return _normalised_area(*uplift_curve(y, score, treated),
                            *uplift_curve(y, _perfect_score(y, treated, "uplift"), treated))


@dataclass(frozen=True)
class RankingQuality:
    """How well a ranking finds the customers a message changes (0 = random targeting)."""

    qini: float
    qini_ci: tuple[float, float]
    auuc: float
    auuc_ci: tuple[float, float]


def _measures(y: np.ndarray, treated: np.ndarray, scores: dict[str, np.ndarray], grid: int | None
              ) -> Callable[[np.ndarray | None], dict[str, tuple[float, float]]]:
    """(Qini coefficient, AUUC) of each ranking under bootstrap weights; the sort orders are computed
    once, so a replicate costs a few cumulative sums (on ``grid`` points per curve, runs of tied scores
    still entering whole)."""
    rankings = {**scores, "_perfect_qini": _perfect_score(y, treated, "qini"),
                "_perfect_uplift": _perfect_score(y, treated, "uplift")}
    orders = {name: np.argsort(-s, kind="mergesort") for name, s in rankings.items()}
    ends = {}
    for name, s in rankings.items():
        sorted_scores = s[orders[name]]
        ends[name] = np.r_[np.flatnonzero(np.diff(sorted_scores)), s.size - 1]
        if grid is not None and ends[name].size > grid:
            ends[name] = np.unique(ends[name][np.linspace(0, ends[name].size - 1, grid).astype(int)])

    def measures(weights: np.ndarray | None) -> dict[str, tuple[float, float]]:
        run = {name: _running(y, rankings[name], treated, orders[name], weights, ends[name]) for name in rankings}
        best_q, best_u = run["_perfect_qini"].values("qini"), run["_perfect_uplift"].values("uplift")
        return {name: (_normalised_area(*run[name].values("qini"), *best_q),
                       _normalised_area(*run[name].values("uplift"), *best_u)) for name in scores}

    return measures


def ranking_quality(y: np.ndarray, treated: np.ndarray, scores: dict[str, np.ndarray], *,
                    replicates: int = BOOTSTRAP, alpha: float = 0.05, seed: int = 0) -> dict[str, RankingQuality]:
    """Qini coefficient and AUUC of each ranking, with Poisson-bootstrap percentile intervals (the same
    resampled customers for every ranking, so their intervals are comparable).

    Past :data:`BOOTSTRAP_ROWS` customers the replicates are drawn on a fixed random subsample of that
    size, and their spread around the subsample's own value is scaled by √(m/n) (an m-out-of-n
    bootstrap: both measures are smooth functions of sums, whose spread shrinks as 1/√n) and put around
    the full-data value. Below it, this is the ordinary percentile interval."""
    y, treated = np.asarray(y, float), np.asarray(treated, bool)
    point = _measures(y, treated, scores, None)(None)
    rng = np.random.default_rng(seed)
    n = y.size
    sub = np.sort(rng.choice(n, BOOTSTRAP_ROWS, replace=False)) if n > BOOTSTRAP_ROWS else np.arange(n)
    measures = _measures(y[sub], treated[sub], {k: v[sub] for k, v in scores.items()}, BOOTSTRAP_GRID)
    centre = measures(None) if sub.size < n else point
    scale = math.sqrt(sub.size / n)
    draws = [measures(rng.poisson(1.0, size=sub.size).astype(float)) for _ in range(replicates)]
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)

    def interval(name: str, i: int) -> tuple[float, float]:
        deviation = np.array([d[name][i] for d in draws]) - centre[name][i]
        return (float(point[name][i] + scale * np.nanpercentile(deviation, lo)),
                float(point[name][i] + scale * np.nanpercentile(deviation, hi)))

    return {name: RankingQuality(point[name][0], interval(name, 0), point[name][1], interval(name, 1))
            for name in scores}


def curve_points(y: np.ndarray, score: np.ndarray, treated: np.ndarray, points: int = 101
                 ) -> list[tuple[float, float]]:
    """The Qini curve at ``points`` evenly spaced shares (share targeted, incremental outcomes), for charts."""
    x, values = qini_curve(y, score, treated)
    shares = np.linspace(0, 1, points)
    return [(float(s), float(v)) for s, v in zip(shares, np.interp(shares * x[-1], x, values), strict=True)]


# ---------------------------------------------------------------- policy value


@dataclass(frozen=True)
class Costs:
    """What contacting one customer costs: the channel's unit cost (every touch) and the coupon's face
    value, paid when the coupon is redeemed."""

    contact: float
    coupon: float = 0.0
    margin: float = 1.0  # ROI on margin × revenue, as in analysis.roi


@dataclass(frozen=True)
class PolicyPoint:
    """Contacting the customers ranked in the top ``share``: what it brings beyond contacting nobody."""

    share: float
    contacted: int
    incremental_returns: float
    ci: tuple[float, float]
    incremental_revenue: float | None
    revenue_ci: tuple[float, float] | None
    cost: float
    roi: float | None
    roi_ci: tuple[float, float] | None


def _difference(y: np.ndarray, treated: np.ndarray, selected: np.ndarray, z: float) -> tuple[float, float, float]:
    """n_S · (ȳ_contacted,S − ȳ_holdout,S): the normalised (Hájek) inverse-propensity estimate of the
    incremental total if the selected set S is contacted, with its normal interval."""
    yt, yc = y[selected & treated], y[selected & ~treated]
    n = int(selected.sum())
    if yt.size < 2 or yc.size < 2:
        return math.nan, math.nan, math.nan
    estimate = n * (yt.mean() - yc.mean())
    se = n * math.sqrt(yt.var(ddof=1) / yt.size + yc.var(ddof=1) / yc.size)
    return float(estimate), float(estimate - z * se), float(estimate + z * se)


def policy_point(share: float, selected: np.ndarray, treated: np.ndarray, returned: np.ndarray,
                 revenue: np.ndarray | None, redeemed: np.ndarray | None, costs: Costs, *, alpha: float = 0.05
                 ) -> PolicyPoint:
    """Returns, revenue, cost and ROI of contacting ``selected`` among this experiment's customers.

    Randomization makes each arm a random sample of the selected customers, so each arm's mean within
    them estimates what all of them would do contacted (or not): inverse-propensity weighting with the
    propensity estimated by the arm shares inside the selection. The cost is the contact cost of every
    selected customer plus the coupons the contacted arm redeemed there, taken as known, so the ROI
    interval is the revenue interval scaled (as analysis.roi does with a known cost).
    """
    z = norm_isf(alpha / 2)
    n = int(selected.sum())
    returns, r_lo, r_hi = _difference(returned, treated, selected, z)
    redeem_rate = float(redeemed[selected & treated].mean()) if redeemed is not None and (selected & treated).any() else 0.0
    cost = n * (costs.contact + costs.coupon * redeem_rate)
    revenue_estimate = revenue_ci = roi = roi_ci = None
    if revenue is not None:
        revenue_estimate, lo, hi = _difference(revenue, treated, selected, z)
        revenue_ci = (lo, hi)
        if cost > 0 and math.isfinite(revenue_estimate):
            roi = (costs.margin * revenue_estimate - cost) / cost
            roi_ci = ((costs.margin * lo - cost) / cost, (costs.margin * hi - cost) / cost)
    return PolicyPoint(share, n, returns, (r_lo, r_hi), revenue_estimate, revenue_ci, cost, roi, roi_ci)


def top_share(score: np.ndarray, share: float, order: np.ndarray | None = None) -> np.ndarray:
    """The customers ranked in the top ``share`` by score (ties broken by position, deterministically);
    ``order``: the descending sort of ``score`` if already known."""
    k = int(round(share * score.size))
    selected = np.zeros(score.size, dtype=bool)
    selected[(np.argsort(-score, kind="mergesort") if order is None else order)[:k]] = True
    return selected


def value_per_customer(score: np.ndarray, metric_is_revenue: bool, value_per_return: float, margin: float = 1.0
                       ) -> np.ndarray:
    """Expected incremental ¥ (on margin) of contacting each customer: the uplift itself for revenue,
    else the uplift in return probability × what a returned customer brings."""
    return margin * (score if metric_is_revenue else score * value_per_return)


def cost_optimal(expected_value: np.ndarray, unit_cost: float) -> np.ndarray:
    """Contact exactly the customers whose expected incremental value exceeds what contacting them costs."""
    return expected_value > unit_cost


# ---------------------------------------------------------------- the whole evaluation


@dataclass(frozen=True)
class Importance:
    feature: str
    qini_drop: float  # how much the Qini coefficient falls when the feature is shuffled


@dataclass(frozen=True)
class TargetingEvaluation:
    """What ``recall target`` prints and the Targeting page shows (JSON-ready)."""

    estimator: str
    metric: str
    variant: str
    n_treated: int
    n_control: int
    features: tuple[str, ...]
    qini: float
    qini_ci: tuple[float, float]
    auuc: float
    auuc_ci: tuple[float, float]
    learners: dict[str, float]  # cross-validated Qini coefficient of each candidate
    response: RankingQuality  # ranking by predicted return probability instead
    curve: list[tuple[float, float]]  # Qini curve of the chosen model: (share, incremental outcomes)
    response_curve: list[tuple[float, float]]
    policy: list[PolicyPoint]
    cost_optimal: PolicyPoint
    unit_cost: float  # expected ¥ per contacted customer (channel + coupon × redemption rate)
    value_per_return: float | None
    importance: list[Importance]
    notes: tuple[str, ...] = ()
    folds: int = FOLDS

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))  # NaN → null, numpy → Python, as reports do


@dataclass(frozen=True)
class TargetingResult:
    evaluation: TargetingEvaluation
    scores: np.ndarray  # cross-fitted uplift per customer, in input order
    fold_models: tuple[FoldModel, ...] = field(repr=False)
    dtypes: dict[str, Any] = field(default_factory=dict, repr=False)  # the features as the models saw them


def permutation_importance(X: pd.DataFrame, y: np.ndarray, treated: np.ndarray, fitted: CrossFit, *,
                           rows: int = IMPORTANCE_ROWS, seed: int = 0) -> list[Importance]:
    """The fall in the Qini coefficient when one feature is shuffled, each customer still scored by the
    fold model that did not learn from them (held-out permutation importance), on a sample of rows."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(y), size=min(rows, len(y)), replace=False))
    Xs, ys, ts, folds = X.iloc[sample], y[sample], treated[sample], fitted.folds[sample]
    base = qini_coefficient(ys, fitted.scores[sample], ts)
    out = []
    for name in X.columns:
        shuffled = Xs.copy()
        shuffled[name] = Xs[name].to_numpy()[rng.permutation(len(sample))]
        shuffled[name] = shuffled[name].astype(Xs[name].dtype)
        scores = np.empty(len(sample))
        for k, model in enumerate(fitted.models):
            here = folds == k
            scores[here] = model.uplift(shuffled[here], sample[here])
        out.append(Importance(name, base - qini_coefficient(ys, scores, ts)))
    return sorted(out, key=lambda i: -i.qini_drop)


def evaluate(features: pd.DataFrame, treated: np.ndarray, y: np.ndarray, *, metric: str, variant: str,
             returned: np.ndarray, revenue: np.ndarray | None, redeemed: np.ndarray | None, costs: Costs,
             value_per_return: float | None = None, learners: Sequence[str] = LEARNERS, folds: int | None = None,
             replicates: int = BOOTSTRAP, alpha: float = 0.05, seed: int = 0) -> TargetingResult:
    """Learn, choose and evaluate an uplift model on one randomized contacted-vs-holdout comparison.

    ``y`` is the metric modelled (``returned`` or ``revenue``); ``returned``/``revenue``/``redeemed``
    are what the policy table counts. The learner with the higher cross-validated (out-of-fold) Qini
    coefficient is chosen; its out-of-fold scores are what every figure here is computed from.
    """
    treated, y = np.asarray(treated, bool), np.asarray(y, float)
    prepared = prepare(features, treated, y)
    X = prepared.X
    binary = bool(set(np.unique(y)) <= {0.0, 1.0})
    folds = folds or folds_for(len(y))
    fits = cross_fit_all((*learners, "response"), X, treated, y, binary=binary, folds=folds, seed=seed)
    response = fits.pop("response")
    cv_qini = {name: qini_coefficient(y, f.scores, treated) for name, f in fits.items()}
    chosen = fits[max(cv_qini, key=lambda name: cv_qini[name])]
    quality = ranking_quality(y, treated, {"model": chosen.scores, "response": response.scores},
                              replicates=replicates, alpha=alpha, seed=seed)
    model = quality["model"]

    returned = np.asarray(returned, float)
    revenue = None if revenue is None else np.asarray(revenue, float)
    redeemed = None if redeemed is None else np.asarray(redeemed, float)
    order = np.argsort(-chosen.scores, kind="mergesort")
    policy = [policy_point(s, top_share(chosen.scores, s, order), treated, returned, revenue, redeemed, costs,
                           alpha=alpha) for s in SHARES]
    redeem_rate = float(redeemed[treated].mean()) if redeemed is not None else 0.0
    unit_cost = costs.contact + costs.coupon * redeem_rate
    if value_per_return is None and revenue is not None:
        returners = treated & (returned > 0)
        value_per_return = float(revenue[returners].mean()) if returners.any() else 0.0
    expected = value_per_customer(chosen.scores, not binary, value_per_return or 0.0, costs.margin)  # continuous: ¥
    selected = cost_optimal(expected, unit_cost)
    optimal = policy_point(float(selected.mean()), selected, treated, returned, revenue, redeemed, costs, alpha=alpha)

    evaluation = TargetingEvaluation(
        estimator=chosen.learner, metric=metric, variant=variant, n_treated=int(treated.sum()),
        n_control=int((~treated).sum()), features=tuple(X.columns), qini=model.qini, qini_ci=model.qini_ci,
        auuc=model.auuc, auuc_ci=model.auuc_ci, learners=cv_qini, response=quality["response"],
        curve=curve_points(y, chosen.scores, treated), response_curve=curve_points(y, response.scores, treated),
        policy=policy, cost_optimal=optimal, unit_cost=unit_cost, value_per_return=value_per_return,
        importance=permutation_importance(X, y, treated, chosen, seed=seed), notes=prepared.notes, folds=folds,
    )
    return TargetingResult(evaluation, chosen.scores, chosen.models, dict(X.dtypes))


# ---------------------------------------------------------------- the report


_TEXT = {
    "zh": {
        "title": "# 精准召回：{variant} 对比无触达对照组（{metric}）",
        "summary": "模型 **{estimator}**（交叉验证 Qini 选出，{folds} 折交叉拟合：每位客户的分数来自没见过他的模型）。"
                   "触达组 {n_t:,} 人，对照组 {n_c:,} 人。",
        "quality": "## 排序质量（0 = 随机触达）",
        "ranking": "排序方式", "model": "增量模型", "response": "按预测回流概率",
        "policy": "## 触达前 x% 客户的预期效果（逆倾向加权，{level}% 区间）",
        "share": "触达比例", "contacted": "触达人数", "returns": "增量回流", "revenue": "增量收入", "cost": "成本",
        "optimal": "**成本最优切点**：只触达预期增量价值高于单人成本（{unit}）的客户 —— 触达 {share}（{n:,} 人），"
                   "增量回流 {returns}，ROI {roi}。",
        "features": "## 最重要的特征（打乱后 Qini 下降）",
        "feature": "特征", "drop": "Qini 下降",
        "notes": "说明",
    },
    "en": {
        "title": "# Who to recall: {variant} vs the no-contact holdout ({metric})",
        "summary": "Model **{estimator}** (chosen by cross-validated Qini; {folds}-fold cross-fitting: every "
                   "customer's score comes from models that never saw them). Contacted {n_t:,}, holdout {n_c:,}.",
        "quality": "## Ranking quality (0 = random targeting)",
        "ranking": "Ranking", "model": "Uplift model", "response": "Predicted return probability",
        "policy": "## Contacting the top x% (inverse-propensity weighting, {level}% intervals)",
        "share": "Share", "contacted": "Contacted", "returns": "Incremental returns", "revenue": "Incremental revenue",
        "cost": "Cost",
        "optimal": "**Cost-optimal cutoff**: contact only customers whose expected incremental value exceeds the "
                   "unit cost ({unit}) — {share} ({n:,} customers), incremental returns {returns}, ROI {roi}.",
        "features": "## Most important features (fall in Qini when shuffled)",
        "feature": "Feature", "drop": "Qini drop",
        "notes": "Notes",
    },
}


def _ci(ci: tuple[float, float] | None, fmt: str = "{:,.0f}") -> str:
    if ci is None or not all(math.isfinite(x) for x in ci):
        return ""
    return f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def _num(x: float | None, fmt: str = "{:,.0f}") -> str:
    return "–" if x is None or not math.isfinite(x) else fmt.format(x)


def render_markdown(e: TargetingEvaluation, *, lang: str = "zh", currency: str = "¥", level: int = 95) -> str:
    """The evaluation as a Markdown report in Chinese or English."""
    s = _TEXT[lang]
    money = lambda x: "–" if x is None or not math.isfinite(x) else f"{currency}{x:,.0f}"  # noqa: E731
    roi = lambda x: "–" if x is None or not math.isfinite(x) else f"{x:.1f}×"  # noqa: E731
    lines = [s["title"].format(variant=e.variant, metric=e.metric), "",
             s["summary"].format(estimator=e.estimator, folds=e.folds, n_t=e.n_treated, n_c=e.n_control), "",
             s["quality"], "", f"| {s['ranking']} | Qini | AUUC |", "|---|---|---|"]
    for name, q in ((s["model"], RankingQuality(e.qini, e.qini_ci, e.auuc, e.auuc_ci)), (s["response"], e.response)):
        lines.append(f"| {name} | {q.qini:.3f}{_ci(q.qini_ci, '{:.3f}')} | {q.auuc:.3f}{_ci(q.auuc_ci, '{:.3f}')} |")
    lines += ["", s["policy"].format(level=level), "",
              f"| {s['share']} | {s['contacted']} | {s['returns']} | {s['revenue']} | {s['cost']} | ROI |",
              "|---|---|---|---|---|---|"]
    for p in e.policy:
        lines.append(f"| {p.share:.0%} | {p.contacted:,} | {_num(p.incremental_returns)}{_ci(p.ci)} | "
                     f"{money(p.incremental_revenue)}{_ci(p.revenue_ci, currency + '{:,.0f}')} | {money(p.cost)} | "
                     f"{roi(p.roi)}{_ci(p.roi_ci, '{:.1f}×')} |")
    o = e.cost_optimal
    lines += ["", s["optimal"].format(unit=f"{currency}{e.unit_cost:.2f}", share=f"{o.share:.0%}", n=o.contacted,
                                      returns=_num(o.incremental_returns) + _ci(o.ci), roi=roi(o.roi) + _ci(o.roi_ci, "{:.1f}×")),
              "", s["features"], "", f"| {s['feature']} | {s['drop']} |", "|---|---|"]
    lines += [f"| {i.feature} | {i.qini_drop:+.3f} |" for i in e.importance]
    if e.notes:
        lines += ["", f"{s['notes']}: " + "; ".join(e.notes)]
    return "\n".join(lines) + "\n"
