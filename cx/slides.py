"""Meeting exports of a page or a deck: PPTX (python-pptx) and PDF (the same slides laid out in HTML
and printed by the system Chromium, so text stays text and charts stay vector).

Every export has a title slide, then one slide per view with its charts, its key numbers, the filters
and date range in a footer, and the "what changed" sentences (speaker notes in the PPTX, a side
panel in the PDF). Charts are drawn by ``cx.images``; ``progress(done, total, message)`` is called
as each image is drawn, so a screen can show a progress bar.
"""

from __future__ import annotations

import base64
import html
import io
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable, Sequence

import plotly.graph_objects as go

from cx import images, metrics
from cx.errors import TouchpointError
from cx.filters import COMPARISONS, Filters

Progress = Callable[[int, int, str], None]
MAX_CHARTS_PER_SLIDE = 4
PDF_TIMEOUT = 120  # seconds for Chromium to print the whole deck


class SlideExportFailed(TouchpointError):
    """A PPTX or PDF could not be produced."""


@dataclass
class Slide:
    """One view on one slide. ``key_numbers`` are (label, value, detail) strings; ``notes`` are the
    "what changed" sentences; ``footer`` names the filters and date range."""

    title: str
    charts: list[go.Figure] = field(default_factory=list)
    key_numbers: list[tuple[str, str, str]] = field(default_factory=list)
    footer: str = ""
    notes: list[str] = field(default_factory=list)
    link: str = ""


# -- slide content from cx results ---------------------------------------------------------------
def key_numbers(tiles: Sequence, metric: str | None = None, limit: int = 4) -> list[tuple[str, str, str]]:
    """(label, value, detail) for the KPI tiles that have a value: the view's ``metric`` first, then the
    others in tile order, at most ``limit``. The detail gives n and the change against the comparison
    period, called a change only when it is significant."""
    have = [k for k in tiles if not getattr(k, "reason", None) and k.value is not None]
    have.sort(key=lambda k: k.metric != metric)
    out = []
    for k in have[:limit]:
        unit = {"points": " pts", "percent": " pts", "hours": " h"}.get(k.unit, "")
        if k.delta is None or k.value_before is None:
            change = "no comparison data"
        elif k.significant:
            change = f"{k.delta:+,.1f}{unit} vs before (significant)"
        else:
            change = f"{k.delta:+,.1f}{unit} vs before, not significant"
        out.append((k.label, metrics.format_value(k.metric, k.value), f"n = {k.n:,} · {change}"))
    return out


def change_notes(changes: Sequence, metric: str | None = None, limit: int = 6) -> list[str]:
    """The "what changed" sentences, the view's metric first (all metrics when it has none)."""
    picked = [c for c in changes if metric is None or c.metric == metric] or list(changes)
    return [c.sentence for c in picked[:limit]]


def filters_footer(filters: Filters, labels: dict[str, str] | None = None) -> str:
    """"01 Aug 2025 – 29 Oct 2025, compared with the previous period · Channel: web, app"."""
    labels = labels or {}
    parts = []
    if filters.start and filters.end:
        text = f"{filters.start:%d %b %Y} – {filters.end:%d %b %Y}"
        cmp = filters.comparison()
        if cmp:
            text += f", compared with the {COMPARISONS[filters.compare].lower()} ({cmp[0]:%d %b %Y} – {cmp[1]:%d %b %Y})"
        parts.append(text)
    dims = [f"{labels.get(d, d.replace('_', ' ').capitalize())}: {', '.join(v)}" for d, v in filters.where.items()]
    parts.append("Filters: " + ("; ".join(dims) if dims else "none (all data)"))
    return " · ".join(parts)


# -- images ----------------------------------------------------------------------------------------
def render_charts(slides: Sequence[Slide], fmt: str, progress: Progress | None = None) -> list[list[bytes]]:
    """Each slide's charts (at most four) as ``fmt`` images, in order, reporting progress per image."""
    total = sum(min(len(s.charts), MAX_CHARTS_PER_SLIDE) for s in slides)
    done = 0
    out: list[list[bytes]] = []
    for s in slides:
        imgs = []
        for fig in s.charts[:MAX_CHARTS_PER_SLIDE]:
            if progress:
                progress(done, total, f"Drawing chart {done + 1} of {total} ({s.title})…")
            n = len(s.charts[:MAX_CHARTS_PER_SLIDE])
            w, h = (1280, 640) if n == 1 else (960, 600)
            imgs.append(images.chart_image(fig, fmt, width=w, height=h, scale=2 if fmt == "png" else 1))
            done += 1
        out.append(imgs)
    if progress:
        progress(total, total, "Charts drawn.")
    return out


