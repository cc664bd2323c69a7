"""AppTests of the Voice of the customer page: known numbers on a hand-written fixture, markup shown
literally, filters, theme rules saved from the page, the empty state, and the demo data."""

from __future__ import annotations

import pandas as pd
import pytest

from cx import ingest, voice
from cx.store import open_store
from tests.conftest import run_app

NASTY = "<script>alert('x')</script> **big** <b>late</b> delivery"
ANSWERS = [  # (date, nps, channel, comment)
    ("2025-03-01", 0, "web", "The delivery was late, awful."),  # r1 detractor, Delivery; negative
    ("2025-03-02", 3, "app", NASTY),  # r2 detractor, Delivery (the word "delivery")
    ("2025-03-03", 10, "web", "Fast delivery, great."),  # r3 promoter, Delivery; positive
    ("2025-03-04", 9, "app", "Great prices."),  # r4 promoter, Price & value
    ("2025-03-05", 10, "web", None),  # r5 promoter, no comment
    ("2025-03-06", 8, "web", "Support was fine."),  # r6 passive, Support
]


@pytest.fixture
def voice_db(app_store_path):
    store = open_store(app_store_path)
    frame = pd.DataFrame({"response_id": [f"r{i + 1}" for i in range(len(ANSWERS))],
                          "submitted_at": [pd.Timestamp(a[0]) for a in ANSWERS], "nps": [a[1] for a in ANSWERS],
                          "channel": [a[2] for a in ANSWERS], "comment": [a[3] for a in ANSWERS]})
    ingest.import_frame(store, "responses", frame, file_name="fixture")
    return app_store_path


def _open(query=None):
    return run_app({"range": "all", **(query or {})}, page="pages/voice.py")


def _comments(at) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if {"comment", "id"} <= set(d.value.columns))


def _markdown_text(at) -> str:
    return " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)


def test_the_page_shows_the_known_counts_themes_and_costs(voice_db):
    at = _open()
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Comments"] == "5"
    themes = at.dataframe[0].value.set_index("Theme")
    assert list(themes.index) == ["Delivery", "Price & value", "Support"]
    # NPS +16.7 over the six answers; without the two delivery detractors +75: delivery costs 58.3 points.
    assert round(themes.loc["Delivery", "Cost (NPS points)"], 1) == 58.3
    assert themes.loc["Delivery", "Mentions"] == 3
    assert len(at.get("plotly_chart")) >= 2  # theme map and sentiment trend
    # Examples of the first theme (Delivery): its three comments, newest first; then only the positive one.
    assert at.selectbox(key="voice_example_theme").value == "Delivery"
    assert list(at.dataframe[1].value["comment"]) == ["Fast delivery, great.", NASTY, "The delivery was late, awful."]
    at.radio(key="voice_example_sentiment").set_value("positive").run()
    assert list(at.dataframe[1].value["comment"]) == ["Fast delivery, great."]
    at.radio(key="voice_example_sentiment").set_value("negative").run()
    assert list(at.dataframe[1].value["comment"]) == ["The delivery was late, awful."]


def test_markup_in_a_comment_is_shown_as_plain_text(voice_db):
    at = _open()
    comments = _comments(at)
    assert NASTY in list(comments["comment"])
    # Never handed to Markdown or HTML anywhere on the page.
    assert "<script>" not in _markdown_text(at) and "alert(" not in _markdown_text(at)
    assert not at.get("html")


def test_comment_filters_search_theme_score_and_the_sidebar_channel(voice_db):
    at = _open()
    at.text_input(key="voice_search").set_value("delivery").run()
    assert not at.exception, at.exception
    assert sorted(_comments(at)["id"]) == ["r1", "r2", "r3"]
    at.multiselect(key="voice_f_category").set_value(["promoter"]).run()
    assert list(_comments(at)["id"]) == ["r3"]
    at = _open({"f.channel": "app"})
    at.multiselect(key="voice_f_themes").set_value(["Price & value"]).run()
    assert list(_comments(at)["id"]) == ["r4"]


def test_theme_rules_are_edited_and_saved_from_the_page(voice_db):
    at = _open()
    at.button(key="voice_rules_save").click().run()  # the defaults, saved as they are
    assert not at.exception, at.exception
    assert "Theme rules saved" in at.success[0].value
    rules = voice.load_rules(open_store(voice_db))
    assert [r.theme for r in rules] == [t for t, _ in voice.DEFAULT_RULES]


def test_without_comments_the_page_says_what_to_import(app_store_path):
    store = open_store(app_store_path)
    ingest.import_frame(store, "responses", pd.DataFrame({"response_id": ["a"], "submitted_at": [pd.Timestamp("2025-01-01")],
                                                          "nps": [9]}), file_name="no comments")
    at = _open()
    assert any("No comments yet" in i.value for i in at.info)


def test_the_page_loads_on_the_demo_data_with_discovered_themes(app_store_path):
    from cx import demo

    demo.load_demo(open_store(app_store_path), scale=0.2)
    at = _open()
    themes = at.dataframe[0].value
    assert (themes["Origin"] == "Discovered").sum() >= 6
    assert any("late" in t and "delivery" in t for t in themes["Theme"])


def test_ticket_texts_are_a_second_source_with_their_own_csat(voice_db):
    store = open_store(voice_db)
    tickets = pd.DataFrame({"ticket_id": ["t1", "t2"], "created_at": [pd.Timestamp("2025-03-02")] * 2,
                            "subject": ["Refund missing", "Parcel is late"],
                            "description": ["I was charged twice.", "The delivery is a week late."],
                            "channel": ["email", "web"], "csat": [1, 5]})
    ingest.import_frame(store, "tickets", tickets, file_name="tickets")
    at = _open()
    at.radio(key="opt_source").set_value("tickets").run()
    assert not at.exception, at.exception
    comments = _comments(at)
    assert sorted(comments["id"]) == ["t1", "t2"]
    assert "Parcel is late. The delivery is a week late." in list(comments["comment"])
    assert at.selectbox(key="opt_voice_metric").value == "csat"
    themes = at.dataframe[0].value.set_index("Theme")
    # CSAT 1 of 2 satisfied = 50%; without the dissatisfied billing ticket 100%: billing costs 50 points.
    assert themes.loc["Billing & refunds", "Cost (points of % satisfied)"] == 50.0
