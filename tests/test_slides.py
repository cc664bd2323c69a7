"""PPTX and PDF exports: opened again with python-pptx and pypdf, counted and read."""

from __future__ import annotations

import io
from datetime import date

import pandas as pd
import plotly.graph_objects as go
import pytest
from pptx import Presentation
from pypdf import PdfReader

from cx import images, ingest, insights, slides
from cx.engine import backend_for
from cx.filters import Filters
from cx.settings import Settings

needs_chromium = pytest.mark.skipif(images.browser_path() is None, reason="no Chromium on this machine")

# 40 web answers in October (2nd–29th: the 30 days before November), all 10 (NPS +100), and 40 in November: 10 promoters, 30 detractors
# (NPS (10 − 30) / 40 = −50). 30 app answers in November, all 9 (+100). The drop for web is significant.
ROWS = ([("web", f"2024-10-{2 + i % 28:02d}", 10) for i in range(40)]
        + [("web", f"2024-11-{1 + i % 28:02d}", 10 if i < 10 else 3) for i in range(40)]
        + [("app", f"2024-11-{1 + i % 28:02d}", 9) for i in range(30)])
NOV = Filters(preset="custom", start=date(2024, 11, 1), end=date(2024, 11, 30)).with_dim("channel", ["web"])


@pytest.fixture
def filled(store):
    frame = pd.DataFrame({"response_id": [f"r{i}" for i in range(len(ROWS))],
                          "submitted_at": [pd.Timestamp(d) for _, d, _ in ROWS],
                          "nps": [s for _, _, s in ROWS], "channel": [c for c, _, _ in ROWS]})
    ingest.import_frame(store, "responses", frame, file_name="fixture")
    return store


def _trend_figure() -> go.Figure:
    # Timestamps and numpy values, as the pages build them.
    periods = pd.to_datetime(["2024-10-01", "2024-11-01"])
    fig = go.Figure(go.Scatter(x=periods, y=pd.Series([100.0, -50.0]), mode="lines+markers", name="NPS"))
    fig.update_layout(title="NPS by month", height=420)
    fig.update_yaxes(title_text="NPS (points)")
    return fig


def _view(filled) -> slides.Slide:
    b = backend_for(filled)
    tiles = insights.kpi_tiles(b, filled, NOV, Settings())
    changes = insights.what_changed(b, filled, NOV, Settings())
    return slides.Slide("NPS for web, November", [_trend_figure()], slides.key_numbers(tiles, "nps"),
                        slides.filters_footer(NOV, {"channel": "Channel"}), slides.change_notes(changes, "nps"),
                        link="http://localhost:8501/trends?metric=nps")


def test_slide_content_comes_from_the_metrics(filled):
    s = _view(filled)
    assert s.key_numbers == [("NPS", "-50.0", "n = 40 · -150.0 pts vs before (significant)")]
    assert s.footer == ("01 Nov 2024 – 30 Nov 2024, compared with the previous period (02 Oct 2024 – 31 Oct 2024)"
                        " · Filters: Channel: web")
    # Overall first, then the segments (at most six sentences).
    assert s.notes[0] == "NPS fell by 150.0 points to -50.0 (from +100.0 in the previous period; n = 40, p < 0.001)."
    assert s.notes[1].startswith("NPS for channel “web” fell by 150.0 points") and len(s.notes) <= 6


@needs_chromium
def test_pptx_has_a_title_slide_and_one_slide_per_view_with_chart_numbers_footer_and_notes(filled):
    views = [_view(filled), slides.Slide("Empty view", footer="Filters: none (all data)")]
    steps = []
    data = slides.build_pptx("Monday review", "Touchpoint · 23 Nov 2026", views,
                             progress=lambda done, total, msg: steps.append((done, total)))
    assert steps[0] == (0, 1) and steps[-1] == (1, 1)
    prs = Presentation(io.BytesIO(data))
    assert len(prs.slides) == 3
    cover, first, second = prs.slides
    assert cover.shapes.title.text == "Monday review"
    texts = [sh.text_frame.text for sh in first.shapes if sh.has_text_frame]
    assert "NPS for web, November" in texts and "-50.0" in texts and "1/2" in texts
    assert any(t.startswith("01 Nov 2024 – 30 Nov 2024") and "Channel: web" in t for t in texts)
    pictures = [sh for sh in first.shapes if sh.shape_type == 13]
    assert len(pictures) == 1 and pictures[0].image.content_type == "image/png"
    assert pictures[0].width <= 9 * 914400 and pictures[0].height <= 5.4 * 914400
    notes = first.notes_slide.notes_text_frame.text
    assert "NPS fell by 150.0 points" in notes and "http://localhost:8501/trends?metric=nps" in notes
    assert "No chart on this view." in [sh.text_frame.text for sh in second.shapes if sh.has_text_frame]
    assert "No significant change" in second.notes_slide.notes_text_frame.text


@needs_chromium
def test_pdf_has_one_page_per_slide_with_its_text(filled):
    views = [_view(filled), _view(filled)]
    data = slides.build_pdf("Monday <review>", "Touchpoint", views)
    pdf = PdfReader(io.BytesIO(data))
    assert len(pdf.pages) == 3
    assert round(float(pdf.pages[0].mediabox.width)) == 960 and round(float(pdf.pages[0].mediabox.height)) == 540
    assert "Monday <review>" in pdf.pages[0].extract_text()
    second = pdf.pages[1].extract_text()
    assert "NPS for web, November" in second and "-50.0" in second and "Channel: web" in second
    assert "NPS fell by 150.0 points" in second and "1/2" in second
    assert "NPS by month" in second  # the chart is vector: its title is text in the PDF


def test_html_escapes_every_value():
    s = slides.Slide("<script>x</script>", key_numbers=[("A&B", "<1>", "n")], notes=["<b>"], footer="f")
    page = slides.slides_html("T", "S", [s], [[]])
    assert "<script>x" not in page and "&lt;script&gt;x&lt;/script&gt;" in page and "&lt;b&gt;" in page


def test_a_missing_chromium_for_the_pdf_is_a_plain_error(monkeypatch):
    monkeypatch.setattr(images, "browser_path", lambda: None)
    with pytest.raises(slides.SlideExportFailed, match="needs Chromium"):
        slides.build_pdf("T", "S", [slides.Slide("no charts")])
