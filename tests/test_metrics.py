"""Each metric pinned to a hand-computed fixture, written out per customer, ticket and order.

Fixture rows go straight into the canonical tables (``insert``), not through the importer, so these
tests pin the metric layer alone. Timestamps are naive UTC, as the store keeps them.
"""

from __future__ import annotations

import math
import threading

import duckdb
import ibis
import pandas as pd
import pytest

from cx import metrics
from cx.__main__ import main
from cx.engine import backend_for, parse_engine_url
from cx.errors import TouchpointError, UnknownDimension, UnknownMetric
from cx.store import Store, open_store

T = pd.Timestamp
NaT = pd.NaT

RESPONSES = pd.DataFrame([
    # January, web: c1 and c2 promoters, c3 passive, c4 and c5 detractors → NPS (2 − 2)/5 = 0.
    ("r1", T("2024-01-03 09:00"), "c1", 10, "web", "gold", "Great"),
    ("r2", T("2024-01-10 12:00"), "c2", 9, "web", "gold", None),
    ("r3", T("2024-01-20 08:00"), "c3", 8, "web", "silver", "  "),  # a blank comment is no comment
    ("r4", T("2024-01-25 18:00"), "c4", 5, "web", "silver", "Late delivery"),
    ("r5", T("2024-01-31 23:59:59"), "c5", 0, "web", "silver", "Awful"),  # last second of January
    # February, app: c1, c2, c3 promoters, c4 passive → NPS 3/4 = 75.
    ("r6", T("2024-02-01 00:00:00"), "c1", 10, "app", "gold", "Love it"),  # first second of February
    ("r7", T("2024-02-10 10:00"), "c2", 9, "app", "gold", None),
    ("r8", T("2024-02-29 12:00"), "c3", 9, "app", "silver", "Leap day"),  # leap day
    ("r9", T("2024-02-15 12:00"), "c4", 7, "app", "silver", None),
], columns=["response_id", "submitted_at", "customer_id", "nps", "channel", "plan_tier", "comment"])

CSAT = pd.DataFrame([
    # 1–5 scale, January: 5 and 4 satisfied, 3 and 2 not.
    ("s1", T("2024-01-05"), 5, 1, 5), ("s2", T("2024-01-05"), 4, 1, 5),
    ("s3", T("2024-01-05"), 3, 1, 5), ("s4", T("2024-01-05"), 2, 1, 5),
    # 1–7 scale, on the leap day: 7 and 6 satisfied (top two boxes), 5 not.
    ("s5", T("2024-02-29"), 7, 1, 7), ("s6", T("2024-02-29"), 6, 1, 7), ("s7", T("2024-02-29"), 5, 1, 7),
    # 0–10 scale, January: 9 satisfied, 8 not.
    ("s8", T("2024-01-06"), 9, 0, 10), ("s9", T("2024-01-06"), 8, 0, 10),
    # No scale recorded, January: read as 1–5, so a 4 is satisfied.
    ("s10", T("2024-01-06"), 4, None, None),
], columns=["response_id", "submitted_at", "csat", "csat_min", "csat_max"]).assign(channel="email")

CES = pd.DataFrame([
    # 1–7 scale: 7, 5, 3.
    ("e1", T("2024-01-07"), 7, 1, 7), ("e2", T("2024-01-07"), 5, 1, 7), ("e3", T("2024-01-07"), 3, 1, 7),
    # 1–5 scale, rescaled to 1–7 as 1 + 6·(x − 1)/4: a 5 is 7, a 4 is 5.5, a 1 is 1.
    ("e4", T("2024-01-08"), 5, 1, 5), ("e5", T("2024-01-08"), 4, 1, 5), ("e6", T("2024-01-08"), 1, 1, 5),
], columns=["response_id", "submitted_at", "ces", "ces_min", "ces_max"]).assign(channel="phone")

TICKETS = pd.DataFrame([
    # t1 (high): first reply after 1 h, solved after 10 h with one reply, never reopened → first contact.
    ("t1", T("2024-01-01 00:00"), T("2024-01-01 01:00"), T("2024-01-01 10:00"), 1, 0, "high"),
    # t2 (low): 3 h, solved after 24 h (midnight on the 3rd), three replies → not first contact.
    ("t2", T("2024-01-02 00:00"), T("2024-01-02 03:00"), T("2024-01-03 00:00"), 3, 0, "low"),
    # t3 (high): 5 h, solved after 48 h with one reply, but reopened once.
    ("t3", T("2024-01-03 00:00"), T("2024-01-03 05:00"), T("2024-01-05 00:00"), 1, 1, "high"),
    # t4 (low): 2 h to the first reply, still open.
    ("t4", T("2024-01-04 00:00"), T("2024-01-04 02:00"), NaT, 1, 0, "low"),
    # t5 (low): created in the last hour of January, first reply 2 h later in February, solved after 6 h;
    # the export had no reply or reopen counts for it, so FCR cannot judge it.
    ("t5", T("2024-01-31 23:00"), T("2024-02-01 01:00"), T("2024-02-01 05:00"), None, None, "low"),
], columns=["ticket_id", "created_at", "first_response_at", "resolved_at", "agent_replies", "reopens", "priority"])

ORDERS = pd.DataFrame([
    ("o1", "c1", T("2024-01-05 10:00"), 100.0, "completed", "web"),  # c1 buys twice in January,
    ("o2", "c1", T("2024-01-31 23:59:59"), 50.0, "completed", "web"),  # the second in its last second
    ("o3", "c2", T("2024-02-01 00:00:00"), 30.0, "completed", "app"),  # c2 buys in February's first second
    ("o4", "c3", T("2024-02-10 12:00"), 20.0, "refunded", "app"),  # c3's first order is refunded: not counted,
    ("o5", "c3", T("2024-02-29 12:00"), 40.0, None, "web"),  # the second (leap day, no status) is
    ("o6", "c4", T("2024-03-02 09:00"), None, "completed", "app"),  # c4's order has no amount: an order, no revenue
], columns=["order_id", "customer_id", "ordered_at", "amount", "status", "channel"])

