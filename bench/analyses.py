"""Analyses other modules add, each measured when its module exists: a registry of adapters.

Each entry names the module and the functions that may implement the analysis; ``run_one`` imports
the module, finds the first function that exists, and calls it with the arguments it asks for by
name (``backend``/``store``, ``steps``, ``start``/``end``, ``texts``…). A missing module, function
or an interface the adapter cannot satisfy is reported as "not available: …", never as a failure,
so the analyses plug in as their modules land on main."""

from __future__ import annotations

import importlib
import inspect
import statistics
import time
from typing import Any, Callable

FUNNEL_STEPS = ["Visited site", "Viewed product", "Added to cart", "Checkout started", "Order placed"]
SENTIMENT_SAMPLE = 100_000  # comments scored per run (the comment column at 10 M holds ~4.9 M)

# name -> (module, candidate function names, label)
REGISTRY: dict[str, tuple[str, tuple[str, ...], str]] = {
    "funnel": ("cx.funnel", ("funnel", "compute_funnel", "funnel_table", "query_funnel", "conversion_funnel"),
               "Funnel, 5 steps"),
    "cohort_retention": ("cx.retention", ("cohort_retention", "retention_cohorts", "cohort_table", "cohorts"),
                         "Cohort retention (monthly)"),
    "kaplan_meier": ("cx.retention", ("kaplan_meier", "survival_curve", "km_curve", "survival"),
                     "Kaplan–Meier survival"),
    "bg_nbd": ("cx.clv", ("fit_bgnbd", "fit_bg_nbd", "bg_nbd", "bgnbd_fit", "fit_bgnbd_model", "predictive_clv"),
               "BG/NBD fit"),
    "sentiment": ("cx.text", ("score_sentiment", "sentiment_scores", "sentiment", "score_texts", "score"),
                  f"Sentiment scoring ({SENTIMENT_SAMPLE:,} comments)"),
}


def _arguments(fn: Callable, context: dict[str, Any]) -> tuple[list, dict]:
    """Positional and keyword arguments for ``fn`` from ``context`` by parameter name."""
    aliases = {"backend": ("backend", "con", "b", "engine"), "store": ("store", "s", "db"),
               "steps": ("steps", "step_names", "funnel_steps"), "texts": ("texts", "comments", "text", "docs"),
               "grain": ("grain", "period", "freq"), "start": ("start",), "end": ("end",)}
    args, kwargs = [], {}
    for p in inspect.signature(fn).parameters.values():
        value, found = None, False
        for key, names in aliases.items():
            if p.name in names and key in context:
                value, found = context[key], True
                break
        if not found:
            if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                if not args and not kwargs:  # an unnamed first argument: the store's backend
                    value, found = context["backend"], True
                else:
                    raise TypeError(f"needs {p.name!r}, which the benchmark does not know how to give")
            else:
                continue
        if p.kind == p.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[p.name] = value
    return args, kwargs


def run_one(name: str, db: str, repeats: int) -> dict:
    """Time one analysis on the store ``db``: median seconds over ``repeats`` runs, or why it is not available."""
    module_name, candidates, label = REGISTRY[name]
    base = {"name": name, "label": label, "module": module_name}
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return {**base, "status": f"not available: {module_name} is not on this branch yet", "seconds": None}
        raise
    fn = next((getattr(module, c) for c in candidates if callable(getattr(module, c, None))), None)
    if fn is None:
        return {**base, "status": f"not available: {module_name} has none of {', '.join(candidates)}", "seconds": None}
    from cx.engine import backend_for
    from cx.store import Store

    store = Store(db)
    try:
        context: dict[str, Any] = {"store": store, "backend": backend_for(store), "steps": FUNNEL_STEPS,
                                   "grain": "month"}
        if name == "sentiment":
            with store.cursor() as cur:
                context["texts"] = [r[0] for r in cur.execute(
                    "SELECT comment FROM responses WHERE comment IS NOT NULL LIMIT ?", [SENTIMENT_SAMPLE]).fetchall()]
        try:
            args, kwargs = _arguments(fn, context)
        except (TypeError, ValueError) as exc:
            return {**base, "status": f"not available: {module_name}.{fn.__name__}: {exc}", "seconds": None}
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(*args, **kwargs)
            times.append(time.perf_counter() - t0)
        return {**base, "status": f"ok ({module_name}.{fn.__name__})", "seconds": statistics.median(times)}
    except Exception as exc:  # an analysis that fails is reported, not hidden
        return {**base, "status": f"error: {type(exc).__name__}: {str(exc)[:200]}", "seconds": None}
    finally:
        store.close()
