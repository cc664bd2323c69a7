"""Funnels over journey events: how many customers go from a first step through up to 19 more, in
order, within a conversion window, how long each step takes, and who dropped off where.

Everything is computed in DuckDB, in one SQL statement per question, with every user value bound
as a parameter: the step names, the window, the dates and the filter values. Identifiers (the
breakdown and filter columns) come only from the store's own list of dimensions and are quoted.

Definitions (they follow Amplitude, Mixpanel and PostHog where those agree, and say which where
they do not):

**Customers, not events.** A funnel counts customers (``customer_id``). Each customer is counted
once, at the *attempt* that gets furthest down the funnel; among attempts that get equally far,
the earliest counts (Amplitude's and PostHog's rule). That attempt supplies the customer's step
times, breakdown value and cohort date.

**Attempts and the date range.** Every occurrence of the first step whose date lies in the range
(``start``–``end``, inclusive dates, UTC) and whose event matches the dimension filters starts an
attempt. Later steps may happen after the range ends, as long as they are inside the window.

**Conversion window.** Measured from the first step of the attempt: step *k* counts only when it
happens at most ``window`` after the first step. The boundary is inclusive (with a 14-day window, an
event exactly 14 days later converts, one a microsecond later does not). A step outside the window
is a drop-off, and so is everything after it.

**Order modes.**

- ``sequential`` (default): the steps happen in the given order; other events may happen between
  them. Each step is matched to the customer's *earliest* occurrence of that step at or after the
  previous step's time (greedy matching, which gets as far as any matching can).
- ``strict``: the same, and no other event of the customer — of any step name, funnel step or
  not — happens between two consecutive steps: step *k* must be the customer's very next event
  after step *k − 1*. A repeat of the previous step in between also breaks the sequence (in
  A, A, B the attempt from the first A fails; the attempt from the second A converts).
- ``any``: the steps may happen in any order. An attempt starts at any funnel event in the range;
  row *k* counts the customers who did at least *k* different funnel steps within the window from
  that start, and its time is when the *k*-th different step was first done (PostHog's
  "unordered" funnel). The step names must be distinct in this mode.

**Equal timestamps.** Events carry no order beyond their timestamp, so an event at the same
instant as the previous step counts as following it (as in Mixpanel, which puts events with equal
timestamps in the order of the funnel's steps). One event never fills two steps: a step that
repeats an earlier step's name must happen strictly later than the step before it. In strict mode
a customer's events at the same instant are ordered funnel steps first, in funnel order, then other
events by name: two steps at the same instant are consecutive, while a non-funnel event at the same
instant as a step still comes before the next step if that one is later (it did not happen after it).

**Duplicates.** Rows with the same customer, timestamp and step are one event: two orders placed at
once, an event carrying another table's step name at that instant, a table filled other than by the
importer (whose key keeps events unique). As a funnel's first step such an event passes the filters
when one of its rows does, and is counted under the smallest breakdown value among the rows that pass
(in every order mode). The same step at different times is several events: the earliest suitable one
is used, and in strict mode the others count as events in between.

**Out-of-order events.** Order is by ``occurred_at`` only, never by file or import order; a step
that happened *before* the previous step does not convert it (B then A is not A → B in the ordered
modes).

**Other tables as steps.** Besides the events' own step names, a funnel can use the timestamps of
the other tables (``DERIVED_STEPS``: "orders: order placed", "tickets: ticket opened", "tickets:
first reply", "tickets: ticket resolved", "responses: survey answered"), one event per row that has
a customer and that timestamp. They join the customer's event stream only when the funnel uses
them (in strict mode too), and carry their own table's breakdown and filter columns.

**Breakdown.** A customer's breakdown value is the value on the first-step event of the counted
attempt (first touch), or the customer's own value for a customer dimension (plan, segment,
region...). Missing values show as "(none)"; beyond the ``top_n`` largest values the rest are
pooled as "Other".

**Times to convert** are in hours: from the previous step (median and 90th percentile, linear
interpolation between order statistics, as pandas' ``quantile`` does) and from the first step
(median), over the customers who reached the step.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from cx import stats
from cx.engine import read_cursor
from cx.errors import TouchpointError, UnknownDimension
from cx.metrics import as_date
from cx.store import Store, quote_ident, read_data_version

MODES = {
    "sequential": "Sequential (other events allowed between steps)",
    "strict": "Strict (no other events between steps)",
    "any": "Any order",
}
MIN_STEPS, MAX_STEPS = 2, 20
DEFAULT_WINDOW = "14d"
MAX_WINDOW_DAYS = 3650
TREND_GRAINS = ("day", "week", "month", "quarter")
NONE_LABEL = "(none)"
OTHER_LABEL = "Other"
TOP_N = 20
_UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60,
          "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400,
          "w": 604800, "week": 604800, "weeks": 604800}
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")
# Steps read from the other tables' timestamps, so a funnel can run order → ticket → survey: name →
# (table, timestamp column). The "table: " prefix keeps them apart from the events' own step names.
DERIVED_STEPS = {
    "orders: order placed": ("orders", "ordered_at"),
    "tickets: ticket opened": ("tickets", "created_at"),
    "tickets: first reply": ("tickets", "first_response_at"),
    "tickets: ticket resolved": ("tickets", "resolved_at"),
    "responses: survey answered": ("responses", "submitted_at"),
}
# Buckets of the time-to-convert distribution: (upper bound in seconds, label).
TIME_BUCKETS = (
    (60, "under 1 min"), (300, "1–5 min"), (900, "5–15 min"), (3600, "15–60 min"), (4 * 3600, "1–4 h"),
    (12 * 3600, "4–12 h"), (86400, "12–24 h"), (2 * 86400, "1–2 days"), (4 * 86400, "2–4 days"),
    (7 * 86400, "4–7 days"), (14 * 86400, "1–2 weeks"), (30 * 86400, "2–4 weeks"), (90 * 86400, "1–3 months"),
    (None, "over 3 months"),
)


def parse_window(text: str | int | float | timedelta) -> int:
    """A conversion window as whole seconds: "14d", "36h", "90m", "2w", "45s"; a bare number is days."""
    if isinstance(text, timedelta):
        seconds = text.total_seconds()
    elif isinstance(text, (int, float)):
        seconds = float(text) * 86400
    else:
        m = _WINDOW.match(str(text).lower())
        if not m or m.group(2) not in ("", *_UNITS):
            raise TouchpointError(f"{text!r} is not a conversion window.",
                                  fix="Write a number and a unit, e.g. 14d, 36h, 90m or 2w.")
        seconds = float(m.group(1)) * (_UNITS[m.group(2)] if m.group(2) else 86400)
    if not 1 <= seconds <= MAX_WINDOW_DAYS * 86400:
        raise TouchpointError(f"A conversion window of {text} is out of range.",
                              fix=f"Choose between 1 second and {MAX_WINDOW_DAYS} days.")
    return int(round(seconds))


def format_window(seconds: int) -> str:
    """The shortest exact way to write a window: 14d, 36h, 90m, 45s."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and unit != "w":
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class FunnelQuery:
    """One funnel question with every default resolved; hashable, so it is also a cache key.

    ``steps`` are step names as they appear in ``events.step``; ``window_seconds`` is the conversion
    window; ``start``/``end`` are inclusive dates for the first step; ``where`` maps dimensions to
    the values to keep (event dimensions apply to the first step's event, customer dimensions to
    the customer)."""

    steps: tuple[str, ...]
    mode: str = "sequential"
    window_seconds: int = 14 * 86400
    by: str | None = None
    start: date | None = None
    end: date | None = None
    where: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())
    top_n: int = TOP_N

    @classmethod
    def build(cls, steps, *, mode: str = "sequential", window: Any = DEFAULT_WINDOW, by: str | None = None,
              start=None, end=None, where: dict | None = None, top_n: int = TOP_N) -> "FunnelQuery":
        steps = tuple(str(s) for s in steps)
        if not MIN_STEPS <= len(steps) <= MAX_STEPS:
            raise TouchpointError(f"A funnel needs {MIN_STEPS} to {MAX_STEPS} steps; {len(steps)} given.",
                                  fix="Pick at least a first and a last step, and at most 20.")
        if mode not in MODES:
            raise TouchpointError(f"{mode!r} is not a funnel order.", fix=f"Use one of: {', '.join(MODES)}.")
        if mode == "any" and len(set(steps)) < len(steps):
            raise TouchpointError("In any order, each step can be listed only once.",
                                  fix="Remove the repeated step, or use the sequential order.")
        start, end = as_date(start), as_date(end)
        if start is not None and end is not None and start > end:
            raise TouchpointError(f"The range starts on {start} after it ends on {end}.",
                                  fix="Swap the dates: the start comes first.")
        w = tuple(sorted((str(d), tuple(sorted({str(v) for v in ([vals] if isinstance(vals, str) else vals)})))
                         for d, vals in (where or {}).items() if vals))
        return cls(steps, mode, parse_window(window), by or None, start, end, w, int(top_n))