CUSTOMERS = pd.DataFrame([
    ("k1", T("2023-06-01"), T("2024-02-15 10:00"), "pro"),  # lost in February
    ("k2", T("2023-07-01"), NaT, "basic"),  # stays
    ("k3", T("2023-12-01"), T("2024-01-10 08:00"), "basic"),  # lost in January
    ("k4", T("2024-01-15"), T("2024-03-01 00:00:00"), "pro"),  # joins in January, lost in March's first second
    ("k5", T("2024-02-01"), NaT, "basic"),  # joins in February, stays
    ("k6", T("2023-01-01"), NaT, "pro"),  # stays
    ("k7", T("2023-03-01"), T("2024-02-29 23:59:59"), "basic"),  # lost in the last second of the leap day
], columns=["customer_id", "signup_at", "churned_at", "plan"])

FIXTURE = {"responses": [RESPONSES, CSAT, CES], "tickets": [TICKETS], "orders": [ORDERS], "customers": [CUSTOMERS]}
# Columns the analyst mapped as extra dimensions at import.
EXTRA_DIMENSIONS = {"responses": ("plan_tier",)}


def insert(store: Store, table: str, frame: pd.DataFrame) -> None:
    """Write fixture rows into a canonical table, with the bookkeeping columns the import would add."""
    frame = frame.assign(batch_id=1, row_hash=[f"{table}-{i}-{k}" for i, k in enumerate(frame.iloc[:, 0])])
    with store.transaction() as cur:
        for dim in EXTRA_DIMENSIONS.get(table, ()):
            if dim in frame:
                store.add_dimension(cur, table, dim, dim)
        cur.register("fixture_rows", frame)
        try:
            cur.execute(f"INSERT INTO {table} BY NAME SELECT * FROM fixture_rows")
        finally:
            cur.unregister("fixture_rows")


