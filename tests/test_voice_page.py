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


def test_theme_pickers_offer_the_themes_in_scope_and_drop_a_choice_that_leaves_it(voice_db):
    at = _open()
    # Analyst rules first, then by mentions: Delivery (3), then Price & value and Support (1 each, by name).
    assert at.multiselect(key="voice_f_themes").options == ["Delivery", "Price & value", "Support"]
    at.multiselect(key="voice_f_themes").set_value(["Support", "Delivery"]).run()
    assert sorted(_comments(at)["id"]) == ["r1", "r2", "r3", "r6"]
    at.multiselect(key="voice_trend_themes").set_value(["Support"]).run()
    # The sidebar narrows to the app, whose comments say nothing about support: Support leaves both pickers.
    # (AppTest runs the page alone after switching to it, without app.py's sidebar: its filters are set.)
    at.session_state["filters"] = at.session_state["filters"].with_dim("channel", ["app"])
    at.run()
    assert not at.exception and not at.warning, (at.exception, [w.value for w in at.warning])
    assert at.multiselect(key="voice_f_themes").options == ["Delivery", "Price & value"]
    assert at.multiselect(key="voice_f_themes").value == ["Delivery"]
    assert list(_comments(at)["id"]) == ["r2"]
    assert at.multiselect(key="voice_trend_themes").value == ["Delivery", "Price & value"]  # back to its default


def test_theme_rules_are_edited_and_saved_from_the_page(voice_db):
    at = _open()
    at.button(key="voice_rules_save").click().run()  # the defaults, saved as they are
    assert not at.exception, at.exception
    assert "Theme rules saved" in at.success[0].value
    rules = voice.load_rules(open_store(voice_db))
    assert [r.theme for r in rules] == [t for t, _ in voice.DEFAULT_RULES]


def test_without_comments_the_page_says_what_to_import(app_store_path):
    store = open_store(app_store_path)
    ingest.import_frame(store, "responses", pd.DataFrame({"response_id": ["a", "b"],
                                                          "submitted_at": [pd.Timestamp("2025-01-01")] * 2,
                                                          "nps": [9, 3], "comment": [None, "   "]}),
                        file_name="no comments")
    assert voice.sources_with_comments(store) == []  # a blank comment is none
    at = _open()
    assert any("No comments yet" in i.value for i in at.info)


def test_only_the_sources_holding_comments_are_offered(app_store_path):
    store = open_store(app_store_path)
    ingest.import_frame(store, "responses", pd.DataFrame({"response_id": ["a"], "submitted_at": [pd.Timestamp("2025-01-01")],
                                                          "nps": [9]}), file_name="no comments")
    ingest.import_frame(store, "tickets", pd.DataFrame({"ticket_id": ["t1", "t2"], "created_at": [pd.Timestamp("2025-01-02")] * 2,
                                                        "subject": ["", "Parcel never arrived"]}), file_name="tickets")
    assert voice.sources_with_comments(store) == ["tickets"]
    at = _open()
    assert not at.get("radio") or "Comments from" not in [r.label for r in at.radio]  # one source: no choice
    assert any(m.label == "Comments" and m.value == "1" for m in at.metric)


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


def _label_boxes(x, y, positions, texts, width=860, height=380, font_px=11, marker_px=12):
    """The label boxes label_positions reasons with, rebuilt independently from its outputs."""
    lo_x, hi_x, lo_y, hi_y = min(x), max(x), min(y), max(y)
    sx, sy = (hi_x - lo_x) or 1.0, (hi_y - lo_y) or 1.0
    boxes = []
    for a, b, pos, text in zip(x, y, positions, texts):
        if not text:
            continue
        a = (a - lo_x + 0.08 * sx) / (1.16 * sx) * width
        b = (b - lo_y + 0.08 * sy) / (1.16 * sy) * height
        w, h, r = len(text) * font_px * 0.62, font_px * 1.35, marker_px / 2 + 2
        vertical, horizontal = pos.split()
        cx = {"center": a, "right": a + r + w / 2, "left": a - r - w / 2}[horizontal]
        cy = {"middle": b, "top": b + r + h / 2, "bottom": b - r - h / 2}[vertical]
        boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return boxes


