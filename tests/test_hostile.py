"""The hostile corpus (tests/hostile/ + tests/hostile_corpus.py): every broken or hostile export ends in
either a specific error naming what, where and the fix, with the store byte-for-byte unchanged, or a
partial import whose rejected rows are counted and explained one by one. Never a stack trace.

tests/test_ingest.py holds the importer's own unit cases (inline bytes); this file runs the corpus a
person can also drop on the Data page, through inspection (what the page does first) and import."""

from __future__ import annotations

from pathlib import Path

import pytest

from cx import ingest
from cx.errors import MappingError, UnreadableFile
from cx.store import Store, open_store
from tests.conftest import assert_accounted, rows, run_app, store_digest
from tests.hostile_corpus import ENCRYPTED_XLSX, large_files, small_files

HOSTILE = Path(__file__).parent / "hostile"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """Committed small files where they are, large ones written for this run."""
    out = {name: HOSTILE / name for name in [*small_files(), ENCRYPTED_XLSX]}
    folder = tmp_path_factory.mktemp("hostile-large")
    for name, content in large_files().items():
        (folder / name).write_bytes(content)
        out[name] = folder / name
    return out


def test_every_small_case_is_committed_in_the_corpus_folder():
    assert sorted(p.name for p in HOSTILE.iterdir()) == sorted([*small_files(), ENCRYPTED_XLSX])


def _earlier(store: Store) -> None:
    """Data already in the store, which a file-level error must leave exactly as it is."""
    path = store.path.parent / "earlier.csv"
    path.write_text("response_id,submitted_at,nps\nr0,2024-01-01,9\n")
    ingest.import_file(store, path)


# (file, kind, error class, words of the problem, words of the fix)
FILE_LEVEL = [
    ("empty.csv", None, UnreadableFile, "empty.csv is empty (0 bytes).", "Export the data again"),
    ("header-only.csv", None, UnreadableFile, "header-only.csv has a header but no data rows.",
     "including its rows below the header"),
    ("binary-renamed.csv", None, UnreadableFile, "binary-renamed.csv looks like a binary file, not a text export.",
     "Export the data as CSV, Excel, Parquet or JSON"),
    ("truncated.csv.gz", None, UnreadableFile,
     "truncated.csv.gz is a damaged gzip file (Compressed file ended before the end-of-stream marker was reached).",
     "Export or compress the file again."),
    ("truncated-late.csv.gz", None, UnreadableFile, "truncated-late.csv.gz is a damaged or incomplete gzip file",
     "it was probably cut short"),
    ("wide-10000-columns.csv", None, UnreadableFile,
     "wide-10000-columns.csv has 10,000 columns; Touchpoint reads at most 2,000.", "Export only the columns you need"),
    ("duplicate-headers.csv", None, MappingError,
     "The header names 'nps' more than once, so that column is ambiguous.", "Rename the duplicated columns"),
    (ENCRYPTED_XLSX, None, UnreadableFile,
     "password-protected.xlsx is an encrypted or legacy Office file (it may be password-protected).",
     "remove the password"),
    ("not-records.json", None, UnreadableFile, "not-records.json is not JSON records.",
     "as a JSON array ([{…}, {…}]) or as NDJSON"),
    ("number.json", None, UnreadableFile, "number.json is not JSON records.", "or as NDJSON (one object per line)"),
    ("array-of-arrays.json", None, UnreadableFile,
     "array-of-arrays.json is JSON but not a list of records (objects with named fields).", "as a JSON array"),
    ("wrapped-records.json", None, UnreadableFile,
     "wrapped-records.json is a JSON object that wraps the records, not a list of records.",
     "save the inner list"),
    ("list-scores.parquet", None, MappingError,
     "Column 'nps' of list-scores.parquet holds a list in each row (INTEGER[]), not one value, so it cannot be read as nps.",
     "one plain value per row (flatten or unnest it)"),
]