# ------------------------------------------------------------------------------------------------
# SQL
# ------------------------------------------------------------------------------------------------
def _dimension_sources(store: Store) -> tuple[list[str], list[str]]:
    """Usable breakdown/filter columns: event dimensions (not the step itself), then customer ones."""
    event_dims = [d for d in store.dimensions("events") if d != "step"]
    customer_dims = [d for d in store.dimensions("customers") if d not in event_dims]
    return event_dims, customer_dims


def applicable_where(store: Store, where: dict[str, tuple[str, ...]] | None) -> tuple[dict, list[str]]:
    """The filters a funnel can apply (event or customer dimensions) and the names of those it cannot."""
    event_dims, customer_dims = _dimension_sources(store)
    keep = {d: v for d, v in (where or {}).items() if d in event_dims or d in customer_dims}
    return keep, sorted(d for d in (where or {}) if d not in keep)


def _attempts_sql(store: Store, q: FunnelQuery) -> tuple[str, dict[str, Any], list[str]]:
    """A query with one row per customer who entered the funnel: ``customer_id, bd`` (breakdown
    value or NULL), ``t1``…``tN`` (step times, NULL from the first step not reached) and ``reached``
    (steps reached). Returns the SQL, its parameters, and the filters that did not apply."""
    event_dims, customer_dims = _dimension_sources(store)
    if q.by is not None and q.by not in event_dims and q.by not in customer_dims:
        raise UnknownDimension(f"Journey events and customers have no dimension {q.by!r} to break a funnel down by.",
                               fix=f"Use one of: {', '.join(event_dims + customer_dims) or 'none imported yet'}.")
    n = len(q.steps)
    params: dict[str, Any] = {"steps": list(q.steps), "win": q.window_seconds * 1_000_000}
    for i, s in enumerate(q.steps, 1):
        params[f"s{i}"] = s
    ignored: list[str] = []
    customer_preds = []
    for j, (dim, values) in enumerate(q.where):
        params[f"f{j}"] = list(values)
        if dim in customer_dims:
            customer_preds.append(f"list_contains($f{j}, CAST(c.{quote_ident(dim)} AS VARCHAR))")
        elif dim not in event_dims:
            ignored.append(dim)

    def source_exprs(columns: set[str]) -> tuple[str, str]:
        """The breakdown value and the filter test of one source table's rows (a filter on a column
        the table lacks does not apply to it)."""
        bd = f"CAST({quote_ident(q.by)} AS VARCHAR)" if q.by in event_dims and q.by in columns else "CAST(NULL AS VARCHAR)"
        preds = [f"list_contains($f{j}, CAST({quote_ident(dim)} AS VARCHAR))"
                 for j, (dim, _) in enumerate(q.where) if dim in event_dims and dim in columns]
        return bd, " AND ".join(preds) or "TRUE"

    entry = ["keep"]
    if q.start is not None:
        params["lo"] = datetime.combine(q.start, datetime.min.time())
        entry.append("t >= $lo")
    if q.end is not None:
        params["hi"] = datetime.combine(q.end + timedelta(days=1), datetime.min.time())
        entry.append("t < $hi")
    entry_sql = " AND ".join(entry)
    in_window = "{t} <= a.t1 + to_microseconds($win)"
    only_funnel = "" if q.mode == "strict" else "AND list_contains($steps, step)"
    bd_event, keep_event = source_exprs(set(store.columns("events")))
    sources = [f"""SELECT customer_id, occurred_at AS t, step, {bd_event} AS bd, {keep_event} AS keep FROM events
    WHERE customer_id IS NOT NULL AND occurred_at IS NOT NULL AND step IS NOT NULL {only_funnel}"""]
    for i, name in enumerate(dict.fromkeys(x for x in q.steps if x in DERIVED_STEPS)):
        table, column = DERIVED_STEPS[name]
        bd, keep_d = source_exprs(set(store.columns(table)))
        params[f"d{i}"] = name
        col = quote_ident(column)
        sources.append(f"""SELECT customer_id, {col} AS t, $d{i} AS step, {bd} AS bd, {keep_d} AS keep
    FROM {quote_ident(table)} WHERE customer_id IS NOT NULL AND {col} IS NOT NULL""")
    union = "\n    UNION ALL ".join(sources)
    # Rows may repeat a customer, instant and step (see Duplicates above). Sequential and any-order
    # matching need no de-duplication: a repeat only adds an equal attempt (an ASOF join takes one of equal
    # rows), the first step's rows the filters drop start none, and of equal attempts `pick` keeps the
    # smallest breakdown value. Strict order de-duplicates by the same rule, since a repeat would stand
    # between two steps. De-duplicating every event up front took 11 of 16 s over 20 M events.
    ctes = [f"""-- every event (events, plus other tables' timestamps used as steps); not materialized: each step's
-- read filters the tables itself
ev AS NOT MATERIALIZED (
  {union}
)"""]
    t_cols = ", ".join(f"t{k}" for k in range(1, n + 1))
    if q.mode == "sequential":
        ctes.append(f"a1 AS (SELECT customer_id, bd, t AS t1 FROM ev WHERE step = $s1 AND {entry_sql})")
        for k in range(2, n + 1):
            # A step repeating an earlier step's name must be a later event, never the same one.
            op = ">" if q.steps[k - 1] in q.steps[:k - 1] else ">="
            ctes.append(f"e{k} AS (SELECT customer_id, t FROM ev WHERE step = $s{k})")
            # DuckDB's ASOF join may pair a NULL key with some row, so a missing step k − 1 is tested.
            ctes.append(f"""-- step {k}: the earliest occurrence at or after step {k - 1}, kept only inside the window
a{k} AS (
  SELECT a.*, CASE WHEN a.t{k - 1} IS NOT NULL AND {in_window.format(t='e.t')} THEN e.t END AS t{k}
  FROM a{k - 1} a ASOF LEFT JOIN e{k} e ON a.customer_id = e.customer_id AND e.t {op} a.t{k - 1}
)""")
        ctes.append(f"att AS (SELECT customer_id, bd, {t_cols}, "
                    + " + ".join(f"(t{k} IS NOT NULL)::INT" for k in range(1, n + 1)) + f" AS reached FROM a{n})")
    elif q.mode == "strict":
        ctes.append("""-- the customer's events in order; equal instants in funnel order, then other events by name
seq AS (
  SELECT *, row_number() OVER (PARTITION BY customer_id
                               ORDER BY t, coalesce(list_position($steps, step), 2147483647), step) AS rn
  FROM (SELECT customer_id, t, step, min(bd) FILTER (WHERE keep) AS bd, bool_or(keep) AS keep FROM ev
        GROUP BY customer_id, t, step)
)""")
        ctes.append(f"a1 AS (SELECT customer_id, bd, t AS t1, rn AS r1 FROM seq WHERE step = $s1 AND {entry_sql})")
        for k in range(2, n + 1):
            ctes.append(f"""-- step {k}: must be the very next event after step {k - 1}, inside the window
a{k} AS (
  SELECT a.*, CASE WHEN a.r{k - 1} IS NOT NULL AND {in_window.format(t='x.t')} THEN x.t END AS t{k},
         CASE WHEN a.r{k - 1} IS NOT NULL AND {in_window.format(t='x.t')} THEN x.rn END AS r{k}
  FROM a{k - 1} a LEFT JOIN seq x ON x.customer_id = a.customer_id AND x.rn = a.r{k - 1} + 1 AND x.step = $s{k}
)""")
        ctes.append(f"att AS (SELECT customer_id, bd, {t_cols}, "
                    + " + ".join(f"(t{k} IS NOT NULL)::INT" for k in range(1, n + 1)) + f" AS reached FROM a{n})")
    else:
        ctes.append(f"starts AS (SELECT customer_id, bd, t AS t0 FROM ev WHERE {entry_sql})")
        ctes.append("""-- per attempt, when each different funnel step was first done inside the window
firsts AS (
  SELECT s.customer_id, s.bd, s.t0, e.step, min(e.t) AS ft
  FROM starts s JOIN ev e ON e.customer_id = s.customer_id AND e.t >= s.t0 AND e.t <= s.t0 + to_microseconds($win)
  GROUP BY ALL
)""")
        ctes.append("lists AS (SELECT customer_id, bd, t0, list_sort(list(ft)) AS ts FROM firsts GROUP BY ALL)")
        ctes.append(f"att AS (SELECT customer_id, bd, "
                    + ", ".join(f"ts[{k}] AS t{k}" for k in range(1, n + 1)) + ", len(ts) AS reached FROM lists)")
    ctes.append(f"""-- one attempt per customer: the one that gets furthest, the earliest among equals
pick AS (
  SELECT * FROM att
  QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY reached DESC, t1, bd NULLS LAST) = 1
)""")
    need_customers = bool(customer_preds) or (q.by in customer_dims)
    bd = f"CAST(c.{quote_ident(q.by)} AS VARCHAR)" if q.by in customer_dims else "p.bd"
    join = "LEFT JOIN customers c ON c.customer_id = p.customer_id" if need_customers else ""
    where = ("WHERE " + " AND ".join(customer_preds)) if customer_preds else ""
    ctes.append(f"""entered AS (
  SELECT p.customer_id, coalesce({bd}, '{NONE_LABEL}') AS bd, {', '.join(f'p.t{k}' for k in range(1, n + 1))}, p.reached
  FROM pick p {join} {where}
)""")
    params["top"] = q.top_n
    ctes.append(f"""-- the largest breakdown values keep their name; the rest are pooled
ranked AS (SELECT bd, row_number() OVER (ORDER BY count(*) DESC, bd) AS r FROM entered GROUP BY bd),
funnel AS (
  SELECT e.* REPLACE (CASE WHEN r.r <= $top THEN e.bd ELSE '{OTHER_LABEL}' END AS bd)
  FROM entered e JOIN ranked r USING (bd)
)""")
    return "WITH " + ",\n".join(ctes), params, ignored


