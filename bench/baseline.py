"""The headline metrics two ways: plain pandas on Parquet exports (load + compute), and Touchpoint's
metric layer on its store. Both give the same numbers (``compare``), overall and month by month:
NPS, CSAT, CES (1–7), responses, median first response and resolution time, revenue, AOV.

The pandas side is a fair, careful implementation: it reads only the columns it needs from Parquet
(the fastest format pandas reads) and computes with vectorised group-bys."""

from __future__ import annotations

import math
from pathlib import Path

NOT_REVENUE = ("refunded", "cancelled", "canceled", "returned", "void", "failed")
METRICS = ("nps", "csat", "ces", "responses", "frt_median", "ttr_median", "revenue", "aov")
COLUMNS = {
    "responses": ["submitted_at", "nps", "csat", "csat_min", "csat_max", "ces", "ces_min", "ces_max"],
    "tickets": ["created_at", "first_response_at", "resolved_at"],
    "orders": ["ordered_at", "amount", "status"],
}


def parquet_files(size: str, db: Path, cache: Path) -> Path:
    """Parquet exports of responses, tickets and orders of ``size`` (written once)."""
    import duckdb

    from cx.store import SCALE_COLUMNS, TABLES

    folder = cache / f"files-{size}" / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    con = None
    for table in COLUMNS:
        path = folder / f"{table}.parquet"
        if path.exists():
            continue
        con = con or duckdb.connect(str(db), read_only=True)
        cols = [*TABLES[table].field_names, *(c for c, _ in SCALE_COLUMNS.get(table, ()))]
        tmp = path.with_name(path.name + ".tmp")
        con.execute(f"COPY (SELECT {', '.join(cols)} FROM {table}) TO '{tmp}' (FORMAT parquet)")
        tmp.rename(path)
    if con is not None:
        con.close()
    return folder


def _put(out: dict, name: str, overall, monthly) -> None:
    out[name] = None if overall is None or (isinstance(overall, float) and math.isnan(overall)) else float(overall)
    for p, v in monthly.items():
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            out[f"{name}_{p:%Y-%m}"] = float(v)


def pandas_metrics(folder: Path) -> dict:
    import pandas as pd

    out: dict = {}
    r = pd.read_parquet(folder / "responses.parquet", columns=COLUMNS["responses"])
    month = r["submitted_at"].dt.to_period("M").dt.start_time
    nps = r["nps"]
    has = nps.notna()
    score = (nps >= 9).astype("float64") - (nps <= 6).astype("float64")
    g = score[has].groupby(month[has])
    _put(out, "nps", 100 * score[has].mean(), 100 * g.mean())
    has = r["csat"].notna()
    sat = (r["csat"] >= r["csat_max"].fillna(5) - 1).astype("float64")[has]
    _put(out, "csat", 100 * sat.mean(), 100 * sat.groupby(month[has]).mean())
    has = r["ces"].notna()
    lo, hi = r["ces_min"].fillna(1).astype("float64"), r["ces_max"].fillna(7).astype("float64")
    ces = (1 + 6 * (r["ces"].astype("float64") - lo) / (hi - lo))[has]
    _put(out, "ces", ces.mean(), ces.groupby(month[has]).mean())
    _put(out, "responses", len(r), r.groupby(month).size())
    del r, month, score, sat, ces
    t = pd.read_parquet(folder / "tickets.parquet", columns=COLUMNS["tickets"])
    month = t["created_at"].dt.to_period("M").dt.start_time
    for col, name in (("first_response_at", "frt_median"), ("resolved_at", "ttr_median")):
        h = (t[col] - t["created_at"]).dt.total_seconds() / 3600
        has = h.notna()
        _put(out, name, h[has].median(), h[has].groupby(month[has]).median())
    del t, month
    o = pd.read_parquet(folder / "orders.parquet", columns=COLUMNS["orders"])
    keep = o["amount"].notna() & (o["status"].isna() | ~o["status"].str.lower().isin(NOT_REVENUE))
    o = o[keep]
    month = o["ordered_at"].dt.to_period("M").dt.start_time
    _put(out, "revenue", o["amount"].sum(), o["amount"].groupby(month).sum())
    _put(out, "aov", o["amount"].mean(), o["amount"].groupby(month).mean())
    return out


def touchpoint_metrics(store) -> dict:
    from cx import metrics

    out: dict = {}
    # As the Overview asks: the metrics of one table share a statement (quantiles with their intervals).
    overall = metrics.query_metrics(store, METRICS)
    monthly = metrics.query_metrics(store, METRICS, grain="month")
    for name in METRICS:
        _put(out, name, overall[name]["value"].iloc[0], dict(zip(monthly[name]["period"], monthly[name]["value"])))
    return out


def compare(a: dict, b: dict, tol: float = 1e-6) -> str:
    keys = set(a) | set(b)
    bad = [k for k in sorted(keys) if a.get(k) is None or b.get(k) is None
           or abs(a[k] - b[k]) > tol * max(1.0, abs(b[k]))]
    return "same" if not bad else f"differs in {len(bad)} of {len(keys)}: " + ", ".join(bad[:4])
