"""Interval estimates and tests behind every number Touchpoint shows (scipy for the distributions).

Conventions: proportions are in [0, 1] here; callers scale to percent or NPS points; intervals are
95% unless a confidence is given.

Choices: NPS gets a plain Wald interval from its trinomial SE, not the adjusted-Wald variant (which
adds ¾ of a promoter, ¾ of a detractor and 3 answers before computing it); proportions Wilson;
means Student t; medians and other quantiles the distribution-free order-statistic interval (no
resampling, so the same on every engine and every run). Tests: NPS z on the difference, pooled
two-proportion z, Welch t, and for quantiles a z-test with SEs read off their intervals.
"""

from __future__ import annotations

import math

from scipy import stats as _st

Z95 = 1.959963984540054


def z_for(confidence: float) -> float:
    """The two-sided normal quantile for a confidence level (0.95 → 1.96)."""
    return float(_st.norm.ppf(0.5 + confidence / 2))


def nps_se(p_promoters: float, p_detractors: float, n: int) -> float:
    """Standard error of NPS as a proportion difference: √((pP + pD − (pP − pD)²) / n)."""
    if n <= 0:
        return math.nan
    var = p_promoters + p_detractors - (p_promoters - p_detractors) ** 2
    return math.sqrt(max(var, 0.0) / n)


def nps_interval(promoters: int, detractors: int, n: int, z: float = Z95) -> tuple[float, float, float, float]:
    """(NPS, SE, low, high) in points (−100…100). A plain Wald interval on the trinomial
    difference, clipped to the scale; it is the interval survey vendors publish."""
    if n <= 0:
        return math.nan, math.nan, math.nan, math.nan
    pp, pd_ = promoters / n, detractors / n
    value = 100 * (pp - pd_)
    se = 100 * nps_se(pp, pd_, n)
    return value, se, max(-100.0, value - z * se), min(100.0, value + z * se)


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n, in [0, 1] (exactly 0 when k = 0, 1 when k = n)."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (0.0 if k <= 0 else max(0.0, centre - half)), (1.0 if k >= n else min(1.0, centre + half))


def t_interval(mean: float, sd: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Student t interval of a mean."""
    if n is None or n < 2 or sd is None or math.isnan(sd):
        return math.nan, math.nan
    half = float(_st.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def order_statistic_ranks(n: int, q: float, z: float = Z95) -> tuple[int, int]:
    """1-based ranks (j, k) whose values bound the q-quantile with ~95% confidence (the
    distribution-free order-statistic interval, normal approximation to the binomial)."""
    half = z * math.sqrt(n * q * (1 - q))
    return max(1, math.floor(n * q - half)), min(n, math.ceil(n * q + half))


def quantile_interval(values, q: float = 0.5, z: float = Z95) -> tuple[float, float, float]:
    """(q-quantile by linear interpolation, low, high) of a sample: the order statistics at
    ``order_statistic_ranks``. The in-engine computation in ``cx.metrics`` follows this reference."""
    xs = sorted(float(v) for v in values if v is not None and not math.isnan(float(v)))
    n = len(xs)
    if n == 0:
        return math.nan, math.nan, math.nan
    pos = (n - 1) * q
    below = math.floor(pos)
    value = xs[below] + (pos - below) * (xs[min(below + 1, n - 1)] - xs[below])
    j, k = order_statistic_ranks(n, q, z)
    return value, xs[j - 1], xs[k - 1]


def two_sided_p(z: float) -> float:
    return float(2 * _st.norm.sf(abs(z))) if not math.isnan(z) else math.nan


def nps_difference_test(p1: int, d1: int, n1: int, p2: int, d2: int, n2: int) -> tuple[float, float]:
    """(z, p) for NPS now (1) vs before (2): the difference over √(SE₁² + SE₂²)."""
    if n1 <= 0 or n2 <= 0:
        return math.nan, math.nan
    v1, v2 = (p1 - d1) / n1, (p2 - d2) / n2
    se = math.sqrt(nps_se(p1 / n1, d1 / n1, n1) ** 2 + nps_se(p2 / n2, d2 / n2, n2) ** 2)
    if se == 0:
        return math.nan, math.nan
    z = (v1 - v2) / se
    return z, two_sided_p(z)


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """(z, p) of the pooled two-proportion z-test."""
    if n1 <= 0 or n2 <= 0:
        return math.nan, math.nan
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return math.nan, math.nan
    z = (k1 / n1 - k2 / n2) / se
    return z, two_sided_p(z)


def welch_test(m1: float, s1: float, n1: int, m2: float, s2: float, n2: int) -> tuple[float, float]:
    """(t, p) of Welch's unequal-variance t-test from summary statistics."""
    if n1 < 2 or n2 < 2 or any(math.isnan(x) for x in (m1, s1, m2, s2)):
        return math.nan, math.nan
    v1, v2 = s1 * s1 / n1, s2 * s2 / n2
    if v1 + v2 == 0:
        return math.nan, math.nan
    t = (m1 - m2) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1))
    return t, float(2 * _st.t.sf(abs(t), df))


def interval_difference_test(v1: float, lo1: float, hi1: float, v2: float, lo2: float, hi2: float) -> tuple[float, float]:
    """(z, p) for two estimates known by their 95% intervals (medians, percentiles): each
    interval's half-width / 1.96 is taken as its standard error."""
    se1, se2 = (hi1 - lo1) / (2 * Z95), (hi2 - lo2) / (2 * Z95)
    se = math.sqrt(se1 * se1 + se2 * se2)
    if not se or math.isnan(se):
        return math.nan, math.nan
    z = (v1 - v2) / se
    return z, two_sided_p(z)


def count_rate_test(c1: int, c2: int) -> tuple[float, float]:
    """(z, p) for two event counts over periods of equal length (Poisson; normal approximation)."""
    if c1 + c2 == 0:
        return math.nan, math.nan
    z = (c1 - c2) / math.sqrt(c1 + c2)
    return z, two_sided_p(z)
