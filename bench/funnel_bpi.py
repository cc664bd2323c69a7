"""Speed of funnels on the real BPI Challenge 2012 log (262,200 events, 13,087 applicants).

    python bench/funnel_bpi.py [--db /tmp/bpi.duckdb] [--budget 2.0]

Imports the log into the given store if it has no events yet, then times each funnel question
(best of three) and exits 1 if any takes longer than the budget in seconds."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cx import funnel, ingest  # noqa: E402
from cx.funnel import FunnelQuery  # noqa: E402
from cx.store import Store  # noqa: E402

BPI = ROOT.parent / "shared" / "datasets" / "bpi2012" / "bpi_challenge_2012_events.csv.gz"
STEPS = ["A_SUBMITTED", "A_PREACCEPTED", "A_ACCEPTED", "A_FINALIZED", "A_APPROVED"]


def best_of(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="/tmp/bench_bpi.duckdb")
    parser.add_argument("--budget", type=float, default=2.0)
    args = parser.parse_args()
    store = Store(args.db)
    if store.row_counts()["events"] == 0:
        ingest.import_file(store, BPI)
    cases = {
        f"{mode}, 14 days": (lambda m=mode: funnel.compute_funnel(store, FunnelQuery.build(STEPS, mode=m)))
        for mode in funnel.MODES
    }
    q = FunnelQuery.build(STEPS)
    cases["weekly cohorts"] = lambda: funnel.conversion_trend(store, q, "week")
    cases["dropped before step 2"] = lambda: funnel.dropped_customers(store, q, 2)
    cases["time to step 5"] = lambda: funnel.time_to_convert(store, q, 5)
    cases["step catalog"] = lambda: funnel.step_catalog(store)
    slow = False
    for name, fn in cases.items():
        seconds = best_of(fn)
        slow |= seconds > args.budget
        print(f"{name:28s} {seconds:6.3f} s{'  OVER BUDGET' if seconds > args.budget else ''}")
    store.close()
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
