"""Real-browser tests: the app served by Streamlit on a free port, driven by Playwright in Debian's
Chromium. Screenshots land in tests/screenshots/ (git-ignored) for people to look at."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "tests" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# The same launcher as `make run` (see the Makefile): deep links work from the first request.
LAUNCH = ("import sys; from streamlit.runtime.pages_manager import PagesManager; "
          "PagesManager.uses_pages_directory = False; from streamlit.web.cli import main; sys.exit(main())")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on an empty store, started with the demo data off so tests see exactly what they import."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    db = tmp_path_factory.mktemp("browser") / "touchpoint.duckdb"
    port = _free_port()
    env = {**os.environ, "TOUCHPOINT_DB": str(db)}
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + proc.stdout.read().decode(errors="replace")[-2000:])
    yield {"url": url, "db": db}
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    context.close()


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.inner_text("body")[:2000]
    assert "Traceback" not in page.inner_text("body")


def test_upload_through_the_data_page_imports_the_file(server, page, tmp_path):
    # Four orders, hand-written; o4's amount is text and is rejected.
    export = tmp_path / "shop-orders.csv"
    export.write_text(
        "Order ID;Customer ID;Order Date;Total\n"
        "o1;c1;2024-05-01;10,50\n"
        "o2;c2;2024-05-02;20,00\n"
        "o3;c1;2024-05-03;5,25\n"
        "o4;c3;2024-05-04;ten\n",
        encoding="utf-8",
    )
    page.goto(server["url"] + "/data")
    page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(str(export))
    page.get_by_text("semicolon-separated").wait_for(timeout=30_000)
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=30_000)
    _no_exception(page)
    _shot(page, "data-upload-mapping")
    page.get_by_role("button", name="Import shop-orders.csv").click()
    page.get_by_text("Imported shop-orders.csv as orders").wait_for(timeout=30_000)
    page.get_by_text("row was rejected").wait_for(timeout=30_000)
    _no_exception(page)
    # The import result is drawn while the page finishes its rerun: wait for its tiles, not a timer.
    page.get_by_test_id("stMetricLabel").filter(has_text="Added").wait_for(timeout=30_000)
    metrics = dict(zip(page.get_by_test_id("stMetricLabel").all_inner_texts(),
                       page.get_by_test_id("stMetricValue").all_inner_texts()))
    assert metrics["Added"] == "3" and metrics["Rejected"] == "1" and metrics["Rows read"] == "4", metrics
    body = page.inner_text("body")
    assert "Data in the store" in body  # app.py's frame ran, not the page alone
    _shot(page, "data-import-result")

    page.get_by_role("tab", name="Batches").click()
    page.get_by_role("button", name="Remove batch…").wait_for(timeout=30_000)
    page.locator('[data-testid="stDataFrame"] canvas').first.wait_for(timeout=30_000)
    _no_exception(page)
    _shot(page, "data-batches")
