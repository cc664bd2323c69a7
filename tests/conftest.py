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


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app_store_path(tmp_path: Path, monkeypatch) -> Path:
    """The path of a fresh store the Streamlit app will open (TOUCHPOINT_DB), with Streamlit's caches
    cleared around the test so no page sees another test's store."""
    import streamlit as st

    db = tmp_path / "app.duckdb"
    monkeypatch.setenv("TOUCHPOINT_DB", str(db))
    st.cache_resource.clear()
    st.cache_data.clear()
    yield db
    finish_background_work()
    st.cache_resource.clear()
    st.cache_data.clear()


def finish_background_work(timeout: float = 120) -> None:
    """Wait for the Overview the Data page prepares in the background after an import, so it never
    runs into the next test's store."""
    import threading

    from pages._ui import PREPARE_THREAD

    for thread in threading.enumerate():
        if thread.name == PREPARE_THREAD:
            thread.join(timeout)


def run_app(query: dict | None = None, page: str | None = None):
    """app.py in AppTest, optionally with URL query parameters and then on another page; no exception."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at
