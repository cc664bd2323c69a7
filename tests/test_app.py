"""AppTest smoke tests of the Streamlit pages (no browser): they load, show what they should, and act."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from pathlib import Path

from cx import ingest
from cx.store import open_store
from tests.conftest import run_app

# Three responses, hand-written: r1 promoter, r2 detractor, r3 has a score outside 0–10 (rejected).
ROOT = Path(__file__).resolve().parents[1]

RESPONSES_CSV = (
    "Response ID,Date Submitted,How likely are you to recommend us?,Comment,Channel\n"
    "r1,2024-03-01 10:00,10,Great service,web\n"
    "r2,2024-03-02 11:30,3,Slow delivery,app\n"
    "r3,2024-03-03 09:15,11,Typo score,web\n"
).encode()


@pytest.fixture
def app_db(app_store_path):
    return app_store_path


def _run_app(page: str | None = "pages/data.py") -> AppTest:
    return run_app(page=page)


def test_data_page_loads_with_empty_store_and_says_what_to_import(app_db):
    at = _run_app(page=None)
    assert at.title[0].value == "Overview"
    assert "Nothing imported yet" in " ".join(c.value for c in at.sidebar.caption)
    assert "No data yet" in at.info[0].value
    at.switch_page("pages/data.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Data"
    infos = " ".join(i.value for i in at.info)
    assert "Import survey responses" in infos
    assert "No batches yet" in infos


def test_data_page_upload_proposes_mapping_and_imports_with_rejects(app_db):
    at = _run_app()
    at.file_uploader[0].upload("nps.csv", RESPONSES_CSV, "text/csv").run()
    assert not at.exception, at.exception
    mapping = at.data_editor[0].value
    maps = dict(zip(mapping["Column in file"], mapping["Maps to"]))
    assert maps == {
        "Response ID": "response_id",
        "Date Submitted": "submitted_at",
        "How likely are you to recommend us?": "nps",
        "Comment": "comment",
        "Channel": "channel",
    }
    at.button(key=[b.key for b in at.button if b.key and b.key.startswith("data_import_")][0]).click().run()
    assert not at.exception, at.exception
    assert "Imported **nps.csv** as survey responses" in " ".join(s.value for s in at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows read"] == "3"
    assert metrics["Added"] == "2"
    assert metrics["Rejected"] == "1"
    rejects = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert list(rejects["row"]) == [3]
    assert "0 to 10" in rejects["reason"].iloc[0]
    store = open_store(app_db)
    assert store.row_counts()["responses"] == 2
    assert ingest.list_batches(store)["rows_read"].tolist() == [3]


def test_data_page_lists_batches_and_remove_needs_confirmation(app_db, tmp_path):
    store = open_store(app_db)
    f = tmp_path / "nps.csv"
    f.write_bytes(RESPONSES_CSV)
    result = ingest.import_file(store, f)
    at = _run_app()
    assert at.selectbox(key="data_batch_pick").value == result.batch_id
    at.button(key="data_remove").click().run()
    assert not at.exception
    assert store.row_counts()["responses"] == 2  # nothing removed before the confirmation
    at.button(key="data_remove_yes").click().run()
    assert not at.exception, at.exception
    assert store.row_counts()["responses"] == 0
    assert ingest.list_batches(store).empty


def test_data_page_imports_several_files_at_once(app_db):
    # Two exports of different kinds, hand-written: two tickets, and three orders of which one repeats o1.
    tickets = b"Ticket ID,Created at,Status\nt1,2024-01-02 09:00,open\nt2,2024-01-03 10:00,solved\n"
    orders = b"Order ID,Customer ID,Order Date,Total\no1,c1,2024-01-05,10\no2,c2,2024-01-06,20\no1,c1,2024-01-05,12\n"
    at = _run_app()
    at.file_uploader[0].set_value([("tickets.csv", tickets, "text/csv"), ("orders.csv", orders, "text/csv")]).run()
    assert not at.exception, at.exception
    at.button(key="data_import_all_btn").click().run()
    assert not at.exception, at.exception
    assert "Imported 2 of 2 files." in " ".join(s.value for s in at.success)
    summary = next(d.value for d in at.dataframe if "Problem" in d.value.columns).set_index("File")
    assert summary.loc["tickets.csv", "Added"] == 2
    assert summary.loc["orders.csv", "Added"] == 2
    assert summary.loc["orders.csv", "Duplicates"] == 1
    store = open_store(app_db)
    assert store.row_counts()["tickets"] == 2
    assert store.query_df("SELECT amount FROM orders WHERE order_id = 'o1'")["amount"].tolist() == [12.0]


def test_ambiguous_dates_are_asked_about_then_imported_as_chosen(app_db):
    # Every date fits both orders (day and month both ≤ 12), so the page must ask.
    csv = b"Response ID,Date,NPS\nr1,03/04/2024,9\nr2,05/06/2024,2\n"
    at = _run_app()
    at.file_uploader[0].upload("ambiguous.csv", csv, "text/csv").run()
    assert not at.exception, at.exception
    assert any("3 April or 4 March" in w.value for w in at.warning)
    import_key = next(b.key for b in at.button if b.key and b.key.startswith("data_import_"))
    at.button(key=import_key).click().run()
    assert any("Choose the date order" in w.value for w in at.warning)
    store = open_store(app_db)
    assert store.row_counts()["responses"] == 0 and ingest.list_batches(store).empty
    date_key = next(s.key for s in at.selectbox if s.key and s.key.startswith("data_dates_"))
    at.selectbox(key=date_key).set_value("Day first (31/12/2024)").run()
    at.button(key=import_key).click().run()
    assert not at.exception, at.exception
    dates = store.query_df("SELECT response_id, CAST(submitted_at AS DATE) AS d FROM responses ORDER BY 1")
    assert [str(d)[:10] for d in dates["d"]] == ["2024-04-03", "2024-06-05"]


def test_an_unreadable_upload_is_explained_in_plain_words(app_db):
    at = _run_app()
    at.file_uploader[0].upload("export.csv", b"\x00\x01\x02\x03binary\x00\xff" * 50, "text/csv").run()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert "looks like a binary file" in errors and "Export the data as CSV" in errors
    assert "Traceback" not in errors


def test_data_page_offers_no_import_when_tables_live_in_another_engine(app_db, monkeypatch):
    monkeypatch.setenv("TOUCHPOINT_ENGINE", "spark://local[1]")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/data.py").run()
    assert not at.exception, at.exception
    assert "imports are made there" in at.info[0].value
    assert len(at.file_uploader) == 0


def test_after_an_import_the_overview_of_the_new_data_is_prepared_in_the_background(app_db, monkeypatch):
    """The Data page starts computing the default Overview of the new data version once an import
    commits, so the next visit to the Overview computes nothing itself and shows the imported answers."""
    from cx import insights
    from tests.conftest import finish_background_work

    computed = []
    real = insights.overview
    monkeypatch.setattr(insights, "overview", lambda *a, **k: computed.append(1) or real(*a, **k))
    at = _run_app()
    at.file_uploader[0].upload("nps.csv", RESPONSES_CSV, "text/csv").run()
    at.button(key=[b.key for b in at.button if b.key and b.key.startswith("data_import_")][0]).click().run()
    assert not at.exception, at.exception
    finish_background_work()
    assert computed == [1]
    viewer = run_app()  # someone opening the Overview next: r1 promoter, r2 detractor (r3 rejected) → NPS 0.0
    assert computed == [1]
    assert {m.label: m.value for m in viewer.metric}["NPS"] == "0.0"  # no sign on zero