@pytest.mark.parametrize(("name", "kind", "error", "problem", "fix"), FILE_LEVEL, ids=[c[0] for c in FILE_LEVEL])
def test_a_file_level_problem_is_named_with_its_fix_and_the_store_is_unchanged(
        store, corpus, name, kind, error, problem, fix):
    _earlier(store)
    before = store_digest(store)
    with pytest.raises(error) as err:
        ingest.import_file(store, corpus[name], kind=kind)
    assert type(err.value) is error
    assert problem in err.value.problem
    assert fix in err.value.fix
    assert store_digest(store) == before
    assert store.row_counts()["responses"] == 1 and len(ingest.list_batches(store)) == 1


# (file, kind, (rows read, added, duplicates, rejected), [(row, column, reason), …] of the rejects)
PARTIAL = [
    ("ragged-rows.csv", None, (4, 2, 0, 2), [
        (2, "channel", "unreadable line: 3 values where the header has 4 (a value is missing)"),
        (3, None, "unreadable line: 5 values where the header has 4 (a delimiter inside an unquoted value?)"),
    ]),
    ("extreme-dates.csv", None, (3, 1, 0, 2), [
        (1, "submitted_at", "date outside 1900–2100; check the date column and its format"),
        (2, "submitted_at", "date outside 1900–2100; check the date column and its format"),
    ]),
    ("scores-as-text.csv", None, (3, 1, 0, 2), [
        (1, "nps", "not a number"),
        (2, "csat", "not a number"),
    ]),
    ("negative-money.csv", None, (4, 2, 0, 2), [
        (2, "amount", "negative amount; import refunds as orders with status 'refunded' and a positive amount"),
        (3, "amount", "negative amount; import refunds as orders with status 'refunded' and a positive amount"),
    ]),
    ("merged-cells.xlsx", None, (3, 2, 0, 1), [(2, "submitted_at", "Submitted at is missing")]),
    ("mixed-encodings.csv", None, (3, 3, 0, 0), []),
    ("utf16-no-bom.csv", None, (2, 2, 0, 0), []),
    ("blank-headers.csv", None, (2, 2, 0, 0), []),
    ("one-mb-cell.csv", None, (2, 2, 0, 0), []),
    ("formulas.xlsx", None, (3, 3, 0, 0), []),
    ("formulas-calculated.xlsx", None, (2, 2, 0, 0), []),
    ("nested-types.parquet", None, (3, 3, 0, 0), []),
    ("sql-headers.csv", None, (1, 1, 0, 0), []),
]


@pytest.mark.parametrize(("name", "kind", "counts", "rejects"), PARTIAL, ids=[c[0] for c in PARTIAL])
def test_a_row_level_problem_rejects_that_row_only_with_its_reason(store, corpus, name, kind, counts, rejects):
    found = ingest.inspect_file(store, corpus[name], kind=kind)  # the Data page's first step
    assert found.sample_rows > 0
    result = ingest.import_file(store, corpus[name], kind=kind)
    assert_accounted(result)
    assert (result.rows_read, result.added, result.duplicates, result.rejected) == counts
    got = ingest.batch_rejects(store, result.batch_id)
    assert [(r.row, None if r.column != r.column else r.column, r.reason) for r in got.itertuples()] == rejects
    again = ingest.import_file(store, corpus[name], kind=kind)
    assert again.added == 0 and again.unchanged == counts[1]


def test_mixed_encodings_and_utf16_without_bom_read_every_letter_right(store, corpus):
    ingest.import_file(store, corpus["mixed-encodings.csv"])  # UTF-8 lines around a Windows-1252 one
    assert rows(store, "SELECT response_id, comment FROM responses ORDER BY 1") == [
        ("r1", "Très bien"), ("r2", "Crème brûlée à emporter"), ("r3", "Merci à vous")]
    store.clear_data()
    ingest.import_file(store, corpus["utf16-no-bom.csv"])
    assert rows(store, "SELECT response_id, comment FROM responses ORDER BY 1") == [("r1", "Grüße"), ("r2", "naïve")]


def test_a_one_megabyte_cell_is_stored_whole(store, corpus):
    ingest.import_file(store, corpus["one-mb-cell.csv"])
    assert rows(store, "SELECT response_id, length(comment) FROM responses ORDER BY 1") == [("r1", 1 << 20), ("r2", 5)]


