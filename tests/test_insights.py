"""The top-movers table is built from the significant segment changes only."""

from cx.insights import Change, top_movers


def test_top_movers_lists_segment_changes_with_units_and_direction():
    overall = Change("nps", None, None, 20.0, 25.0, -5.0, 0.01, 900, 880, False, "NPS fell…")
    app = Change("nps", "channel", "app", 6.3, 20.8, -14.5, 0.0004, 1378, 1290, False, "NPS for app fell…")
    table = top_movers([overall, app])
    assert table.to_dict("records") == [{
        "Metric": "NPS", "Breakdown": "channel", "Segment": "app", "Now": "+6.3", "Before": "+20.8",
        "Change": -14.5, "Better?": "worse", "n now": 1378, "n before": 1290, "p": 0.0004}]
    assert top_movers([overall]).empty
