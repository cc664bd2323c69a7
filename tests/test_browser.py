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
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "tests" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# The same launcher as `make run` (see the Makefile): deep links work from the first request.
LAUNCH = ["-m", "pages._serve"]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on an empty store, started with the demo data off so tests see exactly what they import."""
    with serve_app(tmp_path_factory.mktemp("browser") / "touchpoint.duckdb") as served:
        yield served


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """The app on the demo data (loaded by the command line before the server starts)."""
    db = tmp_path_factory.mktemp("browser-demo") / "touchpoint.duckdb"
    if Path(CHROMIUM).exists():
        subprocess.run([sys.executable, "-m", "cx", "demo", "--db", str(db)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, timeout=600)
    with serve_app(db) as served:
        yield served


@contextmanager
def serve_app(db: Path, *args: str, plain: bool = False):
    """The app on ``db`` served on a free port until the block ends: ``{"url", "db"}``. ``args`` go to
    Streamlit; ``plain`` starts it as a user would by hand (``streamlit run``) instead of through the
    launcher ``make run`` uses. The server's output goes to ``server.log`` beside the store."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    port = _free_port()
    env = {**os.environ, "TOUCHPOINT_DB": str(db)}
    start = ["-m", "streamlit"] if plain else LAUNCH
    log = open(db.parent / "server.log", "wb")  # a file, not a pipe nobody drains
    proc = subprocess.Popen(
        [sys.executable, *start, "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", *args],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
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
        log.close()
        pytest.fail("streamlit did not start: " + (db.parent / "server.log").read_text(errors="replace")[-2000:])
    try:
        yield {"url": url, "db": db}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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
    page.get_by_test_id("stMetricLabel").get_by_text("Rejected").wait_for(timeout=30_000)
    page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=60_000)  # the run has ended
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


# -- on the demo data: every page, shared links, presentation mode, exports ------------------------
def _wait_page(page) -> None:
    """Until the page has run to its end: an analysis page then shows the share box (drawn after the
    page) and every chart it sent has its SVG; other pages show their title and no running status."""
    page.locator('[data-testid="stMain"] h1').first.wait_for(timeout=90_000)
    if page.locator('[data-testid="stSidebar"]').get_by_text("Filters", exact=True).count():
        page.locator('[data-testid="stSidebar"] [data-testid="stCode"]').wait_for(timeout=120_000)
        charts = page.locator('[data-testid="stPlotlyChart"]')
        charts.first.wait_for(timeout=90_000)  # Plotly's component loads lazily, after the share box
        charts.first.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
        for i in range(charts.count()):  # charts in tabs not shown are drawn but hidden
            charts.nth(i).locator(".js-plotly-plot .main-svg").first.wait_for(state="attached", timeout=60_000)
    else:
        page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=120_000)


def _kpis(page) -> dict[str, str]:
    return dict(zip(page.get_by_test_id("stMetricLabel").all_inner_texts(),
                    page.get_by_test_id("stMetricValue").all_inner_texts()))


def _nav_paths(page, base: str) -> list[str]:
    """Every page app.py registers, as the sidebar navigation lists them (new pages are picked up)."""
    page.goto(base)
    page.get_by_test_id("stSidebarNav").wait_for(timeout=90_000)
    hrefs = page.get_by_test_id("stSidebarNav").locator("a").evaluate_all("els => els.map(e => e.href)")
    return list(dict.fromkeys(hrefs))


def test_every_registered_page_loads_with_its_charts_drawn(demo_server, page):
    paths = _nav_paths(page, demo_server["url"])
    assert len(paths) >= 6, paths  # Overview, Trends, Segments, Data, Settings, Decks at least
    for href in paths:
        page.goto(href)
        _wait_page(page)
        _no_exception(page)
        _shot(page, "page-" + (urlsplit(href).path.strip("/") or "home"))


