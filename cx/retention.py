"""Churn and retention: churn rate per period, cohort retention, Kaplan–Meier survival by a dimension
with a log-rank test.

Where a customer's lifetime comes from (``source``), in order of preference:

- ``dates``: customers with a signup date (and a churn date once they left) — contractual churn;
- ``tenure``: customers with a tenure (in ``tenure_unit``) and a churned flag but no dates (Telco);
  survival works, a calendar trend does not;
- ``orders``: no customer list, only purchases — non-contractual churn. A customer counts as churned
  once ``inactivity_days`` pass after their last order without another one; their lifetime runs from
  the first to the last order. Customers whose last order is more recent are still active (censored).

Every query aggregates in DuckDB with bound parameters; identifiers come from whitelists (the
store's own column list). Only per-group tables of (duration, event, count) reach Python, where
scipy computes the Kaplan–Meier curves (``scipy.stats.ecdf`` on ``CensoredData``, log-log Greenwood
intervals) and numpy the k-sample log-rank test.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd
from scipy import stats as sps

from cx import stats
from cx.engine import read_cursor
from cx.errors import TouchpointError, UnknownDimension
from cx.filters import data_date_span
from cx.store import Store, quote_ident

# Length of each unit in days: durations are reported in one of these.
UNIT_DAYS = {"day": 1.0, "week": 7.0, "month": 30.4375, "year": 365.25}
GRAINS = ("week", "month", "quarter")
DEFAULT_INACTIVITY_DAYS = 180
DEFAULT_SLOW_FIRST_RESPONSE_HOURS = 24.0
# Dimensions derived from the voice of the customer, beside the customers' own columns.
DERIVED_DIMENSIONS = {
    "nps_category": "NPS category (latest answer)",
    "support_speed": "Support experience (slowest first response)",
}
NPS_LABELS = ("Promoter (9–10)", "Passive (7–8)", "Detractor (0–6)", "No NPS answer")
SOURCES = ("dates", "tenure", "orders")
BOOKKEEPING = frozenset({"batch_id", "row_hash", "tenure_unit"})
# Orders with these statuses are not purchases (the metric layer's rule).
NOT_REVENUE = ("refunded", "cancelled", "canceled", "returned", "void", "failed")


class NoLifetimeData(TouchpointError):
    """There is nothing to measure churn on: no customers with dates or tenure, and no orders."""


@dataclass(frozen=True)
class LogRankTest:
    """k-sample log-rank test: chi-square ``statistic`` on ``df`` degrees of freedom, ``p_value``."""

    statistic: float
    df: int
    p_value: float
    groups: int


@dataclass
class Survival:
    """Kaplan–Meier curves per group and what they say.

    ``curves``: group, time (in ``unit``), at_risk, events, censored, survival, ci_low, ci_high
    (95% log-log Greenwood), one row per distinct time, starting at time 0 with survival 1.
    ``summary``: group, customers, churned, churn_pct, median (time when survival falls to 50%,
    NaN if it never does), median_ci_low, median_ci_high, survival_at (survival at ``horizon``),
    survival_at_low, survival_at_high. ``test``: the log-rank test across groups (None for one)."""

    curves: pd.DataFrame
    summary: pd.DataFrame
    test: LogRankTest | None
    unit: str
    source: str
    horizon: float
    ignored_filters: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# Where lifetimes come from
# ------------------------------------------------------------------------------------------------
def lifetime_source(store: Store) -> str | None:
    """``dates``, ``tenure`` or ``orders`` (see the module docstring), or None when there is no data."""
    with read_cursor(store) as cur:
        n_dates, n_tenure = cur.execute(
            "SELECT count(signup_at), count(*) FILTER (WHERE tenure IS NOT NULL AND churned IS NOT NULL) "
            "FROM customers").fetchone()
        n_orders = cur.execute("SELECT count(*) FROM orders WHERE customer_id IS NOT NULL").fetchone()[0]
    if n_dates:
        return "dates"
    if n_tenure:
        return "tenure"
    if n_orders:
        return "orders"
    return None


def _resolve_source(store: Store, source: str | None) -> str:
    found = lifetime_source(store)
    if source is None or source == "auto":
        if found is None:
            raise NoLifetimeData(
                "There are no customer lifetimes to analyse yet.",
                fix="Import customers with signup and churn dates (or a tenure and a churned flag), or orders "
                    "with a customer ID, on the Data page.")
        return found
    if source not in SOURCES:
        raise UnknownDimension(f"{source!r} is not a lifetime source.", fix=f"Use one of: {', '.join(SOURCES)}.")
    return source


def as_of_date(store: Store) -> date | None:
    """The day the analysis stands on: the last date found in the data (so old exports stay valid)."""
    return data_date_span(store)[1]


def split_dimensions(store: Store, source: str | None = None) -> dict[str, str]:
    """Dimensions a survival curve can be split by, name → label: the customers' own dimensions that
    have values, then the NPS category and support experience when responses / tickets exist."""
    out: dict[str, str] = {}
    with read_cursor(store) as cur:
        for dim in store.dimensions("customers"):
            if cur.execute(f"SELECT count({quote_ident(dim)}) FROM customers").fetchone()[0]:
                out[dim] = dim.replace("_", " ").capitalize()
        has_nps = cur.execute("SELECT count(*) FROM responses WHERE nps IS NOT NULL AND customer_id IS NOT NULL"
                              ).fetchone()[0]
        has_frt = cur.execute("SELECT count(*) FROM tickets WHERE first_response_at IS NOT NULL AND customer_id IS "
                              "NOT NULL").fetchone()[0]
    if has_nps:
        out["nps_category"] = DERIVED_DIMENSIONS["nps_category"]
    if has_frt:
        out["support_speed"] = DERIVED_DIMENSIONS["support_speed"]
    return out


def _customer_filters(store: Store, where: dict | None, named: bool = False) -> tuple[str, list, list[str]]:
    """SQL predicates on the customers table (alias ``c``) for the filters it can apply, their bound
    values (placeholders ``?``, or ``$f0, $f1…`` when ``named``), and the filters it cannot apply."""
    cols = [c for c in store.columns("customers") if c not in BOOKKEEPING]
    dims = set(store.dimensions("customers"))
    preds, params, ignored = [], [], []
    for dim, values in (where or {}).items():
        values = [values] if isinstance(values, str) else list(values)
        if not values:
            continue
        if dim not in cols or dim not in dims:
            ignored.append(dim)
            continue
        marks = [f"$f{len(params) + i}" if named else "?" for i in range(len(values))]
        preds.append(f"c.{quote_ident(dim)} IN ({', '.join(marks)})")
        params.extend(str(v) for v in values)
    return " AND ".join(preds), params, ignored


def _group_sql(store: Store, by: str | None, key: str = "c.customer_id") -> tuple[str, str]:
    """(join clause, group expression) for a split dimension, from the whitelist only; ``key`` is
    the customer ID column the derived dimensions join on."""
    if by is None:
        return "", "'All customers'"
    if by == "nps_category":
        join = ("LEFT JOIN (SELECT customer_id, arg_max(nps, submitted_at) AS last_nps FROM responses "
                "WHERE nps IS NOT NULL AND customer_id IS NOT NULL GROUP BY customer_id) v ON v.customer_id = " + key)
        expr = (f"CASE WHEN v.last_nps >= 9 THEN '{NPS_LABELS[0]}' WHEN v.last_nps >= 7 THEN '{NPS_LABELS[1]}' "
                f"WHEN v.last_nps IS NOT NULL THEN '{NPS_LABELS[2]}' ELSE '{NPS_LABELS[3]}' END")
        return join, expr
    if by == "support_speed":
        join = ("LEFT JOIN (SELECT customer_id, "
                "max(epoch(first_response_at) - epoch(created_at)) / 3600.0 AS worst_frt "
                "FROM tickets WHERE first_response_at IS NOT NULL AND customer_id IS NOT NULL GROUP BY customer_id) "
                "s ON s.customer_id = " + key)
        expr = ("CASE WHEN s.worst_frt IS NULL THEN 'No tickets' WHEN s.worst_frt > $slow_hours "
                "THEN 'Slow first response' ELSE 'Fast first response' END")
        return join, expr
    if by not in store.dimensions("customers"):
        raise UnknownDimension(f"Customers have no dimension {by!r} to split by.",
                               fix=f"Use one of: {', '.join(split_dimensions(store)) or 'plan, segment, region'}.")
    return "", f"coalesce(CAST(c.{quote_ident(by)} AS VARCHAR), '(not set)')"


def _lifetimes_sql(store: Store, source: str, by: str | None, where: dict | None, unit: str):
    """One SQL statement giving (grp, duration in ``unit``, event, n) and its named parameters."""
    filt, fparams, ignored = _customer_filters(store, where, named=True)
    join, grp = _group_sql(store, by, "o.customer_id" if source == "orders" else "c.customer_id")
    params: dict = {"as_of": None, "unit_days": UNIT_DAYS[unit], "slow_hours": DEFAULT_SLOW_FIRST_RESPONSE_HOURS}
    params.update({f"f{i}": v for i, v in enumerate(fparams)})
    extra = f" AND {filt}" if filt else ""
    if source == "dates":
        base = f"""
        SELECT {grp} AS grp,
               (epoch(CASE WHEN c.churned_at IS NOT NULL AND c.churned_at < $as_of + INTERVAL 1 DAY THEN c.churned_at
                      ELSE $as_of + INTERVAL 1 DAY END) - epoch(c.signup_at)) / 86400.0 AS days,
               c.churned_at IS NOT NULL AND c.churned_at < $as_of + INTERVAL 1 DAY AS event
        FROM customers c {join}
        WHERE c.signup_at IS NOT NULL AND c.signup_at < $as_of + INTERVAL 1 DAY{extra}"""
    elif source == "tenure":
        base = f"""
        SELECT {grp} AS grp,
               c.tenure * CASE lower(coalesce(c.tenure_unit, 'month')) WHEN 'day' THEN 1.0 WHEN 'week' THEN 7.0
                   WHEN 'year' THEN 365.25 ELSE 30.4375 END AS days,
               c.churned AS event
        FROM customers c {join}
        WHERE c.tenure IS NOT NULL AND c.churned IS NOT NULL AND c.tenure >= 0{extra}"""
    else:
        # Non-contractual: one row per buyer; customers' attributes joined when the list exists.
        base = f"""
        SELECT {grp} AS grp,
               CASE WHEN o.last_day + $inactivity <= CAST($as_of AS DATE) THEN date_diff('day', o.first_day, o.last_day)
                    ELSE date_diff('day', o.first_day, CAST($as_of AS DATE)) END AS days,
               o.last_day + $inactivity <= CAST($as_of AS DATE) AS event
        FROM (SELECT customer_id, CAST(min(ordered_at) AS DATE) AS first_day, CAST(max(ordered_at) AS DATE) AS last_day
              FROM orders WHERE customer_id IS NOT NULL AND ordered_at < $as_of + INTERVAL 1 DAY
                AND (status IS NULL OR lower(status) NOT IN {tuple(NOT_REVENUE)!r})
              GROUP BY customer_id) o
        LEFT JOIN customers c ON c.customer_id = o.customer_id {join}
        WHERE TRUE{extra}"""
        params["inactivity"] = DEFAULT_INACTIVITY_DAYS
    sql = f"""
    WITH lifetimes AS ({base})
    -- one row per group × duration × outcome: all scipy needs
    SELECT grp, round(days / $unit_days, 6) AS duration, event, count(*) AS n
    FROM lifetimes WHERE days >= 0
    GROUP BY ALL ORDER BY grp, duration, event"""
    return sql, params, ignored


def lifetimes(store: Store, *, by: str | None = None, where: dict | None = None, unit: str = "month",
              source: str | None = None, inactivity_days: int = DEFAULT_INACTIVITY_DAYS,
              slow_hours: float = DEFAULT_SLOW_FIRST_RESPONSE_HOURS, as_of: date | None = None) -> pd.DataFrame:
    """Survival-ready counts: one row per ``group``, ``duration`` (in ``unit``), ``event`` (True =
    churned, False = still a customer, censored) with ``n`` customers. ``attrs`` carry the source,
    the as-of date and the filters that could not be applied."""
    if unit not in UNIT_DAYS:
        raise UnknownDimension(f"{unit!r} is not a time unit.", fix=f"Use one of: {', '.join(UNIT_DAYS)}.")
    src = _resolve_source(store, source)
    as_of = as_of or as_of_date(store) or date.today()
    sql, params, ignored = _lifetimes_sql(store, src, by, where, unit)
    params["as_of"] = datetime.combine(as_of, datetime.min.time())
    if "inactivity" in params:
        params["inactivity"] = int(inactivity_days)
    params["slow_hours"] = float(slow_hours)
    # DuckDB refuses named parameters the statement does not use.
    params = {k: v for k, v in params.items() if f"${k}" in sql}
    with read_cursor(store) as cur:
        out = cur.execute(sql, params).df()
    out = out.rename(columns={"grp": "group"})
    out["duration"] = out["duration"].astype("float64")
    out["event"] = out["event"].astype(bool)
    out["n"] = out["n"].astype("int64")
    if by == "support_speed":
        labels = {"Slow first response": f"Slow first response (> {slow_hours:g} h)",
                  "Fast first response": f"Fast first response (≤ {slow_hours:g} h)"}
        out["group"] = out["group"].map(lambda g: labels.get(g, g))
    out.attrs.update(source=src, as_of=as_of, ignored_filters=ignored, unit=unit)
    return out


# ------------------------------------------------------------------------------------------------
# Kaplan–Meier and log-rank
# ------------------------------------------------------------------------------------------------
def _expand(rows: pd.DataFrame) -> sps.CensoredData:
    d = np.repeat(rows["duration"].to_numpy(float), rows["n"].to_numpy(int))
    e = np.repeat(rows["event"].to_numpy(bool), rows["n"].to_numpy(int))
    return sps.CensoredData(uncensored=d[e], right=d[~e])


def kaplan_meier(rows: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Kaplan–Meier estimate for one group's (duration, event, n) rows: time, at_risk, events,
    censored, survival, ci_low, ci_high (log-log Greenwood interval), from time 0."""
    table = (rows.assign(ev=np.where(rows["event"], rows["n"], 0), ce=np.where(rows["event"], 0, rows["n"]))
             .groupby("duration", sort=True)[["ev", "ce"]].sum())
    total = int(rows["n"].sum())
    at_risk = total - np.concatenate([[0], np.cumsum((table["ev"] + table["ce"]).to_numpy())[:-1]])
    out = pd.DataFrame({"time": table.index.to_numpy(float), "at_risk": at_risk.astype("int64"),
                        "events": table["ev"].to_numpy("int64"), "censored": table["ce"].to_numpy("int64")})
    if out["events"].sum() == 0:
        out["survival"], out["ci_low"], out["ci_high"] = 1.0, 1.0, 1.0
    else:
        res = sps.ecdf(_expand(rows))
        with warnings.catch_warnings():
            # Undefined where S = 1 or 0 (handled below), which scipy reports as a warning.
            warnings.simplefilter("ignore", RuntimeWarning)
            ci = res.sf.confidence_interval(confidence, method="log-log")
        t = out["time"].to_numpy()
        out["survival"] = res.sf.evaluate(t)
        with np.errstate(invalid="ignore"):
            lo, hi = ci.low.evaluate(t), ci.high.evaluate(t)
        # Before the first event the band is the point 1; after S reaches 0 it is undefined (0).
        out["ci_low"] = np.where(np.isnan(lo), np.where(out["survival"] >= 1, 1.0, 0.0), lo)
        out["ci_high"] = np.where(np.isnan(hi), np.where(out["survival"] >= 1, 1.0, 0.0), hi)
    start = pd.DataFrame({"time": [0.0], "at_risk": [total], "events": [0], "censored": [0], "survival": [1.0],
                          "ci_low": [1.0], "ci_high": [1.0]})
    if len(out) and out["time"].iloc[0] == 0:
        return out.reset_index(drop=True)
    return pd.concat([start, out], ignore_index=True)


