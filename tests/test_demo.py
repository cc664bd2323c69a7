"""The demo data set: deterministic, valid against the data model, and carrying the patterns it claims."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cx import demo
from cx.store import SCALE_COLUMNS, TABLES, Store


@pytest.fixture(scope="module")
def frames():
    return demo.generate(seed=7, scale=1.0)


def _nps(scores: pd.Series) -> float:
    s = scores.dropna()
    return 100 * ((s >= 9).mean() - (s <= 6).mean())


def test_same_seed_gives_identical_data_and_another_seed_differs():
    a, b, c = demo.generate(seed=3, scale=0.1), demo.generate(seed=3, scale=0.1), demo.generate(seed=4, scale=0.1)
    for kind in a:
        pd.testing.assert_frame_equal(a[kind], b[kind])
    assert not a["responses"]["submitted_at"].equals(c["responses"]["submitted_at"])


def test_columns_are_canonical_and_keys_unique(frames):
    for kind, frame in frames.items():
        allowed = set(TABLES[kind].field_names) | {c for c, _ in SCALE_COLUMNS.get(kind, ())}
        assert set(frame.columns) <= allowed, set(frame.columns) - allowed
        assert {f.name for f in TABLES[kind].fields if f.required} <= set(frame.columns)
        assert not frame.duplicated(list(TABLES[kind].key)).any()


def test_volumes_at_scale_one_and_scale_a_tenth(frames):
    sizes = {k: len(v) for k, v in frames.items()}
    assert sizes["customers"] == 5000
    assert 30_000 <= sizes["orders"] <= 40_000
    assert 8_000 <= sizes["tickets"] <= 13_000
    assert 20_000 <= sizes["responses"] <= 26_000
    assert 30_000 <= sizes["events"] <= 60_000
    small = demo.generate(seed=7, scale=0.1)
    assert len(small["customers"]) == 500
    assert 2_000 <= len(small["responses"]) <= 2_600


def test_every_row_belongs_to_a_known_customer_and_values_are_in_range(frames):
    known = set(frames["customers"]["customer_id"])
    for kind in ("orders", "tickets", "responses", "events"):
        assert set(frames[kind]["customer_id"]) <= known
    r, t = frames["responses"], frames["tickets"]
    nps = r["nps"].dropna()
    assert ((nps >= 0) & (nps <= 10) & (nps == nps.round())).all()
    assert r["csat"].dropna().between(1, 5).all() and r["ces"].dropna().between(1, 7).all()
    assert (t["first_response_at"].dropna() >= t.loc[t["first_response_at"].notna(), "created_at"]).all()
    solved = t.dropna(subset=["resolved_at", "first_response_at"])
    assert (solved["resolved_at"] >= solved["first_response_at"]).all()
    # Every response carries exactly one score, of its survey's kind.
    assert (r[["nps", "csat", "ces"]].notna().sum(axis=1) == 1).all()


def test_app_nps_drops_after_the_release(frames):
    r = frames["responses"]
    app = r[r["channel"] == "app"]
    before = _nps(app.loc[app["submitted_at"] < demo.APP_RELEASE, "nps"])
    after = _nps(app.loc[app["submitted_at"] >= demo.APP_RELEASE, "nps"])
    web = r[r["channel"] == "web"]
    web_before = _nps(web.loc[web["submitted_at"] < demo.APP_RELEASE, "nps"])
    web_after = _nps(web.loc[web["submitted_at"] >= demo.APP_RELEASE, "nps"])
    assert before - after > 25  # the app loses more than 25 points
    assert abs(web_before - web_after) < 8  # the web does not


def test_customers_with_a_detractor_answer_churn_far_more(frames):
    r, c = frames["responses"], frames["customers"]
    detractors = set(r.loc[r["nps"] <= 6, "customer_id"])
    with_det = c.loc[c["customer_id"].isin(detractors), "churned"].mean()
    without = c.loc[~c["customer_id"].isin(detractors), "churned"].mean()
    assert with_det > 3 * without
    assert (c["churned"] == c["churned_at"].notna()).all()


def test_slow_tickets_get_lower_csat(frames):
    t = frames["tickets"]
    hours = (t["resolved_at"] - t["created_at"]).dt.total_seconds() / 3600
    assert t.loc[hours <= 24, "csat"].median() == 5
    assert t.loc[hours > 72, "csat"].median() <= 3


def test_november_and_december_are_busier_than_their_neighbours(frames):
    o = frames["orders"]
    per_month = o.groupby(o["ordered_at"].dt.to_period("M")).size()
    # Nov–Dec 2025 against Sep–Oct 2025 and Jan–Feb 2026 (the customer base grows slowly between them).
    peak = per_month[[pd.Period("2025-11"), pd.Period("2025-12")]].mean()
    around = per_month[[pd.Period("2025-09"), pd.Period("2025-10"), pd.Period("2026-01"), pd.Period("2026-02")]].mean()
    assert peak > 1.3 * around


def test_segments_differ_and_comments_carry_themes(frames):
    r = frames["responses"]
    by_segment = r.groupby("segment")["nps"].apply(_nps)
    assert by_segment["Enterprise"] > by_segment["SMB"] > by_segment["Consumer"]
    comments = r["comment"].dropna()
    assert 0.35 < len(comments) / len(r) < 0.6
    detractor_text = " ".join(r.loc[r["nps"] <= 6, "comment"].dropna()).lower()
    promoter_text = " ".join(r.loc[r["nps"] >= 9, "comment"].dropna()).lower()
    assert detractor_text.count("late") > 5 * max(promoter_text.count("late"), 1)
    assert promoter_text.count("helpful") > 5 * max(detractor_text.count("helpful"), 1)


def test_load_demo_imports_one_batch_per_table_with_nothing_rejected(tmp_path):
    store = Store(tmp_path / "demo.duckdb")
    results = demo.load_demo(store, scale=0.1)
    assert [r.kind for r in results] == ["customers", "orders", "tickets", "responses", "events"]
    assert all(r.rejected == 0 and r.duplicates == 0 and r.added == r.rows_read for r in results)
    frames = demo.generate(seed=7, scale=0.1)
    assert store.row_counts() == {k: len(v) for k, v in frames.items()}
    # The store holds the generated values: total order revenue to the cent.
    assert store.query_df("SELECT round(sum(amount), 2) AS s FROM orders")["s"][0] == pytest.approx(
        round(float(np.round(frames["orders"]["amount"].sum(), 2)), 2))
