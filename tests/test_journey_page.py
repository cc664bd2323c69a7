"""AppTests of the Journey page on the hand-written journeys of tests/test_funnel.py (whose counts
are worked out there, customer by customer), and on the demo data."""

from __future__ import annotations

import pytest

from cx.store import open_store
from tests.conftest import run_app
from tests.test_funnel import load

PAGE = "pages/journey.py"


@pytest.fixture
def journey_db(app_store_path):
    load(open_store(app_store_path))
    return app_store_path


def _funnel_page(query=None):
    at = run_app({"range": "all", **(query or {})}, page=PAGE)
    at.multiselect(key="journey_steps").set_value(["A", "B", "C"]).run()
    assert not at.exception, at.exception
    return at


def test_journey_page_builds_the_funnel_in_every_order(journey_db):
    at = _funnel_page()
    assert at.title[0].value == "Journey"
    table = at.dataframe[0].value
    assert table["Step"].tolist() == ["A", "B", "C"]
    assert table["Customers"].tolist() == [10, 9, 6]
    assert table["Median time from previous"].tolist() == ["–", "24.0 h", "24.0 h"]
    assert any("60.0% of the customers who did “A” went on to “C”" in c.value for c in at.caption)
    at.radio(key="opt_funnel_mode").set_value("strict").run()
    assert at.dataframe[0].value["Customers"].tolist() == [10, 6, 4]
    at.radio(key="opt_funnel_mode").set_value("any").run()
    assert at.dataframe[0].value["Customers"].tolist() == [11, 11, 7]
    # Funnel chart and the cohort trend.
    assert len(at.get("plotly_chart")) == 2


def test_breakdown_times_and_dropped_customers(journey_db):
    at = _funnel_page()
    at.selectbox(key="opt_funnel_by").set_value("channel").run()
    table = at.dataframe[0].value
    assert table.groupby("Channel")["Customers"].apply(list).to_dict() == {"app": [5, 4, 3], "web": [5, 5, 3]}
    assert any("No channel converts significantly differently" in c.value for c in at.caption)
    at.toggle(key="journey_show_times").set_value(True).run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 3
    assert any("6 customers reached the step" in c.value for c in at.caption)
    at.selectbox(key="journey_drop_step").set_value(3).run()
    dropped = at.dataframe[-1].value
    assert dropped["Customer"].tolist() == ["c3", "c5", "c9"]
    assert dropped["Channel"].tolist() == ["web", "web", "app"]


def test_fewer_than_two_steps_asks_for_more(journey_db):
    at = _funnel_page()
    at.multiselect(key="journey_steps").set_value([]).run()
    assert not at.exception, at.exception
    assert any("at least two steps" in i.value for i in at.info)
    at.multiselect(key="journey_steps").set_value(["B"]).run()
    assert any("at least two steps" in i.value for i in at.info)
    # A step that left the data (a batch removed) leaves the selection instead of breaking the page.
    at.session_state["journey_steps"] = ["Gone", "A", "C"]
    at.run()
    assert not at.exception, at.exception
    assert at.multiselect(key="journey_steps").value == ["A", "C"]


def test_a_link_reproduces_the_funnel(journey_db):
    at = run_app({"range": "all", "steps": ["A", "C", "Nope"], "funnel_mode": "strict", "funnel_window": "30d",
                  "funnel_by": "channel"}, page=PAGE)
    assert at.multiselect(key="journey_steps").value == ["A", "C"]
    assert any("'Nope'" in i.value for i in at.info)
    assert at.radio(key="opt_funnel_mode").value == "strict"
    assert at.selectbox(key="opt_funnel_window").value == "30d"
    table = at.dataframe[0].value
    # Strict A → C: only c3 goes straight from A to C. c8's two attempts both stop at A, so the earlier,
    # web one counts: web c1–c5, c8; app c6, c7, c9, c11.
    assert table.groupby("Channel")["Customers"].apply(list).to_dict() == {"app": [4, 0], "web": [6, 1]}


def test_sidebar_dates_and_filters_reach_the_funnel(journey_db):
    at = _funnel_page({"range": "custom", "from": "2024-03-02", "to": "2024-03-31"})
    assert at.dataframe[0].value["Customers"].tolist() == [3, 2, 2]
    at = _funnel_page({"f.channel": "web"})
    assert at.dataframe[0].value["Customers"].tolist() == [7, 6, 3]


def test_journey_page_without_events_says_what_to_import(app_store_path):
    import pandas as pd

    from cx import ingest

    frame = pd.DataFrame({"response_id": ["r1"], "submitted_at": [pd.Timestamp("2024-01-01")], "nps": [9]})
    ingest.import_frame(open_store(app_store_path), "responses", frame, file_name="one")
    at = run_app({"range": "all"}, page=PAGE)
    assert any("No journey events yet" in i.value for i in at.info)


def test_journey_page_on_the_demo_data(app_store_path):
    from cx import demo

    demo.load_demo(open_store(app_store_path), scale=0.2)
    at = run_app({"range": "all"}, page=PAGE)
    table = at.dataframe[0].value
    assert table["Step"].tolist()[:2] == ["Visited site", "Viewed product"]
    assert table["Customers"].is_monotonic_decreasing