def _first_below(times: np.ndarray, values: np.ndarray, level: float = 0.5) -> float:
    hit = np.flatnonzero(values <= level + 1e-12)
    return float(times[hit[0]]) if len(hit) else math.nan


def _at(times: np.ndarray, values: np.ndarray, t: float) -> float:
    i = np.searchsorted(times, t, side="right") - 1
    return float(values[i]) if i >= 0 else 1.0


def logrank_test(rows: pd.DataFrame) -> LogRankTest | None:
    """The k-sample log-rank test on (group, duration, event, n) rows: chi-square on k − 1 degrees of
    freedom from observed − expected events and their hypergeometric covariance (ties handled as in
    Mantel's form). None when fewer than two groups have customers."""
    groups = sorted(rows["group"].unique())
    if len(groups) < 2:
        return None
    times = np.sort(rows.loc[rows["event"], "duration"].unique())
    if len(times) == 0:
        return LogRankTest(0.0, len(groups) - 1, 1.0, len(groups))
    k = len(groups)
    n_at = np.zeros((k, len(times)))
    d_at = np.zeros((k, len(times)))
    for gi, g in enumerate(groups):
        sub = rows[rows["group"] == g]
        dur, n, ev = sub["duration"].to_numpy(float), sub["n"].to_numpy(float), sub["event"].to_numpy(bool)
        # At risk at t: everyone whose duration is t or later.
        order = np.argsort(dur)
        dur, n, ev = dur[order], n[order], ev[order]
        tail = np.concatenate([np.cumsum(n[::-1])[::-1], [0.0]])
        n_at[gi] = tail[np.searchsorted(dur, times, side="left")]
        d_at[gi] = [n[(dur == t) & ev].sum() for t in times] if len(times) < 2000 else \
            pd.Series(n[ev]).groupby(dur[ev]).sum().reindex(times, fill_value=0).to_numpy()
    n_tot, d_tot = n_at.sum(0), d_at.sum(0)
    ok = n_tot > 0
    n_at, d_at, n_tot, d_tot = n_at[:, ok], d_at[:, ok], n_tot[ok], d_tot[ok]
    expected = (n_at * (d_tot / n_tot)).sum(1)
    o_minus_e = d_at.sum(1) - expected
    # Var/cov of O − E: Σ_t d (n − d)/(n − 1) · n_g/n · (δ_gh − n_h/n)
    factor = np.where(n_tot > 1, d_tot * (n_tot - d_tot) / np.maximum(n_tot - 1, 1), 0.0) / n_tot
    p = n_at / n_tot
    cov = np.diag((factor * n_at).sum(1)) - np.einsum("t,gt,ht->gh", factor, n_at, p)
    sub_cov = cov[:-1, :-1]
    stat = float(o_minus_e[:-1] @ np.linalg.pinv(sub_cov) @ o_minus_e[:-1])
    df = k - 1
    return LogRankTest(stat, df, float(sps.chi2.sf(stat, df)), k)