def test_a_shared_link_opened_in_a_fresh_browser_shows_the_same_numbers(demo_server, browser):
    first = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = first.new_page()
    pg.goto(demo_server["url"] + "/?range=last_365&f.channel=app")
    _wait_page(pg)
    filtered = _kpis(pg)
    link = pg.locator('[data-testid="stSidebar"] [data-testid="stCode"]').inner_text().strip()
    assert "f.channel=app" in link and "range=last_365" in link, link
    pg.goto(demo_server["url"] + "/?range=last_365")
    _wait_page(pg)
    assert _kpis(pg)["NPS"] != filtered["NPS"]  # the filter matters, so equal numbers below mean something
    first.close()

    fresh = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = fresh.new_page()
    pg.goto(link)
    _wait_page(pg)
    _no_exception(pg)
    assert _kpis(pg) == filtered
    assert pg.get_by_test_id("stMultiSelect").first.get_by_text("app", exact=True).count() == 1
    _shot(pg, "shared-link-fresh-context")

    trends = demo_server["url"] + "/trends?metric=csat&grain=quarter&f.channel=web"
    pg.goto(trends)
    _wait_page(pg)
    link = pg.locator('[data-testid="stSidebar"] [data-testid="stCode"]').inner_text().strip()
    assert "metric=csat" in link and "grain=quarter" in link and "f.channel=web" in link
    fresh.close()


def _navigate(page, name: str) -> str:
    """Click ``name`` in the sidebar navigation, wait for the page, and return its share link."""
    page.get_by_test_id("stSidebarNav").locator("a", has_text=name).click()
    page.get_by_role("heading", name=name).first.wait_for(timeout=90_000)
    _wait_page(page)
    code = page.locator('[data-testid="stSidebar"] [data-testid="stCode"]')
    return code.inner_text().strip() if code.count() else ""


def test_filters_and_page_options_are_still_set_after_a_visit_to_another_page(demo_server, page):
    """Streamlit forgets a widget's value after a run that does not draw it; the Data page draws no
    filters and the Overview none of Trends' options. The analyst's choices must still be set on the way back."""
    page.goto(demo_server["url"] + "/?range=all&f.channel=app")
    _wait_page(page)
    chosen = _kpis(page)
    _navigate(page, "Data")
    link = _navigate(page, "Overview")
    assert "range=all" in link and "f.channel=app" in link, link
    assert _kpis(page) == chosen
    # A page's own options too: Trends by CSAT per quarter, to the Overview and back.
    page.goto(demo_server["url"] + "/trends?metric=csat&grain=quarter")
    _wait_page(page)
    _navigate(page, "Overview")
    link = _navigate(page, "Trends")
    assert "metric=csat" in link and "grain=quarter" in link, link


@pytest.mark.parametrize("size", [(1920, 1080), (1366, 768)])
def test_presentation_mode_hides_the_chrome_and_fits_the_screen(demo_server, browser, size):
    ctx = browser.new_context(viewport={"width": size[0], "height": size[1]})
    pg = ctx.new_page()
    pg.goto(demo_server["url"] + "/trends?metric=nps&present=1")
    pg.locator(".st-key-present_bar").wait_for(timeout=90_000)
    pg.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(timeout=90_000)
    _no_exception(pg)
    assert not pg.get_by_test_id("stSidebar").is_visible()
    assert not pg.get_by_test_id("stHeader").is_visible()
    assert not pg.get_by_test_id("stSelectbox").first.is_visible()  # page controls hidden too
    box = pg.locator('[data-testid="stPlotlyChart"]').first.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= size[0] and box["y"] + box["height"] <= size[1] + 40
    title_px = pg.locator('[data-testid="stMain"] h1').first.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert title_px >= 40  # large type
    _shot(pg, f"present-{size[0]}x{size[1]}")
    pg.get_by_role("button", name="Exit presentation").click()
    pg.get_by_test_id("stSidebar").wait_for(state="visible", timeout=60_000)
    assert "present" not in pg.url
    ctx.close()