def _grid(n: int) -> list[tuple[float, float, float, float]]:
    """Chart boxes (left, top, width, height) in fractions of the chart area."""
    if n <= 1:
        return [(0, 0, 1, 1)]
    if n == 2:
        return [(0, 0, 0.5, 1), (0.5, 0, 0.5, 1)]
    return [(0, 0, 0.5, 0.5), (0.5, 0, 0.5, 0.5), (0, 0.5, 0.5, 0.5), (0.5, 0.5, 0.5, 0.5)][:n]


# -- PPTX ------------------------------------------------------------------------------------------
def build_pptx(title: str, subtitle: str, slides: Sequence[Slide], progress: Progress | None = None) -> bytes:
    """A 16:9 PowerPoint file: a title slide, then one slide per view (charts as PNG, key numbers on
    the right, filters and date range in the footer, "what changed" in the speaker notes)."""
    from pptx import Presentation
    from pptx.dml.color import RGBColor
    from pptx.util import Emu, Inches, Pt

    pngs = render_charts(slides, "png", progress)
    prs = Presentation()
    prs.slide_width, prs.slide_height = Inches(13.333), Inches(7.5)
    first = prs.slides.add_slide(prs.slide_layouts[0])
    first.shapes.title.text = title
    first.placeholders[1].text = subtitle
    grey, dark = RGBColor(0x66, 0x66, 0x66), RGBColor(0x22, 0x22, 0x22)

    def text(slide, left, top, width, height, lines, size, *, bold=False, colour=dark):
        box = slide.shapes.add_textbox(left, top, width, height)
        tf = box.text_frame
        tf.word_wrap = True
        for i, line in enumerate(lines):
            p = tf.paragraphs[0] if i == 0 else tf.add_paragraph()
            p.text = line
            p.font.size, p.font.bold, p.font.color.rgb = Pt(size), bold, colour
        return box

    for number, (s, imgs) in enumerate(zip(slides, pngs), start=1):
        slide = prs.slides.add_slide(prs.slide_layouts[6])  # blank
        text(slide, Inches(0.5), Inches(0.3), Inches(12.3), Inches(0.8), [s.title], 28, bold=True)
        area_l, area_t, area_w, area_h = Inches(0.5), Inches(1.2), Inches(9.0), Inches(5.4)
        if not imgs:
            text(slide, area_l, area_t, area_w, Inches(1), ["No chart on this view."], 16, colour=grey)
        for img, (fl, ft, fw, fh) in zip(imgs, _grid(len(imgs))):
            box_w, box_h = int(area_w * fw), int(area_h * fh)
            pic = slide.shapes.add_picture(io.BytesIO(img), area_l + int(area_w * fl), area_t + int(area_h * ft))
            ratio = min(box_w / pic.width, box_h / pic.height)
            pic.width, pic.height = Emu(int(pic.width * ratio)), Emu(int(pic.height * ratio))
        top = Inches(1.3)
        for label, value, detail in s.key_numbers:
            text(slide, Inches(9.8), top, Inches(3.2), Inches(0.35), [label], 13, colour=grey)
            text(slide, Inches(9.8), top + Inches(0.3), Inches(3.2), Inches(0.6), [value], 28, bold=True)
            text(slide, Inches(9.8), top + Inches(0.85), Inches(3.2), Inches(0.4), [detail], 10, colour=grey)
            top += Inches(1.35)
        text(slide, Inches(0.5), Inches(6.85), Inches(11.4), Inches(0.5), [s.footer], 10, colour=grey)
        text(slide, Inches(12.0), Inches(6.85), Inches(0.9), Inches(0.5), [f"{number}/{len(slides)}"], 10, colour=grey)
        notes = s.notes or ["No significant change against the comparison period for this view."]
        slide.notes_slide.notes_text_frame.text = "What changed:\n" + "\n".join(notes) + (
            f"\n\nOpen this view: {s.link}" if s.link else "")
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