def survival(store: Store, *, by: str | None = None, where: dict | None = None, unit: str = "month",
             source: str | None = None, inactivity_days: int = DEFAULT_INACTIVITY_DAYS,
             slow_hours: float = DEFAULT_SLOW_FIRST_RESPONSE_HOURS, horizon: float = 12.0,
             max_groups: int = 8, as_of: date | None = None) -> Survival:
    """Kaplan–Meier curves per value of ``by`` (the ``max_groups`` largest; the rest pooled as
    "Other"), their medians with 95% intervals, survival at ``horizon`` (in ``unit``), and the
    log-rank test of whether the groups' survival differs. Durations are in ``unit``."""
    rows = lifetimes(store, by=by, where=where, unit=unit, source=source, inactivity_days=inactivity_days,
                     slow_hours=slow_hours, as_of=as_of)
    if rows.empty:
        raise NoLifetimeData("No customer lifetimes match these filters.",
                             fix="Clear some filters, or import customers or orders for them.")
    sizes = rows.groupby("group")["n"].sum().sort_values(ascending=False)
    if len(sizes) > max_groups:
        keep = set(sizes.index[: max_groups - 1])
        rows = rows.assign(group=rows["group"].where(rows["group"].isin(keep), "Other")) \
            .groupby(["group", "duration", "event"], as_index=False)["n"].sum()
    curves, summary = [], []
    for g, sub in rows.groupby("group", sort=False):
        km = kaplan_meier(sub)
        km.insert(0, "group", g)
        curves.append(km)
        t, s = km["time"].to_numpy(), km["survival"].to_numpy()
        churned = int(sub.loc[sub["event"], "n"].sum())
        total = int(sub["n"].sum())
        summary.append({
            "group": g, "customers": total, "churned": churned, "churn_pct": 100 * churned / total,
            "median": _first_below(t, s), "median_ci_low": _first_below(t, km["ci_low"].to_numpy()),
            "median_ci_high": _first_below(t, km["ci_high"].to_numpy()),
            "survival_at": _at(t, s, horizon), "survival_at_low": _at(t, km["ci_low"].to_numpy(), horizon),
            "survival_at_high": _at(t, km["ci_high"].to_numpy(), horizon)})
    summary_df = pd.DataFrame(summary).sort_values("customers", ascending=False).reset_index(drop=True)
    return Survival(pd.concat(curves, ignore_index=True), summary_df, logrank_test(rows), unit,
                    rows.attrs.get("source", ""), horizon, list(rows.attrs.get("ignored_filters", [])))


