"""The benchmark harness runs end to end at a toy size and writes complete results (no timing asserted)."""

from __future__ import annotations

import json

import pytest

from bench import analyses, generate, pages, report, run


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cache = tmp_path_factory.mktemp("bench-cache")
    out = tmp_path_factory.mktemp("bench-out")
    code = run.main(["--sizes", "toy", "--repeats", "1", "--sections", "pages,analyses", "--cache", str(cache),
                     "--out", str(out)])
    data = json.loads((out / "results.json").read_text())
    data["_exit"] = code
    data["_md"] = (out / "RESULTS.md").read_text()
    data["_cache"] = cache
    return data


def test_generated_store_has_the_sizes_rows_and_the_demo_nps(results):
    import duckdb

    con = duckdb.connect(str(generate.store_path("toy", results["_cache"])), read_only=True)
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in generate.SIZES["toy"]}
    # Every seed row of a small size is a distinct demo row, so the demo's NPS mix carries over.
    nps = con.execute("SELECT 100 * avg(CASE WHEN nps >= 9 THEN 1 WHEN nps <= 6 THEN -1 ELSE 0 END) FROM responses "
                      "WHERE nps IS NOT NULL").fetchone()[0]
    con.close()
    assert counts == generate.SIZES["toy"]
    assert 15 < nps < 32  # the demo's +23.5, on a 2,000-row sample


def test_every_page_and_filter_measured_with_the_same_numbers_as_hand_sql(results):
    rows = results["pages"]
    assert {(r["page"], r["filter"]) for r in rows} == {(p, f) for p in pages.PAGES for f in pages.FILTERS}
    for r in rows:
        assert r["size"] == "toy"
        assert r["cold_s"] > 0 and r["cached_s"] > 0 and r["warm_s"] > 0
        if r["page"] in ("overview", "trends", "segments"):
            assert r["check"] == "same", r
            assert r["hand_ratio"] == pytest.approx(r["warm_s"] / r["hand_s"])
        else:
            assert r["hand_s"] is None and r["check"] == "no reference"


def test_every_analysis_runs_through_its_modules_entry_point(results):
    names = {a["name"]: a for a in results["analyses"]}
    assert set(names) == set(analyses.REGISTRY) == {"funnel", "cohort_retention", "kaplan_meier", "bg_nbd", "sentiment"}
    for name, a in names.items():
        assert a["size"] == "toy"
        assert a["status"].startswith(f"ok ({analyses.REGISTRY[name][0]}.{analyses.ENTRY_POINTS[name]}: "), a
        assert a["seconds"] > 0
    # What each analysis found on the toy store (2,000 responses, 5,000 customers), so a call that
    # silently does nothing cannot pass.
    assert "5 steps" in names["funnel"]["label"] and " entered, " in names["funnel"]["status"]
    assert "4 groups, 5,000 customers" in names["kaplan_meier"]["status"]
    assert " cohorts, " in names["cohort_retention"]["status"]
    assert "en: learned" in names["sentiment"]["status"]


def test_a_missing_analysis_module_is_reported_not_failed(monkeypatch):
    monkeypatch.setitem(analyses.REGISTRY, "funnel", ("cx.not_a_module", "Funnel, 5 steps", analyses._funnel))
    r = analyses.run_one("funnel", "unused.duckdb", 1)
    assert r["status"] == "not available: cx.not_a_module is not on this branch" and r["seconds"] is None


def test_budgets_and_report(results):
    machine = results["machine"]
    assert machine["cpus"] >= 1 and machine["ram_bytes"] > 0 and machine["duckdb"]
    whats = [b["what"] for b in results["budgets"]]
    assert "overview page (default filter): cold" in whats
    assert "trends page (narrow filter): vs hand-written SQL" in whats
    assert results["passed"] == all(b["pass"] for b in results["budgets"])
    assert results["_exit"] == (0 if results["passed"] else 1)
    md = results["_md"]
    assert "## Pages" in md and "## Analyses" in md and f"{machine['cpus']} CPUs" in md
    assert md == report.markdown({k: v for k, v in results.items() if not k.startswith("_")})


def test_budget_rules():
    b = run.budgets({
        "pages": [{"size": "10m", "page": "trends", "filter": "default", "cold_s": 0.9, "cached_s": 0.06,
                   "warm_s": 0.2, "hand_s": 0.1, "hand_ratio": 2.0, "check": "same"}],
        "import": [{"size": "1m", "format": "csv", "ratio": 0.85, "rejected": 0, "baseline": "DuckDB read_csv"},
                   {"size": "100k", "format": "xlsx", "ratio": 0.1, "rejected": 0, "baseline": "pandas.read_excel"}],
        "pandas": [{"size": "10m", "speedup": 6.0, "memory_ratio": 0.5, "check": "same"}],
        "app": [{"size": "10m", "page": "overview", "peak_rss": 3 * 2**30, "ok": True}],
    })
    verdict = {x["what"]: x["pass"] for x in b}
    assert verdict == {"trends page (default filter): cold": True, "trends page (default filter): cached": False,
                       "trends page (default filter): vs hand-written SQL": False,
                       "import csv vs DuckDB read_csv": True,
                       "headline metrics: faster than pandas": True, "headline metrics: peak memory vs pandas": False,
                       "app process serving overview": False}


def test_merge_replaces_only_the_sections_and_sizes_measured(tmp_path):
    machine = {"when": "2026-11-23T13:00:00+00:00", "load_average": [4.0, 5.0, 6.0], "niceness": 10}
    old = {"machine": {"when": "first"}, "sizes": {"100k": {}, "1m": {}}, "repeats": 3, "sections": ["pages", "analyses"],
           "pages": [{"size": "1m", "page": "overview"}],
           "analyses": [{"size": "100k", "name": "funnel", "seconds": None}, {"size": "1m", "name": "funnel", "seconds": None}]}
    (tmp_path / "results.json").write_text(json.dumps(old))
    new = {"machine": machine, "sizes": {"100k": {}}, "repeats": 1, "sections": ["analyses"], "pages": [],
           "analyses": [{"size": "100k", "name": "funnel", "seconds": 0.5}]}
    m = run.merge(tmp_path / "results.json", new)
    assert m["pages"] == old["pages"] and m["machine"] == {"when": "first"}
    assert m["analyses"] == [{"size": "1m", "name": "funnel", "seconds": None}, {"size": "100k", "name": "funnel", "seconds": 0.5}]
    assert m["sizes"] == {"100k": {}, "1m": {}}
    assert m["merged"] == [{"sections": ["analyses"], "sizes": ["100k"], "repeats": 1, "machine": machine}]
    assert run.merge(tmp_path / "absent.json", new) is new
