"""The store: schema by versioned migrations, one connection per process with a cursor per query, a
data version for caches, settings, dimensions, and errors a user can act on."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import duckdb
import pytest

from conftest import rows, store_digest
from cx import ingest
from cx.errors import StoreBusy, TouchpointError, UnknownDimension
from cx.store import SCHEMA_VERSION, TABLES, Store, open_store, resolve_db_path

BOOKKEEPING = ["batches", "rejects", "mappings", "settings", "dimensions", "meta", "schema_version"]
BOOKKEEPING += ["comment_scores", "comment_themes"]  # migration 2 (cx.voice)


def test_a_new_store_has_every_table_at_the_current_schema_version(store):
    assert store.schema_version() == SCHEMA_VERSION
    tables = {r[0] for r in rows(store, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'")}
    assert tables == set(TABLES) | {f"{t}_history" for t in TABLES} | set(BOOKKEEPING)
    assert store.columns("events")[:6] == ["customer_id", "occurred_at", "step", "channel", "touchpoint", "session_id"]
    assert store.columns("customers")[-3:] == ["tenure_unit", "batch_id", "row_hash"]
    assert store.row_counts() == {t: 0 for t in TABLES}
    assert store.is_empty() and store.data_version() == 0


def test_reopening_does_not_migrate_again_and_keeps_the_data(tmp_path, write):
    path = tmp_path / "s.duckdb"
    first = Store(path)
    ingest.import_file(first, write("r.csv", "response_id,submitted_at,nps\nr1,2024-01-01,9\n"))
    first.close()
    again = Store(path)
    try:
        assert rows(again, "SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
        assert again.row_counts()["responses"] == 1 and again.data_version() == 1
    finally:
        again.close()


def test_a_store_written_by_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "future.duckdb"
    Store(path).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION + 1])
    con.close()
    with pytest.raises(TouchpointError, match="written by a newer Touchpoint") as err:
        Store(path)
    assert "Upgrade Touchpoint" in err.value.fix


def test_a_file_that_is_not_a_store_is_refused_with_a_fix(tmp_path):
    path = tmp_path / "notes.duckdb"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(TouchpointError) as err:
        Store(path)
    assert str(path) in err.value.problem and "--db" in err.value.fix
    assert path.read_text().startswith("these are my notes")


def test_a_store_held_by_another_process_is_busy(tmp_path):
    path = tmp_path / "held.duckdb"
    Store(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, sys, time; con = duckdb.connect({str(path)!r}); print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreBusy, match="open in another Touchpoint process") as err:
            Store(path)
        assert "TOUCHPOINT_DB" in err.value.fix
    finally:
        holder.kill()
        holder.wait()


def test_data_version_changes_on_import_and_removal_but_not_on_a_failed_import(store, write):
    good = write("r.csv", "response_id,submitted_at,nps\nr1,2024-01-01,9\n")
    assert store.data_version() == 0
    batch = ingest.import_file(store, good).batch_id
    assert store.data_version() == 1
    with pytest.raises(TouchpointError):
        ingest.import_file(store, write("empty.csv", b""))
    assert store.data_version() == 1
    ingest.remove_batch(store, batch)
    assert store.data_version() == 2
    store.clear_data()
    assert store.data_version() == 3


def test_clear_data_removes_rows_and_batches_but_keeps_mappings_and_settings(store, write):
    ingest.import_file(store, write("r.csv", "response_id,submitted_at,nps\nr1,2024-01-01,9\nr2,2024-01-01,99\n"))
    store.set_setting("nps_target", 40)
    store.clear_data()
    assert store.row_counts()["responses"] == 0 and store.is_empty()
    assert rows(store, "SELECT count(*) FROM rejects") == [(0,)]
    assert len(ingest.list_mappings(store)) == 1
    assert store.get_setting("nps_target") == 40


def test_settings_round_trip_as_json(store):
    assert store.get_setting("targets", default={}) == {}
    store.set_setting("targets", {"nps": 40, "csat": 0.85, "themes": ["delivery", "price"]})
    store.set_setting("targets", {"nps": 45, "csat": 0.85, "themes": ["delivery", "price"]})
    assert store.get_setting("targets") == {"nps": 45, "csat": 0.85, "themes": ["delivery", "price"]}


def test_a_transaction_lands_whole_or_not_at_all(store):
    before = store_digest(store)
    with pytest.raises(RuntimeError):
        with store.transaction() as cur:
            cur.execute("INSERT INTO settings VALUES ('half', '1')")
            raise RuntimeError("crash in the middle")
    assert store.get_setting("half") is None
    assert store_digest(store) == before


def test_dimensions_are_added_once_to_the_table_and_its_history(store):
    with store.transaction() as cur:
        store.add_dimension(cur, "tickets", "product_line", "Product line")
        store.add_dimension(cur, "tickets", "product_line", "Product line")
    assert store.dimensions("tickets") == ["status", "channel", "priority", "team", "category", "product_line"]
    assert store.columns("tickets")[-1] == "product_line"
    assert rows(store, "SELECT column_name FROM duckdb_columns() WHERE table_name = 'tickets_history' "
                       "ORDER BY column_index DESC LIMIT 1") == [("product_line",)]


@pytest.mark.parametrize("name", ["Product Line", "1st", "nps", "batch_id", "csat_max", "x" * 49, "drop;table"])
def test_a_dimension_name_must_be_safe_and_not_canonical(store, name):
    with pytest.raises(UnknownDimension, match="cannot be a dimension name"):
        with store.transaction() as cur:
            store.add_dimension(cur, "responses", name, name)
    assert store.dimensions("responses") == [f.name for f in TABLES["responses"].fields if f.kind == "dimension"]


def test_columns_of_an_unknown_table_is_an_error(store):
    with pytest.raises(UnknownDimension, match="There is no table called 'surveys'"):
        store.columns("surveys")


def test_each_thread_queries_on_its_own_cursor(store, write):
    ingest.import_file(store, write("r.csv", "response_id,submitted_at,nps\n" + "".join(
        f"r{i},2024-01-01,{i % 11}\n" for i in range(100))))
    results, errors = [], []

    def work():
        try:
            for _ in range(10):
                results.append(int(store.query_df("SELECT sum(nps) AS s FROM responses WHERE nps >= ?", [5])["s"][0]))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Scores are i % 11 for i < 100: 0..10 nine times and 0 once more; 5+6+…+10 = 45, nine times = 405.
    assert errors == [] and results == [405] * 80


def test_open_store_gives_one_store_per_file_and_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TOUCHPOINT_DB", str(tmp_path / "env.duckdb"))
    assert resolve_db_path() == tmp_path / "env.duckdb"
    assert resolve_db_path(tmp_path / "arg.duckdb") == tmp_path / "arg.duckdb"
    monkeypatch.delenv("TOUCHPOINT_DB")
    assert str(resolve_db_path()) == "data/touchpoint.duckdb"

    first = open_store(tmp_path / "one.duckdb")
    try:
        assert open_store(tmp_path / "one.duckdb") is first
        assert open_store(str(tmp_path / "." / "one.duckdb")) is first
    finally:
        first.close()
    reopened = open_store(tmp_path / "one.duckdb")
    try:
        assert reopened is not first and reopened.data_version() == 0
    finally:
        reopened.close()


def test_readers_are_answered_during_an_import_and_never_see_half_of_it(store, write):
    big = write("big.csv", "response_id,submitted_at,nps\n" + "".join(
        f"r{i},2024-01-01 10:00,{i % 11}\n" for i in range(50_000)))
    answers, done = [], threading.Event()

    def read_while_importing():
        while not done.is_set():
            answers.append(store.row_counts()["responses"])
            time.sleep(0.01)

    reader = threading.Thread(target=read_while_importing)
    reader.start()
    try:
        ingest.import_file(store, big)
    finally:
        done.set()
        reader.join()
    assert len(answers) > 1 and set(answers) <= {0, 50_000}   # answered meanwhile, never a partial import
    assert store.row_counts()["responses"] == 50_000


def test_duckdb_memory_is_capped_by_default_and_configurable(tmp_path, monkeypatch):
    """DuckDB would otherwise take up to 80% of the machine (a 10 M-event funnel: 6.2 GB); the store
    caps it at 1 GB unless TOUCHPOINT_DUCKDB_MEMORY says otherwise, and a wrong value is named."""
    def limit(path) -> str:
        s = Store(path)
        try:
            with s.cursor() as cur:
                return cur.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        finally:
            s.close()

    monkeypatch.delenv("TOUCHPOINT_DUCKDB_MEMORY", raising=False)
    assert limit(tmp_path / "a.duckdb") == "953.6 MiB"  # 1 GB (10^9 bytes) as DuckDB prints it
    monkeypatch.setenv("TOUCHPOINT_DUCKDB_MEMORY", "2GB")
    assert limit(tmp_path / "b.duckdb") == "1.8 GiB"
    monkeypatch.setenv("TOUCHPOINT_DUCKDB_MEMORY", "lots")
    with pytest.raises(TouchpointError, match="TOUCHPOINT_DUCKDB_MEMORY='lots' is not an amount of memory"):
        Store(tmp_path / "c.duckdb")
    assert not (tmp_path / "c.duckdb").exists()