def test_theme_labels_are_placed_where_they_collide_with_nothing():
    from pages._ui import label_positions

    # Three themes close together (the demo's "support · week · issue" sat on "late · delivery · told"),
    # one far away: every label is shown and no two label boxes overlap.
    x = [10.0, 11.0, 10.5, 40.0]
    y = [5.0, 5.2, 4.7, 1.0]
    labels = ["late · delivery · told", "support · week · issue", "refund · money", "quality"]
    positions, texts = label_positions(x, y, labels)
    assert texts == labels
    assert len(set(positions[:3])) == 3  # the three neighbours each take another side
    boxes = _label_boxes(x, y, positions, texts)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1]), (a, b)


def test_a_label_with_no_free_spot_is_left_to_the_hover_text():
    from pages._ui import label_positions

    # Twelve points on one spot: eight spots around it, so the least important labels stay unnamed.
    positions, texts = label_positions([1.0] * 12 + [5.0], [1.0] * 12 + [5.0], [f"theme {i}" for i in range(13)])
    assert texts[0] == "theme 0" and texts[12] == "theme 12"
    assert 1 <= sum(1 for t in texts[:12] if t) <= 8 and "" in texts
    assert label_positions([], [], []) == ([], [])


def test_more_comments_than_the_app_analyses_get_a_plain_message_not_a_long_wait(app_store_path, monkeypatch):
    """Five comments imported with the analysis deferred, and the app allowed three: the page says how
    many there are, what it would take and how to run it, instead of analysing them in its own process."""
    monkeypatch.setenv("TOUCHPOINT_VOICE", "defer")
    monkeypatch.setenv("TOUCHPOINT_VOICE_MAX_COMMENTS", "3")
    store = open_store(app_store_path)
    frame = pd.DataFrame({"response_id": [f"r{i + 1}" for i in range(len(ANSWERS))],
                          "submitted_at": [pd.Timestamp(a[0]) for a in ANSWERS], "nps": [a[1] for a in ANSWERS],
                          "channel": [a[2] for a in ANSWERS], "comment": [a[3] for a in ANSWERS]})
    ingest.import_frame(store, "responses", frame, file_name="fixture")
    at = _open()
    shown = " ".join(e.value for e in at.error) + " ".join(i.value for i in at.info) + _markdown_text(at)
    assert "The store holds 5 comments, 5 of them different" in shown and "python -m cx voice" in shown, shown
    assert not voice.is_current(store)


def test_comment_downloads_are_built_on_click_with_every_matching_comment(voice_db, monkeypatch):
    """The comment export (up to 100,000 rows) is read and written only when a download is clicked, not
    on every rerun; clicked, it holds every matching comment. One CSV and one XLSX button."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    deferred = {}
    real = MediaFileManager.add_deferred

    def capture(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        deferred[file_name] = data_callable
        return real(self, data_callable, mimetype, coordinates, file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", capture)
    at = _open()
    keys = [b.proto.id.split("-", 2)[-1] for b in at.get("download_button")]
    assert [k for k in keys if k.startswith("voice_comments")] == ["voice_comments_csv", "voice_comments_csv_xlsx"]
    assert not any(b.proto.url for b in at.get("download_button") if "voice_comments" in b.proto.id)
    csv = deferred["voice_comments.csv"]().decode("utf-8-sig")
    lines = csv.strip().splitlines()
    assert len(lines) == 1 + 5  # header and the five comments, newest first
    assert "Support was fine." in lines[1] and "The delivery was late, awful." in lines[-1]
    import io

    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(deferred["voice_comments.xlsx"]()))
    assert book.sheetnames == ["Comments"] and book["Comments"].max_row == 1 + 5