def _used(sql: str, params: dict) -> dict:
    # Bind only the parameters the statement uses: DuckDB refuses unused named parameters.
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}


# The per-customer matching (``_attempts_sql``'s ``funnel``: one row per customer who entered) is the
# expensive part of every funnel question, and the Journey page asks three of the same funnel (its step
# table, conversion by cohort, who dropped off): about 17 s each over 20 M events. It is kept for the
# last few funnels, keyed on the store, its data version and the query, and each question is answered
# from it (at 10 M: 911,400 rows, about 60 MB).
_MATCHED: "OrderedDict[tuple, Any]" = OrderedDict()
_MATCHED_LOCK = threading.Lock()
MATCHED_KEPT = 2


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _over_funnel(store: Store, base: str, params: dict, question: str) -> pd.DataFrame:
    """``question`` (a query over ``funnel``) answered from the per-customer matching ``base`` builds,
    computed once per store, data version and query."""
    base_params = _used(base, params)
    with read_cursor(store) as cur:
        version = read_data_version(cur)  # on the cursor that reads the matching: never a newer one
        key = (str(store.path), version, base, tuple(sorted((k, _freeze(v)) for k, v in base_params.items())))
        with _MATCHED_LOCK:
            matched = _MATCHED.get(key)
            if matched is not None:
                _MATCHED.move_to_end(key)
        if matched is None:
            matched = cur.execute(base + "\nSELECT * FROM funnel", base_params).arrow().read_all()
            with _MATCHED_LOCK:
                _MATCHED[key] = matched
                while len(_MATCHED) > MATCHED_KEPT:
                    _MATCHED.popitem(last=False)
        cur.register("funnel", matched)
        try:
            return cur.execute(question, _used(question, params)).df()
        finally:
            cur.unregister("funnel")


