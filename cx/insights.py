"""What an executive reads first: KPI tiles, the NPS mix, and plain-English statements of what
changed — each statement backed by a significant test, never by a raw difference."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import ibis
import pandas as pd

from cx import engine, metrics
from cx.engine import read_cursor
from cx.filters import Filters
from cx.settings import Settings, target_status
from cx.store import Store

KPI_METRICS = ("nps", "csat", "ces", "frt_median", "ttr_median", "churn_rate", "revenue", "clv_historical")
CHANGE_METRICS = ("nps", "csat", "ces", "ttr_median", "frt_median")
CHANGE_DIMENSIONS = ("channel", "segment", "region", "touchpoint", "journey_stage", "product", "priority", "team")
NEEDS = {  # metric -> (table, column that must have values, what to import)
    "responses": ("responses", None, "survey responses"),
    "nps": ("responses", "nps", "survey responses with an NPS (0–10) score"),
    "csat": ("responses", "csat", "survey responses with a CSAT score"),
    "ces": ("responses", "ces", "survey responses with a CES score"),
    "ces_easy": ("responses", "ces", "survey responses with a CES score"),
    "comment_share": ("responses", None, "survey responses"),
    "frt_median": ("tickets", "first_response_at", "support tickets with a first-response time"),
    "frt_mean": ("tickets", "first_response_at", "support tickets with a first-response time"),
    "frt_p90": ("tickets", "first_response_at", "support tickets with a first-response time"),
    "ttr_median": ("tickets", "resolved_at", "support tickets with a resolution time"),
    "ttr_mean": ("tickets", "resolved_at", "support tickets with a resolution time"),
    "ttr_p90": ("tickets", "resolved_at", "support tickets with a resolution time"),
    "fcr": ("tickets", "agent_replies", "resolved support tickets with a count of agent replies"),
    "reopen_rate": ("tickets", "resolved_at", "resolved support tickets"),
    "backlog": ("tickets", None, "support tickets"),
    "churn_rate": ("customers", "churned", "customers with churn dates or a churned flag"),
    "retention_rate": ("customers", "churned", "customers with churn dates or a churned flag"),
    "revenue": ("orders", "amount", "orders with amounts"),
    "orders": ("orders", None, "orders"),
    "aov": ("orders", "amount", "orders with amounts"),
    "purchase_frequency": ("orders", None, "orders"),
    "clv_historical": ("orders", "amount", "orders with amounts"),
}


def metric_availability(store: Store) -> dict[str, str | None]:
    """For each metric, None when the data supports it, else the reason in plain words (on an external
    engine, from its own tables)."""
    if engine.is_external():
        from cx import external

        filled = external.filled(engine.backend_for(), NEEDS)
        return {name: None if filled[(table, col)] else f"No {what} in the engine's tables."
                for name, (table, col, what) in NEEDS.items()}
    out: dict[str, str | None] = {}
    with read_cursor(store) as cur:
        filled: dict[tuple[str, str | None], int] = {}
        for name, (table, col, what) in NEEDS.items():
            key = (table, col)
            if key not in filled:
                expr = "count(*)" if col is None else (
                    f"count(*) FILTER (WHERE {col} IS NOT NULL OR churned_at IS NOT NULL)" if col == "churned"
                    else f"count({col})")
                filled[key] = int(cur.execute(f"SELECT {expr} FROM {table}").fetchone()[0])
            out[name] = None if filled[key] else f"No {what} imported yet."
    return out


def applicable_where(backend, metric: str, where: dict[str, tuple[str, ...]]) -> tuple[dict, list[str]]:
    """The filters a metric's table can apply, and the names of those it cannot (shown to the user)."""
    return _split_where(where, set(engine.table(backend, metrics.REGISTRY[metric].table).columns))


def _split_where(where: dict[str, tuple[str, ...]], cols: set[str]) -> tuple[dict, list[str]]:
    """The filters of ``where`` on ``cols``, and the names of the others."""
    return {d: v for d, v in where.items() if d in cols}, [d for d in where if d not in cols]


