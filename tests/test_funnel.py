"""Funnels, written as per-customer journeys (who did what, when), with exact counts for every order
mode: extra events between steps, wrong order, equal timestamps, the window boundary, repeated and
duplicated events, attribution of the breakdown to the counted attempt, the date range, the cohort
trend, the drop-off list and the command line. Then the real BPI 2012 loan log against an
independent pandas reference (skipped when ../shared/datasets is absent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cx import funnel, ingest
from cx.errors import TouchpointError, UnknownDimension
from cx.funnel import FunnelQuery
from cx.store import Store

ROOT = Path(__file__).resolve().parents[1]
BASE = pd.Timestamp("2024-03-01 09:00")  # a Friday


def d(days: float = 0, hours: float = 0, seconds: float = 0) -> pd.Timestamp:
    return BASE + pd.Timedelta(days=days, hours=hours, seconds=seconds)


# Funnel A → B → C, window 14 days unless a test says otherwise. X is an event outside the funnel.
JOURNEYS = [
    # c1 does A, B, C a day apart: converts in every mode.
    ("c1", d(0), "A", "web"), ("c1", d(1), "B", "web"), ("c1", d(2), "C", "web"),
    # c2 does something else (X) between A and B: converts in sequential and any order, not in strict.
    ("c2", d(0), "A", "web"), ("c2", d(0, 1), "X", "web"), ("c2", d(1), "B", "web"), ("c2", d(2), "C", "web"),
    # c3 does C before B: sequential reaches B only; strict stops at A (C comes next); any order: all three.
    ("c3", d(0), "A", "web"), ("c3", d(1), "C", "web"), ("c3", d(2), "B", "web"),
    # c4 does C exactly 14 days after A: the window's boundary is inclusive, so c4 converts.
    ("c4", d(0), "A", "web"), ("c4", d(1), "B", "web"), ("c4", d(14), "C", "web"),
    # c5 does C one second after the window closes: a drop-off at C in every mode.
    ("c5", d(0), "A", "web"), ("c5", d(1), "B", "web"), ("c5", d(14, seconds=1), "C", "web"),
    # c6 does A and B at the same instant, C an hour later: equal timestamps count as in funnel order.
    ("c6", d(0), "A", "app"), ("c6", d(0), "B", "app"), ("c6", d(0, 1), "C", "app"),
    # c7 does B, then A a day later (out of order): entered, never gets to B in the ordered modes;
    # any order counts two steps (B then A).
    ("c7", d(0), "B", "app"), ("c7", d(1), "A", "app"),
    # c8 does A (web), nothing for 20 days, A again (app), then B and C: the first attempt dies at the
    # window, the second converts; the customer counts once, with the app attempt.
    ("c8", d(0), "A", "web"), ("c8", d(20), "A", "app"), ("c8", d(21), "B", "app"), ("c8", d(22), "C", "app"),
    # c9 does A (app), A again an hour later (web), then B, never C. Sequential: both attempts reach B,
    # the earlier (app) counts. Strict: the repeat of A sits between the first A and B, so only the
    # second (web) attempt reaches B.
    ("c9", d(0), "A", "app"), ("c9", d(0, 1), "A", "web"), ("c9", d(1), "B", "app"),
    # c10 never does A: not in the ordered funnels; any order counts B and C.
    ("c10", d(0), "B", "web"), ("c10", d(1), "C", "web"),
    # c11 does A and X at the same instant, then B and C: X did not happen after B, so strict stops at A.
    ("c11", d(3), "A", "app"), ("c11", d(3), "X", "app"), ("c11", d(3, 1), "B", "app"), ("c11", d(3, 2), "C", "app"),
]


def load(store: Store, journeys=JOURNEYS) -> None:
    # Rows in reverse order: the order of rows in a file never matters, only timestamps.
    rows = list(reversed(journeys))
    frame = pd.DataFrame({"customer_id": [r[0] for r in rows], "occurred_at": [r[1] for r in rows],
                          "step": [r[2] for r in rows], "channel": [r[3] for r in rows]})
    ingest.import_frame(store, "events", frame, file_name="journeys")


def counts(store: Store, steps=("A", "B", "C"), **kw) -> list[int]:
    return funnel.compute_funnel(store, FunnelQuery.build(steps, **kw))["customers"].tolist()


@pytest.fixture
def journeys(store):
    load(store)
    return store


def test_sequential_counts_each_customer_once_at_the_attempt_that_gets_furthest(journeys):
    # Entered: c1–c9, c11 (10). B: all but c7 (9). C: c1, c2, c4, c6, c8, c11 (6).
    table = funnel.compute_funnel(journeys, FunnelQuery.build(["A", "B", "C"]))
    assert table["step_name"].tolist() == ["A", "B", "C"]
    assert table["customers"].tolist() == [10, 9, 6]
    assert table["dropoff"].tolist() == [0, 1, 3]
    assert table["conversion_pct"].round(4).tolist() == [100.0, 90.0, 60.0]
    assert table["step_conversion_pct"].round(4).tolist() == [100.0, 90.0, round(600 / 9, 4)]


def test_strict_allows_no_other_event_between_steps(journeys):
    # B: c1, c4, c5, c6, c8 (second attempt), c9 (second attempt) = 6. C: c1, c4, c6, c8 = 4.
    # c2 (X between), c3 (C next), c11 (X at A's instant) stop at A; c7 never reaches B.
    assert counts(journeys, mode="strict") == [10, 6, 4]


def test_any_order_counts_customers_by_how_many_different_steps_they_did(journeys):
    # Entered: everyone (11). Two different steps: everyone (c7: B, A; c10: B, C). Three: c1, c2, c3,
    # c4, c6, c8, c11 = 7 (c5's C is outside the window from A, and from B it makes only two steps).
    table = funnel.compute_funnel(journeys, FunnelQuery.build(["A", "B", "C"], mode="any"))
    assert table["customers"].tolist() == [11, 11, 7]
    assert table["step_name"].tolist() == ["Any 1 step", "Any 2 of 3 steps", "Any 3 of 3 steps"]


def test_the_window_boundary_is_inclusive(journeys):
    # c4's C is at exactly +14 d, c5's at +14 d 1 s: with a window one second longer both convert.
    assert counts(journeys, window="14d")[2] == 6
    assert counts(journeys, window=f"{14 * 86400 + 1}s")[2] == 7
    # With a one-day window, B a day after A still counts (c1, c2, c4, c5, c8, c9 and the same-instant c6,
    # c11), C a day after B does not (only c6 and c11, each within two hours, convert).
    assert counts(journeys, window="1d") == [10, 8, 2]


def test_times_to_convert_are_hours_from_the_previous_and_the_first_step(journeys):
    table = funnel.compute_funnel(journeys, FunnelQuery.build(["A", "B", "C"])).set_index("step")
    # A → B, hours: c6 0, c11 1, c1 c2 c4 c5 c8 c9 24, c3 48 → median 24; p90 at rank 7.2 → 24 + 0.2 × 24.
    assert table.loc[2, "median_hours"] == pytest.approx(24.0)
    assert table.loc[2, "p90_hours"] == pytest.approx(28.8)
    # B → C: c6 1, c11 1, c1 c2 c8 24, c4 312 (13 days) → median 24; p90 at rank 4.5 → 24 + 0.5 × 288.
    assert table.loc[3, "median_hours"] == pytest.approx(24.0)
    assert table.loc[3, "p90_hours"] == pytest.approx(168.0)
    # A → C: c6 1, c11 2, c1 c2 c8 48, c4 336 → median 48.
    assert table.loc[3, "median_hours_from_first"] == pytest.approx(48.0)
    assert pd.isna(table.loc[1, "median_hours"])


def test_breakdown_takes_the_value_of_the_counted_attempts_first_step(journeys):
    seq = funnel.compute_funnel(journeys, FunnelQuery.build(["A", "B", "C"], by="channel"))
    got = {ch: grp["customers"].tolist() for ch, grp in seq.groupby("channel")}
    # web: c1–c5. app: c6, c7, c8 (its second, app attempt), c9 (its first, app attempt), c11.
    assert got == {"web": [5, 5, 3], "app": [5, 4, 3]}
    strict = funnel.compute_funnel(journeys, FunnelQuery.build(["A", "B", "C"], by="channel", mode="strict"))
    got = {ch: grp["customers"].tolist() for ch, grp in strict.groupby("channel")}
    # In strict mode c9's counted attempt is the second, web one: web c1–c5, c9; app c6, c7, c8, c11.
    assert got == {"web": [6, 4, 2], "app": [4, 2, 2]}


def test_filters_apply_to_the_first_steps_event(journeys):
    # Only attempts that start with a web A: c1–c5, c8 (its web attempt dies at the window), c9 (second A).
    assert counts(journeys, where={"channel": ["web"]}) == [7, 6, 3]


def test_the_date_range_selects_attempts_by_their_first_step(journeys):
    # From 2 March: c7 (A on 2 March), c11 (4 March), c8 (its A on 21 March) enter; c8 and c11 convert.
    assert counts(journeys, start="2024-03-02") == [3, 2, 2]
    assert counts(journeys, start="2024-03-02", end="2024-03-04") == [2, 1, 1]


def test_a_repeated_step_is_a_later_event_never_the_same_one(journeys):
    # A → A: only c9 does A twice within 14 days (c8's second A is 20 days later).
    assert counts(journeys, steps=("A", "A")) == [10, 1]


def test_duplicate_rows_are_one_event(journeys):
    # The importer collapses a re-delivered row; a table filled another way is de-duplicated by the funnel.
    load(journeys, [("c1", d(0), "A", "web"), ("c5", d(1), "B", "web")])
    with journeys.transaction() as cur:
        cur.execute("INSERT INTO events (customer_id, occurred_at, step, channel, batch_id, row_hash) "
                    "VALUES ('c1', ?, 'A', 'web', 99, 'x'), ('c1', ?, 'B', 'web', 99, 'y')",
                    [d(0).to_pydatetime(), d(1).to_pydatetime()])
    assert counts(journeys) == [10, 9, 6]
    assert counts(journeys, mode="strict") == [10, 6, 4]
    assert counts(journeys, mode="any") == [11, 11, 7]


def test_dropped_customers_lists_who_reached_the_previous_step_only(journeys):
    q = FunnelQuery.build(["A", "B", "C"], by="channel")
    at_c = funnel.dropped_customers(journeys, q, 3)
    assert at_c["customer_id"].tolist() == ["c3", "c5", "c9"]
    assert at_c["channel"].tolist() == ["web", "web", "app"]
    assert at_c["last_step"].unique().tolist() == ["B"]
    c5 = at_c.set_index("customer_id").loc["c5"]
    assert pd.Timestamp(c5["last_step_at"]) == d(1)
    assert pd.Timestamp(c5["window_ends_at"]) == d(14)
    assert funnel.dropped_customers(journeys, q, 2)["customer_id"].tolist() == ["c7"]
    with pytest.raises(TouchpointError, match="from 2 to 3"):
        funnel.dropped_customers(journeys, q, 1)


def test_one_matching_answers_the_pages_questions_and_a_new_import_is_seen(journeys, monkeypatch):
    """The step table, the cohorts and the drop-offs of one funnel share one per-customer matching;
    an import changes the data version, and the next answer counts the new events."""
    monkeypatch.setattr(funnel, "_MATCHED", funnel.OrderedDict())
    q = FunnelQuery.build(["A", "B", "C"])
    assert funnel.compute_funnel(journeys, q)["customers"].tolist() == counts(journeys)
    funnel.conversion_trend(journeys, q, "week")
    funnel.dropped_customers(journeys, q, 3)
    assert len(funnel._MATCHED) == 1
    before = counts(journeys)
    # c12 does A, B and C within a day: one more customer at every step.
    load(journeys, [("c12", d(2), "A", "web"), ("c12", d(2, 1), "B", "web"), ("c12", d(2, 2), "C", "web")])
    assert counts(journeys) == [n + 1 for n in before]
    assert len(funnel._MATCHED) == 2  # the new data version's matching, beside the old one


def test_conversion_trend_by_weekly_cohort_flags_cohorts_still_open(journeys):
    trend = funnel.conversion_trend(journeys, FunnelQuery.build(["A", "B", "C"]), "week")
    # Week of 26 Feb: c1–c7, c9 enter, c1, c2, c4, c6 convert. Week of 4 March: c11. Week of 18 March: c8.
    assert trend["cohort"].dt.strftime("%Y-%m-%d").tolist() == ["2024-02-26", "2024-03-04", "2024-03-18"]
    assert trend["entered"].tolist() == [8, 1, 1]
    assert trend["converted"].tolist() == [4, 1, 1]
    assert trend["conversion_pct"].tolist() == [50.0, 100.0, 100.0]
    # The last event is c8's C on 23 March: the week of 26 Feb closed on 4 March + 14 d = 18 March
    # (complete); the week of 4 March would need data to 25 March.
    assert trend["complete"].tolist() == [True, False, False]


def test_time_to_convert_distribution_buckets_the_customers(journeys):
    dist = funnel.time_to_convert(journeys, FunnelQuery.build(["A", "B", "C"]), 3).set_index("bucket")
    # B → C: c6 and c11 1 h (the "1–4 h" bucket starts at 1 h), c1 c2 c8 24 h, c4 13 days.
    assert dist.loc["1–4 h", "customers"] == 2
    assert dist.loc["1–2 days", "customers"] == 3
    assert dist.loc["1–2 weeks", "customers"] == 1
    assert dist["customers"].sum() == 6
    assert dist["cumulative_pct"].iloc[-1] == pytest.approx(100.0)
    # From the first step: c6 1 h, c11 2 h (1–4 h), c1 c2 c8 48 h (2–4 days), c4 exactly 14 days (2–4 weeks).
    first = funnel.time_to_convert(journeys, FunnelQuery.build(["A", "B", "C"]), 3, from_first=True).set_index("bucket")
    assert first.loc[["1–4 h", "2–4 days", "2–4 weeks"], "customers"].tolist() == [2, 3, 1]


def test_breakdown_by_a_customer_dimension(journeys):
    frame = pd.DataFrame({"customer_id": ["c1", "c2", "c3"], "plan": ["Premium"] * 3})
    ingest.import_frame(journeys, "customers", frame, file_name="customers")
    table = funnel.compute_funnel(journeys, FunnelQuery.build(["A", "B", "C"], by="plan"))
    got = {p: grp["customers"].tolist() for p, grp in table.groupby("plan")}
    assert got == {"Premium": [3, 3, 2], "(none)": [7, 6, 4]}
    assert counts(journeys, where={"plan": ["Premium"]}) == [3, 3, 2]


def test_filters_on_other_tables_are_reported_not_applied(journeys):
    table = funnel.compute_funnel(journeys, FunnelQuery.build(["A", "B", "C"], where={"journey_stage": ["x"]}))
    assert table["customers"].tolist() == [10, 9, 6]
    assert table.attrs["ignored_filters"] == ["journey_stage"]


def test_mistakes_are_refused_in_plain_words(journeys):
    with pytest.raises(TouchpointError, match="2 to 20 steps"):
        FunnelQuery.build(["A"])
    with pytest.raises(TouchpointError, match="2 to 20 steps"):
        FunnelQuery.build(["A"] * 21)
    with pytest.raises(TouchpointError, match="not a conversion window"):
        FunnelQuery.build(["A", "B"], window="soon")
    with pytest.raises(TouchpointError, match="out of range"):
        FunnelQuery.build(["A", "B"], window="0d")
    with pytest.raises(TouchpointError, match="only once"):
        FunnelQuery.build(["A", "A"], mode="any")
    with pytest.raises(TouchpointError, match="not a funnel order"):
        FunnelQuery.build(["A", "B"], mode="loose")
    with pytest.raises(TouchpointError, match="Did you mean 'B'"):
        funnel.compute_funnel(journeys, FunnelQuery.build(["A", "b"]))
    with pytest.raises(UnknownDimension, match="no dimension 'planet'"):
        funnel.compute_funnel(journeys, FunnelQuery.build(["A", "B"], by="planet"))
    # A step name is a bound value, never SQL.
    with pytest.raises(TouchpointError, match="No event has the step"):
        funnel.compute_funnel(journeys, FunnelQuery.build(["A", "B'); DROP TABLE events; --"]))
    assert journeys.row_counts()["events"] == len(JOURNEYS)


def test_windows_parse_in_readable_units():
    assert [funnel.parse_window(w) for w in ("14d", "36h", "90m", "2w", "45s", "7", 1.5)] == [
        1209600, 129600, 5400, 1209600, 45, 604800, 129600]
    assert funnel.format_window(1209600) == "14d" and funnel.format_window(5400) == "90m"


def test_step_catalog_lists_steps_in_journey_order(journeys):
    cat = funnel.step_catalog(journeys)
    assert cat["step"].tolist()[:2] == ["A", "B"]
    # Each customer's first occurrences ranked by time (equal instants by name). A: rank 1 for nine, 2 for c7
    # (B, A). B: 1 (c7, c10), 2 (c1, c4, c5, c6, c8, c9), 3 (c2, c3, c11): median of 11 is 2. C: 2 (c3, c10),
    # 3 (c1, c4, c5, c6, c8), 4 (c2, c11): 3. X: 2 (c2, c11). B and X tie at 2: more customers first.
    assert cat.set_index("step")["median_position"].to_dict() == {"A": 1.0, "B": 2.0, "X": 2.0, "C": 3.0}
    assert cat["step"].tolist() == ["A", "B", "X", "C"]
    assert cat.set_index("step").loc["A", "events"] == 12 and cat.set_index("step").loc["A", "customers"] == 10


# -- command line ----------------------------------------------------------------------------------
def cx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cx", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))


def test_cli_prints_the_step_table(tmp_path):
    db = tmp_path / "cli.duckdb"
    s = Store(db)
    load(s)
    s.close()
    done = cx("funnel", "A", "B", "C", "--mode", "strict", "--db", str(db), "--format", "json")
    assert (done.returncode, done.stderr) == (0, "")
    rows = json.loads(done.stdout)
    assert [r["customers"] for r in rows] == [10, 6, 4]
    done = cx("funnel", "A", "B", "C", "--by", "channel", "--window", "1d", "--from", "2024-03-01", "--db", str(db),
              "--format", "csv")
    assert done.returncode == 0
    table = pd.read_csv(__import__("io").StringIO(done.stdout))
    assert table.groupby("channel")["customers"].apply(list).to_dict() == {"app": [5, 4, 2], "web": [5, 4, 0]}
    done = cx("funnel", "A", "Q", "--db", str(db))
    assert done.returncode == 2 and "No event has the step 'Q'" in done.stderr


# -- BPI Challenge 2012 ----------------------------------------------------------------------------
BPI = ROOT.parent / "shared" / "datasets" / "bpi2012" / "bpi_challenge_2012_events.csv.gz"
BPI_STEPS = ["A_SUBMITTED", "A_PREACCEPTED", "A_ACCEPTED", "A_FINALIZED", "A_APPROVED"]


def _reference(events: pd.DataFrame, steps: list[str], window: pd.Timedelta, any_order: bool = False):
    """A plain per-customer reading of the definitions, independent of the SQL: per customer, try
    every attempt, keep the furthest (earliest among equals); return counts per step and the step
    times of the counted attempts."""
    reached_times = []
    for _, ev in events.groupby("customer_id", sort=False):
        ev = ev.sort_values("t")
        ts, names = ev["t"].tolist(), ev["step"].tolist()
        best: list = []
        for i, (t0, s0) in enumerate(zip(ts, names)):
            if any_order:
                firsts = {}
                for t, s in zip(ts[i:], names[i:]):
                    if s in steps and t <= t0 + window and s not in firsts:
                        firsts[s] = t
                times = sorted(firsts.values())
            else:
                if s0 != steps[0]:
                    continue
                times, prev = [t0], t0
                for step in steps[1:]:
                    nxt = [t for t, s in zip(ts, names) if s == step and t >= prev and t <= t0 + window]
                    if not nxt:
                        break
                    prev = min(nxt)
                    times.append(prev)
            if len(times) > len(best):
                best = times
        if best:
            reached_times.append(best)
    counts = [sum(len(b) > k for b in reached_times) for k in range(len(steps))]
    return counts, reached_times


@pytest.mark.datasets
@pytest.mark.skipif(not BPI.exists(), reason=f"{BPI} not found")
def test_bpi_2012_loan_funnel_matches_an_independent_reference(store):
    ingest.import_file(store, BPI)
    raw = pd.read_csv(BPI, usecols=["case_id", "concept:name", "time:timestamp"], dtype=str)
    raw = raw.rename(columns={"case_id": "customer_id", "concept:name": "step", "time:timestamp": "t"})
    raw["t"] = pd.to_datetime(raw["t"], utc=True, format="ISO8601").dt.tz_convert(None)
    ours = raw[raw["step"].isin(BPI_STEPS)].drop_duplicates()
    assert raw["customer_id"].nunique() == 13087 and len(raw) == 262200

    counts, times = _reference(ours, BPI_STEPS, pd.Timedelta(days=14))
    table = funnel.compute_funnel(store, FunnelQuery.build(BPI_STEPS))
    assert table["customers"].tolist() == counts
    # The numbers themselves (sequential, 14-day window from submission), for the record:
    assert counts == [13087, 7367, 5089, 4993, 1086]
    approved = pd.Series([(b[4] - b[3]).total_seconds() / 3600 for b in times if len(b) == 5])
    row = table.set_index("step").loc[5]
    assert row["median_hours"] == pytest.approx(approved.median(), rel=1e-9)
    assert row["p90_hours"] == pytest.approx(approved.quantile(0.9), rel=1e-9)

    counts30, _ = _reference(ours, BPI_STEPS, pd.Timedelta(days=30))
    assert counts30 == [13087, 7367, 5113, 5015, 2058]
    assert table_counts(store, window="30d") == counts30
    any14, _ = _reference(ours, BPI_STEPS, pd.Timedelta(days=14), any_order=True)
    assert table_counts(store, mode="any") == any14 == [13087, 7367, 5090, 4993, 1086]
    # Strict: every application is A_SUBMITTED then A_PARTLYSUBMITTED, so nobody goes straight on.
    nxt = raw.sort_values(["customer_id", "t"]).groupby("customer_id")["step"].shift(-1)
    straight = ((raw.sort_values(["customer_id", "t"])["step"] == "A_SUBMITTED") & (nxt == "A_PREACCEPTED")).sum()
    assert straight == 0
    assert table_counts(store, mode="strict") == [13087, 0, 0, 0, 0]
    assert table_counts(store, ["A_SUBMITTED", "A_PARTLYSUBMITTED", "A_PREACCEPTED"], mode="strict")[1] == 13087


def table_counts(store, steps=BPI_STEPS, **kw) -> list[int]:
    return funnel.compute_funnel(store, FunnelQuery.build(steps, **kw))["customers"].tolist()


def test_a_later_step_never_counts_when_the_step_before_it_is_missing(store):
    # d1 does A then C and never B: entered, nothing more — C cannot stand in for a missing B.
    # d2 does A, then B 20 days later (outside the window), then C: also stops at A.
    # d3 does A, B, C within a day: converts.
    load(store, [("d1", d(0), "A", "web"), ("d1", d(1), "C", "web"),
                 ("d2", d(0), "A", "web"), ("d2", d(20), "B", "web"), ("d2", d(21), "C", "web"),
                 ("d3", d(0), "A", "web"), ("d3", d(0, 1), "B", "web"), ("d3", d(0, 2), "C", "web")])
    for mode in ("sequential", "strict"):
        assert counts(store, mode=mode) == [3, 1, 1], mode
    assert counts(store, mode="any") == [3, 3, 1]  # d1: A and C; d2: B and C within 14 days of B


def test_many_customers_missing_a_middle_step_never_reach_the_next(store):
    # 3,000 customers do C, then A twice ten days later, never B; 100 others do A, B, C. DuckDB's ASOF
    # join can pair a missing step with some row at this size, so the funnel must test for it.
    rows = []
    for i in range(3000):
        rows += [(f"x{i}", d(i % 50), "C", "web"), (f"x{i}", d(i % 50 + 10), "A", "web"),
                 (f"x{i}", d(i % 50 + 11), "A", "web")]
    for i in range(100):
        rows += [(f"y{i}", d(i % 50), "A", "web"), (f"y{i}", d(i % 50, 1), "B", "web"), (f"y{i}", d(i % 50, 2), "C", "web")]
    load(store, rows)
    assert counts(store) == [3100, 100, 100]
    assert counts(store, mode="strict") == [3100, 100, 100]


def test_other_tables_timestamps_are_steps_too(store):
    # o1 orders, opens a ticket two days later, has it resolved the next day, answers a survey: converts.
    # o2 orders and opens a ticket 20 days later: outside the window, stops at the order.
    # o3 opens a ticket, then orders: the ticket came first, so it stops at the order.
    # o4 never orders: not in the funnel.
    ingest.import_frame(store, "orders", pd.DataFrame({
        "order_id": ["k1", "k2", "k3"], "customer_id": ["o1", "o2", "o3"], "ordered_at": [d(0), d(0), d(1)],
        "amount": [10.0, 20.0, 30.0], "channel": ["web", "app", "web"]}), file_name="orders")
    ingest.import_frame(store, "tickets", pd.DataFrame({
        "ticket_id": ["t1", "t2", "t3", "t4"], "customer_id": ["o1", "o2", "o3", "o4"],
        "created_at": [d(2), d(20), d(0), d(0)], "resolved_at": [d(3), d(21), d(2), d(1)]}), file_name="tickets")
    ingest.import_frame(store, "responses", pd.DataFrame({
        "response_id": ["r1"], "customer_id": ["o1"], "submitted_at": [d(4)], "nps": [3]}), file_name="responses")
    steps = ["orders: order placed", "tickets: ticket opened", "tickets: ticket resolved", "responses: survey answered"]
    assert counts(store, steps=steps) == [3, 1, 1, 1]
    by = funnel.compute_funnel(store, FunnelQuery.build(steps, by="channel"))
    assert by.groupby("channel")["customers"].apply(list).to_dict() == {"web": [2, 1, 1, 1], "app": [1, 0, 0, 0]}
    cat = funnel.step_catalog(store).set_index("step")
    # Other tables' timestamps follow the journey events, in the order of a customer's dealings.
    assert cat.index.tolist() == ["orders: order placed", "tickets: ticket opened", "tickets: ticket resolved",
                                  "responses: survey answered"]
    assert cat["customers"].tolist() == [3, 4, 4, 1] and cat["median_position"].isna().all()
    assert cat.loc["tickets: ticket opened", ["events", "customers"]].tolist() == [4, 4]
    assert cat.loc["orders: order placed", "source"] == "orders"
    assert "tickets: first reply" not in cat.index  # no ticket has a first reply time
    with pytest.raises(TouchpointError, match="No event has the step 'tickets: first reply'"):
        funnel.compute_funnel(store, FunnelQuery.build(["orders: order placed", "tickets: first reply"]))


def test_other_tables_repeating_a_customer_instant_and_step_count_once(store):
    # o1 places two orders at one instant (k1, k4), and an event carries the same step name at that instant;
    # two tickets opened together (t1, t5), resolved the next day. Each repeat is one step in every order
    # mode: strict order would otherwise see a second "order placed" or "ticket opened" between two steps.
    # o2: ticket 20 days after its order (outside the window). o3: ticket before the order. o4: no order.
    ingest.import_frame(store, "orders", pd.DataFrame({
        "order_id": ["k1", "k2", "k3", "k4"], "customer_id": ["o1", "o2", "o3", "o1"],
        "ordered_at": [d(0), d(0), d(1), d(0)], "amount": [10.0, 20.0, 30.0, 5.0]}), file_name="orders")
    ingest.import_frame(store, "tickets", pd.DataFrame({
        "ticket_id": ["t1", "t2", "t3", "t4", "t5"], "customer_id": ["o1", "o2", "o3", "o4", "o1"],
        "created_at": [d(2), d(20), d(0), d(0), d(2)], "resolved_at": [d(3), d(21), d(2), d(1), d(3)]}),
        file_name="tickets")
    load(store, [("o1", d(0), "orders: order placed", "web")])
    # The catalogue lists the step once, counted over the event and the four orders (three customers).
    cat = funnel.step_catalog(store)
    assert cat["step"].tolist() == ["orders: order placed", "tickets: ticket opened", "tickets: ticket resolved"]
    assert cat[["events", "customers", "source"]].values.tolist()[0] == [5, 3, "events"]
    steps = ["orders: order placed", "tickets: ticket opened", "tickets: ticket resolved"]
    assert counts(store, steps=steps) == [3, 1, 1]
    # Strict: o1 converts (one order, one opening, one resolution); o3's next event after its order is a
    # resolution, not an opening.
    assert counts(store, steps=steps, mode="strict") == [3, 1, 1]
    # Any order: o1 and o3 do all three within 14 days; o2 and o4 two (opened, resolved).
    assert counts(store, steps=steps, mode="any") == [4, 4, 2]
    table = funnel.compute_funnel(store, FunnelQuery.build(steps))
    assert table["median_hours"].tolist()[1:] == [48.0, 24.0]


@pytest.mark.parametrize("mode", ["sequential", "strict", "any"])
def test_a_repeated_first_step_is_counted_under_a_value_the_filters_keep(store, mode):
    # o1 places two orders at one instant, one in the app and one on the web; o2 on the web, o3 in the app.
    # Tickets follow a day later, except o2's (20 days: outside the window).
    ingest.import_frame(store, "orders", pd.DataFrame({
        "order_id": ["k1", "k2", "k3", "k4"], "customer_id": ["o1", "o1", "o2", "o3"], "ordered_at": [d(0)] * 4,
        "amount": [1.0] * 4, "channel": ["app", "web", "web", "app"]}), file_name="orders")
    ingest.import_frame(store, "tickets", pd.DataFrame({
        "ticket_id": ["t1", "t2", "t3"], "customer_id": ["o1", "o2", "o3"], "created_at": [d(1), d(20), d(1)]}),
        file_name="tickets")
    steps = ["orders: order placed", "tickets: ticket opened"]

    def by_channel(**kw):
        table = funnel.compute_funnel(store, FunnelQuery.build(steps, mode=mode, by="channel", **kw))
        return table.groupby("channel")["customers"].apply(list).to_dict()

    # Unfiltered, o1 counts under the smaller value of its two rows (app); filtered to the web, under web.
    assert by_channel() == {"app": [2, 2], "web": [1, 0]}
    assert by_channel(where={"channel": ["web"]}) == {"web": [2, 1]}
    assert by_channel(where={"channel": ["app"]}) == {"app": [2, 2]}
    dropped = funnel.dropped_customers(store, FunnelQuery.build(steps, mode=mode, by="channel",
                                                                where={"channel": ["web"]}), 2)
    assert dropped[["customer_id", "channel"]].values.tolist() == [["o2", "web"]]


def test_breakdown_groups_are_tested_against_the_rest():
    from scipy.stats import norm

    # web: 100 entered, 60 converted; app: 100, 40; kiosk: 10, 5 (too few to test).
    table = pd.DataFrame({"channel": ["web"] * 2 + ["app"] * 2 + ["kiosk"] * 2, "step": [1, 2] * 3,
                          "customers": [100, 60, 100, 40, 10, 5]})
    out = funnel.compare_groups(table, "channel").set_index("channel")
    assert out.loc["web", ["entered", "converted", "conversion_pct"]].tolist() == [100, 60, 60.0]
    # web against the other 110 (45 converted): pooled p = 105/210, z = (0.6 − 45/110) / SE.
    pooled = 105 / 210
    z = (0.6 - 45 / 110) / (pooled * (1 - pooled) * (1 / 100 + 1 / 110)) ** 0.5
    assert out.loc["web", "p_vs_rest"] == pytest.approx(2 * norm.sf(abs(z)))
    assert out.loc["web", "rest_pct"] == pytest.approx(100 * 45 / 110)
    assert bool(out.loc["kiosk", "low_n"]) and pd.isna(out.loc["kiosk", "p_adjusted"])
    # Two tests: the larger p stays, the smaller doubles at most (Benjamini–Hochberg).
    ps = sorted([out.loc["web", "p_vs_rest"], out.loc["app", "p_vs_rest"]])
    assert sorted([out.loc["web", "p_adjusted"], out.loc["app", "p_adjusted"]]) == pytest.approx([min(2 * ps[0], ps[1]), ps[1]])
    assert out["differs"].tolist() == [True, True, False]
