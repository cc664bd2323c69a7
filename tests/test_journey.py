"""The touchpoint map on hand-counted answers: values per stage × touchpoint come from the metric
layer, low-n cells are flagged and never called pain points, and the pain point is the cell that
is significantly worse than the rest."""

from __future__ import annotations

import pandas as pd
import pytest

from cx import ingest, journey

# (stage, touchpoint, question, score, how many)
ANSWERS = [
    # Purchase · Checkout: 30 promoters (10) and 10 detractors (0) → NPS (30 − 10) / 40 = +50.
    ("Purchase", "Checkout", "nps", 10, 30), ("Purchase", "Checkout", "nps", 0, 10),
    # Support · Chat: 10 promoters, 30 detractors → −50: the pain point.
    ("Support", "Chat", "nps", 9, 10), ("Support", "Chat", "nps", 6, 30),
    # Support · Email: 5 promoters → +100 on 5 answers: low n, flagged, never a pain point.
    ("Support", "Email", "nps", 10, 5),
    # Purchase · Delivery CSAT on 1–5: 20 fives and 20 ones → 50% satisfied; Checkout CSAT: 40 fours → 100%.
    ("Purchase", "Delivery", "csat", 5, 20), ("Purchase", "Delivery", "csat", 1, 20),
    ("Purchase", "Checkout", "csat", 4, 40),
    # Awareness · Website: 12 effort answers of 6 (1–7 scale) and 12 of 2 → mean 4.0; low n (24 < 30).
    ("Awareness", "Website", "ces", 6, 12), ("Awareness", "Website", "ces", 2, 12),
]


def load_answers(store) -> None:
    rows = [(stage, tp, q, s) for stage, tp, q, s, k in ANSWERS for _ in range(k)]
    frame = pd.DataFrame({
        "response_id": [f"r{i}" for i in range(len(rows))],
        "submitted_at": [pd.Timestamp("2024-05-01") + pd.Timedelta(hours=i) for i in range(len(rows))],
        "journey_stage": [r[0] for r in rows], "touchpoint": [r[1] for r in rows],
        "nps": [r[3] if r[2] == "nps" else None for r in rows],
        "csat": [r[3] if r[2] == "csat" else None for r in rows],
        "ces": [r[3] if r[2] == "ces" else None for r in rows],
        "csat_min": [1 if r[2] == "csat" else None for r in rows], "csat_max": [5 if r[2] == "csat" else None for r in rows],
        "ces_min": [1 if r[2] == "ces" else None for r in rows], "ces_max": [7 if r[2] == "ces" else None for r in rows],
    })
    ingest.import_frame(store, "responses", frame, file_name="answers")


@pytest.fixture
def answers(store):
    load_answers(store)
    return store


def cell(cells, stage, tp, metric):
    row = cells[(cells["journey_stage"] == stage) & (cells["touchpoint"] == tp) & (cells["metric"] == metric)]
    assert len(row) == 1, (stage, tp, metric)
    return row.iloc[0]


def test_map_values_come_from_the_metric_layer(answers):
    cells = journey.touchpoint_map(answers)
    assert cell(cells, "Purchase", "Checkout", "nps")[["value", "n"]].tolist() == [50.0, 40]
    assert cell(cells, "Support", "Chat", "nps")[["value", "n"]].tolist() == [-50.0, 40]
    email = cell(cells, "Support", "Email", "nps")
    assert (email["value"], email["n"], bool(email["low_n"])) == (100.0, 5, True)
    # Overall NPS over the map: 45 promoters, 40 detractors of 85.
    assert email["overall"] == pytest.approx(100 * 5 / 85)
    assert cell(cells, "Purchase", "Delivery", "csat")["value"] == pytest.approx(50.0)
    assert cell(cells, "Purchase", "Checkout", "csat")["value"] == pytest.approx(100.0)
    effort = cell(cells, "Awareness", "Website", "ces")
    assert (effort["value"], effort["n"], bool(effort["low_n"])) == (pytest.approx(4.0), 24, True)
    # Volume counts every answer in the cell: Checkout has 40 NPS and 40 CSAT answers.
    assert cell(cells, "Purchase", "Checkout", "nps")["volume"] == 80


def test_pain_points_are_significantly_worse_cells_with_enough_answers(answers):
    cells = journey.touchpoint_map(answers)
    assert bool(cell(cells, "Support", "Chat", "nps")["worse"])
    assert bool(cell(cells, "Purchase", "Checkout", "nps")["better"])
    assert bool(cell(cells, "Purchase", "Delivery", "csat")["worse"])
    assert not cell(cells, "Support", "Email", "nps")["worse"] and pd.isna(cell(cells, "Support", "Email", "nps")["p_adjusted"])
    assert not cell(cells, "Awareness", "Website", "ces")["worse"]  # low n: flagged, not judged
    pains = journey.pain_points(cells)
    # Chat's NPS gap (−55.9 of a 200-point scale, 28%) outranks Delivery's CSAT gap (−25 of 100, 25%).
    assert pains[["journey_stage", "touchpoint", "metric"]].values.tolist() == [
        ["Support", "Chat", "nps"], ["Purchase", "Delivery", "csat"]]
    assert pains["sentence"][0].startswith("Support · Chat: NPS -50.0 against +5.9 across the journey (55.9 points worse, "
                                           "40 answers, adjusted p")


