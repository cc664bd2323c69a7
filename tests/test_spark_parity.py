"""The same metric code on DuckDB and on Spark (PySpark local mode, selected through
``TOUCHPOINT_ENGINE`` as a user would) gives the same numbers: every metric by month and one
breakdown, every metric in total, other grains around the leap day, filters and period comparisons.

The fixture is the one of ``test_metrics`` (rows in the last and first second of a month, on the
leap day) plus time-zone edge rows: moments that are in one month locally and in another in UTC,
stored as naive UTC as the import stores them. The Spark JVM runs in UTC+14 (Kiritimati) so that a
result that leaned on the machine's time zone instead of the session's UTC would show.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from cx import engine, metrics
from cx.store import TABLES, Store

from tests.test_metrics import FIXTURE, fill, insert

pytestmark = [
    pytest.mark.spark,
    # PySpark 4.0 passes copy= to pandas 3 when it converts frames: harmless, and not ours to change.
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

T = pd.Timestamp
TZ_EDGE_RESPONSES = pd.DataFrame([
    # 00:30 on 1 March in Paris (UTC+1) is 23:30 on the leap day in UTC: February.
    ("z1", T("2024-02-29 23:30"), 10, 4, 1, 5, "web"),
    # 22:30 on 31 January in São Paulo (UTC−3) is 01:30 on 1 February in UTC: February.
    ("z2", T("2024-02-01 01:30"), 0, 2, 1, 5, "app"),
    # 05:00 on New Year's Day in Kiritimati (UTC+14) is 15:00 on 31 December 2023 in UTC: December, 2023.
    ("z3", T("2023-12-31 15:00"), 9, 5, 1, 5, "web"),
], columns=["response_id", "submitted_at", "nps", "csat", "csat_min", "csat_max", "channel"])
TZ_EDGE_ORDERS = pd.DataFrame([
    # 23:30 on 31 March in New York (UTC−4) is 03:30 on 1 April in UTC: the second quarter.
    ("oz", "c9", T("2024-04-01 03:30"), 25.0, "completed", "web"),
], columns=["order_id", "customer_id", "ordered_at", "amount", "status", "channel"])

# Tickets answered and solved after odd numbers of seconds: hours with many decimals (Spark once divided a
# DECIMAL number of seconds and rounded the hours to six places).
ODD_SECOND_TICKETS = pd.DataFrame([
    (f"ts{i}", T("2024-02-03 10:17:43") + pd.Timedelta(minutes=37 * i),
     T("2024-02-03 10:17:43") + pd.Timedelta(minutes=37 * i, seconds=3607 * i + 1),
     T("2024-02-03 10:17:43") + pd.Timedelta(minutes=37 * i, seconds=86_413 * i + 7), "low" if i % 2 else "high")
    for i in range(1, 8)], columns=["ticket_id", "created_at", "first_response_at", "resolved_at", "priority"])

BREAKDOWN = {"responses": "channel", "tickets": "priority", "orders": "channel", "customers": "plan"}
RANGE = dict(start="2023-12-01", end="2024-04-30")

CASES = [(name, dict(grain="month", by=(BREAKDOWN[m.table],), **RANGE)) for name, m in metrics.REGISTRY.items()]
CASES += [(name, {}) for name in metrics.REGISTRY]
CASES += [
    ("nps", dict(grain="day", start="2024-02-28", end="2024-03-01")),
    ("csat", dict(grain="week", start="2024-01-29", end="2024-03-03")),
    ("revenue", dict(grain="quarter")),
    ("clv_historical", dict(grain="year", by=("channel",))),
    ("responses", dict(grain="year")),
    ("nps", dict(where={"plan_tier": ["silver"], "channel": ["web", "app"]}, start="2024-01-01", end="2024-02-29")),
    ("frt_mean", dict(where={"agent_replies": ["1"]})),
    ("backlog", dict(end="2024-01-31", by=("priority",))),
    ("churn_rate", dict(grain="quarter", by=("plan",))),
    # Quantiles over no rows: one row, n = 0, no value (Spark rejects indexing an empty array).
    ("frt_median", dict(start="2030-01-01", end="2030-01-31")),
    ("ttr_p90", dict(where={"priority": ["no such priority"]})),
]
COMPARISONS = [("nps", "previous"), ("csat", "previous"), ("ces", "previous"), ("ttr_median", "previous"),
               ("orders", "year"), ("churn_rate", "previous")]


@pytest.fixture(scope="module")
def parity_store(tmp_path_factory):
    """The fixture rows in a DuckDB store (the same rows go to Spark in ``engines``)."""
    store = fill(Store(tmp_path_factory.mktemp("parity") / "p.duckdb"))
    insert(store, "responses", TZ_EDGE_RESPONSES)
    insert(store, "orders", TZ_EDGE_ORDERS)
    insert(store, "tickets", ODD_SECOND_TICKETS)
    yield store
    store.close()


@pytest.fixture(scope="module")
def engines(tmp_path_factory, parity_store):
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Java is not installed (make test installs openjdk-17-jre-headless)")
    from pyspark.sql import SparkSession

    store = parity_store
    spark = (SparkSession.builder.master("local[1]").appName("touchpoint-parity")
             .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.shuffle.partitions", "1").config("spark.default.parallelism", "1")
             .config("spark.driver.memory", "1g")
             .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("spark-warehouse")))
             .config("spark.driver.extraJavaOptions", "-Duser.timezone=Pacific/Kiritimati")
             .getOrCreate())
    # The canonical tables (with the analyst's extra dimension), moved into Spark with their types, as
    # a user's warehouse would hold them.
    with store.cursor() as cur:
        for table in TABLES:
            spark.createDataFrame(cur.execute(f"SELECT * FROM {table}").to_arrow_table()) \
                .createOrReplaceTempView(table)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOUCHPOINT_ENGINE", "spark://local[1]")
        spark_backend = engine.backend_for()
    assert spark_backend._session is spark
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("TOUCHPOINT_ENGINE", raising=False)
        duck_backend = engine.backend_for(store)
    yield duck_backend, spark_backend
    engine._SPARK.clear()
    spark.stop()


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert len(a) > 0
    if "period" in a:
        a["period"] = pd.to_datetime(a["period"]).astype("datetime64[us]")
        b["period"] = pd.to_datetime(b["period"]).astype("datetime64[us]")
    pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_duckdb_and_spark_agree(engines, name, kw):
    duck, spark = engines
    same(metrics.query_metric(duck, name, **kw), metrics.query_metric(spark, name, **kw))


@pytest.mark.parametrize("name,compare", COMPARISONS)
def test_period_comparisons_agree(engines, name, compare):
    duck, spark = engines
    kw = dict(start="2024-02-01", end="2024-02-29", compare=compare, by=(BREAKDOWN[metrics.REGISTRY[name].table],))
    same(metrics.compare_metric(duck, name, **kw), metrics.compare_metric(spark, name, **kw))


def test_time_zone_edge_rows_land_in_their_utc_month_on_spark(engines):
    _, spark = engines
    df = metrics.query_metric(spark, "nps", grain="month", by=("channel",), **RANGE)
    got = {(p.strftime("%Y-%m"), c): n for p, c, n in zip(df["period"], df["channel"], df["n"])}
    # web: z3 in December; r1–r5 in January; z1 in February. app: z2 and r6–r9 in February.
    assert got == {("2023-12", "web"): 1, ("2024-01", "web"): 5, ("2024-02", "web"): 1, ("2024-02", "app"): 5}
    assert metrics.query_metric(spark, "revenue", grain="quarter")["value"].tolist() == [220.0, 25.0]


@pytest.mark.parametrize("table", ["responses", "tickets", "orders"])
def test_metrics_sharing_statements_agree(engines, table):
    """The shared statements (each metric's rows a FILTER; a quantile's breakdowns from one unnested,
    sorted list per group) give Spark's numbers too."""
    duck, spark = engines
    names = [n for n, m in metrics.REGISTRY.items() if m.table == table]
    dims = {"responses": ["channel", "plan_tier"], "tickets": ["priority"], "orders": ["channel"]}[table]
    kw = dict(start="2024-02-01", end="2024-02-29", compare="previous")
    d_every = metrics.compare_metrics_by_each(duck, names, dims=dims, **kw)
    s_every = metrics.compare_metrics_by_each(spark, names, dims=dims, **kw)
    for name in names:
        for d in [None, *dims]:
            if len(d_every[name][d]):
                same(d_every[name][d], s_every[name][d])
    d_month = metrics.query_metrics(duck, names, grain="month", **RANGE)
    s_month = metrics.query_metrics(spark, names, grain="month", **RANGE)
    for name in names:
        same(d_month[name], s_month[name])


