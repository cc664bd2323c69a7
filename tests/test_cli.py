"""The command line as a user runs it: ``python -m cx import/inspect/batches/rejects/remove --db PATH``.
Machine-readable JSON on stdout and exit 0; a file-level error is one line on stderr, exit 2, and the
store file byte-for-byte unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cx.store import Store

ROOT = Path(__file__).resolve().parents[1]

# r1 promoter, r2 detractor, r3 passive, r4 has an NPS of 11 (rejected), r2 appears twice (last wins).
RESPONSES = (
    "Response ID,Date Submitted,NPS,Comment\n"
    "r1,25/03/2024 10:00,10,Great\n"
    "r2,26/03/2024 11:30,3,Slow\n"
    "r3,27/03/2024 12:00,8,Fine\n"
    "r4,28/03/2024 13:00,11,Typo\n"
    "r2,26/03/2024 11:30,2,Slower than I said\n"
)


def cx(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cx", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db(tmp_path) -> Path:
    """A created, empty store file, closed so that the commands under test can open it."""
    path = tmp_path / "cli.duckdb"
    Store(path).close()
    return path


def test_help_lists_every_command_and_each_command_has_help():
    """`python -m cx --help` printed a traceback: a command's help said "95% interval" and argparse
    %-formats help strings."""
    from cx.__main__ import build_parser

    top = cx("--help")
    assert top.returncode == 0, top.stderr
    assert "95% interval" in top.stdout and "Traceback" not in top.stderr
    commands = build_parser()._subparsers._group_actions[0].choices  # every registered command
    for name in ("import", "metric", "voice", "clv"):
        assert name in commands and name in top.stdout
    for name in commands:
        assert commands[name].format_help().startswith("usage: python -m cx " + name)


def test_import_prints_the_batch_as_json_and_batches_rejects_remove_follow(db, tmp_path):
    path = tmp_path / "nps.csv"
    path.write_text(RESPONSES)
    done = cx("import", str(path), "--db", str(db))
    assert (done.returncode, done.stderr) == (0, "")
    result = json.loads(done.stdout)
    assert {k: result[k] for k in ("batch_id", "kind", "rows_read", "added", "updated", "unchanged", "duplicates",
                                   "rejected")} == {"batch_id": 1, "kind": "responses", "rows_read": 5, "added": 3,
                                                    "updated": 0, "unchanged": 0, "duplicates": 1, "rejected": 1}
    assert result["mapping"] == {"Response ID": "response_id", "Date Submitted": "submitted_at", "NPS": "nps",
                                 "Comment": "comment"}
    assert result["options"]["date_order"] == "dmy"

    batches = cx("batches", "--db", str(db), "--format", "json")
    assert batches.returncode == 0
    [batch] = json.loads(batches.stdout)
    assert {k: batch[k] for k in ("batch_id", "file_name", "rows_read", "added", "rejected", "rows_now")} == {
        "batch_id": 1, "file_name": "nps.csv", "rows_read": 5, "added": 3, "rejected": 1, "rows_now": 3}

    rejects = cx("rejects", "1", "--db", str(db), "--format", "json")
    assert rejects.returncode == 0
    assert json.loads(rejects.stdout) == [
        {"row": 4, "column": "NPS", "value": "11", "reason": "NPS score must be a whole number from 0 to 10"}]

    removed = cx("remove", "1", "--db", str(db))
    assert removed.returncode == 0
    assert json.loads(removed.stdout) == {"batch_id": 1, "kind": "responses", "file_name": "nps.csv",
                                          "rows_removed": 3, "rows_restored": 0}
    store = Store(db)
    try:
        assert store.row_counts()["responses"] == 0 and store.is_empty()
    finally:
        store.close()


def test_import_with_kind_map_date_order_and_options(db, tmp_path):
    path = tmp_path / "helpdesk.csv"
    path.write_text(
        "Case,Opened,Closed,Score\n"
        "T1,03/04/2024 09:00,03/04/2024 17:00,4\n"   # ambiguous dates: the command says month-first
        "T2,05/06/2024 10:00,,9\n"                    # 9 on a 1–5 scale: rejected
    )
    done = cx("import", str(path), "--db", str(db), "--kind", "tickets", "--date-order", "mdy",
              "--map", "Case=ticket_id", "--map", "Opened=created_at", "--map", "Closed=resolved_at",
              "--map", "Score=csat", "--option", "csat_scale=1-5")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["kind"], result["added"], result["rejected"]) == ("tickets", 1, 1)
    assert result["options"]["csat_scale"] == [1, 5] and result["options"]["date_order"] == "mdy"
    store = Store(db)
    try:
        assert store.query_df("SELECT ticket_id, created_at, resolved_at FROM tickets").astype(str).values.tolist() == [
            ["T1", "2024-03-04 09:00:00", "2024-03-04 17:00:00"]]
    finally:
        store.close()


@pytest.mark.parametrize(("name", "content", "words"), [
    ("empty.csv", b"", "empty.csv is empty"),
    ("binary.csv", bytes(range(256)) * 16, "looks like a binary file"),
    ("ambiguous.csv", b"response_id,submitted_at,nps\na1,03/04/2024,9\n", "--date-order"),
    ("unrelated.csv", b"foo,bar\n1,2\n", "Could not tell what unrelated.csv holds"),
], ids=["empty", "binary", "ambiguous-dates", "no-usable-columns"])
def test_a_file_level_error_is_one_line_on_stderr_exit_2_and_the_store_unchanged(db, tmp_path, name, content, words):
    earlier = tmp_path / "earlier.csv"
    earlier.write_text("response_id,submitted_at,nps\nr0,2024-01-01,9\n")
    assert cx("import", str(earlier), "--db", str(db)).returncode == 0
    before = digest(db)
    path = tmp_path / name
    path.write_bytes(content)
    done = cx("import", str(path), "--db", str(db))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert words in done.stderr and "Fix: " in done.stderr
    assert digest(db) == before


def test_unknown_batch_is_exit_2(db):
    done = cx("remove", "99", "--db", str(db))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: There is no batch 99. Fix: List the batches with `python -m cx batches`.\n"


def test_the_store_path_comes_from_touchpoint_db_when_there_is_no_db_option(db, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("order_id,customer_id,order_date,total\nO1,c1,2024-01-05,12.50\nO2,c2,2024-01-06,7\n")
    inspected = cx("inspect", str(path), env={"TOUCHPOINT_DB": str(db)})
    assert inspected.returncode == 0, inspected.stderr
    found = json.loads(inspected.stdout)
    assert (found["kind"], found["column_map"]["total"], found["sample_rows"]) == ("orders", "amount", 2)
    done = cx("import", str(path), env={"TOUCHPOINT_DB": str(db)})
    assert (done.returncode, json.loads(done.stdout)["added"]) == (0, 2)
    store = Store(db)
    try:
        assert store.row_counts()["orders"] == 2
    finally:
        store.close()
