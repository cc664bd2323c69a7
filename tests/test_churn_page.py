"""AppTests of the Churn & value page: on the demo data, on tenure-only customers (Telco-like), on orders
only (CDNOW-like) and on an empty store."""

from __future__ import annotations

import pandas as pd

from cx import demo, ingest
from cx.store import open_store
from tests.conftest import run_app

PAGE = "pages/churn.py"


def _texts(at) -> str:
    return " ".join([*(c.value for c in at.caption), *(i.value for i in at.info), *(m.value for m in at.markdown)])


def test_churn_page_on_the_demo_data(app_store_path):
    demo.load_demo(open_store(app_store_path), scale=0.2)
    at = run_app({"range": "all"}, page=PAGE)
    assert not at.error, [e.value for e in at.error]
    labels = {m.label for m in at.metric}
    assert {"Churn, last complete month", "Customers modelled", "Value at risk"} <= labels
    charts = at.get("plotly_chart")
    # churn trend, cohort heatmap, retention curve, month-1 trend, KM, CLV histogram, historical bar,
    # holdout tracking and by-frequency bars, value at risk by NPS
    assert len(charts) == 10
    text = _texts(at)
    assert "Lifetimes come from customers' signup and churn dates" in text
    assert "log-rank test" in text
    assert "Value at risk from detractors" in text
    survival = next(d.value for d in at.dataframe if "Group" in d.value)
    assert set(survival["Group"]) == {"Basic", "Plus", "Premium"}  # split by plan by default
    assert survival["Customers"].sum() == 1000  # every demo customer at scale 0.2
    risk = next(d.value for d in at.dataframe if "Value at risk" in d.value)
    assert risk["Value at risk"].is_monotonic_decreasing and len(risk) > 0


def test_survival_by_nps_category_from_a_link(app_store_path):
    demo.load_demo(open_store(app_store_path), scale=0.2)
    at = run_app({"range": "all", "split": "nps_category"}, page=PAGE)
    assert at.selectbox(key="opt_split").value == "nps_category"
    table = next(d.value for d in at.dataframe if "Group" in d.value)
    assert "Detractor (0–6)" in set(table["Group"])
    assert "customers stay" in _texts(at)


def test_tenure_only_customers_show_survival_and_explain_the_missing_trend(app_store_path):
    store = open_store(app_store_path)
    # 40 subscribers: 20 monthly (half leave within a year), 20 yearly (none leave).
    frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(40)],
                          "tenure": [1 + i % 20 for i in range(40)],
                          "churned": [i < 20 and i % 2 == 0 for i in range(40)],
                          "plan": ["Month-to-month"] * 20 + ["One year"] * 20, "tenure_unit": "month"})
    ingest.import_frame(store, "customers", frame, file_name="telco-like")
    at = run_app(page=PAGE)
    assert not at.error, [e.value for e in at.error]
    text = _texts(at)
    assert "no calendar trend" in text
    assert "Customer lifetime value needs **orders**" in text
    table = next(d.value for d in at.dataframe if "Group" in d.value).set_index("Group")
    assert table.loc["Month-to-month", "Lost"] == 10 and table.loc["One year", "Lost"] == 0


def test_an_empty_store_says_what_to_import(app_store_path):
    open_store(app_store_path)
    at = run_app(page=PAGE)
    assert "import **customers** with signup and churn dates" in at.info[0].value
    assert "**orders**" in at.info[0].value
