"""Interval and test formulas, pinned to published or hand-computed values."""

import math

import pytest

from cx import stats


def test_nps_standard_error_and_margin_match_the_published_example():
    # pP = .5, pD = .2, n = 400: NPS 30, SE = √((.5 + .2 − .3²)/400) = √(.61/400) = 3.905 points, margin ±7.65.
    value, se, lo, hi = stats.nps_interval(200, 80, 400)
    assert value == pytest.approx(30.0)
    assert se == pytest.approx(3.905, abs=0.001)
    assert (hi - value) == pytest.approx(7.65, abs=0.01)
    assert (value - lo) == pytest.approx(7.65, abs=0.01)


def test_wilson_interval_of_74_satisfied_out_of_107():
    # 74/107 = 69.2%; Wilson 95%: centre (p + z²/2n)/(1 + z²/n), half z√(p(1−p)/n + z²/4n²)/(1 + z²/n).
    lo, hi = stats.wilson_interval(74, 107)
    assert 74 / 107 == pytest.approx(0.6916, abs=1e-4)
    assert lo == pytest.approx(0.5984, abs=1e-3)
    assert hi == pytest.approx(0.7712, abs=1e-3)


def test_wilson_interval_stays_inside_zero_and_one():
    # None of 10: exactly 0 to z²/(n + z²) = 3.8415/13.8415 = .2775.
    assert stats.wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert stats.wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    assert stats.wilson_interval(0, 3)[0] == 0.0 and stats.wilson_interval(3, 3)[1] == 1.0


def test_t_interval_of_a_mean():
    # mean 5, sd 2, n 16: t(0.975, 15) = 2.1314, half-width 2.1314·2/4 = 1.0657.
    lo, hi = stats.t_interval(5.0, 2.0, 16)
    assert (hi - lo) / 2 == pytest.approx(1.0657, abs=1e-3)


def test_order_statistic_ranks_for_the_median_of_100():
    # n = 100, q = .5: 50 ± 1.96·√25 = 50 ± 9.8 → ranks 40 and 60.
    assert stats.order_statistic_ranks(100, 0.5) == (40, 60)
    # Small samples: the ranks stop at the first and the last value.
    assert stats.order_statistic_ranks(3, 0.5) == (1, 3)


def test_order_statistic_interval_covers_the_median_about_95_percent_of_the_time():
    # The 40th and 60th of 100 draws bracket the median when 40 ≤ B < 60 draws fall below it, B ~ Bin(100, .5):
    from scipy import stats as sps

    assert sps.binom.cdf(59, 100, 0.5) - sps.binom.cdf(39, 100, 0.5) == pytest.approx(0.9540, abs=1e-4)


def test_quantile_interval_of_a_sample():
    # 1…100: median 50.5 between the 40th and 60th values; p90 at position 89.1 → 90.1, ranks 84 and 96.
    assert stats.quantile_interval(range(1, 101)) == (50.5, 40.0, 60.0)
    assert stats.quantile_interval(range(1, 101), 0.9) == (pytest.approx(90.1), 84.0, 96.0)
    assert all(math.isnan(v) for v in stats.quantile_interval([]))


def test_nps_difference_test():
    # 30 (200/80 of 400) vs 10 (150/110 of 400): SE₂ = √((.375 + .275 − .1²)/400) = .04, so the SEs are
    # 3.905 and 4.000 points; z = 20/√(3.905² + 4²) = 20/5.590 = 3.578.
    z, p = stats.nps_difference_test(200, 80, 400, 150, 110, 400)
    assert z == pytest.approx(3.578, abs=0.01)
    assert p < 0.001


def test_two_proportion_test():
    # 60/100 vs 45/100: pooled .525, SE √(.525·.475·.02) = .07062, z = .15/.07062 = 2.124, p = .0337.
    z, p = stats.two_proportion_test(60, 100, 45, 100)
    assert z == pytest.approx(2.124, abs=1e-3)
    assert p == pytest.approx(0.0337, abs=1e-3)


def test_welch_test_matches_scipy():
    from scipy import stats as sps

    t, p = stats.welch_test(5.0, 1.0, 30, 4.5, 2.0, 40)
    ref = sps.ttest_ind_from_stats(5.0, 1.0, 30, 4.5, 2.0, 40, equal_var=False)
    assert t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)


def test_nps_interval_is_plain_wald_clipped_to_the_scale():
    # All 5 promoters: SE = √((1 + 0 − 1)/5) = 0, so the interval is the point itself (adjusted-Wald would not be).
    assert stats.nps_interval(5, 0, 5) == (100.0, 0.0, 100.0, 100.0)
    # 1 promoter and 2 detractors of 5: −20, SE = √((.2 + .4 − .04)/5) = 33.47 points → low clipped at −85.6.
    value, se, lo, hi = stats.nps_interval(1, 2, 5)
    assert (value, se) == (pytest.approx(-20.0), pytest.approx(33.466, abs=1e-3))
    assert (lo, hi) == (pytest.approx(-85.59, abs=0.01), pytest.approx(45.59, abs=0.01))


def test_confidence_levels_and_small_samples():
    assert stats.z_for(0.95) == pytest.approx(1.95996, abs=1e-5)
    assert stats.z_for(0.90) == pytest.approx(1.64485, abs=1e-5)
    assert all(math.isnan(v) for v in stats.t_interval(5.0, 1.0, 1))
    assert all(math.isnan(v) for v in stats.wilson_interval(0, 0))


def test_count_rate_test():
    # 120 vs 80 events in equal periods: z = 40/√200 = 2.828, p = .00468.
    z, p = stats.count_rate_test(120, 80)
    assert z == pytest.approx(2.828, abs=1e-3) and p == pytest.approx(0.00468, abs=1e-5)


def test_tests_without_data_give_nan_not_errors():
    assert math.isnan(stats.two_proportion_test(0, 0, 1, 2)[1])
    assert math.isnan(stats.nps_difference_test(0, 0, 0, 1, 1, 2)[1])
