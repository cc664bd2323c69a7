"""Optional access control: OIDC (st.login) or a password whose scrypt hash is in the secrets. When
configured, nothing of the app renders before login; when not, the app opens as before (local use)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from cx.access import hash_password, verify_password
from cx.errors import TouchpointError
from tests.conftest import ROOT

PASSWORD = "correct horse battery staple"
OIDC = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
        "client_id": "touchpoint", "client_secret": "s3cret",
        "server_metadata_url": "https://id.example.com/.well-known/openid-configuration"}


def test_hash_and_verify_round_trip_with_a_fixed_salt():
    stored = hash_password(PASSWORD, salt=b"0123456789abcdef")
    assert stored.startswith("scrypt$16384$8$1$MDEyMzQ1Njc4OWFiY2RlZg$")
    assert verify_password(PASSWORD, stored) and not verify_password(PASSWORD + " ", stored)
    assert hash_password(PASSWORD) != hash_password(PASSWORD)  # a fresh salt each time


def test_a_short_password_or_a_malformed_hash_is_refused_in_plain_words():
    with pytest.raises(TouchpointError, match="use at least 10"):
        hash_password("short")
    with pytest.raises(TouchpointError, match="not a Touchpoint password hash") as err:
        verify_password(PASSWORD, "sha1$abc")
    assert "python -m cx hash-password" in err.value.fix


def test_cli_hash_password_prints_the_secrets_lines():
    done = subprocess.run([sys.executable, "-m", "cx", "hash-password"], cwd=ROOT, input=PASSWORD + "\n",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == "[touchpoint]" and lines[2].startswith('password_hash = "scrypt$')
    assert verify_password(PASSWORD, lines[2].split('"')[1])


def _app(app_store_path, secrets: dict, user: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for k, v in secrets.items():
        at.secrets[k] = v
    if user is not None:
        at.user = user
    return at.run()


def _nothing_of_the_app(at: AppTest, db) -> None:
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Touchpoint"]
    assert len(at.sidebar.caption) == 0 and len(at.sidebar.multiselect) == 0 and len(at.metric) == 0
    from cx.store import _OPEN  # the store is not even opened

    assert db.resolve() not in _OPEN


def test_password_mode_shows_only_the_login_until_the_right_password(app_store_path):
    secrets = {"touchpoint": {"password_hash": hash_password(PASSWORD)}}
    at = _app(app_store_path, secrets)
    _nothing_of_the_app(at, app_store_path)
    at.text_input(key="access_password").input("wrong password!")
    at.button[0].click().run()  # a form: the typed value and the submit go together
    _nothing_of_the_app(at, app_store_path)
    assert [e.value for e in at.error] == ["Wrong password."]
    at.text_input(key="access_password").input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Overview"
    assert any(b.key == "access_logout" for b in at.sidebar.button)
    # Log out is exercised in a real browser (tests/test_access_browser.py): AppTest loses the click on
    # a sidebar button across the switch from the login page to the app's pages.


def test_a_url_to_a_page_does_not_pass_the_password_gate(app_store_path):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets["touchpoint"] = {"password_hash": hash_password(PASSWORD)}
    at.run()
    with pytest.raises(ValueError, match=r"Known pages: \['Log in'\]"):  # no page of the app is registered
        at.switch_page("pages/data.py")
    _nothing_of_the_app(at, app_store_path)
    assert len(at.file_uploader) == 0


def test_oidc_mode_shows_only_a_login_button_until_logged_in(app_store_path):
    at = _app(app_store_path, {"auth": OIDC}, user={"is_logged_in": False})
    _nothing_of_the_app(at, app_store_path)
    assert [b.label for b in at.button] == ["Log in"]
    at = _app(app_store_path, {"auth": OIDC}, user={"is_logged_in": True, "email": "ana@example.com"})
    assert not at.exception, at.exception
    assert at.title[0].value == "Overview"
    assert "Logged in as ana@example.com" in [c.value for c in at.sidebar.caption]


def test_oidc_allowed_domains_keep_other_accounts_out(app_store_path):
    secrets = {"auth": OIDC, "touchpoint": {"allowed_domains": ["example.com"]}}
    at = _app(app_store_path, secrets, user={"is_logged_in": True, "email": "eve@elsewhere.org"})
    _nothing_of_the_app(at, app_store_path)
    assert "eve@elsewhere.org is not allowed to open this dashboard" in at.error[0].value
    at = _app(app_store_path, secrets, user={"is_logged_in": True, "email": "bo@example.com"})
    assert at.title[0].value == "Overview"


def test_without_access_configured_the_app_opens_directly(app_store_path):
    at = _app(app_store_path, {})
    assert not at.exception, at.exception
    assert at.title[0].value == "Overview"
    assert not any(b.key in ("access_login", "access_logout") for b in [*at.button, *at.sidebar.button])