def test_map_by_channel_and_with_filters(answers):
    cells = journey.touchpoint_map(answers, where={"journey_stage": ["Support"]})
    assert set(cells["touchpoint"]) == {"Chat", "Email"}
    assert cell(cells, "Support", "Chat", "nps")["overall"] == pytest.approx(100 * (15 - 30) / 45)
    empty = journey.touchpoint_map(answers, start="2030-01-01", end="2030-12-31")
    assert empty.empty and journey.pain_points(empty).empty


def test_stages_sort_in_journey_order():
    stages = ["Support", "Renewal", "Zebra", "Awareness", "Purchase", "Onboarding", "Usage"]
    assert sorted(stages, key=journey.stage_sort_key) == [
        "Awareness", "Purchase", "Onboarding", "Usage", "Support", "Renewal", "Zebra"]


def test_margins_pool_each_stage_and_each_touchpoint(answers):
    cells = journey.touchpoint_map(answers)
    m = journey.map_margins(answers, cells).set_index(["axis", "value_of", "metric"])
    # Support over all touchpoints: Chat 10 promoters / 30 detractors + Email 5 promoters → (15 − 30) / 45.
    assert m.loc[("rows", "Support", "nps"), "value"] == pytest.approx(100 * (15 - 30) / 45)
    assert m.loc[("rows", "Support", "nps"), "n"] == 45
    assert m.loc[("rows", "Purchase", "nps"), ["value", "n"]].tolist() == [50.0, 40]
    # Purchase's answers: 80 at Checkout (40 NPS + 40 CSAT) and 40 at Delivery.
    assert m.loc[("rows", "Purchase", "csat"), "volume"] == 120
    assert m.loc[("rows", "Purchase", "csat"), "value"] == pytest.approx(100 * 60 / 80)
    assert m.loc[("cols", "Chat", "nps"), ["value", "n"]].tolist() == [-50.0, 40]
    assert bool(m.loc[("cols", "Website", "ces"), "low_n"])
    assert journey.map_margins(answers, cells.iloc[0:0]).empty


# -- sentiment on the map ------------------------------------------------------------------------------
# (stage, touchpoint, sentiment label, sentiment score, how many). The labels are written into the
# stored Voice scores after the import, so every number below is counted by hand.
COMMENTS = [
    # Purchase · Checkout: 10 negative, 30 positive → 25% negative, mean (10 × −0.5 + 30 × 0.5) / 40 = +0.25.
    ("Purchase", "Checkout", "negative", -0.5, 10), ("Purchase", "Checkout", "positive", 0.5, 30),
    # Support · Chat: 30 negative, 10 neutral → 75% negative, mean (30 × −0.8) / 40 = −0.6.
    ("Support", "Chat", "negative", -0.8, 30), ("Support", "Chat", "neutral", 0.0, 10),
    # Support · Email: 5 negative → 100%, but 5 < 30 scored comments: low n.
    ("Support", "Email", "negative", -1.0, 5),
    # Purchase · Delivery: 20 negative, 10 neutral, 10 unscored → 20 of 30 scored = 66.7%, mean −8 / 30.
    ("Purchase", "Delivery", "negative", -0.4, 20), ("Purchase", "Delivery", "neutral", 0.0, 10),
    ("Purchase", "Delivery", None, None, 10),
]


def load_comments(store) -> None:
    from cx import voice

    rows = [(stage, tp, lab, sc) for stage, tp, lab, sc, k in COMMENTS for _ in range(k)]
    frame = pd.DataFrame({
        "response_id": [f"v{i}" for i in range(len(rows))] + ["v-edited", "v-silent"],
        "submitted_at": [pd.Timestamp("2024-05-01") + pd.Timedelta(hours=i) for i in range(len(rows) + 2)],
        "journey_stage": [r[0] for r in rows] + ["Support", "Support"],
        "touchpoint": [r[1] for r in rows] + ["Chat", "Chat"],
        "nps": [5] * (len(rows) + 2),
        "comment": [f"Comment number {i} about the {r[1].lower()}" for i, r in enumerate(rows)]
                   + ["Lovely chat, thanks", None],
    })
    ingest.import_frame(store, "responses", frame, file_name="comments")
    voice.refresh(store)
    labels = pd.DataFrame({"id": [f"v{i}" for i in range(len(rows))], "lab": [r[2] for r in rows],
                           "sc": [r[3] for r in rows]})
    with store.transaction() as cur:
        cur.register("fixture_labels", labels)
        cur.execute("UPDATE comment_scores SET sentiment_label = l.lab, sentiment_score = l.sc FROM fixture_labels l "
                    "WHERE comment_scores.id = l.id")
        cur.unregister("fixture_labels")
        cur.execute("UPDATE comment_scores SET sentiment_label = 'positive', sentiment_score = 0.9 "
                    "WHERE id = 'v-edited'")
        # The comment is edited after scoring: its stored score was made from another text, so it never counts.
        cur.execute("UPDATE responses SET comment = 'Awful chat' WHERE response_id = 'v-edited'")


