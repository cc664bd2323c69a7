"""Backup, restore and the store's integrity check (``python -m cx backup|restore|check``)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cx import backup, ingest
from cx.errors import StoreBusy, TouchpointError
from cx.store import Store
from tests.conftest import ROOT, rows


def _responses(path: Path, ids: range, score: int = 9) -> Path:
    path.write_text("response_id,submitted_at,nps\n" + "".join(f"r{i},2024-01-01 10:00,{score}\n" for i in ids))
    return path


def _content(db: Path) -> dict[str, list]:
    store = Store(db)
    try:
        return {"responses": rows(store, "SELECT response_id, nps, batch_id FROM responses ORDER BY 1"),
                "batches": rows(store, "SELECT batch_id, file_name, rows_read FROM batches ORDER BY 1"),
                "batch_seq": rows(store, "SELECT last_value FROM duckdb_sequences() WHERE sequence_name = 'batch_seq'")}
    finally:
        store.close()


def _cli(*args: str, env_db: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cx", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_check_passes_on_a_sound_store_and_names_each_kind_of_damage(store, tmp_path):
    ingest.import_file(store, _responses(tmp_path / "a.csv", range(3)))
    report = store.check()
    assert report.ok and report.problems == [] and report.rows["responses"] == 3 and report.rows["batches"] == 1
    with store.transaction() as cur:  # damage it the ways a bug or a hand edit could
        cur.execute("INSERT INTO responses SELECT * REPLACE (99 AS batch_id) FROM responses WHERE response_id = 'r0'")
        cur.execute("INSERT INTO rejects VALUES (42, 1, 'nps', 'x', 'why')")
        cur.execute("UPDATE batches SET added = added + 1")
        cur.execute("INSERT INTO meta VALUES (7)")
    report = store.check()
    assert not report.ok
    assert report.problems == [
        "table meta must hold exactly one row",
        "1 keys of responses are held more than once",
        "1 rows of responses belong to no batch",
        "1 rejects belong to no batch",
        "batches 1 do not account for every row read",
    ]


def test_backup_while_an_import_runs_is_one_consistent_instant(tmp_path):
    db = tmp_path / "store.duckdb"
    store = Store(db)
    ingest.import_file(store, _responses(tmp_path / "a.csv", range(100)))
    big = _responses(tmp_path / "big.csv", range(100, 60_100), score=3)
    imported = threading.Thread(target=ingest.import_file, args=(store, big))
    imported.start()
    out = backup.backup_store(store, f"{tmp_path}/backups/")
    imported.join()
    store.close()
    copy = Store(Path(out["backup"]))
    try:
        assert copy.check().ok
        n = copy.row_counts()["responses"]
        batches = rows(copy, "SELECT count(*) FROM batches")[0][0]
    finally:
        copy.close()
    assert (n, batches) in {(100, 1), (60_100, 2)}  # before the import or after it, never between
    assert out["method"] == "copy in one read transaction" and Path(out["backup"]).parent == tmp_path / "backups"


def test_cli_backup_of_a_store_the_app_holds_is_a_checked_snapshot(tmp_path):
    db = tmp_path / "store.duckdb"
    store = Store(db)
    ingest.import_file(store, _responses(tmp_path / "a.csv", range(5)))
    store.close()
    expected = _content(db)
    # Another process holds the store as the app does: open for writing, with its log not yet folded in.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from cx.store import Store; from cx import ingest; s = Store(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(60)", str(db)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreBusy):
            Store(db)
        done = _cli("backup", str(tmp_path / "copy.duckdb"), "--db", str(db))
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["method"] == "snapshot of the file held by another process"
        assert out["rows"]["responses"] == 5
        refused = _cli("restore", str(tmp_path / "copy.duckdb"), "--db", str(db))
        assert refused.returncode == 2
        assert refused.stderr.startswith(f"error: The store {db} is open in the app or another command")
        assert "Stop the app" in refused.stderr
    finally:
        holder.kill()
        holder.wait()
    assert _content(tmp_path / "copy.duckdb") == expected


def test_restore_puts_the_backup_back_and_keeps_the_store_it_replaced(tmp_path):
    db = tmp_path / "store.duckdb"
    store = Store(db)
    ingest.import_file(store, _responses(tmp_path / "a.csv", range(3)))
    store.close()
    assert _cli("backup", str(tmp_path / "monday.duckdb"), "--db", str(db)).returncode == 0
    monday = _content(db)
    store = Store(db)
    ingest.import_file(store, _responses(tmp_path / "b.csv", range(3, 10), score=2))
    store.close()
    tuesday = _content(db)

    done = _cli("restore", str(tmp_path / "monday.duckdb"), "--db", str(db))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert _content(db) == monday  # including the batch sequence: the next import gets batch 2 again
    assert _content(Path(out["previous_kept_as"])) == tuesday
    check = _cli("check", "--db", str(db))
    assert check.returncode == 0 and json.loads(check.stdout)["ok"] is True


def test_restore_refuses_a_file_that_is_not_a_backup_and_changes_nothing(tmp_path):
    db = tmp_path / "store.duckdb"
    store = Store(db)
    ingest.import_file(store, _responses(tmp_path / "a.csv", range(3)))
    store.close()
    before = _content(db)
    notes = tmp_path / "notes.duckdb"
    notes.write_text("not a database")
    with pytest.raises(TouchpointError, match="is not a usable backup") as err:
        backup.restore(notes, db)
    assert "the store was not changed" in err.value.fix
    assert _content(db) == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "notes.duckdb",
                                                                                    "store.duckdb"]


def test_backup_never_overwrites(tmp_path):
    db = tmp_path / "store.duckdb"
    Store(db).close()
    (tmp_path / "taken.duckdb").write_text("keep me")
    done = _cli("backup", str(tmp_path / "taken.duckdb"), "--db", str(db))
    assert done.returncode == 2 and "already exists" in done.stderr
    assert (tmp_path / "taken.duckdb").read_text() == "keep me"


def test_cli_backup_while_the_app_keeps_importing_is_a_committed_state(tmp_path):
    # The holder imports batch after batch of 1,000 new responses: any committed state has exactly
    # 1,000 rows per batch, so a copy taken mid-write would show as a mismatch or fail its check.
    db = tmp_path / "store.duckdb"
    Store(db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from pathlib import Path\n"
         "from cx.store import Store\n"
         "from cx import ingest\n"
         "s = Store(sys.argv[1]); folder = Path(sys.argv[2])\n"
         "print('ready', flush=True)\n"
         "for k in range(10_000):\n"
         "    p = folder / f'b{k}.csv'\n"
         "    p.write_text('response_id,submitted_at,nps\\n' + ''.join(f'b{k}-{i},2024-01-01 10:00,{i % 11}\\n' for i in range(1000)))\n"
         "    ingest.import_file(s, p)\n"
         "    p.unlink()\n",
         str(db), str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        copies = []
        for n in range(3):
            done = _cli("backup", str(tmp_path / f"copy{n}.duckdb"), "--db", str(db))
            if done.returncode == 0:
                copies.append(json.loads(done.stdout))
            else:  # the store changed during every attempt: refused in plain words, nothing written
                assert "changed during each of" in done.stderr and not (tmp_path / f"copy{n}.duckdb").exists()
        assert copies, "no backup succeeded while the app was importing"
    finally:
        holder.kill()
        holder.wait()
    for out in copies:
        assert out["method"] == "snapshot of the file held by another process"
        assert out["rows"]["responses"] == 1000 * out["rows"]["batches"]
        copy = Store(Path(out["backup"]))
        try:
            assert copy.check().ok
        finally:
            copy.close()
