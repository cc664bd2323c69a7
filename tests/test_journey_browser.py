"""The Journey page in a real browser: open a shared funnel link, switch the order mode, and download
the customers who dropped off — on the hand-counted journeys of tests/test_funnel.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cx.store import Store
from tests.test_browser import CHROMIUM, LAUNCH, ROOT, _free_port, _no_exception, _shot, browser, page  # noqa: F401
from tests.test_funnel import load

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def journey_server(tmp_path_factory):
    """The app on a store holding the journeys of tests/test_funnel.py."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    db = tmp_path_factory.mktemp("journey") / "touchpoint.duckdb"
    store = Store(db)
    load(store)
    store.close()
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env={**os.environ, "TOUCHPOINT_DB": str(db)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_a_shared_funnel_link_then_strict_order_then_the_drop_off_download(journey_server, page):  # noqa: F811
    page.goto(journey_server + "/journey?range=all&steps=A&steps=B&steps=C")
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=60_000)
    # Sequential: 10 entered, 6 reached C (see tests/test_funnel.py, customer by customer).
    page.get_by_text("60.0% of the customers who did “A” went on to “C”").wait_for(timeout=60_000)
    _no_exception(page)
    _shot(page, "journey-funnel")
    page.get_by_text("Strict (no other events between steps)").click()
    # Strict: 4 of the 10 reach C.
    page.get_by_text("40.0% of the customers who did “A” went on to “C”").wait_for(timeout=60_000)
    assert "funnel_mode=strict" in page.url
    _no_exception(page)
    # Strict drop-offs before B: c2, c3, c7 and c11 (this list's default step is the second).
    button = page.get_by_role("button", name="Download all 4 customers (CSV)")
    button.wait_for(timeout=60_000)
    with page.expect_download(timeout=60_000) as info:
        button.click()
    csv = Path(info.value.path()).read_text(encoding="utf-8")
    ids = [line.split(",")[0] for line in csv.strip().splitlines()[1:]]
    assert sorted(ids) == ["c11", "c2", "c3", "c7"]
    _shot(page, "journey-strict")
