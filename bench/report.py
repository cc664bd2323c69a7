"""bench/RESULTS.md from the results dictionary: tables a person reads, budgets with pass/fail."""

from __future__ import annotations


def _t(s) -> str:
    if s is None:
        return "–"
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def _mb(b) -> str:
    return "–" if b is None else f"{b / 2**20:,.0f} MB"


def _ok(flag: bool) -> str:
    return "pass" if flag else "**MISS**"


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = ["# Touchpoint benchmark results", "",
             "Written by `make bench` (`python -m bench.run`); every figure is the median of "
             f"{r['repeats']} runs unless said otherwise. Budgets are the issue's (2 cores, 10 M responses).", "",
             f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['ram_bytes'] / 2**30:.1f} GB RAM, {m['platform']}; "
             f"Python {m['python']}, DuckDB {m['duckdb']}, Ibis {m['ibis']}, pandas {m['pandas']}, "
             f"Streamlit {m['streamlit']}. Load average at start {', '.join(f'{x:.2f}' for x in m['load_average'])} "
             f"(the machine is shared), niceness {m['niceness']}. Run {m['when']}.", "",
             *[f"Re-measured later: {', '.join(g['sections'])} at {', '.join(g['sizes'])}, median of {g['repeats']} "
               f"runs, on {g['machine']['when']} (load average {', '.join(f'{x:.2f}' for x in g['machine']['load_average'])}, "
               f"niceness {g['machine']['niceness']}); those rows replace the first run's." + "\n"
               for g in r.get("merged", [])],
             "Sizes (rows): " + "; ".join(f"**{s}**: " + ", ".join(f"{n:,} {t}" for t, n in rows.items())
                                           for s, rows in r["sizes"].items()) + ".", ""]
    from bench.run import budget_size

    at = budget_size(r)
    budgets = r.get("budgets", [])
    missed = [b for b in budgets if not b["pass"]]
    lines += [f"Page and pandas budgets are checked at **{at}** (the issue sets them at 10 M responses; smaller sizes "
              "show how cost grows, their pass/miss marks are for reference); import at the size its files were "
              "made from; app memory at the size it was measured.", "",
              f"**Budgets: {len(budgets) - len(missed)} of {len(budgets)} met.**"
              + (" Missed: " + "; ".join(f"{b['what']} at {b['size']}" for b in missed[:12])
                 + (" …" if len(missed) > 12 else "") + "." if missed else ""), ""]
    if r.get("pages"):
        lines += ["## Pages", "",
                  "The data work of each page's first render, sidebar included (`bench/pages.py`). *Cold*: fresh "
                  "store connection and empty caches; *cached*: the app's `st.cache_data` hit (budget ≤ 50 ms); "
                  "*warm*: the page's own queries with its caches cleared (the shared sidebar's already filled) and "
                  "DuckDB's buffers warm; *hand SQL*: the same numbers from hand-written "
                  "DuckDB SQL, *ratio* = warm ÷ hand (budget ≤ 1.3×). Default filter: last 90 days; narrow: last "
                  "30 days, app channel, Enterprise.", "",
                  "| size | page | filter | cold (≤ 1 s) | cached (≤ 50 ms) | warm | hand SQL | ratio (≤ 1.3×) | same numbers |",
                  "|---|---|---|---:|---:|---:|---:|---:|---|"]
        for p in r["pages"]:
            cold_ok = p["cold_s"] <= 1.0
            cached_ok = p["cached_s"] <= 0.05
            ratio = "–" if p.get("hand_ratio") is None else f"{p['hand_ratio']:.2f}× {_ok(p['hand_ratio'] <= 1.3)}"
            lines.append(f"| {p['size']} | {p['page']} | {p['filter']} | {_t(p['cold_s'])} {_ok(cold_ok)} | "
                         f"{_t(p['cached_s'])} {_ok(cached_ok)} | {_t(p['warm_s'])} | {_t(p.get('hand_s'))} | {ratio} | "
                         f"{p['check']} |")
        lines.append("")
    if r.get("import"):
        lines += ["## Import", "",
                  "One file of survey responses through `cx.ingest.import_file` (sniffing, mapping, validation, "
                  "upsert with history, one transaction) into a fresh store, against the baseline reading the same "
                  "file into a table (DuckDB `read_csv`/`read_parquet`; for XLSX, which DuckDB cannot read offline, "
                  "pandas `read_excel` with openpyxl). Ratio = baseline time ÷ import time (budget ≥ 0.8×; XLSX "
                  "reported only). Import time ends when the rows are committed; the analysis of the comments "
                  "(language, sentiment, themes) that the import then runs is timed apart in the last column.", "",
                  "| size | format | rows | import | rows/s | baseline | baseline time | ratio | rejected | then comment analysis |",
                  "|---|---|---:|---:|---:|---|---:|---:|---:|---:|"]
        for i in r["import"]:
            ratio = "–" if i.get("ratio") is None else f"{i['ratio']:.2f}×" + (
                "" if i["format"] == "xlsx" else f" {_ok(i['ratio'] >= 0.8)}")
            lines.append(f"| {i['size']} | {i['format']} | {i['rows']:,} | {_t(i['ingest_s'])} | {i['rows_per_s']:,.0f} | "
                         f"{i['baseline']} | {_t(i['raw_s'])} | {ratio} | {i['rejected']:,} | {_t(i.get('analysis_s'))} |")
        lines.append("")
    if r.get("pandas"):
        lines += ["## Against plain pandas", "",
                  "NPS, CSAT, CES, responses, median first-response and resolution time, revenue and AOV, overall and "
                  "month by month (`bench/baseline.py`). pandas: read the Parquet exports (needed columns only) and "
                  "compute; Touchpoint: the metric layer on its store. Each in a fresh process; memory is the process's "
                  "peak RSS, interpreter and libraries included. Budgets: ≥ 5× faster, ≤ ⅓ of the memory.", "",
                  "| size | pandas time | pandas peak | Touchpoint time | Touchpoint peak | faster (≥ 5×) | memory (≤ 0.33) | same numbers |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for p in r["pandas"]:
            lines.append(f"| {p['size']} | {_t(p['pandas_s'])} | {_mb(p['pandas_peak_rss'])} | {_t(p['touchpoint_s'])} | "
                         f"{_mb(p['touchpoint_peak_rss'])} | {p['speedup']:.1f}× {_ok(p['speedup'] >= 5)} | "
                         f"{p['memory_ratio']:.2f} {_ok(p['memory_ratio'] <= 1 / 3)} | {p['check']} |")
        lines.append("")
    if r.get("app"):
        lines += ["## App memory", "",
                  "Peak resident memory of the Streamlit server process while headless Chromium opens each page in "
                  "turn (`bench/app_memory.py`); cumulative, as in one user's session. Budget < 2 GB.", "",
                  "| size | page | peak RSS (< 2 GB) | render (browser) | note |", "|---|---|---:|---:|---|"]
        for a in r["app"]:
            ok = a["peak_rss"] < 2 * 1024 ** 3 and a.get("ok", True)
            lines.append(f"| {a['size']} | {a['page']} | {_mb(a['peak_rss'])} {_ok(ok)} | {_t(a['render_s'])} | "
                         f"{a.get('note') or ''} |")
        lines.append("")
    if r.get("analyses"):
        lines += ["## Analyses", "",
                  "The Journey, Churn & retention and Voice pages' analyses through their modules' public entry points, "
                  "with the pages' default arguments (`bench/analyses.py`). The issue sets no budget for them: "
                  "reported figures only, not checked.", "",
                  "| size | analysis | time | status |", "|---|---|---:|---|"]
        for a in r["analyses"]:
            lines.append(f"| {a['size']} | {a['label']} | {_t(a.get('seconds'))} | {a['status']} |")
        lines.append("")
    if r.get("notes"):
        lines += ["## Notes (bench/NOTES.md)", "", *r["notes"], ""]
    return "\n".join(lines)
