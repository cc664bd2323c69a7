"""Injection: values from files, links and forms mean only what they literally say.

- SQL: filter values, URL parameters, dimension names, mapping names and column names carrying quotes,
  comments and statements select exactly the rows holding that text, or are refused by name; the
  store's tables and row counts never change. (Column names in a file: tests/test_hostile.py,
  sql-headers.csv.)
- Markdown/HTML: segment names, comments, file names and link values render as text in every
  Streamlit element that would otherwise read Markdown (no link, no image fetched from elsewhere);
  no page hands user text to unsafe HTML.
- Spreadsheet formulas in exports: tests/test_export.py (CSV and XLSX neutralising).
"""

from __future__ import annotations

import re

import pytest

from cx import ingest, metrics
from cx.engine import backend_for
from cx.errors import MappingError, TouchpointError, UnknownDimension
from cx.filters import Filters
from cx.store import TABLES, Store
from tests.conftest import ROOT, rows, run_app

HOSTILE_VALUES = [
    "web' OR '1'='1",
    'web" OR "1"="1',
    "web'; DROP TABLE responses; --",
    "web /* comment */",
    "web -- comment",
    "x'); DELETE FROM batches; --",
    "%",
    "_",
    "\\",
    "[log in](https://evil.example)",
    "![x](https://evil.example/track.png)",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    ":red[alarm] $x^2$",
]


@pytest.fixture
def hostile_store(tmp_path) -> Store:
    """Ten ordinary web responses, ten app ones, and one response per hostile channel name."""
    lines = ["response_id,submitted_at,nps,channel,segment,comment"]
    lines += [f"w{i},2024-03-01 10:00,{9 if i % 2 else 3},web,smb,fine" for i in range(10)]
    lines += [f"a{i},2024-03-02 10:00,10,app,smb,fine" for i in range(10)]
    for i, v in enumerate(HOSTILE_VALUES):
        q = v.replace('"', '""')
        lines.append(f'h{i},2024-03-03 10:00,0,"{q}","{q}","{q}"')
    path = tmp_path / "hostile-values.csv"
    path.write_text("\n".join(lines) + "\n")
    store = Store(tmp_path / "store.duckdb")
    ingest.import_file(store, path)
    yield store
    store.close()


def _tables(store: Store) -> dict[str, int]:
    return {**store.row_counts(), "batches": rows(store, "SELECT count(*) FROM batches")[0][0]}


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_a_filter_value_selects_exactly_the_rows_holding_that_text(hostile_store, value):
    before = _tables(hostile_store)
    backend = backend_for(hostile_store)
    got = metrics.query_metric(backend, "responses", where={"channel": [value]}).iloc[0]
    assert (got["value"], got["n"]) == (1, 1)
    assert metrics.query_metric(backend, "nps", where={"segment": [value]}).iloc[0]["value"] == -100.0
    assert _tables(hostile_store) == before == {**before, "responses": 34}


def test_a_hostile_value_that_is_not_in_the_data_selects_nothing(hostile_store):
    backend = backend_for(hostile_store)
    for value in ["nope' OR 1=1 --", "' OR ''='"]:
        assert metrics.query_metric(backend, "responses", where={"channel": [value]}).iloc[0]["n"] == 0


@pytest.mark.parametrize("name", ['channel" OR 1=1 --', "channel; DROP TABLE responses", "responses.channel",
                                  "count(*)", "1"])
def test_a_breakdown_or_filter_dimension_must_be_a_known_column(hostile_store, name):
    backend = backend_for(hostile_store)
    with pytest.raises(UnknownDimension):
        metrics.query_metric(backend, "nps", by=(name,))
    with pytest.raises(UnknownDimension):
        metrics.query_metric(backend, "nps", where={name: ["web"]})
    assert hostile_store.row_counts()["responses"] == 34


def test_url_parameters_are_read_as_values_and_unknown_ones_ignored_with_a_notice():
    known = {"channel": ["web", "web' OR '1'='1"]}
    params = {"f.channel": ["web' OR '1'='1", "app'; DROP TABLE responses; --"], "f.nps\" OR 1=1 --": "x",
              "range": "'; DROP TABLE batches; --", "compare": "<script>"}
    filters, notices = Filters.from_query_params(params, known)
    assert filters.where == {"channel": ("web' OR '1'='1",)}
    assert notices == [
        "The link's date range “'; DROP TABLE batches; --” is not known; showing the last 90 days.",
        "The link's comparison “<script>” is not known; comparing with the previous period.",
        "channel: \"app'; DROP TABLE responses; --\" not found in the data; ignored.",
        "The link filters on “nps\" OR 1=1 --”, which this data does not have; that filter is ignored.",
    ]


@pytest.mark.parametrize("target", ['dim:x"; DROP TABLE responses; --', "dim:Robert'); --", "dim:nps",
                                    "dim:batch_id", "responses; DROP TABLE x", "nps --"])
def test_a_mapping_target_or_dimension_name_cannot_smuggle_sql(tmp_path, target):
    path = tmp_path / "r.csv"
    path.write_text("response_id,submitted_at,nps,extra\nr1,2024-01-01,9,e\n")
    store = Store(tmp_path / "s.duckdb")
    try:
        with pytest.raises(TouchpointError) as err:
            ingest.import_file(store, path, column_map={"extra": target})
        assert isinstance(err.value, (MappingError, UnknownDimension))
        assert store.row_counts()["responses"] == 0
        assert sorted(store.columns("responses")) == sorted(
            [*TABLES["responses"].field_names, "csat_min", "csat_max", "ces_min", "ces_max", "batch_id", "row_hash"])
    finally:
        store.close()


