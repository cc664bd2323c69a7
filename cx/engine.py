"""Which engine runs the metric layer: the DuckDB store (default) or Spark, chosen by
``TOUCHPOINT_ENGINE`` (``duckdb:///data/touchpoint.duckdb``, ``spark://local[2]``)."""

from __future__ import annotations

import os
import threading
from typing import Any

import ibis

from cx.errors import TouchpointError
from cx.store import Store, open_store

def engine_url() -> str:
    return os.environ.get("TOUCHPOINT_ENGINE", "").strip()


def is_external() -> bool:
    """True when the canonical tables live in another engine (import is then not offered)."""
    return engine_url().startswith(("spark://", "pyspark://"))


def backend_for(store: Store | None = None) -> Any:
    """An Ibis backend for this thread: over its own cursor of the store, or the Spark session."""
    url = engine_url()
    if url.startswith(("spark://", "pyspark://")):
        return _spark_backend(url.split("://", 1)[1] or "local[2]")
    if url and not url.startswith("duckdb://"):
        raise TouchpointError(f"TOUCHPOINT_ENGINE={url!r} is not an engine Touchpoint knows.",
                              fix="Use duckdb:///path/to/touchpoint.duckdb or spark://local[2].")
    if store is None:
        store = open_store(url[len("duckdb:///"):] or None if url else None)
    # Each thread keeps its own cursor of this store: DuckDB connections are not shared across
    # threads. The cache hangs on the store itself, so a new store never meets an old one's cursor.
    local = store.__dict__.setdefault("_ibis_threads", threading.local())
    backend = getattr(local, "backend", None)
    if backend is None:
        backend = local.backend = ibis.duckdb.from_connection(store.open_cursor())
    return backend


def _spark_backend(master: str) -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise TouchpointError("Spark is not installed.", fix="pip install pyspark==4.0.5 (Java 17 is needed).") from exc
    session = (SparkSession.builder.master(master).appName("touchpoint")
               .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false").getOrCreate())
    return ibis.pyspark.connect(session)
