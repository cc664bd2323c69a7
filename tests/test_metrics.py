"""Each metric pinned to a hand-computed fixture, written out per customer."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cx import ingest, metrics
from cx.engine import backend_for
from cx.errors import UnknownDimension, UnknownMetric
from cx.store import Store

T = pd.Timestamp

RESPONSES = pd.DataFrame([
    # January (web): c1, c2 promoters; c3 passive; c4, c5 detractors → NPS (2 − 2)/5 = 0.
    ("r1", T("2024-01-03 09:00"), "c1", 10, "web", "Great"),
    ("r2", T("2024-01-10 12:00"), "c2", 9, "web", None),
    ("r3", T("2024-01-20 08:00"), "c3", 8, "web", "  "),
    ("r4", T("2024-01-25 18:00"), "c4", 5, "web", "Late delivery"),
    ("r5", T("2024-01-31 23:59:59"), "c5", 0, "web", "Awful"),  # last second of January
    # February (app): three promoters, one passive → NPS 3/4 = 75.
    ("r6", T("2024-02-01 00:00:00"), "c1", 10, "app", "Love it"),  # first second of February
    ("r7", T("2024-02-10 10:00"), "c2", 9, "app", None),
    ("r8", T("2024-02-29 12:00"), "c3", 9, "app", "Leap day"),
    ("r9", T("2024-02-15 12:00"), "c4", 7, "app", None),
], columns=["response_id", "submitted_at", "customer_id", "nps", "channel", "comment"])

# CSAT on 1–5: 5 and 4 satisfied, 3 and 2 not; CSAT on 1–7: 7 and 6 satisfied, 5 not → 4 of 7.
CSAT_5 = pd.DataFrame({"response_id": ["s1", "s2", "s3", "s4"], "submitted_at": [T("2024-01-05")] * 4,
                       "csat": [5, 4, 3, 2], "csat_min": 1, "csat_max": 5, "channel": "email"})
CSAT_7 = pd.DataFrame({"response_id": ["s5", "s6", "s7"], "submitted_at": [T("2024-01-06")] * 3,
                       "csat": [7, 6, 5], "csat_min": 1, "csat_max": 7, "channel": "email"})
# CES on 1–7: 7, 5, 3 → mean 5, easy (5–7) 2 of 3. On 1–5: a 5 is a 7 on 1–7, a 1 is a 1.
CES_7 = pd.DataFrame({"response_id": ["e1", "e2", "e3"], "submitted_at": [T("2024-01-07")] * 3,
                      "ces": [7, 5, 3], "ces_min": 1, "ces_max": 7, "channel": "phone"})

TICKETS = pd.DataFrame([
    # t1: first reply after 1 h, solved after 10 h with one reply → first-contact resolution.
    ("t1", T("2024-01-01 00:00"), T("2024-01-01 01:00"), T("2024-01-01 10:00"), 1, 0),
    # t2: 3 h, solved after 24 h, three replies.
    ("t2", T("2024-01-02 00:00"), T("2024-01-02 03:00"), T("2024-01-03 00:00"), 3, 0),
    # t3: 5 h, solved after 48 h with one reply, but reopened once.
    ("t3", T("2024-01-03 00:00"), T("2024-01-03 05:00"), T("2024-01-05 00:00"), 1, 1),
    # t4: 2 h to first reply, still open.
    ("t4", T("2024-01-04 00:00"), T("2024-01-04 02:00"), pd.NaT, 1, 0),
], columns=["ticket_id", "created_at", "first_response_at", "resolved_at", "agent_replies", "reopens"])

ORDERS = pd.DataFrame([
    ("o1", "c1", T("2024-01-05"), 100.0, "completed"),
    ("o2", "c1", T("2024-01-20"), 50.0, "completed"),
    ("o3", "c2", T("2024-02-01"), 30.0, "completed"),
    ("o4", "c3", T("2024-02-10"), 20.0, "refunded"),  # not revenue
], columns=["order_id", "customer_id", "ordered_at", "amount", "status"])

CUSTOMERS = pd.DataFrame([
    ("k1", T("2023-06-01"), T("2024-02-15")),  # lost in February
    ("k2", T("2023-07-01"), pd.NaT),
    ("k3", T("2023-12-01"), T("2024-01-10")),  # lost in January
    ("k4", T("2024-01-15"), T("2024-03-01")),  # joined in January, lost in March
    ("k5", T("2024-02-01"), pd.NaT),
    ("k6", T("2023-01-01"), pd.NaT),
    ("k7", T("2023-03-01"), T("2024-02-20")),  # lost in February
], columns=["customer_id", "signup_at", "churned_at"])


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("metrics") / "m.duckdb")
    for kind, frame in [("responses", RESPONSES), ("responses", CSAT_5), ("responses", CSAT_7),
                        ("responses", CES_7), ("tickets", TICKETS), ("orders", ORDERS), ("customers", CUSTOMERS)]:
        result = ingest.import_frame(store, kind, frame, file_name=f"fixture {kind}")
        assert result.rejected == 0
    return backend_for(store)


def one(backend, name, **kw):
    df = metrics.query_metric(backend, name, **kw)
    assert len(df) == 1
    return df.iloc[0]


def test_nps_by_month_respects_month_boundaries(backend):
    df = metrics.query_metric(backend, "nps", grain="month")
    assert df["period"].dt.strftime("%Y-%m").tolist() == ["2024-01", "2024-02"]
    assert df["value"].tolist() == [0.0, 75.0]
    assert df["n"].tolist() == [5, 4]
    assert df["low_n"].tolist() == [True, True]
    # NPS 75 of n = 4: SE = √((.75 + 0 − .75²)/4) = .2165 → 75 ± 42.4, clipped at 100.
    assert df["ci_low"].iloc[1] == pytest.approx(75 - 1.96 * 21.65, abs=0.1)
    assert df["ci_high"].iloc[1] == 100.0


def test_nps_overall_and_by_channel_with_a_date_filter(backend):
    assert one(backend, "nps")["value"] == pytest.approx(100 * (5 - 2) / 9)
    feb = metrics.query_metric(backend, "nps", by=("channel",), start="2024-02-01", end="2024-02-29")
    assert feb.set_index("channel")["value"].to_dict() == {"app": 75.0}


def test_csat_is_top_two_box_on_each_rows_own_scale(backend):
    row = one(backend, "csat")
    assert row["n"] == 7 and row["value"] == pytest.approx(100 * 4 / 7)


def test_ces_mean_and_share_easy(backend):
    assert one(backend, "ces")["value"] == pytest.approx(5.0)
    assert one(backend, "ces_easy")["value"] == pytest.approx(100 * 2 / 3)


def test_response_count_and_comment_share(backend):
    assert one(backend, "responses")["value"] == 9 + 4 + 3 + 3
    # Comments: Great, Late delivery, Awful, Love it, Leap day (a blank one does not count) → 5 of 19.
    assert one(backend, "comment_share")["value"] == pytest.approx(100 * 5 / 19)


def test_ticket_times_in_hours(backend):
    assert one(backend, "frt_median")["value"] == pytest.approx(2.5)  # 1, 2, 3, 5
    assert one(backend, "frt_mean")["value"] == pytest.approx(2.75)
    assert one(backend, "ttr_median")["value"] == pytest.approx(24.0)  # 10, 24, 48 (t4 open)
    assert one(backend, "ttr_mean")["value"] == pytest.approx(82 / 3)
    # p90 of 10, 24, 48 by linear interpolation: 24 + 0.8·24 = 43.2.
    assert one(backend, "ttr_p90")["value"] == pytest.approx(43.2)
    assert one(backend, "ttr_median")["n"] == 3


def test_fcr_reopen_rate_and_backlog(backend):
    assert one(backend, "fcr")["value"] == pytest.approx(100 / 3)  # only t1
    assert one(backend, "reopen_rate")["value"] == pytest.approx(100 / 3)  # t3
    assert one(backend, "backlog", end="2024-01-31")["value"] == 1  # t4
    # At the end of 2 January: t1 was solved on the 1st, t2 is solved only at midnight on the 3rd.
    assert one(backend, "backlog", end="2024-01-02")["value"] == 1


def test_order_metrics_exclude_refunds(backend):
    assert one(backend, "revenue")["value"] == 180.0
    assert one(backend, "orders")["value"] == 3
    assert one(backend, "aov")["value"] == pytest.approx(60.0)
    assert one(backend, "purchase_frequency")["value"] == pytest.approx(1.5)  # 3 orders, 2 customers
    assert one(backend, "clv_historical")["value"] == pytest.approx(90.0)
    by_month = metrics.query_metric(backend, "revenue", grain="month")
    assert by_month["value"].tolist() == [150.0, 30.0]


def test_churn_rate_per_month_from_dates(backend):
    df = metrics.query_metric(backend, "churn_rate", grain="month", start="2024-01-01", end="2024-03-31")
    # January: active k1 k2 k3 k6 k7, lost k3 → 1/5. February: + k4 − k3 = 5 active, lost k1 k7 → 2/5.
    # March: k5 joined on 1 February, k1 and k7 left → k2 k4 k5 k6 active, lost k4 → 1/4.
    assert df["value"].tolist() == pytest.approx([20.0, 40.0, 25.0])
    assert df["n"].tolist() == [5, 5, 4]
    feb = one(backend, "churn_rate", start="2024-02-01", end="2024-02-29")
    assert feb["n"] == 5 and feb["value"] == pytest.approx(40.0)
    assert one(backend, "retention_rate", start="2024-02-01", end="2024-02-29")["value"] == pytest.approx(60.0)


def test_churn_from_tenure_and_flag(tmp_path):
    store = Store(tmp_path / "telco.duckdb")
    frame = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "tenure": [1, 20, 30, 5],
                          "churned": [True, False, False, True], "plan": ["m", "y", "y", "m"]})
    ingest.import_frame(store, "customers", frame, file_name="telco")
    b = backend_for(store)
    assert one(b, "churn_rate")["value"] == 50.0
    by_plan = metrics.query_metric(b, "churn_rate", by=("plan",)).set_index("plan")["value"].to_dict()
    assert by_plan == {"m": 100.0, "y": 0.0}


def test_compare_with_previous_period(backend):
    df = metrics.compare_metric(backend, "nps", start="2024-02-01", end="2024-02-29")
    row = df.iloc[0]
    # Previous period of 29 days: 3–31 January, all five January answers.
    assert (df.attrs["before_start"].isoformat(), df.attrs["before_end"].isoformat()) == ("2024-01-03", "2024-01-31")
    assert row["value"] == 75.0 and row["value_before"] == 0.0 and row["delta"] == 75.0
    assert 0 < row["p_value"] < 1 and bool(row["low_n"])


def test_unknown_names_are_refused_with_a_fix(backend):
    with pytest.raises(UnknownMetric, match="no metric called 'happiness'"):
        metrics.query_metric(backend, "happiness")
    with pytest.raises(UnknownDimension, match="no column 'planet'"):
        metrics.query_metric(backend, "nps", by=("planet",))
    with pytest.raises(UnknownDimension):
        metrics.query_metric(backend, "nps", by=('channel" FROM responses; --',))


def test_filter_values_are_literal_values_only(backend):
    evil = "web'; DROP TABLE responses; --"
    df = metrics.query_metric(backend, "nps", where={"channel": [evil]})
    assert df["n"].iloc[0] == 0 and math.isnan(df["value"].iloc[0])
    assert one(backend, "responses")["value"] == 19  # still there


def test_format_value_uses_units():
    assert metrics.format_value("nps", 32.456) == "+32.5"
    assert metrics.format_value("csat", 71.26) == "71.3%"
    assert metrics.format_value("ttr_median", 30.0) == "30.0 h"
    assert metrics.format_value("ttr_median", 72.0) == "3.0 d"
    assert metrics.format_value("orders", 12345.0) == "12,345"
    assert metrics.format_value("nps", float("nan")) == "–"


def test_each_store_gets_its_own_backend_even_when_an_old_one_is_gone(tmp_path):
    # A backend cached by id() would hand a new store the cursor of a freed one with the same id.
    for i, n in enumerate((2, 3, 4)):
        store = Store(tmp_path / f"s{i}.duckdb")
        frame = pd.DataFrame({"response_id": [f"r{j}" for j in range(n)], "submitted_at": [T("2024-01-01")] * n,
                              "nps": [10] * n})
        ingest.import_frame(store, "responses", frame, file_name="f")
        assert metrics.query_metric(backend_for(store), "responses")["value"].iloc[0] == n
        store.close()
        del store
