"""What the app shows around the metrics when the canonical tables live in another engine (Spark,
``TOUCHPOINT_ENGINE``): rows per table, the date span, the filter values and which metrics have data,
computed through Ibis on that engine, as ``cx.store``, ``cx.filters`` and ``cx.insights`` compute them
on the store's own tables. A table or column the engine lacks counts as empty.

The engine has no data version: caches keyed on ``refresh_key()`` are refreshed every
``REFRESH_SECONDS``, so new warehouse data shows within minutes without a restart."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import pandas as pd
from ibis.common.exceptions import TableNotFound

from cx.store import TABLES

REFRESH_SECONDS = 300


def refresh_key() -> int:
    """A number that changes every ``REFRESH_SECONDS`` (a cache key for data the store does not version)."""
    return int(time.time() // REFRESH_SECONDS)


def _table(backend, name: str):
    try:
        return backend.table(name)
    except TableNotFound:
        return None


def row_counts(backend) -> dict[str, int]:
    """Rows in each canonical table the engine holds (0 for a table it lacks)."""
    out = {}
    for name in TABLES:
        t = _table(backend, name)
        out[name] = 0 if t is None else int(t.count().execute())
    return out


def date_span(backend, date_columns: dict[str, str]) -> tuple[date | None, date | None]:
    """The first and last dates in any table's own date column."""
    lows, highs = [], []
    for name, col in date_columns.items():
        t = _table(backend, name)
        if t is None or col not in t.columns:
            continue
        row = t.aggregate(lo=t[col].min(), hi=t[col].max()).execute().iloc[0]
        lows += [row["lo"]] if not pd.isna(row["lo"]) else []
        highs += [row["hi"]] if not pd.isna(row["hi"]) else []
    if not lows:
        return None, None
    return pd.Timestamp(min(lows)).date(), pd.Timestamp(max(highs)).date()


def dimensions(backend, name: str) -> list[str]:
    """Text columns of a table usable as breakdowns: its canonical dimensions, then any other text
    column that is not one of Touchpoint's own fields (an analyst's extra dimension)."""
    t = _table(backend, name)
    if t is None:
        return []
    fields = {f.name: f.kind for f in TABLES[name].fields}
    canonical = [c for c, kind in fields.items() if kind == "dimension" and c in t.columns]
    extra = sorted(c for c in t.columns if c not in fields and c not in ("batch_id", "row_hash")
                   and t[c].type().is_string())
    return canonical + extra


def dimension_values(backend, core: tuple[str, ...], skip: frozenset[str], limit: int) -> dict[str, list[str]]:
    """Every filterable dimension with its values, most frequent first (at most ``limit``), counts
    added across tables; ``core`` dimensions first, the others by name."""
    counts: dict[str, dict[str, int]] = {}
    for name in TABLES:
        t = _table(backend, name)
        for dim in dimensions(backend, name):
            if dim in skip:
                continue
            rows = t.filter(t[dim].notnull())
            frame = rows.group_by(v=rows[dim].cast("string")).aggregate(n=rows.count()).execute()
            seen = counts.setdefault(dim, {})
            for v, n in zip(frame["v"], frame["n"]):
                seen[str(v)] = seen.get(str(v), 0) + int(n)
    order = [d for d in core if d in counts] + sorted(d for d in counts if d not in core)
    return {d: [v for v, _ in sorted(counts[d].items(), key=lambda x: (-x[1], x[0]))[:limit]]
            for d in order if counts[d]}


def filled(backend, needs: dict[str, tuple[str, str | None, str]]) -> dict[tuple[str, str | None], int]:
    """For each (table, column) a metric needs: how many rows have it (all rows for column None; for
    "churned", rows with a churned flag or a churn date)."""
    out: dict[tuple[str, str | None], int] = {}
    for table, col, _ in needs.values():
        if (table, col) in out:
            continue
        t = _table(backend, table)
        if t is None or (col is not None and col not in t.columns and col != "churned"):
            out[(table, col)] = 0
            continue
        if col is None:
            expr: Any = t.count()
        elif col == "churned":
            has = [t[c].notnull() for c in ("churned", "churned_at") if c in t.columns]
            expr = t.count(where=has[0] | has[1]) if len(has) == 2 else t.count(where=has[0]) if has else None
        else:
            expr = t[col].count()
        out[(table, col)] = 0 if expr is None else int(expr.execute())
    return out