@dataclass
class Kpi:
    """One tile: the value now, its interval, the change against the comparison period, the target."""

    metric: str
    label: str
    unit: str
    value: float | None = None
    n: int = 0
    ci_low: float | None = None
    ci_high: float | None = None
    value_before: float | None = None
    delta: float | None = None
    p_value: float | None = None
    significant: bool = False
    low_n: bool = False
    target: float | None = None
    status: str | None = None
    sparkline: list[tuple[pd.Timestamp, float]] = field(default_factory=list)
    reason: str | None = None  # why the tile has no value
    ignored_filters: list[str] = field(default_factory=list)

    @property
    def good_change(self) -> bool | None:
        """Whether the change is in the metric's good direction (None without a significant change)."""
        if not self.significant or self.delta is None:
            return None
        return (self.delta > 0) == (metrics.REGISTRY[self.metric].good == "up")


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def kpi_tiles(backend, store: Store, filters: Filters, settings: Settings,
              names: tuple[str, ...] = KPI_METRICS) -> list[Kpi]:
    """One ``Kpi`` per metric, for the resolved filters (``filters.start``/``end`` set)."""
    return overview(backend, store, filters, settings, names=names, changes=())[0]


def overview(backend, store: Store, filters: Filters, settings: Settings, names: tuple[str, ...] = KPI_METRICS,
             changes: tuple[str, ...] = CHANGE_METRICS, limit: int = 6,
             available: dict[str, str | None] | None = None) -> tuple[list[Kpi], list["Change"]]:
    """The Overview's KPI tiles (``kpi_tiles``) and what changed (``what_changed``) together: each metric
    is compared once, tiles reading the overall row of the breakdown scan, and the metrics of one
    table share engine statements (``metrics.compare_metrics_by_each``, ``metrics.query_metrics``).
    ``available``: ``metric_availability(store)`` when the caller has it already."""
    available = metric_availability(store) if available is None else available
    # The real columns of the tables with something to show (a table the engine lacks: a plain error).
    cols = {t: set(metrics._table(backend, t)[1]) for t in _by_table([*names, *changes], available)}
    compared = _compare_all(backend, filters, settings, available, cols, names, changes)
    return (_tiles(backend, filters, settings, names, available, cols, compared),
            _changes(filters, settings, changes, available, compared, limit))


def _by_table(names, available) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in dict.fromkeys(names):
        if not available.get(name):
            out.setdefault(metrics.REGISTRY[name].table, []).append(name)
    return out


def _compare_all(backend, filters: Filters, settings: Settings, available, cols, tiles, changes) -> dict:
    """``{metric: {None: overall comparison, dim: by dim, ...}}``: the change metrics by every change
    dimension their table has, the other tile metrics overall only; one call per table and kind."""
    if not (filters.start and filters.end):
        return {}
    out = {}
    kw = dict(start=filters.start, end=filters.end, compare=filters.compare, alpha=settings.alpha,
              min_n=settings.min_n, ces_easy_min=settings.ces_easy_min)
    for table, group in _by_table([*changes, *tiles], available).items():
        where, _ = _split_where(filters.where, cols[table])
        scanned = [n for n in group if n in changes]
        if scanned:
            out.update(metrics.compare_metrics_by_each(
                backend, scanned, dims=[d for d in CHANGE_DIMENSIONS if d in cols[table]], where=where, **kw))
        overall = [n for n in group if n not in changes]
        if overall:
            out.update(metrics.compare_metrics_by_each(backend, overall, dims=[], where=where, **kw))
    return out


