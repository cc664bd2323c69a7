"""The touchpoint map: survey scores on a journey stage × touchpoint (or channel) grid, with volume,
low-sample flags and the pain points — cells significantly worse than the rest of the journey.

Every number comes from the metric layer (``cx.metrics.segment_table``): NPS, CSAT and CES are
defined there once and only read here. Each cell is tested against every answer outside it (the
same test the Segments page uses). With dozens of cells some would pass by chance, so the p-values
are adjusted across every cell of the map (Benjamini–Hochberg); a cell is a pain point when it has
at least ``min_n`` answers and is worse than the rest with an adjusted p-value below ``alpha``.
"""

from __future__ import annotations

import math

import pandas as pd
from scipy.stats import false_discovery_control

from cx import metrics
from cx.errors import UnknownDimension

MAP_METRICS = ("nps", "csat", "ces")
# The order of a customer journey, as CX teams usually draw it; other stages follow alphabetically.
STAGE_ORDER = ("awareness", "discovery", "consideration", "research", "evaluation", "trial", "purchase",
               "checkout", "order", "payment", "delivery", "fulfilment", "fulfillment", "onboarding", "activation",
               "usage", "use", "service", "support", "billing", "renewal", "retention", "loyalty", "advocacy",
               "cancellation", "offboarding")
# A metric's full range, so gaps in different units can be ranked together (a share of the scale).
SCALE_SPAN = {"points": 200.0, "percent": 100.0, "score": 6.0}


def stage_sort_key(value: str) -> tuple[int, str]:
    """Journey stages in journey order (Awareness … Renewal), unknown stages after, by name."""
    v = str(value).strip().lower()
    return (STAGE_ORDER.index(v) if v in STAGE_ORDER else len(STAGE_ORDER), v)


def touchpoint_map(backend, *, rows: str = "journey_stage", cols: str = "touchpoint",
                   metric_names: tuple[str, ...] = MAP_METRICS, start=None, end=None, where=None,
                   alpha: float = 0.05, min_n: int = metrics.MIN_N,
                   ces_easy_min: float | None = None) -> pd.DataFrame:
    """One row per (stage, touchpoint, metric) cell that has answers: ``rows``/``cols`` values,
    ``metric``, ``value`` (the metric's unit: NPS points, CSAT %, CES 1–7), ``n`` (answers),
    ``ci_low``/``ci_high`` (95%), ``low_n``, ``overall`` (the metric over the whole map),
    ``p_vs_rest`` and ``p_adjusted`` (Benjamini–Hochberg over the map's tested cells), ``worse``
    (significantly worse than the rest after adjustment, and not low-n: a pain point),
    ``better``, ``gap`` (value − overall, in the metric's unit; negative = worse) and ``volume``
    (all survey answers in the cell). Metrics without answers are left out."""
    if rows == cols:
        raise UnknownDimension("The map needs two different dimensions.",
                               fix="Choose, e.g., journey stage for rows and touchpoint for columns.")
    volume = metrics.segment_table(backend, "responses", by=(rows, cols), start=start, end=end, where=where,
                                   alpha=alpha, min_n=min_n)
    volume = volume.dropna(subset=[rows, cols])[[rows, cols, "value"]].rename(columns={"value": "volume"})
    parts = []
    for name in metric_names:
        m = metrics.REGISTRY[name]
        try:
            cells = metrics.segment_table(backend, name, by=(rows, cols), start=start, end=end, where=where,
                                          alpha=alpha, min_n=min_n, ces_easy_min=ces_easy_min)
        except (ValueError, KeyError, TypeError, IndexError):
            continue  # no answer carries this metric in the range: nothing to map
        cells = cells.dropna(subset=[rows, cols, "value"])
        cells = cells[cells["n"] > 0]
        if cells.empty:
            continue
        cells = cells.assign(metric=name, gap=cells["value"] - cells["overall"],
                             _sign=1.0 if m.good == "up" else -1.0)
        parts.append(cells)
    cols_out = [rows, cols, "metric", "value", "n", "ci_low", "ci_high", "low_n", "overall", "p_vs_rest",
                "p_adjusted", "worse", "better", "gap", "volume"]
    if not parts:
        empty = pd.DataFrame(columns=cols_out)
        empty.attrs.update(rows=rows, cols=cols)
        return empty
    out = pd.concat(parts, ignore_index=True)
    tested = ~out["low_n"] & out["p_vs_rest"].notna()
    out["p_adjusted"] = float("nan")
    if tested.any():
        out.loc[tested, "p_adjusted"] = false_discovery_control(out.loc[tested, "p_vs_rest"].to_numpy(), method="bh")
    significant = tested & (out["p_adjusted"] < alpha)
    out["worse"] = significant & (out["_sign"] * out["gap"] < 0)
    out["better"] = significant & (out["_sign"] * out["gap"] > 0)
    out = out.merge(volume, on=[rows, cols], how="left")
    out["volume"] = out["volume"].fillna(0).astype("int64")
    out["worse"] = out["worse"].astype(bool)
    out["better"] = out["better"].astype(bool)
    out = out[cols_out].reset_index(drop=True)
    out.attrs.update(rows=rows, cols=cols)
    return out


