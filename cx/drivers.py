"""Key drivers ("moments of truth"): which touchpoint experiences, support experiences and comment
themes go with a customer's NPS — or with churning — and how much of the explained difference each
one carries.

The per-customer frame is aggregated in the engine (Ibis over the DuckDB store), one row per
customer, with the outcome and 0/1 experience flags built from the metric layer's own definitions
(CSAT top-two-box, CES "easy" threshold, first response and resolution hours, reopens), plus the
comment themes of the Voice analysis (``cx.voice``: the customer mentioned the theme). Only that
frame (one row per customer, a dozen columns) reaches numpy.

NPS is explained by what happened in the 90 days before each customer's latest answer; churn by
what happened in the selected range.

Method: a linear regression of the outcome on the flags, whose R² is split between the flags by
the Shapley value (Lindeman–Merenda–Gold): each flag's share is its added R², averaged over every
order in which the flags can enter the model, so overlapping flags share credit fairly and the
shares add up to the model's R². Uncertainty: percentile intervals from a bootstrap over customers.
This measures association, not cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import factorial

import ibis
import numpy as np
import pandas as pd

from cx import metrics
from cx.errors import TouchpointError
from cx.store import quote_ident

OUTCOMES = {"nps": "NPS", "churn": "Churn"}
MAX_TOUCHPOINTS = 6
MAX_THEMES = 6
MAX_FEATURES = 12
BOOTSTRAP = 100
LOOKBACK_DAYS = 90
SEED = 20240501
# Buckets of the customer's slowest ticket (hours), as support teams set their service levels.
FRT_BUCKETS = ((1.0, 8.0, "frt_1_8", "First reply to a ticket took 1–8 h"),
               (8.0, None, "frt_8", "First reply to a ticket took over 8 h"))
TTR_BUCKETS = ((24.0, 72.0, "ttr_24_72", "A ticket took 1–3 days to resolve"),
               (72.0, None, "ttr_72", "A ticket took over 3 days to resolve"))


@dataclass(frozen=True)
class Feature:
    """One 0/1 experience flag: its column in the frame, its label in plain words, its group."""

    column: str
    label: str
    group: str


# ------------------------------------------------------------------------------------------------
# Shapley decomposition of R²
# ------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _subsets(p: int) -> tuple[np.ndarray, np.ndarray, tuple[tuple[np.ndarray, np.ndarray], ...]]:
    """Every subset of ``p`` columns as a bit mask, its size, and per size the masks with their column
    indexes (the same for every regression on ``p`` columns, so built once)."""
    masks = np.arange(1 << p)
    sizes = np.array([bin(m).count("1") for m in masks])
    by_size = tuple((masks[sizes == k], np.array([[j for j in range(p) if m >> j & 1] for m in masks[sizes == k]]))
                    for k in range(1, p + 1))
    return masks, sizes, by_size


def _subset_r2(cov: np.ndarray, p: int) -> np.ndarray:
    """R² of the regression of the last variable on every subset of the first ``p`` (index = bit mask),
    from their covariance matrix; a pseudo-inverse keeps constant or collinear columns harmless."""
    var_y = cov[p, p]
    r2 = np.zeros(1 << p)
    if var_y <= 0:
        return r2
    for ms, idx in _subsets(p)[2]:
        sxx = cov[idx[:, :, None], idx[:, None, :]]
        sxy = cov[idx, p][:, :, None]
        beta = np.linalg.pinv(sxx, hermitian=True) @ sxy
        r2[ms] = (sxy[:, :, 0] * beta[:, :, 0]).sum(axis=1) / var_y
    return np.clip(r2, 0.0, 1.0)


def shapley_r2(X: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Each column's Shapley share of the R² of ``y`` on all columns of ``X`` (with an intercept),
    and that R². The shares add up to the R². ``weights``: how many times each row counts (integers;
    the same result as the rows written out that many times)."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    p = X.shape[1]
    cov = np.cov(np.column_stack([X, y]), rowvar=False, fweights=weights)
    r2 = _subset_r2(np.atleast_2d(cov), p)
    masks, sizes, _ = _subsets(p)
    share = np.array([factorial(s) * factorial(p - s - 1) / factorial(p) for s in range(p)])  # per subset size
    phi = np.empty(p)
    for j in range(p):
        without = masks[(masks >> j & 1) == 0]
        phi[j] = (share[sizes[without]] * (r2[without | (1 << j)] - r2[without])).sum()
    return phi, float(r2[-1])


# ------------------------------------------------------------------------------------------------
# The per-customer frame, aggregated in the engine
# ------------------------------------------------------------------------------------------------
def _ts(d):
    return ibis.literal(pd.Timestamp(d).to_pydatetime(), type="timestamp")


def _in_range(t, column: str, start, end) -> list:
    preds = []
    if start is not None:
        preds.append(t[column] >= _ts(start))
    if end is not None:
        preds.append(t[column] < _ts(pd.Timestamp(end) + pd.Timedelta(days=1)))
    return preds


def _filter(t, preds: list):
    return t.filter(preds) if preds else t


def _where(t, where: dict | None) -> list:
    """Filters on the table's own string columns (values as literals); the rest do not apply to it."""
    preds = []
    for dim, values in (where or {}).items():
        if dim in t.columns and t[dim].type().is_string():
            preds.append(t[dim].isin([str(v) for v in values]))
    return preds


