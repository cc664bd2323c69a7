"""The same metric code on DuckDB and on Spark (PySpark local mode) gives the same numbers,
including rows on month boundaries and a leap day."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from cx import metrics
from cx.engine import backend_for
from cx.store import TABLES, Store

from tests.test_metrics import CES_7, CSAT_5, CSAT_7, CUSTOMERS, ORDERS, RESPONSES, TICKETS

pytestmark = pytest.mark.spark

CASES = [
    ("nps", dict(grain="month", by=("channel",))),
    ("nps", dict(grain="day", start="2024-02-28", end="2024-03-01")),
    ("nps", dict(start="2024-02-01", end="2024-02-29")),
    ("csat", dict(grain="month")),
    ("ces", dict()),
    ("ces_easy", dict(by=("channel",))),
    ("responses", dict(grain="week")),
    ("comment_share", dict(grain="month")),
    ("frt_median", dict()),
    ("frt_p90", dict()),
    ("ttr_median", dict(grain="month")),
    ("ttr_mean", dict()),
    ("fcr", dict()),
    ("reopen_rate", dict()),
    ("backlog", dict(end="2024-01-02")),
    ("backlog", dict(grain="month")),
    ("revenue", dict(grain="month")),
    ("orders", dict(grain="quarter")),
    ("aov", dict()),
    ("purchase_frequency", dict()),
    ("clv_historical", dict(grain="year")),
    ("churn_rate", dict(grain="month", start="2024-01-01", end="2024-03-31")),
    ("retention_rate", dict(start="2024-02-01", end="2024-02-29")),
]


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Java is not installed (make test installs openjdk-17-jre-headless)")
    import ibis
    from pyspark.sql import SparkSession

    from cx import ingest

    store = Store(tmp_path_factory.mktemp("parity") / "p.duckdb")
    for kind, frame in [("responses", RESPONSES), ("responses", CSAT_5), ("responses", CSAT_7),
                        ("responses", CES_7), ("tickets", TICKETS), ("orders", ORDERS), ("customers", CUSTOMERS)]:
        ingest.import_frame(store, kind, frame, file_name=kind)
    # Time-zone edge rows: local times just after midnight on the 1st in Paris and São Paulo, and an
    # offset timestamp, land in UTC in the month before (or after) their local month on both engines.
    tz_rows = tmp_path_factory.mktemp("tz") / "tz.csv"
    tz_rows.write_text("response_id,submitted_at,nps,channel\n"
                       "z1,2024-03-01T00:30:00+01:00,10,web\n"   # 29 Feb 23:30 UTC (leap day)
                       "z2,2024-01-31T22:30:00-03:00,0,app\n")   # 1 Feb 01:30 UTC
    ingest.import_file(store, tz_rows)
    spark = (SparkSession.builder.master("local[1]").appName("touchpoint-parity")
             .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.shuffle.partitions", "1").config("spark.driver.memory", "1g")
             .getOrCreate())
    # The canonical tables, moved into Spark with their types, as a user's warehouse would hold them.
    with store.cursor() as cur:
        for table in TABLES:
            arrow = cur.execute(f"SELECT * FROM {table}").to_arrow_table()
            spark.createDataFrame(arrow).createOrReplaceTempView(table)
    yield backend_for(store), ibis.pyspark.connect(spark)
    spark.stop()


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_duckdb_and_spark_agree(engines, name, kw):
    duck, spark = engines
    a = metrics.query_metric(duck, name, **kw)
    b = metrics.query_metric(spark, name, **kw)
    assert len(a) > 0
    if "period" in a:
        a["period"] = pd.to_datetime(a["period"]).astype("datetime64[us]")
        b["period"] = pd.to_datetime(b["period"]).astype("datetime64[us]")
    pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False, rtol=1e-9, atol=1e-9)
