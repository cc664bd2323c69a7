"""What each page asks of ``cx`` on its first render, and hand-written DuckDB SQL for the same numbers.

A page's workload calls the same cached functions the page calls (``pages/_ui.py``), in the same
order, including the shared sidebar (date span, dimension values, row counts). Charts are not drawn:
the benchmark measures the data work a user waits for. ``reset()`` drops every cache and reopens the
store, so the next call is cold (new DuckDB connection and buffer pool, empty Streamlit caches).

The hand-written references compute the numbers a page shows with plain SQL on a DuckDB cursor
(one statement per table where GROUPING SETS allow it); ``check`` compares the headline numbers of
both, so a fast reference that computed something else would be caught.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, datetime, timedelta

PAGES = ("sidebar", "overview", "trends", "segments", "data", "settings")  # sidebar: shared by all
FILTERS = ("default", "narrow")
# The narrow filter: the last 30 days, app channel, Enterprise customers.
NARROW = {"channel": ("app",), "segment": ("Enterprise",)}


def ui():
    """pages._ui (Streamlit's "no runtime" warnings are silenced by ``quiet``, outside the timings)."""
    from pages import _ui

    _ui.freeze_startup_objects()  # as app.py does once per process after its imports
    return _ui


def quiet() -> None:
    """Silence Streamlit's "no runtime" warnings (its loggers appear as caches are first used)."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("streamlit"):
            logging.getLogger(name).setLevel(logging.ERROR)


def reset() -> None:
    """Forget every cache and close the store: the next page call starts cold."""
    import streamlit as st

    from cx.store import _OPEN

    _ui = ui()
    quiet()
    st.cache_data.clear()
    _ui.get_store.clear()
    for store in list(_OPEN.values()):
        store.close()


def filters_for(name: str):
    """The resolved shared filters: the default (last 90 days, no dimension filter) or the narrow one."""
    from cx.filters import Filters

    _ui = ui()
    v = _ui.version()
    first, last = _ui.cached_span(v)
    if name == "default":
        return Filters().resolved(first, last)
    f = Filters(preset="last_30")
    for dim, values in NARROW.items():
        f = f.with_dim(dim, values)
    return f.resolved(first, last)


def _sidebar() -> None:
    _ui = ui()
    v = _ui.version()
    _ui.cached_dimension_values(v)
    _ui.cached_span(v)
    _ui.cached_row_counts(v)


def prime() -> None:
    """Fill the caches every page shares (sidebar, metric availability), so a timing that follows
    covers the page's own queries."""
    _ui = ui()
    _sidebar()
    _ui.cached_availability(_ui.version())
    quiet()


def run_page(page: str, filter_name: str) -> dict:
    """The page's data work, inside one read snapshot of the store as app.py renders every page;
    returns the headline numbers it shows (for ``check``)."""
    from cx.engine import read_snapshot

    with read_snapshot(ui().get_store()):
        return _run_page(page, filter_name)


def _run_page(page: str, filter_name: str) -> dict:
    from cx import ingest, insights

    _ui = ui()
    _sidebar()
    v = _ui.version()
    settings = _ui.current_settings()
    f = filters_for(filter_name)
    if page == "sidebar":  # what every analysis page needs first
        _ui.cached_availability(v)
        return {}
    if page == "overview":
        tiles = _ui.cached_kpis(v, f, settings)
        mix = _ui.cached_nps_mix(v, f)
        changes = _ui.cached_changes(v, f, settings)
        insights.top_movers(changes)
        out = {f"kpi_{k.metric}": k.value for k in tiles}
        out.update({f"kpi_{k.metric}_before": k.value_before for k in tiles})
        out.update({f"spark_{k.metric}_{p:%Y-%m}": v for k in tiles if k.metric == "churn_rate" for p, v in k.sparkline})
        out["nps_mix_n"] = mix["n"]
        return out
    if page == "trends":
        _ui.cached_availability(v)
        _ui.cached_dimension_values(v)
        df, _ = _ui.cached_trend(v, "nps", "month", None, f, settings, 5)
        return {f"nps_{p:%Y-%m}": x for p, x in zip(df["period"], df["value"])}
    if page == "segments":
        _ui.cached_availability(v)
        _ui.cached_dimension_values(v)
        df, _ = _ui.cached_segments(v, "nps", ("channel",), f, settings)
        out = {f"nps_{c}": x for c, x in zip(df["channel"], df["value"])}
        out["overall"] = float(df["overall"].iloc[0]) if len(df) else math.nan
        return out
    if page == "data":
        store = _ui.get_store()
        batches = _ui.cached_batches(v)
        ingest.list_mappings(store)
        return {"batches": len(batches)}
    if page == "settings":
        _ui.current_settings()
        return {}
    raise KeyError(page)


# -- hand-written references -------------------------------------------------------------------------
def _where(filters, dims_of_table: set[str]) -> tuple[str, list]:
    sql, args = [], []
    for dim, values in filters.where.items():
        if dim in dims_of_table:
            sql.append(f'"{dim}" IN ({", ".join("?" for _ in values)})')  # dim from the filter whitelist
            args.extend(values)
    return "".join(f" AND {s}" for s in sql), args


def _ts(d: date) -> str:
    return d.isoformat()


def _month(col: str) -> str:
    """The month of a timestamp as a whole number (year × 12 + month − 1): grouping by it is about 5× faster
    than by ``date_trunc('month', …)`` on DuckDB 1.5.6, as ``cx.periods`` has it; ``_month_start`` turns it back."""
    return f"(year({col}) * 12 + month({col}) - 1)"


def _month_start(k: int | None) -> datetime | None:
    return None if k is None else datetime(k // 12, k % 12 + 1, 1)


def hand_page(cur, page: str, filters) -> dict | None:
    """The page's numbers from hand-written SQL, or None for pages with nothing to compare."""
    resp_dims = {"channel", "touchpoint", "journey_stage", "segment", "region", "product", "survey", "language"}
    start, end = filters.start, filters.end
    end1 = _ts(end + timedelta(days=1))
    w, wa = _where(filters, resp_dims)
    if page == "trends":
        rows = cur.execute(
            f"SELECT {_month('submitted_at')} AS p, count(*) FILTER (WHERE nps >= 9), "
            "count(*) FILTER (WHERE nps <= 6), count(*) FROM responses "
            f"WHERE nps IS NOT NULL AND submitted_at >= ? AND submitted_at < ?{w} GROUP BY p ORDER BY p",
            [_ts(start), end1, *wa]).fetchall()
        return {f"nps_{_month_start(p):%Y-%m}": 100.0 * (pr - de) / n for p, pr, de, n in rows}
    if page == "segments":
        rows = cur.execute(
            "SELECT channel, grouping(channel) AS g, count(*) FILTER (WHERE nps >= 9), "
            "count(*) FILTER (WHERE nps <= 6), count(*) FROM responses "
            f"WHERE nps IS NOT NULL AND submitted_at >= ? AND submitted_at < ?{w} "
            "GROUP BY GROUPING SETS ((channel), ())", [_ts(start), end1, *wa]).fetchall()
        out = {}
        for ch, g, pr, de, n in rows:
            if g:
                out["overall"] = 100.0 * (pr - de) / n if n else None
            elif ch is not None:
                out[f"nps_{ch}"] = 100.0 * (pr - de) / n
        return out
    if page == "overview":
        return _hand_overview(cur, filters)
    return None


def _hand_overview(cur, filters) -> dict:
    """The Overview's numbers: eight KPI tiles (now, before, a 12-month sparkline), the NPS mix, and
    every segment's now/before statistics for the what-changed scan, one statement per table."""
    from cx.metrics import previous_range

    start, end = filters.start, filters.end
    b_start, b_end = previous_range(start, end, filters.compare)
    end1, b_end1 = _ts(end + timedelta(days=1)), _ts(b_end + timedelta(days=1))
    month = end.year * 12 + end.month - 1 - 11  # the sparkline: 12 months to the end of the range
    spark = date(month // 12, month % 12 + 1, 1)
    out: dict = {}
    rd = {"channel", "touchpoint", "journey_stage", "segment", "region", "product"}
    w, wa = _where(filters, rd | {"survey", "language"})
    period = (f"CASE WHEN submitted_at >= '{_ts(start)}' AND submitted_at < '{end1}' THEN 'now' "
              f"WHEN submitted_at >= '{_ts(b_start)}' AND submitted_at < '{b_end1}' THEN 'before' END")
    sets = ", ".join(["(per)"] + [f"(per, {d})" for d in sorted(rd)])
    rows = cur.execute(
        f"SELECT per, {', '.join(f'grouping({d})' for d in sorted(rd))}, "
        "count(*) FILTER (WHERE nps >= 9) pr, count(*) FILTER (WHERE nps <= 6) de, count(nps) n, "
        "count(*) FILTER (WHERE csat >= coalesce(csat_max, 5) - 1) ck, count(csat) cn, "
        "avg(1 + 6 * (ces - coalesce(ces_min, 1)) / (coalesce(ces_max, 7) - coalesce(ces_min, 1))) ces, "
        "count(ces) en, "
        "stddev_samp(1 + 6 * (ces - coalesce(ces_min, 1)) / (coalesce(ces_max, 7) - coalesce(ces_min, 1))) es "
        f"FROM (SELECT *, {period} AS per FROM responses WHERE submitted_at >= ? AND submitted_at < ?{w}) "
        f"WHERE per IS NOT NULL GROUP BY GROUPING SETS ({sets})",
        [_ts(b_start), end1, *wa]).fetchall()
    for r in rows:
        if all(r[1:1 + len(rd)]):  # overall
            suffix = "" if r[0] == "now" else "_before"
            pr, de, n, ck, cn, ces = r[-8:-2]
            out[f"kpi_nps{suffix}"] = 100.0 * (pr - de) / n if n else None
            out[f"kpi_csat{suffix}"] = 100.0 * ck / cn if cn else None
            out[f"kpi_ces{suffix}"] = ces
            if r[0] == "now":
                out["nps_mix_n"] = n
    cur.execute(
        f"SELECT {_month('submitted_at')} p, count(*) FILTER (WHERE nps >= 9), count(*) FILTER (WHERE nps <= 6), "
        "count(nps), count(*) FILTER (WHERE csat >= coalesce(csat_max, 5) - 1), count(csat), avg(ces) "
        f"FROM responses WHERE submitted_at >= ? AND submitted_at < ?{w} GROUP BY p",
        [_ts(spark), end1, *wa]).fetchall()
    # Tickets: medians with their order-statistic interval, now/before, overall and by channel/priority/team.
    tw, twa = _where(filters, {"channel", "priority", "team", "category", "status"})
    tper = (f"CASE WHEN created_at >= '{_ts(start)}' THEN 'now' ELSE 'before' END")
    for col, name in (("first_response_at", "frt_median"), ("resolved_at", "ttr_median")):
        rows = cur.execute(
            f"WITH v AS (SELECT {tper} AS per, channel, priority, team, "
            f"(epoch({col}) - epoch(created_at)) / 3600.0 AS h FROM tickets WHERE {col} IS NOT NULL "
            f"AND created_at >= ? AND created_at < ?{tw}), "
            "g AS (SELECT per, grouping(channel, priority, team) AS gid, channel, priority, team, "
            "quantile_cont(h, 0.5) AS med, list_sort(list(h)) AS l, count(*) AS n FROM v "
            "GROUP BY GROUPING SETS ((per), (per, channel), (per, priority), (per, team))) "
            "SELECT per, gid, med, l[CAST(greatest(floor(n * 0.5 - 1.959964 * sqrt(n * 0.25)), 1) AS BIGINT)], "
            "l[CAST(least(ceil(n * 0.5 + 1.959964 * sqrt(n * 0.25)), n) AS BIGINT)], n FROM g",
            [_ts(b_start), end1, *twa]).fetchall()
        for per, gid, med, lo, hi, n in rows:
            if gid == 7:
                out[f"kpi_{name}{'' if per == 'now' else '_before'}"] = med
        cur.execute(f"SELECT {_month('created_at')} p, quantile_cont((epoch({col}) - epoch(created_at)) / 3600.0, 0.5) "
                    f"FROM tickets WHERE {col} IS NOT NULL AND created_at >= ? AND created_at < ?{tw} GROUP BY p",
                    [_ts(spark), end1, *twa]).fetchall()
    # Orders: revenue and historical CLV, now/before and the monthly sparkline.
    ow, owa = _where(filters, {"channel", "product", "currency", "status"})
    rev = ("amount IS NOT NULL AND (status IS NULL OR lower(status) NOT IN "
           "('refunded', 'cancelled', 'canceled', 'returned', 'void', 'failed'))")
    for s, e, suffix in ((start, end1, ""), (b_start, b_end1, "_before")):
        total, cust = cur.execute(f"SELECT sum(amount), count(DISTINCT customer_id) FROM orders WHERE {rev} "
                                  f"AND ordered_at >= ? AND ordered_at < ?{ow}", [_ts(s), e, *owa]).fetchone()
        out[f"kpi_revenue{suffix}"] = total
        out[f"kpi_clv_historical{suffix}"] = total / cust if cust else None
    cur.execute(f"SELECT {_month('ordered_at')} p, sum(amount), count(DISTINCT customer_id) FROM orders "
                f"WHERE {rev} AND ordered_at >= ? AND ordered_at < ?{ow} GROUP BY p", [_ts(spark), end1, *owa]).fetchall()
    # Customers: churn in the range and in the comparison range.
    cw, cwa = _where(filters, {"plan", "segment", "region"})
    for s, e, suffix in ((start, end1, ""), (b_start, b_end1, "_before")):
        active, lost = cur.execute(
            "SELECT count(*) FILTER (WHERE signup_at < ? AND (churned_at IS NULL OR churned_at >= ?)), "
            "count(*) FILTER (WHERE signup_at < ? AND churned_at >= ? AND churned_at < ?) "
            f"FROM customers WHERE signup_at IS NOT NULL{cw}", [_ts(s), _ts(s), _ts(s), _ts(s), e, *cwa]).fetchone()
        out[f"kpi_churn_rate{suffix}"] = 100.0 * lost / active if active else None
    # ... and its 12-month sparkline: active at each month's start (signed up before it, not churned before
    # it) and lost in the month among those who signed up in an earlier month.
    signups = dict(cur.execute(f"SELECT {_month('signup_at')} p, count(*) FROM customers "
                               f"WHERE signup_at IS NOT NULL{cw} GROUP BY p", cwa).fetchall())
    churns = cur.execute(f"SELECT {_month('churned_at')} p, count(*), "
                         f"count(*) FILTER (WHERE {_month('signup_at')} < {_month('churned_at')}) "
                         f"FROM customers WHERE signup_at IS NOT NULL AND churned_at IS NOT NULL{cw} GROUP BY p",
                         cwa).fetchall()
    for i in range(12):
        m = month + i  # months as year × 12 + month − 1, as _month counts them
        p = _month_start(m)
        active = sum(n for q, n in signups.items() if q < m) - sum(n for q, n, _ in churns if q < m)
        lost = sum(b for q, _, b in churns if q == m)
        if active:
            out[f"spark_churn_rate_{p:%Y-%m}"] = 100.0 * lost / active
    return out


def check(touchpoint: dict, hand: dict | None, tol: float = 1e-6) -> str:
    """"same" when every number the hand-written SQL computed matches Touchpoint's, else what differs."""
    if hand is None:
        return "no reference"
    bad = []
    for k, v in hand.items():
        t = touchpoint.get(k)
        if v is None and (t is None or (isinstance(t, float) and math.isnan(t))):
            continue
        if t is None or v is None or (isinstance(t, float) and math.isnan(t)) or \
                abs(float(t) - float(v)) > tol * max(1.0, abs(float(v))):
            bad.append(f"{k}: {t} vs {v}")
    return "same" if not bad else "differs: " + "; ".join(bad[:4])


__all__ = ["PAGES", "FILTERS", "run_page", "hand_page", "check", "reset", "filters_for", "replace"]