def test_the_overview_tiles_and_changes_agree(engines):
    """The Overview's tiles (values, intervals, changes, sparklines) and what-changed list, computed through
    the shared statements, are the same on Spark."""
    from datetime import date

    from cx import insights
    from cx.filters import Filters
    from cx.settings import Settings

    duck, spark = engines
    f = Filters(start=date(2024, 2, 1), end=date(2024, 2, 29))
    settings = Settings(min_n=1)
    d_tiles, d_changes = insights.overview(duck, None, f, settings, limit=40, available={})
    s_tiles, s_changes = insights.overview(spark, None, f, settings, limit=40, available={})
    assert [k.metric for k in d_tiles] == [k.metric for k in s_tiles] == list(insights.KPI_METRICS)
    for a, b in zip(d_tiles, s_tiles):
        assert a.n == b.n, a.metric
        for field in ("value", "ci_low", "ci_high", "value_before", "p_value"):
            x, y = getattr(a, field), getattr(b, field)
            assert (x is None and y is None) or x == pytest.approx(y, rel=1e-9, abs=1e-9), (a.metric, field, x, y)
        assert [p for p, _ in a.sparkline] == [p for p, _ in b.sparkline], a.metric
        assert [v for _, v in a.sparkline] == pytest.approx([v for _, v in b.sparkline], rel=1e-9), a.metric
    assert any(k.sparkline for k in d_tiles) and any(k.value_before is not None for k in d_tiles)
    assert [(c.metric, c.dimension, c.segment) for c in d_changes] == [(c.metric, c.dimension, c.segment)
                                                                        for c in s_changes]


