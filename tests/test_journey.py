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
