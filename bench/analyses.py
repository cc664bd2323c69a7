"""The analyses the Journey, Churn & retention and Voice pages run, each timed through its module's
public entry point with the arguments the page gives it (default filters, whole history).

- funnel: ``cx.funnel.compute_funnel`` on the demo's five purchase steps (sequential, 14-day window);
- cohort retention: ``cx.retention.cohort_retention`` by month;
- Kaplan–Meier: ``cx.retention.survival`` split by NPS category (curves, medians, log-rank test);
- BG/NBD: ``cx.clv.predict_clv`` (the RFM summary, the BG/NBD and Gamma-Gamma fits, 12-month value);
- sentiment: language detection and ``cx.voice.score_comments`` on up to ``SENTIMENT_SAMPLE``
  comments, as ``cx.voice.refresh`` scores them (without its theme discovery and writes).

Only a module that is missing reports "not available"; an analysis that raises reports "error: …"."""

from __future__ import annotations

import importlib
import math
import statistics
import time
from typing import Any, Callable

FUNNEL_STEPS = ["Visited site", "Viewed product", "Added to cart", "Checkout started", "Order placed"]
KM_SPLIT = "nps_category"
SENTIMENT_SAMPLE = 100_000  # comments scored per run (the comment columns at 10 M hold ~5 M)


def _funnel(store, module) -> tuple[Callable[[], Any], Callable[[Any], str]]:
    q = module.FunnelQuery.build(FUNNEL_STEPS)

    def detail(t):
        entered, placed = int(t["customers"].iloc[0]), int(t["customers"].iloc[-1])
        return f"{entered:,} entered, {placed:,} placed an order"

    def run():
        # The app keeps the per-customer matching per data version (cx.funnel._MATCHED); every run here
        # computes it, as the first funnel after an import does (repeats were cache hits: 0.5 s at 10 M).
        with module._MATCHED_LOCK:
            module._MATCHED.clear()
        return module.compute_funnel(store, q)

    return run, detail


def _cohorts(store, module):
    def detail(t):
        return f"{t['cohort'].nunique():,} cohorts, {len(t):,} cells"

    return (lambda: module.cohort_retention(store, grain="month")), detail


def _survival(store, module):
    def detail(s):
        p = s.test.p_value if s.test is not None else math.nan
        return f"{len(s.summary)} groups, {int(s.summary['customers'].sum()):,} customers, log-rank p = {p:.2g}"

    return (lambda: module.survival(store, by=KM_SPLIT)), detail


def _clv(store, module):
    def detail(r):
        return f"{len(r.customers):,} customers; r = {r.bgnbd.r:.3g}, α = {r.bgnbd.alpha:.3g}"

    return (lambda: module.predict_clv(store, unit="week", horizon_months=12, discount=0.01)), detail


def _sentiment(store, module):
    with store.cursor() as cur:
        frame = cur.execute(f"SELECT * FROM ({module._all_comments_sql()}) LIMIT ?", [SENTIMENT_SAMPLE]).df()
    texts, hints, hashes = frame["text"].tolist(), frame["hint"].tolist(), frame["text_hash"].tolist()
    signs = [None if s is None or (isinstance(s, float) and math.isnan(s)) else s
             for s in frame["sign"].astype("float64").tolist()]

    def run():
        langs = module.detect_languages(texts, hints)
        return module.score_comments(texts, signs, langs, hashes)

    def detail(out):
        scored, reports = out
        return f"{len(scored):,} comments, {int(scored['sentiment_label'].notna().sum()):,} scored, " + \
            ", ".join(f"{r.language}: {r.method}" for r in reports)

    return run, detail


# name -> (module, label, setup(store, module) -> (run, describe the result))
REGISTRY: dict[str, tuple[str, str, Callable]] = {
    "funnel": ("cx.funnel", "Funnel, 5 steps", _funnel),
    "cohort_retention": ("cx.retention", "Cohort retention (monthly)", _cohorts),
    "kaplan_meier": ("cx.retention", "Kaplan–Meier survival by NPS category", _survival),
    "bg_nbd": ("cx.clv", "BG/NBD + Gamma-Gamma fit, 12-month CLV", _clv),
    "sentiment": ("cx.voice", f"Sentiment scoring (up to {SENTIMENT_SAMPLE:,} comments)", _sentiment),
}

ENTRY_POINTS = {"funnel": "compute_funnel", "cohort_retention": "cohort_retention", "kaplan_meier": "survival",
                "bg_nbd": "predict_clv", "sentiment": "score_comments"}


def run_one(name: str, db: str, repeats: int) -> dict:
    """Time one analysis on the store ``db``: median seconds over ``repeats`` runs, or why it is not available."""
    module_name, label, setup = REGISTRY[name]
    base = {"name": name, "label": label, "module": module_name}
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return {**base, "status": f"not available: {module_name} is not on this branch", "seconds": None}
        raise
    from cx.store import Store

    store = Store(db)
    try:
        run, describe = setup(store, module)
        times, out = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - t0)
        return {**base, "status": f"ok ({module_name}.{ENTRY_POINTS[name]}: {describe(out)})",
                "seconds": statistics.median(times)}
    except Exception as exc:  # an analysis that fails is reported, not hidden
        return {**base, "status": f"error: {type(exc).__name__}: {str(exc)[:200]}", "seconds": None}
    finally:
        store.close()
