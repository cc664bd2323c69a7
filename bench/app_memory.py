"""Peak resident memory of the app process while a browser opens each page.

Starts ``streamlit run app.py`` on the benchmark store (``TOUCHPOINT_DB``), opens every page in
headless Chromium (Playwright, ``/usr/bin/chromium``) one after the other in one browser session,
waits for the page's content, and samples the server process's RSS every 5 ms. Each page's figure is
the peak up to the end of its render: memory the server keeps from earlier pages counts, as in the
real app. The browser's own memory is not counted."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# page url path -> element that shows the page has rendered its data
# The peak is cumulative (one user's session), so the pages that hold the most go last: a light page's
# row then shows what it holds, not what a heavy page before it held.
PAGES = {"overview": '[data-testid="stMetric"]', "trends": '[data-testid="stPlotlyChart"]',
         "segments": '[data-testid="stPlotlyChart"]', "data": '[data-testid="stDataFrame"]',
         "settings": '[data-testid="stNumberInput"]', "decks": '[data-testid="stMain"] h1',
         "journey": '[data-testid="stPlotlyChart"]', "churn": '[data-testid="stPlotlyChart"]',
         "voice": '[data-testid="stPlotlyChart"]'}  # the page's charts: its analysis shown, not only its title
LAUNCH = ["-m", "pages._serve"]  # as `make run` starts the app (see the Makefile)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def _wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer on port {port} within {timeout:.0f} s")


def measure(size: str, db: Path, port: int, log=print, timeout_ms: int = 180_000) -> list[dict]:
    from playwright.sync_api import sync_playwright

    from bench.run import PeakRss

    env = dict(os.environ, TOUCHPOINT_DB=str(db))
    proc = subprocess.Popen([sys.executable, *LAUNCH, "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rows = []
    try:
        _wait_healthy(port, proc)
        sampler = PeakRss(proc.pid, children=True)
        with sampler, sync_playwright() as pw:
            start_rss = sampler.rss()
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for name, selector in PAGES.items():
                t0 = time.perf_counter()
                ok, note = True, ""
                try:
                    page.goto(f"http://localhost:{port}/{name}", wait_until="domcontentloaded")
                    page.wait_for_selector(selector, state="attached", timeout=timeout_ms)
                    # The app marks its root while the page script runs: wait until it has finished.
                    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]',
                                           timeout=timeout_ms)
                    exc_count = page.locator('[data-testid="stException"]').count()
                    if exc_count:
                        ok, note = False, f"{exc_count} exception(s) shown"
                    elif page.locator('[data-testid="stAlertContentError"]').count():
                        # The page stopped with a message instead of its content: its memory figure does
                        # not show it serving the page, so the measure is not met; the note says why.
                        text = " ".join(page.locator('[data-testid="stAlertContentError"]').first.inner_text().split())
                        text = text.removeprefix("error ")  # the alert's icon, read as its name
                        ok, note = False, "shows an error instead of its content: " + text[:150]
                except Exception as exc:  # a page that does not render is a failed measure
                    ok, note = False, f"{type(exc).__name__}: {str(exc)[:160]}"
                seconds = time.perf_counter() - t0
                time.sleep(0.3)
                rows.append({"size": size, "page": name, "peak_rss": sampler.peak, "rss_after": sampler.rss(),
                             "start_rss": start_rss, "render_s": seconds, "ok": ok, "note": note})
                log(f"  app {size} {name:<9} peak {sampler.peak / 2**20:,.0f} MB, rendered in {seconds:.1f} s"
                    + (f" ({note})" if note else ""))
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return rows