def _derived_available(store: Store) -> list[str]:
    """The other tables' steps that have at least one row with a customer and that timestamp."""
    out = []
    with read_cursor(store) as cur:
        for name, (table, column) in DERIVED_STEPS.items():
            col = quote_ident(column)
            if cur.execute(f"SELECT count(*) FROM (SELECT 1 FROM {quote_ident(table)} WHERE customer_id IS NOT NULL "
                           f"AND {col} IS NOT NULL LIMIT 1)").fetchone()[0]:
                out.append(name)
    return out


def _check_steps(store: Store, q: FunnelQuery) -> None:
    derived = [x for x in q.steps if x in DERIVED_STEPS]
    with read_cursor(store) as cur:
        known = {r[0] for r in cur.execute("SELECT DISTINCT step FROM events WHERE list_contains($s, step)",
                                           {"s": list(q.steps)}).fetchall()}
    if derived:
        known |= set(_derived_available(store))
    missing = [x for x in dict.fromkeys(q.steps) if x not in known]
    if not missing:
        return
    with read_cursor(store) as cur:
        all_steps = [r[0] for r in cur.execute("SELECT DISTINCT step FROM events ORDER BY 1 LIMIT 5000").fetchall()]
    all_steps += _derived_available(store)
    if not all_steps:
        raise TouchpointError("No journey events have been imported yet.",
                              fix="Import an events export (customer, timestamp, step) on the Data page or with "
                                  "python -m cx import FILE --kind events.")
    lower = {}
    for name in all_steps:
        lower.setdefault(name.lower(), name)
    hints = [lower[m] for s in missing for m in difflib.get_close_matches(s.lower(), list(lower), n=2)]
    shown = ", ".join(repr(x) for x in all_steps[:8]) + (", …" if len(all_steps) > 8 else "")
    raise TouchpointError(f"No event has the step {', '.join(repr(s) for s in missing)}.",
                          fix=(f"Did you mean {', '.join(repr(h) for h in dict.fromkeys(hints))}? " if hints else "")
                          + f"Step names are case-sensitive; the data has {shown}.")