def theme_label(theme: str) -> str:
    """A comment theme as a driver, in plain words: "Delivery" → "Mentioned: delivery"."""
    t = str(theme).strip()
    if len(t) > 1 and t[0].isupper() and not t[1].isupper():
        t = t[0].lower() + t[1:]
    return f"Mentioned: {t}"


def _theme_mentions(backend, r, tk):
    """(customer_id, theme) for every comment among the survey answers ``r`` and tickets ``tk`` (already
    scoped) that carries a theme in the stored Voice analysis — only when that analysis was made from
    the comment's present text (``cx.voice``'s own join), so edited or removed comments never count.
    None when the engine holds no Voice analysis (an external engine)."""
    from cx import voice

    if getattr(backend, "name", "") != "duckdb":
        return None
    try:
        themes = backend.table("comment_themes")
    except Exception:  # noqa: BLE001 - a store without the Voice tables simply has no themes
        return None
    scores = backend.table("comment_scores")
    parts = []
    for src, t in (("responses", r), ("tickets", tk)):
        s = voice.SOURCES[src]
        # The rows in scope with their text's hash (only they are hashed, not every comment of the table),
        # matched to a score made from that very text, then to the themes of that row.
        # Constants only in this SQL (cx.voice's own fragments): no user value.
        rows = t.alias(f"scoped_{src}").sql(
            f"SELECT CAST({quote_ident(s.key)} AS VARCHAR) AS id, customer_id, {s.text_hash} AS text_hash "
            f"FROM scoped_{src} WHERE {s.has_text}", dialect="duckdb")
        current = scores.filter(scores.source == src).select("id", "text_hash")
        scored = rows.inner_join(current, ["id", "text_hash"]).select("id", "customer_id")
        tagged = scored.inner_join(themes.filter(themes.source == src).select("id", "theme"), "id")
        parts.append(tagged.select("customer_id", "theme"))
    return parts[0].union(parts[1], distinct=True)


