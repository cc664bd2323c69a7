"""Concurrency: Streamlit serves every session from threads of one process. Twenty sessions' worth of
threads compute page metrics while an import commits, and each page sees the data before the import
or after it, never a mix; app sessions run side by side; a second process on the same store gets a
plain message, not a crash.

Hand-computed fixture: 100 responses scored i % 11 for i = 0…99 (score 0 ten times, 1…10 nine times
each): 18 promoters, 64 detractors, NPS = (18 − 64) / 100 = −46. The import adds 50 promoters (all on
the web channel): 68 promoters of 150, NPS = (68 − 64) / 150 = 2.67 points."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cx import funnel, ingest, metrics
from cx.engine import backend_for, read_snapshot, snapshot_data_version
from cx.funnel import FunnelQuery
from cx.store import Store
from tests.conftest import ROOT, run_app

BEFORE = {"n": 100, "nps": -46.0, "web": 50, "version": 1}
AFTER = {"n": 150, "nps": round((68 - 64) / 150 * 100, 6), "web": 100, "version": 2}


def _files(folder: Path) -> tuple[Path, Path]:
    first = folder / "first.csv"
    first.write_text("response_id,submitted_at,nps,channel\n" + "".join(
        f"a{i},2024-01-01 10:00,{i % 11},{'web' if i % 2 else 'app'}\n" for i in range(100)))
    second = folder / "second.csv"
    second.write_text("response_id,submitted_at,nps,channel\n" + "".join(
        f"b{i},2024-01-02 10:00,10,web\n" for i in range(50)))
    return first, second


def _page(store: Store) -> dict:
    """What a page computes: several queries, with pauses between them so an import can commit
    in the middle of the page."""
    backend = backend_for(store)
    with read_snapshot(store):
        count = metrics.query_metric(backend, "responses").iloc[0]
        time.sleep(0.002)
        nps = metrics.query_metric(backend, "nps").iloc[0]
        time.sleep(0.002)
        by_channel = metrics.query_metric(backend, "responses", by=("channel",)).set_index("channel")["value"]
        version = snapshot_data_version(store)
    assert count["n"] == nps["n"] == by_channel.sum()
    return {"n": int(count["value"]), "nps": round(float(nps["value"]), 6), "web": int(by_channel["web"]),
            "version": version}


def test_twenty_sessions_see_all_of_an_import_or_none_of_it(tmp_path):
    first, second = _files(tmp_path)
    store = Store(tmp_path / "store.duckdb")
    ingest.import_file(store, first)
    assert _page(store) == BEFORE
    seen: list[dict] = []
    finished = threading.Event()

    first_pages = threading.Barrier(21)

    def session() -> int:
        seen.append(_page(store))  # every session has a page on screen before the import starts
        first_pages.wait()
        pages = 1
        while not finished.is_set() or pages < 3:
            seen.append(_page(store))
            pages += 1
        return pages

    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(session) for _ in range(20)]
        first_pages.wait(timeout=300)
        ingest.import_file(store, second)
        finished.set()
        pages = [f.result() for f in futures]  # re-raises any error a session met
    # A page begun before the commit may finish after pages begun later, so the order of ``seen`` says
    # nothing about which came last; a page begun now must see the import.
    assert _page(store) == AFTER
    store.close()
    assert min(pages) >= 3
    torn = [p for p in seen if p not in (BEFORE, AFTER)]
    assert torn == []
    assert seen[:20] == [BEFORE] * 20


def test_a_snapshot_holds_while_an_import_commits_and_ends_cleanly(tmp_path):
    first, second = _files(tmp_path)
    store = Store(tmp_path / "store.duckdb")
    try:
        ingest.import_file(store, first)
        backend = backend_for(store)
        with read_snapshot(store):
            before = metrics.query_metric(backend, "responses").iloc[0]["value"]
            worker = threading.Thread(target=ingest.import_file, args=(store, second))
            worker.start()
            worker.join()
            with read_snapshot(store):  # nested: the same state
                during = metrics.query_metric(backend, "responses").iloc[0]["value"]
            assert (before, during, snapshot_data_version(store), store.data_version()) == (100, 100, 1, 2)
        assert metrics.query_metric(backend, "responses").iloc[0]["value"] == 150
    finally:
        store.close()


def test_a_snapshot_reads_table_columns_once_and_the_next_one_sees_a_new_dimension(tmp_path):
    """The metric layer reads each table's columns once per snapshot (engine.table): an analyst's new
    dimension committed meanwhile is not part of this snapshot (DuckDB's catalog is versioned too), and
    the next snapshot, or any read outside one, sees it."""
    from cx import engine
    from cx.errors import UnknownDimension

    first, _ = _files(tmp_path)
    store = Store(tmp_path / "store.duckdb")

    def add_dimension():
        with store.cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            store.add_dimension(cur, "responses", "plan_tier", "Plan tier")
            cur.execute("COMMIT")

    try:
        ingest.import_file(store, first)
        backend = backend_for(store)
        with read_snapshot(store):
            cols = engine.table(backend, "responses").columns
            worker = threading.Thread(target=add_dimension)
            worker.start()
            worker.join()
            assert engine.table(backend, "responses").columns == cols and "plan_tier" not in cols
            with pytest.raises(UnknownDimension):
                metrics.query_metric(backend, "nps", by=("plan_tier",))
        with read_snapshot(store):
            assert "plan_tier" in engine.table(backend, "responses").columns
            got = metrics.query_metric(backend, "nps", by=("plan_tier",))
        # Every response predates the dimension: one group, no plan tier, all 100 answers.
        assert got["n"].tolist() == [100] and got["plan_tier"].isna().all()
    finally:
        store.close()


def test_modules_with_their_own_sql_read_the_page_snapshot_too(tmp_path):
    """Funnels, retention, CLV and the voice views query the store with cursors of their own; inside a
    page's snapshot they must see the same committed state as the metric layer, not a later one."""
    first, second = tmp_path / "e1.csv", tmp_path / "e2.csv"
    # c0..c3 reach A then B; the second file adds c4..c5 (A, B) and c6 (A only).
    first.write_text("customer_id,step,occurred_at\n" + "".join(
        f"c{i},A,2024-01-01 10:00\nc{i},B,2024-01-02 10:00\n" for i in range(4)))
    second.write_text("customer_id,step,occurred_at\n" + "".join(
        f"c{i},A,2024-01-03 10:00\nc{i},B,2024-01-04 10:00\n" for i in (4, 5)) + "c6,A,2024-01-03 10:00\n")
    store = Store(tmp_path / "store.duckdb")
    q = FunnelQuery.build(["A", "B"])
    try:
        ingest.import_file(store, first, kind="events")
        with read_snapshot(store):
            before = funnel.compute_funnel(store, q)["customers"].tolist()
            worker = threading.Thread(target=ingest.import_file, args=(store, second), kwargs={"kind": "events"})
            worker.start()
            worker.join()
            during = funnel.compute_funnel(store, q)["customers"].tolist()
        after = funnel.compute_funnel(store, q)["customers"].tolist()
        assert (before, during, after) == ([4, 4], [4, 4], [7, 6])
    finally:
        store.close()


def test_app_sessions_render_every_page_while_imports_and_removals_commit(app_store_path, tmp_path):
    # AppTest runs one session at a time (its runtime is per process), so the sessions take turns while
    # another thread imports and removes batches under them; the threads test above covers overlap.
    first, second = _files(tmp_path)
    from cx.store import open_store

    store = open_store(app_store_path)
    ingest.import_file(store, first)
    stop, failures = threading.Event(), []

    def churn():
        while not stop.is_set():
            try:
                batch = ingest.import_file(store, second).batch_id
                ingest.remove_batch(store, batch)
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(exc)
                return

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for page in ["pages/overview.py", "pages/trends.py", "pages/segments.py", "pages/data.py"] * 2:
            at = run_app(page=page)
            assert [e.value for e in at.error] == [], page
    finally:
        stop.set()
        worker.join()
    assert failures == []
    assert store.check().ok and store.row_counts()["responses"] == 100


@pytest.fixture
def held_store(tmp_path):
    """A store another process holds open for writing, as a running app does."""
    db = tmp_path / "held.duckdb"
    Store(db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from cx.store import Store; s = Store(sys.argv[1]); "
                               "print('ready', flush=True); time.sleep(60)", str(db)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "ready"
    yield db
    holder.kill()
    holder.wait()


def test_the_cli_on_a_store_the_app_holds_says_so_in_one_line(held_store, tmp_path):
    csv = tmp_path / "r.csv"
    csv.write_text("response_id,submitted_at,nps\nr1,2024-01-01,9\n")
    for args in (["batches"], ["import", str(csv)], ["metric", "nps"]):
        done = subprocess.run([sys.executable, "-m", "cx", *args, "--db", str(held_store)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, args
        assert done.stderr == (f"error: The store {held_store} is open in another Touchpoint process. Fix: Close the "
                               "other app or command that uses it, or point --db / TOUCHPOINT_DB at another file.\n")


def test_a_second_app_on_a_store_another_process_holds_shows_a_message_not_a_crash(held_store, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("TOUCHPOINT_DB", str(held_store))
    st.cache_resource.clear()
    try:
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        assert not at.exception, at.exception
        assert "is open in another Touchpoint process" in at.error[0].value
        assert "Close the other app" in at.error[0].value
    finally:
        st.cache_resource.clear()