def test_touchpoint_map_tab_shows_the_grid_and_the_pain_point(app_store_path):
    from tests.test_journey import load_answers

    load_answers(open_store(app_store_path))  # the hand-counted answers of tests/test_journey.py
    at = run_app({"range": "all"}, page=PAGE)
    assert any("No journey events yet" in i.value for i in at.info)  # the funnel tab's empty state
    assert at.radio(key="journey_map_view").value == "nps"
    assert len(at.get("plotly_chart")) == 1
    pains = [m.value for m in at.markdown if "▼" in m.value]
    assert len(pains) == 2 and "Support · Chat: NPS -50.0" in pains[0]
    at.radio(key="journey_map_view").set_value("ces").run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 1


def test_key_drivers_tab_ranks_the_known_driver_first(app_store_path):
    import json

    from tests.test_drivers import shop

    shop(open_store(app_store_path))  # the synthetic shop of tests/test_drivers.py: slow tickets make detractors
    at = run_app({"range": "all"}, page=PAGE)
    assert not at.exception, at.exception
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    bars = next(c for c in charts if "explained difference" in c["layout"]["title"]["text"])
    labels = bars["data"][0]["y"]
    assert labels[-1] == "A ticket took over 3 days to resolve · -100 NPS pts · n 100"  # the longest bar, at the top
    assert any("Based on 400 customers" in c.value for c in at.caption)
    assert any("Shapley decomposition" in c.value for c in at.caption)


def test_touchpoint_map_sentiment_view(app_store_path):
    from tests.test_journey import load_comments

    load_comments(open_store(app_store_path))  # hand-labelled comments of tests/test_journey.py
    at = run_app({"range": "all"}, page=PAGE)
    at.radio(key="journey_map_view").set_value("sentiment").run()
    assert not at.exception, at.exception
    import json

    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    heat = next(c for c in charts if c["layout"]["title"]["text"].startswith("Negative comments (%)"))
    grid = dict(zip(heat["data"][0]["y"], heat["data"][0]["text"]))
    cols = heat["data"][0]["x"]
    support = dict(zip(cols, grid["Support"]))
    assert support["Chat"] == "<b>▼ 75%</b><br>n 40"
    assert support["Email"] == "<b>100%</b><br>n 5 · low n"
    assert dict(zip(cols, grid["Purchase"]))["Checkout"] == "<b>▲ 25%</b><br>n 40"
    assert dict(zip(cols, grid["All journey stages"]))["All touchpoints"] == "<i>57%</i><br>n 115"
    pains = [m.value for m in at.markdown if "▼" in m.value]
    assert any("Support · Chat: 75.0% of comments negative" in p for p in pains)
    at.radio(key="journey_map_sentiment_measure").set_value("mean").run()
    assert not at.exception, at.exception
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    heat = next(c for c in charts if c["layout"]["title"]["text"].startswith("Mean sentiment"))
    grid = dict(zip(heat["data"][0]["y"], heat["data"][0]["text"]))
    support = dict(zip(heat["data"][0]["x"], grid["Support"]))
    # Chat: 30 × −0.8 + 10 × 0 over 40; the whole map: (−5 + 15 − 24 − 5 − 8) / 115.
    assert support["Chat"] == "<b>▼ -0.60</b><br>n 40"
    assert dict(zip(heat["data"][0]["x"], grid["All journey stages"]))["All touchpoints"] == "<i>-0.23</i><br>n 115"
    assert any("Mean sentiment of each cell's scored comments" in c.value for c in at.caption)


def test_key_drivers_tab_weighs_comment_themes(app_store_path):
    import json

    from tests.test_drivers import shop

    shop(open_store(app_store_path), comments=True)  # tests/test_drivers.py: late-delivery comments cost 100 points
    at = run_app({"range": "all"}, page=PAGE)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    bars = next(c for c in charts if "explained difference" in c["layout"]["title"]["text"])
    labels = bars["data"][0]["y"]
    assert labels[-1] == "Mentioned: late delivery · -100 NPS pts · n 100"
    assert "Mentioned: packaging · +0 NPS pts · n 80" in labels
    assert any("“Mentioned: …” bars are comment themes" in c.value for c in at.caption)


def test_sentiment_view_says_when_comments_wait_for_analysis(app_store_path):
    from tests.test_journey import load_comments

    store = open_store(app_store_path)
    load_comments(store)
    with store.transaction() as cur:
        cur.execute("DELETE FROM comment_scores WHERE id IN ('v0', 'v1')")  # as if imported with voice deferred
    at = run_app({"range": "all"}, page=PAGE)
    at.radio(key="journey_map_view").set_value("sentiment").run()
    assert not at.exception, at.exception
    # 126 comments (125 labelled, the edited one); not analysed: the two deleted scores and the edited
    # comment (its score was made from its old text).
    assert any("3 of 126 comments have not been analysed" in i.value for i in at.info)