def customer_frame(backend, *, outcome: str = "nps", start=None, end=None, where=None,
                   ces_easy_min: float | None = None, min_n: int = metrics.MIN_N) -> tuple[pd.DataFrame, list[Feature]]:
    """One row per customer: ``customer_id``, ``y`` and one 0/1 column per experience flag.

    NPS: ``y`` is the customer's latest NPS answer in the range as +100 (promoter), 0 (passive) or
    −100 (detractor), so its mean is an NPS; the flags describe the ``LOOKBACK_DAYS`` (90) before
    that answer. Churn: ``y`` is 100 if the customer has churned (flag or churn date), else 0; the
    flags describe the range. Flags: a poor rating at a touchpoint (CSAT outside the top two boxes,
    or effort not easy), contacted support, the slowest ticket's first reply and resolution
    buckets, a reopened ticket, a comment theme the customer mentioned in a survey comment or a
    ticket in the same window (the ``MAX_THEMES`` most mentioned; from the stored Voice analysis,
    only where it was made from the comment's present text), and, for churn, a detractor answer.
    Flags that fewer than
    ``min_n`` customers have (or lack) are left out.
    Returns the frame and the flags, in column order."""
    backend = metrics._as_backend(backend)
    if outcome not in OUTCOMES:
        raise TouchpointError(f"{outcome!r} is not a driver outcome.", fix=f"Use one of: {', '.join(OUTCOMES)}.")
    q = metrics.MetricQuery.build("ces_easy", ces_easy_min=ces_easy_min)
    r, _ = metrics._table(backend, "responses")
    r = r.filter([r.customer_id.notnull(), *_where(r, where)])
    tk, _ = metrics._table(backend, "tickets")
    tk = tk.filter([tk.customer_id.notnull(), *_where(tk, where)])

    if outcome == "nps":
        # The customer's latest answer in the range is the outcome; experiences count when they come
        # in the LOOKBACK_DAYS before it (up to the answer), so the flags precede the score.
        a = r.filter([r.nps.notnull(), *_in_range(r, "submitted_at", start, end)])
        a = a.mutate(_rn=ibis.row_number().over(group_by=a.customer_id, order_by=ibis.desc(a.submitted_at)))
        a = a.filter(a._rn == 0)
        score = ibis.cases((a.nps >= 9, 100.0), (a.nps <= 6, -100.0), else_=0.0)
        base = a.select("customer_id", y=score, _anchor=a.submitted_at)
        anchors = base.select("customer_id", "_anchor")

        def scope(t, column):
            j = t.inner_join(anchors, "customer_id")
            return j.filter((j[column] <= j._anchor) & (j[column] >= j._anchor - ibis.interval(days=LOOKBACK_DAYS)))

        r, tk = scope(r, "submitted_at"), scope(tk, "created_at")
        base = base.drop("_anchor")
    else:
        c, _ = metrics._table(backend, "customers")
        churned = c.churned.fill_null(False) | c.churned_at.notnull()
        c = c.filter([c.customer_id.notnull(), c.churned.notnull() | c.signup_at.notnull() | c.churned_at.notnull(),
                      *_where(c, where)])
        base = c.group_by("customer_id").aggregate(y=ibis.ifelse(churned, 100.0, 0.0).max())
        r = _filter(r, _in_range(r, "submitted_at", start, end))
        tk = _filter(tk, _in_range(tk, "created_at", start, end))

    features: list[Feature] = []
    # Touchpoints rated by enough customers, most rated first.
    rated = r.filter(r.touchpoint.notnull() & (r.csat.notnull() | r.ces.notnull()))
    top = rated.group_by("touchpoint").aggregate(k=rated.customer_id.nunique()).order_by(ibis.desc("k")) \
        .limit(MAX_TOUCHPOINTS).execute()
    touchpoints = [tp for tp, k in zip(top["touchpoint"], top["k"]) if int(k) >= min_n]
    parts = [base]
    if touchpoints:
        poor = (rated.csat.notnull() & ~metrics.REGISTRY["csat"].condition(rated, q)) | \
               (rated.ces.notnull() & ~metrics.REGISTRY["ces_easy"].condition(rated, q))
        aggs = {}
        for i, tp in enumerate(touchpoints):
            col = f"tp_{i}"
            aggs[col] = (poor & (rated.touchpoint == tp)).cast("int64").max()
            features.append(Feature(col, f"Rated {tp} poorly", "Touchpoint"))
        parts.append(rated.group_by("customer_id").aggregate(**aggs))

    frt = metrics.REGISTRY["frt_median"].value(tk)
    ttr = metrics.REGISTRY["ttr_median"].value(tk)
    reopened = metrics.REGISTRY["reopen_rate"].condition(tk, q) & metrics.REGISTRY["reopen_rate"].base(tk)
    t_aggs = {"support": (tk.created_at.notnull()).cast("int64").max(), "reopened": reopened.cast("int64").max()}
    mentions = _theme_mentions(backend, r, tk)
    registered = None
    if mentions is not None:
        # Read once (customer, theme pairs: about 700,000 at 10 M, ~20 MB) for both the choice of themes
        # and the frame; as an expression the engine matched every comment to its themes twice (2.5 s each).
        # Ibis leaves an in-memory table registered on the connection: it is dropped once the frame is read.
        mentions = ibis.memtable(mentions.to_pyarrow())
        registered = mentions.op().name
    try:
        if mentions is not None:
            # Comment themes mentioned by enough customers in the same window, most mentioned first.
            top = mentions.group_by("theme").aggregate(k=mentions.customer_id.nunique()) \
                .order_by([ibis.desc("k"), "theme"]).limit(MAX_THEMES).execute()
            themes = [th for th, k in zip(top["theme"], top["k"]) if int(k) >= min_n]
            if themes:
                parts.append(mentions.group_by("customer_id").aggregate(
                    **{f"theme_{i}": (mentions.theme == th).cast("int64").max() for i, th in enumerate(themes)}))
                features += [Feature(f"theme_{i}", theme_label(th), "Theme") for i, th in enumerate(themes)]
        features.append(Feature("support", "Contacted support", "Support"))
        for lo, hi, col, label in FRT_BUCKETS:
            t_aggs[col] = ((frt >= lo) & ((frt < hi) if hi else True)).cast("int64").max()
        for lo, hi, col, label in TTR_BUCKETS:
            t_aggs[col] = ((ttr >= lo) & ((ttr < hi) if hi else True)).cast("int64").max()
        parts.append(tk.group_by("customer_id").aggregate(**t_aggs))
        # The slowest ticket decides the bucket: a customer over 8 h is not also counted in 1–8 h.
        features += [Feature(col, label, "Support") for _, _, col, label in FRT_BUCKETS + TTR_BUCKETS]
        features.append(Feature("reopened", "A ticket was reopened", "Support"))
        if outcome == "churn":
            d = r.filter(r.nps.notnull())
            parts.append(d.group_by("customer_id").aggregate(detractor=(d.nps <= 6).cast("int64").max()))
            features.append(Feature("detractor", "Gave a detractor score (0–6)", "Survey"))

        joined = parts[0]
        for part in parts[1:]:
            joined = joined.left_join(part, "customer_id").drop("customer_id_right")
        frame = joined.execute()
    finally:
        if registered is not None:
            backend.con.unregister(registered)
    for f in features:
        frame[f.column] = pd.to_numeric(frame[f.column], errors="coerce").fillna(0).astype("int64")
    if "frt_8" in frame:
        frame.loc[frame["frt_8"] == 1, "frt_1_8"] = 0
    if "ttr_72" in frame:
        frame.loc[frame["ttr_72"] == 1, "ttr_24_72"] = 0
    frame["y"] = pd.to_numeric(frame["y"]).astype("float64")
    n = len(frame)
    kept = [f for f in features if min_n <= int(frame[f.column].sum()) <= n - min_n]
    # 2^p regressions per fit: beyond MAX_FEATURES flags, touchpoint ratings and comment themes give
    # way, one at a time from whichever of the two has more flags left (both on a tie), so neither
    # crowds the other out; the flag that goes least with the outcome on its own (smallest squared
    # correlation) leaves first.
    y_all = frame["y"].to_numpy(dtype=float)

    def weight(f: Feature) -> float:
        x = frame[f.column].to_numpy(dtype=float)
        return float(np.corrcoef(x, y_all)[0, 1] ** 2) if x.std() > 0 and y_all.std() > 0 else 0.0

    while len(kept) > MAX_FEATURES:
        sizes = {g: sum(f.group == g for f in kept) for g in ("Theme", "Touchpoint")}
        most = max(sizes.values())
        weakest = min((f for f in kept if f.group in sizes and sizes[f.group] == most and most > 0), key=weight,
                      default=kept[-1])
        kept.remove(weakest)
    frame.attrs["left_out"] = [f.label for f in features if f not in kept]
    return frame[["customer_id", "y", *[f.column for f in kept]]].reset_index(drop=True), kept


