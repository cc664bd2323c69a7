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


def test_rows_without_a_value_are_no_segment_in_what_changed(tmp_path):
    """Two periods of NPS answers; the journey stage is blank on every answer, and the blank answers
    drop from three promoters in four to three detractors in four. Overall NPS falls (50 → −50), but no change is
    reported for a stage “nan”."""
    from datetime import date

    from cx import insights
    from cx.engine import backend_for
    from cx.filters import Filters
    from cx.ingest import import_file
    from cx.settings import Settings
    from cx.store import open_store

    store = open_store(tmp_path / "blank.duckdb")
    rows = ["response_id,customer_id,submitted_at,nps,journey_stage,channel"]
    # January 4-31 (the comparison period): answers 4, 8, … are detractors, the rest promoters;
    # February the other way round.
    rows += [f"a{i},c{i},2026-01-{4 + i % 28:02d},{0 if i % 4 == 0 else 10},,web" for i in range(56)]
    rows += [f"b{i},d{i},2026-02-{1 + i % 28:02d},{10 if i % 4 == 0 else 0},,web" for i in range(56)]
    path = tmp_path / "answers.csv"
    path.write_text("\n".join(rows) + "\n")
    import_file(store, path, kind="responses")
    filters = Filters(start=date(2026, 2, 1), end=date(2026, 2, 28), compare="previous")
    changes = [c for c in insights.what_changed(backend_for(store), store, filters, Settings()) if c.metric == "nps"]
    assert [(c.dimension, c.segment) for c in changes] == [(None, None), ("channel", "web")]
    assert changes[0].value == -50 and changes[0].value_before == 50 and changes[0].n == 56