def fill(store: Store, fixture: dict[str, list[pd.DataFrame]] = FIXTURE) -> Store:
    for table, frames in fixture.items():
        for frame in frames:
            insert(store, table, frame)
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = fill(Store(tmp_path_factory.mktemp("metrics") / "m.duckdb"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def backend(store):
    return backend_for(store)


def one(backend, name, **kw):
    df = metrics.query_metric(backend, name, **kw)
    assert len(df) == 1, df
    return df.iloc[0]


def by(df: pd.DataFrame, key: str, col: str = "value") -> dict:
    return df.set_index(key)[col].to_dict()


# -- survey metrics --------------------------------------------------------------------------------
def test_nps_by_month_puts_boundary_seconds_in_their_own_month(backend):
    df = metrics.query_metric(backend, "nps", grain="month")
    assert df["period"].dt.strftime("%Y-%m").tolist() == ["2024-01", "2024-02"]
    assert df["value"].tolist() == [0.0, 75.0]
    assert df["n"].tolist() == [5, 4]
    assert df["low_n"].tolist() == [True, True]
    # NPS 75 of n = 4: SE = √((.75 + 0 − .75²)/4) = .2165 → 75 ± 42.4, clipped at 100.
    assert df["ci_low"].iloc[1] == pytest.approx(75 - 1.96 * 21.65, abs=0.1)
    assert df["ci_high"].iloc[1] == 100.0


def test_nps_overall_by_channel_and_within_a_date_range(backend):
    # Promoters r1 r2 r6 r7 r8, detractors r4 r5, of 9 answers with an NPS: (5 − 2)/9.
    assert one(backend, "nps")["value"] == pytest.approx(100 * 3 / 9)
    assert by(metrics.query_metric(backend, "nps", by=("channel",)), "channel") == {"app": 75.0, "web": 0.0}
    feb = metrics.query_metric(backend, "nps", by="channel", start="2024-02-01", end="2024-02-29")
    assert by(feb, "channel") == {"app": 75.0}
    # The last day of a range is included up to its last second: r5 at 23:59:59.
    assert one(backend, "nps", start="2024-01-31", end="2024-01-31")["value"] == -100.0


def test_an_analyst_mapped_dimension_is_a_breakdown_like_any_other(backend):
    # gold: r1 r2 r6 r7 all promoters → 100; silver: r3 8, r4 5, r5 0, r8 9, r9 7 → (1 − 2)/5 = −20.
    assert by(metrics.query_metric(backend, "nps", by=("plan_tier",)), "plan_tier") == {"gold": 100.0,
                                                                                        "silver": -20.0}
    assert one(backend, "nps", where={"plan_tier": ["silver"], "channel": ["web"]})["value"] == pytest.approx(
        100 * (0 - 2) / 3)


def test_csat_is_top_two_box_on_each_rows_own_scale(backend):
    # Satisfied: s1 s2 (1–5), s5 s6 (1–7), s8 (0–10), s10 (no scale, read as 1–5) → 6 of 10.
    row = one(backend, "csat")
    assert row["n"] == 10 and row["value"] == pytest.approx(60.0)
    # January: s1 s2 s8 s10 of s1–s4, s8–s10 → 4 of 7; the leap day: s5 s6 of s5–s7 → 2 of 3.
    df = metrics.query_metric(backend, "csat", grain="month")
    assert df["value"].tolist() == pytest.approx([100 * 4 / 7, 100 * 2 / 3])
    assert df["n"].tolist() == [7, 3]


def test_ces_mean_and_share_easy_on_a_common_1_to_7_scale(backend):
    # 7, 5, 3 and (rescaled) 7, 5.5, 1 → mean 28.5/6 = 4.75.
    assert one(backend, "ces")["value"] == pytest.approx(4.75)
    # Easy = 5–7: 7, 5, 7, 5.5 → 4 of 6.
    assert one(backend, "ces_easy")["value"] == pytest.approx(100 * 4 / 6)
    # A stricter setting (6–7): 7, 7 → 2 of 6.
    assert one(backend, "ces_easy", ces_easy_min=6)["value"] == pytest.approx(100 * 2 / 6)


def test_ces_mean_has_a_t_interval(backend):
    # Values 7, 5, 3, 7, 5.5, 1: squared deviations from 4.75 are 5.0625, .0625, 3.0625, 5.0625, .5625,
    # 14.0625 → sd = √(27.875/5) = 2.3611; t(.975, 5) = 2.5706 → half-width 2.5706·2.3611/√6 = 2.4779.
    row = one(backend, "ces")
    assert (row["ci_high"] - row["ci_low"]) / 2 == pytest.approx(2.4779, abs=1e-3)


def test_response_count_and_comment_share(backend):
    assert one(backend, "responses")["value"] == 9 + 10 + 6
    # Comments: Great, Late delivery, Awful, Love it, Leap day (r3's blank one does not count) → 5 of 25.
    assert one(backend, "comment_share")["value"] == pytest.approx(20.0)


# -- ticket metrics --------------------------------------------------------------------------------
def test_first_response_time_median_mean_and_p90_in_hours(backend):
    # First replies after 1, 3, 5, 2, 2 h.
    assert one(backend, "frt_median")["value"] == pytest.approx(2.0)
    assert one(backend, "frt_mean")["value"] == pytest.approx(13 / 5)
    # p90 by linear interpolation over 1, 2, 2, 3, 5: position 0.9·4 = 3.6 → 3 + 0.6·2 = 4.2.
    assert one(backend, "frt_p90")["value"] == pytest.approx(4.2)


def test_time_to_resolution_counts_resolved_tickets_only(backend):
    # Resolved after 10, 24, 48, 6 h (t4 is open).
    row = one(backend, "ttr_median")
    assert (row["value"], row["n"]) == (pytest.approx(17.0), 4)
    assert one(backend, "ttr_mean")["value"] == pytest.approx(22.0)
    # p90 over 6, 10, 24, 48: position 2.7 → 24 + 0.7·24 = 40.8.
    assert one(backend, "ttr_p90")["value"] == pytest.approx(40.8)
    # high: t1 10, t3 48 → 29; low: t2 24, t5 6 → 15.
    assert by(metrics.query_metric(backend, "ttr_median", by=("priority",)), "priority") == {"high": 29.0,
                                                                                            "low": 15.0}


def test_first_contact_resolution_needs_a_reply_count(backend):
    # Judged: t1 t2 t3 (resolved, reply count known; t5 has none); first contact: t1 only.
    row = one(backend, "fcr")
    assert (row["value"], row["n"]) == (pytest.approx(100 / 3), 3)


def test_reopen_rate_over_resolved_tickets(backend):
    # Resolved: t1 t2 t3 t5 (t5's missing reopen count means none); reopened: t3 → 1 of 4.
    row = one(backend, "reopen_rate")
    assert (row["value"], row["n"]) == (25.0, 4)


def test_open_backlog_at_the_end_of_a_day_or_a_period(backend):
    # End of 2 January: t1 was solved on the 1st, t2 only at midnight on the 3rd → 1 open.
    assert one(backend, "backlog", end="2024-01-02")["value"] == 1
    # End of January: t4, and t5 (created at 23:00, solved in February) → 2; end of February: t4 → 1.
    assert one(backend, "backlog", end="2024-01-31")["value"] == 2
    df = metrics.query_metric(backend, "backlog", grain="month")
    assert df["value"].tolist() == [2, 1]


# -- order metrics ---------------------------------------------------------------------------------
def test_revenue_orders_and_aov_exclude_refunds(backend):
    # Revenue: o1 100 + o2 50 + o3 30 + o5 40 = 220 (o4 refunded, o6 has no amount).
    assert one(backend, "revenue")["value"] == 220.0
    assert metrics.query_metric(backend, "revenue", grain="month")["value"].tolist() == [150.0, 70.0]
    # Orders: o1 o2 o3 o5 o6; January 2, February 2 (o4 refunded), March 1.
    assert one(backend, "orders")["value"] == 5
    assert metrics.query_metric(backend, "orders", grain="month")["value"].tolist() == [2, 2, 1]
    assert one(backend, "aov")["value"] == pytest.approx(220 / 4)
    assert by(metrics.query_metric(backend, "revenue", by=("channel",)), "channel") == {"app": 30.0, "web": 190.0}


def test_purchase_frequency_and_historical_clv_are_per_customer(backend):
    # 5 orders of c1 c2 c3 c4 → 1.25 per customer; revenue 220 of c1 c2 c3 → 73.33 per customer.
    row = one(backend, "purchase_frequency")
    assert (row["value"], row["n"]) == (1.25, 4)
    assert one(backend, "clv_historical")["value"] == pytest.approx(220 / 3)
    # A horizon: January only, c1's 150.
    assert one(backend, "clv_historical", start="2024-01-01", end="2024-01-31")["value"] == 150.0


# -- customer metrics ------------------------------------------------------------------------------
def test_churn_rate_per_month_from_dates(backend):
    df = metrics.query_metric(backend, "churn_rate", grain="month", start="2024-01-01", end="2024-03-31")
    # January: active k1 k2 k3 k6 k7, lost k3 → 1/5. February: + k4 − k3 = 5 active, lost k1 k7 → 2/5.
    # March: + k5 − k1 k7 → k2 k4 k5 k6 active, lost k4 (first second of March) → 1/4.
    assert df["value"].tolist() == pytest.approx([20.0, 40.0, 25.0])
    assert df["n"].tolist() == [5, 5, 4]
    feb = one(backend, "churn_rate", start="2024-02-01", end="2024-02-29")
    assert feb["n"] == 5 and feb["value"] == pytest.approx(40.0)
    assert one(backend, "retention_rate", start="2024-02-01", end="2024-02-29")["value"] == pytest.approx(60.0)


def test_churn_rate_by_plan(backend):
    # February: pro k1 k4 k6 lost k1 → 1/3; basic k2 k7 lost k7 → 1/2 (k5 joins on the 1st: not at the start).
    df = metrics.query_metric(backend, "churn_rate", by=("plan",), start="2024-02-01", end="2024-02-29")
    assert by(df, "plan") == pytest.approx({"basic": 50.0, "pro": 100 / 3})
    assert by(df, "plan", "n") == {"basic": 2, "pro": 3}


def test_churn_from_tenure_and_flag_is_a_snapshot(tmp_path):
    store = Store(tmp_path / "telco.duckdb")
    insert(store, "customers", pd.DataFrame([
        ("a", 1.0, True, "month", "monthly"),  # a left after one month
        ("b", 20.0, False, "month", "yearly"),  # b and c stay
        ("c", 30.0, False, "month", "yearly"),
        ("d", 5.0, True, "month", "monthly"),  # d left after five months
        ("e", 7.0, None, "month", "monthly"),  # e has no flag: not counted
    ], columns=["customer_id", "tenure", "churned", "tenure_unit", "plan"]))
    b = backend_for(store)
    row = one(b, "churn_rate")
    assert (row["value"], row["n"]) == (50.0, 4)
    assert by(metrics.query_metric(b, "churn_rate", by=("plan",)), "plan") == {"monthly": 100.0, "yearly": 0.0}
    assert one(b, "retention_rate", where={"churned": ["no"]})["value"] == 100.0
    with pytest.raises(UnknownDimension, match="no time trend"):
        metrics.query_metric(b, "churn_rate", grain="month")
    store.close()


# -- published values ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """NPS of pP = .5, pD = .2, n = 400 in February 2024 against pP = .375, pD = .275 in January; CSAT 74 of
    107 in February against 45 of 100 in January; 100 tickets resolved after 1, 2, …, 100 hours."""
    s = Store(tmp_path_factory.mktemp("published") / "p.duckdb")
    nps = [10] * 200 + [8] * 120 + [0] * 80 + [9] * 150 + [7] * 140 + [3] * 110
    csat = [5] * 74 + [2] * 33 + [4] * 45 + [1] * 55
    insert(s, "responses", pd.DataFrame({
        "response_id": [f"n{i}" for i in range(800)] + [f"c{i}" for i in range(207)],
        "submitted_at": [T("2024-02-10")] * 400 + [T("2024-01-15")] * 400 + [T("2024-02-12")] * 107
        + [T("2024-01-16")] * 100,
        "nps": nps + [None] * 207, "csat": [None] * 800 + csat, "csat_min": 1, "csat_max": 5}))
    insert(s, "tickets", pd.DataFrame({
        "ticket_id": [f"t{h}" for h in range(1, 101)], "created_at": T("2024-03-01"),
        "resolved_at": [T("2024-03-01") + pd.Timedelta(hours=h) for h in range(1, 101)]}))
    yield backend_for(s)
    s.close()


def test_nps_30_with_se_3_91_and_margin_7_65(published):
    row = one(published, "nps", start="2024-02-01", end="2024-02-29")
    # SE = √((.5 + .2 − .3²)/400) = √(.61/400) = 3.905 points; 1.96 · 3.905 = 7.65 (plain Wald).
    assert (row["value"], row["n"]) == (pytest.approx(30.0), 400)
    assert row["ci_high"] - row["value"] == pytest.approx(7.65, abs=0.005)
    assert row["value"] - row["ci_low"] == pytest.approx(7.65, abs=0.005)
    assert (row["ci_high"] - row["value"]) / 1.959964 == pytest.approx(3.905, abs=0.001)


def test_csat_74_of_107_is_69_percent_with_a_wilson_interval(published):
    row = one(published, "csat", start="2024-02-01", end="2024-02-29")
    assert (round(row["value"]), row["n"]) == (69, 107)
    # Wilson: centre (p + z²/2n)/(1 + z²/n), half-width z√(p(1 − p)/n + z²/4n²)/(1 + z²/n) → 59.87 … 77.12.
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(59.87, abs=0.01), pytest.approx(77.12, abs=0.01))


def test_median_has_an_order_statistic_interval(published):
    row = one(published, "ttr_median")
    # Median of 1…100 = 50.5; ranks 50 ± 1.96·√(100·.5·.5) = 50 ± 9.8 → the 40th and 60th values.
    assert (row["value"], row["ci_low"], row["ci_high"]) == (50.5, 40.0, 60.0)
    row = one(published, "ttr_p90")
    # p90 at position 0.9·99 = 89.1 → 90.1; ranks 90 ± 1.96·√(100·.9·.1) = 90 ± 5.88 → 84th and 96th.
    assert (row["value"], row["ci_low"], row["ci_high"]) == (pytest.approx(90.1), 84.0, 96.0)


# -- comparisons -----------------------------------------------------------------------------------
def test_nps_change_against_the_previous_period_is_a_z_test(published):
    df = metrics.compare_metric(published, "nps", start="2024-02-01", end="2024-02-29")
    # The previous 29 days: 3–31 January. NPS 30 vs (150 − 110)/400 = 10; SEs 3.905 and
    # √((.375 + .275 − .1²)/400) = 4.000 points → z = 20/√(3.905² + 4²) = 3.578, p = .00035.
    assert (df.attrs["before_start"].isoformat(), df.attrs["before_end"].isoformat()) == ("2024-01-03", "2024-01-31")
    row = df.iloc[0]
    assert (row["value"], row["value_before"], row["delta"]) == (pytest.approx(30), pytest.approx(10),
                                                                 pytest.approx(20))
    assert row["p_value"] == pytest.approx(0.000347, abs=2e-6)
    assert bool(row["significant"]) and not bool(row["low_n"])


def test_csat_change_is_a_two_proportion_z_test(published):
    row = metrics.compare_metric(published, "csat", start="2024-02-01", end="2024-02-29").iloc[0]
    # 74/107 vs 45/100: pooled 119/207 = .5749, SE = √(.5749·.4251·(1/107 + 1/100)) = .06876,
    # z = (.6916 − .45)/.06876 = 3.513, p = .00044.
    assert row["delta"] == pytest.approx(100 * (74 / 107 - 0.45))
    assert row["p_value"] == pytest.approx(0.000442, abs=2e-6)
    assert (row["n"], row["n_before"]) == (107, 100)


def test_compare_with_the_same_period_last_year_maps_the_leap_day(backend):
    df = metrics.compare_metric(backend, "nps", start="2024-02-01", end="2024-02-29", compare="year")
    assert (df.attrs["before_start"].isoformat(), df.attrs["before_end"].isoformat()) == ("2023-02-01", "2023-02-28")
    row = df.iloc[0]
    assert row["value"] == 75.0 and math.isnan(row["value_before"]) and not bool(row["significant"])


def test_compare_by_a_dimension_keeps_groups_seen_in_either_period(backend):
    df = metrics.compare_metric(backend, "nps", start="2024-02-01", end="2024-02-29", by=("channel",))
    # Before (3–31 January) only web answered; now only app.
    assert by(df, "channel") == {"app": 75.0, "web": pytest.approx(float("nan"), nan_ok=True)}
    assert by(df, "channel", "value_before") == {"app": pytest.approx(float("nan"), nan_ok=True), "web": 0.0}


# -- the query object and its guards ---------------------------------------------------------------
def test_a_query_is_a_frozen_hashable_cache_key_with_defaults_resolved():
    a = metrics.MetricQuery.build("nps", by="channel", start="2024-01-01", where={"b": ["y", "x"], "a": "z"})
    b = metrics.MetricQuery.build("nps", by=["channel"], start=pd.Timestamp("2024-01-01"),
                                  where={"a": ["z"], "b": ("x", "y")})
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert a.by == ("channel",) and a.where == (("a", ("z",)), ("b", ("x", "y"))) and a.min_n == 30
    with pytest.raises(AttributeError):
        a.metric = "csat"


def test_unknown_names_are_refused_with_a_fix(backend):
    with pytest.raises(UnknownMetric, match="no metric called 'happiness'.*Fix: Use one of: nps"):
        metrics.query_metric(backend, "happiness")
    with pytest.raises(UnknownDimension, match="no column 'planet'.*channel"):
        metrics.query_metric(backend, "nps", by=("planet",))
    with pytest.raises(UnknownDimension, match="no column"):
        metrics.query_metric(backend, "nps", by=('channel" FROM responses; --',))
    with pytest.raises(UnknownDimension, match="no column 'batch_id'"):
        metrics.query_metric(backend, "nps", where={"batch_id": ["1"]})
    with pytest.raises(UnknownDimension, match="is a date.*time grain"):
        metrics.query_metric(backend, "nps", by=("submitted_at",))
    with pytest.raises(UnknownDimension, match="not a time grain"):
        metrics.query_metric(backend, "nps", grain="hour")
    with pytest.raises(TouchpointError, match="starts on 2024-03-01 after it ends"):
        metrics.query_metric(backend, "nps", start="2024-03-01", end="2024-01-01")
    with pytest.raises(TouchpointError, match="not a date"):
        metrics.query_metric(backend, "nps", start="31/01/2024")


def test_filter_values_are_literal_values_only(backend):
    evil = "web'; DROP TABLE responses; --"
    row = one(backend, "nps", where={"channel": [evil]})
    assert row["n"] == 0 and math.isnan(row["value"])
    assert one(backend, "responses")["value"] == 25  # still there


def test_filter_values_take_their_columns_type(backend):
    # Tickets with one agent reply: t1 t3 t4, first replies after 1, 5, 2 h.
    assert one(backend, "frt_mean", where={"agent_replies": ["1"]})["value"] == pytest.approx(8 / 3)
    with pytest.raises(TouchpointError, match="'one' is not a possible value of agent_replies"):
        metrics.query_metric(backend, "frt_mean", where={"agent_replies": ["one"]})


def test_a_store_can_be_passed_instead_of_a_backend(store):
    assert one(store, "responses")["value"] == 25


def test_a_table_in_another_engine_may_lack_optional_columns():
    # A warehouse table with only the required responses columns and an NPS.
    duck = duckdb.connect()
    duck.execute("CREATE TABLE responses (response_id VARCHAR, submitted_at TIMESTAMP, nps DOUBLE)")
    duck.execute("INSERT INTO responses VALUES ('a', '2024-01-01', 10), ('b', '2024-01-02', 0)")
    con = ibis.duckdb.from_connection(duck)
    assert one(con, "nps")["value"] == 0.0
    assert one(con, "csat")["n"] == 0
    with pytest.raises(UnknownDimension, match="no column 'channel'"):
        metrics.query_metric(con, "nps", by=("channel",))
    with pytest.raises(TouchpointError, match="engine has no tickets table.*Fix"):
        metrics.query_metric(con, "ttr_median")


def test_every_registered_metric_answers_with_the_documented_columns(backend):
    for name, m in metrics.REGISTRY.items():
        df = metrics.query_metric(backend, name, grain="month", start="2024-01-01", end="2024-03-31")
        assert list(df.columns) == ["period", "value", "n", "ci_low", "ci_high", "low_n"], name
        assert m.label and m.description and m.unit and m.good in ("up", "down")


def test_each_thread_queries_through_its_own_cursor(store):
    results, errors = [], []

    def work():
        try:
            b = backend_for(store)
            results.extend(one(b, "nps", by=(), where={"channel": ["app"]})["value"] for _ in range(5))
        except Exception as exc:  # noqa: BLE001 - surfaced in the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [75.0] * 20


def test_each_store_gets_its_own_backend_even_when_an_old_one_is_gone(tmp_path):
    # A backend cached by id() would hand a new store the cursor of a freed one with the same id.
    for i, n in enumerate((2, 3, 4)):
        store = Store(tmp_path / f"s{i}.duckdb")
        insert(store, "responses", pd.DataFrame({"response_id": [f"r{j}" for j in range(n)],
                                                 "submitted_at": [T("2024-01-01")] * n, "nps": [10.0] * n}))
        assert metrics.query_metric(backend_for(store), "responses")["value"].iloc[0] == n
        store.close()
        del store


def test_format_value_uses_units():
    assert metrics.format_value("nps", 32.456) == "+32.5"
    assert metrics.format_value("nps", -4.25) == "-4.2"
    assert metrics.format_value("nps", 0.0) == "0.0" and metrics.format_value("nps", -0.04) == "0.0"
    assert metrics.format_value("csat", 71.26) == "71.3%"
    assert metrics.format_value("ttr_median", 30.0) == "30.0 h"
    assert metrics.format_value("ttr_median", 72.0) == "3.0 d"
    assert metrics.format_value("orders", 12345.0) == "12,345"
    assert metrics.format_value("nps", float("nan")) == "–"


# -- engine selection ------------------------------------------------------------------------------
def test_engine_urls_name_duckdb_files_and_spark_masters():
    assert parse_engine_url("").kind == "duckdb" and parse_engine_url("").path is None
    assert parse_engine_url("duckdb:///data/touchpoint.duckdb").path == "data/touchpoint.duckdb"
    assert parse_engine_url("duckdb:////srv/cx/t.duckdb").path == "/srv/cx/t.duckdb"
    assert parse_engine_url("spark://local[2]").master == "local[2]"
    assert parse_engine_url("spark://").master == "local[2]"
    assert parse_engine_url("spark://head:7077").master == "spark://head:7077"
    spec = parse_engine_url("pyspark://yarn?database=cx")
    assert (spec.kind, spec.master, spec.database) == ("spark", "yarn", "cx")
    with pytest.raises(TouchpointError, match="not an engine.*Fix"):
        parse_engine_url("postgres://db/cx")


def test_touchpoint_engine_selects_the_duckdb_store(tmp_path, monkeypatch):
    path = tmp_path / "engine.duckdb"
    s = open_store(path)
    insert(s, "responses", pd.DataFrame({"response_id": ["a"], "submitted_at": [T("2024-01-01")], "nps": [9.0]}))
    monkeypatch.setenv("TOUCHPOINT_ENGINE", f"duckdb:///{path}")
    assert one(backend_for(), "nps")["value"] == 100.0
    s.close()


# -- command line ----------------------------------------------------------------------------------
@pytest.fixture
def cli_db(tmp_path, monkeypatch):
    monkeypatch.delenv("TOUCHPOINT_ENGINE", raising=False)
    path = tmp_path / "cli.duckdb"
    s = fill(open_store(path))
    yield str(path)
    s.close()


def test_cli_metrics_lists_the_registry(capsys):
    assert main(["metrics", "--format", "json"]) == 0
    listed = pd.read_json(pd.io.common.StringIO(capsys.readouterr().out))
    assert listed["name"].tolist() == list(metrics.REGISTRY)
    assert {"label", "unit", "good", "table", "description"} <= set(listed.columns)


def test_cli_metric_prints_the_table(cli_db, capsys):
    assert main(["metric", "nps", "--grain", "month", "--by", "channel", "--db", cli_db, "--format", "json"]) == 0
    rows = pd.read_json(pd.io.common.StringIO(capsys.readouterr().out))
    assert rows[["channel", "value", "n"]].values.tolist() == [["app", 75.0, 4], ["web", 0.0, 5]]
    assert main(["metric", "csat", "--from", "2024-02-01", "--to", "2024-02-29", "--where", "channel=email|web",
                 "--db", cli_db, "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "value,n,ci_low,ci_high,low_n" and out[1].startswith("66.66")


def test_cli_metric_compares_periods(cli_db, capsys):
    assert main(["metric", "nps", "--from", "2024-02-01", "--to", "2024-02-29", "--compare", "previous",
                 "--db", cli_db, "--format", "json"]) == 0
    row = pd.read_json(pd.io.common.StringIO(capsys.readouterr().out)).iloc[0]
    assert (row["value"], row["value_before"], row["delta"]) == (75.0, 0.0, 75.0)


def test_cli_metric_errors_are_one_line_with_the_fix(cli_db, capsys):
    assert main(["metric", "nps", "--by", "planet", "--db", cli_db]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: responses has no column 'planet'") and "Fix:" in err and err.count("\n") == 1
    assert main(["metric", "happiness", "--db", cli_db]) == 2
    assert "no metric called 'happiness'" in capsys.readouterr().err
    assert main(["metric", "nps", "--compare", "year", "--db", cli_db]) == 2
    assert "--compare needs --from and --to" in capsys.readouterr().err


@pytest.mark.parametrize("n", [1, 2, 3, 10, 37])
def test_quantiles_read_off_the_sorted_values_interpolate_as_numpy_does(tmp_path, n):
    """The engine's quantile is read off each group's sorted values: linear interpolation between the
    order statistics around rank 1 + (n − 1)q, numpy's default; with ties and tiny groups too."""
    import numpy as np

    rng = np.random.default_rng(n)
    hours = np.round(rng.exponential(10, n), 1)  # rounded: ties
    s = Store(tmp_path / "q.duckdb")
    insert(s, "tickets", pd.DataFrame({
        "ticket_id": [f"t{i}" for i in range(n)], "created_at": T("2024-05-01"),
        "first_response_at": [T("2024-05-01") + pd.Timedelta(seconds=round(h * 3600)) for h in hours],
        "resolved_at": [T("2024-05-01") + pd.Timedelta(seconds=round(h * 3600)) for h in hours]}))
    for name, q in (("frt_median", 0.5), ("ttr_p90", 0.9)):
        got = metrics.query_metric(s, name).iloc[0]
        assert got["value"] == pytest.approx(float(np.quantile(hours, q)), abs=1e-9)
        assert got["n"] == n and got["ci_low"] <= got["value"] <= got["ci_high"]
    s.close()


def test_in_engine_quantile_intervals_match_the_reference_on_a_random_sample(tmp_path):
    import numpy as np

    from cx import stats

    rng = np.random.default_rng(3)
    hours = np.round(rng.exponential(20, 237), 2)
    teams = rng.choice(["a", "b"], 237)
    s = Store(tmp_path / "q.duckdb")
    insert(s, "tickets", pd.DataFrame({
        "ticket_id": [f"t{i}" for i in range(237)], "created_at": T("2024-05-01"), "team": teams,
        "resolved_at": [T("2024-05-01") + pd.Timedelta(seconds=round(h * 3600)) for h in hours]}))
    for name, q in (("ttr_median", 0.5), ("ttr_p90", 0.9)):
        got = metrics.query_metric(s, name, by=("team",)).set_index("team")
        for team in ("a", "b"):
            value, lo, hi = stats.quantile_interval(hours[teams == team], q)
            assert tuple(got.loc[team, ["value", "ci_low", "ci_high"]]) == pytest.approx((value, lo, hi), abs=1e-9)
    s.close()


@pytest.mark.parametrize("name", ["nps", "csat", "ces", "ces_easy", "responses", "comment_share", "frt_median",
                                  "ttr_p90", "fcr", "revenue", "aov", "purchase_frequency", "churn_rate", "backlog"])
@pytest.mark.parametrize("compare", ["previous", "year"])
def test_every_breakdown_at_once_gives_what_compare_metric_gives_for_each(backend, name, compare):
    """One engine aggregate for every breakdown and both periods: the numbers of one compare_metric per
    breakdown, group for group (metrics whose statistics do not add up take that path themselves)."""
    table = metrics.REGISTRY[name].table
    dims = {"responses": ["channel", "plan_tier"], "tickets": ["channel", "priority"], "orders": ["channel", "status"],
            "customers": ["plan"]}[table]
    kw = dict(start="2024-02-01", end="2024-02-29", compare=compare)
    each = metrics.compare_metric_by_each(backend, name, dims=dims, **kw)
    assert list(each) == [None, *dims]
    for d in [None, *dims]:
        want = metrics.compare_metric(backend, name, by=(d,) if d else (), **kw)
        got = each[d]
        if d:
            want = want.sort_values(d).reset_index(drop=True)
        # Means come from sums of values and squares here, from the engine's running variance there.
        pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-9 if name not in ("ces", "aov") else 1e-7)
        assert got.attrs == want.attrs


def test_breakdowns_at_once_keep_a_period_without_data(backend):
    # February 2023 and the comparison period before it hold no responses: counts 0, values missing.
    each = metrics.compare_metric_by_each(backend, "nps", dims=["channel"], start="2023-02-01", end="2023-02-28")
    overall = each[None].iloc[0]
    assert overall["n"] == 0 and overall["n_before"] == 0 and math.isnan(overall["value"])
    assert each["channel"].empty


def test_breakdowns_at_once_refuse_unknown_dimensions(backend):
    with pytest.raises(UnknownDimension):
        metrics.compare_metric_by_each(backend, "nps", dims=["no_such_column"], start="2024-02-01", end="2024-02-29")


TABLE_DIMS = {"responses": ["channel", "plan_tier"], "tickets": ["channel", "priority"], "orders": ["channel", "status"],
              "customers": ["plan"]}


@pytest.mark.parametrize("table", list(TABLE_DIMS))
@pytest.mark.parametrize("with_dims", [False, True])
@pytest.mark.parametrize("compare", ["previous", "year"])
def test_every_metric_of_a_table_at_once_gives_what_compare_metric_gives(backend, table, with_dims, compare):
    """Several metrics of a table share statements (each metric's rows a FILTER; quantiles one statement
    for all breakdowns): still the numbers of one compare_metric per metric and breakdown. The fixture has
    groups where a metric has no rows at all (NPS of the e-mail CSAT answers), NULL dimension values
    (plan tier of the CSAT rows, every ticket's channel) and an empty comparison period (year)."""
    names = [n for n, m in metrics.REGISTRY.items() if m.table == table]
    dims = TABLE_DIMS[table] if with_dims else []
    kw = dict(start="2024-02-01", end="2024-02-29", compare=compare)
    every = metrics.compare_metrics_by_each(backend, names, dims=dims, **kw)
    assert list(every) == names
    for name in names:
        assert list(every[name]) == [None, *dims]
        for d in [None, *dims]:
            want = metrics.compare_metric(backend, name, by=(d,) if d else (), **kw)
            if d:
                want = want.sort_values(d).reset_index(drop=True)
            pd.testing.assert_frame_equal(every[name][d], want, check_dtype=False,
                                          rtol=1e-9 if metrics.REGISTRY[name].kind != "mean" else 1e-7)
            assert every[name][d].attrs == want.attrs


def test_a_quantile_by_each_breakdown_is_the_order_statistic_of_its_group(backend):
    # January tickets' resolution hours: t1 10 (high), t2 24 (low), t3 48 (high), t5 6 (low; t4 is open).
    # February is empty. By priority: high {10, 48} → median 29; low {6, 24} → 15; overall {6, 10, 24, 48} → 17.
    each = metrics.compare_metric_by_each(backend, "ttr_median", dims=["priority"], start="2024-01-01",
                                          end="2024-01-31")
    assert each[None]["value"].tolist() == [17.0] and each[None]["n"].tolist() == [4]
    got = each["priority"].set_index("priority")
    assert got.loc["high", "value"] == 29.0 and got.loc["low", "value"] == 15.0
    # n = 2: the interval's ranks are 1 and 2, the group's smallest and largest value.
    assert (got.loc["high", "ci_low"], got.loc["high", "ci_high"]) == (10.0, 48.0)
    assert (got.loc["low", "ci_low"], got.loc["low", "ci_high"]) == (6.0, 24.0)


@pytest.mark.parametrize("kw", [{}, dict(grain="month"), dict(grain="month", by=True, start="2024-01-01", end="2024-02-29"),
                                dict(grain="week", start="2024-01-29", end="2024-03-03", where=True), dict(by=True)],
                         ids=["total", "month", "month-by", "week-where", "by"])
@pytest.mark.parametrize("table", list(TABLE_DIMS))
def test_metrics_of_a_table_at_once_give_what_query_metric_gives(backend, table, kw):
    names = [n for n, m in metrics.REGISTRY.items() if m.table == table]
    dim = TABLE_DIMS[table][-1]
    kw = dict(kw)
    if kw.get("by"):
        kw["by"] = (dim,)
    if kw.get("where"):
        kw["where"] = {TABLE_DIMS[table][0]: ["web", "app", "pro"]}
    if table == "customers" and kw.get("grain") and kw.get("where"):
        kw.pop("where")
    got = metrics.query_metrics(backend, names, **kw)
    bare = metrics.query_metrics(backend, names, intervals=False, **kw)
    assert list(got) == names and list(bare) == names
    for name in names:
        want = metrics.query_metric(backend, name, **kw)
        pd.testing.assert_frame_equal(got[name], want, check_dtype=False, rtol=1e-12)
        if metrics.REGISTRY[name].kind == "quantile":
            # Without intervals: the same values and counts, no interval.
            assert bare[name]["ci_low"].isna().all() and bare[name]["ci_high"].isna().all()
            want = want.assign(ci_low=math.nan, ci_high=math.nan)
        pd.testing.assert_frame_equal(bare[name], want, check_dtype=False, rtol=1e-12)


def test_money_is_shown_in_the_orders_currency(tmp_path):
    from cx.ingest import import_file
    from cx.store import open_store

    store = open_store(tmp_path / "money.duckdb")
    path = tmp_path / "orders.csv"
    path.write_text("order_id,customer_id,ordered_at,amount,currency\n"
                    "o1,c1,2026-01-02,10.5,usd\no2,c2,2026-01-03,20,USD\no3,c3,2026-01-04,5,eur\n")
    import_file(store, path, kind="orders")
    assert metrics.order_currencies(store) == ["USD", "EUR"]  # most orders first, codes upper-cased
    try:
        metrics.set_display_currency("USD")
        assert metrics.format_value("revenue", 5135693.4) == "$5,135,693"
        assert metrics.format_value("revenue", -1234.5) == "-$1,234"  # rounds half to even, as format does
        metrics.set_display_currency("chf")
        assert metrics.format_value("aov", 12.5) == "12.50 CHF"
        metrics.set_display_currency(None)
        assert metrics.format_value("revenue", 1500) == "1,500"
        # Tiles: millions and billions shortened to about three digits, in the currency.
        short = metrics.format_money_short
        assert [short(12.345), short(999), short(2_220_478), short(76_671_509), short(2_220_478_123)] == [
            "12.35", "999", "2.22 M", "76.7 M", "2.22 B"]
        assert short(float("nan")) == "–" and short(None) == "–" and short(float("inf")) == "–"
        assert [short(999_999_999), short(99_960_000), short(999_999.6)] == ["1.00 B", "100 M", "1.00 M"]
        metrics.set_display_currency("USD")
        assert (short(-3_200_000), short(512_000_000)) == ("-$3.20 M", "$512 M")
        metrics.set_display_currency("chf")
        assert short(76_671_509) == "76.7 M CHF"
    finally:
        metrics.set_display_currency(None)


@pytest.mark.parametrize("name", ["nps", "csat", "responses", "comment_share", "revenue", "orders", "ces", "aov",
                                  "ttr_median", "purchase_frequency"])
def test_segment_table_overall_is_the_unsplit_metric_and_each_cell_is_tested_against_the_rest(backend, name):
    """Counted metrics take their total as the cells' sum (every row is in one cell, a missing value a cell
    of its own); it must equal the metric over everyone, as the separately queried total of the others."""
    table = metrics.REGISTRY[name].table
    dim = {"responses": "plan_tier", "tickets": "priority", "orders": "status"}[table]
    cells = metrics.segment_table(backend, name, by=(dim,), start="2024-01-01", end="2024-02-29")
    whole = metrics.query_metric(backend, name, start="2024-01-01", end="2024-02-29").iloc[0]
    assert cells["overall"].tolist() == pytest.approx([whole["value"]] * len(cells), nan_ok=True)
    assert cells["n"].sum() == whole["n"] or metrics.REGISTRY[name].kind in ("ratio",)


def test_a_cell_against_the_rest_is_the_two_sample_test_on_hand_counts(backend):
    # NPS in Jan–Feb by plan tier: gold r1 r2 r6 r7 = 4 promoters of 4; silver r3 r4 r5 r8 r9: 1 promoter
    # (r8), 2 detractors (r4, r5) of 5. Gold against the rest (silver) is the NPS difference test of those.
    from cx import stats

    cells = metrics.segment_table(backend, "nps", by=("plan_tier",), start="2024-01-01", end="2024-02-29")
    gold = cells.set_index("plan_tier").loc["gold"]
    assert (gold["value"], gold["n"], gold["overall"]) == (100.0, 4, pytest.approx(100 * (5 - 2) / 9))
    assert gold["p_vs_rest"] == pytest.approx(stats.nps_difference_test(4, 0, 4, 1, 2, 5)[1])


def test_a_range_longer_than_a_year_against_the_year_before_counts_the_overlap_in_both(backend):
    """15 Jan 2023 – 31 Jan 2025 against the same dates a year earlier (15 Jan 2022 – 31 Jan 2024): the
    two ranges share 15 Jan 2023 – 31 Jan 2024, which holds the fixture's January rows; they belong to
    both periods (labelling each row with one period counted them in "now" only)."""
    kw = dict(start="2023-01-15", end="2025-01-31", compare="year")
    for name in ("nps", "responses", "csat", "ttr_median", "revenue"):
        before = metrics.query_metric(backend, name, start="2022-01-15", end="2024-01-31").iloc[0]
        now = metrics.query_metric(backend, name, start="2023-01-15", end="2025-01-31").iloc[0]
        assert before["n"] > 0, name  # the overlap holds rows
        for got in (metrics.compare_metric(backend, name, **kw).iloc[0],
                    metrics.compare_metrics_by_each(backend, [name], dims=[], **kw)[name][None].iloc[0]):
            assert (got["n"], got["n_before"]) == (now["n"], before["n"]), name
            assert got["value"] == pytest.approx(now["value"], nan_ok=True)
            assert got["value_before"] == pytest.approx(before["value"], nan_ok=True)


def test_identical_effort_answers_have_no_spread_so_no_test_in_any_path(tmp_path):
    """40 answers of 3 in January and 40 of 4 in February (0–10 scale): each period's values are all
    equal, so the standard deviation is exactly 0 and Welch's test does not apply (p missing) — also
    when the mean comes from sums of values and squares, which would leave rounding noise (1e-8) and
    call the change certain."""
    s = Store(tmp_path / "ces.duckdb")
    rows = [(f"c{i}", T("2024-01-10") if i < 40 else T("2024-02-10"), 3 if i < 40 else 4, 0, 10, "web")
            for i in range(80)]
    insert(s, "responses", pd.DataFrame(rows, columns=["response_id", "submitted_at", "ces", "ces_min", "ces_max",
                                                       "channel"]))
    kw = dict(start="2024-02-01", end="2024-02-29")
    plain = metrics.compare_metric(s, "ces", **kw).iloc[0]
    each = metrics.compare_metrics_by_each(s, ["ces"], dims=["channel"], **kw)["ces"]
    for r in (plain, each[None].iloc[0], each["channel"].iloc[0]):
        assert r["value"] == pytest.approx(1 + 6 * 4 / 10) and r["value_before"] == pytest.approx(1 + 6 * 3 / 10)
        assert math.isnan(r["p_value"]) and not r["significant"]
    s.close()


def test_the_overview_reads_only_the_tables_it_has_something_to_show_from(tmp_path):
    """An engine holding only survey responses (a warehouse with one table): the tiles of the other
    tables say what to import instead of failing on their missing tables."""
    from datetime import date

    from cx import insights
    from cx.filters import Filters
    from cx.settings import Settings

    raw = duckdb.connect()
    raw.register("frame", RESPONSES.drop(columns=["plan_tier"]))
    raw.execute("CREATE TABLE responses AS SELECT * FROM frame")
    con = ibis.duckdb.from_connection(raw)
    available = {n: (None if m.table == "responses" else f"No {m.table} imported yet.")
                 for n, m in metrics.REGISTRY.items()}
    tiles, _ = insights.overview(con, None, Filters(start=date(2024, 2, 1), end=date(2024, 2, 29)), Settings(),
                                 available=available)
    by = {k.metric: k for k in tiles}
    assert by["nps"].value == 75.0 and by["nps"].value_before == 0.0
    assert by["frt_median"].value is None and by["frt_median"].reason == "No tickets imported yet."


def test_a_mean_has_no_group_where_no_row_has_a_value(tmp_path):
    """Low-priority tickets were never answered: first-response time has no value for them, so the mean
    by priority has no "low" group (rather than one with n = 0), alone or beside other metrics."""
    s = Store(tmp_path / "t.duckdb")
    insert(s, "tickets", pd.DataFrame([
        ("h1", T("2024-01-01 00:00"), T("2024-01-01 02:00"), "high"),
        ("h2", T("2024-01-02 00:00"), T("2024-01-02 04:00"), "high"),
        ("l1", T("2024-01-03 00:00"), NaT, "low")],
        columns=["ticket_id", "created_at", "first_response_at", "priority"]))
    alone = metrics.query_metric(s, "frt_mean", by=("priority",))
    assert alone["priority"].tolist() == ["high"] and alone["value"].tolist() == [3.0] and alone["n"].tolist() == [2]
    together = metrics.query_metrics(s, ["frt_mean", "reopen_rate"], by=("priority",))["frt_mean"]
    pd.testing.assert_frame_equal(together, alone, check_dtype=False)
    s.close()