def test_a_mapping_signature_from_the_page_is_a_bound_value(hostile_store):
    n = len(ingest.list_mappings(hostile_store))
    ingest.delete_mapping(hostile_store, "' OR 1=1 --")
    assert len(ingest.list_mappings(hostile_store)) == n == 1


def test_settings_hold_hostile_text_as_data(hostile_store):
    hostile_store.set_setting("note'; DROP TABLE settings; --", {"v": "'); DELETE FROM batches; --"})
    assert hostile_store.get_setting("note'; DROP TABLE settings; --") == {"v": "'); DELETE FROM batches; --"}
    assert rows(hostile_store, "SELECT count(*) FROM batches") == [(1,)]


# ------------------------------------------------------------------------------------------------
# Markdown and HTML: user text renders as text
# ------------------------------------------------------------------------------------------------
def test_md_text_leaves_nothing_markdown_could_act_on():
    from pages._ui import md_text

    for value in HOSTILE_VALUES:
        out = md_text(value)
        assert not re.search(r"(?<!\\)[\[\]()!<>:$*_`]", out), out
        assert re.sub(r"\\(.)", r"\1", out) == value  # only escapes were added


def _rendered_text(at) -> list[str]:
    """The Markdown source of every element that renders Markdown, main area and sidebar."""
    out = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "subheader", "title"):
        for el in getattr(at, kind):
            out.append(el.value)
        for el in getattr(at.sidebar, kind):
            out.append(el.value)
    out += [b.label for b in at.button] + [e.label for e in at.expander]
    return out


def _unescaped(texts: list[str]) -> list[str]:
    """Texts holding a hostile value's active Markdown unescaped."""
    bad = ("](https://evil.example", "![x]", "<script>", "<img", ":red[")
    # Escaped characters are literal: drop them, and what is left must hold no active construct.
    return [t for t in texts if any(b in re.sub(r"\\.", "", t) for b in bad)]


def test_hostile_segment_names_and_link_values_render_as_text_on_every_page(app_store_path, tmp_path):
    from cx.store import open_store

    store = open_store(app_store_path)
    # Two periods, so "What changed" reports a segment by name: the hostile segment moves from 0 to 10.
    # Every dimension holds the hostile name, so whichever breakdown "What changed" reports names it.
    dims = ["segment", "channel", "touchpoint", "journey_stage", "region", "product", "language", "survey"]
    lines = ["response_id,submitted_at,nps,comment," + ",".join(dims)]
    name = '"[log in](https://evil.example)"'
    comment = '"![x](https://evil.example/track.png) <script>alert(1)</script>"'
    for i in range(60):
        lines.append(f"p{i},2024-01-{1 + i % 28:02d} 10:00,0,{comment}," + ",".join([name] * len(dims)))
        lines.append(f"q{i},2024-02-{1 + i % 28:02d} 10:00,10,{comment}," + ",".join([name] * len(dims)))
        lines.append(f"o{i},2024-01-{1 + i % 28:02d} 10:00,8,fine," + ",".join(["plain"] * len(dims)))
        lines.append(f"s{i},2024-02-{1 + i % 28:02d} 10:00,8,fine," + ",".join(["plain"] * len(dims)))
    path = tmp_path / "segments.csv"
    path.write_text("\n".join(lines) + "\n")
    ingest.import_file(store, path)
    link = {"range": "all", "f.segment": ["[log in](https://evil.example)", "![x](https://evil.example/track.png)"]}
    # Every page app.py registers, including pages added later (comments, journeys…).
    pages = re.findall(r'st\.Page\("(pages/[a-z_]+\.py)"', (ROOT / "app.py").read_text())
    assert "pages/segments.py" in pages
    for page in (None, *pages):
        at = run_app(query=link, page=page)
        texts = _rendered_text(at)
        assert _unescaped(texts) == [], (page, _unescaped(texts))
        if page is None:  # the link's value that the data lacks is named in a notice, as text
            assert any("\\!\\[x\\]\\(https\\://evil.example/track.png\\)" in t for t in texts)
    at = run_app(query={"range": "last_30", "compare": "previous"})  # February against January
    changed = [t for t in _rendered_text(at) if "rose by" in t]
    assert changed and _unescaped(changed) == [], changed


def test_a_hostile_file_name_renders_as_text_on_the_data_page(app_store_path):
    name = "![x](https://evil.example/track.png) <img src=x onerror=alert(1)>.csv"
    at = run_app(page="pages/data.py")
    at.file_uploader[0].upload(name, b"response_id,submitted_at,nps\nr1,2024-01-01,9\n", "text/csv").run()
    assert not at.exception, at.exception
    at.button(key=[b.key for b in at.button if b.key and b.key.startswith("data_import_")][0]).click().run()
    assert not at.exception, at.exception
    texts = _rendered_text(at)
    assert _unescaped(texts) == []
    assert any("Imported" in t and "\\!\\[x\\]" in t for t in texts)


def test_no_page_hands_text_to_unsafe_html():
    # Audit: st.html, components.html and unsafe_allow_html=True may only render constant HTML/CSS
    # (an upper-case module constant), so no user text can reach them.
    offenders = []
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"st\.html\(|components\.v1\.html\(|components\.html\(", line):
                if not re.search(r"\.html\(\s*[A-Z][A-Z0-9_]*\s*[,)]", line):
                    offenders.append(f"{path.name}:{n}: {line.strip()}")
            if "unsafe_allow_html=True" in line and not re.search(r"\(\s*[A-Z][A-Z0-9_]*\s*,", line):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert offenders == []
