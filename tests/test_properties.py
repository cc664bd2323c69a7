"""Property-based tests (hypothesis): generated CSV exports with valid and invalid rows, quoted text,
repeated keys and malformed lines. Whatever the file, every row read is accounted for exactly once,
the rejects are exactly the invalid rows, and importing the same file again adds nothing.

(tests/test_ingest.py has the simplest such property, NPS text only; these vary every column.)"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cx import ingest
from cx.store import Store
from tests.conftest import assert_accounted

# Each value is (text written to the file, whether the importer must accept it).
IDS = st.sampled_from([("r1", True), ("r2", True), (" r2 ", True), ("r3", True), ("r-4", True), ("", False),
                       ("N/A", False)])
DATES = st.sampled_from([
    ("2024-01-05", True), ("2024-01-05 10:30", True), ("2023-12-31T23:59:59Z", True), ("2024-02-29", True),
    ("2024-03-10T23:30:00+02:00", True),
    ("2024-02-30", False), ("yesterday", False), ("0001-01-01", False), ("9999-12-31", False), ("", False),
])
SCORES = st.one_of(
    st.integers(0, 10).map(lambda n: (str(n), True)),
    st.sampled_from([(" 9 ", True), ("7.0", True), ("", True), ("N/A", True), ("-1", False), ("11", False),
                     ("ten", False), ("7.5", False), ("1e9", False)]),
)
COMMENTS = st.text(alphabet=st.sampled_from(list("abc XYZ,\"'\né😀;")), max_size=40)
ROW = st.tuples(IDS, DATES, SCORES, COMMENTS)


def _csv(rows: list[tuple], ragged: list[int]) -> tuple[str, int]:
    """The export's text, and how many malformed lines (one value too many) it holds."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["response_id", "submitted_at", "nps", "comment"])
    bad = 0
    for i, ((rid, _), (date, _), (score, _), comment) in enumerate(rows):
        writer.writerow([rid, date, score, comment])
        if i in ragged:
            buf.write(f"x{i},2024-01-05,5,too,many\n")
            bad += 1
    return buf.getvalue(), bad


MAPPING = {"response_id": "response_id", "submitted_at": "submitted_at", "nps": "nps", "comment": "comment"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=3, max_size=25), ragged=st.sets(st.integers(2, 24), max_size=2))
def test_every_row_is_imported_rejected_or_a_duplicate_and_reimport_adds_nothing(rows, ragged):
    text, bad_lines = _csv(rows, ragged)
    valid_ids = [rid.strip() for (rid, ok_id), (_, ok_date), (_, ok_score), _ in rows if ok_id and ok_date and ok_score]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "answers.csv"
        path.write_text(text, encoding="utf-8")
        store = Store(Path(tmp) / "store.duckdb")
        try:
            first = ingest.import_file(store, path, kind="responses", column_map=MAPPING,
                                       options=ingest.Options(date_order="ymd"))
            assert_accounted(first)
            assert first.rows_read == len(rows) + bad_lines
            assert first.rejected == len(rows) - len(valid_ids) + bad_lines
            assert (first.added, first.updated, first.unchanged) == (len(set(valid_ids)), 0, 0)
            assert first.duplicates == len(valid_ids) - len(set(valid_ids))
            assert len(ingest.batch_rejects(store, first.batch_id)) >= first.rejected
            assert store.row_counts()["responses"] == len(set(valid_ids))

            again = ingest.import_file(store, path, kind="responses", column_map=MAPPING,
                                       options=ingest.Options(date_order="ymd"))
            assert_accounted(again)
            assert (again.rows_read, again.rejected, again.duplicates) == (first.rows_read, first.rejected,
                                                                           first.duplicates)
            assert (again.added, again.updated, again.unchanged) == (0, 0, len(set(valid_ids)))
            assert store.row_counts()["responses"] == len(set(valid_ids))
        finally:
            store.close()


AMOUNTS = st.one_of(
    st.integers(0, 500).map(lambda n: (f"{n}.50", True)),
    st.sampled_from([("1,234.50", True), ("$12", True), ("-3", False), ("free", False)]),
)
ORDER = st.tuples(st.sampled_from(["c1", "c2"]), st.sampled_from([("2024-01-05", True), ("2024-13-01", False)]),
                  AMOUNTS)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders=st.lists(ORDER, min_size=1, max_size=20))
def test_orders_without_ids_keep_identical_purchases_and_reimport_adds_nothing(orders):
    # No order id: the key is generated from the row's content and its occurrence number, so two
    # identical lines are two purchases, and the same file again matches them one for one.
    lines = ["customer_id,ordered_at,amount"] + [f'{c},{d},"{a}"' for c, (d, _), (a, _) in orders]
    n_valid = sum(ok_d and ok_a for _, (_, ok_d), (_, ok_a) in orders)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "orders.csv"
        path.write_text("\n".join(lines) + "\n")
        store = Store(Path(tmp) / "store.duckdb")
        try:
            mapping = {"customer_id": "customer_id", "ordered_at": "ordered_at", "amount": "amount"}
            first = ingest.import_file(store, path, kind="orders", column_map=mapping)
            assert_accounted(first)
            assert (first.rows_read, first.added, first.duplicates, first.rejected) == (
                len(orders), n_valid, 0, len(orders) - n_valid)
            again = ingest.import_file(store, path, kind="orders", column_map=mapping)
            assert (again.added, again.updated, again.unchanged) == (0, 0, n_valid)
            assert store.row_counts()["orders"] == n_valid
        finally:
            store.close()
