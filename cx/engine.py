"""Which engine runs the metric layer, chosen by ``TOUCHPOINT_ENGINE``:

- unset, or ``duckdb:///data/touchpoint.duckdb`` (relative path; ``duckdb:////abs/path`` for an
  absolute one): the app's DuckDB store, one Ibis backend per thread over a cursor of its own;
- ``spark://local[2]`` / ``pyspark://local[2]``: PySpark in local mode; ``spark://host:7077`` a
  standalone cluster; ``pyspark://yarn`` any other master. ``?database=cx`` names the Spark database
  that holds the canonical tables (``responses``, ``tickets``, ``orders``, ``events``, ``customers``).

In Spark mode the canonical tables live in the engine and import is not offered. Spark sessions run
with ``spark.sql.session.timeZone=UTC``: timestamps are naive UTC on every engine.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs

import ibis

from cx.errors import TouchpointError
from cx.store import Store, open_store, read_data_version

SPARK_SCHEMES = ("spark://", "pyspark://")
DEFAULT_SPARK_MASTER = "local[2]"


@dataclass(frozen=True)
class EngineSpec:
    """A parsed ``TOUCHPOINT_ENGINE``: ``kind`` is "duckdb" (``path`` None = the default store) or
    "spark" (``master`` as Spark expects it, ``database`` None = the session's current one)."""

    kind: str
    path: str | None = None
    master: str | None = None
    database: str | None = None


def engine_url() -> str:
    """The ``TOUCHPOINT_ENGINE`` setting, or "" for the default store."""
    return os.environ.get("TOUCHPOINT_ENGINE", "").strip()


def parse_engine_url(url: str) -> EngineSpec:
    """The engine a URL names; raises ``TouchpointError`` with the accepted forms otherwise."""
    if not url:
        return EngineSpec("duckdb")
    if url.startswith("duckdb://"):
        return EngineSpec("duckdb", path=url[len("duckdb://"):].removeprefix("/") or None)
    if url.startswith(SPARK_SCHEMES):
        scheme, rest = url.split("://", 1)
        rest, _, query = rest.partition("?")
        database = (parse_qs(query).get("database") or [None])[0]
        if not rest:
            master = DEFAULT_SPARK_MASTER
        elif rest.startswith("local") or scheme == "pyspark":
            master = rest
        else:  # spark://host:port is a standalone cluster's own master URL
            master = f"spark://{rest}"
        return EngineSpec("spark", master=master, database=database)
    raise TouchpointError(f"TOUCHPOINT_ENGINE={url!r} is not an engine Touchpoint knows.",
                          fix="Use duckdb:///path/to/touchpoint.duckdb, spark://local[2] or spark://host:7077.")


def is_external() -> bool:
    """True when the canonical tables live in another engine (import is then not offered)."""
    return engine_url().startswith(SPARK_SCHEMES)


def backend_for(store: Store | None = None) -> Any:
    """An Ibis backend for the calling thread: over its own cursor of ``store`` (default: the store
    ``TOUCHPOINT_ENGINE`` names, else ``open_store()``), or the configured Spark session."""
    spec = parse_engine_url(engine_url())
    if spec.kind == "spark":
        return _spark_backend(spec.master, spec.database)
    if store is None:
        store = open_store(spec.path)
    # DuckDB connections are not shared across threads, so each thread keeps a cursor of its own for
    # the backend's lifetime. The cache hangs on the store itself, so a new store never meets an old
    # one's cursor.
    local = store.__dict__.setdefault("_ibis_threads", threading.local())
    backend = getattr(local, "backend", None)
    if backend is None:
        backend = local.backend = ibis.duckdb.from_connection(store.open_cursor())
    return backend


_SPARK: dict[tuple[str, str | None], Any] = {}
_SPARK_LOCK = threading.Lock()


def _spark_backend(master: str, database: str | None) -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise TouchpointError("Spark is not installed.", fix="pip install pyspark==4.0.5 (Java 17 is needed).") from exc
    with _SPARK_LOCK:
        backend = _SPARK.get((master, database))
        # A stopped session (spark.stop() in a notebook) cannot run queries: start a new one.
        if backend is None or backend._session.sparkContext._jsc is None:
            session = (SparkSession.builder.master(master).appName("touchpoint")
                       .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
                       .getOrCreate())
            if database:
                session.catalog.setCurrentDatabase(database)
            backend = _SPARK[(master, database)] = ibis.pyspark.connect(session)
        return backend


# -- one committed state per page render ------------------------------------------------------------
@contextmanager
def read_snapshot(store: Store | None = None) -> Iterator[None]:
    """Inside, every query of this thread's metric backend reads one committed state of the store: a
    page rendered while an import commits shows the data before it or after it, never a mix (DuckDB
    runs each statement on a snapshot, but a page runs many). Nested uses share the outer snapshot;
    on Spark it does nothing."""
    if is_external():
        yield
        return
    backend = backend_for(store)
    local = _snapshot_local()
    if getattr(local, "depth", 0):
        local.depth += 1
        try:
            yield
        finally:
            local.depth -= 1
        return
    con = backend.con
    con.execute("BEGIN TRANSACTION")
    local.depth, local.con, local.memo = 1, con, {}
    try:
        yield
    finally:
        local.depth, local.con, local.memo = 0, None, None
        con.execute("ROLLBACK")  # it only read; ROLLBACK also ends a transaction a failed query aborted


_SNAPSHOT = threading.local()


def _snapshot_local() -> threading.local:
    return _SNAPSHOT


@contextmanager
def read_cursor(store: Store) -> Iterator[Any]:
    """A cursor for reads that do not go through Ibis (retention, CLV, funnels, voice): inside this
    thread's ``read_snapshot`` of ``store`` it is the snapshot's own connection, so those reads see the
    same committed state as the metric layer; elsewhere a fresh cursor, as ``store.cursor()``. Never
    write through it: a snapshot ends in ROLLBACK."""
    con = getattr(_SNAPSHOT, "con", None)
    local = store.__dict__.get("_ibis_threads")
    if con is not None and getattr(getattr(local, "backend", None), "con", None) is con:
        yield con
        return
    with store.cursor() as cur:
        yield cur


def snapshot_memo(backend, key: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()``, remembered under ``key`` for the rest of this thread's ``read_snapshot`` when
    ``backend`` reads through it: nothing in the store changes within one (an import commits in
    another transaction). Outside a snapshot, or on another connection, it computes every time."""
    memo = getattr(_SNAPSHOT, "memo", None)
    if memo is None or getattr(backend, "con", None) is not getattr(_SNAPSHOT, "con", None):
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def table(backend, name: str):
    """``backend.table(name)``, read once per snapshot (``snapshot_memo``): a page's statements then
    spare a schema query each."""
    return snapshot_memo(backend, ("table", name), lambda: backend.table(name))


def snapshot_data_version(store: Store) -> int:
    """The store's data version as the current thread's snapshot sees it (the latest outside one), so a
    cache keyed on it never files newer data under an older key or the reverse."""
    con = getattr(_SNAPSHOT, "con", None)
    if con is None:
        return store.data_version()
    return read_data_version(con)
