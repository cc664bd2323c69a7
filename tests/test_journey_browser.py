"""The Journey page in a real browser: open a shared funnel link, switch the order mode, and download
the customers who dropped off — on the hand-counted journeys of tests/test_funnel.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from cx.store import Store
from tests.test_browser import _no_exception, _shot, browser, page, serve_app  # noqa: F401
from tests.test_funnel import load

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def journey_server(tmp_path_factory):
    """The app on a store holding the journeys of tests/test_funnel.py."""
    db = tmp_path_factory.mktemp("journey") / "touchpoint.duckdb"
    store = Store(db)
    load(store)
    store.close()
    with serve_app(db) as served:
        yield served["url"]


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
