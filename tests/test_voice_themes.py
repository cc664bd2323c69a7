"""Themes: discovered ones on a synthetic corpus whose themes are known, analyst rules, and the
impact of each theme on the score, hand-computed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import rows
from cx import ingest, voice
from cx.errors import TouchpointError

T = pd.Timestamp

KNOWN = {  # theme → its words; complaints first, then praise
    "delivery": ("late", "courier", "parcel", "delayed", "tracking"),
    "billing": ("charged", "twice", "invoice", "refund", "card"),
    "crashes": ("app", "crashes", "freezes", "update", "login"),
    "staff": ("friendly", "staff", "helpful", "agent", "polite"),
    "price": ("cheap", "bargain", "discount", "value", "affordable"),
    "quality": ("sturdy", "quality", "material", "durable", "solid"),
}


def _corpus(per_theme: int = 50, seed: int = 3):
    rng = np.random.default_rng(seed)
    texts, truth, polarity = [], [], []
    for i, (theme, words) in enumerate(KNOWN.items()):
        for _ in range(per_theme):
            a, b, c = rng.choice(words, 3, replace=False)
            texts.append(f"The {a} was {b}, and the {c} too.")
            truth.append(theme)
            polarity.append(-1 if i < 3 else 1)
    return texts, truth, polarity


def test_discovered_themes_are_the_known_ones_with_readable_labels():
    texts, truth, polarity = _corpus()
    labels, assigned = voice.discover_themes(texts, "en", polarity)
    assert len(labels) == 6  # 150 complaints and 150 praises: 3 themes each (one per 40 comments, at most 8)
    found = {}
    for k, label in enumerate(labels):
        members = [truth[i] for i, a in enumerate(assigned) if k in a]
        top = max(set(members), key=members.count)
        # Each discovered theme is one known theme (≥ 90% of its comments) and is named with its words.
        assert members.count(top) / len(members) >= 0.9, (label, top)
        assert all(word in KNOWN[top] for word in label.split(" · ")), (label, top)
        found[top] = len(members)
    assert set(found) == set(KNOWN)
    # Complaint themes never go to praise and back: a delivery theme is only on negative comments.
    for k, label in enumerate(labels):
        tones = {polarity[i] for i, a in enumerate(assigned) if k in a}
        assert len(tones) == 1
    # Most comments carry their theme (the rest carry weak, mixed weights).
    assert sum(1 for a in assigned if a) >= 0.8 * len(texts)


def test_too_few_comments_discover_nothing():
    labels, assigned = voice.discover_themes(["Late parcel."] * 10, "en", [-1] * 10)
    assert labels == [] and assigned == [[]] * 10


def test_stop_words_come_per_language():
    assert {"the", "and", "shouldn"} <= voice.stop_words_for("en")
    assert {"nao", "de", "que"} <= voice.stop_words_for("pt")  # accents removed, as the texts are
    assert voice.stop_words_for("xx") == frozenset()


# -- analyst rules ----------------------------------------------------------------------------------
def _import(store, answers, name="fixture"):
    frame = pd.DataFrame({"response_id": [f"r{i + 1}" for i in range(len(answers))],
                          "submitted_at": pd.date_range("2025-03-01", periods=len(answers), freq="D"),
                          "nps": [a[0] for a in answers], "comment": [a[1] for a in answers]})
    return ingest.import_frame(store, "responses", frame, file_name=name)


def test_rules_match_whole_words_phrases_endings_and_ignore_case_and_accents(store):
    _import(store, [(5, "Delivered late."), (5, "It never   arrived"), (5, "Undelivered twice"),
                    (5, "Entrega fora do PRAZO"), (5, "Prazos longos"), (5, "Fast delivery"),
                    (5, "Não chegou"), (5, "<b>deliver</b>")])
    written = voice.save_rules(store, [voice.Rule("Delivery", ("deliver*", "never arrived", "prazo", "nao chegou"))])
    assert written == 6
    tagged = [r[0] for r in rows(store, "SELECT id FROM comment_themes WHERE theme = 'Delivery' ORDER BY id")]
    assert tagged == ["r1", "r2", "r4", "r6", "r7", "r8"]  # not "Undelivered", not "Prazos"
    # The rules are kept, and a new import is tagged with them.
    assert [r.theme for r in voice.load_rules(store)] == ["Delivery"]
    _import(store, [(3, "Delivery took ages")], name="more")
    assert rows(store, "SELECT count(*) FROM comment_themes WHERE theme = 'Delivery'") == [(6,)]  # r1 replaced


@pytest.mark.parametrize("raw, message", [
    ([{"theme": "", "terms": ["x"]}], "has no name"),
    ([{"theme": "Delivery", "terms": [" ", "*"]}], "has no keywords"),
    ([{"theme": "Delivery", "terms": ["late"]}, {"theme": "delivery", "terms": ["slow"]}], "defined twice"),
])
def test_invalid_rules_are_refused_in_plain_words(store, raw, message):
    with pytest.raises(TouchpointError, match=message):
        voice.parse_rules(raw)


def test_the_default_rules_until_the_analyst_saves_their_own(store):
    assert [r.theme for r in voice.load_rules(store)] == [t for t, _ in voice.DEFAULT_RULES]


# -- impact -----------------------------------------------------------------------------------------
ANSWERS = [
    (0, "The delivery was late."),  # r1 detractor, Delivery
    (3, "Late delivery again, awful."),  # r2 detractor, Delivery
    (10, "Fast delivery, great."),  # r3 promoter, Delivery
    (9, "Great prices."),  # r4 promoter, Price & value
    (10, None),  # r5 promoter without a comment
    (8, "Support was fine."),  # r6 passive, Support
]


def test_theme_impact_is_hand_computed(store):
    _import(store, ANSWERS)
    table = voice.theme_impact(store, metric="nps").set_index("theme")
    assert list(table.index) == ["Delivery", "Price & value", "Support"]
    d = table.loc["Delivery"]
    # 3 of the 5 comments mention delivery.
    assert (d.mentions, d.n, round(d.share, 6)) == (3, 3, 60.0)
    # NPS of all six answers: 3 promoters, 2 detractors → +16.7. Without the two delivery detractors:
    # 3 promoters of 4 → +75. Delivery costs 58.3 points.
    assert d.points_cost == pytest.approx(75.0 - 100.0 / 6)
    # Mean NPS answer of the delivery comments (0, 3, 10) against the other comments (9, 8).
    assert d.mean_with == pytest.approx(13 / 3) and d.mean_without == pytest.approx(8.5)
    ci = stats.ttest_ind([0, 3, 10], [9, 8], equal_var=False).confidence_interval(0.95)
    assert (d.diff_low, d.diff_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    p = table.loc["Price & value"]
    assert (p.mentions, p.points_cost, p.mean_with, p.mean_without) == (1, 0.0, 9.0, 5.25)
    assert np.isnan(p.diff_low)  # one answer: no interval


def test_theme_trend_and_verbatims_filter_by_theme_sentiment_category_and_search(store):
    _import(store, ANSWERS)
    trend = voice.theme_trend(store, themes=["Delivery", "Support"])
    assert trend.to_dict("list") == {"period": [T("2025-03-01")] * 2, "theme": ["Delivery", "Support"],
                                     "mentions": [3, 1], "comments": [5, 5], "share": [60.0, 20.0]}
    page, total = voice.verbatims(store, themes=["Delivery"], categories=["detractor"])
    assert total == 2 and list(page["id"]) == ["r2", "r1"]  # newest first
    page, total = voice.verbatims(store, search="LATE")
    assert total == 2
    page, total = voice.verbatims(store, search="great", limit=1, offset=1)
    assert total == 2 and list(page["id"]) == ["r3"]
    assert page.loc[0, "themes"] == "Delivery"
    page, total = voice.verbatims(store, search="%")  # no wildcard: a literal search
    assert total == 0
    page, total = voice.verbatims(store, search="great", limit=0)  # the count only
    assert total == 2 and page.empty
    assert list(page.columns) == list(voice.verbatims(store, limit=1)[0].columns)


def test_the_metrics_offered_are_those_of_answers_with_a_comment(store):
    frame = pd.DataFrame({"response_id": ["a", "b", "c", "d"], "submitted_at": pd.Timestamp("2025-03-01"),
                          "nps": [9, None, None, 3], "csat": [None, 4, None, None], "ces": [None, None, 5, None],
                          "comment": ["Great", "  ", None, "Slow"]})  # CSAT and CES only on rows without words
    ingest.import_frame(store, "responses", frame, file_name="mixed")
    assert voice.metrics_with_data(store) == ["nps"]


def test_a_comment_with_markup_comes_back_exactly_as_written(store):
    nasty = "<script>alert('x')</script> **bold** [link](http://example.com) =1+1"
    _import(store, [(2, nasty)])
    page, total = voice.verbatims(store)
    assert total == 1 and page.loc[0, "comment"] == nasty


def test_the_demo_datas_built_in_themes_are_discovered(store):
    from cx import demo

    demo.load_demo(store, scale=0.2)
    labels = [r[0] for r in rows(store, "SELECT DISTINCT theme FROM comment_themes WHERE origin = 'auto' "
                                        "AND source = 'responses'")]
    words = [set(label.split(" · ")) for label in labels]
    # The demo's themes (cx/demo.py) and words that name each; every one is found by a discovered theme.
    built_in = {"late delivery": {"late", "delayed"}, "billing": {"billing", "charged", "charge"},
                "slow support": {"support"}, "high prices": {"expensive"}, "helpful agent": {"helpful", "agent"},
                "easy checkout": {"checkout"}, "fast delivery": {"fast", "quicker"}, "quality": {"quality"},
                "great prices": {"prices"}}
    missing = [theme for theme, names in built_in.items() if not any(w & names for w in words)]
    assert missing == [], labels
    # Complaints and praise are told apart: the delivery complaint theme is carried by unhappy answers.
    late = next(label for label in labels if "late" in label.split(" · "))
    assert rows(store, "SELECT count(*) FILTER (WHERE r.nps >= 9) FROM comment_themes t JOIN responses r "
                       "ON r.response_id = t.id WHERE t.theme = ?", [late]) == [(0,)]


def test_examples_are_different_comments_and_the_count_is_every_comment(store):
    _import(store, [(2, "Late parcel."), (3, "Late parcel."), (1, "Late parcel, awful."), (9, "Great.")])
    page, total = voice.verbatims(store, search="late", distinct=True)
    assert total == 3  # every matching comment
    assert list(page["id"]) == ["r3", "r2"] and list(page["comment"]) == ["Late parcel, awful.", "Late parcel."]
    page, total = voice.verbatims(store, search="late")
    assert (list(page["id"]), total) == (["r3", "r2", "r1"], 3)
