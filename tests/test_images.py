"""Static chart images through kaleido and the system Chromium: real PNG and SVG files of the right size."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import plotly.graph_objects as go
import pytest

from cx import images

pytestmark = pytest.mark.skipif(images.browser_path() is None, reason="no Chromium on this machine")


def _figure() -> go.Figure:
    fig = go.Figure(go.Bar(x=["web", "app"], y=[33.3, -16.7], name="NPS"))
    fig.update_layout(title="NPS by channel", height=400)
    fig.update_yaxes(title_text="NPS (points)")
    return fig


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_png_has_the_png_signature_and_the_requested_size_at_twice_the_pixels():
    png = images.chart_image(_figure(), "png", width=800)
    # 800 × 400 CSS px (height from the figure) at the default 2× scale.
    assert _png_size(png) == (1600, 800)
    assert len(png) > 5_000  # a drawn chart, not an empty canvas


def test_png_size_follows_width_height_and_scale():
    assert _png_size(images.chart_image(_figure(), "png", width=600, height=300, scale=1)) == (600, 300)


def test_svg_parses_and_carries_the_title_and_axis_text():
    svg = images.chart_image(_figure(), "svg", width=800)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert root.get("width") == "800" and root.get("height") == "400"
    text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "NPS by channel" in text and "NPS (points)" in text and "web" in text


def test_export_styling_does_not_change_the_figure_on_screen():
    fig = _figure()
    images.chart_image(fig, "svg")
    assert fig.layout.template.layout.paper_bgcolor is None or fig.layout.paper_bgcolor is None


def test_an_unknown_format_is_refused_in_plain_words():
    with pytest.raises(images.ImageExportFailed, match="PNG or SVG"):
        images.chart_image(_figure(), "gif")


def test_a_missing_browser_is_reported_with_the_fix(monkeypatch):
    images._stop_server()
    monkeypatch.setattr(images, "browser_path", lambda: None)
    with pytest.raises(images.ImageExportFailed, match="Chromium") as err:
        images.chart_image(_figure(), "png")
    assert "apt-get install chromium" in err.value.fix


def test_a_failing_browser_becomes_a_plain_error(monkeypatch, tmp_path: Path):
    images._stop_server()
    broken = tmp_path / "chromium"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("BROWSER_PATH", str(broken))
    with pytest.raises(images.ImageExportFailed, match="could not be drawn"):
        images.chart_image(_figure(), "png")
    images._stop_server()