def test_the_app_reads_rows_dates_filter_values_and_availability_from_the_engine(engines, parity_store,
                                                                                  monkeypatch):
    """With the tables in Spark, what the sidebar and the empty states need comes from the engine's
    tables, and equals what the store computes for the same rows in its own."""
    from cx import external, filters, insights

    _, spark = engines
    monkeypatch.delenv("TOUCHPOINT_ENGINE", raising=False)
    want_dims = filters.dimension_values(parity_store)
    want_span = filters.data_date_span(parity_store)
    want_ok = {n: r is None for n, r in insights.metric_availability(parity_store).items()}
    monkeypatch.setenv("TOUCHPOINT_ENGINE", "spark://local[1]")
    assert filters.dimension_values(None) == want_dims and "plan_tier" in want_dims
    assert filters.data_date_span(None) == want_span
    assert external.row_counts(spark) == parity_store.row_counts()
    got = insights.metric_availability(None)
    assert {n: r is None for n, r in got.items()} == want_ok
    assert all("engine" in r for r in got.values() if r)


def test_the_overview_shows_the_engine_s_data_with_an_empty_local_store(engines, app_store_path, monkeypatch):
    """A user who moved the tables to Spark: the local store is empty, the Overview still shows the
    engine's numbers (the sidebar's dates and filters and the tiles all come from the engine)."""
    from tests.conftest import run_app

    monkeypatch.setenv("TOUCHPOINT_ENGINE", "spark://local[1]")
    at = run_app(query={"range": "custom", "from": "2024-02-01", "to": "2024-02-29"})
    assert not at.exception, at.exception
    assert not any("No data yet" in i.value for i in at.info)
    tiles = {m.label: m.value for m in at.metric}
    # February 2024: r6–r9 (10, 9, 9, 7) and the time-zone edge rows z1 (10) and z2 (0): 4 promoters and
    # 1 detractor of 6 answers.
    assert tiles["NPS"] == "+50.0"
    assert "Data in the engine" in " ".join(c.value for c in at.sidebar.caption)