def pain_points(cells: pd.DataFrame, *, limit: int = 10) -> pd.DataFrame:
    """The cells of a ``touchpoint_map`` significantly worse than the rest of the journey, worst first (gap as a share of
    the metric's scale, so NPS, CSAT and CES rank together): ``rows``/``cols`` values, ``metric``,
    ``label``, ``value``, ``overall``, ``gap``, ``n``, ``p_adjusted`` and ``sentence`` in plain words."""
    rows, cols = cells.attrs.get("rows", "journey_stage"), cells.attrs.get("cols", "touchpoint")
    bad = cells[cells["worse"].astype(bool)].copy() if not cells.empty else cells.copy()
    if bad.empty:
        return pd.DataFrame(columns=[rows, cols, "metric", "label", "value", "overall", "gap", "n", "p_adjusted",
                                     "sentence"])
    bad["severity"] = [abs(g) / SCALE_SPAN.get(metrics.REGISTRY[m].unit, 1.0) for g, m in zip(bad["gap"], bad["metric"])]
    bad = bad.sort_values(["severity", "p_adjusted"], ascending=[False, True]).head(limit)
    bad["label"] = [metrics.REGISTRY[m].label for m in bad["metric"]]
    bad["sentence"] = [_sentence(r, rows, cols) for _, r in bad.iterrows()]
    return bad[[rows, cols, "metric", "label", "value", "overall", "gap", "n", "p_adjusted", "sentence"]] \
        .reset_index(drop=True)


def _sentence(r: pd.Series, rows: str, cols: str) -> str:
    m = r["metric"]
    fmt = lambda x: metrics.format_value(m, x)  # noqa: E731
    unit = {"points": " points", "percent": " points", "score": ""}.get(metrics.REGISTRY[m].unit, "")
    p = r["p_adjusted"]
    p_text = "adjusted p < 0.001" if p < 0.001 else f"adjusted p = {p:.3f}" if not math.isnan(p) else "untested"
    return (f"{r[rows]} · {r[cols]}: {metrics.REGISTRY[m].label} {fmt(r['value'])} against {fmt(r['overall'])} "
            f"across the journey ({abs(r['gap']):.1f}{unit} worse, {int(r['n']):,} answers, {p_text}).")


def map_margins(backend, cells: pd.DataFrame, *, start=None, end=None, where=None, min_n: int = metrics.MIN_N,
                ces_easy_min: float | None = None) -> pd.DataFrame:
    """The margins of a ``touchpoint_map``: each metric over every row value (all of the map's columns
    together) and every column value (all of its rows together), from the metric layer. Only answers
    that carry both dimensions count, so a margin pools exactly the cells of the map. Columns:
    ``axis`` ("rows" or "cols"), ``value_of``, ``metric``, ``value``, ``n``, ``low_n``, ``volume``."""
    out_cols = ["axis", "value_of", "metric", "value", "n", "low_n", "volume"]
    if cells.empty:
        return pd.DataFrame(columns=out_cols)
    rows, cols = cells.attrs.get("rows", "journey_stage"), cells.attrs.get("cols", "touchpoint")
    unique_cells = cells.drop_duplicates([rows, cols])
    parts = []
    for axis, dim, other in (("rows", rows, cols), ("cols", cols, rows)):
        volume = unique_cells.groupby(unique_cells[dim].astype(str))["volume"].sum()
        present = sorted(str(x) for x in unique_cells[other].unique())
        for name in cells["metric"].unique():
            pooled = metrics.query_metric(backend, name, by=(dim,), start=start, end=end,
                                          where={**dict(where or {}), other: present}, min_n=min_n,
                                          ces_easy_min=ces_easy_min)
            mapped = set(cells.loc[cells["metric"] == name, dim].astype(str))
            pooled = pooled.dropna(subset=[dim])
            pooled = pooled[pooled[dim].astype(str).isin(mapped)]
            parts.append(pd.DataFrame({"axis": axis, "value_of": pooled[dim].astype(str), "metric": name,
                                       "value": pooled["value"], "n": pooled["n"], "low_n": pooled["low_n"],
                                       "volume": pooled[dim].astype(str).map(volume).fillna(0).astype("int64")}))
    return pd.concat(parts, ignore_index=True)[out_cols] if parts else pd.DataFrame(columns=out_cols)