def test_formula_text_never_becomes_data(store, corpus):
    # Uncalculated formulas read as empty cells, and the import says so; calculated ones give their result.
    result = ingest.import_file(store, corpus["formulas.xlsx"])
    assert result.notes[0].startswith("3 formula cells of sheet 'Sheet' had no calculated value")
    assert rows(store, "SELECT response_id, nps, comment FROM responses ORDER BY 1") == [
        ("r1", 9.0, None), ("r2", None, None), ("r3", 2.0, "fine")]
    store.clear_data()
    result = ingest.import_file(store, corpus["formulas-calculated.xlsx"])
    assert result.notes == ()
    assert rows(store, "SELECT response_id, nps, comment FROM responses ORDER BY 1") == [
        ("r1", 7.0, "click"), ("r2", 10.0, None)]
    texts = rows(store, "SELECT count(*) FROM responses WHERE comment LIKE '=%' OR comment LIKE '%HYPERLINK%'")
    assert texts == [(0,)]


def test_merged_cells_keep_their_value_in_the_first_row_only(store, corpus):
    ingest.import_file(store, corpus["merged-cells.xlsx"])
    assert rows(store, "SELECT response_id, channel FROM responses ORDER BY 1") == [("r1", "web"), ("r3", None)]


def test_nested_parquet_columns_are_left_out_with_a_note_and_plain_odd_types_read_as_text(store, corpus):
    result = ingest.import_file(store, corpus["nested-types.parquet"], keep_extra=True)
    assert result.notes == ("Left out 3 columns of nested values (lists, structs or maps): answers, tags, attrs.",)
    assert rows(store, "SELECT response_id, nps, wait, blob FROM responses ORDER BY 1") == [
        ("r1", 9.0, "1 month 2 days 00:00:03", "\\x00\\x01"), ("r2", 4.0, "00:00:00", "\\xFF"), ("r3", 10.0, None, None)]
    assert "answers" not in store.columns("responses")


def test_column_names_with_quotes_semicolons_and_sql_are_only_names(store, corpus):
    result = ingest.import_file(store, corpus["sql-headers.csv"], keep_extra=True)
    assert result.column_map == {
        "response_id": "response_id", "submitted_at": "submitted_at", "nps": "nps",
        'Region"; DROP TABLE responses; --': "region",
        "x'); DELETE FROM batches; --": "dim:x_delete_from_batches", "a;b": "dim:a_b"}
    assert rows(store, "SELECT region, x_delete_from_batches, a_b FROM responses") == [
        ("EU'; DROP TABLE batches; --", "1 OR 1=1", "/* c */")]
    assert len(ingest.list_batches(store)) == 1 and store.row_counts()["responses"] == 1


def test_the_cli_reports_a_hostile_file_in_one_line(tmp_path, corpus, capsys):
    from cx.__main__ import main

    code = main(["import", str(corpus[ENCRYPTED_XLSX]), "--db", str(tmp_path / "cli.duckdb")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: password-protected.xlsx is an encrypted or legacy Office file")


# ------------------------------------------------------------------------------------------------
# The Data page: a hostile upload is an st.error in plain words, never an exception
# ------------------------------------------------------------------------------------------------
UPLOAD_ERRORS = [
    ("binary-renamed.csv", False, "looks like a binary file"),
    ("truncated.csv.gz", False, "is a damaged gzip file"),
    (ENCRYPTED_XLSX, False, "may be password-protected"),
    ("wrapped-records.json", False, "wraps the records"),
    ("wide-10000-columns.csv", False, "has 10,000 columns"),
    ("duplicate-headers.csv", True, "names 'nps' more than once"),
    ("list-scores.parquet", True, "holds a list in each row"),
]


@pytest.mark.parametrize(("name", "at_import", "words"), UPLOAD_ERRORS, ids=[c[0] for c in UPLOAD_ERRORS])
def test_the_data_page_shows_a_hostile_upload_as_an_error_message(app_store_path, corpus, name, at_import, words):
    at = run_app(page="pages/data.py")
    at.file_uploader[0].upload(name, corpus[name].read_bytes(), "application/octet-stream").run()
    assert not at.exception, at.exception
    if at_import:
        assert not at.error
        at.button(key=[b.key for b in at.button if b.key and b.key.startswith("data_import_")][0]).click().run()
        assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert words in errors and "Traceback" not in errors
    assert open_store(app_store_path).row_counts()["responses"] == 0
