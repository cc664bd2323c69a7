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
    element = next(d for d in at.dataframe if "Value at risk" in d.value)
    risk = element.value
    assert risk["Value at risk"].is_monotonic_decreasing and len(risk) > 0
    # What the customers told us is shown, a missing answer as a dash (Streamlit's own default is "None").
    assert {"Latest NPS", "Latest CSAT", "Open tickets", "Last comment"} <= set(risk.columns)
    assert risk["Latest NPS"].isna().any() and element.proto.placeholder == "—"
    # The at-risk list has one CSV and one XLSX download (it showed a second XLSX button beside the shared pair).
    assert not at.toggle(key="churn_detractors").proto.disabled
    labels = [b.label for b in at.get("download_button") if "churn_risk" in b.proto.id]
    assert sorted(labels) == ["Download CSV", "Download XLSX"], labels


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
    assert {m.label: m.value for m in at.metric}["Marked as churned"] == "25.0%"  # 10 of 40
    assert "Customer lifetime value needs **orders**" in text
    table = next(d.value for d in at.dataframe if "Group" in d.value).set_index("Group")
    assert table.loc["Month-to-month", "Lost"] == 10 and table.loc["One year", "Lost"] == 0


def test_an_empty_store_says_what_to_import(app_store_path):
    open_store(app_store_path)
    at = run_app(page=PAGE)
    assert "import **customers** with signup and churn dates" in at.info[0].value
    assert "**orders**" in at.info[0].value


def test_orders_only_use_inactivity_and_still_give_value(app_store_path):
    store = open_store(app_store_path)
    # Twelve buyers: ten buy every week from August, two bought weekly in January and stopped.
    rows = [(f"c{i}-{k}", f"c{i}", pd.Timestamp("2024-08-01") + pd.Timedelta(days=7 * k), 20.0 + i)
            for i in range(10) for k in range(9)]
    rows += [(f"d{j}-{k}", f"d{j}", pd.Timestamp("2024-01-01") + pd.Timedelta(days=7 * k), 100.0)
             for j in range(2) for k in range(9)]
    frame = pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "amount"])
    ingest.import_frame(store, "orders", frame, file_name="orders")
    at = run_app({"range": "all", "inactive": "90"}, page=PAGE)
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="opt_source").value == "orders"
    text = _texts(at)
    assert "A customer is lost once 90 days pass after their last order" in text
    assert "No survey answers with customer IDs yet" in text
    # Half-way through the data only d0 and d1 had bought: the holdout check says so and what to do.
    assert "Too few customers had bought by" in text and "Choose a later date" in text
    risk = next(d.value for d in at.dataframe if "Value at risk" in d.value)
    assert set(risk["Customer"][:2]) == {"d0", "d1"}  # the two who stopped buying lead the list
    # No answers, comments or tickets are imported: the list leaves those columns out and says so (they showed
    # "None" in every row, and "0" open tickets as if tickets were tracked).
    assert not {"Latest NPS", "Latest CSAT", "Open tickets", "Last comment"} & set(risk.columns)
    # With no NPS answers there are no detractors to pick: the switch is off and says why.
    switch = at.toggle(key="churn_detractors")
    assert switch.proto.disabled and "NPS" in switch.proto.help
    # Left on from before the answers were removed, it shows off: the list is not narrowed to detractors.
    at.session_state["churn_detractors"] = True
    at.run()
    assert at.toggle(key="churn_detractors").value is False
    assert len(next(d.value for d in at.dataframe if "Value at risk" in d.value)) == len(risk)
    assert "(— while fewer than half have left so far)" in _texts(at)
    assert ("Not shown, as none of these customers has one: an NPS answer, a CSAT answer, a comment or a support "
            "ticket." in text)
    survival = next(d.value for d in at.dataframe if "Group" in d.value).set_index("Group")
    # With a 90-day threshold only d0 and d1 (last order 26 Feb, data to 26 Sep) are lost.
    assert survival.loc["All customers", ["Customers", "Lost"]].tolist() == [12, 2]


def test_the_shared_segment_filter_narrows_survival_and_the_at_risk_list(app_store_path):
    store = open_store(app_store_path)
    demo.load_demo(store, scale=0.2)
    with store.cursor() as cur:
        smb = cur.execute("SELECT count(*) FROM customers WHERE segment = 'SMB'").fetchone()[0]
    at = run_app({"range": "all", "f.segment": "SMB"}, page=PAGE)
    assert not at.error, [e.value for e in at.error]
    survival = next(d.value for d in at.dataframe if "Group" in d.value)
    assert survival["Customers"].sum() == smb
    at.toggle(key="churn_detractors").set_value(True).run()
    assert not at.exception, at.exception
    risk = next(d.value for d in at.dataframe if "Latest NPS" in d.value)
    assert len(risk) > 0 and (risk["Latest NPS"] <= 6).all()
    with store.cursor() as cur:
        segments = cur.execute("SELECT DISTINCT segment FROM customers WHERE list_contains(?, customer_id)",
                               [risk["Customer"].tolist()]).fetchall()
    assert segments == [("SMB",)]
