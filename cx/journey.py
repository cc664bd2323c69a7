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
from cx.engine import read_cursor
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


# ------------------------------------------------------------------------------------------------
# Sentiment of the comments on the map (from the Voice analysis in the store)
# ------------------------------------------------------------------------------------------------
SENTIMENT_COLUMNS = ("metric", "value", "mean_score", "n", "negative", "comments", "ci_low", "ci_high", "low_n",
                     "overall", "p_vs_rest", "p_adjusted", "worse", "better", "gap")


def sentiment_map(store, *, rows: str = "journey_stage", cols: str = "touchpoint", start=None, end=None,
                  where=None, alpha: float = 0.05, min_n: int = metrics.MIN_N) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sentiment of survey comments on the stage × touchpoint grid, from the stored Voice scores
    (``cx.voice``: a score counts only when it was made from the comment's present text).

    Returns ``(cells, margins)``. ``cells``: one row per cell with comments: ``rows``/``cols`` values,
    ``metric`` ("sentiment"), ``value`` (% of the scored comments that are negative), ``mean_score``
    (−1…1), ``n`` (scored comments), ``negative``, ``comments`` (analysed comments, scored or not),
    ``ci_low``/``ci_high`` (95% Wilson interval of the share negative), ``low_n`` (n < ``min_n``),
    ``overall`` (% negative over the whole map), ``p_vs_rest`` (two-proportion test against every
    other scored comment on the map), ``p_adjusted`` (Benjamini–Hochberg over the cells tested),
    ``worse`` / ``better`` (significantly more / fewer negative comments than the rest, not low-n) and
    ``gap`` (value − overall, percentage points; positive = more negative). ``margins``: ``axis``
    ("rows"/"cols"/"all"), ``value_of``, ``value``, ``mean_score``, ``n``, ``low_n``: each row value
    over all columns, each column over all rows, and the whole map."""
    from cx import stats, voice
    from cx.store import quote_ident

    if rows == cols:
        raise UnknownDimension("The map needs two different dimensions.",
                               fix="Choose, e.g., journey stage for rows and touchpoint for columns.")
    known = set(store.columns("responses"))
    for d in (rows, cols):
        if d not in known:
            raise UnknownDimension(f"Survey answers have no {d!r} column.",
                                   fix=f"Choose one of: {', '.join(store.dimensions('responses'))}.")
    src = voice.SOURCES["responses"]
    sql, params, _ = voice._base(store, src, start, end, where)
    r, c = quote_ident(rows), quote_ident(cols)
    with read_cursor(store) as cur:
        got = cur.execute(
            "SELECT rv, cv, grouping(rv) AS g_r, grouping(cv) AS g_c, count(*) AS comments, count(label) AS n, "
            "count(*) FILTER (WHERE label = 'negative') AS negative, avg(score) AS mean_score FROM ("
            f"SELECT CAST(t.{r} AS VARCHAR) AS rv, CAST(t.{c} AS VARCHAR) AS cv, b.sentiment_label AS label, "
            f"b.sentiment_score AS score FROM ({sql}) b "
            f"JOIN responses t ON CAST(t.{quote_ident(src.key)} AS VARCHAR) = b.id "
            f"WHERE b.has_text AND b.analysed AND t.{r} IS NOT NULL AND t.{c} IS NOT NULL) "
            "GROUP BY GROUPING SETS ((rv, cv), (rv), (cv), ())", params).df()
    cell_cols = [rows, cols, *SENTIMENT_COLUMNS]
    margin_cols = ["axis", "value_of", "value", "mean_score", "n", "low_n"]
    got = got[got["comments"] > 0]
    if got.empty:
        empty = pd.DataFrame(columns=cell_cols)
        empty.attrs.update(rows=rows, cols=cols)
        return empty, pd.DataFrame(columns=margin_cols)
    for k in ("comments", "n", "negative"):
        got[k] = got[k].astype("int64")
    got["value"] = 100.0 * got["negative"] / got["n"].where(got["n"] > 0)
    got["mean_score"] = got["mean_score"].astype(float)
    got["low_n"] = got["n"] < min_n
    total = got[(got["g_r"] == 1) & (got["g_c"] == 1)].iloc[0]
    n_all, neg_all = int(total["n"]), int(total["negative"])
    cells = got[(got["g_r"] == 0) & (got["g_c"] == 0)].rename(columns={"rv": rows, "cv": cols}).copy()
    cells["metric"] = "sentiment"
    cells["overall"] = 100.0 * neg_all / n_all if n_all else float("nan")
    cells["gap"] = cells["value"] - cells["overall"]
    bounds = [stats.wilson_interval(int(k), int(n)) if n else (float("nan"), float("nan"))
              for k, n in zip(cells["negative"], cells["n"])]
    cells["ci_low"] = [100.0 * lo for lo, _ in bounds]
    cells["ci_high"] = [100.0 * hi for _, hi in bounds]
    cells["p_vs_rest"] = [stats.two_proportion_test(int(k), int(n), neg_all - int(k), n_all - int(n))[1]
                          if n and n_all - n else float("nan") for k, n in zip(cells["negative"], cells["n"])]
    tested = ~cells["low_n"] & cells["p_vs_rest"].notna()
    cells["p_adjusted"] = float("nan")
    if tested.any():
        cells.loc[tested, "p_adjusted"] = false_discovery_control(cells.loc[tested, "p_vs_rest"].to_numpy(),
                                                                  method="bh")
    significant = tested & (cells["p_adjusted"] < alpha)
    cells["worse"] = (significant & (cells["gap"] > 0)).astype(bool)
    cells["better"] = (significant & (cells["gap"] < 0)).astype(bool)
    cells = cells[cell_cols].sort_values([rows, cols]).reset_index(drop=True)
    cells.attrs.update(rows=rows, cols=cols)
    axis = got.apply(lambda x: "all" if x["g_r"] and x["g_c"] else "rows" if x["g_c"] else "cols" if x["g_r"] else
                     "cell", axis=1)
    m = got[axis != "cell"].assign(axis=axis[axis != "cell"])
    m["value_of"] = [None if a == "all" else (rv if a == "rows" else cv)
                     for a, rv, cv in zip(m["axis"], m["rv"], m["cv"])]
    margins = m[margin_cols].sort_values(["axis", "value_of"]).reset_index(drop=True)
    return cells, margins


def sentiment_pain_points(cells: pd.DataFrame, *, limit: int = 10) -> pd.DataFrame:
    """The cells of a ``sentiment_map`` with significantly more negative comments than the rest of the
    map, most negative first: ``rows``/``cols`` values, ``value``, ``overall``, ``n``, ``p_adjusted``
    and ``sentence``."""
    rows, cols = cells.attrs.get("rows", "journey_stage"), cells.attrs.get("cols", "touchpoint")
    out_cols = [rows, cols, "value", "overall", "n", "p_adjusted", "sentence"]
    bad = cells[cells["worse"].astype(bool)].copy() if not cells.empty else cells.iloc[0:0].copy()
    if bad.empty:
        return pd.DataFrame(columns=out_cols)
    bad = bad.sort_values(["gap", "p_adjusted"], ascending=[False, True]).head(limit)
    sentences = []
    for _, r in bad.iterrows():
        p = r["p_adjusted"]
        p_text = "adjusted p < 0.001" if p < 0.001 else f"adjusted p = {p:.3f}"
        sentences.append(f"{r[rows]} · {r[cols]}: {r['value']:.1f}% of comments negative against {r['overall']:.1f}% "
                         f"across the journey ({r['gap']:.1f} points more, {int(r['n']):,} scored comments, "
                         f"mean sentiment {r['mean_score']:+.2f}, {p_text}).")
    bad["sentence"] = sentences
    return bad[out_cols].reset_index(drop=True)