# ------------------------------------------------------------------------------------------------
# Public face
# ------------------------------------------------------------------------------------------------
def step_catalog(store: Store) -> pd.DataFrame:
    """The step names a funnel can use: those in the events table, in typical journey order, then the other
    tables' timestamps (``DERIVED_STEPS``: order placed, ticket opened / first reply / resolved, survey
    answered) that have data, in that order. Columns ``step, events, customers, median_position`` and
    ``source`` ("events" or the table's name). ``median_position`` is, for a journey event, the median rank
    of the step's first occurrence among the steps of each customer's journey events (so the list reads
    roughly in journey order; then by customers, then by name); NULL for the other tables' timestamps,
    which are records of their own rather than journey steps (ranking them among the events cost more
    than the rest of the catalogue: 9.7 s against 3 s over 20 M events and 18 M other rows). An event
    carrying another table's step name is that step: listed once, in the events' place, counted over both."""
    events = """
    WITH firsts AS (SELECT customer_id, step, min(occurred_at) AS t, count(*) AS n FROM events GROUP BY ALL),
    ranked AS (SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY t, step) AS pos FROM firsts)
    SELECT step, sum(n)::BIGINT AS events, count(*)::BIGINT AS customers, median(pos)::DOUBLE AS median_position,
           'events' AS source
    FROM ranked GROUP BY step ORDER BY median_position, customers DESC, step"""
    with read_cursor(store) as cur:
        catalog = cur.execute(events).df()
        frames = [catalog]
        for name in _derived_available(store):
            table, column = DERIVED_STEPS[name]
            rows = (f"SELECT customer_id FROM {quote_ident(table)} "
                    f"WHERE customer_id IS NOT NULL AND {quote_ident(column)} IS NOT NULL")
            # An event may carry this name too: then it is one step (a funnel reads both), counted over both,
            # in the events' place.
            shared = catalog["step"] == name
            also_event = bool(shared.any())
            if also_event:
                rows += " UNION ALL SELECT customer_id FROM events WHERE step = $name"
            counts = cur.execute(f"SELECT count(*)::BIGINT, count(DISTINCT customer_id)::BIGINT FROM ({rows})",
                                 {"name": name} if also_event else {}).fetchone()
            if also_event:
                catalog.loc[shared, ["events", "customers"]] = counts
            else:
                frames.append(pd.DataFrame({"step": [name], "events": [counts[0]], "customers": [counts[1]],
                                            "median_position": [None], "source": [table]}))
    return pd.concat(frames, ignore_index=True).astype({"median_position": "float64"})


