"""Integration over the real exports in ../shared/datasets: each imports with the right kind, mapping
and row counts, and spot values match what plain Python reads from the same file.

The folder is not part of the repository (some licences are non-commercial): without it these tests
are skipped."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from collections import Counter
from pathlib import Path

import pytest

from conftest import assert_accounted, rows
from cx import ingest

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"

pytestmark = [
    pytest.mark.datasets,
    pytest.mark.skipif(not DATASETS.is_dir(), reason=f"real exports not found in {DATASETS}"),
]
T = dt.datetime


def dataset(relative: str) -> Path:
    path = DATASETS / relative
    if not path.exists():
        pytest.skip(f"{relative} is not in {DATASETS}")
    return path


def records(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def last_per_key(recs: list[dict[str, str]], key: str) -> dict[str, dict[str, str]]:
    """What "last one wins" keeps: the last row of the file for each key."""
    out: dict[str, dict[str, str]] = {}
    for r in recs:
        out[r[key]] = r
    return out


def accounting(result) -> tuple[int, int, int, int, int, int]:
    assert_accounted(result)
    return (result.rows_read, result.added, result.updated, result.unchanged, result.duplicates, result.rejected)


def test_olist_reviews_become_csat_responses_and_repeated_review_ids_count_as_duplicates(store):
    path = dataset("olist/olist_order_reviews_dataset.csv")
    recs = records(path)
    kept = last_per_key(recs, "review_id")
    result = ingest.import_file(store, path)
    assert result.kind == "responses"
    assert result.column_map == {
        "review_id": "response_id", "order_id": "order_id", "review_score": "csat",
        "review_comment_title": "ignore", "review_comment_message": "comment",
        "review_creation_date": "submitted_at", "review_answer_timestamp": "ignore"}
    assert result.options["csat_scale"] == [1, 5]
    assert (len(recs), len(kept)) == (8225, 8191)
    assert accounting(result) == (8225, 8191, 0, 0, 34, 0)
    by_score = Counter(int(r["review_score"]) for r in kept.values())
    assert rows(store, "SELECT CAST(csat AS INT), count(*) FROM responses GROUP BY 1 ORDER BY 1") == sorted(
        by_score.items())
    with_comment = sum(1 for r in kept.values() if r["review_comment_message"].strip())
    assert rows(store, "SELECT count(comment) FROM responses") == [(with_comment,)]
    # Portuguese text survives: the first review of the file.
    assert rows(store, "SELECT csat, comment, submitted_at FROM responses "
                       "WHERE response_id = '373cbeecea8286a2b66c97b1b157ec46'") == [
        (1.0, "Péssimo", T(2018, 8, 15))]


def test_olist_orders_and_customers(store):
    orders = ingest.import_file(store, dataset("olist/olist_orders_dataset.csv"))
    assert orders.kind == "orders"
    assert {c: t for c, t in orders.column_map.items() if t != "ignore"} == {
        "order_id": "order_id", "customer_id": "customer_id", "order_status": "status",
        "order_purchase_timestamp": "ordered_at"}
    assert accounting(orders) == (8135, 8135, 0, 0, 0, 0)
    assert rows(store, "SELECT customer_id, status, ordered_at FROM orders "
                       "WHERE order_id = 'a4591c265e18cb1dcee52889e2d8acc3'") == [
        ("503740e9ca751ccdda7ba28e9ab8f608", "delivered", T(2017, 7, 9, 21, 57, 5))]

    customers = ingest.import_file(store, dataset("olist/olist_customers_dataset.csv"))
    assert customers.kind == "customers"
    assert {c: t for c, t in customers.column_map.items() if t != "ignore"} == {
        "customer_id": "customer_id", "customer_state": "region"}
    assert accounting(customers) == (8135, 8135, 0, 0, 0, 0)
    states = Counter(r["customer_state"] for r in records(dataset("olist/olist_customers_dataset.csv")))
    assert rows(store, "SELECT region, count(*) FROM customers GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3") == sorted(
        states.items(), key=lambda kv: (-kv[1], kv[0]))[:3]


def test_telco_customers_have_tenure_in_months_and_a_churned_flag(store):
    path = dataset("telco/Telco-Customer-Churn.csv")
    recs = records(path)
    result = ingest.import_file(store, path)
    assert result.kind == "customers"
    assert {c: t for c, t in result.column_map.items() if t != "ignore"} == {
        "customerID": "customer_id", "tenure": "tenure", "Contract": "plan", "MonthlyCharges": "mrr",
        "Churn": "churned"}
    assert accounting(result) == (7043, 7043, 0, 0, 0, 0)
    churned = sum(r["Churn"] == "Yes" for r in recs)
    tenure = sum(int(r["tenure"]) for r in recs)
    mrr = sum(float(r["MonthlyCharges"]) for r in recs)
    assert (churned, tenure) == (1869, 227990)
    [(n_churned, n_active, total_tenure, total_mrr, units)] = rows(
        store, "SELECT count(*) FILTER (WHERE churned), count(*) FILTER (WHERE NOT churned), sum(tenure), sum(mrr), "
               "list(DISTINCT tenure_unit) FROM customers")
    assert (n_churned, n_active, total_tenure, units) == (1869, 7043 - 1869, 227990.0, ["month"])
    assert total_mrr == pytest.approx(mrr, abs=1e-6)
    assert rows(store, "SELECT tenure, churned, plan, mrr FROM customers WHERE customer_id = '7590-VHVEG'") == [
        (1.0, False, "Month-to-month", 29.85)]


def test_cdnow_whitespace_transactions_total_what_the_file_says(store):
    path = dataset("cdnow/CDNOW_master.txt")
    with open(path, encoding="ascii") as fh:
        lines = [ln.split() for ln in fh if ln.strip()]
    header, data = lines[0], lines[1:]
    total = sum(float(v[3]) for v in data)
    cds = sum(int(v[2]) for v in data)
    buyers = len({v[0] for v in data})
    assert (header, len(data), buyers) == (["customer_id", "date", "number_of_cds", "dollar_value"], 69659, 23570)

    result = ingest.import_file(store, path)
    assert result.kind == "orders"
    assert result.column_map == {"customer_id": "customer_id", "date": "ordered_at", "number_of_cds": "quantity",
                                 "dollar_value": "amount"}
    assert accounting(result) == (69659, 69659, 0, 0, 0, 0)
    [(n, amount, quantity, customers, first, last)] = rows(
        store, "SELECT count(*), sum(amount), sum(quantity), count(DISTINCT customer_id), min(ordered_at), "
               "max(ordered_at) FROM orders")
    assert (n, quantity, customers, first, last) == (69659, cds, 23570, T(1997, 1, 1), T(1998, 6, 30))
    assert amount == pytest.approx(total, abs=0.01) and round(total, 2) == 2500315.63
    assert rows(store, "SELECT ordered_at, quantity, amount FROM orders WHERE customer_id = '00001'") == [
        (T(1997, 1, 1), 1.0, 11.77)]


def test_bpi_2012_gzip_events_with_offsets_in_utc(store):
    path = dataset("bpi2012/bpi_challenge_2012_events.csv.gz")
    result = ingest.import_file(store, path)
    assert result.kind == "events"
    assert {c: t for c, t in result.column_map.items() if t != "ignore"} == {
        "case_id": "customer_id", "concept:name": "step", "time:timestamp": "occurred_at"}
    assert accounting(result) == (262200, 262200, 0, 0, 0, 0)
    assert rows(store, "SELECT count(DISTINCT customer_id) FROM events") == [(13087,)]
    # The file's first event, 2011-10-01T00:38:44.546+02:00, is 22:38:44.546 UTC the day before.
    assert rows(store, "SELECT occurred_at, step FROM events WHERE customer_id = '173688' "
                       "ORDER BY occurred_at LIMIT 2") == [
        (T(2011, 9, 30, 22, 38, 44, 546000), "A_SUBMITTED"), (T(2011, 9, 30, 22, 38, 44, 880000), "A_PARTLYSUBMITTED")]


def test_servicenow_incident_log_keeps_the_last_update_of_each_incident_with_day_first_dates(store):
    path = dataset("servicenow/incident_event_log.csv")
    recs = records(path)
    kept = last_per_key(recs, "number")
    result = ingest.import_file(store, path)
    assert result.kind == "tickets"
    assert {c: t for c, t in result.column_map.items() if t != "ignore"} == {
        "number": "ticket_id", "incident_state": "status", "reopen_count": "reopens", "caller_id": "customer_id",
        "opened_at": "created_at", "contact_type": "channel", "category": "category", "priority": "priority",
        "assignment_group": "team", "resolved_at": "resolved_at"}
    assert result.options["date_order"] == "dmy"
    assert "Dates are day-first (a day above 12 appears in the first position)." in result.notes
    assert (len(recs), len(kept)) == (5998, 890)
    assert accounting(result) == (5998, 890, 0, 0, 5108, 0)
    resolved = sum(r["resolved_at"] != "?" for r in kept.values())   # "?" marks a missing value
    assert rows(store, "SELECT count(*), count(resolved_at), count(customer_id) FROM tickets") == [
        (890, resolved, sum(r["caller_id"] != "?" for r in kept.values()))]
    assert rows(store, "SELECT status, count(*) FROM tickets GROUP BY 1") == sorted(
        Counter(r["incident_state"] for r in kept.values()).items())
    # 29-02-2016 01:16 is 29 February (a leap day), read day-first.
    assert rows(store, "SELECT created_at, resolved_at, status FROM tickets WHERE ticket_id = 'INC0000045'") == [
        (T(2016, 2, 29, 1, 16), T(2016, 2, 29, 11, 29), "Closed")]

    again = ingest.import_file(store, path)
    assert accounting(again) == (5998, 0, 0, 890, 5108, 0)
    assert store.row_counts()["tickets"] == 890
