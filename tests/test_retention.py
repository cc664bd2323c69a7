"""Churn and retention on hand-written customers and orders, with the Kaplan–Meier tables, log-rank
statistics, cohort matrices and churn rates worked out by hand in the comments; then Telco."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from cx import ingest, metrics, retention
from cx.errors import UnknownDimension

T = pd.Timestamp
Z = 1.959963984540054
DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _customers(store, rows, **extra):
    frame = pd.DataFrame(rows)
    for k, v in extra.items():
        frame[k] = v
    ingest.import_frame(store, "customers", frame, file_name="fixture")


# Six subscribers with a tenure in months and a churned flag:
# a churned after 1, b after 2, c still here at 2, d churned after 3, e still here at 4, f churned after 5.
SIX = [("a", 1, True), ("b", 2, True), ("c", 2, False), ("d", 3, True), ("e", 4, False), ("f", 5, True)]


@pytest.fixture
def six(store):
    _customers(store, {"customer_id": [c for c, _, _ in SIX], "tenure": [t for _, t, _ in SIX],
                       "churned": [e for _, _, e in SIX], "plan": ["x"] * 6}, tenure_unit="month")
    return store


def test_kaplan_meier_table_matches_the_hand_computation(six):
    assert retention.lifetime_source(six) == "tenure"
    s = retention.survival(six)
    km = s.curves.set_index("time")
    # t  at risk  events  S
    # 1     6       1     5/6
    # 2     5       1     5/6 · 4/5 = 2/3   (c, censored at 2, is still at risk at 2)
    # 3     3       1     2/3 · 2/3 = 4/9
    # 4     2       0     4/9               (e censored)
    # 5     1       1     0
    assert km["at_risk"].to_dict() == {0.0: 6, 1.0: 6, 2.0: 5, 3.0: 3, 4.0: 2, 5.0: 1}
    assert km["events"].to_dict() == {0.0: 0, 1.0: 1, 2.0: 1, 3.0: 1, 4.0: 0, 5.0: 1}
    assert km["survival"].tolist() == pytest.approx([1, 5 / 6, 2 / 3, 4 / 9, 4 / 9, 0])
    # Log-log Greenwood interval at t = 2: Σ d/(n(n−d)) = 1/30 + 1/20 = 1/12, se of log(−log S) =
    # √(1/12) / |log 2/3| = 0.71196, bounds S^exp(±1.96 · 0.71196) = 0.1946 and 0.9044.
    se = math.sqrt(1 / 30 + 1 / 20) / abs(math.log(2 / 3))
    assert km.loc[2.0, "ci_low"] == pytest.approx((2 / 3) ** math.exp(Z * se), abs=1e-9)
    assert km.loc[2.0, "ci_low"] == pytest.approx(0.1946, abs=1e-4)
    assert km.loc[2.0, "ci_high"] == pytest.approx(0.9044, abs=1e-4)
    row = s.summary.iloc[0]
    assert (row["customers"], row["churned"]) == (6, 4)
    assert row["median"] == 3.0  # S first falls to 4/9 ≤ 1/2 at 3 months
    assert s.test is None


def test_log_rank_two_groups_by_hand_and_against_scipy(store):
    # Plan A: churned at 1, 2, 3. Plan B: churned at 2 and 4, still here at 5.
    #  t  n  d  n_A  d_A  E_A = d·n_A/n  V = d(n−d)/(n−1) · n_A/n · (1 − n_A/n)
    #  1  6  1   3    1      0.5          1·5/5 · 1/2 · 1/2 = 0.25
    #  2  5  2   2    1      0.8          2·3/4 · 2/5 · 3/5 = 0.36
    #  3  3  1   1    1      1/3          1·2/2 · 1/3 · 2/3 = 2/9
    #  4  2  1   0    0      0            0
    # O_A − E_A = 3 − 49/30 = 41/30; V = 0.83222; χ² = (41/30)² / 0.83222 = 2.2443
    _customers(store, {"customer_id": list("abcdef"), "tenure": [1, 2, 3, 2, 4, 5],
                       "churned": [True, True, True, True, True, False], "plan": list("AAABBB")},
               tenure_unit="month")
    s = retention.survival(store, by="plan")
    v = 0.25 + 0.36 + 2 / 9
    assert s.test.statistic == pytest.approx((41 / 30) ** 2 / v, rel=1e-9)
    assert s.test.statistic == pytest.approx(2.2443, abs=1e-4)
    assert s.test.df == 1
    assert s.test.p_value == pytest.approx(sps.chi2.sf((41 / 30) ** 2 / v, 1), rel=1e-9)
    ref = sps.logrank(sps.CensoredData(uncensored=[1, 2, 3]), sps.CensoredData(uncensored=[2, 4], right=[5]))
    assert s.test.statistic == pytest.approx(ref.statistic ** 2, rel=1e-9)
    assert s.test.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert "No significant difference" in retention.describe_test(s.test)


def test_log_rank_with_three_groups_does_not_depend_on_which_group_is_left_out(store):
    _customers(store, {"customer_id": [f"c{i}" for i in range(12)],
                       "tenure": [1, 2, 3, 4, 2, 4, 6, 8, 5, 9, 12, 12],
                       "churned": [True, True, True, False, True, True, False, True, True, False, True, False],
                       "plan": ["A"] * 4 + ["B"] * 4 + ["C"] * 4}, tenure_unit="month")
    rows = retention.lifetimes(store, by="plan")
    forward = retention.logrank_test(rows)
    renamed = rows.assign(group=rows["group"].map({"A": "z", "B": "b", "C": "c"}))
    backward = retention.logrank_test(renamed)
    assert forward.df == 2
    assert forward.statistic == pytest.approx(backward.statistic, rel=1e-9)
    assert 0 < forward.p_value < 1


# Five subscribers with dates; the data end on 30 April 2024.
# c1 signs up 5 Jan, leaves 10 Feb · c2 signs up 20 Jan, stays · c3 signs up and leaves on 31 Jan ·
# c4 signs up 3 Feb, leaves 15 Apr · c5 signs up 28 Feb, stays.
DATED = {"customer_id": ["c1", "c2", "c3", "c4", "c5"],
         "signup_at": [T("2024-01-05"), T("2024-01-20"), T("2024-01-31"), T("2024-02-03"), T("2024-02-28")],
         "churned_at": [T("2024-02-10"), None, T("2024-01-31 18:00"), T("2024-04-15"), None],
         "segment": ["SMB", "SMB", "Consumer", "Consumer", "SMB"]}
AS_OF = date(2024, 4, 30)


def test_cohort_retention_by_signup_month(store):
    _customers(store, DATED)
    out = retention.cohort_retention(store, grain="month", as_of=AS_OF)
    m = retention.cohort_matrix(out).round(1)
    # January (c1 c2 c3): end of Jan c3 gone → 2/3; end of Feb c1 gone → 1/3; Mar, Apr 1/3.
    assert m.loc[T("2024-01-01")].tolist() == [66.7, 33.3, 33.3, 33.3]
    # February (c4 c5): both at the end of Feb and Mar; c4 leaves in April → 1/2. May is not over.
    assert m.loc[T("2024-02-01")].dropna().tolist() == [100.0, 100.0, 50.0]
    assert out.groupby("cohort")["customers"].first().tolist() == [3, 2]
    # Filters apply to customers' own columns: SMB January is c1 and c2.
    smb = retention.cohort_matrix(retention.cohort_retention(store, where={"segment": ["SMB"]}, as_of=AS_OF))
    assert smb.loc[T("2024-01-01")].tolist() == [100.0, 50.0, 50.0, 50.0]


def test_churn_rate_per_month_from_dates_agrees_with_the_metric_layer(store):
    _customers(store, DATED)
    out = retention.churn_by_period(store, grain="month", as_of=AS_OF).set_index("period")
    # Feb: active at 1 Feb c1 c2 (c3 left in Jan), c1 leaves → 1/2. Mar: c2 c4 c5, none leaves.
    # Apr: c2 c4 c5, c4 leaves → 1/3. Jan: nobody was a customer on 1 Jan.
    assert out["active"].tolist() == [0, 2, 3, 3]
    assert out["lost"].tolist() == [0, 1, 0, 1]
    assert out.loc[T("2024-04-01"), "churn_pct"] == pytest.approx(100 / 3)
    lo, hi = metrics.stats.wilson_interval(1, 3)
    april = out.loc[T("2024-04-01")]
    assert (april["ci_low"], april["ci_high"]) == pytest.approx((100 * lo, 100 * hi))
    layer = metrics.query_metric(store, "churn_rate", grain="month", start="2024-02-01", end="2024-04-30")
    assert layer["value"].tolist() == pytest.approx(out["churn_pct"].iloc[1:].tolist())


def test_survival_from_dates_in_days(store):
    _customers(store, DATED)
    rows = retention.lifetimes(store, unit="day", as_of=AS_OF)
    got = sorted(zip(rows["duration"], rows["event"]))
    # c1 36 days, churned · c3 0.75 day, churned · c4 72 days, churned · c2 and c5 censored at 1 May:
    # 102 and 63 days.
    assert got == [(0.75, True), (36.0, True), (63.0, False), (72.0, True), (102.0, False)]


# Orders only (non-contractual), inactivity threshold 30 days, data end 30 April 2024:
# a buys 10 and 25 Jan (then a refund on 1 Apr, which is no purchase) → churned on 24 Feb, lifetime 15 days;
# b buys 1 Feb and 20 Apr → still active (20 Apr + 30 > 30 Apr), censored at 89 days;
# c buys once on 15 Mar → churned on 14 Apr, lifetime 0 days.
ORDERS = [("o1", "a", "2024-01-10", None), ("o2", "a", "2024-01-25", None), ("o3", "a", "2024-04-01", "refunded"),
          ("o4", "b", "2024-02-01", None), ("o5", "b", "2024-04-20", None), ("o6", "c", "2024-03-15", None)]


@pytest.fixture
def buyers(store):
    ingest.import_frame(store, "orders", pd.DataFrame({
        "order_id": [o for o, *_ in ORDERS], "customer_id": [c for _, c, _, _ in ORDERS],
        "ordered_at": [T(d) for _, _, d, _ in ORDERS], "amount": [10.0] * len(ORDERS),
        "status": [s for *_, s in ORDERS]}), file_name="orders")
    return store


def test_non_contractual_lifetimes_churn_by_inactivity(buyers):
    assert retention.lifetime_source(buyers) == "orders"
    rows = retention.lifetimes(buyers, unit="day", inactivity_days=30, as_of=AS_OF)
    assert sorted(zip(rows["duration"], rows["event"])) == [(0.0, True), (15.0, True), (89.0, False)]
    # A 90-day threshold: nobody has been away long enough except a (25 Jan + 90 = 24 Apr).
    rows = retention.lifetimes(buyers, unit="day", inactivity_days=90, as_of=AS_OF)
    assert sorted(zip(rows["duration"], rows["event"])) == [(15.0, True), (46.0, False), (89.0, False)]


def test_non_contractual_churn_per_month_and_purchase_cohorts(buyers):
    out = retention.churn_by_period(buyers, grain="month", inactivity_days=30, as_of=AS_OF).set_index("period")
    # Feb: a active, churns 24 Feb → 1/1. Mar: b only. Apr: b and c, c churns 14 Apr → 1/2.
    assert out["active"].tolist() == [0, 1, 1, 2]
    assert out["lost"].tolist() == [0, 1, 0, 1]
    m = retention.cohort_matrix(retention.cohort_retention(buyers, grain="month", as_of=AS_OF))
    # Jan cohort (a): bought in Jan only. Feb (b): Feb and Apr. Mar (c): Mar only.
    assert m.loc[T("2024-01-01")].tolist() == [100.0, 0.0, 0.0, 0.0]
    assert m.loc[T("2024-02-01")].dropna().tolist() == [100.0, 0.0, 100.0]
    assert m.loc[T("2024-03-01")].dropna().tolist() == [100.0, 0.0]


def test_voice_dimensions_split_customers_by_nps_and_support_speed(store):
    _customers(store, DATED)
    ingest.import_frame(store, "responses", pd.DataFrame({
        "response_id": ["r1", "r2", "r3", "r4"], "customer_id": ["c1", "c1", "c2", "c4"],
        "submitted_at": [T("2024-01-10"), T("2024-02-01"), T("2024-02-01"), T("2024-03-01")],
        "nps": [10, 3, 9, 7]}), file_name="nps")
    ingest.import_frame(store, "tickets", pd.DataFrame({
        "ticket_id": ["t1", "t2", "t3"], "customer_id": ["c1", "c2", "c2"],
        "created_at": [T("2024-01-10 08:00"), T("2024-02-01 08:00"), T("2024-03-01 08:00")],
        "first_response_at": [T("2024-01-12 08:00"), T("2024-02-01 09:00"), T("2024-03-01 10:00")]}),
        file_name="tickets")
    assert set(retention.split_dimensions(store)) == {"segment", "nps_category", "support_speed"}
    nps = retention.lifetimes(store, by="nps_category", as_of=AS_OF).groupby("group")["n"].sum().to_dict()
    # c1's latest answer is a 3 (detractor), c2 a 9, c4 a 7; c3 and c5 never answered.
    assert nps == {"Detractor (0–6)": 1, "Promoter (9–10)": 1, "Passive (7–8)": 1, "No NPS answer": 2}
    speed = retention.lifetimes(store, by="support_speed", slow_hours=24, as_of=AS_OF)
    # c1 waited 48 h once (slow); c2 at worst 2 h (fast); the rest never raised a ticket.
    assert speed.groupby("group")["n"].sum().to_dict() == {
        "Slow first response (> 24 h)": 1, "Fast first response (≤ 24 h)": 1, "No tickets": 3}
    with pytest.raises(UnknownDimension, match="no dimension"):
        retention.lifetimes(store, by="shoe_size")


def test_filters_the_customers_table_cannot_apply_are_reported(store):
    _customers(store, DATED)
    rows = retention.lifetimes(store, where={"segment": ["SMB"], "channel": ["web"]}, as_of=AS_OF)
    assert rows["n"].sum() == 3
    assert rows.attrs["ignored_filters"] == ["channel"]


def test_tenure_only_customers_have_no_calendar(six):
    with pytest.raises(retention.NoLifetimeData, match="no calendar"):
        retention.churn_by_period(six)
    with pytest.raises(retention.NoLifetimeData, match="cohorts"):
        retention.cohort_retention(six)


def test_an_empty_store_says_what_to_import(store):
    with pytest.raises(retention.NoLifetimeData, match="Import customers"):
        retention.survival(store)


@pytest.mark.datasets
@pytest.mark.skipif(not (DATASETS / "telco").is_dir(), reason="Telco export not found")
def test_telco_survival_by_contract(store):
    ingest.import_file(store, DATASETS / "telco" / "Telco-Customer-Churn.csv")
    s = retention.survival(store, by="plan")
    summary = s.summary.set_index("group")
    assert summary["customers"].to_dict() == {"Month-to-month": 3875, "Two year": 1695, "One year": 1473}
    assert summary["churned"].to_dict() == {"Month-to-month": 1655, "Two year": 48, "One year": 166}
    # Month-to-month subscribers: half have left by 35 months (95% CI 32–38); the others never reach 50%.
    assert summary.loc["Month-to-month", ["median", "median_ci_low", "median_ci_high"]].tolist() == [35.0, 32.0, 38.0]
    assert math.isnan(summary.loc["Two year", "median"])
    assert summary.loc["Month-to-month", "survival_at"] == pytest.approx(0.7031, abs=1e-4)
    assert s.test.df == 2 and s.test.statistic == pytest.approx(2352.87, abs=0.01)
    assert s.test.p_value < 1e-300


def test_curves_thinned_for_a_chart_keep_their_steps_within_the_grid():
    # One group of 11 steps at times 0, 1, …, 10 (survival falling 0.1 a step) and one short group.
    long = pd.DataFrame({"group": "A", "time": np.arange(11.0), "at_risk": np.arange(100, 89, -1),
                         "survival": 1 - np.arange(11) / 10})
    short = pd.DataFrame({"group": "B", "time": [0.0, 2.5], "at_risk": [5, 4], "survival": [1.0, 0.8]})
    thin = retention.thin_curves(pd.concat([long, short], ignore_index=True), points=4)
    a = thin[thin["group"] == "A"]
    # Grid 0, 3.33, 6.67, 10: the steps standing then are those at 0, 3, 6 and 10 (the last row, once).
    assert a["time"].tolist() == [0.0, 3.0, 6.0, 10.0]
    assert a["survival"].tolist() == pytest.approx([1.0, 0.7, 0.4, 0.0])
    assert a["at_risk"].tolist() == [100, 97, 94, 90]
    assert thin[thin["group"] == "B"]["time"].tolist() == [0.0, 2.5]  # short: whole
    assert retention.thin_curves(long, points=20).equals(long)
