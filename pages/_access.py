"""The optional login gate (Streamlit side; not a page). app.py calls ``require_access()`` right after
the page config: when access is configured, nothing of the app renders until the viewer is in.

- OIDC: an ``[auth]`` section in ``.streamlit/secrets.toml`` (Streamlit's built-in ``st.login``; needs
  Authlib). Optionally ``[touchpoint] allowed_domains = ["example.com"]`` or ``allowed_emails``.
- Password: ``[touchpoint] password_hash = "scrypt$…"`` (from ``python -m cx hash-password``).
- Neither: the app is for local use and opens directly.
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from cx.access import verify_password
from cx.errors import TouchpointError
from pages._ui import md_text

FAILED_LOGIN_DELAY_S = 1.0  # slows guessing; the wait is per attempt, in the attempting session only


def _secrets_section(name: str) -> dict[str, Any]:
    try:
        section = st.secrets.get(name)
    except Exception:  # noqa: BLE001 - no secrets file at all means nothing is configured
        return {}
    return dict(section) if section else {}


def access_mode() -> str:
    """"oidc", "password" or "none", from the secrets."""
    if _secrets_section("auth"):
        return "oidc"
    if _secrets_section("touchpoint").get("password_hash"):
        return "password"
    return "none"


def _only(render) -> None:
    """Show only ``render`` (a page of its own, so no page of the app is reachable by URL), then stop."""
    st.navigation([st.Page(render, title="Log in", icon=":material/lock:", url_path="login")], position="hidden").run()
    st.stop()


def _oidc_login() -> None:
    st.title("Touchpoint")
    st.write("Log in with your organisation's account to see the dashboards.")
    if st.button("Log in", type="primary", icon=":material/login:", key="access_login"):
        st.login()


def _password_login() -> None:
    st.title("Touchpoint")
    with st.form("access_form"):
        password = st.text_input("Password", type="password", key="access_password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        try:
            ok = verify_password(password or "", _secrets_section("touchpoint")["password_hash"])
        except TouchpointError as exc:
            st.error(f"{md_text(exc.problem)} {md_text(exc.fix)}")
            return
        if ok:
            st.session_state["access_ok"] = True
            st.rerun()
        time.sleep(FAILED_LOGIN_DELAY_S)
        st.error("Wrong password.")


def _allowed(email: str | None) -> bool:
    conf = _secrets_section("touchpoint")
    emails = [e.lower() for e in conf.get("allowed_emails", [])]
    domains = [d.lower().lstrip("@") for d in conf.get("allowed_domains", [])]
    if not emails and not domains:
        return True
    email = (email or "").lower()
    return email in emails or email.rpartition("@")[2] in domains


def require_access() -> None:
    """Stop the run at a login screen unless access is open (not configured) or the viewer is in."""
    mode = access_mode()
    if mode == "none":
        return
    if mode == "oidc":
        if not st.user.is_logged_in:
            _only(_oidc_login)
        email = st.user.get("email")
        if not _allowed(email):
            def refused() -> None:
                st.title("Touchpoint")
                st.error(f"{md_text(email) if email else 'This account'} is not allowed to open this dashboard. "
                         "Ask its owner to add you, or log in with another account.")
                if st.button("Log out", key="access_logout"):
                    st.logout()
            _only(refused)
        return
    if not st.session_state.get("access_ok"):
        _only(_password_login)


def access_controls() -> None:
    """Who is logged in and a Log out button, for the sidebar (drawn after st.navigation, so the
    button keeps its identity from one run to the next)."""
    mode = access_mode()
    if mode == "oidc":
        st.caption(f"Logged in as {md_text(st.user.get('email') or st.user.get('name') or 'you')}")
        if st.button("Log out", key="access_logout", icon=":material/logout:"):
            st.logout()
    elif mode == "password":
        if st.button("Log out", key="access_logout", icon=":material/logout:"):
            st.session_state.pop("access_ok", None)
            st.rerun()
