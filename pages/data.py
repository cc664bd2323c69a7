"""Data: import exports, confirm their mapping, see rejects, manage batches and saved mappings."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from cx import ingest
from cx.engine import engine_url, is_external
from cx.errors import AmbiguousValues, TouchpointError, UnknownBatch
from cx.export import to_csv_bytes
from cx.store import TABLES
from pages._ui import (TABLE_LABELS, cached_batches, fmt_int, get_store, md_text, prepare_overview_in_background,
                       show_error, show_table)

UPLOAD_TYPES = ["csv", "tsv", "txt", "tab", "dat", "psv", "gz", "xlsx", "xlsm", "xls", "ods", "parquet", "json",
                "ndjson", "jsonl"]
DELIMITER_NAMES = {",": "comma-separated", ";": "semicolon-separated", "tab": "tab-separated", "|": "pipe-separated",
                   "whitespace": "separated by spaces"}
IGNORE = "(ignore)"
DIMENSION = "(keep as dimension)"
SCALES = {"1–5": (1, 5), "1–7": (1, 7), "1–10": (1, 10), "0–10": (0, 10), "0–100": (0, 100)}
DATE_ORDERS = {"Detect from the data": None, "Day first (31/12/2024)": "dmy", "Month first (12/31/2024)": "mdy",
               "Year first (2024/12/31)": "ymd"}
TIMEZONES = ["UTC", "Europe/London", "Europe/Paris", "Europe/Berlin", "America/New_York", "America/Chicago",
             "America/Denver", "America/Los_Angeles", "America/Sao_Paulo", "Asia/Kolkata", "Asia/Singapore",
             "Asia/Tokyo", "Australia/Sydney"]

store = get_store()


@st.cache_resource(show_spinner=False)
def _upload_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="touchpoint-uploads-"))


def _save_upload(upload) -> tuple[Path, str]:
    """Write an uploaded file to a private temp folder once; return its path and SHA-256."""
    data = upload.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", upload.name)[-120:] or "upload"
    path = _upload_dir() / f"{sha[:16]}-{safe}"
    if not path.exists():
        path.write_bytes(data)
    return path, sha


@st.cache_data(show_spinner=False, max_entries=16)
def _inspect(path: str, sha: str, kind: str | None, sheet: str | None, version: int, file_name: str):
    return ingest.inspect_file(store, path, kind=kind, sheet=sheet, file_name=file_name)


def _mapping_table(found: ingest.Inspection, kind: str) -> pd.DataFrame:
    rows = []
    examples = found.preview
    for i, col in enumerate(found.columns):
        target = found.column_map.get(col, "ignore")
        values = examples.iloc[:, i].dropna().astype(str).head(3).tolist() if i < examples.shape[1] else []
        rows.append({
            "Column in file": col,
            "Examples": ", ".join(v if len(v) <= 22 else v[:21] + "…" for v in values),
            "Maps to": (DIMENSION if target.startswith("dim:") else IGNORE if target == "ignore" else target),
            "Dimension name": target[4:] if target.startswith("dim:") else ingest.slugify(col),
            "Confidence": found.field_confidence.get(target) if target not in ("ignore",) else None,
        })
    return pd.DataFrame(rows)


def _column_map(edited: pd.DataFrame) -> dict[str, str]:
    out: dict[str, str] = {}
    for _, row in edited.iterrows():
        target = row["Maps to"]
        if target == DIMENSION:
            out[row["Column in file"]] = "dim:" + ingest.slugify(str(row["Dimension name"] or row["Column in file"]))
        elif target in (IGNORE, None, ""):
            out[row["Column in file"]] = "ignore"
        else:
            out[row["Column in file"]] = target
    return out


def _show_result(result: dict) -> None:
    st.success(
        f"Imported **{md_text(result['file_name'])}** as {TABLE_LABELS[result['kind']].lower()} (batch {result['batch_id']}).",
        icon=":material/check_circle:",
    )
    cols = st.columns(6)
    for c, (label, key) in zip(cols, [("Rows read", "rows_read"), ("Added", "added"), ("Updated", "updated"),
                                      ("Unchanged", "unchanged"), ("Duplicates in file", "duplicates"),
                                      ("Rejected", "rejected")]):
        c.metric(label, fmt_int(result[key]))
    st.caption("Rows read = added + updated + unchanged + duplicates in the file (a later row with the same ID "
               "replaced them) + rejected. Re-importing the same file adds nothing.")
    for n in result.get("notes", []):
        st.caption(f"ℹ️ {md_text(n)}")
    if result["rejected"]:
        rejects = ingest.batch_rejects(store, result["batch_id"])
        n = result["rejected"]
        st.warning(f"{fmt_int(n)} {'row was' if n == 1 else 'rows were'} rejected. Each is listed below with its row, "
                   "column, value and reason.")
        show_table(rejects.head(500), raw=True)
        st.download_button("Download rejected rows (CSV)", to_csv_bytes(rejects),
                           file_name=f"rejects-batch-{result['batch_id']}.csv", mime="text/csv",
                           key=f"data_rejects_dl_{result['batch_id']}")


def _import_tab() -> None:
    uploads = st.file_uploader(
        "Drop export files here",
        type=UPLOAD_TYPES,
        accept_multiple_files=True,
        key="data_upload",
        help="CSV/TSV/TXT (any delimiter, any common encoding, .gz too), Excel, Parquet, JSON or NDJSON.",
    )
    last = st.session_state.get("data_last_result")
    if not uploads:
        st.info(
            "Import survey responses (NPS, CSAT, CES), support tickets, orders, journey events or a customer list. "
            "Touchpoint recognises exports of Qualtrics, SurveyMonkey, Delighted, Typeform, Google Forms, Zendesk, "
            "Freshdesk, Intercom, ServiceNow and Shopify, and remembers the mapping you confirm.",
            icon=":material/upload_file:",
        )
        if last:
            _show_result(last)
        return
    saved = [(u, *_save_upload(u)) for u in uploads]
    names = [u.name for u, _, _ in saved]
    if len(saved) > 1:
        _import_all(saved)
    choice = st.selectbox("File", range(len(saved)), format_func=lambda i: names[i], key="data_file") if len(saved) > 1 else 0
    upload, path, sha = saved[choice]
    kind_key = f"data_kind_{sha[:12]}"
    sheet_key = f"data_sheet_{sha[:12]}"
    try:
        with st.spinner(f"Reading {md_text(upload.name)}…"):
            found = _inspect(str(path), sha, st.session_state.get(kind_key), st.session_state.get(sheet_key),
                             store.data_version(), upload.name)
    except TouchpointError as exc:
        show_error(exc)
        return
    fmt_bits = [found.file_format.upper(), found.encoding.upper()]
    if found.delimiter:
        fmt_bits.append(DELIMITER_NAMES.get(found.delimiter, f"separated by “{found.delimiter}”"))
    fmt_bits.append("with a header row" if found.has_header else "no header row")
    if found.sheet:
        fmt_bits.append(f"sheet “{found.sheet}”, header on row {found.header_row}")
    st.caption(" · ".join(fmt_bits) + f" · {fmt_int(found.sample_rows)} rows previewed" +
               (" (first 20,000)" if found.sample_rows >= ingest.SAMPLE_ROWS else ""))

    left, right = st.columns([1, 1])
    with left:
        kinds = list(TABLES)
        st.selectbox("What this file holds", kinds, index=kinds.index(found.kind), key=kind_key,
                     format_func=lambda k: f"{TABLE_LABELS[k]} (fit {found.kind_scores.get(k, 0):.0%})")
    with right:
        if found.sheets and len(found.sheets) > 1:
            st.selectbox("Sheet", found.sheets, index=found.sheets.index(found.sheet), key=sheet_key)
    if found.saved:
        st.success("This export's shape was seen before: the mapping you saved is applied. You can still edit it.",
                   icon=":material/bookmark:")
    elif found.confidence < 0.5:
        st.warning(f"Low confidence ({found.confidence:.0%}) in the proposed mapping: check every row below.")
    else:
        st.caption(f"Mapping proposed from the column names and values (confidence {found.confidence:.0%}). Check it, then import.")

    kind = found.kind
    spec = TABLES[kind]
    targets = [IGNORE] + [f.name for f in spec.fields] + [DIMENSION]
    required = [f.name for f in spec.fields if f.required]
    edited = st.data_editor(
        _mapping_table(found, kind),
        hide_index=True,
        width="stretch",
        disabled=["Column in file", "Examples", "Confidence"],
        column_config={
            "Maps to": st.column_config.SelectboxColumn("Maps to", options=targets, required=True,
                                                        help="The Touchpoint field this column feeds"),
            "Confidence": st.column_config.ProgressColumn("Confidence", min_value=0.0, max_value=1.0, format="percent"),
            "Dimension name": st.column_config.TextColumn("Dimension name", width="small",
                                                          help="Used when the column is kept as a dimension"),
            "Examples": st.column_config.TextColumn("Examples", width="medium"),
        },
        key=f"data_map_{sha[:12]}_{kind}_{found.sheet}",
    )
    st.caption("Required for " + TABLE_LABELS[kind].lower() + ": " + (", ".join(required) or "an ID") +
               (" and at least one of nps, csat, ces" if kind == "responses" else "") +
               ". Columns kept as dimensions become breakdowns for every metric.")

    with st.expander("Value conventions", expanded=bool(found.questions)):
        for q in found.questions:
            st.warning(q, icon=":material/help:")
        c1, c2, c3 = st.columns(3)
        detected = found.options
        order_labels = list(DATE_ORDERS)
        order_index = list(DATE_ORDERS.values()).index(detected.date_order) if detected.date_order in DATE_ORDERS.values() else 0
        date_label = c1.selectbox("Dates like 03/04/2024", order_labels, index=order_index, key=f"data_dates_{sha[:12]}")
        tz = c2.selectbox("Time zone of times without an offset", TIMEZONES,
                          index=TIMEZONES.index(detected.timezone) if detected.timezone in TIMEZONES else 0,
                          key=f"data_tz_{sha[:12]}")
        decimal = c3.selectbox("Decimal separator", [".", ","], index=0 if (detected.decimal or ".") == "." else 1,
                               key=f"data_decimal_{sha[:12]}")
        c4, c5, c6 = st.columns(3)
        scale_names = list(SCALES)

        def scale_index(scale, default):
            scale = tuple(scale) if scale else default
            return list(SCALES.values()).index(scale) if scale in SCALES.values() else 0

        csat = c4.selectbox("CSAT scale", scale_names, index=scale_index(detected.csat_scale, (1, 5)), key=f"data_csat_{sha[:12]}")
        ces = c5.selectbox("CES scale", scale_names, index=scale_index(detected.ces_scale, (1, 7)), key=f"data_ces_{sha[:12]}")
        tenure = c6.selectbox("Tenure unit", ["month", "week", "day", "year"], key=f"data_tenure_{sha[:12]}")
        extra_nulls = st.text_input("Extra values that mean “missing” (separated by |)", key=f"data_nulls_{sha[:12]}",
                                    help="Already recognised: empty, ?, N/A, NULL, None, -, --, #N/A, NaN")
    options = ingest.Options(
        date_order=DATE_ORDERS[date_label], timezone=tz, decimal=decimal, csat_scale=SCALES[csat],
        ces_scale=SCALES[ces], tenure_unit=tenure,
        null_markers=ingest.DEFAULT_NULLS + tuple(s.strip() for s in extra_nulls.split("|") if s.strip()),
    )

    with st.expander(f"Preview of {md_text(upload.name)}"):
        show_table(found.preview.head(20), raw=True)

    if st.button(f"Import {md_text(upload.name)}", type="primary", key=f"data_import_{sha[:12]}", icon=":material/download:"):
        bar = st.progress(0.0, text="Starting…")
        try:
            result = ingest.import_file(
                store, path, kind=kind, column_map=_column_map(edited), options=options,
                sheet=found.sheet, file_name=upload.name,
                progress=lambda f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg),
            )
        except AmbiguousValues as exc:
            bar.empty()
            st.warning(f"**{md_text(exc.problem)}** Choose the date order under “Value conventions”, then import again.",
                       icon=":material/help:")
            return
        except TouchpointError as exc:
            bar.empty()
            show_error(exc)
            return
        bar.empty()
        prepare_overview_in_background()  # the next Overview of the new data is a cache hit
        # Rerun so the sidebar and every cached view see the new data version at once.
        st.session_state["data_last_result"] = {**result.as_dict(), "sha": sha}
        st.rerun()
    if last and last.get("sha") == sha:
        _show_result(last)


def _import_all(saved) -> None:
    """Import every uploaded file with its proposed (or saved) mapping, one batch each."""
    summary = st.session_state.get("data_import_all")
    c1, c2 = st.columns([1, 3])
    c2.caption(f"{len(saved)} files uploaded. Review each below, or import them all with the proposed mappings.")
    if c1.button(f"Import all {len(saved)} files", key="data_import_all_btn", icon=":material/library_add:"):
        bar = st.progress(0.0, text="Starting…")
        rows = []
        for i, (upload, path, sha) in enumerate(saved):
            bar.progress(i / len(saved), text=f"Importing {md_text(upload.name)} ({i + 1} of {len(saved)})")
            try:
                r = ingest.import_file(store, path, file_name=upload.name,
                                       kind=st.session_state.get(f"data_kind_{sha[:12]}"),
                                       sheet=st.session_state.get(f"data_sheet_{sha[:12]}"))
                rows.append({"File": upload.name, "Kind": TABLE_LABELS[r.kind], "Batch": r.batch_id,
                             "Rows read": r.rows_read, "Added": r.added, "Updated": r.updated,
                             "Unchanged": r.unchanged, "Duplicates": r.duplicates, "Rejected": r.rejected,
                             "Problem": ""})
            except TouchpointError as exc:
                rows.append({"File": upload.name, "Kind": "", "Batch": None, "Rows read": None, "Added": None,
                             "Updated": None, "Unchanged": None, "Duplicates": None, "Rejected": None,
                             "Problem": str(exc)})
        bar.empty()
        if any(r["Batch"] is not None for r in rows):
            prepare_overview_in_background()
        st.session_state["data_import_all"] = rows
        st.rerun()
    if summary:
        failed = [r for r in summary if r["Problem"]]
        (st.warning if failed else st.success)(
            f"Imported {len(summary) - len(failed)} of {len(summary)} files."
            + (" Open each file that failed below to fix its mapping." if failed else ""))
        show_table(pd.DataFrame(summary))


def _confirm_remove(batch_id: int, label: str) -> None:
    """An inline confirmation (kept in session state, so it survives the rerun of its own buttons)."""
    with st.container(border=True):
        st.warning(f"Remove batch **{md_text(label)}**? The rows it added are removed and rows it updated go back to their "
                   "earlier version. Other batches are not touched.", icon=":material/warning:")
        c1, c2, _ = st.columns([1, 1, 4])
        if c1.button("Remove", type="primary", key="data_remove_yes"):
            st.session_state.pop("data_confirm_remove", None)
            try:
                out = ingest.remove_batch(store, batch_id)
            except TouchpointError as exc:
                show_error(exc)
                return
            prepare_overview_in_background()
            st.session_state["data_flash"] = (f"Removed batch {batch_id}: {fmt_int(out['rows_removed'])} rows removed, "
                                              f"{fmt_int(out['rows_restored'])} earlier versions restored.")
            st.rerun()
        if c2.button("Cancel", key="data_remove_no"):
            st.session_state.pop("data_confirm_remove", None)
            st.rerun()


def _confirm_reset() -> None:
    with st.container(border=True):
        st.warning("Replace all data with the demo data? Every imported batch is removed and the demo data set "
                   "(two years of a fictional company's surveys, tickets, orders, journeys and customers) is loaded. "
                   "Saved mappings and settings stay.", icon=":material/warning:")
        c1, c2, _ = st.columns([2, 1, 3])
        if c1.button("Replace with demo data", type="primary", key="data_reset_yes"):
            from cx import demo

            st.session_state.pop("data_confirm_reset", None)
            with st.spinner("Loading the demo data…"):
                store.clear_data()
                demo.load_demo(store)
            st.session_state["data_flash"] = "The store now holds the demo data set."
            st.rerun()
        if c2.button("Cancel", key="data_reset_no"):
            st.session_state.pop("data_confirm_reset", None)
            st.rerun()


def _batches_tab() -> None:
    batches = cached_batches(store.data_version())
    if batches.empty:
        st.info("No batches yet. Import a file in the **Import** tab, or load the demo data below.")
    else:
        show_table(
            batches.rename(columns={"batch_id": "Batch", "kind": "Kind", "file_name": "File", "file_format": "Format",
                                    "imported_at": "Imported (UTC)", "rows_read": "Rows read", "added": "Added",
                                    "updated": "Updated", "unchanged": "Unchanged", "duplicates": "Duplicates",
                                    "rejected": "Rejected", "rows_now": "Rows held now"}),
            column_config={"Imported (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
        )
        labels = {int(r.batch_id): f"#{r.batch_id} · {r.file_name} · {TABLE_LABELS[r.kind].lower()} · {r.rows_read:,} rows"
                  for r in batches.itertuples()}
        pick = st.selectbox("Batch", list(labels), format_func=labels.get, key="data_batch_pick")
        c1, c2 = st.columns([1, 3])
        if c1.button("Remove batch…", key="data_remove", icon=":material/delete:"):
            st.session_state["data_confirm_remove"] = int(pick)
        if st.session_state.get("data_confirm_remove") in labels:
            confirm_id = st.session_state["data_confirm_remove"]
            _confirm_remove(confirm_id, labels[confirm_id])
        try:
            rejects = ingest.batch_rejects(store, int(pick))
        except UnknownBatch:  # removed by another session since the list above was read
            st.info(f"Batch #{int(pick)} was just removed in another session. Reload the page for the current list.")
            return
        if rejects.empty:
            c2.caption("This batch rejected no rows.")
        else:
            with st.expander(f"{fmt_int(len(rejects))} rejected row{'' if len(rejects) == 1 else 's'} in batch {pick}"):
                show_table(rejects.head(1000), raw=True)
                st.download_button("Download rejected rows (CSV)", to_csv_bytes(rejects),
                                   file_name=f"rejects-batch-{pick}.csv", mime="text/csv", key="data_rejects_dl")
    st.divider()
    st.caption("Start over with a fictional company's data to explore Touchpoint.")
    if st.button("Reset to demo data…", key="data_reset", icon=":material/restart_alt:"):
        st.session_state["data_confirm_reset"] = True
    if st.session_state.get("data_confirm_reset"):
        _confirm_reset()


def _mappings_tab() -> None:
    maps = ingest.list_mappings(store)
    if maps.empty:
        st.info("No saved mappings yet. Each mapping you confirm at import is saved here and applied automatically "
                "the next time an export with the same columns arrives.")
        return
    view = maps.assign(columns=maps["columns"].map(lambda c: ", ".join(map(str, json.loads(c)))[:120]))
    show_table(view[["kind", "columns", "saved_at", "uses"]].rename(
        columns={"kind": "Kind", "columns": "Columns recognised", "saved_at": "Saved (UTC)", "uses": "Times used"}))
    sig = st.selectbox("Mapping", maps["signature"], key="data_mapping_pick",
                       format_func=lambda s: view.set_index("signature").loc[s, "columns"][:80])
    if st.button("Forget this mapping", key="data_mapping_forget"):
        ingest.delete_mapping(store, sig)
        st.rerun()


st.title("Data")
if is_external():
    st.info(f"Touchpoint reads its tables from another engine ({engine_url()}), so imports are made there, not "
            "here. Unset TOUCHPOINT_ENGINE to use the built-in DuckDB store.", icon=":material/cloud:")
    st.stop()
st.caption("Import exports, check how their columns map onto Touchpoint's data model, and manage what is in the store.")
flash = st.session_state.pop("data_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")
tab_import, tab_batches, tab_maps = st.tabs(["Import", "Batches", "Saved mappings"])
with tab_import:
    _import_tab()
with tab_batches:
    _batches_tab()
with tab_maps:
    _mappings_tab()
