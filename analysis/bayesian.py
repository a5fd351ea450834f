"""Bayesian comparison of one variant against the control, from sufficient statistics.

- Binary metrics (returned, ordered…): conjugate beta-binomial model. With a Beta(a₀, b₀) prior and
  x successes out of n, the posterior of the rate is Beta(a₀ + x, b₀ + n − x). The chance to beat
  the control P(p_v > p_c) uses Evan Miller's exact closed form (a finite sum of Beta functions,
  evaluated in log space with ``scipy.special.betaln``) whenever one posterior parameter is an
  integer small enough to sum over; very large counts use the normal approximation of the two
  posteriors; non-integer parameters (e.g. the Jeffreys prior) use adaptive numerical integration.
  The expected loss E[max(p_c − p_v, 0)] is exact through the identity
  E[p·1{…}] = mean · P(under Beta(a + 1, b)) (Stucchio 2015). The credible interval of the absolute
  uplift p_v − p_c comes from numerical integration of its exact distribution function.
  Nothing is random unless ``draws`` asks for Monte Carlo.
- Continuous metrics (revenue): flat prior, normal approximation of the posterior of the difference
  of means, or of the log ratio of means (relative uplift, as GrowthBook's gbstats did).

References: Evan Miller, "Formulas for Bayesian A/B Testing" (2015); C. Stucchio, "Bayesian A/B
Testing at VWO" (2015); GrowthBook gbstats, ``bayesian/tests.py``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import special

from analysis.distributions import norm_cdf, norm_isf, norm_pdf, norm_sf
from analysis.sufficient import SampleStats

EXACT_METHOD = "beta-binomial: exact P(beat) (Evan Miller) and expected loss; CI by numerical integration"
QUADRATURE_METHOD = "beta-binomial: numerical integration"
BETA_NORMAL_METHOD = "beta-binomial: normal approximation of the posteriors"
MONTE_CARLO_METHOD = "beta-binomial: Monte Carlo ({draws} draws, seed {seed})"
NORMAL_METHOD = "normal posterior, flat prior: difference of means"
LOG_NORMAL_METHOD = "normal posterior, flat prior: log ratio of means (relative uplift)"

#: Largest number of terms summed by the closed form; above, every posterior parameter is so large
#: that the beta posteriors are normal to within ~2/√MAX_EXACT_TERMS in skewness.
MAX_EXACT_TERMS = 100_000

_TAIL = 1e-15  # posterior mass left out of each numerical integral, per side


@dataclass(frozen=True)
class BayesianResult:
    """Posterior summary of the variant against the control.

    ``expected_loss`` is the loss of shipping the variant, E[max(control − variant, 0)];
    ``expected_loss_control`` that of keeping the control, E[max(variant − control, 0)].
    For ``scale="relative"`` all three are fractions of the control mean.
    """

    chance_to_beat_control: float
    expected_loss: float
    expected_loss_control: float
    uplift: float  # posterior mean of the uplift
    uplift_ci: tuple[float, float]  # equal-tailed credible interval (95 % by default)
    method: str


# --------------------------------------------------------------------------- beta posteriors


def _is_integer(x: float) -> bool:
    return float(x).is_integer()


def _miller_sum(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """P(X > Y) for X ~ Beta(a_x, b_x), Y ~ Beta(a_y, b_y), with ``a_x`` a positive integer:

        Σ_{i=0}^{a_x−1} B(a_y + i, b_x + b_y) / ((b_x + i) B(1 + i, b_x) B(a_y, b_y))

    (Evan Miller 2015), summed in log space."""
    i = np.arange(int(a_x), dtype=float)
    log_terms = (special.betaln(a_y + i, b_x + b_y) - np.log(b_x + i)
                 - special.betaln(1 + i, b_x) - special.betaln(a_y, b_y))
    return float(min(max(np.exp(special.logsumexp(log_terms)), 0.0), 1.0))


def prob_greater_exact(a_x: float, b_x: float, a_y: float, b_y: float, over: str | None = None) -> float:
    """Exact P(X > Y), X ~ Beta(a_x, b_x), Y ~ Beta(a_y, b_y), by the closed form summed over one
    integer parameter: ``over`` is "a_x", "a_y", "b_x" or "b_y" (default: the smallest integer one).

    The four versions are the same probability: summing over a_y uses P(X > Y) = 1 − P(Y > X), and
    over b_x / b_y the reflection p → 1 − p (X > Y ⟺ 1 − Y > 1 − X, 1 − X ~ Beta(b_x, a_x))."""
    candidates = {"a_x": a_x, "a_y": a_y, "b_x": b_x, "b_y": b_y}
    if over is None:
        integer = {k: v for k, v in candidates.items() if _is_integer(v)}
        if not integer:
            raise ValueError("the closed form needs an integer posterior parameter")
        over = min(integer, key=integer.__getitem__)
    elif not _is_integer(candidates[over]):
        raise ValueError(f"{over} = {candidates[over]} is not an integer")
    if over == "a_x":
        return _miller_sum(a_x, b_x, a_y, b_y)
    if over == "a_y":
        return 1.0 - _miller_sum(a_y, b_y, a_x, b_x)
    if over == "b_y":
        return _miller_sum(b_y, a_y, b_x, a_x)
    return 1.0 - _miller_sum(b_x, a_x, b_y, a_y)


def _support(a: float, b: float) -> tuple[float, float]:
    """Beta(a, b)'s quantiles at _TAIL and 1 − _TAIL. scipy.stats' beta.ppf rather than
    ``special.betaincinv``: the two differ where the root finding struggles (a = 0.5, b = 3)."""
    from scipy import stats  # here, not at the top: keeps the CLI's start-up light

    return float(stats.beta.ppf(_TAIL, a, b)), float(stats.beta.isf(_TAIL, a, b))


def diff_cdf(d: float, a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """P(X − Y ≤ d) = ∫ f_Y(p) F_X(p + d) dp for independent beta X and Y, by adaptive quadrature."""
    from scipy import integrate  # here, not at the top: keeps the CLI's start-up light

    lo, hi = _support(a_y, b_y)
    log_norm = special.betaln(a_y, b_y)

    def integrand(p: float) -> float:  # scipy.special directly: quad calls this thousands of times
        if not 0.0 < p < 1.0:  # a support bound that rounded to 0 or 1: one point, weight 0
            return 0.0
        density = math.exp((a_y - 1) * math.log(p) + (b_y - 1) * math.log1p(-p) - log_norm)
        return density * special.betainc(a_x, b_x, min(max(p + d, 0.0), 1.0))

    with warnings.catch_warnings():  # a U-shaped posterior (a or b < 1) makes quad warn of round-off
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, _ = integrate.quad(integrand, lo, hi, limit=200, epsabs=1e-13, epsrel=1e-11)
    return min(max(value, 0.0), 1.0)


def prob_greater_quadrature(a_x: float, b_x: float, a_y: float, b_y: float) -> float:
    """P(X > Y) for independent beta X and Y by numerical integration (any positive parameters)."""
    return 1.0 - diff_cdf(0.0, a_x, b_x, a_y, b_y)


def _beta_moments(a: float, b: float) -> tuple[float, float]:
    s = a + b
    return a / s, a * b / (s * s * (s + 1))


def _normal_loss(mu: float, sd: float) -> tuple[float, float]:
    """E[max(−D, 0)] and E[max(D, 0)] for D ~ N(mu, sd²)."""
    if sd <= 0:
        return max(-mu, 0.0), max(mu, 0.0)
    z = mu / sd
    loss_neg = sd * norm_pdf(z) - mu * norm_sf(z)
    loss_pos = sd * norm_pdf(z) + mu * norm_cdf(z)
    return max(float(loss_neg), 0.0), max(float(loss_pos), 0.0)


def _posterior(stats_: SampleStats, prior: tuple[float, float]) -> tuple[float, float]:
    n, x = float(stats_.n), float(stats_.sum)
    if not (0 <= x <= n):
        raise ValueError(f"successes {x} outside [0, n = {n}]")
    return prior[0] + x, prior[1] + n - x


def beta_binomial(control: SampleStats, variant: SampleStats, prior: tuple[float, float] = (1, 1),
                  draws: int | None = None, *, alpha: float = 0.05, seed: int = 0) -> BayesianResult:
    """Beta-binomial posterior comparison of two conversion rates (``SampleStats.sum`` = successes).

    Default path (deterministic): exact closed form when an integer posterior parameter is at most
    :data:`MAX_EXACT_TERMS`, normal approximation when all parameters exceed it, numerical
    integration otherwise (non-integer prior). ``draws`` switches to Monte Carlo with that many
    posterior draws from ``numpy.random.default_rng(seed)``, for cross-checks.
    """
    a_c, b_c = _posterior(control, prior)
    a_v, b_v = _posterior(variant, prior)
    m_c, var_c = _beta_moments(a_c, b_c)
    m_v, var_v = _beta_moments(a_v, b_v)
    uplift = m_v - m_c
    q_lo, q_hi = alpha / 2, 1 - alpha / 2

    if draws is not None:
        rng = np.random.default_rng(seed)
        p_c = rng.beta(a_c, b_c, size=draws)
        p_v = rng.beta(a_v, b_v, size=draws)
        d = p_v - p_c
        lo, hi = np.quantile(d, [q_lo, q_hi])
        return BayesianResult(float(np.mean(d > 0)), float(np.mean(np.maximum(-d, 0))),
                              float(np.mean(np.maximum(d, 0))), float(np.mean(d)), (float(lo), float(hi)),
                              MONTE_CARLO_METHOD.format(draws=draws, seed=seed))

    params = (a_c, b_c, a_v, b_v)
    sd = math.sqrt(var_c + var_v)
    if min(params) > MAX_EXACT_TERMS:
        loss_v, loss_c = _normal_loss(uplift, sd)
        z = norm_isf(alpha / 2)
        return BayesianResult(float(norm_cdf(uplift / sd)) if sd > 0 else float(uplift > 0),
                              loss_v, loss_c, uplift, (float(uplift - z * sd), float(uplift + z * sd)),
                              BETA_NORMAL_METHOD)

    if any(_is_integer(p) and p <= MAX_EXACT_TERMS for p in params):
        prob, method = prob_greater_exact, EXACT_METHOD
    else:
        prob, method = prob_greater_quadrature, QUADRATURE_METHOD

    chance = prob(a_v, b_v, a_c, b_c)
    # E[max(p_c − p_v, 0)] = E[p_c 1{p_c > p_v}] − E[p_v 1{p_c > p_v}], and p·Beta(a, b) density
    # = mean · Beta(a + 1, b) density.
    loss_v = m_c * prob(a_c + 1, b_c, a_v, b_v) - m_v * prob(a_c, b_c, a_v + 1, b_v)
    loss_c = m_v * prob(a_v + 1, b_v, a_c, b_c) - m_c * prob(a_v, b_v, a_c + 1, b_c)

    from scipy import optimize  # here, not at the top: keeps the CLI's start-up light

    def quantile(q: float) -> float:
        lo, hi = max(uplift - 40 * sd, -1.0), min(uplift + 40 * sd, 1.0)
        return float(optimize.brentq(lambda d: diff_cdf(d, a_v, b_v, a_c, b_c) - q, lo, hi, xtol=1e-12))

    return BayesianResult(chance, max(loss_v, 0.0), max(loss_c, 0.0), uplift,
                          (quantile(q_lo), quantile(q_hi)), method)


# --------------------------------------------------------------------------- normal posteriors


def normal_posterior(control: SampleStats, variant: SampleStats, *, scale: str = "absolute",
                     alpha: float = 0.05) -> BayesianResult:
    """Flat-prior normal posterior of the uplift of a continuous metric (revenue per customer).

    ``scale="absolute"``: D = mean_v − mean_c ~ N(m_v − m_c, s_v²/n_v + s_c²/n_c).
    ``scale="relative"`` (gbstats): L = log(mean_v / mean_c) ~ N(log m_v − log m_c,
    s_v²/(n_v m_v²) + s_c²/(n_c m_c²)) and the uplift is e^L − 1; the losses are then the closed
    forms E[max(1 − e^L, 0)] = Φ(−μ/σ) − e^{μ+σ²/2} Φ(−μ/σ − σ) and
    E[max(e^L − 1, 0)] = e^{μ+σ²/2} Φ(μ/σ + σ) − Φ(μ/σ), as fractions of the control mean
    (nan unless both means are positive).

    Works element-wise when the ``SampleStats`` fields are arrays; the result then holds arrays.
    """
    n_c, m_c, v_c = (np.asarray(x, dtype=float) for x in (control.n, control.mean, control.variance))
    n_v, m_v, v_v = (np.asarray(x, dtype=float) for x in (variant.n, variant.mean, variant.variance))
    z = norm_isf(alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        if scale == "absolute":
            mu = m_v - m_c
            sd = np.sqrt(v_v / n_v + v_c / n_c)
            s = np.where(sd > 0, mu / sd, np.sign(mu) * np.inf)  # sd = 0: a point mass at mu
            chance = np.where(sd > 0, norm_cdf(s), np.where(mu > 0, 1.0, np.where(mu < 0, 0.0, 0.5)))
            loss_v = np.where(sd > 0, sd * norm_pdf(s) - mu * norm_sf(s), np.maximum(-mu, 0))
            loss_c = np.where(sd > 0, sd * norm_pdf(s) + mu * norm_cdf(s), np.maximum(mu, 0))
            uplift, ci, method = mu, (mu - z * sd, mu + z * sd), NORMAL_METHOD
        elif scale == "relative":
            positive = (m_c > 0) & (m_v > 0)
            m_c, m_v = np.where(positive, m_c, np.nan), np.where(positive, m_v, np.nan)
            mu = np.log(m_v / m_c)
            sd = np.sqrt(v_v / (n_v * m_v * m_v) + v_c / (n_c * m_c * m_c))
            s = mu / sd
            chance = norm_cdf(s)
            growth = np.exp(mu + sd * sd / 2)  # E[e^L]
            loss_v = norm_sf(s) - growth * norm_sf(s + sd)
            loss_c = growth * norm_cdf(s + sd) - norm_cdf(s)
            uplift, ci, method = growth - 1, (np.expm1(mu - z * sd), np.expm1(mu + z * sd)), LOG_NORMAL_METHOD
        else:
            raise ValueError(f"scale must be 'absolute' or 'relative', not {scale!r}")
        loss_v, loss_c = np.maximum(loss_v, 0.0), np.maximum(loss_c, 0.0)

    def out(x: np.ndarray) -> float | np.ndarray:
        return float(x) if np.ndim(x) == 0 else x

    return BayesianResult(out(chance), out(loss_v), out(loss_c), out(uplift), (out(ci[0]), out(ci[1])), method)
