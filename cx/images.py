"""Static chart images (PNG, SVG) of Plotly figures, drawn by kaleido in the system Chromium.

kaleido 1.x drives a headless Chrome through choreographer, which looks for the browser in
``$BROWSER_PATH`` first and then on ``PATH``. Debian's Chromium is pointed at explicitly when nothing
else is set, so no browser is ever downloaded. One kaleido browser is started on first use and kept
for the life of the process: the first image costs a browser start (~2 s), later ones ~0.2 s.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import threading

import plotly.graph_objects as go

from cx.errors import TouchpointError

SYSTEM_CHROMIUM = "/usr/bin/chromium"
FORMATS = {"png": "image/png", "svg": "image/svg+xml"}
# Export size in CSS pixels (16:9 like a slide); PNGs are drawn at 2× for sharp projection.
WIDTH, HEIGHT, PNG_SCALE = 1280, 640, 2

RENDER_TIMEOUT = 60  # seconds for one image, and for the browser to start

_lock = threading.Lock()
_renderer: "_Renderer | None" = None


class ImageExportFailed(TouchpointError):
    """A chart could not be drawn as a static image (no Chromium, or the browser failed)."""


def browser_path() -> str | None:
    """The Chromium kaleido will use: ``$BROWSER_PATH``, else Debian's, else one on PATH."""
    if os.environ.get("BROWSER_PATH"):
        return os.environ["BROWSER_PATH"]
    if os.path.exists(SYSTEM_CHROMIUM):
        return SYSTEM_CHROMIUM
    return shutil.which("chromium") or shutil.which("google-chrome") or shutil.which("chrome")


class _Renderer:
    """One kaleido browser on its own event-loop thread. Unlike kaleido's sync server, every call has
    a timeout, so a browser that dies or never starts is an error, not a hang."""

    def __init__(self) -> None:
        import kaleido

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="touchpoint-kaleido", daemon=True)
        self.thread.start()

        async def _open():
            # mathjax off: nothing is fetched from a CDN; plotly.js comes from the installed plotly.
            k = kaleido.Kaleido(n=1, timeout=RENDER_TIMEOUT, mathjax=False)
            await k.__aenter__()
            return k

        try:
            self.k = self._call(_open())
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=RENDER_TIMEOUT)

    def render(self, fig: dict, opts: dict) -> bytes:
        return self._call(self.k.calc_fig(fig, opts=opts))

    def close(self) -> None:
        try:
            self._call(self.k.__aexit__(None, None, None))
        except BaseException:  # closing a broken browser: nothing more to do
            pass
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)


def _start_renderer() -> "_Renderer":
    path = browser_path()
    if not path:
        raise ImageExportFailed("Chart images need Chromium, which is not installed on this machine.",
                                fix="Install it (Debian/Ubuntu: `sudo apt-get install chromium`) or set BROWSER_PATH "
                                    "to a Chrome/Chromium executable, then try again.")
    os.environ["BROWSER_PATH"] = path  # choreographer reads it; never let it download a browser
    return _Renderer()


def _stop_server() -> None:
    global _renderer
    if _renderer is not None:
        r, _renderer = _renderer, None
        r.close()


atexit.register(_stop_server)


def export_figure(fig: go.Figure) -> go.Figure:
    """A copy of ``fig`` styled for paper and projectors: white background, dark text (on screen the
    Streamlit theme supplies colours that a static image does not have)."""
    out = go.Figure(fig)
    out.update_layout(template="plotly_white", paper_bgcolor="white", plot_bgcolor="white",
                      font=dict(color="#222222", family="DejaVu Sans, Arial, sans-serif"))
    # On screen the title sits flush with the container; on a slide it needs room from the edges.
    m = out.layout.margin
    out.update_layout(margin=dict(l=max(m.l or 0, 40), r=max(m.r or 0, 30), t=max(m.t or 0, 70),
                                  b=max(m.b or 0, 40)), title_x=0.02)
    return out


def chart_image(fig: go.Figure, fmt: str = "png", *, width: int = WIDTH, height: int | None = None,
                scale: float | None = None) -> bytes:
    """The figure as image bytes: ``fmt`` "png" (``width``×``height`` CSS px at ``scale``, default 2×)
    or "svg" (vector). ``height`` defaults to the figure's own height, else 640.

    Raises ``ImageExportFailed`` with a plain message when the browser is missing or fails."""
    if fmt not in FORMATS:
        raise ImageExportFailed(f"Charts export as PNG or SVG, not {fmt!r}.", fix="Choose PNG or SVG.")
    fig = export_figure(fig)
    h = height or fig.layout.height or HEIGHT
    s = scale if scale is not None else (PNG_SCALE if fmt == "png" else 1)
    global _renderer
    with _lock:  # one browser per process; calls from several sessions take turns
        try:
            if _renderer is None:
                _renderer = _start_renderer()
            data = _renderer.render(json.loads(fig.to_json()), {"format": fmt, "width": width, "height": int(h), "scale": s})
        except ImageExportFailed:
            raise
        except Exception as exc:  # kaleido/choreographer raise many kinds; the user needs one plain message
            _stop_server()  # a broken browser is restarted on the next try
            raise ImageExportFailed(f"The chart could not be drawn as {fmt.upper()}: the Chromium image renderer "
                                    f"failed ({type(exc).__name__}).",
                                    fix="Try again; if it keeps failing, check that Chromium starts on this "
                                        "machine (`chromium --headless --version`).") from exc
    if not data:
        raise ImageExportFailed(f"The chart came back empty as {fmt.upper()}.", fix="Try again.")
    return data
