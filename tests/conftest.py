"""Shared fixtures: a fresh store on a temporary path, and helpers that write hand-made export files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import pytest

from cx.ingest import ImportResult
from cx.store import Store


@pytest.fixture
def store(tmp_path: Path):
    """An empty store in its own temporary folder, laid out like the real one (data/touchpoint.duckdb)."""
    s = Store(tmp_path / "data" / "touchpoint.duckdb")
    yield s
    s.close()


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """``write(name, content, encoding="utf-8")``: the file ``tmp_path/files/name`` with that content
    (text is encoded as given and written byte for byte: no newline translation)."""
    folder = tmp_path / "files"
    folder.mkdir(exist_ok=True)

    def _write(name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
        return path

    return _write


def store_digest(store: Store) -> str:
    """SHA-256 of the store file after a checkpoint: equal digests mean the store is byte-for-byte the same."""
    store.checkpoint()
    return hashlib.sha256(store.path.read_bytes()).hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def assert_accounted(result: ImportResult) -> None:
    """Every row read is counted exactly once."""
    assert result.rows_read == (result.added + result.updated + result.unchanged + result.duplicates
                                + result.rejected), result


def rows(store: Store, sql: str, params=None) -> list[tuple]:
    """The rows of a query as plain tuples."""
    with store.cursor() as cur:
        return cur.execute(sql, params or []).fetchall()