def funnel_dimensions(store: Store) -> list[str]:
    """Dimensions a funnel can be broken down or filtered by: event dimensions, then customer ones."""
    event_dims, customer_dims = _dimension_sources(store)
    return event_dims + customer_dims


def compute_funnel(store: Store, q: FunnelQuery) -> pd.DataFrame:
    """The per-step table: ``[by value,] step`` (1…N), ``step_name``, ``customers`` (reached the step),
    ``conversion_pct`` (of those who entered, 0–100), ``step_conversion_pct`` (of the previous
    step), ``dropoff`` (reached the previous step, not this one), ``median_hours`` and ``p90_hours``
    (from the previous step), ``median_hours_from_first``. With ``q.by`` there is one block of rows
    per breakdown value (column named after the dimension), largest first.

    ``attrs`` carries ``ignored_filters`` (filters on dimensions events and customers lack)."""
    _check_steps(store, q)
    base, params, ignored = _attempts_sql(store, q)
    n = len(q.steps)
    parts = []
    for k in range(1, n + 1):
        prev = f"t{k - 1}" if k > 1 else "t1"
        hours = f"(epoch_us(t{k}) - epoch_us({prev})) / 3.6e9"
        from_first = f"(epoch_us(t{k}) - epoch_us(t1)) / 3.6e9"
        parts.append(f"""SELECT bd, {k} AS step, count(t{k}) AS customers,
            quantile_cont({hours}, 0.5) AS median_hours, quantile_cont({hours}, 0.9) AS p90_hours,
            quantile_cont({from_first}, 0.5) AS median_hours_from_first
            FROM funnel GROUP BY bd""")
    raw = _over_funnel(store, base, params, " UNION ALL ".join(parts))
    out = _finish_steps(raw, q)
    if q.by is None:
        out = out.drop(columns="bd")
    else:
        out = out.rename(columns={"bd": q.by})
    out.attrs["ignored_filters"] = ignored
    return out


