"""cx.periods: rows grouped by the key of their period land in the period ``date_trunc`` gives them, at
every boundary (leap day, year end, quarter end, Sunday to Monday, the last microsecond), NULL apart."""

from __future__ import annotations

from datetime import datetime

import ibis
import pandas as pd
import pytest

from cx import periods

ROWS = [  # (timestamp, channel)
    ("2024-02-29 23:59:59.999999", "web"),  # leap day, last microsecond: February
    ("2024-03-01 00:00:00", "web"),
    ("2024-03-31 12:00:00", "app"),  # Sunday, last day of Q1
    ("2024-04-01 00:00:00", "app"),  # Monday, first day of Q2
    ("2024-12-31 23:59:59", "web"),
    ("2025-01-01 00:00:00", "web"),
    (None, "web"),
]
# Each grain's period start for each row above, worked out by hand (weeks start on Monday).
EXPECTED = {
    "day": ["2024-02-29", "2024-03-01", "2024-03-31", "2024-04-01", "2024-12-31", "2025-01-01", None],
    "week": ["2024-02-26", "2024-02-26", "2024-03-25", "2024-04-01", "2024-12-30", "2024-12-30", None],
    "month": ["2024-02-01", "2024-03-01", "2024-03-01", "2024-04-01", "2024-12-01", "2025-01-01", None],
    "quarter": ["2024-01-01", "2024-01-01", "2024-01-01", "2024-04-01", "2024-10-01", "2025-01-01", None],
    "year": ["2024-01-01", "2024-01-01", "2024-01-01", "2024-01-01", "2024-01-01", "2025-01-01", None],
}


def _rows(frame: pd.DataFrame) -> list[tuple]:
    return sorted(((c, pd.Timestamp(p), int(n)) for c, p, n in frame.itertuples(index=False)),
                  key=lambda r: (r[0], pd.isna(r[1]), r[1] if not pd.isna(r[1]) else pd.Timestamp(0)))


@pytest.fixture(scope="module")
def table():
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE t (ts TIMESTAMP, channel VARCHAR)")
    con.executemany("INSERT INTO t VALUES (CAST(? AS TIMESTAMP), ?)", ROWS)
    return ibis.duckdb.from_connection(con).table("t")


@pytest.mark.parametrize("grain", periods.GRAINS)
def test_rows_are_counted_in_their_period(table, grain):
    t = table
    got = periods.group_by_period(t, [t.channel], t.ts, grain, {"n": t.count()}).execute()
    assert list(got.columns) == ["channel", "period", "n"]
    expected = pd.DataFrame({"channel": [r[1] for r in ROWS], "period": EXPECTED[grain]})
    expected = expected.groupby(["channel", "period"], dropna=False).size().rename("n").reset_index()
    assert _rows(got) == _rows(expected)
    # The same frame as grouping by the engine's date_trunc.
    code = {"day": "D", "week": "W", "month": "M", "quarter": "Q", "year": "Y"}[grain]
    trunc = t.group_by([t.channel, t.ts.truncate(code).name("period")]).aggregate(n=t.count()).execute()
    by = ["channel", "period"]
    pd.testing.assert_frame_equal(got.sort_values(by).reset_index(drop=True),
                                  trunc.sort_values(by).reset_index(drop=True))


def test_a_period_start_is_a_timestamp(table):
    t = table
    got = periods.group_by_period(t, [], t.ts, "month", {"n": t.count()}).execute()
    assert str(got["period"].dtype).startswith("datetime64")
    assert datetime(2024, 2, 1) in set(got["period"].dropna())


def test_an_unknown_grain_is_refused(table):
    with pytest.raises(ValueError):
        periods.key(table.ts, "fortnight")


@pytest.mark.parametrize("grain", ["month", "quarter", "year"])
def test_a_year_before_1_ad_has_its_period_start(grain):
    # The key is negative there; SQL's % keeps its sign, so the month is taken from floor division.
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE bc AS SELECT CAST('0044-03-15 (BC)' AS TIMESTAMP) AS ts")
    t = ibis.duckdb.from_connection(con).table("bc")
    got = periods.group_by_period(t, [], t.ts, grain, {"n": t.count()})
    code = {"month": "M", "quarter": "Q", "year": "Y"}[grain]
    expected = t.group_by(t.ts.truncate(code).name("period")).aggregate(n=t.count())
    # As text: pandas and Python's datetime stop at year 1.
    assert [e.select(p=e.period.cast("string"), n=e.n).execute().values.tolist() for e in (got, expected)] == \
        [[["0044-03-01 (BC) 00:00:00" if grain == "month" else "0044-01-01 (BC) 00:00:00", 1]]] * 2
