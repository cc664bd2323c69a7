"""AppTests of the analysis pages: on a tiny fixture whose numbers are known, from URLs with filters,
and from URLs with garbage in them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cx import demo, ingest
from cx.store import open_store
from tests.conftest import run_app

T = pd.Timestamp

# Twelve NPS answers, hand-written. October (previous 31 days): web 10, 9, 3, 2 and app 9, 9 → 4 promoters,
# 2 detractors of 6 → NPS +33.3. November: web 10, 10, 9 and app 0, 1, 8 → 3 promoters, 2 detractors of 6 → +16.7.
ANSWERS = [("web", "2024-10-02", 10), ("web", "2024-10-09", 9), ("web", "2024-10-16", 3), ("web", "2024-10-23", 2),
           ("app", "2024-10-05", 9), ("app", "2024-10-12", 9),
           ("web", "2024-11-03", 10), ("web", "2024-11-10", 10), ("web", "2024-11-17", 9),
           ("app", "2024-11-06", 0), ("app", "2024-11-13", 1), ("app", "2024-11-30", 8)]


@pytest.fixture
def app_db(app_store_path):
    store = open_store(app_store_path)
    frame = pd.DataFrame({"response_id": [f"r{i}" for i in range(len(ANSWERS))],
                          "submitted_at": [T(d) for _, d, _ in ANSWERS], "nps": [s for _, _, s in ANSWERS],
                          "channel": [c for c, _, _ in ANSWERS]})
    ingest.import_frame(store, "responses", frame, file_name="fixture")
    return app_store_path


_app = run_app  # app.py with URL parameters, then a page


def test_overview_shows_the_known_nps_and_its_unsupported_tiles(app_db):
    at = _app({"range": "custom", "from": "2024-11-01", "to": "2024-11-30"})
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["NPS"] == "+16.7"
    captions = " ".join(c.value for c in at.caption)
    assert "n = 6" in captions and "low sample" in captions
    # The change from +33.3 is not significant on six answers: no delta is claimed.
    assert "no significant change" in captions
    assert "No support tickets with a resolution time imported yet." in captions
    assert "16.7% promoters" not in captions and "50.0% promoters − 33.3% detractors = +16.7" in captions


def test_a_filtered_url_reproduces_the_view(app_db):
    at = _app({"range": "custom", "from": "2024-11-01", "to": "2024-11-30", "f.channel": "web"})
    assert {m.label: m.value for m in at.metric}["NPS"] == "+100.0"
    assert at.sidebar.multiselect(key="flt_dim_channel").value == ["web"]
    assert at.sidebar.selectbox(key="flt_range").value == "custom"


def test_garbage_in_the_url_is_ignored_with_a_notice(app_db):
    at = _app({"range": "forever", "f.channel": ["web", "<script>alert(1)</script>"], "f.planet": "Mars"})
    assert not at.exception
    notices = " ".join(i.value for i in at.sidebar.info)
    assert "forever" in notices and "planet" in notices and "not found in the data" in notices
    assert at.sidebar.multiselect(key="flt_dim_channel").value == ["web"]


def test_trends_page_from_a_link_shows_the_metric_by_channel(app_db):
    at = _app({"range": "all", "metric": "nps", "grain": "month", "by": "channel"}, page="pages/trends.py")
    assert at.selectbox(key="opt_metric").value == "nps"
    assert at.selectbox(key="opt_by").value == "channel"
    assert len(at.get("plotly_chart")) == 1
    table = at.dataframe[0].value
    web = table[table["channel"] == "web"].set_index("period")["value"].round(1).to_dict()
    assert web == {"2024-10-01": 0.0, "2024-11-01": 100.0}  # October web: 10 9 | 3 2


def test_trends_page_with_an_unknown_metric_in_the_link_falls_back(app_db):
    at = _app({"metric": "happiness"}, page="pages/trends.py")
    assert at.selectbox(key="opt_metric").value == "nps"
    assert any("happiness" in i.value for i in at.info)


def test_segments_page_compares_channels(app_db):
    at = _app({"range": "all"}, page="pages/segments.py")
    table = at.dataframe[0].value.set_index("channel")
    # All twelve: web 10 9 3 2 10 10 9 → 5 promoters, 2 detractors of 7 = +42.9; app 9 9 0 1 8 → 2 − 2 = 0.
    assert round(table.loc["web", "NPS"], 1) == 42.9
    assert round(table.loc["app", "NPS"], 1) == 0.0
    assert table["Low n"].all()


def test_settings_page_saves_a_target_and_rejects_a_bad_one(app_db):
    at = _app(page="pages/settings.py")
    at.number_input(key="settings_target_nps").set_value(40.0)
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert "Settings saved" in at.success[0].value
    from cx.settings import load_settings

    assert load_settings(open_store(app_db)).target_map["nps"] == 40.0
    at.number_input(key="settings_target_csat").set_value(150.0)
    at.button[0].click().run()
    assert "percentage from 0 to 100" in at.error[0].value
    assert load_settings(open_store(app_db)).target_map["csat"] == 80.0  # unchanged


def test_every_page_loads_on_the_demo_data(app_store_path):
    from cx import demo

    demo.load_demo(open_store(app_store_path), scale=0.2)
    at = _app()
    assert len(at.metric) == 8 and all(m.value != "–" for m in at.metric)
    for page in ("pages/trends.py", "pages/segments.py", "pages/settings.py", "pages/data.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)


def test_an_import_shows_new_numbers_without_a_restart(app_db, tmp_path):
    at = _app({"range": "custom", "from": "2024-11-01", "to": "2024-11-30"})
    assert {m.label: m.value for m in at.metric}["NPS"] == "+16.7"
    # Six more November promoters: 9 promoters, 2 detractors of 12 → +58.3.
    f = tmp_path / "more.csv"
    f.write_text("response_id,submitted_at,nps,channel\n" +
                 "".join(f"m{i},2024-11-2{i},10,web\n" for i in range(6)))
    ingest.import_file(open_store(app_db), f)
    at.run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["NPS"] == "+58.3"


def test_startup_objects_are_frozen_once():
    """app.py moves the objects its imports created out of the collector's full passes, once per process."""
    code = ("import gc; from pages import _ui; assert gc.get_freeze_count() == 0; _ui.freeze_startup_objects(); "
            "n = gc.get_freeze_count(); _ui.freeze_startup_objects(); print(n, gc.get_freeze_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parents[1])).stdout.split()
    first, second = int(out[0]), int(out[1])
    assert first > 50_000  # streamlit, plotly, ibis, pandas and cx: far more than a bare interpreter
    assert second == first


def test_the_launcher_prepares_exactly_what_a_first_overview_reads(app_db, monkeypatch):
    """``make run``'s launcher computes the default Overview before the first visit; the page then finds
    every number in the caches (the same functions and arguments), and shows them."""
    from cx import insights
    from pages import _ui

    computed = []
    real = insights.overview
    monkeypatch.setattr(insights, "overview", lambda *a, **k: computed.append(1) or real(*a, **k))
    _ui.prepare_default_overview()
    assert computed == [1]
    at = _app()  # no filters in the URL: the last 90 days of the data (to 30 Nov 2024) against the 90 before
    assert computed == [1]  # the page computed nothing again
    # 1 Sep – 30 Nov 2024 holds all twelve answers: 7 promoters, 4 detractors → NPS +25.0.
    assert {m.label: m.value for m in at.metric}["NPS"] == "+25.0"


# Headers each page's tables must show (a sample; every header is checked for code names).
READABLE = {"pages/trends.py": {"Month starting", "Observations", "Significant change"},
            "pages/segments.py": {"Channel", "Observations", "Low n"},
            "pages/journey.py": {"Step", "90% within (from previous)", "Customer", "Last step reached"},
            "pages/voice.py": {"Theme", "Scored answers"},
            "pages/churn.py": {"Month starting", "Active at start", "Churn (%)", "Cohort (month starting)",
                               "Customer", "Orders", "Predicted value (12 m)"}}


@pytest.mark.parametrize("page", sorted(READABLE))
def test_tables_show_headers_written_for_people(app_store_path, page):
    """No table shows a name from the code ("churn_pct", "customer_id", "n"): each header is written for
    people, in the frame or in the table's column configuration. A p-value column may start with "p".
    Missing values show as a dash."""
    demo.load_demo(open_store(app_store_path), scale=0.2)
    at = run_app({"range": "all"}, page=page)
    assert not at.error, [e.value for e in at.error]
    shown = []
    for frame in at.dataframe:
        config = json.loads(frame.proto.columns or "{}")
        visible = list(frame.proto.column_order) or list(frame.value.columns)
        shown += [str(config.get(c, {}).get("label", c)) for c in visible]
    raw = [h for h in shown if "_" in h or (h[:1].islower() and not h.startswith("p "))]
    assert not raw, raw
    assert READABLE[page] <= set(shown), READABLE[page] - set(shown)
    # A cell with no value shows a dash, not Streamlit's default word "None" (an editor's new rows start empty).
    assert {frame.proto.placeholder for frame in at.dataframe if not frame.proto.editing_mode} == {"—"}


def test_a_tile_without_a_value_names_its_target_without_judging_it(app_db):
    # 1 Oct 2024 holds no answer (the first is on the 2nd): no NPS to hold against the +30 target, so it is
    # neither met nor missed, and the caption says why there is no value (it said "n = 0 · low sample").
    at = _app({"range": "custom", "from": "2024-10-01", "to": "2024-10-01"})
    assert {m.label: m.value for m in at.metric}["NPS"] == "–"
    captions = [c.value for c in at.caption if "target +30.0" in c.value]
    assert captions == ["no data in this range · target +30.0"], captions


def test_churn_over_all_history_says_nobody_was_a_customer_yet(app_store_path):
    demo.load_demo(open_store(app_store_path), scale=0.2)
    at = _app({"range": "all"})
    assert {m.label: m.value for m in at.metric}["Churn rate"] == "–"
    start = at.session_state["filters"].start
    assert any(c.value.startswith(f"no customers yet on {start:%d %b %Y}, the range's first day")
               for c in at.caption), [c.value for c in at.caption]
