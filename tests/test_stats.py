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
    assert stats.wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
    assert stats.wilson_interval(10, 10)[1] == pytest.approx(1.0, abs=1e-12)
    assert stats.wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-3)


def test_t_interval_of_a_mean():
    # mean 5, sd 2, n 16: t(0.975, 15) = 2.1314, half-width 2.1314·2/4 = 1.0657.
    lo, hi = stats.t_interval(5.0, 2.0, 16)
    assert (hi - lo) / 2 == pytest.approx(1.0657, abs=1e-3)


def test_order_statistic_ranks_for_the_median_of_100():
    # n = 100, q = .5: 50 ± 1.96·√25 = 50 ± 9.8 → ranks 40 and 60.
    assert stats.order_statistic_ranks(100, 0.5) == (40, 60)


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


def test_tests_without_data_give_nan_not_errors():
    assert math.isnan(stats.two_proportion_test(0, 0, 1, 2)[1])
    assert math.isnan(stats.nps_difference_test(0, 0, 0, 1, 1, 2)[1])