def test_sentiment_map_counts_scored_comments_per_cell(store):
    from cx import stats

    load_comments(store)
    cells, margins = journey.sentiment_map(store)
    by = cells.set_index(["journey_stage", "touchpoint"])
    assert by.loc[("Purchase", "Checkout"), ["value", "n", "negative", "comments"]].tolist() == [25.0, 40, 10, 40]
    assert by.loc[("Purchase", "Checkout"), "mean_score"] == pytest.approx(0.25)
    # Chat: the edited comment and the answer without a comment are not counted.
    assert by.loc[("Support", "Chat"), ["value", "n", "comments"]].tolist() == [75.0, 40, 40]
    assert by.loc[("Support", "Chat"), "mean_score"] == pytest.approx(-0.6)
    assert by.loc[("Purchase", "Delivery"), ["n", "negative", "comments"]].tolist() == [30, 20, 40]
    assert by.loc[("Purchase", "Delivery"), "value"] == pytest.approx(200 / 3)
    assert by.loc[("Purchase", "Delivery"), "mean_score"] == pytest.approx(-8 / 30)
    email = by.loc[("Support", "Email")]
    assert (email["value"], email["n"], bool(email["low_n"]), bool(email["worse"])) == (100.0, 5, True, False)
    assert pd.isna(email["p_adjusted"])
    # Whole map: 65 negative of 115 scored comments.
    assert by["overall"].iloc[0] == pytest.approx(100 * 65 / 115)
    # Chat against the rest of the map: 30/40 against 35/75, adjusted over the 3 cells with enough comments.
    p_chat = stats.two_proportion_test(30, 40, 35, 75)[1]
    p_checkout = stats.two_proportion_test(10, 40, 55, 75)[1]
    p_delivery = stats.two_proportion_test(20, 30, 45, 85)[1]
    ranked = sorted([p_chat, p_checkout, p_delivery])
    assert by.loc[("Support", "Chat"), "p_adjusted"] == pytest.approx(ranked[1] * 3 / 2)
    assert p_delivery == ranked[2] and by.loc[("Purchase", "Delivery"), "p_adjusted"] == pytest.approx(p_delivery)
    assert bool(by.loc[("Support", "Chat"), "worse"]) and bool(by.loc[("Purchase", "Checkout"), "better"])
    assert not by.loc[("Purchase", "Delivery"), ["worse", "better"]].any()
    m = margins.set_index(["axis", "value_of"])
    # Support over all touchpoints: 35 negative of 45; Checkout over all stages: 10 of 40.
    assert m.loc[("rows", "Support"), ["value", "n"]].tolist() == [pytest.approx(100 * 35 / 45), 45]
    assert m.loc[("cols", "Checkout"), ["value", "n"]].tolist() == [25.0, 40]
    whole = margins[margins["axis"] == "all"].iloc[0]
    assert (whole["n"], whole["value"]) == (115, pytest.approx(100 * 65 / 115))
    pains = journey.sentiment_pain_points(cells)
    assert pains["touchpoint"].tolist() == ["Chat"]
    assert pains["sentence"][0].startswith("Support · Chat: 75.0% of comments negative against 56.5% across the "
                                           "journey (18.5 points more, 40 scored comments, mean sentiment -0.60, ")


def test_sentiment_map_follows_filters_and_says_nothing_without_comments(store):
    load_comments(store)
    cells, _ = journey.sentiment_map(store, where={"journey_stage": ["Support"]})
    assert set(cells["touchpoint"]) == {"Chat", "Email"}
    assert cells["overall"].iloc[0] == pytest.approx(100 * 35 / 45)
    cells, margins = journey.sentiment_map(store, start="2030-01-01", end="2030-12-31")
    assert cells.empty and margins.empty and journey.sentiment_pain_points(cells).empty
    with pytest.raises(Exception, match="two different"):
        journey.sentiment_map(store, rows="touchpoint", cols="touchpoint")


def test_sentiment_map_without_voice_scores_is_empty(answers):
    cells, _ = journey.sentiment_map(answers)  # answers without comments
    assert cells.empty