def thin_curves(curves: pd.DataFrame, points: int = 1000) -> pd.DataFrame:
    """Kaplan–Meier ``curves`` (as ``Survival.curves``) with at most ``points`` + 1 rows per group, for a
    chart: at each of ``points`` evenly spaced times from 0 to the group's last time, the step the curve
    stands on then (its last row at or before that time), plus the last row; rows are the curve's own.
    Drawn as steps, it shows each drop within 1/``points`` of the axis of where it is; at 10 M responses a
    curve has up to 270,000 steps, which a browser should not be sent. Shorter groups are kept whole."""
    parts = []
    for _, sub in curves.groupby("group", sort=False):
        if len(sub) <= points:
            parts.append(sub)
            continue
        times = sub["time"].to_numpy()
        grid = np.linspace(0.0, times[-1], points)
        idx = np.unique(np.r_[np.searchsorted(times, grid, side="right") - 1, len(sub) - 1])
        parts.append(sub.iloc[idx])
    return pd.concat(parts, ignore_index=True) if parts else curves


def describe_test(test: LogRankTest | None, alpha: float = 0.05, what: str = "groups") -> str:
    """The log-rank test in plain words."""
    if test is None:
        return "Only one group: nothing to compare."
    p = "p < 0.001" if test.p_value < 0.001 else f"p = {test.p_value:.3f}"
    if test.p_value < alpha:
        return (f"The {what} differ in how long customers stay: a log-rank test finds a difference this large "
                f"would be very unlikely by chance ({p}, χ² = {test.statistic:.1f} on {test.df} df).")
    return (f"No significant difference in how long customers stay between the {what} ({p}, χ² = "
            f"{test.statistic:.1f} on {test.df} df): the gaps between the curves may be chance.")


