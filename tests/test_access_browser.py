"""The password gate in a real browser, on a server started the plain way (`streamlit run app.py`): the
first visit after a start goes straight to /data, which must still meet the login and nothing else."""

from __future__ import annotations

import pytest

from cx.access import hash_password
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, serve_app

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gated")
    secrets = folder / "secrets.toml"
    secrets.write_text(f'[touchpoint]\npassword_hash = "{hash_password(PASSWORD)}"\n')
    # Started the plain way, not through make run's launcher: the quirk it works around must not open
    # a way past the login.
    with serve_app(folder / "touchpoint.duckdb", "--secrets.files", str(secrets), plain=True) as served:
        yield served["url"]


def test_a_deep_link_after_a_start_meets_the_login_and_logout_closes_the_app(gated):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 800})
        page.goto(gated + "/data")
        password = page.get_by_label("Password", exact=True)
        password.wait_for(timeout=60_000)
        assert page.get_by_test_id("stFileUploader").count() == 0
        assert page.get_by_text("Data", exact=True).count() == 0
        password.fill("not the password")
        page.get_by_role("button", name="Log in").click()
        page.get_by_text("Wrong password.").wait_for(timeout=30_000)
        password.fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("button", name="Log out").wait_for(timeout=60_000)
        assert page.get_by_role("heading", name="Overview").count() == 1
        page.get_by_role("button", name="Log out").click()
        page.get_by_label("Password", exact=True).wait_for(timeout=30_000)
        assert page.get_by_role("heading", name="Overview").count() == 0
        browser.close()
