"""Benchmark (not a test): time to analyse N comments — language, sentiment, themes — on this machine.

    python bench/bench_voice.py --n 1000000 [--db /tmp/bench_voice.duckdb]

Comments are made distinct (no caching of repeated texts helps): English phrases of the demo data's
themes and, for a fifth of them, Portuguese sentences, each with a different order number. NPS
follows the tone, with noise. The import runs with the scoring hook off; then ``voice.refresh``
is timed on its own, and its steps are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cx import demo, ingest, voice  # noqa: E402
from cx.store import Store  # noqa: E402

PT_NEG = ["O produto não chegou no prazo", "Veio quebrado e ninguém responde", "Péssimo atendimento, quero reembolso",
          "Comprei dois e recebi apenas um", "Entrega atrasada, muito ruim"]
PT_POS = ["Produto excelente, chegou antes do prazo", "Ótimo vendedor, recomendo", "Entrega rápida e bem embalado",
          "Muito bom, qualidade ótima", "Tudo certo, super recomendo"]


def make_comments(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    neg = [p for main, detail in demo.NEGATIVE_THEMES.values() for p in main]
    pos = [p for phrases in demo.POSITIVE_THEMES.values() for p in phrases]
    tone = rng.random(n) < 0.45  # negative
    pt = rng.random(n) < 0.2
    order = rng.integers(10_000, 99_999_999, n)
    en_text = np.where(tone, np.array(neg, dtype=object)[rng.integers(0, len(neg), n)],
                       np.array(pos, dtype=object)[rng.integers(0, len(pos), n)])
    pt_text = np.where(tone, np.array(PT_NEG, dtype=object)[rng.integers(0, len(PT_NEG), n)],
                       np.array(PT_POS, dtype=object)[rng.integers(0, len(PT_POS), n)])
    text = np.where(pt, pt_text + ". Pedido " + order.astype(str), en_text + " Order " + order.astype(str))
    nps = np.clip(np.where(tone, rng.integers(0, 7, n), rng.integers(7, 11, n)) + rng.integers(-1, 2, n), 0, 10)
    return pd.DataFrame({"response_id": [f"b{i}" for i in range(n)],
                         "submitted_at": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365 * 86400, n), "s"),
                         "nps": nps, "comment": text})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--db", default="/tmp/bench_voice.duckdb")
    args = ap.parse_args()
    Path(args.db).unlink(missing_ok=True)
    store = Store(args.db)
    t = time.perf_counter()
    frame = make_comments(args.n)
    hook = voice.refresh_after_import
    voice.refresh_after_import = lambda *a, **k: None
    try:
        ingest.import_frame(store, "responses", frame, file_name="bench")
    finally:
        voice.refresh_after_import = hook
    print(f"generated and imported {args.n:,} comments in {time.perf_counter() - t:.1f} s")
    steps = {}
    for name in ("detect_languages", "score_comments", "_discover_all"):
        fn = getattr(voice, name)

        def timed(*a, _fn=fn, _name=name, **k):
            s = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                steps[_name] = steps.get(_name, 0.0) + time.perf_counter() - s

        setattr(voice, name, timed)
    t, cpu = time.perf_counter(), time.process_time()
    result = voice.refresh(store, force=True, limited=False)
    total, cpu = time.perf_counter() - t, time.process_time() - cpu
    # CPU time (all threads of this process) is the figure to compare on a shared machine.
    print(f"voice.refresh: {total:.1f} s wall, {cpu:.1f} s CPU for {result.comments:,} comments "
          f"({1e6 * total / result.comments:.0f} µs wall each); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for k, v in steps.items():
        print(f"  {k}: {v:.1f} s")
    for r in result.reports:
        print(f"  {r.language}: {r.method}, {r.comments:,} comments, held-out agreement "
              f"{(r.agreement or 0):.3f}")
    store.close()


if __name__ == "__main__":
    main()
