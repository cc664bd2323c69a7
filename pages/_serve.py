"""``make run``'s launcher: Streamlit's own command line, with two things done before the first visitor.

1. The app is declared st.navigation-based before the server starts. Streamlit treats an app with a
   pages/ folder as an old-style multipage app until a session has run st.navigation, so a shared deep
   link opened first after a restart would otherwise run that page without app.py's frame.
2. While the server waits for its first visitor, a background thread imports the app's modules and
   computes what the Overview shows with the default filters (sidebar, KPI tiles, NPS mix, what
   changed) into the app's own caches, keyed on the data version as always. The first person to open
   the app, often an executive in a meeting, then waits for a cache hit instead of the imports and the
   queries (at 10 M responses about 4 s of the first Overview's 7 s). Nothing is precomputed that a
   page would not compute itself, and a later import changes the data version as usual.

Usage: ``python -m pages._serve run app.py [streamlit options]`` (what ``make run`` calls).
"""

from __future__ import annotations

import sys
import threading
import time


def _prepare_when_ready(timeout: float = 120.0) -> None:
    """Wait for Streamlit's runtime (its caches are the ones the pages use), then prepare."""
    from streamlit.runtime import Runtime

    deadline = time.monotonic() + timeout
    while not Runtime.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not Runtime.exists():
        return
    # Imported here, in the background: the app's modules load while the server starts.
    from pages._ui import try_prepare_default_overview

    started = time.perf_counter()
    if try_prepare_default_overview():
        print(f"Touchpoint: the Overview is ready ({time.perf_counter() - started:.1f} s).", flush=True)


def main(argv: list[str]) -> int:
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    threading.Thread(target=_prepare_when_ready, name="touchpoint-prepare", daemon=True).start()
    from streamlit.web.cli import main as streamlit_main

    sys.argv = ["streamlit", *argv]
    return streamlit_main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