# -- PDF -------------------------------------------------------------------------------------------
_CSS = """
@page { size: 13.333in 7.5in; margin: 0 }
* { box-sizing: border-box }
body { margin: 0; font-family: 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif; color: #222 }
.slide { width: 13.333in; height: 7.5in; padding: 0.3in 0.5in; position: relative; page-break-after: always;
         overflow: hidden }
.slide:last-child { page-break-after: auto }
h1 { font-size: 26pt; margin: 0 0 0.15in 0 }
.cover { display: flex; flex-direction: column; justify-content: center }
.cover h1 { font-size: 40pt } .cover p { font-size: 18pt; color: #555 }
.body { display: flex; gap: 0.3in; height: 5.6in }
.charts { width: 9in; height: 5.4in; position: relative }
.charts img { position: absolute; object-fit: contain }
.side { width: 3.2in; font-size: 10pt }
.k-label { color: #666; font-size: 12pt; margin-top: 0.12in } .k-value { font-size: 24pt; font-weight: bold }
.k-detail { color: #666; font-size: 9pt }
.changes { margin-top: 0.2in; color: #333; font-size: 9pt } .changes li { margin-bottom: 0.05in }
.footer { position: absolute; left: 0.5in; right: 0.5in; bottom: 0.25in; font-size: 9pt; color: #666;
          display: flex; justify-content: space-between; gap: 0.3in }
"""


def slides_html(title: str, subtitle: str, slides: Sequence[Slide], svgs: Sequence[Sequence[bytes]]) -> str:
    """The deck as one printable HTML document (every value escaped)."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><style>{_CSS}</style></head><body>",
             f"<section class='slide cover'><h1>{e(title)}</h1><p>{e(subtitle)}</p></section>"]
    for number, (s, imgs) in enumerate(zip(slides, svgs), start=1):
        charts = "".join(
            f"<img alt='chart' src='data:image/svg+xml;base64,{base64.b64encode(img).decode()}' "
            f"style='left:{fl * 100}%;top:{ft * 100}%;width:{fw * 100}%;height:{fh * 100}%'>"
            for img, (fl, ft, fw, fh) in zip(imgs, _grid(len(imgs)))) or "<p>No chart on this view.</p>"
        numbers = "".join(f"<div class='k-label'>{e(lab)}</div><div class='k-value'>{e(val)}</div>"
                          f"<div class='k-detail'>{e(det)}</div>" for lab, val, det in s.key_numbers)
        changes = ("<div class='changes'><b>What changed</b><ul>" + "".join(f"<li>{e(n)}</li>" for n in s.notes)
                   + "</ul></div>") if s.notes else ""
        parts.append(f"<section class='slide'><h1>{e(s.title)}</h1><div class='body'><div class='charts'>{charts}"
                     f"</div><div class='side'>{numbers}{changes}</div></div><div class='footer'><span>"
                     f"{e(s.footer)}</span><span>{number}/{len(slides)}</span></div></section>")
    parts.append("</body></html>")
    return "".join(parts)


def build_pdf(title: str, subtitle: str, slides: Sequence[Slide], progress: Progress | None = None) -> bytes:
    """A PDF of landscape 16:9 pages: a title page, then one page per view (vector charts, key numbers
    and what changed on the right, filters and date range in the footer)."""
    svgs = render_charts(slides, "svg", progress)
    chromium = images.browser_path()
    if not chromium:
        raise SlideExportFailed("PDF export needs Chromium, which is not installed on this machine.",
                                fix="Install it (Debian/Ubuntu: `sudo apt-get install chromium`), then try again.")
    if progress:
        progress(1, 1, "Laying out the PDF…")
    with tempfile.TemporaryDirectory(prefix="touchpoint-pdf-") as tmp:
        page, out = Path(tmp) / "deck.html", Path(tmp) / "deck.pdf"
        page.write_text(slides_html(title, subtitle, slides, svgs), encoding="utf-8")
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
               f"--user-data-dir={tmp}/profile", "--no-pdf-header-footer", f"--print-to-pdf={out}", page.as_uri()]
        try:
            run = subprocess.run(cmd, capture_output=True, timeout=PDF_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise SlideExportFailed(f"Chromium took more than {PDF_TIMEOUT} s to print the PDF.",
                                    fix="Try again with fewer views, or export PPTX.") from exc
        except OSError as exc:
            raise SlideExportFailed(f"Chromium could not be started to print the PDF ({exc.strerror}).",
                                    fix="Check that `chromium --headless --version` works on this machine.") from exc
        if not out.exists() or out.stat().st_size == 0:
            tail = run.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise SlideExportFailed(f"Chromium did not produce the PDF (exit code {run.returncode}). {tail[0][:200]}",
                                    fix="Try again; if it keeps failing, export PPTX instead.")
        return out.read_bytes()


def subtitle_for(filters: Filters | None, when: date | None = None) -> str:
    """"Touchpoint · 23 Nov 2026 · data from 01 Aug 2025 to 29 Oct 2025"."""
    bits = ["Touchpoint", f"{(when or date.today()):%d %b %Y}"]
    if filters is not None and filters.start and filters.end:
        bits.append(f"data from {filters.start:%d %b %Y} to {filters.end:%d %b %Y}")
    return " · ".join(bits)