def _add_view(pg, deck: str, title: str, new: bool) -> None:
    pg.get_by_role("button", name="Add to deck").click()
    if new:
        pg.get_by_test_id("stPopoverBody").get_by_test_id("stSelectbox").click()
        pg.get_by_role("option", name="➕ New deck…").click()
        pg.get_by_label("New deck name").fill(deck)
    pg.get_by_label("Title of this view").fill(title)
    pg.get_by_role("button", name="Add this view").click()
    pg.get_by_text("Added as view").wait_for(timeout=60_000)
    pg.keyboard.press("Escape")


def _download(pg, button_name: str, tmp_path: Path) -> Path:
    button = pg.get_by_role("button", name=button_name)
    try:
        button.wait_for(timeout=240_000)
    except Exception:
        _shot(pg, "failed-download")
        raise
    with pg.expect_download(timeout=240_000) as d:
        button.click(timeout=60_000)
    target = tmp_path / d.value.suggested_filename
    d.value.save_as(target)
    return target


def test_a_deck_is_built_presented_with_the_arrow_keys_and_exported(demo_server, page, tmp_path):
    from pptx import Presentation
    from pypdf import PdfReader

    page.goto(demo_server["url"] + "/trends?metric=nps&grain=month")
    _wait_page(page)
    # An image of the chart, drawn on demand.
    page.get_by_role("button", name="Image").first.click()
    page.get_by_role("button", name="Prepare image").click()
    png = _download(page, "Download PNG", tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    page.keyboard.press("Escape")
    _add_view(page, "Browser deck", "NPS month by month", new=True)
    page.goto(demo_server["url"] + "/segments?metric=csat&rows=region")
    _wait_page(page)
    _add_view(page, "Browser deck", "CSAT by region", new=False)
    # The page itself as slides.
    page.get_by_role("button", name="Export slides").click()
    page.get_by_role("button", name="PPTX").click()
    one = _download(page, "Download PPTX", tmp_path)
    assert len(Presentation(str(one)).slides) == 2  # title + this page
    page.keyboard.press("Escape")

    page.goto(demo_server["url"] + "/decks?deck=Browser+deck")
    page.get_by_text("2 views").wait_for(timeout=60_000)
    _no_exception(page)
    _shot(page, "decks")
    page.get_by_role("button", name="Present").first.click()
    page.locator(".st-key-present_bar").get_by_text("1 / 2").wait_for(timeout=90_000)
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(timeout=90_000)
    assert "metric=nps" in page.url
    page.keyboard.press("ArrowRight")
    page.locator(".st-key-present_bar").get_by_text("2 / 2").wait_for(timeout=90_000)
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(timeout=90_000)
    assert "/segments" in page.url and "rows=region" in page.url
    _no_exception(page)
    _shot(page, "deck-present-2")
    page.keyboard.press("ArrowLeft")
    page.locator(".st-key-present_bar").get_by_text("1 / 2").wait_for(timeout=90_000)
    page.get_by_role("button", name="Exit presentation").click()
    page.get_by_test_id("stSidebar").wait_for(state="visible", timeout=60_000)

    for fmt in ("pptx", "pdf"):
        page.goto(demo_server["url"] + "/decks?deck=Browser+deck")
        page.get_by_text("2 views").wait_for(timeout=60_000)
        page.get_by_role("button", name=f"Export {fmt.upper()}").click()
        f = _download(page, "Download touchpoint-browser-deck-", tmp_path)
        assert f.suffix == f".{fmt}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, SHOTS / f"deck-export.{fmt}")  # for people to open
        if fmt == "pptx":
            prs = Presentation(str(f))
            assert len(prs.slides) == 3
            titles = [[sh.text_frame.text for sh in s.shapes if sh.has_text_frame][0] for s in list(prs.slides)[1:]]
            assert titles == ["NPS month by month", "CSAT by region"]
            assert all(len([sh for sh in s.shapes if sh.shape_type == 13]) == 1 for s in list(prs.slides)[1:])
        else:
            pdf = PdfReader(str(f))
            assert len(pdf.pages) == 3
            assert "CSAT by region" in pdf.pages[2].extract_text()
    _no_exception(page)
    _shot(page, "deck-exported")