def _tiles(backend, filters: Filters, settings: Settings, names, available, cols, compared) -> list[Kpi]:
    totals, sparks = {}, {}
    # The sparkline gives a year of context, whatever the range: month by month to its end.
    spark_start = (filters.end - pd.DateOffset(months=11)).replace(day=1).date() if filters.end else None
    for table, group in _by_table(names, available).items():
        where, _ = _split_where(filters.where, cols[table])
        kw = dict(where=where, min_n=settings.min_n, ces_easy_min=settings.ces_easy_min)
        if not (filters.start and filters.end):
            totals.update(metrics.query_metrics(backend, group, **kw))
        if table == "customers" and metrics._customer_mode(backend) != "dates":
            continue  # churn from a flag has no calendar, so no sparkline
        sparks.update(metrics.query_metrics(backend, group, grain="month", start=spark_start, end=filters.end,
                                            intervals=False, **kw))
    tiles = []
    for name in names:
        m = metrics.REGISTRY[name]
        kpi = Kpi(name, m.label, m.unit, target=settings.target_map.get(name))
        if available.get(name):
            kpi.reason = available[name]
            tiles.append(kpi)
            continue
        kpi.ignored_filters = _split_where(filters.where, cols[m.table])[1]
        if name in compared:
            r = compared[name][None].iloc[0]
            kpi.value, kpi.n = _num(r["value"]), int(r["n"])
            kpi.ci_low, kpi.ci_high = _num(r["ci_low"]), _num(r["ci_high"])
            kpi.value_before, kpi.delta, kpi.p_value = _num(r["value_before"]), _num(r["delta"]), _num(r["p_value"])
            kpi.significant = bool(r["significant"]) and not bool(r["low_n"])
            kpi.low_n = bool(r["n"] < settings.min_n) if m.kind not in ("count", "sum", "backlog", "ratio") else False
        else:
            r = totals[name].iloc[0]
            kpi.value, kpi.n = _num(r["value"]), int(r["n"])
            kpi.ci_low, kpi.ci_high, kpi.low_n = _num(r["ci_low"]), _num(r["ci_high"]), bool(r["low_n"])
        if name in sparks:
            spark = sparks[name]
            kpi.sparkline = [(p, float(v)) for p, v in zip(spark["period"], spark["value"]) if not pd.isna(v)][-24:]
        kpi.status = target_status(name, kpi.value, kpi.target)
        tiles.append(kpi)
    return tiles


def nps_mix(backend, filters: Filters) -> dict[str, Any]:
    """Counts and shares (%) of promoters (9–10), passives (7–8) and detractors (0–6)."""
    where, _ = applicable_where(backend, "nps", filters.where)
    t = engine.table(backend, "responses")
    preds = [t.nps.notnull()]
    if filters.start:
        preds.append(t.submitted_at >= ibis.literal(pd.Timestamp(filters.start).to_pydatetime()))
    if filters.end:
        preds.append(t.submitted_at < ibis.literal((pd.Timestamp(filters.end) + pd.Timedelta(days=1)).to_pydatetime()))
    for d, v in where.items():
        preds.append(t[d].isin(list(v)))
    t = t.filter(preds)
    row = t.aggregate(promoters=(t.nps >= 9).sum(), passives=((t.nps >= 7) & (t.nps <= 8)).sum(),
                      detractors=(t.nps <= 6).sum(), n=t.count()).execute().iloc[0]
    n = int(row["n"] or 0)
    counts = {k: int(row[k] or 0) for k in ("promoters", "passives", "detractors")}
    return {"n": n, **counts, **{f"{k}_pct": (100 * v / n if n else math.nan) for k, v in counts.items()}}


@dataclass
class Change:
    """A significant move of one metric in one segment, with the sentence that reports it."""

    metric: str
    dimension: str | None
    segment: str | None
    value: float
    value_before: float
    delta: float
    p_value: float
    n: int
    n_before: int
    good: bool
    sentence: str


def what_changed(backend, store: Store, filters: Filters, settings: Settings, limit: int = 6) -> list[Change]:
    """Significant changes against the comparison period, largest first: overall, then by segment.
    Only changes significant at ``settings.alpha`` with both periods at ``min_n`` or more qualify, after
    a Benjamini–Hochberg correction for the number of segments tested."""
    if not (filters.start and filters.end):
        return []
    return overview(backend, store, filters, settings, names=(), limit=limit)[1]


