"""The demo data set: deterministic, valid against the data model, and carrying the patterns its module
docstring claims, measured on the generated frames with plain pandas (not through the store)."""

from __future__ import annotations

import pandas as pd
import pytest

from cx import demo
from cx.store import SCALE_COLUMNS, TABLES, Store

ID_PATTERNS = {"customer_id": r"C\d{5}", "order_id": r"O\d{6}", "ticket_id": r"T\d{6}", "response_id": r"R\d{6}",
               "session_id": r"S\d{7}"}
TIME_COLUMNS = {"customers": ("signup_at", "churned_at"), "orders": ("ordered_at",),
                "tickets": ("created_at", "first_response_at", "resolved_at"), "responses": ("submitted_at",),
                "events": ("occurred_at",)}


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    # Scale 1 takes well under a second, and every pattern is clear at that size.
    return demo.generate(seed=7, scale=1.0)


def _nps(scores: pd.Series) -> float:
    """% promoters (9–10) − % detractors (0–6), in points."""
    s = scores.dropna().astype(float)
    return 100 * ((s >= 9).mean() - (s <= 6).mean())


def _hours(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.total_seconds() / 3600


def _churned(frames) -> pd.Series:
    c = frames["customers"]
    return pd.Series(c["churned_at"].notna().to_numpy(), index=c["customer_id"])


# -- shape and validity ---------------------------------------------------------------------------------
def test_same_seed_gives_identical_frames_and_another_seed_differs():
    a, b, c = (demo.generate(seed=s, scale=0.1) for s in (3, 3, 4))
    assert list(a) == ["customers", "orders", "tickets", "responses", "events"]
    for kind in a:
        pd.testing.assert_frame_equal(a[kind], b[kind])
    for kind in a:
        assert not a[kind].equals(c[kind]), kind


def test_columns_are_canonical_fields_plus_scale_columns(frames):
    for kind, frame in frames.items():
        allowed = set(TABLES[kind].field_names) | {c for c, _ in SCALE_COLUMNS.get(kind, ())}
        assert set(frame.columns) <= allowed, set(frame.columns) - allowed
        assert {f.name for f in TABLES[kind].fields if f.required} <= set(frame.columns), kind
        assert not {"batch_id", "row_hash"} & set(frame.columns)
    assert {"csat_min", "csat_max", "ces_min", "ces_max"} <= set(frames["responses"].columns)
    assert {"csat_min", "csat_max"} <= set(frames["tickets"].columns)


def test_timestamps_are_naive_datetimes_and_ids_are_strings(frames):
    for kind, columns in TIME_COLUMNS.items():
        for col in columns:
            s = frames[kind][col]
            assert pd.api.types.is_datetime64_dtype(s) and s.dt.tz is None, (kind, col)
            assert (s.dropna() == s.dropna().dt.floor("s")).all()  # whole seconds
    for kind, frame in frames.items():
        for col, pattern in ID_PATTERNS.items():
            if col in frame:
                ids = frame[col].dropna()
                assert ids.map(type).eq(str).all() and ids.str.fullmatch(pattern).all(), (kind, col)


def test_keys_are_unique(frames):
    for kind, frame in frames.items():
        assert not frame.duplicated(list(TABLES[kind].key)).any(), kind


def test_every_customer_id_and_order_id_refers_to_a_known_row(frames):
    known = set(frames["customers"]["customer_id"])
    for kind in ("orders", "tickets", "responses", "events"):
        assert frames[kind]["customer_id"].notna().all()
        assert set(frames[kind]["customer_id"]) <= known, kind
    r, o = frames["responses"], frames["orders"]
    linked = r.dropna(subset=["order_id"]).merge(o, on="order_id", suffixes=("", "_order"))
    assert len(linked) == r["order_id"].notna().sum() > 0
    # A post-purchase survey is answered by the buyer, after the order.
    assert (linked["customer_id"] == linked["customer_id_order"]).all()
    assert (linked["submitted_at"] > linked["ordered_at"]).all()


def test_scores_are_whole_numbers_within_their_scales(frames):
    r, t = frames["responses"], frames["tickets"]
    nps = r["nps"].dropna()
    assert nps.between(0, 10).all() and (nps == nps.round()).all() and set(nps) == set(range(11))
    for frame, score, lo, hi in ((r, "csat", 1, 5), (r, "ces", 1, 7), (t, "csat", 1, 5)):
        rated = frame.dropna(subset=[score])
        assert len(rated) > 0
        assert (rated[f"{score}_min"] == lo).all() and (rated[f"{score}_max"] == hi).all()
        assert (rated[score] >= rated[f"{score}_min"]).all() and (rated[score] <= rated[f"{score}_max"]).all()
        assert (rated[score] == rated[score].round()).all()
        assert frame.loc[frame[score].isna(), f"{score}_min"].isna().all()
    # Every response answers at least one question; each survey asks its own.
    assert r[["nps", "csat", "ces"]].notna().any(axis=1).all()
    assert r.loc[r["survey"] == "Relationship NPS", "nps"].notna().all()
    assert r.loc[r["survey"] == "Support CES", "ces"].notna().all()
    # Only some tickets are rated.
    assert 0.3 < t["csat"].notna().mean() < 0.5


def test_ticket_times_are_in_order_and_a_few_tickets_are_still_open(frames):
    t = frames["tickets"]
    answered = t.dropna(subset=["first_response_at"])
    assert (answered["first_response_at"] >= answered["created_at"]).all()
    solved = t.dropna(subset=["resolved_at"])
    assert (solved["resolved_at"] >= solved["first_response_at"]).all()
    still_open = t["resolved_at"].isna()
    assert (t.loc[still_open, "status"] == "open").all() and (t.loc[~still_open, "status"] == "solved").all()
    assert 10 <= still_open.sum() <= 200
    assert t.loc[still_open, "csat"].isna().all()
    assert (t["reopens"] == 0).mean() > 0.85 and t["reopens"].max() <= 2
    assert set(t["channel"]) == {"email", "phone", "chat", "web"}
    assert set(t["priority"]) == {"low", "normal", "high", "urgent"}
    assert t["subject"].notna().all() and t["description"].str.len().gt(20).all()


def test_everything_happens_inside_the_two_years(frames):
    start, end = demo.START, demo.END
    for kind, columns in TIME_COLUMNS.items():
        for col in columns:
            assert frames[kind][col].max() <= end, (kind, col)
    for kind, col in (("orders", "ordered_at"), ("tickets", "created_at"), ("responses", "submitted_at"),
                      ("events", "occurred_at")):
        assert frames[kind][col].min() >= start, kind
    c = frames["customers"]
    assert 0.15 < (c["signup_at"] < start).mean() < 0.25  # some customers are older than the window
    churned = c.dropna(subset=["churned_at"])
    assert (churned["churned_at"] > churned["signup_at"]).all()


def test_nothing_happens_after_a_customer_churns(frames):
    gone = frames["customers"].set_index("customer_id")["churned_at"]
    for kind, col in (("orders", "ordered_at"), ("tickets", "created_at"), ("responses", "submitted_at"),
                      ("events", "occurred_at")):
        frame = frames[kind]
        left = gone.reindex(frame["customer_id"]).to_numpy()
        assert not (pd.notna(left) & (frame[col].to_numpy() > left)).any(), kind


def test_volumes_at_scale_one_and_at_a_tenth(frames):
    sizes = {k: len(v) for k, v in frames.items()}
    assert sizes["customers"] == 5000
    assert 30_000 <= sizes["orders"] <= 40_000
    assert 8_000 <= sizes["tickets"] <= 12_000
    assert 20_000 <= sizes["responses"] <= 25_000
    assert 60_000 <= sizes["events"] <= 100_000
    small = {k: len(v) for k, v in demo.generate(seed=7, scale=0.1).items()}
    assert small["customers"] == 500
    for kind in ("orders", "tickets", "responses", "events"):
        assert 0.08 * sizes[kind] <= small[kind] <= 0.12 * sizes[kind], kind


def test_scale_must_be_positive():
    with pytest.raises(ValueError):
        demo.generate(scale=0)


# -- what the data looks like ----------------------------------------------------------------------------
def test_orders_look_like_a_shop(frames):
    o = frames["orders"]
    assert (o["currency"] == "USD").all()
    assert 0.02 < (o["status"] == "refunded").mean() < 0.06 and set(o["status"]) == {"completed", "refunded"}
    assert (o["amount"] > 0).all() and (o["amount"] == o["amount"].round(2)).all()
    assert (o["quantity"] >= 1).all()
    segment = frames["customers"].set_index("customer_id")["segment"].reindex(o["customer_id"]).to_numpy()
    median = o.groupby(segment)["amount"].median()
    assert 50 < median["Consumer"] < 150 and median["Consumer"] < median["SMB"] < median["Enterprise"]


def test_responses_cover_surveys_channels_touchpoints_and_stages(frames):
    r = frames["responses"]
    assert set(r["survey"]) >= {"Relationship NPS", "Post-purchase CSAT", "Support CES"}
    assert set(r["channel"]) == {"web", "app", "email", "phone", "chat", "store"}
    assert set(r["journey_stage"]) == {"Awareness", "Consideration", "Purchase", "Onboarding", "Usage", "Support",
                                       "Renewal"}
    assert {"Website", "Mobile app", "Checkout", "Delivery", "Support call", "Live chat", "Store visit",
            "Billing"} <= set(r["touchpoint"])
    assert (r["language"] == "en").all()
    assert r[["segment", "region", "product"]].notna().all().all()
    # The segment and region on a response are the customer's.
    c = frames["customers"].set_index("customer_id")
    assert (r["segment"].to_numpy() == c["segment"].reindex(r["customer_id"]).to_numpy()).all()


def test_funnel_loses_people_at_every_step(frames):
    e = frames["events"]
    counts = e["step"].value_counts().reindex(demo.FUNNEL, fill_value=0)
    assert (counts.diff().dropna() < 0).all() and counts.iloc[-1] > 0
    # Steps of a session happen in funnel order, minutes to days apart.
    e = e.assign(rank=e["step"].map({s: i for i, s in enumerate(demo.FUNNEL)})).sort_values(["session_id", "rank"])
    gap = e.groupby("session_id")["occurred_at"].diff().dropna()
    assert (gap > pd.Timedelta(0)).all()
    assert gap.median() < pd.Timedelta(minutes=10) and gap.max() > pd.Timedelta(days=1)
    assert (e.groupby("session_id")["customer_id"].nunique() == 1).all()


# -- the patterns -----------------------------------------------------------------------------------------
def test_app_nps_drops_by_about_twenty_points_after_the_release(frames):
    r = frames["responses"]
    after = r["submitted_at"] >= demo.APP_RELEASE
    app, web = r["channel"] == "app", r["channel"] == "web"
    before_nps, after_nps = _nps(r.loc[app & ~after, "nps"]), _nps(r.loc[app & after, "nps"])
    assert 10 < before_nps - after_nps < 28  # documented: 22.7 → 3.8, −18.9 points
    assert abs(_nps(r.loc[web & ~after, "nps"]) - _nps(r.loc[web & after, "nps"])) < 10
    # The drop comes from more detractors.
    nps = r["nps"]
    assert (nps[app & after] <= 6).mean() - (nps[app & ~after] <= 6).mean() > 0.06
    # App checkouts fail more after the release.
    e = frames["events"]
    def checkout_to_order(mask):
        steps = e.loc[mask, "step"].value_counts()
        return steps["Order placed"] / steps["Checkout started"]
    on_app, e_after = e["channel"] == "app", e["occurred_at"] >= demo.APP_RELEASE
    assert checkout_to_order(on_app & ~e_after) - checkout_to_order(on_app & e_after) > 0.15


def test_customers_with_detractor_answers_churn_more(frames):
    r = frames["responses"]
    churned = _churned(frames)
    detractor_answers = r[r["nps"] <= 6].groupby("customer_id").size().reindex(churned.index, fill_value=0)
    with_det, without = churned[detractor_answers > 0].mean(), churned[detractor_answers == 0].mean()
    assert with_det > 1.5 * without  # documented: 27% against 14%
    by_count = churned.groupby(detractor_answers.clip(upper=3)).mean()
    assert by_count.is_monotonic_increasing and by_count[3] > 2.5 * by_count[0]


def test_slow_tickets_get_lower_csat(frames):
    t = frames["tickets"]
    hours = _hours(t["resolved_at"], t["created_at"])
    fast, slow = t.loc[hours <= 24, "csat"].astype(float), t.loc[hours > 72, "csat"].astype(float)
    assert fast.median() == 5 and slow.median() == 2
    assert fast.mean() - slow.mean() > 1.8  # documented: 4.4 against 2.3


def test_nps_after_a_slow_ticket_is_lower(frames):
    r, t = frames["responses"], frames["tickets"]
    solved = t.dropna(subset=["resolved_at"]).assign(slow=lambda d: _hours(d["resolved_at"], d["created_at"]) > 72)
    answers = pd.merge_asof(
        r.dropna(subset=["nps"]).sort_values("submitted_at"),
        solved[["customer_id", "resolved_at", "slow"]].sort_values("resolved_at"),
        left_on="submitted_at", right_on="resolved_at", by="customer_id", direction="backward",
        tolerance=pd.Timedelta(days=30),
    )
    after_slow, after_fast = answers["slow"] == True, answers["slow"] == False  # noqa: E712 (NaN: no ticket)
    assert after_slow.sum() > 200 and after_fast.sum() > 500
    assert _nps(answers.loc[after_fast, "nps"]) - _nps(answers.loc[after_slow, "nps"]) > 20  # documented: 38


def test_november_and_december_are_busier(frames):
    # Nov–Dec 2025 against Sep–Oct 2025 and Jan–Feb 2026 (the customer base changes little between them).
    peak = [pd.Period("2025-11"), pd.Period("2025-12")]
    around = [pd.Period(m) for m in ("2025-09", "2025-10", "2026-01", "2026-02")]
    for kind, col in (("orders", "ordered_at"), ("responses", "submitted_at")):
        per_month = frames[kind].groupby(frames[kind][col].dt.to_period("M")).size()
        assert per_month[peak].mean() > 1.3 * per_month[around].mean(), kind


def test_segments_differ_in_nps_and_purchase_rate(frames):
    r, c, o = frames["responses"], frames["customers"], frames["orders"]
    by_segment = r.groupby("segment")["nps"].apply(_nps)
    assert by_segment["Enterprise"] > by_segment["SMB"] > by_segment["Consumer"]
    assert by_segment["Enterprise"] - by_segment["Consumer"] > 20
    orders_per_customer = o.groupby("customer_id").size().reindex(c["customer_id"], fill_value=0)
    rate = orders_per_customer.groupby(c["segment"].to_numpy()).mean()
    assert rate["Enterprise"] > 2 * rate["Consumer"]


def test_about_half_the_responses_carry_a_comment(frames):
    r = frames["responses"]
    comments = r["comment"]
    assert 0.4 < comments.notna().mean() < 0.6
    assert comments.map(lambda v: v is None or isinstance(v, str)).all()
    assert comments.dropna().str.len().gt(5).all()
    # Varied phrasing: thousands of different comments.
    assert comments.dropna().nunique() > 2000


def test_comment_themes_follow_the_scores(frames):
    r = frames["responses"]
    text = r["comment"].fillna("").str.lower()
    detractor, promoter = (r["nps"] <= 6).fillna(False), (r["nps"] >= 9).fillna(False)
    late = text.str.contains(r"\blate\b|delay")
    helpful = text.str.contains("helpful")
    billing = text.str.contains(r"charged|charge|invoice|billing")
    assert late[detractor].mean() > 0.15 and late[promoter].mean() < 0.01
    assert billing[detractor].mean() > 0.1 and billing[promoter].mean() < 0.01
    assert helpful[promoter].mean() > 0.02 and helpful[detractor].mean() < 0.005
    # Crashes are what app users write about after the release.
    crash = text.str.contains(r"crash|freez")
    commented_on_app = (r["channel"] == "app") & r["comment"].notna()
    after = r["submitted_at"] >= demo.APP_RELEASE
    assert crash[commented_on_app & after].mean() > 3 * crash[commented_on_app & ~after].mean()
    # Unhappy buyers write about late delivery on the post-purchase survey.
    low_csat = (r["csat"] <= 2).fillna(False) & r["order_id"].notna() & r["comment"].notna()
    assert late[low_csat].mean() > 0.4


# -- loading ------------------------------------------------------------------------------------------------
def test_load_demo_imports_one_batch_per_table_with_nothing_rejected(tmp_path):
    store = Store(tmp_path / "demo.duckdb")
    try:
        results = demo.load_demo(store, seed=5, scale=0.05)
        frames = demo.generate(seed=5, scale=0.05)
        assert [r.kind for r in results] == ["customers", "orders", "tickets", "responses", "events"]
        assert [r.file_name for r in results] == [f"Demo data: {r.kind}" for r in results]
        for result in results:
            d = result.as_dict()
            assert d["rows_read"] == d["added"] == len(frames[d["kind"]]), d
            assert d["updated"] == d["unchanged"] == d["duplicates"] == d["rejected"] == 0, d
        assert store.row_counts() == {k: len(v) for k, v in frames.items()}
        assert store.get_setting("demo_loaded") == {"seed": 5, "scale": 0.05}
        revenue = store.query_df("SELECT sum(amount) AS s FROM orders")["s"][0]
        assert revenue == pytest.approx(frames["orders"]["amount"].sum(), abs=0.01)
    finally:
        store.close()
