"""An import killed with SIGKILL at any point leaves the store openable and exactly as it was."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cx import ingest
from cx.store import TABLES, Store
from tests.conftest import rows

ROOT = Path(__file__).resolve().parents[1]


def _snapshot(db: Path) -> dict[str, str]:
    """A fingerprint of every canonical and bookkeeping table's content."""
    store = Store(db)
    try:
        out = {}
        with store.cursor() as cur:
            for t in [*TABLES, *(f"{t}_history" for t in TABLES), "batches", "rejects", "mappings", "meta"]:
                rows = cur.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                out[t] = hashlib.sha256(repr(rows).encode()).hexdigest()
        return out
    finally:
        store.close()


def _big_csv(path: Path, rows: int) -> None:
    import duckdb

    duckdb.sql(
        f"COPY (SELECT 'r' || i AS response_id, TIMESTAMP '2024-01-01' + INTERVAL (i % 86400) SECOND AS submitted_at, "
        f"(i * 7) % 11 AS nps, 'c' || (i % 1000) AS customer_id FROM range({rows}) t(i)) TO '{path}' (HEADER)"
    )


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.4, 2.0, 2.8])
def test_sigkill_during_import_leaves_the_earlier_data_intact(tmp_path, delay):
    db = tmp_path / "store.duckdb"
    first = tmp_path / "first.csv"
    first.write_text("response_id,submitted_at,nps\na,2024-01-01 10:00,9\nb,2024-01-02 10:00,3\n")
    store = Store(db)
    ingest.import_file(store, first)
    store.checkpoint()
    store.close()
    before = _snapshot(db)

    big = tmp_path / "big.csv"
    _big_csv(big, 400_000)
    proc = subprocess.Popen([sys.executable, "-m", "cx", "import", str(big), "--db", str(db)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    code = proc.wait()

    after = _snapshot(db)
    store = Store(db)
    rows = store.row_counts()["responses"]
    batches = len(ingest.list_batches(store))
    store.close()
    if after == before:
        assert code == -signal.SIGKILL  # killed before its commit: nothing of it is visible
    else:
        # The commit happened (the kill, if any, came after it): then the import landed whole.
        assert (rows, batches) == (400_002, 2)


# ------------------------------------------------------------------------------------------------
# Kills at named points (deterministic, not timed), then the store's integrity check
# ------------------------------------------------------------------------------------------------
# A child process imports (or removes a batch) with one step of the flow wrapped so that it kills
# itself with SIGKILL right there: nothing of the import may survive a kill before its COMMIT, and
# all of it must survive a kill after it (from the write-ahead log: the store is not checkpointed).
KILLER = r"""
import os, signal, sys
from contextlib import contextmanager
from cx import ingest, store as store_mod

point, db, path = sys.argv[1], sys.argv[2], sys.argv[3]
def die(*_a, **_k):
    os.kill(os.getpid(), signal.SIGKILL)

def after(fn):
    def wrapped(*a, **k):
        out = fn(*a, **k)
        die()
        return out
    return wrapped

if point == "after-read":            # the file is loaded into a temporary table, nothing mapped yet
    ingest._import_raw = die
elif point == "after-staging":       # values parsed and checked, outside any transaction
    ingest._stage = after(ingest._stage)
elif point == "before-commit":       # rows, history, rejects and the batch written, COMMIT not yet
    ingest._upsert = after(ingest._upsert)
elif point == "remove-before-commit":
    original = store_mod.Store.transaction
    @contextmanager
    def transaction(self):
        with original(self) as cur:
            yield cur
            die()
    store_mod.Store.transaction = transaction
s = store_mod.Store(db)
if point == "remove-before-commit":
    ingest.remove_batch(s, 1)
else:
    ingest.import_file(s, path)
if point == "after-commit":          # committed, not checkpointed: the data is in the log only
    die()
print("finished")
"""

POINTS = {  # point -> does the import (or the removal) land?
    "after-read": False, "after-staging": False, "before-commit": False, "after-commit": True,
    "remove-before-commit": False,
}


@pytest.mark.parametrize("point", list(POINTS))
def test_a_kill_at_each_step_leaves_a_sound_store_with_exactly_the_committed_data(tmp_path, point):
    db = tmp_path / "store.duckdb"
    first = tmp_path / "first.csv"
    first.write_text("response_id,submitted_at,nps\na,2024-01-01 10:00,9\nb,2024-01-02 10:00,3\n")
    second = tmp_path / "second.csv"
    # Updates a, adds c and d, rejects one row: every kind of write an import makes.
    second.write_text("response_id,submitted_at,nps,comment\na,2024-01-01 10:00,10,changed\n"
                      "c,2024-01-03 10:00,7,new\nd,2024-01-04 10:00,ten,bad\ne,2024-01-05 10:00,0,new\n")
    store = Store(db)
    ingest.import_file(store, first)
    store.checkpoint()
    store.close()
    before = _snapshot(db)

    proc = subprocess.run([sys.executable, "-c", KILLER, point, str(db), str(second)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "finished" not in proc.stdout

    store = Store(db)
    try:
        report = store.check()
        assert report.ok, report.problems
        got = rows(store, "SELECT response_id, nps FROM responses ORDER BY 1")
        if not POINTS[point]:
            assert got == [("a", 9.0), ("b", 3.0)]
            assert report.rows["batches"] == 1 and report.rows["rejects"] == 0
        else:
            assert got == [("a", 10.0), ("b", 3.0), ("c", 7.0), ("e", 0.0)]
            assert report.rows["batches"] == 2 and report.rows["rejects"] == 1
            assert report.rows["responses_history"] == 1
    finally:
        store.close()
    if not POINTS[point]:
        assert _snapshot(db) == before