# ------------------------------------------------------------------------------------------------
# Churn rate per period
# ------------------------------------------------------------------------------------------------
def _period_floor(d: date, grain: str) -> pd.Timestamp:
    ts = pd.Timestamp(d)
    if grain == "week":
        return (ts - pd.Timedelta(days=ts.weekday())).normalize()
    if grain == "month":
        return ts.replace(day=1).normalize()
    return pd.Timestamp(ts.year, 3 * ((ts.month - 1) // 3) + 1, 1)


def _offset(grain: str) -> pd.DateOffset:
    return {"week": pd.DateOffset(weeks=1), "month": pd.DateOffset(months=1), "quarter": pd.DateOffset(months=3)}[grain]


def churn_by_period(store: Store, *, grain: str = "month", start: date | None = None, end: date | None = None,
                    where: dict | None = None, source: str | None = None,
                    inactivity_days: int = DEFAULT_INACTIVITY_DAYS, as_of: date | None = None) -> pd.DataFrame:
    """Churn per period: ``period`` (start), ``active`` (customers active at its start), ``lost``
    (of them, churned during it), ``churn_pct`` and its 95% Wilson interval ``ci_low``/``ci_high``,
    ``retention_pct`` (100 − churn). Contractual (signup/churn dates) or non-contractual (orders: churn
    dated ``inactivity_days`` after the last order). Periods that are not yet over are left out.
    Raises NoLifetimeData for tenure-only customer lists, which have no calendar."""
    if grain not in GRAINS:
        raise UnknownDimension(f"{grain!r} is not a grain for churn.", fix=f"Use one of: {', '.join(GRAINS)}.")
    src = _resolve_source(store, source)
    if src == "tenure":
        raise NoLifetimeData("These customers have a tenure and a churned flag but no dates, so churn has no "
                             "calendar trend.", fix="Import signup and churn dates to see churn per period.")
    as_of = as_of or as_of_date(store) or date.today()
    filt, fparams, ignored = _customer_filters(store, where)
    extra = f" AND {filt}" if filt else ""
    if src == "dates":
        lives = f"""SELECT CAST(c.signup_at AS DATE) AS start_day,
                           CASE WHEN c.churned_at < ? + INTERVAL 1 DAY THEN CAST(c.churned_at AS DATE) END AS churn_day
                    FROM customers c WHERE c.signup_at IS NOT NULL{extra}"""
        lparams = [datetime.combine(as_of, datetime.min.time()), *fparams]
    else:
        lives = f"""SELECT o.first_day AS start_day,
                           CASE WHEN o.last_day + ? <= ? THEN o.last_day + ? END AS churn_day
                    FROM (SELECT customer_id, CAST(min(ordered_at) AS DATE) AS first_day,
                                 CAST(max(ordered_at) AS DATE) AS last_day
                          FROM orders WHERE customer_id IS NOT NULL AND CAST(ordered_at AS DATE) <= ?
                            AND (status IS NULL OR lower(status) NOT IN {tuple(NOT_REVENUE)!r})
                          GROUP BY customer_id) o
                    LEFT JOIN customers c USING (customer_id) WHERE TRUE{extra}"""
        d = int(inactivity_days)
        lparams = [d, as_of, d, as_of, *fparams]
    with read_cursor(store) as cur:
        lo = cur.execute(f"SELECT min(start_day) FROM ({lives})", lparams).fetchone()[0]
    if lo is None:
        return pd.DataFrame(columns=["period", "active", "lost", "churn_pct", "ci_low", "ci_high", "retention_pct"])
    first = _period_floor(max(lo, start) if start else lo, grain)
    last_end = pd.Timestamp(min(end, as_of) if end else as_of) + pd.Timedelta(days=1)
    periods = []
    p = first
    while p + _offset(grain) <= last_end:
        periods.append(p)
        p = p + _offset(grain)
    if not periods:
        return pd.DataFrame(columns=["period", "active", "lost", "churn_pct", "ci_low", "ci_high", "retention_pct"])
    cal = pd.DataFrame({"p_start": [x.date() for x in periods],
                        "p_end": [(x + _offset(grain)).date() for x in periods]})
    with read_cursor(store) as cur:
        cur.register("calendar_periods", cal)
        out = cur.execute(f"""
            WITH lives AS ({lives})
            -- active at the start of each period, and how many of them churned within it
            SELECT k.p_start AS period,
                   count(*) FILTER (WHERE l.start_day < k.p_start
                                      AND (l.churn_day IS NULL OR l.churn_day >= k.p_start)) AS active,
                   count(*) FILTER (WHERE l.start_day < k.p_start
                                      AND l.churn_day >= k.p_start AND l.churn_day < k.p_end) AS lost
            FROM calendar_periods k CROSS JOIN lives l
            GROUP BY k.p_start ORDER BY k.p_start""", lparams).df()
        cur.unregister("calendar_periods")
    out["period"] = pd.to_datetime(out["period"])
    out["active"] = out["active"].astype("int64")
    out["lost"] = out["lost"].astype("int64")
    ci = [stats.wilson_interval(int(k), int(n)) for k, n in zip(out["lost"], out["active"])]
    out["churn_pct"] = [100 * k / n if n else math.nan for k, n in zip(out["lost"], out["active"])]
    out["ci_low"] = [100 * c[0] if n else math.nan for c, n in zip(ci, out["active"])]
    out["ci_high"] = [100 * c[1] if n else math.nan for c, n in zip(ci, out["active"])]
    out["retention_pct"] = 100 - out["churn_pct"]
    out.attrs.update(source=src, as_of=as_of, ignored_filters=ignored)
    return out


# ------------------------------------------------------------------------------------------------
# Cohorts
# ------------------------------------------------------------------------------------------------
def cohort_retention(store: Store, *, grain: str = "month", start: date | None = None, end: date | None = None,
                     where: dict | None = None, source: str | None = None, max_periods: int = 24,
                     as_of: date | None = None) -> pd.DataFrame:
    """Cohort retention, long format: ``cohort`` (start of the signup or first-order period),
    ``period`` (0, 1, 2 … periods since), ``customers`` (cohort size), ``retained`` and
    ``retention_pct``. Contractual: still a customer at the end of period k. Orders: bought in period
    k (period 0 is 100% by construction). Only periods that are over by the as-of date appear.
    ``start``/``end`` select the cohorts shown."""
    if grain not in ("week", "month"):
        raise UnknownDimension(f"{grain!r} is not a cohort grain.", fix="Use week or month.")
    src = _resolve_source(store, source)
    if src == "tenure":
        raise NoLifetimeData("These customers have a tenure but no signup dates, so they cannot be put in cohorts.",
                             fix="Import signup and churn dates, or orders, to see cohort retention.")
    as_of = as_of or as_of_date(store) or date.today()
    filt, fparams, ignored = _customer_filters(store, where)
    extra = f" AND {filt}" if filt else ""
    diff = "date_diff('month', {a}, {b})" if grain == "month" else "date_diff('day', {a}, {b}) // 7"
    lo = datetime.combine(start, datetime.min.time()) if start else datetime(1900, 1, 1)
    hi = datetime.combine(end, datetime.min.time()) if end else datetime(2999, 1, 1)
    if src == "dates":
        sql = f"""
        WITH c0 AS (
            SELECT date_trunc('{grain}', c.signup_at)::DATE AS cohort,
                   CASE WHEN c.churned_at < ? + INTERVAL 1 DAY
                        THEN date_trunc('{grain}', c.churned_at)::DATE END AS churn_p
            FROM customers c WHERE c.signup_at IS NOT NULL AND c.signup_at < ? + INTERVAL 1 DAY{extra})
        -- customers per cohort and the period index in which they churned (NULL: still customers)
        SELECT cohort, {diff.format(a='cohort', b='churn_p')} AS churn_k, count(*) AS n
        FROM c0 WHERE cohort >= date_trunc('{grain}', ?::TIMESTAMP)::DATE AND cohort <= ?::DATE
        GROUP BY ALL"""
        as_ts = datetime.combine(as_of, datetime.min.time())
        params = [as_ts, as_ts, *fparams, lo, hi]
    else:
        sql = f"""
        WITH buys AS (
            SELECT o.customer_id, CAST(o.ordered_at AS DATE) AS day
            FROM orders o LEFT JOIN customers c USING (customer_id)
            WHERE o.customer_id IS NOT NULL AND CAST(o.ordered_at AS DATE) <= ?
              AND (o.status IS NULL OR lower(o.status) NOT IN {tuple(NOT_REVENUE)!r}){extra}),
        firsts AS (SELECT customer_id, date_trunc('{grain}', min(day))::DATE AS cohort FROM buys GROUP BY 1),
        active AS (SELECT DISTINCT f.cohort, b.customer_id,
                          {diff.format(a='f.cohort', b=f"date_trunc('{grain}', b.day)::DATE")} AS k
                   FROM buys b JOIN firsts f USING (customer_id))
        -- buyers per cohort and period since their first purchase
        SELECT a.cohort, a.k, count(*) AS n, any_value(s.size) AS size
        FROM active a JOIN (SELECT cohort, count(*) AS size FROM firsts GROUP BY 1) s USING (cohort)
        WHERE a.cohort >= date_trunc('{grain}', ?::TIMESTAMP)::DATE AND a.cohort <= ?::DATE
        GROUP BY a.cohort, a.k"""
        params = [as_of, *fparams, lo, hi]
    with read_cursor(store) as cur:
        raw = cur.execute(sql, params).df()
    cols = ["cohort", "period", "customers", "retained", "retention_pct"]
    if raw.empty:
        return pd.DataFrame(columns=cols)
    off = _offset(grain)
    limit = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    rows = []
    for cohort, sub in raw.groupby("cohort"):
        c = pd.Timestamp(cohort)
        if src == "dates":
            size = int(sub["n"].sum())
            churn_k = sub.dropna(subset=["churn_k"])
        else:
            size = int(sub["size"].iloc[0])
            by_k = sub.set_index("k")["n"]
        for k in range(max_periods + 1):
            if c + off * (k + 1) > limit:
                break
            if src == "dates":
                # Still a customer at the end of period k = churned in a later period or not at all.
                retained = size - int(churn_k.loc[churn_k["churn_k"] <= k, "n"].sum())
            else:
                retained = int(by_k.get(k, 0))
            rows.append({"cohort": c, "period": k, "customers": size, "retained": retained,
                         "retention_pct": 100 * retained / size if size else math.nan})
    out = pd.DataFrame(rows, columns=cols)
    out.attrs.update(source=src, as_of=as_of, ignored_filters=ignored, grain=grain)
    return out


def cohort_matrix(cohorts: pd.DataFrame) -> pd.DataFrame:
    """The long cohort table as a matrix: one row per cohort, one column per period since, values in %."""
    if cohorts.empty:
        return pd.DataFrame()
    return cohorts.pivot(index="cohort", columns="period", values="retention_pct").sort_index()
