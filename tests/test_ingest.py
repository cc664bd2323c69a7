"""Import of export files: every format, encoding, delimiter and value convention, row-level rejects,
idempotent upserts, batch removal, saved mappings, and file-level errors that leave the store as it was.

Every fixture is written here by hand; the numbers asserted are counted from the rows as commented."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import tempfile
import zipfile
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_accounted, rows, store_digest
from cx import ingest
from cx.errors import AmbiguousValues, MappingError, UnknownBatch, UnknownFormat, UnreadableFile
from cx.ingest import ImportResult, Inspection, Options
from cx.store import Store

T = dt.datetime


def imported(store, path, **kwargs) -> ImportResult:
    """Import and check the row accounting, which must hold for every import."""
    result = ingest.import_file(store, path, **kwargs)
    assert_accounted(result)
    return result


def rejects_of(store, batch_id: int) -> list[dict]:
    """``batch_rejects`` as plain records, an empty cell as None."""
    return [{k: (None if pd.isna(v) else v) for k, v in r.items()}
            for r in ingest.batch_rejects(store, batch_id).to_dict("records")]


def counts(result: ImportResult) -> tuple[int, int, int, int, int, int]:
    return (result.rows_read, result.added, result.updated, result.unchanged, result.duplicates, result.rejected)


# ------------------------------------------------------------------------------------------------
# Formats and delimiters
# ------------------------------------------------------------------------------------------------
# Three responses; r2's comment holds the delimiter, so it must be quoted.
RESPONSES = [
    ("r1", "2024-03-01 10:00", "10", "Great service"),
    ("r2", "2024-03-02 11:30", "3", "Slow; late, and rude|really"),
    ("r3", "2024-03-03 09:15", "7", "OK"),
]
EXPECTED_RESPONSES = [
    ("r1", T(2024, 3, 1, 10, 0), 10.0, "Great service"),
    ("r2", T(2024, 3, 2, 11, 30), 3.0, "Slow; late, and rude|really"),
    ("r3", T(2024, 3, 3, 9, 15), 7.0, "OK"),
]


def _delimited(delimiter: str) -> str:
    lines = [delimiter.join(("response_id", "submitted_at", "nps", "comment"))]
    for rid, at, nps, comment in RESPONSES:
        lines.append(delimiter.join((rid, at, nps, f'"{comment}"')))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("name", "delimiter", "reported"),
    [("comma.csv", ",", ","), ("tab.tsv", "\t", "tab"), ("semicolon.csv", ";", ";"), ("pipe.txt", "|", "|")],
)
def test_delimited_text_imports_every_row_whatever_the_delimiter(store, write, name, delimiter, reported):
    path = write(name, _delimited(delimiter))
    found = ingest.inspect_file(store, path)
    assert (found.file_format, found.delimiter, found.has_header, found.kind) == ("csv", reported, True, "responses")
    result = imported(store, path)
    assert counts(result) == (3, 3, 0, 0, 0, 0)
    assert rows(store, "SELECT response_id, submitted_at, nps, comment FROM responses ORDER BY 1") == EXPECTED_RESPONSES


def test_whitespace_separated_with_header_like_cdnow(store, write):
    # customer, date (YYYYMMDD), number of CDs, dollar value; columns padded with runs of spaces.
    path = write("cdnow.txt", (
        " customer_id  date number_of_cds  dollar_value\r\n"
        " 00001 19970101  1   11.77\r\n"      # c1 buys once...
        " 00002 19970112  1   12.00\r\n"
        " 00002 19970112  5   77.00\r\n"      # ...c2 twice on the same day (two real purchases)
        " 00003 19970102  2   20.76\r\n"
    ))
    found = ingest.inspect_file(store, path)
    assert (found.file_format, found.delimiter, found.has_header) == ("text", "whitespace", True)
    assert found.columns == ["customer_id", "date", "number_of_cds", "dollar_value"]
    result = imported(store, path, kind="orders")
    assert result.column_map == {"customer_id": "customer_id", "date": "ordered_at", "number_of_cds": "quantity",
                                 "dollar_value": "amount"}
    assert counts(result) == (4, 4, 0, 0, 0, 0)
    # Leading zeros of ids survive: they are text, not numbers.
    assert rows(store, "SELECT customer_id, ordered_at, quantity, amount FROM orders ORDER BY 1, 4") == [
        ("00001", T(1997, 1, 1), 1.0, 11.77),
        ("00002", T(1997, 1, 12), 1.0, 12.0),
        ("00002", T(1997, 1, 12), 5.0, 77.0),
        ("00003", T(1997, 1, 2), 2.0, 20.76),
    ]


def test_whitespace_separated_without_header_is_mapped_by_position(store, write):
    path = write("noheader.txt", (
        "00001 19970101 1 11.77\n"
        "00002 19970102 2 1,234.50\n"   # a thousands separator: a comma inside a value, not a delimiter
        "00001 19970103 1 3.00\n"
    ))
    found = ingest.inspect_file(store, path, kind="orders")
    assert (found.delimiter, found.has_header, found.columns) == ("whitespace", False,
                                                                  ["column1", "column2", "column3", "column4"])
    result = imported(store, path, kind="orders", column_map={
        "column1": "customer_id", "column2": "ordered_at", "column3": "quantity", "column4": "amount"})
    assert counts(result) == (3, 3, 0, 0, 0, 0)
    assert rows(store, "SELECT customer_id, ordered_at, amount FROM orders ORDER BY ordered_at") == [
        ("00001", T(1997, 1, 1), 11.77), ("00002", T(1997, 1, 2), 1234.5), ("00001", T(1997, 1, 3), 3.0)]


def test_whitespace_line_with_too_few_values_is_rejected_with_its_row_number(store, write):
    path = write("short.txt", (
        "id date score\n"
        "w1 2024-01-01 9\n"
        "w2 2024-01-02\n"        # row 2: the score is missing, so the line has two values
        "w3 2024-01-03 6\n"
        "w4 2024-01-04 10\n"
    ))
    result = imported(store, path, kind="responses",
                      column_map={"id": "response_id", "date": "submitted_at", "score": "nps"})
    assert counts(result) == (4, 3, 0, 0, 0, 1)
    assert rejects_of(store, result.batch_id) == [
        {"row": 2, "column": None, "value": "w2 2024-01-02",
         "reason": "unreadable line: expected 3 values separated by spaces"}]


def test_gzip_csv_is_read_compressed(store, write):
    path = write("responses.csv.gz", gzip.compress(_delimited(",").encode()))
    result = imported(store, path)
    assert counts(result) == (3, 3, 0, 0, 0, 0)
    assert rows(store, "SELECT response_id, submitted_at, nps, comment FROM responses ORDER BY 1") == EXPECTED_RESPONSES


def _workbook(path: Path) -> Path:
    """Two sheets; the data sheet has a title and a blank row above its header (header on row 3)."""
    import openpyxl

    wb = openpyxl.Workbook()
    notes = wb.active
    notes.title = "Read me"
    notes.append(["This workbook was exported from the shop"])
    data = wb.create_sheet("Orders")
    data.append(["Orders export, 1 May 2024"])
    data.append([])
    data.append(["Order ID", "Customer ID", "Order Date", "Total"])
    data.append(["o1", "c1", dt.datetime(2024, 1, 5, 10, 30), 12.5])   # a real Excel date-time
    data.append(["o2", "c2", "2024-01-06", 1234.5])                     # a date typed as text
    data.append(["o3", "c1", dt.datetime(2024, 1, 7), 3])
    wb.save(path)
    return path


@pytest.mark.parametrize("sheet", ["Orders", 2, "2"])
def test_xlsx_sheet_by_name_or_number_with_header_below_a_title(store, tmp_path, sheet):
    path = _workbook(tmp_path / "orders.xlsx")
    found = ingest.inspect_file(store, path, sheet=sheet)
    assert (found.file_format, found.sheets, found.sheet, found.header_row) == ("excel", ["Read me", "Orders"],
                                                                                "Orders", 3)
    assert found.columns == ["Order ID", "Customer ID", "Order Date", "Total"]
    result = imported(store, path, sheet=sheet)
    assert result.kind == "orders"
    assert counts(result) == (3, 3, 0, 0, 0, 0)
    assert rows(store, "SELECT order_id, customer_id, ordered_at, amount FROM orders ORDER BY 1") == [
        ("o1", "c1", T(2024, 1, 5, 10, 30), 12.5), ("o2", "c2", T(2024, 1, 6), 1234.5), ("o3", "c1", T(2024, 1, 7), 3.0)]


def test_xlsx_unknown_sheet_names_the_sheets_there_are(store, tmp_path):
    path = _workbook(tmp_path / "orders.xlsx")
    before = store_digest(store)
    with pytest.raises(MappingError, match="no sheet 'Invoices'") as err:
        ingest.import_file(store, path, sheet="Invoices")
    assert err.value.fix == "Choose one of: Read me, Orders."
    assert store_digest(store) == before


def test_parquet_typed_columns_are_read(store, tmp_path):
    path = tmp_path / "events.parquet"
    duckdb.sql(
        "COPY (SELECT * FROM (VALUES "
        "('u1', TIMESTAMP '2024-01-01 10:00:00', 'signup', 's1'), "
        "('u1', TIMESTAMP '2024-01-02 10:00:00', 'purchase', 's2'), "
        "('u2', TIMESTAMP '2024-01-02 11:00:00', 'signup', NULL)) t(user_id, timestamp, event, session_id)) "
        f"TO '{path}' (FORMAT parquet)"
    )
    found = ingest.inspect_file(store, path)
    assert (found.file_format, found.kind) == ("parquet", "events")
    result = imported(store, path)
    assert counts(result) == (3, 3, 0, 0, 0, 0)
    assert rows(store, "SELECT customer_id, occurred_at, step, session_id FROM events ORDER BY 2") == [
        ("u1", T(2024, 1, 1, 10), "signup", "s1"), ("u1", T(2024, 1, 2, 10), "purchase", "s2"),
        ("u2", T(2024, 1, 2, 11), "signup", None)]


def test_parquet_written_by_pyarrow_with_a_time_zone_is_stored_in_utc(store, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "customers.parquet"
    pq.write_table(pa.table({
        "customer_id": ["c1", "c2"],
        "signup_at": pa.array([T(2024, 1, 1, 8, 0), T(2024, 6, 1, 22, 0)], type=pa.timestamp("s", tz="UTC")),
        "churned": [True, False],
        "mrr": [19.5, 120.0],
    }), path)
    result = imported(store, path, kind="customers")
    assert counts(result) == (2, 2, 0, 0, 0, 0)
    assert rows(store, "SELECT customer_id, signup_at, churned, mrr FROM customers ORDER BY 1") == [
        ("c1", T(2024, 1, 1, 8), True, 19.5), ("c2", T(2024, 6, 1, 22), False, 120.0)]


def test_json_array_of_records(store, write):
    path = write("responses.json", json.dumps([
        {"response_id": "j1", "submitted_at": "2024-02-01T10:00:00Z", "nps": 10, "comment": "Très bien"},
        {"response_id": "j2", "submitted_at": "2024-02-02T10:00:00Z", "nps": None, "csat": 4},
        {"response_id": "j3", "submitted_at": "2024-02-03T10:00:00Z", "nps": 0, "extra": {"nested": [1, 2]}},
    ], ensure_ascii=False))
    result = imported(store, path)
    assert (result.kind, counts(result)) == ("responses", (3, 3, 0, 0, 0, 0))
    assert rows(store, "SELECT response_id, submitted_at, nps, csat, comment FROM responses ORDER BY 1") == [
        ("j1", T(2024, 2, 1, 10), 10.0, None, "Très bien"),
        ("j2", T(2024, 2, 2, 10), None, 4.0, None),
        ("j3", T(2024, 2, 3, 10), 0.0, None, None)]


def test_ndjson_values_keep_their_text_not_their_json_quotes(store, write):
    path = write("responses.ndjson", (
        '{"response_id": "k1", "submitted_at": "2024-02-01 10:00", "nps": 10}\n'
        '{"response_id": "k2", "submitted_at": "2024-02-02 10:00", "nps": "7"}\n'   # a score written as a string
        '{"response_id": "k3", "submitted_at": "2024-02-03 10:00", "nps": 9.0}\n'
    ))
    result = imported(store, path)
    assert (result.kind, counts(result)) == ("responses", (3, 3, 0, 0, 0, 0))
    assert rows(store, "SELECT response_id, nps FROM responses ORDER BY 1") == [("k1", 10.0), ("k2", 7.0), ("k3", 9.0)]


def test_json_times_with_offsets_are_not_shifted_twice_by_the_time_zone_option(store, write):
    path = write("offsets.json", json.dumps([
        {"response_id": "o1", "submitted_at": "2024-03-10T23:30:00+02:00", "nps": 9},   # 21:30 UTC
        {"response_id": "o2", "submitted_at": "2024-07-01 09:00", "nps": 8},            # Paris summer: 07:00 UTC
    ]))
    imported(store, path, options=Options(timezone="Europe/Paris"))
    assert rows(store, "SELECT response_id, submitted_at FROM responses ORDER BY 1") == [
        ("o1", T(2024, 3, 10, 21, 30)), ("o2", T(2024, 7, 1, 7, 0))]


def test_utf16_json_from_powershell_is_read(store, write):
    path = write("ps.json", '[{"customer_id": "c1", "region": "Zürich"}]', encoding="utf-16")
    result = imported(store, path, kind="customers")
    assert result.added == 1
    assert rows(store, "SELECT customer_id, region FROM customers") == [("c1", "Zürich")]


# ------------------------------------------------------------------------------------------------
# Encodings: the text must come out right in the store
# ------------------------------------------------------------------------------------------------
CUSTOMERS_TEXT = (
    "customer_id;signup_at;region;plan\n"
    "c1;2024-01-05;Zürich;Crème brûlée €\n"
    "c2;2024-01-06;São Paulo;Élan\n"
    "c3;2024-01-07;Kraków;l’été\n"
)


@pytest.mark.parametrize(
    ("encoding", "data", "detected"),
    [
        ("UTF-8", CUSTOMERS_TEXT.encode("utf-8"), "utf-8"),
        ("UTF-8 with BOM", b"\xef\xbb\xbf" + CUSTOMERS_TEXT.encode("utf-8"), "utf-8"),
        ("UTF-16 with BOM", CUSTOMERS_TEXT.encode("utf-16"), "utf-16"),
        ("UTF-16 LE without BOM", CUSTOMERS_TEXT.encode("utf-16-le"), "utf-16-le"),
        # What Excel on Windows writes: €, ’ and the accented letters of Western Europe, one byte each.
        ("Windows-1252", CUSTOMERS_TEXT.encode("cp1252"), "cp1252"),
    ],
)
def test_encodings_come_out_right_in_the_store(store, write, encoding, data, detected):
    path = write("customers.csv", data)
    found = ingest.inspect_file(store, path)
    assert (found.encoding, found.columns) == (detected, ["customer_id", "signup_at", "region", "plan"])
    result = imported(store, path)
    assert (result.kind, counts(result)) == ("customers", (3, 3, 0, 0, 0, 0))
    assert rows(store, "SELECT customer_id, region, plan FROM customers ORDER BY 1") == [
        ("c1", "Zürich", "Crème brûlée €"), ("c2", "São Paulo", "Élan"), ("c3", "Kraków", "l’été")]


def test_latin1_file_reads_accented_letters(store, write):
    # ISO-8859-1 (no € sign in it), as old Unix tools write.
    path = write("latin1.csv", "customer_id,region,plan\nc1,Besançon,Crème\nc2,Málaga,Größe\n", encoding="latin-1")
    result = imported(store, path, kind="customers")
    assert counts(result) == (2, 2, 0, 0, 0, 0)
    assert rows(store, "SELECT region, plan FROM customers ORDER BY 1") == [("Besançon", "Crème"), ("Málaga", "Größe")]


def test_utf8_file_with_one_windows_1252_line_far_down_is_transcoded_not_rejected(store, write):
    # 3,000 UTF-8 rows (more than the sample used to detect the encoding), then one row pasted from a
    # Windows tool in Windows-1252.
    head = "response_id,submitted_at,nps,comment\n" + "".join(f"r{i},2024-01-01,{i % 11},fine\n" for i in range(3000))
    path = write("mixed.csv", head.encode() + "rX,2024-01-02,7,Crème brûlée\n".encode("cp1252"))
    result = imported(store, path)
    assert counts(result) == (3001, 3001, 0, 0, 0, 0)
    assert rows(store, "SELECT comment FROM responses WHERE response_id = 'rX'") == [("Crème brûlée",)]


# ------------------------------------------------------------------------------------------------
# Dates and time zones
# ------------------------------------------------------------------------------------------------
def test_day_first_dates_are_detected(store, write):
    path = write("dmy.csv", (
        "response_id,submitted_at,nps\n"
        "r1,25/03/2024 14:05,9\n"    # 25 cannot be a month: the file is day-first
        "r2,03/04/2024,3\n"          # so this is 3 April
        "r3,1.2.2024,5\n"            # dots as separators: 1 February
    ))
    result = imported(store, path)
    assert "Dates are day-first (a day above 12 appears in the first position)." in result.notes
    assert result.options["date_order"] == "dmy"
    assert rows(store, "SELECT response_id, submitted_at FROM responses ORDER BY 1") == [
        ("r1", T(2024, 3, 25, 14, 5)), ("r2", T(2024, 4, 3)), ("r3", T(2024, 2, 1))]


def test_month_first_dates_are_detected_including_two_digit_years(store, write):
    path = write("mdy.csv", (
        "response_id,submitted_at,nps\n"
        "m1,03/25/2024 2:05 PM,9\n"  # 25 in second position: month-first
        "m2,03/04/2024,3\n"          # so this is 4 March
        "m3,12/31/24 23:59,3\n"      # two-digit year: 2024, not the year 24
    ))
    result = imported(store, path)
    assert "Dates are month-first (a day above 12 appears in the second position)." in result.notes
    assert counts(result) == (3, 3, 0, 0, 0, 0)
    assert rows(store, "SELECT response_id, submitted_at FROM responses ORDER BY 1") == [
        ("m1", T(2024, 3, 25, 14, 5)), ("m2", T(2024, 3, 4)), ("m3", T(2024, 12, 31, 23, 59))]


AMBIGUOUS = (
    "response_id,submitted_at,nps\n"
    "a1,03/04/2024,9\n"   # 3 April or 4 March?
    "a2,05/06/2024,3\n"   # 5 June or 6 May? No day above 12 settles it.
)


def test_ambiguous_dates_are_asked_about_and_the_store_is_unchanged(store, write):
    path = write("ambiguous.csv", AMBIGUOUS)
    assert ingest.inspect_file(store, path).questions == [
        "Dates like 03/04/2024 could be 3 April or 4 March: choose day-first (dmy) or month-first (mdy)."]
    before = store_digest(store)
    with pytest.raises(AmbiguousValues) as err:
        ingest.import_file(store, path)
    assert err.value.choices == ("dmy", "mdy")
    assert "--date-order" in err.value.fix
    assert store_digest(store) == before
    assert store.row_counts()["responses"] == 0 and ingest.list_batches(store).empty


@pytest.mark.parametrize(("order", "expected"), [
    ("dmy", [("a1", T(2024, 4, 3)), ("a2", T(2024, 6, 5))]),
    ("mdy", [("a1", T(2024, 3, 4)), ("a2", T(2024, 5, 6))]),
])
def test_ambiguous_dates_are_read_in_the_chosen_order(store, write, order, expected):
    path = write("ambiguous.csv", AMBIGUOUS)
    result = imported(store, path, options=Options(date_order=order))
    assert result.options["date_order"] == order
    assert rows(store, "SELECT response_id, submitted_at FROM responses ORDER BY 1") == expected


def test_dates_that_contradict_each_other_are_asked_about(store, write):
    path = write("mixed.csv", "response_id,submitted_at,nps\nx1,13/04/2024,9\nx2,05/26/2024,3\n")
    with pytest.raises(AmbiguousValues, match="mix day-first and month-first"):
        ingest.import_file(store, path)


def test_iso_times_with_offsets_are_converted_to_utc(store, write):
    path = write("iso.csv", (
        "response_id,submitted_at,nps\n"
        "i1,2024-03-10T23:30:00+02:00,9\n"       # 21:30 UTC
        "i2,2024-03-10T23:30:00Z,3\n"            # already UTC
        "i3,2024-03-10 23:30:00-05:00,3\n"       # 04:30 UTC the next day
        "i4,2024-03-10T23:30:00.250+0530,4\n"    # 18:00:00.250 UTC
    ))
    imported(store, path)
    assert rows(store, "SELECT response_id, submitted_at FROM responses ORDER BY 1") == [
        ("i1", T(2024, 3, 10, 21, 30)), ("i2", T(2024, 3, 10, 23, 30)), ("i3", T(2024, 3, 11, 4, 30)),
        ("i4", T(2024, 3, 10, 18, 0, 0, 250000))]


def test_timezone_option_converts_local_times_to_utc(store, write):
    path = write("paris.csv", (
        "response_id,submitted_at,nps\n"
        "t1,2024-07-01 09:00,9\n"                # CEST (UTC+2): 07:00 UTC
        "t2,2024-01-15 09:00,3\n"                # CET (UTC+1): 08:00 UTC
        "t3,2024-01-15T09:00:00+00:00,5\n"       # an explicit offset wins over the option
    ))
    result = imported(store, path, options=Options(timezone="Europe/Paris"))
    assert result.options["timezone"] == "Europe/Paris"
    assert rows(store, "SELECT response_id, submitted_at FROM responses ORDER BY 1") == [
        ("t1", T(2024, 7, 1, 7)), ("t2", T(2024, 1, 15, 8)), ("t3", T(2024, 1, 15, 9))]


def test_timezone_applies_to_day_first_dates_too(store, write):
    path = write("ny.csv", "ticket_id,created_at\nT1,25/07/2024 09:00\nT2,02/01/2024 17:30\n")
    imported(store, path, kind="tickets", options=Options(timezone="America/New_York"))
    assert rows(store, "SELECT ticket_id, created_at FROM tickets ORDER BY 1") == [
        ("T1", T(2024, 7, 25, 13, 0)),   # EDT, UTC−4
        ("T2", T(2024, 1, 2, 22, 30)),   # EST, UTC−5
    ]


def test_unknown_time_zone_is_a_mapping_error():
    with pytest.raises(MappingError, match="Time zone 'Mars/Olympus' is not known"):
        Options.from_dict({"timezone": "Mars/Olympus"})


def test_bad_and_missing_dates_are_rejected_once_each_with_their_reason(store, write):
    path = write("dates.csv", (
        "response_id,submitted_at,nps\n"
        "d1,2024-01-01,9\n"
        "d2,,9\n"               # row 2: no date
        "d3,not a date,9\n"     # row 3: text that is no date
        "d4,1850-01-01,9\n"     # row 4: before 1900, a wrong column or format
    ))
    result = imported(store, path)
    assert counts(result) == (4, 1, 0, 0, 0, 3)
    assert rejects_of(store, result.batch_id) == [
        {"row": 2, "column": "submitted_at", "value": None, "reason": "Submitted at is missing"},
        {"row": 3, "column": "submitted_at", "value": "not a date", "reason": "not a date"},
        {"row": 4, "column": "submitted_at", "value": "1850-01-01",
         "reason": "date outside 1900–2100; check the date column and its format"},
    ]


# ------------------------------------------------------------------------------------------------
# Null markers, flags, numbers
# ------------------------------------------------------------------------------------------------
def test_null_markers_become_empty_values_not_rejects(store, write):
    path = write("nulls.csv", (
        "response_id,submitted_at,nps,csat,channel,comment\n"
        "n1,2024-01-01,9,?,web,?\n"          # ? as in ServiceNow exports
        "n2,2024-01-02,N/A,4,-,N/A\n"        # N/A and -
        "n3,2024-01-03,-,,?,\n"              # empty cells
        "n4,2024-01-04,,5,  ,  \n"           # blanks
    ))
    result = imported(store, path)
    assert counts(result) == (4, 4, 0, 0, 0, 0)
    assert rows(store, "SELECT response_id, nps, csat, channel, comment FROM responses ORDER BY 1") == [
        ("n1", 9.0, None, "web", None), ("n2", None, 4.0, None, None), ("n3", None, None, None, None),
        ("n4", None, 5.0, None, None)]


def test_blank_text_is_empty_and_text_is_trimmed_at_its_ends(store, write):
    path = write("blank-comments.csv", (
        "response_id,submitted_at,nps,comment\n"
        'r1,2024-01-01,9,"\r\n"\n'                 # only a line break
        'r2,2024-01-01,9,"  Great\nservice \r\n"\n'  # a line break inside stays
        "r3,2024-01-01,9,\u00a0\n"                   # a no-break space
    ))
    imported(store, path)
    assert rows(store, "SELECT response_id, comment FROM responses ORDER BY 1") == [
        ("r1", None), ("r2", "Great\nservice"), ("r3", None)]


def test_extra_null_markers_from_the_command_line_options():
    opts = Options.from_strings({"nulls": "unknown|(none)", "csat_scale": "1-10", "decimal": ","})
    assert {"unknown", "(none)", "?", "N/A", "-", ""} <= set(opts.null_markers)
    assert (opts.csat_scale, opts.decimal) == ((1, 10), ",")


def test_yes_no_true_false_one_zero_flags(store, write):
    path = write("flags.csv", (
        "customer_id,tenure,churned\n"
        "c1,12,yes\n" "c2,3,No\n" "c3,1,TRUE\n" "c4,0,false\n" "c5,7,1\n" "c6,8,0\n" "c7,9,Y\n" "c8,2,n\n"
        "c9,4,maybe\n"      # row 9: not a yes/no value
    ))
    result = imported(store, path, kind="customers")
    assert counts(result) == (9, 8, 0, 0, 0, 1)
    assert rows(store, "SELECT customer_id, churned, tenure, tenure_unit FROM customers ORDER BY 1") == [
        ("c1", True, 12.0, "month"), ("c2", False, 3.0, "month"), ("c3", True, 1.0, "month"),
        ("c4", False, 0.0, "month"), ("c5", True, 7.0, "month"), ("c6", False, 8.0, "month"),
        ("c7", True, 9.0, "month"), ("c8", False, 2.0, "month")]
    assert rejects_of(store, result.batch_id) == [
        {"row": 9, "column": "churned", "value": "maybe", "reason": "not a yes/no value"}]


def test_thousands_separators_with_a_decimal_point(store, write):
    path = write("dot.csv", (
        "customer_id,mrr\n"
        'c1,"1,234.56"\n'          # 1234.56
        "c2,12.5\n"
        'c3,"12,345,678.9"\n'      # 12345678.9
        "c4,$99.00\n"              # currency sign dropped
        "c5,1.234\n"               # a decimal point, not a thousands separator: 1.234
        'c6,"1,23"\n'              # row 6: a comma in the wrong place for a thousands separator
    ))
    result = imported(store, path, kind="customers")
    assert counts(result) == (6, 5, 0, 0, 0, 1)
    assert rows(store, "SELECT customer_id, mrr FROM customers ORDER BY 1") == [
        ("c1", 1234.56), ("c2", 12.5), ("c3", 12345678.9), ("c4", 99.0), ("c5", 1.234)]
    assert rejects_of(store, result.batch_id) == [
        {"row": 6, "column": "mrr", "value": "1,23", "reason": "not a number"}]


def test_decimal_comma_with_dot_thousands_is_detected(store, write):
    path = write("comma.csv", (
        "customer_id;mrr\n"
        "d1;1.234,56\n"            # 1234.56
        "d2;12,5\n"                # 12.5
        "d3;1234\n"
        "d4;12.345.678,9\n"        # 12345678.9
        "d5;0,99\n"
    ))
    result = imported(store, path, kind="customers")
    assert result.options["decimal"] == ","
    assert "Numbers use a decimal comma (1.234,56)." in result.notes
    assert counts(result) == (5, 5, 0, 0, 0, 0)
    assert rows(store, "SELECT customer_id, mrr FROM customers ORDER BY 1") == [
        ("d1", 1234.56), ("d2", 12.5), ("d3", 1234.0), ("d4", 12345678.9), ("d5", 0.99)]


# ------------------------------------------------------------------------------------------------
# Scores and rejects
# ------------------------------------------------------------------------------------------------
SCORES = (
    "response_id,submitted_at,nps,csat\n"
    "s1,2024-01-01,9,5\n"
    "s2,2024-01-02,11,4\n"      # row 2: NPS above 10
    "s3,2024-01-03,ten,4\n"     # row 3: a word, not a number
    "s4,2024-01-04,7.5,3\n"     # row 4: NPS is a whole number
    "s5,2024-01-05,-1,2\n"      # row 5: NPS below 0
    "s6,2024-01-06,0,6\n"       # row 6: CSAT 6 on a 1–5 scale
    "s7,2024-01-07,12,0\n"      # row 7: both scores wrong, two rejects for one row
    "s8,2024-01-08,10,1\n"
)


def test_scores_outside_their_scale_are_rejected_per_row_with_the_reason(store, write):
    path = write("scores.csv", SCORES)
    result = imported(store, path, options=Options(csat_scale=(1, 5)))
    assert counts(result) == (8, 2, 0, 0, 0, 6)
    assert rows(store, "SELECT response_id, nps, csat, csat_min, csat_max FROM responses ORDER BY 1") == [
        ("s1", 9.0, 5.0, 1, 5), ("s8", 10.0, 1.0, 1, 5)]
    nps_reason = "NPS score must be a whole number from 0 to 10"
    assert rejects_of(store, result.batch_id) == [
        {"row": 2, "column": "nps", "value": "11", "reason": nps_reason},
        {"row": 3, "column": "nps", "value": "ten", "reason": "not a number"},
        {"row": 4, "column": "nps", "value": "7.5", "reason": nps_reason},
        {"row": 5, "column": "nps", "value": "-1", "reason": nps_reason},
        {"row": 6, "column": "csat", "value": "6", "reason": "CSAT score outside its 1–5 scale"},
        {"row": 7, "column": "csat", "value": "0", "reason": "CSAT score outside its 1–5 scale"},
        {"row": 7, "column": "nps", "value": "12", "reason": nps_reason},
    ]
    listed = ingest.list_batches(store).iloc[0]
    assert (listed.rows_read, listed.added, listed.rejected, listed.rows_now) == (8, 2, 6, 2)


def test_one_typo_does_not_stretch_the_detected_scale(store, write):
    # 20 CSAT answers on 1–5, one of them typed 55: the scale stays 1–5 and the 55 is rejected.
    body = "".join(f"c{i},2024-02-{i + 1:02d},{1 + i % 5}\n" for i in range(19)) + "c19,2024-02-20,55\n"
    path = write("csat.csv", "response_id,submitted_at,csat\n" + body)
    result = imported(store, path)
    assert result.options["csat_scale"] == [1, 5]
    assert "CSAT read on a 1–5 scale (highest value seen: 55); 1 value outside it will be rejected." in result.notes
    assert counts(result) == (20, 19, 0, 0, 0, 1)
    assert rejects_of(store, result.batch_id) == [
        {"row": 20, "column": "csat", "value": "55", "reason": "CSAT score outside its 1–5 scale"}]


def test_a_zero_to_ten_csat_scale_is_detected(store, write):
    path = write("csat10.csv", "response_id,submitted_at,csat\n" + "".join(
        f"c{i},2024-02-01,{i}\n" for i in range(11)))   # every answer 0..10 once
    result = imported(store, path)
    assert result.options["csat_scale"] == [0, 10]
    assert counts(result) == (11, 11, 0, 0, 0, 0)


def test_malformed_lines_are_rejected_with_the_file_row_numbers_of_the_rows_after_them(store, write):
    path = write("broken.csv", (
        "response_id,submitted_at,nps\n"
        "b1,2024-01-01,9\n"
        "b2,2024-01-01,9,extra\n"    # row 2: one value too many
        "b3,2024-01-01,9,x,y\n"      # row 3: two too many
        "b4,2024-01-01,8\n"
        "b5,2024-01-01,11\n"         # row 5: a value reject after two unreadable lines
    ) + "".join(f"f{i},2024-01-02,{i % 11}\n" for i in range(20)))
    result = imported(store, path)
    assert counts(result) == (25, 22, 0, 0, 0, 3)
    assert [(r["row"], r["column"]) for r in rejects_of(store, result.batch_id)] == [
        (2, None), (3, None), (5, "nps")]
    assert ingest.batch_rejects(store, result.batch_id, limit=1)["reason"].tolist() == [
        "unreadable line: 4 values where the header has 3 (a delimiter inside an unquoted value?)"]


def test_rejects_unknown_batch_is_an_error(store):
    with pytest.raises(UnknownBatch, match="There is no batch 42"):
        ingest.batch_rejects(store, 42)


# ------------------------------------------------------------------------------------------------
# Upserts: idempotent re-import, last one wins, duplicates
# ------------------------------------------------------------------------------------------------
def test_reimporting_the_same_file_adds_nothing(store, write):
    path = write("responses.csv", _delimited(","))
    first = imported(store, path)
    version = store.data_version()
    second = imported(store, path)
    assert counts(first) == (3, 3, 0, 0, 0, 0)
    assert counts(second) == (3, 0, 0, 3, 0, 0)
    assert second.batch_id == first.batch_id + 1
    assert store.row_counts()["responses"] == 3
    # The identical rows are restamped with the second batch; their first versions wait in history, so
    # removing either batch leaves the rows the other delivered.
    assert rows(store, "SELECT count(*) FROM responses_history") == [(3,)]
    assert store.data_version() == version + 1


def test_reimporting_orders_without_ids_adds_nothing_and_keeps_identical_purchases(store, write):
    # No order id: the key is generated from the content. c1 bought the same thing twice on one day.
    body = "customer_id,order_date,amount\nc1,2024-01-01,10\nc1,2024-01-01,10\nc2,2024-01-02,5\n"
    path = write("orders.csv", body)
    first = imported(store, path)
    second = imported(store, path)
    assert counts(first) == (3, 3, 0, 0, 0, 0)
    assert counts(second) == (3, 0, 0, 3, 0, 0)
    assert rows(store, "SELECT customer_id, count(*), sum(amount) FROM orders GROUP BY 1 ORDER BY 1") == [
        ("c1", 2, 20.0), ("c2", 1, 5.0)]


def test_last_one_wins_and_updates_are_counted(store, write):
    jan = write("jan.csv", "response_id,submitted_at,nps\nr1,2024-01-01,9\nr2,2024-01-02,3\nr3,2024-01-03,5\n")
    feb = write("feb.csv", (
        "response_id,submitted_at,nps\n"
        "r2,2024-01-02,4\n"     # r2 corrected from 3 to 4: updated
        "r3,2024-01-03,5\n"     # r3 as before: unchanged
        "r4,2024-01-04,10\n"    # new
    ))
    imported(store, jan)
    result = imported(store, feb)
    assert counts(result) == (3, 1, 1, 1, 0, 0)
    assert rows(store, "SELECT response_id, nps FROM responses ORDER BY 1") == [
        ("r1", 9.0), ("r2", 4.0), ("r3", 5.0), ("r4", 10.0)]
    # r2's old score and r3's unchanged first delivery are both kept for batch removal.
    assert rows(store, "SELECT response_id, nps, batch_id FROM responses_history ORDER BY 1") == [
        ("r2", 3.0, 1), ("r3", 5.0, 1)]


def test_duplicates_within_one_file_are_counted_and_the_last_one_kept(store, write):
    path = write("dups.csv", (
        "response_id,submitted_at,nps\n"
        "r1,2024-01-01,9\n"
        "r2,2024-01-02,3\n"
        "r1,2024-01-01,6\n"     # r1 again: this later row wins
        "r1,2024-01-01,7\n"     # and again: the last one wins
        "r3,2024-01-03,11\n"    # rejected, not a duplicate
    ))
    result = imported(store, path)
    assert counts(result) == (5, 2, 0, 0, 2, 1)
    assert rows(store, "SELECT response_id, nps FROM responses ORDER BY 1") == [("r1", 7.0), ("r2", 3.0)]


def test_import_frame_takes_canonical_columns(store):
    frame = pd.DataFrame({
        "response_id": ["f1", "f2"], "submitted_at": pd.to_datetime(["2024-05-01 08:00", "2024-05-02 09:30"]),
        "csat": [4, 2], "csat_min": [1, 1], "csat_max": [5, 5], "channel": ["web", None],
    })
    result = ingest.import_frame(store, "responses", frame, file_name="notebook")
    assert_accounted(result)
    assert (result.file_name, counts(result)) == ("notebook", (2, 2, 0, 0, 0, 0))
    assert rows(store, "SELECT response_id, submitted_at, csat, csat_max, channel FROM responses ORDER BY 1") == [
        ("f1", T(2024, 5, 1, 8), 4.0, 5, "web"), ("f2", T(2024, 5, 2, 9, 30), 2.0, 5, None)]


# ------------------------------------------------------------------------------------------------
# Batches
# ------------------------------------------------------------------------------------------------
def test_removing_a_batch_restores_what_it_overwrote_and_keeps_earlier_batches(store, write):
    jan = write("jan.csv", "response_id,submitted_at,nps\nr1,2024-01-01,9\nr2,2024-01-02,3\n")
    feb = write("feb.csv", (
        "response_id,submitted_at,nps\n"
        "r2,2024-01-02,8\n"     # overwrites January's r2 (3)
        "r3,2024-02-01,10\n"    # new in February
        "r4,2024-02-02,12\n"    # rejected
    ))
    b1 = imported(store, jan).batch_id
    b2 = imported(store, feb).batch_id
    assert len(ingest.batch_rejects(store, b2)) == 1
    version = store.data_version()

    assert ingest.remove_batch(store, b2) == {"batch_id": b2, "kind": "responses", "file_name": "feb.csv",
                                              "rows_removed": 2, "rows_restored": 1}
    assert store.data_version() > version
    assert rows(store, "SELECT response_id, nps, batch_id FROM responses ORDER BY 1") == [
        ("r1", 9.0, b1), ("r2", 3.0, b1)]
    assert rows(store, "SELECT count(*) FROM responses_history") == [(0,)]
    assert ingest.list_batches(store)["batch_id"].tolist() == [b1]
    assert rows(store, "SELECT count(*) FROM rejects") == [(0,)]
    with pytest.raises(UnknownBatch):
        ingest.batch_rejects(store, b2)
    with pytest.raises(UnknownBatch, match=f"There is no batch {b2}"):
        ingest.remove_batch(store, b2)


def test_removing_a_middle_batch_keeps_the_newer_version(store, write):
    one = write("1.csv", "response_id,submitted_at,nps\nr1,2024-01-01,1\n")
    two = write("2.csv", "response_id,submitted_at,nps\nr1,2024-01-01,2\n")
    three = write("3.csv", "response_id,submitted_at,nps\nr1,2024-01-01,3\n")
    b1, b2, b3 = (imported(store, p).batch_id for p in (one, two, three))
    ingest.remove_batch(store, b2)   # its version was already superseded by batch 3
    assert rows(store, "SELECT nps, batch_id FROM responses") == [(3.0, b3)]
    ingest.remove_batch(store, b3)   # now batch 1's version is the one to come back
    assert rows(store, "SELECT nps, batch_id FROM responses") == [(1.0, b1)]


def test_list_batches_shows_the_accounting_newest_first(store, write):
    imported(store, write("a.csv", "response_id,submitted_at,nps\nr1,2024-01-01,9\nr1,2024-01-01,8\n"))
    imported(store, write("b.csv", "ticket_id,created_at\nT1,2024-01-01 10:00\n"), kind="tickets")
    listed = ingest.list_batches(store)
    assert listed[["batch_id", "kind", "file_name", "file_format", "rows_read", "added", "updated", "unchanged",
                   "duplicates", "rejected", "rows_now"]].to_dict("records") == [
        {"batch_id": 2, "kind": "tickets", "file_name": "b.csv", "file_format": "csv", "rows_read": 1, "added": 1,
         "updated": 0, "unchanged": 0, "duplicates": 0, "rejected": 0, "rows_now": 1},
        {"batch_id": 1, "kind": "responses", "file_name": "a.csv", "file_format": "csv", "rows_read": 2, "added": 1,
         "updated": 0, "unchanged": 0, "duplicates": 1, "rejected": 0, "rows_now": 1},
    ]


# ------------------------------------------------------------------------------------------------
# Mappings and dimensions
# ------------------------------------------------------------------------------------------------
HELPDESK = "Ticket #,Opened,Team Name,Rating,Plan Tier\n"


def test_a_confirmed_mapping_is_applied_to_the_same_header_next_time(store, write):
    first = write("march.csv", HELPDESK + "T1,2024-03-01 10:00,Billing,5,gold\nT2,2024-03-02 11:00,Tech,3,silver\n")
    mapping = {"Ticket #": "ticket_id", "Opened": "created_at", "Team Name": "team", "Rating": "csat",
               "Plan Tier": "dim:plan_tier"}
    imported(store, first, kind="tickets", column_map=mapping)

    april = write("april.csv", HELPDESK + "T3,2024-04-01 10:00,Billing,4,bronze\n")
    found = ingest.inspect_file(store, april)
    assert (found.saved, found.kind, found.column_map) == (True, "tickets", mapping)
    result = imported(store, april)   # no kind, no mapping: the saved one applies
    assert (result.kind, result.column_map, result.added) == ("tickets", mapping, 1)
    saved = ingest.list_mappings(store)
    assert len(saved) == 1 and saved.iloc[0].uses == 2 and json.loads(saved.iloc[0].mapping) == mapping


def test_the_analysts_edit_wins_over_the_saved_mapping(store, write):
    mapping = {"Ticket #": "ticket_id", "Opened": "created_at", "Team Name": "team", "Rating": "csat",
               "Plan Tier": "dim:plan_tier"}
    imported(store, write("march.csv", HELPDESK + "T1,2024-03-01 10:00,Billing,5,gold\n"), kind="tickets",
             column_map=mapping)
    result = imported(store, write("may.csv", HELPDESK + "T4,2024-05-01 10:00,Billing,4,bronze\n"),
                      column_map={"Team Name": "ignore", "Plan Tier": "dim:tier"})
    assert result.column_map == {"Ticket #": "ticket_id", "Opened": "created_at", "Team Name": "ignore",
                                 "Rating": "csat", "Plan Tier": "dim:tier"}
    assert rows(store, "SELECT ticket_id, team, plan_tier, tier FROM tickets ORDER BY 1") == [
        ("T1", "Billing", "gold", None), ("T4", None, None, "bronze")]
    saved = ingest.list_mappings(store).iloc[0]
    assert json.loads(saved.mapping)["Plan Tier"] == "dim:tier"   # the edit is what is saved now

    ingest.delete_mapping(store, saved.signature)
    assert ingest.list_mappings(store).empty
    assert not ingest.inspect_file(store, write("june.csv", HELPDESK + "T5,2024-06-01,Tech,2,gold\n")).saved


def test_a_saved_date_order_gives_way_to_what_the_next_file_shows(store, write):
    header = "response_id,submitted_at,nps\n"
    imported(store, write("uk.csv", header + "u1,25/03/2024,9\n"))                 # day-first, saved
    ambiguous = imported(store, write("uk2.csv", header + "u2,03/04/2024,9\n"))    # settles nothing: saved order
    assert "Dates read day-first, as saved with this export's mapping." in ambiguous.notes
    us = imported(store, write("us.csv", header + "u3,03/25/2024,9\n"))            # clearly month-first
    assert counts(us) == (1, 1, 0, 0, 0, 0)
    assert rows(store, "SELECT response_id, submitted_at FROM responses ORDER BY 1") == [
        ("u1", T(2024, 3, 25)), ("u2", T(2024, 4, 3)), ("u3", T(2024, 3, 25))]


def test_mapped_dimensions_become_columns_usable_as_breakdowns(store, write):
    path = write("survey.csv", (
        "response_id,submitted_at,nps,Store Name,Visit Reason\n"
        "r1,2024-01-01,9,Paris Opéra,Return\n"
        "r2,2024-01-02,4,Lyon,Purchase\n"
        "r3,2024-01-03,10,Paris Opéra,Purchase\n"
    ))
    result = imported(store, path, column_map={"Store Name": "dim:store", "Visit Reason": "dim:visit_reason"})
    assert result.column_map["Store Name"] == "dim:store"
    assert store.dimensions("responses")[-2:] == ["store", "visit_reason"]
    assert rows(store, "SELECT store, count(*), avg(nps) FROM responses GROUP BY store ORDER BY store") == [
        ("Lyon", 1, 4.0), ("Paris Opéra", 2, 9.5)]


def test_keep_extra_keeps_unmapped_columns_as_named_dimensions(store, write):
    path = write("extra.csv", "response_id,submitted_at,nps,Store Name,Device Type\nr1,2024-01-01,9,Lyon,iOS\n")
    result = imported(store, path, keep_extra=True)
    assert (result.column_map["Store Name"], result.column_map["Device Type"]) == ("dim:store_name", "dim:device_type")
    assert rows(store, "SELECT store_name, device_type FROM responses") == [("Lyon", "iOS")]


def test_a_dimension_cannot_shadow_a_canonical_field(store, write):
    path = write("bad-dim.csv", "response_id,submitted_at,nps,Where\nr1,2024-01-01,9,Lyon\n")
    before = store_digest(store)
    with pytest.raises(MappingError, match="'channel' cannot name a dimension"):
        ingest.import_file(store, path, column_map={"Where": "dim:channel"})
    assert store_digest(store) == before


def test_mapping_an_unknown_column_names_the_columns_there_are(store, write):
    path = write("r.csv", "response_id,submitted_at,nps\nr1,2024-01-01,9\n")
    with pytest.raises(MappingError, match="The file has no column 'Score'") as err:
        ingest.import_file(store, path, column_map={"Score": "nps"})
    assert err.value.fix == "Use one of its columns: 'response_id', 'submitted_at', 'nps'."


# ------------------------------------------------------------------------------------------------
# File-level errors: a specific error naming the problem and the fix, and the store unchanged
# ------------------------------------------------------------------------------------------------
def _truncated_gzip_beyond_the_sample() -> bytes:
    text = "response_id,submitted_at,nps\n" + "".join(f"t{i},2024-01-01,{i % 11}\n" for i in range(200_000))
    whole = gzip.compress(text.encode())
    return whole[: len(whole) - 2000]   # the first 64 KB decompress fine; the end is missing


def _zip_archive() -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("export/responses.csv", "response_id,submitted_at,nps\nr1,2024-01-01,9\n")
    return buf.getvalue()


FILE_ERRORS = [
    # (file name, content, kind, error class, words the message must contain)
    ("empty.csv", b"", None, UnreadableFile, "empty.csv is empty (0 bytes)"),
    ("blank.csv", b"\n \n\t\n", None, UnreadableFile, "blank.csv contains no data"),
    ("header-only.csv", b"response_id,submitted_at,nps\n", None, UnreadableFile,
     "header-only.csv has a header but no data rows"),
    ("photo.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, None, UnreadableFile,
     "photo.csv looks like a binary file, not a text export"),
    ("cut.csv.gz", gzip.compress(b"response_id,submitted_at,nps\n" + b"r1,2024-01-01,9\n" * 5000)[:100], None,
     UnreadableFile, "cut.csv.gz is a damaged gzip file"),
    ("cut-late.csv.gz", _truncated_gzip_beyond_the_sample(), None, UnreadableFile,
     "cut-late.csv.gz is a damaged or incomplete gzip file"),
    ("archive.csv", _zip_archive(), None, UnknownFormat, "archive.csv is a zip archive, not a spreadsheet"),
    ("fake.xlsx", b"name,score\nx,1\n", None, UnreadableFile, "fake.xlsx is named like an Excel file but is not one"),
    ("fake.parquet", b"name,score\nx,1\n", None, UnreadableFile, "fake.parquet is named .parquet but is not"),
    ("notes.txt", b"lorem ipsum dolor sit amet\nconsectetur adipiscing elit\n", None, MappingError,
     "Could not tell what notes.txt holds"),
    ("unrelated.csv", b"foo,bar,baz\n1,2,3\n4,5,6\n", None, MappingError,
     "Could not tell what unrelated.csv holds: its columns ('foo', 'bar', 'baz') do not match"),
    ("no-created.csv", b"ticket_id,status\nT1,open\n", "tickets", MappingError,
     "Required field not mapped for tickets: Created at"),
    ("no-score.csv", b"response_id,submitted_at,comment\nr1,2024-01-01,hello\n", "responses", MappingError,
     "No score column is mapped"),
    ("numbers.json", b"[1, 2, 3]", None, UnreadableFile, "numbers.json is JSON but not a list of records"),
    ("wrapped.json", b'{"data": [{"response_id": "r1", "nps": 9}]}', None, UnreadableFile,
     "wrapped.json is a JSON object that wraps the records"),
    ("cut.json", b'[{"response_id": "r1", "nps": 9},', None, UnreadableFile,
     "cut.json is not valid JSON: the array does not end with ']'"),
    ("broken.json", b'[{"response_id": "r1", "nps": 9}, {"nps": }]', None, UnreadableFile,
     "broken.json is not valid JSON"),
    ("broken.ndjson", b'{"response_id": "r1"}\n{"response_id": \n', None, UnreadableFile,
     "broken.ndjson is not valid NDJSON"),
    ("empty.json", b"[]", None, UnreadableFile, "empty.json holds no records"),
    ("bad-utf16.csv", b"\xff\xfe" + "response_id,submitted_at,nps\nr1,2024-01-01,9\n".encode("utf-16-le")
     + b"\x00\xd8" + "r2,2024-01-01,9\n".encode("utf-16-le"), None, UnreadableFile,
     "bad-utf16.csv is not valid UTF-16 text (illegal UTF-16 surrogate"),
]


@pytest.mark.parametrize(("name", "content", "kind", "error", "words"), FILE_ERRORS, ids=[c[0] for c in FILE_ERRORS])
def test_file_level_errors_name_the_problem_and_the_fix_and_leave_the_store_unchanged(
        store, write, name, content, kind, error, words):
    imported(store, write("earlier.csv", "response_id,submitted_at,nps\nr0,2024-01-01,9\n"))
    before = store_digest(store)
    path = write(name, content)
    with pytest.raises(error) as err:
        ingest.import_file(store, path, kind=kind)
    assert type(err.value) is error
    assert words in err.value.problem
    assert err.value.fix and len(err.value.fix) > 10
    assert store_digest(store) == before


def test_a_missing_file_is_unreadable(store, tmp_path):
    with pytest.raises(UnreadableFile, match="does not exist"):
        ingest.import_file(store, tmp_path / "nowhere.csv")


def test_unknown_kind_is_a_mapping_error(store, write):
    with pytest.raises(MappingError, match="Unknown kind 'surveys'"):
        ingest.import_file(store, write("r.csv", "a\n1\n"), kind="surveys")


# ------------------------------------------------------------------------------------------------
# Inspection
# ------------------------------------------------------------------------------------------------
def test_inspection_proposes_kind_mapping_and_conventions_without_storing_anything(store, write):
    path = write("qualtrics.csv", (
        "Response ID,Date Submitted,How likely are you to recommend us?,Why?,Channel\n"
        "R_1,25/03/2024 10:00,10,Great service,web\n"
        "R_2,26/03/2024 11:30,3,Slow delivery,app\n"
    ))
    before = store_digest(store)
    found = ingest.inspect_file(store, path)
    assert isinstance(found, Inspection)
    assert found.kind == "responses" and found.confidence >= 0.5
    assert found.column_map == {"Response ID": "response_id", "Date Submitted": "submitted_at",
                                "How likely are you to recommend us?": "nps", "Why?": "comment",
                                "Channel": "channel"}
    assert found.options.date_order == "dmy" and found.questions == []
    assert found.preview.shape == (2, 5) and found.sample_rows == 2
    assert max(found.kind_scores, key=found.kind_scores.get) == "responses"
    assert json.loads(json.dumps(found.as_dict(), default=str))["columns"] == found.columns
    assert store_digest(store) == before


# ------------------------------------------------------------------------------------------------
# Property: the row accounting always balances, and a re-import adds nothing
# ------------------------------------------------------------------------------------------------
SCORE_TEXT = st.one_of(st.integers(-2, 12).map(str), st.sampled_from(["ten", "7.5", "", "N/A", " 9 "]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 7), SCORE_TEXT), min_size=1, max_size=30))
def test_row_accounting_always_balances_and_reimport_adds_nothing(answers):
    # Each answer is (response id number, score text); ids repeat on purpose, so rows update each other.
    lines = ["response_id,submitted_at,nps"] + [f"r{i},2024-01-01 10:00,{score}" for i, score in answers]

    def valid(score: str) -> bool:
        s = score.strip()
        return s in ("", "N/A") or (s.lstrip("-").isdigit() and 0 <= int(s) <= 10)

    kept = {i for i, score in answers if valid(score)}
    n_valid = sum(valid(score) for _, score in answers)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "answers.csv"
        path.write_text("\n".join(lines) + "\n")
        store = Store(Path(tmp) / "store.duckdb")
        try:
            mapping = {"response_id": "response_id", "submitted_at": "submitted_at", "nps": "nps"}
            first = ingest.import_file(store, path, kind="responses", column_map=mapping)
            assert_accounted(first)
            assert (first.rows_read, first.rejected) == (len(answers), len(answers) - n_valid)
            assert (first.added, first.updated, first.unchanged, first.duplicates) == (
                len(kept), 0, 0, n_valid - len(kept))
            again = ingest.import_file(store, path, kind="responses", column_map=mapping)
            assert_accounted(again)
            assert (again.added, again.updated, again.unchanged) == (0, 0, len(kept))
            assert store.row_counts()["responses"] == len(kept)
        finally:
            store.close()


def test_removing_an_older_batch_keeps_rows_a_later_batch_delivered_again(store, tmp_path):
    # January delivers a and b; February delivers a again, unchanged, and c.
    jan = tmp_path / "jan.csv"
    jan.write_text("response_id,submitted_at,nps\na,2024-01-01,9\nb,2024-01-02,3\n")
    feb = tmp_path / "feb.csv"
    feb.write_text("response_id,submitted_at,nps\na,2024-01-01,9\nc,2024-02-01,7\n")
    first = ingest.import_file(store, jan)
    second = ingest.import_file(store, feb)
    assert (second.added, second.unchanged) == (1, 1)
    ingest.remove_batch(store, first.batch_id)
    ids = store.query_df("SELECT response_id FROM responses ORDER BY 1")["response_id"].tolist()
    assert ids == ["a", "c"]  # a stays: February delivered it too; b goes
    ingest.remove_batch(store, second.batch_id)
    assert store.row_counts()["responses"] == 0


def test_removing_the_later_batch_keeps_the_row_the_earlier_one_delivered(store, tmp_path):
    jan = tmp_path / "jan.csv"
    jan.write_text("response_id,submitted_at,nps\na,2024-01-01,9\n")
    first = ingest.import_file(store, jan)
    second = ingest.import_file(store, jan)  # the same file again
    assert (second.added, second.unchanged) == (0, 1)
    ingest.remove_batch(store, second.batch_id)
    assert store.query_df("SELECT response_id, batch_id FROM responses").values.tolist() == [["a", first.batch_id]]
