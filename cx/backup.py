"""Backup and restore of the store: a consistent copy, taken also while the app runs.

Two ways to a consistent copy, chosen by who holds the store file:

* This process holds it (the app's own store, or the command line when no app runs): DuckDB copies
  every table, sequence and row inside one read transaction (``COPY FROM DATABASE``), which sees the
  committed data of one instant while imports carry on.
* Another process holds it (the app runs and the command line asks): DuckDB lets only one process open
  a store for writing, so the copy is of the file and its write-ahead log, taken while neither changes
  (checked before and after; retried otherwise). That is the state a crash at that instant would leave,
  which DuckDB recovers on open; the copy is then opened, its log folded in, and its integrity checked
  before it is put in place.

A backup is an ordinary store file: ``--db`` opens it, ``restore`` puts it back.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cx.errors import StoreBusy, TouchpointError
from cx.store import Store, open_store, resolve_db_path

SNAPSHOT_ATTEMPTS = 25


def _sql_string(text: str) -> str:
    """A path as an SQL string literal (ATTACH takes no bound parameters); the path is the operator's."""
    if "\x00" in text:
        raise TouchpointError("A path cannot contain a NUL character.", fix="Choose another path.")
    return "'" + text.replace("'", "''") + "'"


def _destination(dest: str | Path) -> Path:
    folder = str(dest).endswith(("/", os.sep))
    dest = Path(dest)
    if dest.is_dir() or folder:
        dest.mkdir(parents=True, exist_ok=True)
        dest = dest / f"touchpoint-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.duckdb"
    if dest.exists():
        raise TouchpointError(f"{dest} already exists.", fix="Choose a new file name or a folder for the backup.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest


def backup_store(store: Store, dest: str | Path) -> dict[str, Any]:
    """Copy an open store to ``dest`` (a new file, or a folder to put a dated file in) as of one
    instant, while other threads keep reading and importing; return what was written."""
    dest = _destination(dest)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    alias = f"backup_{uuid.uuid4().hex[:12]}"
    cur = store.open_cursor()
    try:
        source = cur.execute("SELECT current_database()").fetchone()[0]
        cur.execute(f"ATTACH {_sql_string(str(tmp))} AS {alias}")
        try:
            cur.execute("BEGIN TRANSACTION")
            cur.execute(f'COPY FROM DATABASE "{source.replace(chr(34), chr(34) * 2)}" TO {alias}')
            cur.execute("COMMIT")
        finally:
            cur.execute(f"DETACH {alias}")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        cur.close()
    return _verify_and_place(tmp, dest, "copy in one read transaction")


def _state(path: Path) -> tuple:
    """What changes when DuckDB writes a file: its identity, size and modification time."""
    out = []
    for p in (path, Path(str(path) + ".wal")):
        try:
            st = p.stat()
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def snapshot_file(db: Path, dest: str | Path) -> dict[str, Any]:
    """Copy a store another process holds open: the file and its write-ahead log, taken while neither
    changes, then recovered, checked and put in place."""
    dest = _destination(dest)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    wal, tmp_wal = Path(str(db) + ".wal"), Path(str(tmp) + ".wal")
    for attempt in range(SNAPSHOT_ATTEMPTS):
        before = _state(db)
        shutil.copyfile(db, tmp)
        if wal.exists():
            try:
                shutil.copyfile(wal, tmp_wal)
            except FileNotFoundError:  # folded into the file by a checkpoint meanwhile
                tmp_wal.unlink(missing_ok=True)
        else:
            tmp_wal.unlink(missing_ok=True)
        if _state(db) == before:
            break
        time.sleep(0.05 * (attempt + 1))
    else:
        tmp.unlink(missing_ok=True)
        tmp_wal.unlink(missing_ok=True)
        raise StoreBusy(
            f"The store {db} changed during each of {SNAPSHOT_ATTEMPTS} attempts to copy it.",
            fix="Run the backup again when no import is running, or use the Data page's backup in the app.",
        )
    return _verify_and_place(tmp, dest, "snapshot of the file held by another process")


def _verify_and_place(tmp: Path, dest: Path, method: str) -> dict[str, Any]:
    tmp_wal = Path(str(tmp) + ".wal")
    try:
        copy = Store(tmp)
        try:
            report = copy.check()
            copy.checkpoint()  # fold the log into the file: a backup is one file
        finally:
            copy.close()
        if not report.ok:
            raise TouchpointError(f"The backup failed its integrity check: {'; '.join(report.problems)}.",
                                  fix="Nothing was written. Run `python -m cx check` on the store.")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_wal.unlink(missing_ok=True)
    return {"backup": str(dest), "method": method, "bytes": dest.stat().st_size, "rows": report.rows}


def backup(dest: str | Path, db: str | Path | None = None) -> dict[str, Any]:
    """Back up the store at ``db`` (default: ``TOUCHPOINT_DB`` or data/touchpoint.duckdb) to ``dest``,
    whether or not the app holds it open."""
    path = resolve_db_path(db)
    if not path.exists():
        raise TouchpointError(f"There is no store at {path}.", fix="Give the store's path with --db.")
    try:
        store = open_store(path)
    except StoreBusy:
        return snapshot_file(path, dest)
    return backup_store(store, dest)


def restore(src: str | Path, db: str | Path | None = None) -> dict[str, Any]:
    """Put the backup ``src`` in place of the store at ``db``; the store it replaces is kept beside it
    as ``<name>.before-restore-<time>``. Refused while the app or another command holds the store."""
    src, path = Path(src), resolve_db_path(db)
    if not src.is_file():
        raise TouchpointError(f"There is no backup file {src}.", fix="Give the path of a file written by `python -m cx backup`.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.restore")
    shutil.copyfile(src, tmp)
    try:
        try:
            candidate = Store(tmp)  # upgrades an older backup to this version's schema
        except TouchpointError as exc:
            raise TouchpointError(f"{src} is not a usable backup: {exc.problem}",
                                  fix="Choose another backup file; the store was not changed.") from exc
        try:
            report = candidate.check()
            candidate.checkpoint()
        finally:
            candidate.close()
        if not report.ok:
            raise TouchpointError(f"{src} failed its integrity check: {'; '.join(report.problems)}.",
                                  fix="Choose another backup file; the store was not changed.")
        kept = None
        if path.exists():
            try:
                Store(path).close()  # refused with StoreBusy while another process holds it
            except StoreBusy as exc:
                raise StoreBusy(f"The store {path} is open in the app or another command, so it cannot be replaced.",
                                fix="Stop the app (and any command using the store), then restore again.") from exc
            kept = path.with_name(f"{path.name}.before-restore-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}")
            os.replace(path, kept)
            wal = Path(str(path) + ".wal")
            if wal.exists():
                os.replace(wal, Path(str(kept) + ".wal"))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
    return {"restored": str(path), "from": str(src), "previous_kept_as": str(kept) if kept else None,
            "rows": report.rows}