def _finish_steps(raw: pd.DataFrame, q: FunnelQuery) -> pd.DataFrame:
    n = len(q.steps)
    if raw.empty:
        raw = pd.DataFrame({"bd": [NONE_LABEL] * n, "step": range(1, n + 1), "customers": [0] * n,
                            "median_hours": [None] * n, "p90_hours": [None] * n, "median_hours_from_first": [None] * n})
        if q.by is not None:
            raw = raw.iloc[0:0]
    raw["customers"] = pd.to_numeric(raw["customers"]).fillna(0).astype("int64")
    raw = raw.sort_values(["bd", "step"]).reset_index(drop=True)
    first = raw.groupby("bd")["customers"].transform("first")
    prev = raw.groupby("bd")["customers"].shift(1)
    raw["conversion_pct"] = (100.0 * raw["customers"] / first.where(first > 0)).astype("float64")
    raw["step_conversion_pct"] = (100.0 * raw["customers"] / prev.where(prev > 0)).astype("float64")
    raw.loc[raw["step"] == 1, "step_conversion_pct"] = raw.loc[raw["step"] == 1, "conversion_pct"]
    raw["dropoff"] = (prev.fillna(raw["customers"]) - raw["customers"]).astype("int64")
    for c in ("median_hours", "p90_hours", "median_hours_from_first"):
        raw[c] = pd.to_numeric(raw[c], errors="coerce").astype("float64")
        raw.loc[raw["step"] == 1, c] = float("nan")
    if q.mode == "any":
        raw["step_name"] = [f"Any {k} of {n} steps" if k > 1 else "Any 1 step" for k in raw["step"]]
    else:
        raw["step_name"] = [q.steps[k - 1] for k in raw["step"]]
    order = raw.groupby("bd")["customers"].transform("first")
    raw = raw.assign(_size=order).sort_values(["_size", "bd", "step"], ascending=[False, True, True])
    cols = ["bd", "step", "step_name", "customers", "conversion_pct", "step_conversion_pct", "dropoff",
            "median_hours", "p90_hours", "median_hours_from_first"]
    return raw[cols].reset_index(drop=True)


def conversion_trend(store: Store, q: FunnelQuery, grain: str = "week") -> pd.DataFrame:
    """Conversion by cohort of first-step date: ``cohort`` (start of the day/week/month/quarter),
    ``entered``, ``converted`` (reached the last step), ``conversion_pct`` with its 95% Wilson
    interval ``ci_low``/``ci_high``, and ``complete`` — False when the cohort's window has not fully
    elapsed before the last event in the data (its conversion can still grow). Weeks start on Monday."""
    if grain not in TREND_GRAINS:
        raise TouchpointError(f"{grain!r} is not a cohort grain.", fix=f"Use one of: {', '.join(TREND_GRAINS)}.")
    _check_steps(store, q)
    base, params, _ = _attempts_sql(store, q)
    params["grain"] = grain
    n = len(q.steps)
    raw = _over_funnel(store, base, params, f"""
    SELECT date_trunc($grain, t1) AS cohort, count(*) AS entered, count(t{n}) AS converted,
           (SELECT max(occurred_at) FROM events) AS last_event
    FROM funnel GROUP BY 1 ORDER BY 1""")
    if raw.empty:
        return pd.DataFrame(columns=["cohort", "entered", "converted", "conversion_pct", "ci_low", "ci_high",
                                     "complete"])
    offset = {"day": pd.DateOffset(days=1), "week": pd.DateOffset(weeks=1), "month": pd.DateOffset(months=1),
              "quarter": pd.DateOffset(months=3)}[grain]
    raw["cohort"] = pd.to_datetime(raw["cohort"])
    raw["entered"] = raw["entered"].astype("int64")
    raw["converted"] = raw["converted"].astype("int64")
    raw["conversion_pct"] = 100.0 * raw["converted"] / raw["entered"]
    ci = [stats.wilson_interval(int(k), int(m)) for k, m in zip(raw["converted"], raw["entered"])]
    raw["ci_low"] = [100 * c[0] for c in ci]
    raw["ci_high"] = [100 * c[1] for c in ci]
    last = pd.Timestamp(raw["last_event"].iloc[0])
    raw["complete"] = [(c + offset + pd.Timedelta(seconds=q.window_seconds)) <= last for c in raw["cohort"]]
    return raw[["cohort", "entered", "converted", "conversion_pct", "ci_low", "ci_high", "complete"]]


def dropped_customers(store: Store, q: FunnelQuery, step: int) -> pd.DataFrame:
    """The customers who reached step ``step − 1`` but not step ``step`` (2…N): ``customer_id``,
    the breakdown value (when ``q.by``), ``entered_at`` (first step), ``last_step``, ``last_step_at``,
    ``window_ends_at`` (the last moment the step would still have counted). Sorted by entry time."""
    n = len(q.steps)
    if not 2 <= int(step) <= n:
        raise TouchpointError(f"Step {step} is not a step customers can drop off at.",
                              fix=f"Choose a step from 2 to {n}.")
    _check_steps(store, q)
    base, params, _ = _attempts_sql(store, q)
    params["k"] = int(step) - 1
    prev_name = f"Any {step - 1} steps" if q.mode == "any" else q.steps[step - 2]
    params["prev_name"] = prev_name
    cases = " ".join(f"WHEN {k} THEN t{k}" for k in range(1, n + 1))
    out = _over_funnel(store, base, params, f"""
    SELECT customer_id, bd, t1 AS entered_at, $prev_name AS last_step, CASE reached {cases} END AS last_step_at,
           t1 + to_microseconds($win) AS window_ends_at
    FROM funnel WHERE reached = $k ORDER BY t1, customer_id""")
    if q.by is None:
        return out.drop(columns="bd")
    return out.rename(columns={"bd": q.by})