# ------------------------------------------------------------------------------------------------
# Key drivers
# ------------------------------------------------------------------------------------------------
def key_drivers(backend, *, outcome: str = "nps", start=None, end=None, where=None,
                ces_easy_min: float | None = None, min_n: int = metrics.MIN_N, bootstrap: int = BOOTSTRAP,
                seed: int = SEED, alpha: float = 0.05) -> pd.DataFrame:
    """The experience flags ranked by their share of the explained difference in the outcome:
    ``label``, ``group``, ``importance_pct`` (Shapley share of R², % of the model's R²; the column
    adds up to 100), ``ci_low``/``ci_high`` (bootstrap percentile interval, ``1 − alpha``),
    ``r2_share`` (the same in R² units), ``n_with``/``n_without`` (customers with and without the
    flag), ``mean_with``/``mean_without`` (outcome: NPS points or % churned) and ``effect`` (their
    difference, before adjusting for the other flags).

    ``attrs``: ``r2``, ``n`` (customers), ``outcome``, ``left_out`` (flags too rare or too common to
    judge, or beyond ``MAX_FEATURES``),
    ``bootstrap``. Raises ``TouchpointError`` when there are too few customers or no usable flag."""
    frame, features = customer_frame(backend, outcome=outcome, start=start, end=end, where=where,
                                     ces_easy_min=ces_easy_min, min_n=min_n)
    what = "NPS answers linked to a customer ID" if outcome == "nps" else "customers with churn information"
    if len(frame) < max(2 * min_n, 20):
        raise TouchpointError(f"Key drivers need at least {max(2 * min_n, 20)} {what}; this range has {len(frame)}.",
                              fix="Widen the date range, or import survey answers and tickets that carry customer IDs.")
    if not features:
        raise TouchpointError(f"No touchpoint rating, support experience or comment theme is shared by at least "
                              f"{min_n} of "
                              f"these {len(frame):,} customers, so there is nothing to weigh.",
                              fix="Import CSAT/CES answers with a touchpoint, or support tickets, for the same customers.")
    columns = [f.column for f in features]
    X = frame[columns].to_numpy(dtype=float)
    y = frame["y"].to_numpy(dtype=float)
    # Customers share few combinations of 0/1 flags and outcome (231 among 276,538 at 10 M): each is one
    # row counted as often as it occurs. A bootstrap sample of customers drawn with replacement is then a
    # multinomial draw of those counts (the same distribution, without copying the customers each time).
    distinct = frame[columns + ["y"]].value_counts(sort=False, dropna=False)
    patterns, counts = np.array(distinct.index.tolist(), dtype=float), distinct.to_numpy()
    flags, outcome_of = patterns[:, :-1], patterns[:, -1]
    phi, r2 = shapley_r2(flags, outcome_of, counts)
    rng = np.random.default_rng(seed)
    n = len(y)
    boot = np.empty((bootstrap, len(features)))
    for b in range(bootstrap):
        phi_b, r2_b = shapley_r2(flags, outcome_of, rng.multinomial(n, counts / n))
        boot[b] = 100 * phi_b / r2_b if r2_b > 0 else 0.0
    lo, hi = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0) if bootstrap else (phi * np.nan,) * 2
    rows = []
    for j, f in enumerate(features):
        has = X[:, j] == 1
        rows.append({"driver": f.column, "label": f.label, "group": f.group,
                     "importance_pct": 100 * phi[j] / r2 if r2 > 0 else 0.0, "ci_low": lo[j], "ci_high": hi[j],
                     "r2_share": phi[j], "n_with": int(has.sum()), "n_without": int((~has).sum()),
                     "mean_with": float(y[has].mean()), "mean_without": float(y[~has].mean()),
                     "effect": float(y[has].mean() - y[~has].mean())})
    out = pd.DataFrame(rows).sort_values("importance_pct", ascending=False).reset_index(drop=True)
    out.attrs.update(r2=r2, n=n, outcome=outcome, left_out=frame.attrs.get("left_out", []), bootstrap=bootstrap)
    return out