def _changes(filters: Filters, settings: Settings, names, available, compared, limit: int) -> list[Change]:
    if not (filters.start and filters.end):
        return []
    changes: list[Change] = []
    candidates = 0
    for name in names:
        if available.get(name) or name not in compared:
            continue
        m = metrics.REGISTRY[name]
        for dim, cmp in compared[name].items():
            for _, r in cmp.iterrows():
                if dim is not None and pd.isna(r[dim]):
                    continue  # rows with no value for the dimension are no segment anyone can act on
                if r["n"] >= settings.min_n and r["n_before"] >= settings.min_n and not pd.isna(r["p_value"]):
                    candidates += 1
                if not (bool(r["significant"]) and r["n"] >= settings.min_n and r["n_before"] >= settings.min_n):
                    continue
                segment = None if dim is None else str(r[dim])
                good = (r["delta"] > 0) == (m.good == "up")
                changes.append(Change(name, dim, segment, float(r["value"]), float(r["value_before"]),
                                      float(r["delta"]), float(r["p_value"]), int(r["n"]), int(r["n_before"]), good,
                                      _sentence(name, dim, segment, r, filters)))
    changes = _false_discovery_control(changes, candidates, settings.alpha)
    # Overall moves first, then the segments that moved most (relative to the metric's spread).
    changes.sort(key=lambda c: (c.dimension is not None, -abs(c.delta) / _scale(c.metric)))
    return changes[:limit]


def _false_discovery_control(changes: list[Change], tests: int, alpha: float) -> list[Change]:
    """Benjamini–Hochberg over every segment tested: with dozens of segments, some would pass
    p < alpha by chance alone; this keeps the expected share of false claims at or below alpha."""
    ranked = sorted(changes, key=lambda c: c.p_value)
    keep = 0
    for i, c in enumerate(ranked, start=1):
        if c.p_value <= alpha * i / max(tests, 1):
            keep = i
    return ranked[:keep]


def _scale(metric: str) -> float:
    return {"points": 10.0, "percent": 5.0, "score": 0.3, "hours": 5.0}.get(metrics.REGISTRY[metric].unit, 1.0)


def _sentence(name: str, dim: str | None, segment: str | None, r, filters: Filters) -> str:
    m = metrics.REGISTRY[name]
    fmt = lambda v: metrics.format_value(name, v)  # noqa: E731
    verb = "rose" if r["delta"] > 0 else "fell"
    size = abs(r["delta"])
    unit = {"points": " points", "percent": " points", "score": "", "hours": " h"}.get(m.unit, "")
    who = f"{m.label}" if dim is None else f"{m.label} for {dim.replace('_', ' ')} “{segment}”"
    period = "the previous period" if filters.compare == "previous" else "the same period last year"
    return (f"{who} {verb} by {size:.1f}{unit} to {fmt(r['value'])} (from {fmt(r['value_before'])} in {period}; "
            f"n = {int(r['n']):,}, {_p_text(r['p_value'])}).")


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def top_movers(changes: list[Change]) -> pd.DataFrame:
    """The segment-level changes as a table: metric, breakdown, segment, now, before, change (in the
    metric's unit), better or worse, n in each period, p."""
    columns = ["Metric", "Breakdown", "Segment", "Now", "Before", "Change", "Better?", "n now", "n before", "p"]
    rows = [{"Metric": metrics.REGISTRY[c.metric].label, "Breakdown": c.dimension.replace("_", " "),
             "Segment": c.segment, "Now": metrics.format_value(c.metric, c.value),
             "Before": metrics.format_value(c.metric, c.value_before), "Change": round(c.delta, 2),
             "Better?": "better" if c.good else "worse", "n now": c.n, "n before": c.n_before,
             "p": round(c.p_value, 4)} for c in changes if c.dimension]
    return pd.DataFrame(rows, columns=columns)