def time_to_convert(store: Store, q: FunnelQuery, step: int, *, from_first: bool = False) -> pd.DataFrame:
    """How long customers took to reach step ``step`` (2…N) from the previous step (or from the first
    with ``from_first``): ``bucket`` (readable range, in order), ``customers``, ``share_pct``,
    ``cumulative_pct``. Empty buckets are kept so the shape reads at a glance."""
    n = len(q.steps)
    if not 2 <= int(step) <= n:
        raise TouchpointError(f"Step {step} has no time to convert.", fix=f"Choose a step from 2 to {n}.")
    _check_steps(store, q)
    base, params, _ = _attempts_sql(store, q)
    prev = "t1" if from_first else f"t{step - 1}"
    secs = f"(epoch_us(t{step}) - epoch_us({prev})) / 1e6"
    cases = " ".join(f"WHEN s < {ub} THEN {i}" for i, (ub, _) in enumerate(TIME_BUCKETS) if ub is not None)
    raw = _over_funnel(store, base, params, f"""
    WITH secs AS (SELECT {secs} AS s FROM funnel WHERE t{step} IS NOT NULL)
    SELECT CASE {cases} ELSE {len(TIME_BUCKETS) - 1} END AS i, count(*) AS customers FROM secs GROUP BY 1""")
    counts = dict(zip(raw["i"].astype(int), raw["customers"].astype(int)))
    total = sum(counts.values())
    rows = []
    running = 0
    for i, (_, label) in enumerate(TIME_BUCKETS):
        c = counts.get(i, 0)
        running += c
        rows.append({"bucket": label, "customers": c, "share_pct": 100.0 * c / total if total else float("nan"),
                     "cumulative_pct": 100.0 * running / total if total else float("nan")})
    return pd.DataFrame(rows)


def compare_groups(table: pd.DataFrame, by: str, *, alpha: float = 0.05, min_n: int = 30) -> pd.DataFrame:
    """Overall conversion (first to last step) of each breakdown value of a ``compute_funnel`` table,
    tested against everyone else: ``by`` value, ``entered``, ``converted``, ``conversion_pct`` with
    its 95% Wilson interval ``ci_low``/``ci_high``, ``rest_pct`` (everyone else), ``p_vs_rest``
    (pooled two-proportion z-test), ``p_adjusted`` (Benjamini–Hochberg over the values tested),
    ``low_n`` (fewer than ``min_n`` entered) and ``differs`` (adjusted p < ``alpha``, not low-n).
    Sorted by entrants, largest first."""
    from scipy.stats import false_discovery_control

    cols = [by, "entered", "converted", "conversion_pct", "ci_low", "ci_high", "rest_pct", "p_vs_rest",
            "p_adjusted", "low_n", "differs"]
    if table.empty:
        return pd.DataFrame(columns=cols)
    last = int(table["step"].max())
    g = table.groupby(by, sort=False).apply(
        lambda t: pd.Series({"entered": int(t.loc[t["step"] == 1, "customers"].sum()),
                             "converted": int(t.loc[t["step"] == last, "customers"].sum())}),
        include_groups=False).reset_index()
    total_n, total_k = int(g["entered"].sum()), int(g["converted"].sum())
    rows = []
    for _, r in g.iterrows():
        n, k = int(r["entered"]), int(r["converted"])
        lo, hi = stats.wilson_interval(k, n)
        rest_n, rest_k = total_n - n, total_k - k
        rows.append({by: r[by], "entered": n, "converted": k, "conversion_pct": 100.0 * k / n if n else float("nan"),
                     "ci_low": 100 * lo, "ci_high": 100 * hi,
                     "rest_pct": 100.0 * rest_k / rest_n if rest_n else float("nan"),
                     "p_vs_rest": stats.two_proportion_test(k, n, rest_k, rest_n)[1], "low_n": n < min_n})
    out = pd.DataFrame(rows)
    tested = ~out["low_n"] & out["p_vs_rest"].notna()
    out["p_adjusted"] = float("nan")
    if tested.any():
        out.loc[tested, "p_adjusted"] = false_discovery_control(out.loc[tested, "p_vs_rest"].to_numpy(), method="bh")
    out["differs"] = tested & (out["p_adjusted"] < alpha)
    return out.sort_values("entered", ascending=False, kind="stable")[cols].reset_index(drop=True)
