"""AppTests of the meeting tools: the shareable link, presentation mode and the Decks page."""

from __future__ import annotations

import pandas as pd
import pytest

from cx import decks, ingest
from cx.store import open_store
from tests.conftest import run_app

# Six NPS answers in November 2024, hand-written: web 10, 10, 9 and app 0, 1, 8.
ANSWERS = [("web", "2024-11-03", 10), ("web", "2024-11-10", 10), ("web", "2024-11-17", 9),
           ("app", "2024-11-06", 0), ("app", "2024-11-13", 1), ("app", "2024-11-30", 8)]


@pytest.fixture
def app_db(app_store_path):
    store = open_store(app_store_path)
    frame = pd.DataFrame({"response_id": [f"r{i}" for i in range(len(ANSWERS))],
                          "submitted_at": [pd.Timestamp(d) for _, d, _ in ANSWERS],
                          "nps": [s for _, _, s in ANSWERS], "channel": [c for c, _, _ in ANSWERS]})
    ingest.import_frame(store, "responses", frame, file_name="fixture")
    return store


def test_the_sidebar_shows_the_link_of_the_current_view(app_db):
    # (AppTest keeps no sidebar after switch_page, so this is the default page; the browser suite
    # checks page options such as metric and grain in the link.)
    at = run_app({"range": "all", "f.channel": "web"})
    assert at.sidebar.code[0].value == "http://localhost:8501/?f.channel=web&range=all"
    assert {m.label: m.value for m in at.metric}["NPS"] == "+100.0"  # web: 10, 10, 9


def test_presentation_mode_draws_the_presenter_bar_and_no_share_tools(app_db):
    at = run_app({"range": "all", "present": "1"})
    assert not at.exception
    assert at.button(key="present_exit") is not None
    assert len(at.sidebar.code) == 0  # no share box while presenting
    assert {m.label: m.value for m in at.metric}["NPS"] == "+16.7"  # 3 promoters, 2 detractors of 6


def test_the_decks_page_lists_and_reorders_views(app_db):
    decks.create_deck(app_db, "Review")
    decks.add_view(app_db, "Review", decks.View("overview", "range=all", "Headline"))
    decks.add_view(app_db, "Review", decks.View("trends", "metric=nps&range=all", "NPS trend"))
    at = run_app(page="pages/decks.py")
    assert at.selectbox(key="decks_pick").value == "Review"
    assert [t.value for t in at.text_input if (t.key or "").startswith("decks_title_")] == ["Headline", "NPS trend"]
    at.button(key="decks_down_0").click().run()
    assert not at.exception
    assert [v.title for v in decks.get_deck(app_db, "Review").views] == ["NPS trend", "Headline"]
    at.button(key="decks_remove_1").click().run()
    assert [v.title for v in decks.get_deck(app_db, "Review").views] == ["NPS trend"]
