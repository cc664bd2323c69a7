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
